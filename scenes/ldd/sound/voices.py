"""The overtone voice of "Losses, Dissonances, and Distortions": a harmonic tone whose partials
k >= 2 are detuned by the learner's loss, so the sound comes into tune as learning converges.

Partial k sounds at ``k * f * (1 + d)`` (the fundamental, k = 1, never moves), with amplitude
``k ** -rolloff`` normalised so a voice peaks at 1 before its gain. The detune d of each voice
glides to the last value sent for it (one-pole, ``detune_glide`` seconds), linearly within blocks.
"""

from __future__ import annotations

import numpy as np

from engine.audio.voices import VoiceBank
from scenes.ldd.sound import kernels
from scenes.ldd.sound.settings import OvertoneSettings


class OvertoneVoices(VoiceBank):
    """Args: config: the voice's settings; sample_rate: Hz; block_size: frames per block."""

    def __init__(self, config: OvertoneSettings, sample_rate: int, block_size: int) -> None:
        super().__init__(sample_rate, block_size, config.partials, config.polyphony,
                         spread=config.spread)
        self.config = config
        k = np.arange(1, config.partials + 1, dtype=np.float64)
        self.harmonics = k
        weights = k ** -config.rolloff
        self.partial_weights = weights / weights.sum()
        self.detune = np.zeros(self.slots)
        self.detune_target = np.zeros(self.slots)
        self.release_frames = np.zeros(self.slots)
        self.attack_frames = config.attack * sample_rate
        self.decay_frames = config.decay * sample_rate
        glide = config.detune_glide * sample_rate
        self.glide_step = 1.0 if glide <= 0 else 1.0 - float(np.exp(-block_size / glide))
        self.default_detune = 0.0
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
        self.release_frames[slot] = config.release_for(note) * self.sample_rate
        sensitivity = config.velocity_sensitivity
        self.gain[slot] = config.level * (1.0 - sensitivity + sensitivity * velocity ** 2)

    def render(self, out_left: np.ndarray, out_right: np.ndarray) -> None:
        """Add one block of every sounding voice into the two float64 channel buffers: the whole
        block, state included, in one compiled call
        (:func:`scenes.ldd.sound.kernels.overtone_block`); the audio callback's cost is then the
        samples, not dozens of small numpy steps."""
        if not self.active.any():
            return
        config = self.config
        kernels.overtone_block(
            out_left, out_right, self.active, self.voice_id, self.fundamental, self.phase,
            self.detune, self.detune_target, self.glide_step, self.harmonics, self.partial_weights,
            config.amplitude_coupling, self.gain, self.pan_left, self.pan_right, self.age,
            self.released, self.release_age, self.release_level, self.release_frames, self.fading,
            self.fade_age, self.fade_samples, self.percussive, self.attack_frames,
            self.decay_frames, config.sustain, config.curve, float(self.sample_rate))

    def _envelope(self, idx, t):
        return kernels.envelope_levels(
            np.asarray(t, np.float64), (t - self.age[idx] + self.release_age[idx]).astype(np.float64),
            self.released[idx], self.release_level[idx], self.release_frames[idx], self.percussive,
            self.attack_frames, self.decay_frames, self.config.sustain, self.config.curve)

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
