"""The overtone mixer: every voice bank, bus gains and the limiter, driven by commands.

:meth:`OvertoneMixer.apply` takes one command (see :mod:`engine.audio.commands`);
:meth:`OvertoneMixer.render` produces the next block as interleaved float32 stereo. The live audio
process and the offline renderer call exactly these two methods, so identical command streams
applied at identical block boundaries give bit-identical audio.
"""

from __future__ import annotations

import numpy as np

from engine.audio import commands as cmd
from engine.audio.commands import BUSES
from engine.audio.config import MixerConfig
from engine.audio.limiter import SoftLimiter
from engine.audio.overtones import OvertoneVoices
from engine.audio.piano import PianoVoices
from engine.audio.tuning import cent_offsets, frequencies_from_offsets



def db_to_gain(db: float) -> float:
    return 0.0 if db <= -120.0 else float(10.0 ** (db / 20.0))


class OvertoneMixer:
    """Args: config (the synth settings); piano: mix the additive piano under the overtones."""

    def __init__(self, config: MixerConfig, piano: bool = False) -> None:
        self.config = config
        self.sample_rate = config.sample_rate
        self.block_size = n = config.block_size
        self.tuning_offsets = cent_offsets(config.tuning, config.tuning_root)
        self.frequencies = frequencies_from_offsets(self.tuning_offsets, config.reference_hz,
                                                    config.reference_note)
        self.overtones = OvertoneVoices(config)
        self.piano = PianoVoices(config.sample_rate, n, config.polyphony, spread=config.spread) \
            if piano else None
        self.limiter = SoftLimiter(config.sample_rate, n)
        self.bus_target = {"master": db_to_gain(config.master_gain_db),
                           "overtones": db_to_gain(config.overtone_gain_db),
                           "piano": db_to_gain(config.piano_gain_db)}
        self.bus_gain = dict(self.bus_target)
        self._ramp = np.arange(1, n + 1, dtype=np.float64) / n
        self._overtone_bus = np.zeros((2, n))
        self._piano_bus = np.zeros((2, n))
        self._out = np.zeros((n, 2), np.float32)

    # Commands.
    def apply(self, kind: int, voice: int = 0, note: int = 0, value: float = 0.0) -> None:
        """Carry out one command now (between blocks). Unknown kinds are ignored."""
        if kind == cmd.NOTE_ON:
            velocity = min(1.0, max(0.0, value / 127.0))
            if velocity <= 0.0:
                self.apply(cmd.NOTE_OFF, voice, note)
                return
            frequency = float(self.frequencies[int(note) & 127])
            self.overtones.note_on(voice, note, velocity, frequency)
            if self.piano is not None:
                self.piano.note_on(voice, note, velocity, frequency)
        elif kind == cmd.NOTE_OFF:
            self.overtones.note_off(voice)
            if self.piano is not None:
                self.piano.note_off(voice)
        elif kind == cmd.DETUNE:
            if np.isfinite(value):  # a NaN from a diverging learner never reaches an oscillator
                self.overtones.set_detune(float(np.clip(value, -0.5, 1.0)),
                                          None if voice == cmd.ALL_VOICES else voice)
        elif kind == cmd.GAIN:
            if 0 <= voice < len(BUSES) and np.isfinite(value):
                bus = BUSES[voice]
                self.bus_target[bus] = db_to_gain(min(value, 24.0))
                if bus == "piano" and self.piano is None:  # no bus to ramp: nothing to wait for
                    self.bus_gain[bus] = self.bus_target[bus]
        elif kind == cmd.SUSTAIN:
            if self.piano is not None:
                self.piano.set_sustain(value >= 64)
            self.overtones.set_sustain(value >= 64)
        elif kind == cmd.ALL_NOTES_OFF:
            self.overtones.release_all()
            if self.piano is not None:
                self.piano.release_all()
        elif kind == cmd.TUNE:
            if 0 <= voice < 12 and np.isfinite(value) and abs(value) <= 1200:
                self.tuning_offsets[voice] = float(value)
                self.frequencies = frequencies_from_offsets(
                    self.tuning_offsets, self.config.reference_hz, self.config.reference_note)
        elif kind == cmd.PANIC:
            self.overtones.fade_all()
            self.overtones.set_detune(0.0)
            self.overtones.set_sustain(False)
            if self.piano is not None:
                self.piano.fade_all()
                self.piano.set_sustain(False)

    # Audio.
    def render(self) -> np.ndarray:
        """The next block: a (block_size, 2) float32 array (reused: copy it to keep it)."""
        if self._silent():
            self._out.fill(0.0)
            return self._out
        overtone_bus, piano_bus = self._overtone_bus, self._piano_bus
        overtone_bus.fill(0.0)
        self.overtones.render(overtone_bus[0], overtone_bus[1])
        mix = overtone_bus
        self._scale(mix, "overtones")
        if self.piano is not None:
            piano_bus.fill(0.0)
            self.piano.render(piano_bus[0], piano_bus[1])
            self._scale(piano_bus, "piano")
            mix += piano_bus
        self._scale(mix, "master")
        self.limiter.process(mix)
        self._out[:] = mix.T
        return self._out

    def _silent(self) -> bool:
        """Nothing sounds and nothing is moving: the block is zeros (the idle callback's cost is
        what a show pays between notes)."""
        return (not self.overtones.active.any()
                and (self.piano is None or not self.piano.active.any())
                and self.limiter.gain == 1.0 and self.bus_gain == self.bus_target)

    def _scale(self, bus: np.ndarray, name: str) -> None:
        start, end = self.bus_gain[name], self.bus_target[name]
        if start == end:
            if start != 1.0:
                bus *= start
        else:
            bus *= start + (end - start) * self._ramp
            self.bus_gain[name] = end

    def voices_sounding(self) -> int:
        return self.overtones.sounding()
