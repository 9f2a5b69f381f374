"""The ear listening as the show goes: each listen computes only what is new since the last.

The ear is causal: a scaleogram frame sees no later sample, and each layer's time step sees only
earlier steps of the layer under it. So what it has heard never changes, and a listen needs only
the frames completed since the one before: about 1.4 frames of 23 ms at 30 listens a second,
instead of the whole 4 s (172 frames). This is done in numpy, on a fixed grid of frames counted
from the scene's start: frame ``f`` holds the ear's samples ``f * HOP .. (f + 1) * HOP``, the
strided layers step on their own grid (e1 and e2 every 2 frames, e3, the code and the
autoregressive layers every 4), and each layer keeps the few steps of the layer under it that its
kernel reaches back to. Every value equals that of :func:`network.forward` over the whole sound
from the start (``tests/unit/test_ear_listen.py``); a layer lights by its newest step.

Why not jax: a whole-window listen in jax is about 4.6 ms on XLA's compute pool, 30 times a second,
and in one process that pool is shared with the dreamer and training, so the show's frames wait
on it (issue 22's frame goal). A numpy listen of the new frames takes a fraction of that and
leaves XLA's pool alone.

The sound arrives at the show's rate (48 kHz) and is resampled to 22,050 Hz on the same fixed
grid: ear sample ``n`` sits at show sample ``n * rate / 22,050``, made from the 2 x 12 show
samples around it (a windowed sinc low-passed under 0.9 of the new Nyquist frequency).

When the model changes (learning on stage) the layers' remembered steps were made by the model
before; they flow out within the network's reach (the context's, about 2 s).
"""

from __future__ import annotations

from math import gcd

import numpy as np
from numpy.lib.stride_tricks import as_strided

from scenes.ear import dream, network

TAPS = 12  # show samples each side of a resampled sample
HISTORY = {"e0": 3, "e1": 4, "e3": 4, "a0": 4, "a1": 7, "context": 13}  # steps of its input a layer reads
STRIDE = {name: stride for name, _kernel, stride, _c_in, _c_out in network.ENCODER}
KERNEL = {name: kernel for name, kernel, _stride, _c_in, _c_out in network.ENCODER}


def resampling_weights(rate: int) -> tuple[int, int, np.ndarray]:
    """(up, down, weights (up, 2 x TAPS)): ear sample ``n`` is at show position ``n * down / up``;
    its weights are row ``n * down % up``, over the show samples ``n * down // up - TAPS + 1`` on."""
    g = gcd(network.RATE, rate)
    up, down = network.RATE // g, rate // g
    ratio = rate / network.RATE
    fraction = np.arange(up)[:, None] / up
    distance = fraction - np.arange(-TAPS + 1, TAPS + 1)[None, :]
    cutoff = 0.45 / max(ratio, 1.0)  # cycles per show sample
    window = 0.5 + 0.5 * np.cos(np.pi * distance / TAPS)
    return up, down, (2 * cutoff * np.sinc(2 * cutoff * distance) * window).astype(np.float32)


def _freq_padding(name: str) -> tuple[int, int]:
    return network._padding(KERNEL[name], STRIDE[name])[1]


def _gather(name: str, bins: int) -> np.ndarray:
    """For layer ``name`` over ``bins`` input bins (padded as network._padding): the padded input
    bins each output bin reads, (bins out, kf)."""
    _kt, kf = KERNEL[name]
    low, high = _freq_padding(name)
    out = (bins + low + high - kf) // STRIDE[name][1] + 1
    return np.arange(out)[:, None] * STRIDE[name][1] + np.arange(kf)[None, :]


def _conv_newest(x: np.ndarray, w: np.ndarray, b: np.ndarray, gather: np.ndarray) -> np.ndarray:
    """A causal 2-D convolution's newest time step: ``x`` (kt, F padded, C) the last kt steps of
    its input, ``w`` (kt * kf * C, O) -> (F out, O)."""
    windows = x[:, gather]  # (kt, F out, kf, C)
    return windows.transpose(1, 0, 2, 3).reshape(gather.shape[0], -1) @ w + b


