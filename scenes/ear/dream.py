"""Hearing the ear: input optimisation. A clip is changed by gradient ascent so that chosen neurons
fire; the result is played as a loop (../shared/REFERENCE-EAR.md, "Hearing it").

**The target.** A region of one layer: channels ``[c0, c1)``, bins ``[b0, b1)`` (fractions of the
layer's bins, so a piano note's band reads the same on every layer) and a time span (fractions of
the clip). The ascent raises the region's mean *pre-activation* normalised by the neurons'
statistics over the data the ear learned, ``(pre - mean) / std`` (a neuron behind a ReLU that never
fires on the start material still gives a gradient); what is reported (and "3x" measures) is the
region's mean normalised activation ``relu((pre - mean) / std)``: how far above its usual level
it fires.

**One step** (all of it one compiled call; the network is cut after the target's layer):
- a random circular time shift of the clip (up to ``shift`` of its length: the clip is a loop, so
  any shift is the same loop);
- a small random pitch change (up to ``pitch`` semitones, linear-interpolation resampling);
- masking: random time frames and bins of the scaleogram set to silence (each with probability
  ``mask``), so no single spot carries the target;
- the gradient of the target with respect to the clip, plus Gaussian noise of ``noise`` times its
  RMS (noisy gradients);
- normalised-gradient ascent: the clip moves by ``rate`` (in RMS amplitude) along gradient / its RMS;
- de-noising: the clip is pulled ``denoise`` of the way towards its own 3-tap moving average (a
  gentle low-pass against the hiss adversarial gradients leave), then clipped to -1..1.

Every regulariser's randomness comes from the step's key: the same start and key, the same loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from scenes.ear import network

STD_FLOOR = 1e-3


@dataclass(frozen=True)
class Target:
    layer: str = "e2"
    channels: tuple[float, float] = (0.5, 0.53)  # fractions of the layer's channels (one here)
    bins: tuple[float, float] = (0.3, 0.4)  # fractions of its bins (low to high)
    time: tuple[float, float] = (0.0, 1.0)  # fractions of the clip

    def weights(self, clip_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frames,), (bins,) and (channels,) 0/1 weights of the region in the target's layer, for
        a clip of ``clip_frames`` scaleogram frames; never empty."""
        bins, channels = network.layer_shapes()[self.layer]
        frames = clip_frames // network.time_stride(self.layer)

        def pick(count, span):
            low = min(int(np.floor(np.clip(span[0], 0, 1) * count)), count - 1)
            high = max(low + 1, int(np.ceil(np.clip(span[1], 0, 1) * count)))
            weights = np.zeros(count, np.float32)
            weights[low:min(high, count)] = 1.0
            return weights

        return pick(frames, self.time), pick(bins, self.bins), pick(channels, self.channels)


@dataclass(frozen=True)
class Regularisers:
    shift: float = 0.25  # of the clip's length, at most
    pitch: float = 0.3  # semitones, at most
    mask: float = 0.1  # probability of each frame and of each bin being masked
    noise: float = 0.3  # of the gradient's RMS
    denoise: float = 0.1  # of the way to the moving average
    rate: float = 0.003  # RMS amplitude a step moves

    def vector(self) -> np.ndarray:
        return np.array([self.shift, self.pitch, self.mask, self.noise, self.denoise, self.rate], np.float32)


def _value(params, mean, var, spectrum, layer: str, weights):
    """(objective, activation) of the region: the mean normalised pre-activation ``(pre - mean) /
    std`` (what the ascent raises: it has a gradient everywhere) and the mean normalised
    activation ``relu((pre - mean) / std)``, how far above its usual level the region fires (what
    is reported, and what lights a neuron in the picture)."""
    time_w, bins_w, channels_w = weights
    pre = network.forward(params, spectrum, until=layer)[layer][0]  # (T, bins, channels)
    std = jnp.sqrt(jnp.maximum(var[layer], STD_FLOOR ** 2))
    normalised = (pre - mean[layer]) / std
    w = time_w[:, None, None] * bins_w[None, :, None] * channels_w[None, None, :]
    count = jnp.maximum(jnp.sum(w), 1.0)
    return jnp.sum(normalised * w) / count, jnp.sum(jax.nn.relu(normalised) * w) / count


def target_value(params, mean, var, clip: jax.Array, layer: str, weights) -> jax.Array:
    """The target's normalised activation for one clip (N,), no regulariser."""
    return _value(params, mean, var, network.scaleogram(clip[None]), layer, weights)[1]


def _shifted_pitch(clip: jax.Array, ratio: jax.Array) -> jax.Array:
    """The loop read ``ratio`` times as fast, circularly, by linear interpolation (same length)."""
    n = clip.shape[0]
    position = jnp.arange(n, dtype=jnp.float32) * ratio
    left = jnp.floor(position)
    frac = position - left
    i = left.astype(jnp.int32) % n
    return clip[i] * (1 - frac) + clip[(i + 1) % n] * frac


