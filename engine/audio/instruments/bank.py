"""Instruments that are a bank of additive voices (:class:`engine.audio.voices.VoiceBank`): what
every such instrument does with notes, the pedal and its block, in one place."""

from __future__ import annotations

import numpy as np

from engine.audio.instrument import Instrument


class VoiceBankInstrument(Instrument):
    """An instrument whose sound is ``self.voices``, a voice bank the subclass builds; notes sound
    at the show's tuning."""

    voices = None  # the subclass's VoiceBank

    def note_on(self, voice, note, velocity):
        self.voices.note_on(voice, note, velocity, float(self.host.frequencies[int(note) & 127]))

    def note_off(self, voice, note):
        self.voices.note_off(voice)

    def sustain(self, down):
        self.voices.set_sustain(down)

    def all_notes_off(self):
        self.voices.release_all()

    def panic(self):
        self.voices.fade_all()
        self.voices.set_sustain(False)

    def render(self, left, right):
        self.voices.render(left, right)

    def idle(self):
        return not self.voices.active.any()

    def sounding(self):
        return self.voices.sounding()

    def _warm_up_blocks(self, count: int = 2) -> None:
        left, right = np.zeros(self.host.block_size), np.zeros(self.host.block_size)
        for _ in range(count):
            self.render(left, right)