class Listener:
    """What the ear hears, kept up as sound comes: the last 4 s of scaleogram and every layer's
    newest pre-activation. Feed it the show's recent sound with :meth:`hear`."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.up, self.down, self.weights = resampling_weights(rate)
        self.kernels = network._octave_kernels()
        self.reach = max(taps for taps, _ in self.kernels) * network.HOP  # samples the scaleogram reads back
        self.spectrum = np.full((network.CLIP_FRAMES, network.BINS), -1.0, np.float32)  # drawn: silence before
        self.frames = 0  # frames made
        self.sound = np.zeros(self.reach, np.float32)  # the ear's samples from ``sound_at - reach`` on
        self.sound_at = 0  # ear samples made (absolute)
        self.newest: dict[str, np.ndarray] = {}
        self.inputs: dict[str, np.ndarray] = {}  # each layer's last steps of its input (after ReLU)
        self.steps = dict.fromkeys(network.LAYERS, 0)  # time steps each layer has made
        shapes = network.layer_shapes()
        for name, (bins, channels) in shapes.items():
            self.newest[name] = np.zeros((bins, channels), np.float32)
        # the encoder's inputs, padded along frequency (zeros each side, as network._padding)
        bins_in = {"e0": network.BINS, "e1": network.BINS, "e2": shapes["e1"][0], "e3": shapes["e2"][0]}
        channels_in = {name: c_in for name, _k, _s, c_in, _c in network.ENCODER}
        self.gather = {name: _gather(name, bins_in[name]) for name in bins_in}
        self.pad = {name: _freq_padding(name) for name in bins_in}
        for name, steps in (("e0", HISTORY["e0"]), ("e1", HISTORY["e1"]), ("e2", 1), ("e3", HISTORY["e3"])):
            low, high = self.pad[name]
            self.inputs[name] = np.zeros((steps, low + bins_in[name] + high, channels_in[name]), np.float32)
        for name in ("a0", "a1", "context"):
            self.inputs[name] = np.zeros((HISTORY[name], network.CODE), np.float32)
        self._model: tuple | None = None
        self._params: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict:  # a snapshot: the numpy copy of the model is made again
        state = dict(self.__dict__)
        state["_model"], state["_params"] = None, {}
        return state

    # Sound -----------------------------------------------------------------------------------------
    def _resample(self, recent: np.ndarray, recent_at: int) -> np.ndarray:
        """The ear's samples from ``sound_at`` on that the show's ``recent`` (its last samples,
        the newest having index ``recent_at - 1``) allows; a gap older than ``recent`` is silence."""
        first = recent_at - len(recent)  # the show index of recent[0]
        end = (recent_at - TAPS) * self.up // self.down  # ear samples whose every tap has arrived
        start = self.sound_at
        earliest = -(-(first + TAPS - 1) * self.up // self.down)  # the oldest whose taps are all in recent
        if end <= start:
            return np.zeros(0, np.float32)
        n = np.arange(max(start, earliest), end, dtype=np.int64)
        base = n * self.down // self.up
        taps = base[:, None] + np.arange(-TAPS + 1, TAPS + 1)[None, :] - first
        made = np.einsum("nt,nt->n", recent[taps], self.weights[n * self.down % self.up])
        gap = int(n[0] - start) if len(n) else end - start
        return np.concatenate([np.zeros(gap, np.float32), made.astype(np.float32)])

    def needed(self, recent_at: int) -> int:
        """How many of the show's newest samples (its newest the ``recent_at``-th) the next
        :meth:`hear` reads: those from the taps of the first ear sample not yet made on."""
        return max(0, recent_at - (self.sound_at * self.down // self.up - TAPS + 1)) + 1

    def hear(self, model: tuple, recent: np.ndarray, recent_at: int) -> tuple[np.ndarray, np.ndarray]:
        """Take the show's recent sound (mono at its rate, oldest first, its newest sample the
        ``recent_at``-th ever) and return (the scaleogram of the last 4 s (172, 96), every drawn
        neuron's normalised activation at its layer's newest step, in the graph's order)."""
        if model is not self._model:
            params, mean, var = model
            self._params = {k: np.asarray(v, np.float32) for k, v in params.items()}
            for name, *_ in network.ENCODER:  # (kt, kf, C, O) -> (kt * kf * C, O)
                self._params[f"{name}_w"] = self._params[f"{name}_w"].reshape(-1, self._params[f"{name}_w"].shape[-1])
            self._mean = {k: np.asarray(mean[k], np.float32) for k in network.LAYERS}
            self._std = {k: np.sqrt(np.maximum(np.asarray(var[k], np.float32), dream.STD_FLOOR ** 2))
                         for k in network.LAYERS}
            self._model = model
        self.add(np.nan_to_num(np.asarray(recent, np.float32)), recent_at)
        return self.spectrum.copy(), self.lit()

    def add(self, recent: np.ndarray, recent_at: int) -> None:
        """The show's recent sound in (see :meth:`hear`), resampled, through the ear."""
        self.add_ear(self._resample(recent, recent_at))

    def add_ear(self, new: np.ndarray) -> None:
        """The ear's next samples (22,050 Hz) through the scaleogram and the network."""
        if not len(new):
            return
        self.sound = np.concatenate([self.sound, np.asarray(new, np.float32)])[-(self.reach + network.HOP + len(new)):]
        self.sound_at += len(new)
        count = self.sound_at // network.HOP - self.frames
        if count > 0:
            for frame in self._scaleogram(count):
                self._step(frame)

    def _scaleogram(self, count: int) -> np.ndarray:
        """The next ``count`` frames (count, 96), rolled into :attr:`spectrum`."""
        hop = network.HOP
        end = self.frames + count  # frames end at sample end * hop
        tail = self.sound[: len(self.sound) - (self.sound_at - end * hop)]  # samples up to that end
        out = np.empty((count, network.BINS), np.float32)
        for octave, (taps, kernel) in enumerate(self.kernels):
            # frame i's window: the taps * hop samples up to its end, each frame's a hop on
            first = tail[len(tail) - (taps + count - 1) * hop:]
            windows = as_strided(first, (count, taps * hop), (hop * first.itemsize, first.itemsize), writeable=False)
            result = windows @ kernel
            re, im = result[:, :network.BINS_PER_OCTAVE], result[:, network.BINS_PER_OCTAVE:]
            out[:, octave * network.BINS_PER_OCTAVE:(octave + 1) * network.BINS_PER_OCTAVE] = (
                (np.log10(re * re + im * im + network.LOG_FLOOR) + 4.0) / 4.0)
        self.spectrum = np.concatenate([self.spectrum, out])[-network.CLIP_FRAMES:]
        self.frames = end
        return out

    # The network, one frame at a time -------------------------------------------------------------
    def _layer(self, name: str) -> np.ndarray:
        pre = _conv_newest(self.inputs[name], self._params[f"{name}_w"], self._params[f"{name}_b"], self.gather[name])
        self.newest[name] = pre
        self.steps[name] += 1
        return np.maximum(pre, 0.0)

    def _into(self, name: str, step: np.ndarray) -> None:
        """``step`` (bins, channels) as the newest step of layer ``name``'s input."""
        history = self.inputs[name]
        history[:-1] = history[1:]
        low = self.pad[name][0]
        history[-1, low:low + step.shape[0]] = step

    @staticmethod
    def _push(history: np.ndarray, step: np.ndarray) -> None:
        history[:-1] = history[1:]
        history[-1] = step

    def _step(self, frame: np.ndarray) -> None:
        """One new scaleogram frame through every layer whose step it completes."""
        p = self._params
        index = self.steps["e0"]  # this frame's index from the start (e0 steps every frame)
        self._into("e0", frame[:, None])
        self._into("e1", self._layer("e0"))
        if index % 2 != 1:  # e1 and e2 step every 2 frames, at odd ones
            return
        self._into("e2", self._layer("e1"))
        self._into("e3", self._layer("e2"))
        if index % 4 != 3:  # e3, the code and the autoregressive layers every 4, at 3 mod 4
            return
        e3 = self._layer("e3")
        z = e3.reshape(-1) @ p["code_w"] + p["code_b"]
        self.newest["code"] = z[None]
        self._push(self.inputs["a0"], z)
        h = np.einsum("kc,kco->o", self.inputs["a0"], p["a0_w"]) + p["a0_b"]
        self.newest["a0"] = h[None]
        for name, _kernel, dilation in network.AUTOREGRESSIVE[1:]:
            self._push(self.inputs[name], np.maximum(h, 0.0))
            taps = self.inputs[name][::-dilation][::-1]  # the newest and every `dilation`-th before, oldest first
            h = h + np.einsum("kc,kco->o", taps, p[f"{name}_w"]) + p[f"{name}_b"]
            self.newest[name] = h[None]
        for name in ("code",) + tuple(n for n, *_ in network.AUTOREGRESSIVE):
            self.steps[name] += 1

    def lit(self) -> np.ndarray:
        return np.concatenate([np.maximum((self.newest[n] - self._mean[n]) / self._std[n], 0.0).ravel()
                               for n in network.LAYERS]).astype(np.float32)
