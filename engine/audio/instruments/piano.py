"""A simple additive piano (:class:`engine.audio.piano.PianoVoices`), for rehearsals and renders
with no acoustic piano in the room."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from engine.audio.instrument import Host, Instrument
from engine.audio.piano import PianoVoices


class PianoSettings(BaseModel):
    """polyphony: voices at once (the oldest released is stolen beyond it); spread: stereo width
    by pitch 0..1; level: peak amplitude of one voice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    polyphony: int = Field(64, ge=1, le=512)
    spread: float = Field(0.8, ge=0.0, le=1.0)
    level: float = Field(0.5, gt=0.0, le=1.0)


class PianoInstrument(Instrument):
    kind = "piano"
    Settings = PianoSettings

    def __init__(self, settings: PianoSettings, host: Host) -> None:
        super().__init__(settings, host)
        self.voices = PianoVoices(host.sample_rate, host.block_size, settings.polyphony,
                                  level=settings.level, spread=settings.spread)

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

    def warm_up(self):
        left, right = np.zeros(self.host.block_size), np.zeros(self.host.block_size)
        self.note_on(0, 60, 0.8)
        self.render(left, right)
        self.note_off(0, 60)
        self.render(left, right)
