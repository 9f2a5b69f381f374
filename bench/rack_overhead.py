"""Benchmark: what the rack of instruments costs over the overtone mixer it replaced.

The same load as the mixer benchmark (:mod:`bench.mixer_load`: every voice held by an ADSR
envelope, the detune of all voices changed every few blocks) is rendered block by block through
:class:`engine.audio.rack.Rack` (``overtone_rack``: the legacy rack a setlist without a [sound]
table gets) and through :class:`PreRackMixer`, a copy of the pre-rack ``OvertoneMixer`` kept here as
the baseline. Both are built on the same voice banks and limiter, and render the same samples
(checked before timing). Rounds alternate which goes first; each round's ratio is the rack's
median block time over the baseline's, and the figure is the median of the rounds' ratios.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench.mixer_load import BLOCK, DETUNE_EVERY, LOWEST, SAMPLE_RATE, SPAN, WARM_UP, timed_blocks
from bench.result import BenchResult, Figure
from engine.audio import command_ring as cmd
from engine.audio.config import MixerConfig
from engine.audio.limiter import SoftLimiter
from engine.audio.piano import PianoVoices
from engine.audio.rack import overtone_rack
from engine.audio.tuning import cent_offsets, frequencies_from_offsets
from scenes.ldd.sound.settings import OvertoneSettings
from scenes.ldd.sound.voices import OvertoneVoices

CELLS = ((16, 4, False), (64, 8, False), (128, 16, False), (64, 8, True))  # voices, partials, piano
ROUNDS = 11
BLOCKS = 1500  # timed blocks per implementation, cell and round (8 s of audio)
CHECK_BLOCKS = 400  # blocks compared sample for sample before timing
GOAL_RATIO = 1.05


# --- The pre-rack baseline ----------------------------------------------------------------------
# engine/audio/mixer.py as of commit 638998c (the last commit before the rack), copied unchanged
# but for BUSES, which engine.audio.command_ring no longer defines, and for the overtone voices'
# settings, which now live in the first piece (scenes/ldd/sound) rather than in MixerConfig. Not
# engine code: only the benchmark uses it, as the peer the rack is measured against.

BUSES = ("master", "overtones", "piano")


def db_to_gain(db: float) -> float:
    return 0.0 if db <= -120.0 else float(10.0 ** (db / 20.0))


class PreRackMixer:
    """The pre-rack ``OvertoneMixer``. Args: config (the synth settings); piano: mix the additive
    piano under the overtones."""

    def __init__(self, config: MixerConfig, piano: bool = False) -> None:
        self.config = config
        self.sample_rate = config.sample_rate
        self.block_size = n = config.block_size
        self.tuning_offsets = cent_offsets(config.tuning, config.tuning_root)
        self.frequencies = frequencies_from_offsets(self.tuning_offsets, config.reference_hz,
                                                    config.reference_note)
        voice = OvertoneSettings(**config.instrument_settings())  # [audio]'s overtone keys
        self.overtones = OvertoneVoices(voice, config.sample_rate, n)
        self.piano = PianoVoices(config.sample_rate, n, voice.polyphony, spread=voice.spread) \
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

# --- end of the pre-rack baseline ---------------------------------------------------------------


def _config(voices: int, partials: int) -> MixerConfig:
    return MixerConfig(sample_rate=SAMPLE_RATE, block_size=BLOCK, polyphony=voices,
                       partials=partials, envelope="adsr")


def _loaded(build: Callable[[], object], voices: int):
    """A mixer (rack or baseline) with ``voices`` held notes, as bench.mixer_load loads it."""
    mixer = build()
    for index in range(voices):
        note, channel = LOWEST + index % SPAN, index // SPAN
        mixer.apply(cmd.NOTE_ON, cmd.voice_id(note, channel), note, 100.0)
    return mixer


def _builders(voices: int, partials: int, piano: bool) -> dict[str, Callable[[], object]]:
    config = _config(voices, partials)
    return {"rack": lambda: _loaded(lambda: overtone_rack(config, piano), voices),
            "baseline": lambda: _loaded(lambda: PreRackMixer(config, piano), voices)}


def _same_samples(builders: dict[str, Callable[[], object]], detunes: np.ndarray) -> bool:
    """The rack and the baseline give identical blocks for the benchmark's command stream."""
    rack, baseline = builders["rack"](), builders["baseline"]()
    for number in range(CHECK_BLOCKS):
        for mixer in (rack, baseline):
            if number % DETUNE_EVERY == 0:
                mixer.apply(cmd.DETUNE, cmd.ALL_VOICES, -1, float(detunes[number]))
        if not np.array_equal(rack.render(), baseline.render()):
            return False
    return True


