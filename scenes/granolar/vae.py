"""The grain VAE's network: a 1-D convolutional variational autoencoder of 512-sample grains, as
plain jax functions on a parameter pytree (../shared/REFERENCE-GRANULAR.md part 1).

Encoder, 4 convolutions, channels 1 -> 64 -> 32 -> 16 -> 2, kernels 5, 8, 10, 13, strides 1, 2, 4,
4: lengths 512 -> 512 -> 256 -> 64 -> 16. The last layer's two channels are the posterior's mean and
log variance, 16 each: the latent has 16 dimensions. Decoder, 4 transposed convolutions mirroring
it, channels 1 -> 16 -> 32 -> 64 -> 1, kernels 13, 10, 8, 5, strides 4, 4, 2, 1: 16 -> 64 -> 256 ->
512 -> 512, then tanh. Every hidden layer is followed by batch normalisation and ReLU.

Where this differs from the report, and why:
- paddings (2, 3, 4, 6) and, mirrored, crops (5 on the left and 4 on the right, 3, 3, 2): the report's
  (3, 4, 5, 7) and (6, 5, 4, 1) do not give 512 samples back (its encoder ends at 17, its decoder at
  61 from 16); these give exactly 512 -> 16 -> 512;
- the encoder's last layer has two output channels (mean and log variance) and neither batch norm nor
  ReLU (a ReLU would forbid a negative mean or a log variance under 0); the decoder's last layer goes
  straight to tanh.

**Polyphase form.** XLA's CPU backend differentiates strided and transposed convolutions very
slowly. Every layer here is a stride-1 convolution instead, with the same outputs:
- a strided convolution (stride s) reads the padded input as blocks of s samples (space to depth: s
  times the channels, 1/s the length) and convolves them at stride 1 with the kernel cut into
  ceil(k/s) taps of s samples each (zero taps past k);
- a transposed convolution (stride s) is s stride-1 convolutions of the input, one per output phase
  r, with the kernel's taps r, r + s, r + 2s, ... (computed at once as s times the output channels),
  whose outputs are interleaved and cropped by the padding.
:func:`encode_direct` and :func:`decode_direct` are the straightforward versions (strided
``conv_general_dilated``, and a transposed convolution as an input-dilated one with the kernel
flipped), kept to test the polyphase ones against and to measure them.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

GRAIN = 512
LATENT = 16
# (in channels, out channels, kernel, stride, padding left, padding right)
ENCODER = ((1, 64, 5, 1, 2, 2), (64, 32, 8, 2, 3, 3), (32, 16, 10, 4, 4, 4), (16, 2, 13, 4, 6, 6))
# (in channels, out channels, kernel, stride, crop left, crop right): a transposed convolution's
# output, (L - 1) s + k long before the crop.
DECODER = ((1, 16, 13, 4, 5, 4), (16, 32, 10, 4, 3, 3), (32, 64, 8, 2, 3, 3), (64, 1, 5, 1, 2, 2))
BN_EPSILON = 1e-5
DIMENSIONS = ("NWC", "WIO", "NWC")

Params = dict[str, jax.Array]


def init_params(key: jax.Array, dtype=jnp.float32) -> Params:
    """He-initialised kernels (kernel, in, out), zero biases, batch norms at scale 1, shift 0."""
    params: Params = {}
    for prefix, layers in (("enc", ENCODER), ("dec", DECODER)):
        for index, (c_in, c_out, kernel, *_rest) in enumerate(layers):
            key, sub = jax.random.split(key)
            scale = math.sqrt(2.0 / (kernel * c_in))
            params[f"{prefix}{index}_w"] = scale * jax.random.normal(sub, (kernel, c_in, c_out), dtype)
            params[f"{prefix}{index}_b"] = jnp.zeros((c_out,), dtype)
            if index < len(layers) - 1:
                params[f"{prefix}{index}_scale"] = jnp.ones((c_out,), dtype)
                params[f"{prefix}{index}_shift"] = jnp.zeros((c_out,), dtype)
    return params


def init_statistics(dtype=jnp.float32) -> Params:
    """The batch norms' running means and variances (used when decoding to play)."""
    stats: Params = {}
    for prefix, layers in (("enc", ENCODER), ("dec", DECODER)):
        for index, (_c_in, c_out, *_rest) in enumerate(layers[:-1]):
            stats[f"{prefix}{index}_mean"] = jnp.zeros((c_out,), dtype)
            stats[f"{prefix}{index}_var"] = jnp.ones((c_out,), dtype)
    return stats


