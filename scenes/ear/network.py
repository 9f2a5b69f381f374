"""The ear's network: a causal constant-Q scaleogram and a contrastive-predictive-coding (CPC)
network over it, as plain jax functions on a parameter pytree (../shared/REFERENCE-EAR.md).

**Scaleogram.** 22,050 Hz mono, hop 512 (a frame every 23.2 ms), 96 bins at 12 per octave over 8
octaves from E1 (41.2 Hz, MIDI note 28) to D#9: bin ``k`` is MIDI note ``28 + k``, so a piano key
names a bin (the reference starts at 40 Hz, which puts A4 between two bins). Bin ``k``'s kernel is a
Hann-windowed complex exponential ``Q * rate / f_k`` samples long (Q = 16.8, constant-Q), ending at
the frame's last sample: *causal*, a frame sees no later sample. The input channel is the log power,
``(log10(|X|^2 + 1e-8) + 4) / 4`` (silence -1, a full-scale tone about 0.7); phase is left out.

*Polyphase form.* The scaleogram is a strided convolution (stride = hop), which XLA's CPU backend
differentiates slowly (input optimisation needs its gradient). Here the signal is cut into
hop-sized frames and each octave's kernels become taps over the last ``P`` frames (a stride-1
convolution of the frames, 512 channels in, 24 out): the same numbers (:func:`scaleogram_direct` is
the straightforward version, kept to test against).

**CPC.** Encoder, a 2-D ConvNet over (time, frequency), causal in time (padded only at the start):

    layer   kernel t x f  stride  channels  frames x bins  neurons (channel x bin)
    e0      3 x 3         1, 1    1 -> 8     172 x 96       768
    e1      4 x 4         2, 2    8 -> 16     86 x 48       768
    e2      1 x 13        1, 2    16 -> 32    86 x 24       768   (along frequency: ~2 octaves)
    e3      4 x 3         2, 2    32 -> 64    43 x 12       768
    code    1 x 12        -       64 -> 64    43             64   (z: a code every 92.9 ms)

then an autoregressive causal 1-D ConvNet over the codes: a0 (kernel 4), a1 (kernel 4, dilation 2,
residual), context (kernel 4, dilation 4, residual), 64 channels each: the context c_t sees ~2 s of
codes. 3,328 neurons are drawn. Strided layers run in polyphase form (space to depth, then a stride-1
convolution with the kernel cut into taps), as in the grain VAE. No batch norm: a causal network
cannot use statistics over time, and 7 layers train without it.

**Loss.** InfoNCE for k = 1..6 codes ahead, contrasting the true future code with every other code
of the batch at every time (the reference's "SAT" variant): about 320 candidates per prediction at
8 clips of 4 s, chance 0.3 %.
"""

from __future__ import annotations

import math
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

RATE = 22050
HOP = 512
BINS_PER_OCTAVE = 12
OCTAVES = 8
BINS = BINS_PER_OCTAVE * OCTAVES
LOWEST_NOTE = 28  # E1: bin k is MIDI note 28 + k
F_MIN = 440.0 * 2 ** ((LOWEST_NOTE - 69) / 12)
Q = 1.0 / (2 ** (1 / BINS_PER_OCTAVE) - 1)
CLIP_FRAMES = 172  # 4 s of frames
CLIP = CLIP_FRAMES * HOP  # 88,064 samples
LOG_FLOOR = 1e-8

# name, (kernel time, kernel frequency), (stride time, stride frequency), channels in, out
ENCODER = (("e0", (3, 3), (1, 1), 1, 8), ("e1", (4, 4), (2, 2), 8, 16),
           ("e2", (1, 13), (1, 2), 16, 32), ("e3", (4, 3), (2, 2), 32, 64))
CODE = 64
CODE_BINS = 12  # bins left after the encoder
# name, kernel, dilation (64 -> 64 each)
AUTOREGRESSIVE = (("a0", 4, 1), ("a1", 4, 2), ("context", 4, 4))
FUTURE = 6  # codes ahead predicted (k = 1 .. 6)
CODE_FRAMES = CLIP_FRAMES // 4  # 43

