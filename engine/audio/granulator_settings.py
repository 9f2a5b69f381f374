"""The granulator's settings: its table in the setlist (:class:`GranulatorSettings`), the range
of every parameter (``LIMITS``) and the parameters chosen by name (``CHOICES``), so a cue's
``sound.settings`` or a scene's ``set()`` may say ``window = "hann"`` as the setlist does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.audio.grain_schedulers import MODES, TIMINGS
from engine.audio.granular_kernels import WINDOWS

MAX_SALAD_TABLES = 64

# What the settings and a SET allow for each parameter (a SET outside is clamped).
LIMITS = {
    "gain_db": (-120.0, 24.0), "mode": (0, len(MODES) - 1), "table": (-1, 1 << 30),
    "density": (0.1, 20000.0), "timing": (0, len(TIMINGS) - 1), "jitter": (0.0, 1.0),
    "tempo": (1.0, 1000.0), "division": (1, 64), "position": (0.0, 1.0),
    "position_deviation": (0.0, 1.0), "scan": (-100.0, 100.0), "duration": (0.001, 10.0),
    "duration_deviation": (0.0, 1.0), "pitch": (-48.0, 48.0), "pitch_deviation": (0.0, 48.0),
    "pan": (-1.0, 1.0), "pan_deviation": (0.0, 1.0), "window": (0, len(WINDOWS) - 1),
    "window_shape": (0.0, 1.0), "pulse_length": (0.001, 10.0), "salad_silence": (0.0, 1.0),
    "salad_harmonic": (0.0, 1.0), "salad_shortest": (0.0, 60.0), "salad_longest": (0.001, 60.0),
    "salad_scale": (0.01, 100.0), "salad_ratio_low": (0.0625, 16.0),
    "salad_ratio_high": (0.0625, 16.0), "root": (0, 127),
}
# Parameters SET rounds to a whole number (indices, slots, counts, notes).
WHOLE = frozenset({"mode", "table", "timing", "division", "window", "root"})
# Parameters set by name: SET's value is the name's index in its tuple.
CHOICES = {"mode": MODES, "timing": TIMINGS, "window": WINDOWS}
# Settings that name tables of the pool (a name, or a list of names), resolved to slots when the
# rack is built.
TABLE_SETTINGS = ("table", "tables", "harmonic_tables")


def _range(name: str, default, description: str):
    low, high = LIMITS[name]
    return Field(default, ge=low, le=high, description=description)


class GranulatorSettings(BaseModel):
    """A granulator's table in the setlist (``[sound.instruments.NAME]``, ``kind = "granulator"``).

    Engine (fixed for the show):
        max_grains: grain slots (default 2048); a grain beyond them is dropped and counted.
        polyphony: clouds at once (default 16); one more stops the oldest cloud spawning.
        seed: the random stream's seed (default 0): same seed, same commands, same samples.
        velocity_sensitivity: 0 = every note at full level, 1 = level follows velocity squared
            (default 1).
        tables: names of the pool tables the salad picks from, e.g. ``["drums", "voice"]``
            (default []: the ``table`` parameter); resolved to slots when the rack is built.
        harmonic_tables: per entry of ``tables``, the name of its harmonic part, e.g.
            ``["drums.harmonic", ""]`` ("" = none; a sample with ``hpss = true`` gives
            NAME.harmonic) (default []: none).

    Parameters (SET by index in this order; see ``GranulatorInstrument.parameters``):
        gain_db: dB (default 0), ramped over a block.
        mode: "cloud", "hold", "pulse" or "salad" (default "cloud"; SET 0..3).
        table: the table clouds, hold and pulse read, by name in the setlist (a pool slot in a
            SET) (default -1 = none: silent).
        density: grains per second in a cloud (default 20).
        timing: "async" (each onset at a random place in its period, by ``jitter``), "sync"
            (every 1 / density seconds) or "tempo" (every step of ``tempo``) (default "async";
            SET 0..2).
        jitter: 0..1, how much of its period an async onset may move (default 1).
        tempo: beats per minute (default 120); a step is 60 / (tempo x division) seconds.
        division: steps per beat (default 1).
        position: where grains start, 0..1 of the table (default 0).
        position_deviation: random +- around it, 0..1 of the table (default 0); positions wrap.
        scan: table lengths per second the position moves (default 0 = frozen; may be negative).
        duration: a cloud grain's length, seconds (default 0.1).
        duration_deviation: random +- fraction of the duration, 0..1 (default 0).
        pitch: transposition, semitones (default 0).
        pitch_deviation: random +- semitones per grain (default 0).
        pan: -1 (left) .. 1 (right) (default 0).
        pan_deviation: random +- around it (default 0).
        window: "hann", "tukey", "expodec" or "table" (default "hann"; SET 0..3).
        window_shape: tukey's taper, 0..1 of the grain (default 0.5; 1 = Hann).
        pulse_length: a pulse grain's length, seconds (default 0.05).
        salad_silence: probability a salad grain is silenced, per channel (default 0.05).
        salad_harmonic: probability a salad step plays its table's harmonic part (default 0.15).
        salad_shortest: a salad grain's shortest length, seconds, unless half the table is
            longer (default 0.5).
        salad_longest: a salad grain's longest length at scale 1, seconds (default 1.5).
        salad_scale: the talk's max_length: salad grains are at most salad_longest x this long
            (default 1).
        salad_ratio_low, salad_ratio_high: the range of a salad step's pitch ratio, drawn
            log-uniformly (defaults 0.5 and 2).
        root: the MIDI note at which a table sounds at its own pitch (default 60).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_grains: int = Field(2048, ge=16, le=65536, description="grain slots")
    polyphony: int = Field(16, ge=1, le=128, description="clouds")
    seed: int = Field(0, ge=0, le=2**63 - 1)
    velocity_sensitivity: float = Field(1.0, ge=0.0, le=1.0)
    tables: list[str | int] = Field(default_factory=list, max_length=MAX_SALAD_TABLES)
    harmonic_tables: list[str | int] = Field(default_factory=list, max_length=MAX_SALAD_TABLES)

    gain_db: float = _range("gain_db", 0.0, "dB")
    mode: Literal["cloud", "hold", "pulse", "salad"] = "cloud"
    table: int = _range("table", -1, "pool slot, -1 = none")
    density: float = _range("density", 20.0, "grains per second")
    timing: Literal["async", "sync", "tempo"] = "async"
    jitter: float = _range("jitter", 1.0, "fraction of a period")
    tempo: float = _range("tempo", 120.0, "beats per minute")
    division: int = _range("division", 1, "steps per beat")
    position: float = _range("position", 0.0, "fraction of the table")
    position_deviation: float = _range("position_deviation", 0.0, "fraction of the table")
    scan: float = _range("scan", 0.0, "table lengths per second")
    duration: float = _range("duration", 0.1, "seconds")
    duration_deviation: float = _range("duration_deviation", 0.0, "fraction of the duration")
    pitch: float = _range("pitch", 0.0, "semitones")
    pitch_deviation: float = _range("pitch_deviation", 0.0, "semitones")
    pan: float = _range("pan", 0.0, "-1 left .. 1 right")
    pan_deviation: float = _range("pan_deviation", 0.0, "pan units")
    window: Literal["hann", "tukey", "expodec", "table"] = "hann"
    window_shape: float = _range("window_shape", 0.5, "fraction of the grain")
    pulse_length: float = _range("pulse_length", 0.05, "seconds")
    salad_silence: float = _range("salad_silence", 0.05, "probability")
    salad_harmonic: float = _range("salad_harmonic", 0.15, "probability")
    salad_shortest: float = _range("salad_shortest", 0.5, "seconds")
    salad_longest: float = _range("salad_longest", 1.5, "seconds")
    salad_scale: float = _range("salad_scale", 1.0, "factor")
    salad_ratio_low: float = _range("salad_ratio_low", 0.5, "pitch ratio")
    salad_ratio_high: float = _range("salad_ratio_high", 2.0, "pitch ratio")
    root: int = _range("root", 60, "MIDI note")

    @model_validator(mode="before")
    @classmethod
    def _choices_by_index(cls, data):
        """A choice given as its index (as a SET sends it) is its name."""
        if isinstance(data, dict):
            data = dict(data)
            for name, choices in CHOICES.items():
                value = data.get(name)
                if isinstance(value, (int, float)) and not isinstance(value, bool) \
                        and value == int(value) and 0 <= value < len(choices):
                    data[name] = choices[int(value)]
        return data

    @model_validator(mode="after")
    def _harmonics_follow_tables(self) -> GranulatorSettings:
        if len(self.harmonic_tables) > len(self.tables):
            raise ValueError(f"harmonic_tables has {len(self.harmonic_tables)} entries for "
                             f"{len(self.tables)} tables: give at most one per table ("" = none)")
        return self