# Layers ---------------------------------------------------------------------------------------------
def _conv1(x: jax.Array, w: jax.Array, pad: tuple[int, int]) -> jax.Array:
    """Stride-1 convolution (cross-correlation) of (B, L, C) with (k, C, O), padded."""
    return jax.lax.conv_general_dilated(x, w, (1,), [pad], dimension_numbers=DIMENSIONS)


def strided_conv(x: jax.Array, w: jax.Array, stride: int, left: int, right: int) -> jax.Array:
    """Polyphase: the strided convolution of (B, L, C) with (k, C, O), padding (left, right)."""
    if stride == 1:
        return _conv1(x, w, (left, right))
    batch, length, channels = x.shape
    kernel, _, out_channels = w.shape
    out = (length + left + right - kernel) // stride + 1
    taps = -(-kernel // stride)
    padded_length = stride * (out + taps - 1)
    x = jnp.pad(x, ((0, 0), (left, max(0, padded_length - length - left)), (0, 0)))[:, :padded_length]
    blocks = x.reshape(batch, out + taps - 1, stride * channels)  # block t holds samples s t .. s t + s - 1
    w = jnp.pad(w, ((0, taps * stride - kernel), (0, 0), (0, 0)))
    w = w.reshape(taps, stride * channels, out_channels)  # tap q, sample r of the block: w[s q + r]
    return _conv1(blocks, w, (0, 0))


def transposed_conv(x: jax.Array, w: jax.Array, stride: int, crop_left: int, crop_right: int) -> jax.Array:
    """Polyphase: the transposed convolution of (B, L, C) with (k, C, O) (y[n] = sum_i x[i]
    w[n + crop_left - s i]), (L - 1) s + k - crop_left - crop_right samples long."""
    batch, length, _ = x.shape
    kernel, channels, out_channels = w.shape
    out = (length - 1) * stride + kernel - crop_left - crop_right
    if stride == 1:
        return _conv1(x, w[::-1], (kernel - 1 - crop_left, kernel - 1 - crop_right))
    taps = -(-kernel // stride)
    phases = -(-(out + crop_left) // stride)  # m = 0 .. phases - 1 covers every output sample
    w = jnp.pad(w, ((0, taps * stride - kernel), (0, 0), (0, 0)))
    # Phase r's kernel: taps w[s q + r], q = 0 .. taps - 1, flipped (a convolution, not a
    # correlation), all phases side by side as stride x O output channels.
    w = w.reshape(taps, stride, channels, out_channels)[::-1]
    w = w.transpose(0, 2, 1, 3).reshape(taps, channels, stride * out_channels)
    z = _conv1(x, w, (taps - 1, max(0, phases - length)))[:, :phases]  # (B, phases, s O)
    u = z.reshape(batch, phases * stride, out_channels)  # sample s m + r is phase r at m
    return u[:, crop_left:crop_left + out]


def direct_strided_conv(x, w, stride, left, right):
    return jax.lax.conv_general_dilated(x, w, (stride,), [(left, right)], dimension_numbers=DIMENSIONS)


def direct_transposed_conv(x, w, stride, crop_left, crop_right):
    kernel = w.shape[0]
    return jax.lax.conv_general_dilated(x, w[::-1], (1,), [(kernel - 1 - crop_left, kernel - 1 - crop_right)],
                                        lhs_dilation=(stride,), dimension_numbers=DIMENSIONS)


# The network ----------------------------------------------------------------------------------------
def _norm(x: jax.Array, params: Params, stats: Params | None, name: str):
    """Batch norm over batch and length: batch statistics when ``stats`` is None (training),
    else the running ones; returns (normalised, (batch mean, batch variance))."""
    if stats is None:
        mean, var = jnp.mean(x, axis=(0, 1)), jnp.var(x, axis=(0, 1))
    else:
        mean, var = stats[f"{name}_mean"], stats[f"{name}_var"]
    y = (x - mean) * jax.lax.rsqrt(var + BN_EPSILON)
    return y * params[f"{name}_scale"] + params[f"{name}_shift"], (mean, var)


def _layers(params, x, stats, conv, layers, prefix):
    """``layers`` (ENCODER or DECODER) on (B, L, C): each a convolution, then batch norm and ReLU
    but the last; returns the output and each normalised layer's batch moments."""
    moments = {}
    for index, (_ci, _co, _k, stride, left, right) in enumerate(layers):
        name = f"{prefix}{index}"
        x = conv(x, params[f"{name}_w"], stride, left, right) + params[f"{name}_b"]
        if index < len(layers) - 1:
            x, moments[name] = _norm(x, params, stats, name)
            x = jax.nn.relu(x)
    return x, moments


def _encode(params, grains, stats, conv):
    x, moments = _layers(params, grains[:, :, None], stats, conv, ENCODER, "enc")
    return x[:, :, 0], x[:, :, 1], moments


def _decode(params, z, stats, conv):
    x, moments = _layers(params, z[:, :, None], stats, conv, DECODER, "dec")
    return jnp.tanh(x[:, :, 0]), moments


def encode(params: Params, grains: jax.Array, stats: Params | None = None):
    """(B, 512) grains -> (mean (B, 16), log variance (B, 16), batch moments by layer)."""
    return _encode(params, grains, stats, strided_conv)


def decode(params: Params, z: jax.Array, stats: Params | None = None):
    """(B, 16) latent points -> ((B, 512) grains in (-1, 1), batch moments by layer)."""
    return _decode(params, z, stats, transposed_conv)


def encode_direct(params, grains, stats=None):
    return _encode(params, grains, stats, direct_strided_conv)


def decode_direct(params, z, stats=None):
    return _decode(params, z, stats, direct_transposed_conv)


def kl_divergence(mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """KL(N(mean, exp(log_var)) || N(0, I)) per row, the closed form
    1/2 sum_k (exp(s_k) + mu_k^2 - 1 - s_k)."""
    return 0.5 * jnp.sum(jnp.exp(log_var) + mean * mean - 1.0 - log_var, axis=-1)


def negative_elbo(params: Params, grains: jax.Array, key: jax.Array, beta: float,
                  encoder=encode, decoder=decode):
    """The loss of a batch: mean over grains of the squared error summed over the grain's samples
    (a Gaussian likelihood) plus ``beta`` x KL; returns (loss, (reconstruction, kl, moments))."""
    mean, log_var, enc_moments = encoder(params, grains)
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    z = mean + jnp.exp(0.5 * log_var) * eps  # the reparameterisation trick
    decoded, dec_moments = decoder(params, z)
    reconstruction = jnp.mean(jnp.sum((decoded - grains) ** 2, axis=-1))
    kl = jnp.mean(kl_divergence(mean, log_var))
    return reconstruction + beta * kl, (reconstruction, kl, {**enc_moments, **dec_moments})


# Playing: the decoder in numpy ----------------------------------------------------------------------
def prepare_decoder(params: dict[str, np.ndarray], stats: dict[str, np.ndarray]) -> tuple:
    """The decoder's weights as :func:`decode_numpy` multiplies by them (float32): per layer but the
    last, the polyphase kernel (the phases' kernels side by side, one row block per shift of the
    input) with the batch norm folded into its columns, and the shift after it; for the last (one
    output channel, stride 1), its taps and bias. Made once per model state: a decode then only
    multiplies."""
    layers, last = [], len(DECODER) - 1
    for index, (_ci, c_out, kernel, stride, left, right) in enumerate(DECODER):
        name = f"dec{index}"
        w = np.asarray(params[f"{name}_w"], np.float32)
        channels = w.shape[1]
        if index == last:
            layers.append((np.ascontiguousarray(w[:, :, 0].T), np.float32(np.asarray(params[f"{name}_b"])[0])))
            break
        count = -(-kernel // stride)
        w = np.pad(w, ((0, count * stride - kernel), (0, 0), (0, 0))).reshape(count, stride, channels, c_out)
        w = w.transpose(0, 2, 1, 3).reshape(count * channels, stride, c_out)  # row block q: x[m - q]
        scale = np.asarray(params[f"{name}_scale"]) / np.sqrt(np.asarray(stats[f"{name}_var"]) + BN_EPSILON)
        shift = (np.asarray(params[f"{name}_b"]) - stats[f"{name}_mean"]) * scale + params[f"{name}_shift"]
        layers.append((np.ascontiguousarray((w * scale).reshape(count * channels, stride * c_out), np.float32),
                       np.asarray(shift, np.float32)))
    return tuple(layers)


DECODE_CHUNK = 8  # grains per product: 32 at once took 10 ms here, four products of 8 took 6.4


def decode_numpy(params: dict[str, np.ndarray] | None, z: np.ndarray, stats: dict[str, np.ndarray] | None = None,
                 prepared: tuple | None = None, map_chunks=map) -> np.ndarray:
    """:func:`decode` with the running statistics, in numpy (BLAS): (B, 16) -> (B, 512) float32.

    The same grains (within 1e-5) without jax: live, a decode then never waits behind a training
    step's work in XLA's compute pool (which runs at idle priority while a trainer trains, and
    holds a step's tasks for up to its 100 ms). Polyphase as :func:`transposed_conv`: one matrix
    product per layer over the input's shifted copies (``prepared``: :func:`prepare_decoder`'s
    weights, else made from ``params`` and ``stats``), the shift and ReLU in place on the
    product, whose margins the next layer skips; the last layer (one output channel) as a product
    per tap, summed shifted.

    The grains are decoded :data:`DECODE_CHUNK` at a time (a product that fits the caches), each
    chunk on its own, so that ``map_chunks`` (an executor's ``map``) may decode them side by side
    on several threads: the grains come out the same, bit for bit, however they are spread."""
    layers = prepare_decoder(params, stats) if prepared is None else prepared
    z = np.asarray(z, np.float32)
    chunks = [z[start:start + DECODE_CHUNK] for start in range(0, len(z), DECODE_CHUNK)]
    decoded = list(map_chunks(lambda chunk: _decode_chunk(layers, chunk), chunks))
    return decoded[0] if len(decoded) == 1 else np.concatenate(decoded)


def _decode_chunk(layers: tuple, z: np.ndarray) -> np.ndarray:
    x = z[:, :, None]
    offset, length = 0, x.shape[1]  # the layer's input: x[:, offset:offset + length]
    last = len(DECODER) - 1
    for index, (_ci, c_out, kernel, stride, left, right) in enumerate(DECODER):
        w, shift = layers[index]
        batch, rows, channels = x.shape
        out = (length - 1) * stride + kernel - left - right
        if index == last:  # stride 1, one channel: y[i + j - left] += x[i] . w[j]
            taps = (x.reshape(batch * rows, channels) @ w).reshape(batch, rows, kernel)[:, offset:offset + length]
            full = np.zeros((batch, length + kernel - 1), np.float32)
            for j in range(kernel):
                full[:, j:j + length] += taps[:, :, j]
            return np.tanh(full[:, left:left + out] + shift).astype(np.float32)
        count = -(-kernel // stride)
        span = length + count - 1
        padded = np.zeros((batch, length + 2 * (count - 1), channels), np.float32)
        padded[:, count - 1:count - 1 + length] = x[:, offset:offset + length]
        columns = np.concatenate([padded[:, count - 1 - q:count - 1 - q + span] for q in range(count)], axis=2)
        x = (columns.reshape(batch * span, count * channels) @ w).reshape(batch, span * stride, c_out)
        x += shift
        np.maximum(x, 0.0, out=x)
        offset, length = left, out
    raise AssertionError("unreachable")
