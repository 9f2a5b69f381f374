"""The overtone voice of "Losses, Dissonances, and Distortions": a harmonic tone whose partials
k >= 2 are detuned by the learner's loss, so the sound comes into tune as learning converges.

Partial k sounds at ``k * f * (1 + d)`` (the fundamental, k = 1, never moves), with amplitude
``k ** -rolloff`` normalised so a voice peaks at 1 before its gain. The detune d of each voice
glides to the last value sent for it (one-pole, ``detune_glide`` seconds), linearly within blocks.
"""

from __future__ import annotations

import numpy as np

from engine.audio import kernels
from engine.audio.config import MixerConfig
from engine.audio.voices import TWO_PI, VoiceBank, curve_shape


class OvertoneVoices(VoiceBank):
    def __init__(self, config: MixerConfig) -> None:
        super().__init__(config.sample_rate, config.block_size, config.partials, config.polyphony,
                         spread=config.spread)
        self.config = config
        k = np.arange(1, config.partials + 1, dtype=np.float64)
        self.harmonics = k
        weights = k ** -config.rolloff
        self.partial_weights = weights / weights.sum()
        self.detuned = k >= 2  # which partials the detune moves
        self.detune = np.zeros(self.slots)
        self.detune_target = np.zeros(self.slots)
        self.release_frames = np.zeros(self.slots)
        self.attack_frames = config.attack * config.sample_rate
        self.decay_frames = config.decay * config.sample_rate
        glide = config.detune_glide * config.sample_rate
        self.glide_step = 1.0 if glide <= 0 else 1.0 - float(np.exp(-config.block_size / glide))
        self.default_detune = 0.0
        self._next_detune = np.zeros(self.slots)
        self.percussive = config.envelope == "percussive"
        self.sustain_pedal = False
        self._pedal_held: set[int] = set()  # voice ids whose key is up but the pedal holds

    def set_detune(self, value: float, voice: int | None = None) -> None:
        """Glide the voice ``voice`` (every sounding voice when None) to detune ``value``; notes
        started later begin at this value (the last detune), as the original's detune bus."""
        if voice is None:
            self.detune_target[self.active] = value
        else:
            self.detune_target[self.active & (self.voice_id == voice)] = value
        self.default_detune = value

    def note_on(self, voice: int, note: int, velocity: float, fundamental: float) -> None:
        self._pedal_held.discard(voice)  # struck again under the pedal: the new note is held
        super().note_on(voice, note, velocity, fundamental)

    def _started(self, slot: int, note: int, velocity: float) -> None:
        config = self.config
        self.detune[slot] = self.detune_target[slot] = self.default_detune
        self.release_frames[slot] = config.release_for(note) * config.sample_rate
        sensitivity = config.velocity_sensitivity
        self.gain[slot] = config.level * (1.0 - sensitivity + sensitivity * velocity ** 2)

    def _multipliers(self, idx):
        d0 = self.detune[idx]
        d1 = d0 + (self.detune_target[idx] - d0) * self.glide_step
        self._next_detune[idx] = d1
        m0 = np.where(self.detuned, self.harmonics * (1.0 + d0[:, None]), self.harmonics)
        m1 = np.where(self.detuned, self.harmonics * (1.0 + d1[:, None]), self.harmonics)
        return m0, m1

    def _amplitudes(self, idx):
        weights = np.broadcast_to(self.partial_weights, (idx.size, self.partials))
        if not self.config.amplitude_coupling:
            return weights, weights
        # The original: amplitude 2 - (1 + d) on the detuned partials.
        d0 = self.detune[idx, None]
        d1 = self._next_detune[idx, None]
        a0 = np.where(self.detuned, weights * np.clip(1.0 - d0, 0.0, 2.0), weights)
        a1 = np.where(self.detuned, weights * np.clip(1.0 - d1, 0.0, 2.0), weights)
        return a0, a1

    def _envelope(self, idx, t):
        curve = self.config.curve
        attack = self.attack_frames
        rising = curve_shape(t / attack, curve)
        if self.percussive:
            release = self.release_frames[idx]
            falling = 1.0 - curve_shape((t - attack) / release, curve)
            return np.where(t < attack, rising, falling)
        sustain = self.config.sustain
        decaying = 1.0 + (sustain - 1.0) * curve_shape((t - attack) / self.decay_frames, curve)
        held = np.where(t < attack, rising, decaying)
        released = self.released[idx]
        if not released.any():
            return held
        since = t - self.age[idx] + self.release_age[idx]
        fall = self.release_level[idx] * (1.0 - curve_shape(since / self.release_frames[idx], curve))
        return np.where(released, fall, held)

    def _mix(self, idx, w0, w1, a0, a1, gains, out_left, out_right):
        """Partials k >= 2 run at k * f * (1 + d): each is k times one detuned base phase, so the
        kernel derives them all from one base phasor (Chebyshev). Column 0 of ``phase`` holds the
        fundamental's phase, column 1 the detuned base's."""
        n = self.block_size
        phase = self.phase[idx]
        fundamental = np.ascontiguousarray(w0[:, 0])  # the fundamental never glides
        if self.partials == 1:
            base = start = end = np.zeros(idx.size)
        else:
            base = np.ascontiguousarray(phase[:, 1])
            start, end = w0[:, 1] / 2.0, w1[:, 1] / 2.0  # the detuned base, f (1 + d)
        kernels.chebyshev_voices(out_left, out_right, np.ascontiguousarray(phase[:, 0]), fundamental,
                                 base, start, end, a0, a1, *gains)
        self.phase[idx, 0] = np.mod(phase[:, 0] + fundamental * n, TWO_PI)
        if self.partials > 1:
            self.phase[idx, 1] = np.mod(base + start * n + (end - start) * (n + 1) / 2.0, TWO_PI)

    def _block_done(self, idx):
        self.detune[idx] = self._next_detune[idx]

    def _finished(self, idx):
        if self.percussive:
            return self.age[idx] >= self.attack_frames + self.release_frames[idx]
        return self.released[idx] & (self.release_age[idx] >= self.release_frames[idx])

    def note_off(self, voice: int) -> None:
        # A percussive note rings out whatever the key does (Env.perc); marking it released only
        # makes it the first to be stolen.
        if self.percussive:
            self.released[self.active & (self.voice_id == voice)] = True
            return
        if self.sustain_pedal:
            self._pedal_held.add(voice)
            return
        super().note_off(voice)

    def set_sustain(self, down: bool) -> None:
        """The sustain pedal holds ADSR voices: note-offs under it wait for the pedal to lift."""
        self.sustain_pedal = down
        if not down:
            for voice in sorted(self._pedal_held):
                super().note_off(voice)
            self._pedal_held.clear()

    def release_all(self) -> None:
        self._pedal_held.clear()
        if self.percussive:
            self.released[self.active] = True
            return
        super().release_all()
