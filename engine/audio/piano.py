"""A simple piano under the overtones, for rehearsals and renders with no acoustic piano in the room.

Additive: six slightly inharmonic partials (f_p = p f sqrt(1 + B p^2)) whose amplitudes fall off
with p and rise with velocity (a harder hammer is brighter), each decaying exponentially, faster
for higher partials and higher notes. A 3 ms attack; releasing the key (with the sustain pedal up)
brings the damper down, a 0.1 s decay.
"""

from __future__ import annotations

import numpy as np

from engine.audio.voices import VoiceBank

PARTIALS = 6
INHARMONICITY = 2e-4
ATTACK = 0.003  # seconds
DAMPER = 0.1  # seconds: decay time constant once the damper is down
SILENT = 1e-4  # -80 dB: the voice ends


class PianoVoices(VoiceBank):
    def __init__(self, sample_rate: int, block_size: int, polyphony: int = 64, level: float = 0.5,
                 spread: float = 0.8) -> None:
        super().__init__(sample_rate, block_size, PARTIALS, polyphony, spread=spread)
        p = self._partial_numbers = np.arange(1, PARTIALS + 1, dtype=np.float64)
        self.multipliers = p * np.sqrt(1.0 + INHARMONICITY * p ** 2)
        self.level = level
        self.amplitude = np.zeros((self.slots, PARTIALS))  # per partial, at the block start
        self.decay = np.zeros((self.slots, PARTIALS))  # amplitude factor per block
        self.sustain_pedal = False
        self._held_by_pedal = np.zeros(self.slots, bool)
        self._damper_step = float(np.exp(-block_size / (DAMPER * sample_rate)))
        self._attack_frames = ATTACK * sample_rate

    def _started(self, slot, note, velocity):
        p = self._partial_numbers
        brightness = 0.35 + 0.45 * velocity
        weights = brightness ** (p - 1) / p
        self.amplitude[slot] = weights / weights.sum()
        fundamental = self.fundamental[slot]
        seconds = np.clip(4.0 * (261.6 / fundamental) ** 0.7, 0.4, 14.0)  # bass rings longer
        per_partial = seconds / (1.0 + 0.5 * (p - 1))
        self.decay[slot] = np.exp(-self.block_size / (per_partial * self.sample_rate))
        self.gain[slot] = self.level * (0.15 + 0.85 * velocity ** 1.5)
        self._held_by_pedal[slot] = False

    def note_off(self, voice: int) -> None:
        slots = self.active & (self.voice_id == voice) & ~self.released  # released = damper down
        if self.sustain_pedal:
            self._held_by_pedal |= slots
        else:
            self.released |= slots

    def set_sustain(self, down: bool) -> None:
        self.sustain_pedal = down
        if not down:
            self.released |= self._held_by_pedal & self.active
            self._held_by_pedal[:] = False

    def release_all(self) -> None:
        self.released |= self.active

    def _multipliers(self, idx):
        m = np.broadcast_to(self.multipliers, (idx.size, PARTIALS))
        return m, m

    def _amplitudes(self, idx):
        self._step = self.decay[idx] * np.where(self.released[idx], self._damper_step, 1.0)[:, None]
        a0 = self.amplitude[idx]
        return a0, a0 * self._step

    def _envelope(self, idx, t):
        return np.clip(t / self._attack_frames, 0.0, 1.0)

    def _block_done(self, idx):
        self.amplitude[idx] *= self._step  # this block's decay, from _amplitudes

    def _finished(self, idx):
        return self.amplitude[idx].sum(axis=1) < SILENT