Params = dict[str, jax.Array]


def bin_frequency(k: int | np.ndarray) -> np.ndarray:
    return F_MIN * 2.0 ** (np.asarray(k) / BINS_PER_OCTAVE)


def note_bin(note: int) -> int:
    """The scaleogram bin of MIDI note ``note`` (clipped to the scaleogram)."""
    return int(np.clip(note - LOWEST_NOTE, 0, BINS - 1))


# Scaleogram ----------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _octave_kernels() -> tuple[tuple[int, np.ndarray], ...]:
    """For each octave, (taps P, kernel (P * HOP, 2 * 12)): real parts then imaginary parts of its
    12 bins, each kernel at the end of the P-frame window (causal)."""
    kernels = []
    for octave in range(OCTAVES):
        bins = np.arange(octave * BINS_PER_OCTAVE, (octave + 1) * BINS_PER_OCTAVE)
        lengths = np.ceil(Q * RATE / bin_frequency(bins)).astype(int)
        taps = int(math.ceil(lengths.max() / HOP))
        window = taps * HOP
        kernel = np.zeros((window, 2 * BINS_PER_OCTAVE))
        for i, (k, length) in enumerate(zip(bins, lengths)):
            n = np.arange(length)
            hann = 0.5 - 0.5 * np.cos(2 * np.pi * (n + 0.5) / length)
            phase = 2 * np.pi * bin_frequency(k) * n / RATE
            kernel[window - length:, i] = hann * np.cos(phase) / hann.sum()
            kernel[window - length:, BINS_PER_OCTAVE + i] = -hann * np.sin(phase) / hann.sum()
        kernels.append((taps, kernel.astype(np.float32)))
    return tuple(kernels)


def _log_power(re: jax.Array, im: jax.Array) -> jax.Array:
    return (jnp.log10(re * re + im * im + LOG_FLOOR) + 4.0) / 4.0


