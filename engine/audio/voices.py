"""Banks of additive voices: allocation, stealing, phases and stereo, shared by every timbre.

A voice is a sum of K sinusoids (partials) under an envelope. Each block, a bank works out per
voice (numpy arrays over the sounding voices, no Python loop) where every partial's frequency,
amplitude and the envelope gain start and end, and a compiled kernel (:mod:`engine.audio.kernels`)
runs the samples. Frequencies and amplitudes move linearly across a block (phase stays continuous,
so neither a detune change nor a gain change clicks); a voice that is stolen or silenced by a panic
fades out over ``fade`` seconds instead of stopping dead.

Subclasses say what the partials are (frequency multipliers and amplitudes per voice) and what the
envelope is; this class does the rest, one oscillator per partial. A subclass may also render
whole blocks itself: the first piece's overtone voices (scenes/ldd/sound), which sound under
every note, do all of it in one compiled call, since at small blocks the dozens of numpy steps
here cost the audio callback more than the samples do.
"""

from __future__ import annotations

import numpy as np

from engine.audio import kernels

TWO_PI = 2.0 * np.pi


class VoiceBank:
    """Voices keyed by a voice id (by convention ``channel * 128 + note``).

    Args:
        sample_rate: Hz.
        block_size: frames per block.
        partials: sinusoids per voice.
        polyphony: voices sounding at once before stealing; a few more slots hold stolen voices
            while they fade.
        spread: stereo width by pitch, 0..1.
        fade: seconds a stolen or panicked voice takes to fade out.
    """

    def __init__(self, sample_rate: int, block_size: int, partials: int, polyphony: int,
                 spread: float = 0.8, fade: float = 0.005) -> None:
        self.sample_rate = sample_rate
        self.block_size = block_size
        self.partials = partials
        self.polyphony = polyphony
        # As many spare slots as voices: a whole new chord can steal a whole old one, every stolen
        # voice still fading out in a slot of its own.
        self.slots = slots = 2 * polyphony + 8
        self.spread = spread
        self.fade_samples = max(1.0, fade * sample_rate)
        self.active = np.zeros(slots, bool)
        self.voice_id = np.full(slots, -1, np.int64)
        self.order = np.zeros(slots, np.int64)  # note-on sequence number: lower = older
        self.age = np.zeros(slots, np.int64)  # frames since note-on
        self.released = np.zeros(slots, bool)
        self.release_age = np.zeros(slots, np.int64)  # frames since release began
        self.release_level = np.zeros(slots)  # envelope level when release began
        self.fading = np.zeros(slots, bool)
        self.fade_age = np.zeros(slots, np.int64)
        self.gain = np.zeros(slots)  # linear amplitude at envelope 1
        self.pan_left = np.zeros(slots)
        self.pan_right = np.zeros(slots)
        self.fundamental = np.zeros(slots)  # Hz
        self.phase = np.zeros((slots, partials))  # radians in [0, 2 pi): a column per partial here
        # (the first piece's overtone voices use theirs as their own kernel says:
        # scenes/ldd/sound/kernels.py)
        self._sequence = 0

    # Subclass hooks (arrays indexed by the sounding slots ``idx``).
    def _multipliers(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Partial frequency / fundamental at the start and end of the block, shape (V, K)."""
        raise NotImplementedError

    def _amplitudes(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Partial amplitudes at the start and end of the block, shape (V, K)."""
        raise NotImplementedError

    def _envelope(self, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Envelope level 0..1 at ``t`` frames since note-on (shape (V,), one time per voice)."""
        raise NotImplementedError

    def _finished(self, idx: np.ndarray) -> np.ndarray:
        """Which of the voices (after this block's ages advanced) have fallen silent."""
        raise NotImplementedError

    def _started(self, slot: int, note: int, velocity: float) -> None:
        """Set per-voice timbre state at note-on."""

    def _block_done(self, idx: np.ndarray) -> None:
        """Advance per-voice timbre state by one block."""

    # Notes.
    def note_on(self, voice: int, note: int, velocity: float, fundamental: float) -> None:
        """Start a voice; an id already sounding is faded out first (a repeated note)."""
        for slot in np.flatnonzero(self.active & (self.voice_id == voice) & ~self.fading):
            self._fade_out(int(slot))
        live = self.active & ~self.fading
        if np.count_nonzero(live) >= self.polyphony:
            self._fade_out(self._victim(live))
        slot = self._free_slot()
        self._sequence += 1
        self.active[slot] = True
        self.voice_id[slot] = voice
        self.order[slot] = self._sequence
        self.age[slot] = 0
        self.released[slot] = False
        self.release_age[slot] = 0
        self.release_level[slot] = 0.0
        self.fading[slot] = False
        self.fade_age[slot] = 0
        self.fundamental[slot] = fundamental
        self.phase[slot] = 0.0
        pan = np.clip(self.spread * (note - 64) / 64.0, -1.0, 1.0)
        angle = (pan + 1.0) * np.pi / 4.0  # equal power: centre = 1/sqrt(2) on both sides
        self.pan_left[slot] = np.cos(angle)
        self.pan_right[slot] = np.sin(angle)
        self._started(slot, note, velocity)

    def note_off(self, voice: int) -> None:
        slots = np.flatnonzero(self.active & (self.voice_id == voice) & ~self.released)
        self.release(slots)

    def release(self, slots: np.ndarray) -> None:
        """Begin the release of these slots from the envelope level they are at now."""
        if slots.size == 0:
            return
        level = self._envelope(slots, self.age[slots].astype(np.float64))
        self.release_level[slots] = level
        self.release_age[slots] = 0
        self.released[slots] = True

    def release_all(self) -> None:
        self.release(np.flatnonzero(self.active & ~self.released))

    def fade_all(self) -> None:
        for slot in np.flatnonzero(self.active & ~self.fading):
            self._fade_out(int(slot))

    def sounding(self) -> int:
        return int(np.count_nonzero(self.active & ~self.fading))

    def _fade_out(self, slot: int) -> None:
        self.fading[slot] = True
        self.fade_age[slot] = 0

    def _victim(self, live: np.ndarray) -> int:
        """The voice to steal: the oldest released one, else the oldest."""
        pool = live & self.released
        if not pool.any():
            pool = live
        candidates = np.flatnonzero(pool)
        return int(candidates[np.argmin(self.order[candidates])])

    def _free_slot(self) -> int:
        free = np.flatnonzero(~self.active)
        if free.size:
            return int(free[0])
        # Every slot busy, most with fading voices (notes hammered faster than fades end). A voice
        # struck and stolen within this block was never heard: reuse it; else the fade closest to
        # silence.
        fading = np.flatnonzero(self.fading)
        unheard = fading[self.age[fading] == 0]
        if unheard.size:
            return int(unheard[0])
        return int(fading[np.argmax(self.fade_age[fading])])

    # Rendering.
    def render(self, out_left: np.ndarray, out_right: np.ndarray) -> None:
        """Add one block of every sounding voice into the two float64 channel buffers."""
        idx = np.flatnonzero(self.active)
        if idx.size == 0:
            return
        n = self.block_size
        m0, m1 = self._multipliers(idx)
        scale = TWO_PI / self.sample_rate
        w0 = self.fundamental[idx, None] * m0 * scale  # radians per frame, (V, K)
        w1 = self.fundamental[idx, None] * m1 * scale
        a0, a1 = self._amplitudes(idx)
        nyquist = 0.45 * TWO_PI  # partials above 0.45 * sample rate are silent (no aliasing)
        audible = np.maximum(w0, w1) < nyquist
        a0 = np.where(audible, a0, 0.0)
        a1 = np.where(audible, a1, 0.0)
        # The envelope is evaluated at the block's two ends and drawn as a line between them
        # (5 ms at 256 frames: smooth to the ear).
        age = self.age[idx].astype(np.float64)
        g0 = self._envelope(idx, age) * self.gain[idx]
        g1 = self._envelope(idx, age + n) * self.gain[idx]
        fading = self.fading[idx]
        if fading.any():
            since = self.fade_age[idx]
            g0 = np.where(fading, g0 * np.clip(1.0 - since / self.fade_samples, 0.0, 1.0), g0)
            g1 = np.where(fading, g1 * np.clip(1.0 - (since + n) / self.fade_samples, 0.0, 1.0), g1)
        left, right = self.pan_left[idx], self.pan_right[idx]
        phase = self.phase[idx]
        kernels.partial_voices(out_left, out_right, phase, w0, w1, a0, a1,
                               left * g0, left * g1, right * g0, right * g1)
        self.phase[idx] = np.mod(phase + w0 * n + (w1 - w0) * (n + 1) / 2.0, TWO_PI)
        self._block_done(idx)
        self.age[idx] += n
        self.release_age[idx] += np.where(self.released[idx], n, 0)
        self.fade_age[idx] += np.where(fading, n, 0)
        done = self._finished(idx) | (fading & (self.fade_age[idx] >= self.fade_samples))
        self.active[idx[done]] = False
        self.voice_id[idx[done]] = -1
