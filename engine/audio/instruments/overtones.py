"""The overtone instrument of "Losses, Dissonances, and Distortions": every note a harmonic tone
whose partials k >= 2 the learners detune (:class:`engine.audio.overtones.OvertoneVoices`)."""

from __future__ import annotations

import numpy as np
from pydantic import ConfigDict, create_model

from engine.audio import command_ring as cmd
from engine.audio.config import RACK_FIELDS, MixerConfig
from engine.audio.instrument import Host
from engine.audio.instruments.bank import VoiceBankInstrument
from engine.audio.overtones import OvertoneVoices

# The mixer's settings less those of the rack (rate, block, tuning, bus gains): see MixerConfig.
OvertoneSettings = create_model(
    "OvertoneSettings", __config__=ConfigDict(extra="forbid", frozen=True),
    **{name: (field.annotation, field) for name, field in MixerConfig.model_fields.items()
       if name not in RACK_FIELDS})


class OvertoneInstrument(VoiceBankInstrument):
    kind = "overtones"
    Settings = OvertoneSettings

    def __init__(self, settings, host: Host) -> None:
        super().__init__(settings, host)
        fields = settings.model_dump()
        self.config = MixerConfig(sample_rate=host.sample_rate, block_size=host.block_size, **fields)
        self.voices = OvertoneVoices(self.config)

    def panic(self):
        self.voices.fade_all()
        self.voices.set_detune(0.0)
        self.voices.set_sustain(False)

    def command(self, kind, voice, note, value, a, b, c):
        if kind == cmd.DETUNE and np.isfinite(value):  # a NaN from a diverging learner never sounds
            self.voices.set_detune(float(np.clip(value, -0.5, 1.0)),
                                   None if voice == cmd.ALL_VOICES else voice)

    def warm_up(self):
        self.note_on(0, 60, 0.8)
        self.command(cmd.DETUNE, cmd.ALL_VOICES, 0, 0.01, 0.0, 0.0, 0.0)
        self._warm_up_blocks()
        self.note_off(0, 60)  # an ADSR release computes the level it starts from
        self._warm_up_blocks()
