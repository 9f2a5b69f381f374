"""The overtone instrument of "Losses, Dissonances, and Distortions" (kind ``overtones``): every
note a harmonic tone whose partials k >= 2 the learners detune
(:class:`scenes.ldd.sound.voices.OvertoneVoices`).

The live audio process imports this module by name (the rack's ``modules``; the
``showrunner.instruments`` entry point finds it by kind), so it imports nothing of the piece's
scenes and no jax: only the engine's audio side and this package.
"""

from __future__ import annotations

import numpy as np

from engine.audio import command_ring as cmd
from engine.audio.instrument import Host
from engine.audio.instruments.bank import VoiceBankInstrument
from scenes.ldd.sound.settings import OvertoneSettings
from scenes.ldd.sound.voices import OvertoneVoices


class OvertoneInstrument(VoiceBankInstrument):
    kind = "overtones"
    Settings = OvertoneSettings

    def __init__(self, settings: OvertoneSettings, host: Host) -> None:
        super().__init__(settings, host)
        self.voices = OvertoneVoices(settings, host.sample_rate, host.block_size)

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
