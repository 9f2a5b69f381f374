"""A simple additive piano (:class:`engine.audio.piano.PianoVoices`), for rehearsals and renders
with no acoustic piano in the room."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from engine.audio.instrument import Host
from engine.audio.instruments.bank import VoiceBankInstrument
from engine.audio.piano import PianoVoices


class PianoSettings(BaseModel):
    """polyphony: voices at once (the oldest released is stolen beyond it); spread: stereo width
    by pitch 0..1; level: peak amplitude of one voice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    polyphony: int = Field(64, ge=1, le=512)
    spread: float = Field(0.8, ge=0.0, le=1.0)
    level: float = Field(0.5, gt=0.0, le=1.0)


class PianoInstrument(VoiceBankInstrument):
    kind = "piano"
    Settings = PianoSettings

    def __init__(self, settings: PianoSettings, host: Host) -> None:
        super().__init__(settings, host)
        self.voices = PianoVoices(host.sample_rate, host.block_size, settings.polyphony,
                                  level=settings.level, spread=settings.spread)

    def warm_up(self):
        self.note_on(0, 60, 0.8)
        self._warm_up_blocks(1)
        self.note_off(0, 60)
        self._warm_up_blocks(1)