def scaleogram(signal: jax.Array) -> jax.Array:
    """(B, N) samples (N a multiple of HOP) -> (B, N / HOP, 96) log power, polyphase form."""
    batch, length = signal.shape
    frames = signal.reshape(batch, length // HOP, HOP)
    octaves = []
    for taps, kernel in _octave_kernels():
        padded = jnp.pad(frames, ((0, 0), (taps - 1, 0), (0, 0)))
        w = jnp.asarray(kernel).reshape(taps, HOP, 2 * BINS_PER_OCTAVE)
        out = jax.lax.conv_general_dilated(padded, w, (1,), [(0, 0)], dimension_numbers=("NWC", "WIO", "NWC"))
        octaves.append(_log_power(out[..., :BINS_PER_OCTAVE], out[..., BINS_PER_OCTAVE:]))
    return jnp.concatenate(octaves, axis=-1)


def scaleogram_direct(signal: jax.Array) -> jax.Array:
    """The same as :func:`scaleogram`, as one strided convolution of the samples per octave."""
    octaves = []
    for taps, kernel in _octave_kernels():
        w = jnp.asarray(kernel)[:, None, :]
        out = jax.lax.conv_general_dilated(signal[..., None], w, (HOP,), [((taps - 1) * HOP, 0)],
                                           dimension_numbers=("NWC", "WIO", "NWC"))
        octaves.append(_log_power(out[..., :BINS_PER_OCTAVE], out[..., BINS_PER_OCTAVE:]))
    return jnp.concatenate(octaves, axis=-1)


def scaleogram_numpy(sound: np.ndarray, chunk_frames: int = 4096) -> np.ndarray:
    """(N,) samples of a whole recording -> (N // HOP, 96) float32, in numpy (data preparation:
    a recording's scaleogram is computed once; a 4-s clip of it is a slice)."""
    frames = np.asarray(sound, np.float32)[: len(sound) // HOP * HOP].reshape(-1, HOP)
    count = len(frames)
    out = np.empty((count, BINS), np.float32)
    for octave, (taps, kernel) in enumerate(_octave_kernels()):
        padded = np.concatenate([np.zeros((taps - 1, HOP), np.float32), frames])
        for start in range(0, count, chunk_frames):
            stop = min(count, start + chunk_frames)
            windows = np.lib.stride_tricks.sliding_window_view(padded[start:stop + taps - 1], taps, axis=0)
            # windows: (n, HOP, taps) -> (n, taps * HOP), oldest frame first
            flat = windows.transpose(0, 2, 1).reshape(stop - start, taps * HOP)
            result = flat @ kernel
            re, im = result[:, :BINS_PER_OCTAVE], result[:, BINS_PER_OCTAVE:]
            out[start:stop, octave * BINS_PER_OCTAVE:(octave + 1) * BINS_PER_OCTAVE] = (
                (np.log10(re * re + im * im + LOG_FLOOR) + 4.0) / 4.0)
    return out


# Layers --------------------------------------------------------------------------------------------
DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _padding(kernel: tuple[int, int], stride: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Causal in time (all of it at the start), centred in frequency."""
    kt, kf = kernel
    st, sf = stride
    time = (kt - st, 0)
    extra = kf - sf
    return time, (extra // 2, extra - extra // 2)


def conv2d(x: jax.Array, w: jax.Array, stride: tuple[int, int]) -> jax.Array:
    """Polyphase: (B, T, F, C) with (kt, kf, C, O), stride (st, sf), causal padding -> (B, T/st, F/sf, O)."""
    (pt, pf) = _padding(w.shape[:2], stride)
    st, sf = stride
    x = jnp.pad(x, ((0, 0), pt, pf, (0, 0)))
    if stride == (1, 1):
        return jax.lax.conv_general_dilated(x, w, (1, 1), [(0, 0), (0, 0)], dimension_numbers=DIMENSIONS)
    kt, kf, c, o = w.shape
    batch, t, f, _ = x.shape
    taps_t, taps_f = -(-kt // st), -(-kf // sf)
    out_t, out_f = (t - kt) // st + 1, (f - kf) // sf + 1
    need_t, need_f = st * (out_t + taps_t - 1), sf * (out_f + taps_f - 1)
    x = jnp.pad(x, ((0, 0), (0, max(0, need_t - t)), (0, max(0, need_f - f)), (0, 0)))[:, :need_t, :need_f]
    blocks = x.reshape(batch, need_t // st, st, need_f // sf, sf, c).transpose(0, 1, 3, 2, 4, 5)
    blocks = blocks.reshape(batch, need_t // st, need_f // sf, st * sf * c)
    w = jnp.pad(w, ((0, taps_t * st - kt), (0, taps_f * sf - kf), (0, 0), (0, 0)))
    w = w.reshape(taps_t, st, taps_f, sf, c, o).transpose(0, 2, 1, 3, 4, 5).reshape(taps_t, taps_f, st * sf * c, o)
    return jax.lax.conv_general_dilated(blocks, w, (1, 1), [(0, 0), (0, 0)], dimension_numbers=DIMENSIONS)


def conv2d_direct(x: jax.Array, w: jax.Array, stride: tuple[int, int]) -> jax.Array:
    return jax.lax.conv_general_dilated(x, w, stride, list(_padding(w.shape[:2], stride)),
                                        dimension_numbers=DIMENSIONS)


def causal_conv1d(x: jax.Array, w: jax.Array, dilation: int) -> jax.Array:
    """(B, T, C) with (k, C, O), dilated, padded at the start only."""
    pad = (w.shape[0] - 1) * dilation
    return jax.lax.conv_general_dilated(x, w, (1,), [(pad, 0)], rhs_dilation=(dilation,),
                                        dimension_numbers=("NWC", "WIO", "NWC"))


# The network ---------------------------------------------------------------------------------------
def init_params(key: jax.Array) -> Params:
    """He-initialised kernels, zero biases, the K prediction maps near identity / sqrt(64)."""
    params: Params = {}
    for name, (kt, kf), _stride, c_in, c_out in ENCODER:
        key, sub = jax.random.split(key)
        params[f"{name}_w"] = math.sqrt(2.0 / (kt * kf * c_in)) * jax.random.normal(sub, (kt, kf, c_in, c_out))
        params[f"{name}_b"] = jnp.zeros((c_out,))
    key, sub = jax.random.split(key)
    c_last = ENCODER[-1][-1]
    params["code_w"] = math.sqrt(1.0 / (CODE_BINS * c_last)) * jax.random.normal(sub, (CODE_BINS * c_last, CODE))
    params["code_b"] = jnp.zeros((CODE,))
    for name, kernel, _dilation in AUTOREGRESSIVE:
        key, sub = jax.random.split(key)
        params[f"{name}_w"] = math.sqrt(2.0 / (kernel * CODE)) * jax.random.normal(sub, (kernel, CODE, CODE))
        params[f"{name}_b"] = jnp.zeros((CODE,))
    key, sub = jax.random.split(key)
    params["predict"] = jax.random.normal(sub, (FUTURE, CODE, CODE)) / CODE
    return params


LAYERS = tuple(name for name, *_ in ENCODER) + ("code",) + tuple(name for name, *_ in AUTOREGRESSIVE)


def layer_shapes() -> dict[str, tuple[int, int]]:
    """Each drawn layer's (bins, channels); the code and autoregressive layers have 1 bin."""
    shapes, bins = {}, BINS
    for name, _kernel, (_st, sf), _c_in, c_out in ENCODER:
        bins //= sf
        shapes[name] = (bins, c_out)
    for name in ("code",) + tuple(name for name, *_ in AUTOREGRESSIVE):
        shapes[name] = (1, CODE)
    return shapes


def time_stride(layer: str) -> int:
    """Scaleogram frames per time step of ``layer`` (1, 2 or 4)."""
    stride = 1
    for name, _kernel, (st, _sf), _c_in, _c_out in ENCODER:
        stride *= st
        if name == layer:
            return stride
    return stride


def forward(params: Params, spectrum: jax.Array, until: str | None = None,
            conv=conv2d) -> dict[str, jax.Array]:
    """(B, T, 96) log power -> every layer's pre-activation (B, T_layer, bins, channels) (the code and
    autoregressive layers (B, T / 4, 1, 64)); stops after layer ``until`` when given."""
    out: dict[str, jax.Array] = {}
    x = spectrum[..., None]
    for name, _kernel, stride, _c_in, _c_out in ENCODER:
        pre = conv(x, params[f"{name}_w"], stride) + params[f"{name}_b"]
        out[name] = pre
        if name == until:
            return out
        x = jax.nn.relu(pre)
    batch, t, f, c = x.shape
    z = x.reshape(batch, t, f * c) @ params["code_w"] + params["code_b"]
    out["code"] = z[:, :, None, :]
    if until == "code":
        return out
    h = z
    for index, (name, _kernel, dilation) in enumerate(AUTOREGRESSIVE):
        pre = causal_conv1d(jax.nn.relu(h) if index else h, params[f"{name}_w"], dilation) + params[f"{name}_b"]
        h = pre if index == 0 else h + pre
        out[name] = h[:, :, None, :]
        if name == until:
            return out
    return out


def info_nce(params: Params, spectrum: jax.Array) -> tuple[jax.Array, tuple[jax.Array, dict[str, jax.Array]]]:
    """The InfoNCE loss of a batch (B, T, 96), its prediction accuracy, and every layer's
    pre-activations (for their running statistics)."""
    layers = forward(params, spectrum)
    z = layers["code"][:, :, 0]
    c = layers["context"][:, :, 0]
    batch, t, _ = z.shape
    losses, hits = [], []
    for k in range(1, FUTURE + 1):
        predicted = (c[:, : t - k] @ params["predict"][k - 1]).reshape(-1, CODE)
        future = z[:, k:].reshape(-1, CODE)
        logits = predicted @ future.T
        target = jnp.arange(logits.shape[0])
        losses.append(-jnp.mean(jax.nn.log_softmax(logits, axis=-1)[target, target]))
        hits.append(jnp.mean(jnp.argmax(logits, axis=-1) == target))
    return jnp.mean(jnp.stack(losses)), (jnp.mean(jnp.stack(hits)), layers)