def _median_block(mixer, detunes: np.ndarray) -> float:
    """Median seconds of one block (detune command when due, plus render) over BLOCKS blocks."""
    return float(np.median(timed_blocks(mixer, detunes, BLOCKS)))


def _label(voices: int, partials: int, piano: bool) -> str:
    return f"{voices} voices x {partials} partials{' + piano' if piano else ''}"


def run() -> BenchResult:
    period = BLOCK / SAMPLE_RATE
    result = BenchResult(
        key="rack",
        title="Rack overhead against the pre-rack mixer",
        method=(f"The mixer benchmark's load ({SAMPLE_RATE} Hz, {BLOCK}-frame blocks, every voice "
                "held by an ADSR envelope, velocity 100, notes C2 upwards on distinct voice ids, a "
                f"`DETUNE` for all voices, a random value in +-0.05, every {DETUNE_EVERY} blocks) is "
                "rendered in the benchmark process, with no device, through `overtone_rack` (the "
                "rack a setlist without a [sound] table gets: the overtone instrument on its bus, "
                "and the piano instrument on its own when asked) and through `PreRackMixer`, a copy "
                "of the pre-rack `OvertoneMixer` (engine/audio/mixer.py at 638998c) kept in "
                "bench/rack_overhead.py as the baseline, on the same `OvertoneVoices`, "
                "`PianoVoices` and `SoftLimiter`. Before timing, both render "
                f"{CHECK_BLOCKS} blocks of the same command stream and must be equal sample for "
                f"sample. Then {ROUNDS} rounds, each building both afresh and timing {BLOCKS} "
                f"blocks of each (after {WARM_UP} untimed ones) with `time.perf_counter()` "
                "(detune command when due, plus `render()`), the rack first in even rounds and the "
                "baseline first in odd ones, all cells of a round in turn. A round's ratio is the "
                "rack's median block time over the baseline's; the figure is the median of the "
                "rounds' ratios. Cells: " + ", ".join(_label(*cell) for cell in CELLS) + "."),
        goal=(f"Goal: the rack / pre-rack ratio <= {GOAL_RATIO:g} in every cell: routing commands "
              "through instrument slots and buses costs the show's sound at most 5 %."))
    rng = np.random.default_rng(0)
    detunes = rng.uniform(-0.05, 0.05, size=max(WARM_UP + BLOCKS, CHECK_BLOCKS))
    builders = {cell: _builders(*cell) for cell in CELLS}
    for cell, pair in builders.items():
        if not _same_samples(pair, detunes):
            raise RuntimeError(f"{_label(*cell)}: the rack and the pre-rack baseline rendered "
                               "different samples; the baseline is not a faithful peer")
    ratios = {cell: [] for cell in CELLS}
    medians = {cell: {"rack": [], "baseline": []} for cell in CELLS}
    for number in range(ROUNDS):
        order = ("rack", "baseline") if number % 2 == 0 else ("baseline", "rack")
        for cell in CELLS:
            for name in order:
                medians[cell][name].append(_median_block(builders[cell][name](), detunes))
            ratios[cell].append(medians[cell]["rack"][-1] / medians[cell]["baseline"][-1])
    for cell in CELLS:
        label = _label(*cell)
        ratio = float(np.median(ratios[cell]))
        rack_s = float(np.median(medians[cell]["rack"]))
        base_s = float(np.median(medians[cell]["baseline"]))
        differences = np.array(medians[cell]["rack"]) - np.array(medians[cell]["baseline"])
        extra = float(np.median(differences))
        result.figures += [
            Figure(f"{label}: rack / pre-rack, median of {ROUNDS} rounds", ratio, "x",
                   f"<= {GOAL_RATIO:g}", bool(ratio <= GOAL_RATIO)),
            Figure(f"{label}: rack, median block", 1e6 * rack_s, "us"),
            Figure(f"{label}: pre-rack, median block", 1e6 * base_s, "us"),
            Figure(f"{label}: rack - pre-rack per block, median of {ROUNDS} rounds", 1e6 * extra,
                   "us"),
        ]
        result.notes.append(
            f"{label}: round ratios in order: {', '.join(f'{r:.3f}' for r in ratios[cell])}; "
            f"median block {100 * rack_s / period:.2f} % (rack) and {100 * base_s / period:.2f} % "
            f"(pre-rack) of the {1000 * period:.2f} ms period; the difference is "
            f"{100 * extra / period:.3f} % of the period.")
    return result