def dream_step(params, mean, var, clip: jax.Array, key: jax.Array, layer: str, weights,
               reg: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One regularised, normalised gradient-ascent step of ``clip`` (N,); ``reg`` is
    :meth:`Regularisers.vector` (numbers, not compiled in: a knob move costs no compile). Returns
    the new clip and the target's normalised activation before the step (as regularised)."""
    shift_max, pitch, mask, noise, denoise, rate = (reg[i] for i in range(6))
    n = clip.shape[0]
    k_shift, k_pitch, k_time, k_bins, k_noise = jax.random.split(key, 5)
    shift = jnp.floor(jax.random.uniform(k_shift, ()) * (shift_max * n + 1)).astype(jnp.int32)
    ratio = 2.0 ** (jax.random.uniform(k_pitch, (), minval=-1.0, maxval=1.0) * pitch / 12.0)
    frames = n // network.HOP
    keep_time = jax.random.uniform(k_time, (frames,)) >= mask
    keep_bins = jax.random.uniform(k_bins, (network.BINS,)) >= mask
    keep = (keep_time[:, None] & keep_bins[None, :])[None]

    def objective(x):
        moved = _shifted_pitch(jnp.roll(x, shift), ratio)
        spectrum = network.scaleogram(moved[None])
        spectrum = jnp.where(keep, spectrum, -1.0)  # masked: as silence
        return _value(params, mean, var, spectrum, layer, weights)

    (_, value), grad = jax.value_and_grad(objective, has_aux=True)(clip)
    rms = jnp.sqrt(jnp.mean(grad * grad)) + 1e-12
    grad = grad + noise * rms * jax.random.normal(k_noise, grad.shape)
    grad = grad / (jnp.sqrt(jnp.mean(grad * grad)) + 1e-12)
    clip = clip + rate * grad
    smooth = (jnp.roll(clip, 1) + clip + jnp.roll(clip, -1)) / 3.0
    clip = clip + denoise * (smooth - clip)
    return jnp.clip(clip, -1.0, 1.0), value


class Dreamer:
    """Compiled dream steps, one per target layer and clip length (compiled when first asked: about
    2 s; :meth:`compile` does it ahead); the region and the regularisers are arguments."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], object] = {}
        self._values: dict[tuple[str, int], object] = {}

    def _step(self, layer: str, length: int):
        compiled = self._steps.get((layer, length))
        if compiled is None:
            compiled = jax.jit(lambda p, m, v, x, k, w, r: dream_step(p, m, v, x, k, layer, w, r))
            self._steps[(layer, length)] = compiled
        return compiled

    def step(self, params, mean, var, clip, key, target: Target, reg: Regularisers):
        weights = target.weights(clip.shape[0] // network.HOP)
        return self._step(target.layer, clip.shape[0])(params, mean, var, clip, key, weights, reg.vector())

    def value(self, params, mean, var, clip, target: Target) -> float:
        key = (target.layer, clip.shape[0])
        compiled = self._values.get(key)
        if compiled is None:
            layer = target.layer
            compiled = jax.jit(lambda p, m, v, x, w: target_value(p, m, v, x, layer, w))
            self._values[key] = compiled
        return float(compiled(params, mean, var, clip, target.weights(clip.shape[0] // network.HOP)))


def seamless(clip: np.ndarray, fade: int = 256) -> np.ndarray:
    """The loop with its seam closed: the last ``fade`` samples bent linearly so the last sample
    meets the first (no step at the wrap)."""
    out = np.array(clip, np.float32)
    fade = min(fade, len(out) - 1)
    if fade > 0:
        jump = out[0] - out[-1]
        out[-fade:] += jump * np.linspace(0.0, 1.0, fade, dtype=np.float32)
    return np.clip(out, -1.0, 1.0)


def distorted(clip: np.ndarray, amount: float) -> np.ndarray:
    """The loss's distortion of a loop: the soft clip tanh(g x) / tanh(g) at drive g = ``amount``
    (0, NaN or below: the loop as it is; it tends to that as g falls): quiet parts pushed up,
    peaks held at +-1, the seam kept (it is pointwise)."""
    if not np.isfinite(amount) or amount <= 1e-4:
        return clip
    drive = min(float(amount), 50.0)
    return (np.tanh(drive * np.asarray(clip, np.float64)) / np.tanh(drive)).astype(np.float32)


def start_material(kind: str, frames: int, seed: int, sound: np.ndarray | None = None) -> np.ndarray:
    """A clip to start from: "silence" (near: 1e-4 noise, so the gradient is not zero), "noise"
    (0.05 RMS), or ``sound`` (a recording, the show's last seconds), tiled or cut to length."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return (0.05 * rng.standard_normal(frames)).astype(np.float32)
    if kind == "silence" or sound is None or not len(sound):
        return (1e-4 * rng.standard_normal(frames)).astype(np.float32)
    sound = np.asarray(sound, np.float32)
    reps = int(np.ceil(frames / len(sound)))
    return np.clip(np.tile(sound, reps)[:frames], -1.0, 1.0) + (1e-4 * rng.standard_normal(frames)).astype(np.float32)


__all__ = ["Dreamer", "Regularisers", "Target", "dream_step", "seamless", "start_material",
           "target_value"]
