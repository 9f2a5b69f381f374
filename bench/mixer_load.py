"""Benchmark: what the overtone mixer costs per block, as a share of the block's own duration.

The mixer runs here in the benchmark process, with no device: ``Rack.render`` is called
block after block with every voice sounding (ADSR envelopes, held) while the detune of all voices
changes every few blocks, as a learner drives it. The time of one block (the detune command when
one is due, plus ``render``) divided by the block period (256 frames at 48 kHz = 5.33 ms) is the
share of one core the audio process needs for the mixing alone, before PortAudio and the callback.
"""

from __future__ import annotations

import time

import numpy as np

from bench.result import BenchResult, Figure
from engine.audio import command_ring as cmd
from engine.audio.config import MixerConfig
from engine.audio.rack import Rack, overtone_rack

SAMPLE_RATE, BLOCK = 48000, 256
VOICES = (16, 64, 128)
PARTIALS = (4, 8, 16)
BLOCKS = 1500  # timed blocks per cell (8 s of audio)
WARM_UP = 50  # untimed blocks first (first-use costs, detune glides under way)
DETUNE_EVERY = 4  # blocks between detune changes (about every 21 ms: faster than a 60 Hz tick)
GOAL_CELL = (64, 8)
GOAL_PERCENT = 10.0
LOWEST, SPAN = 36, 60  # notes C2..B6, then the next MIDI channel (distinct voice ids)


def _loaded_mixer(voices: int, partials: int) -> Rack:
    config = MixerConfig(sample_rate=SAMPLE_RATE, block_size=BLOCK, polyphony=voices,
                         partials=partials, envelope="adsr")
    mixer = overtone_rack(config)
    for index in range(voices):
        note, channel = LOWEST + index % SPAN, index // SPAN
        mixer.apply(cmd.NOTE_ON, cmd.voice_id(note, channel), note, 100.0)
    return mixer


def timed_blocks(mixer, detunes: np.ndarray, blocks: int = BLOCKS) -> np.ndarray:
    """Seconds of each of ``blocks`` blocks (a detune command every DETUNE_EVERY blocks, then the
    render), after WARM_UP untimed ones; ``detunes`` holds a value for every block."""
    times = np.empty(blocks)
    clock = time.perf_counter
    for number in range(WARM_UP + blocks):
        started = clock()
        if number % DETUNE_EVERY == 0:
            mixer.apply(cmd.DETUNE, cmd.ALL_VOICES, -1, float(detunes[number]))
        mixer.render()
        elapsed = clock() - started
        if number >= WARM_UP:
            times[number - WARM_UP] = elapsed
    return times


def block_times(voices: int, partials: int, blocks: int = BLOCKS, seed: int = 0) -> np.ndarray:
    """Seconds per block (detune command + render) for ``blocks`` blocks with every voice held."""
    mixer = _loaded_mixer(voices, partials)
    detunes = np.random.default_rng(seed).uniform(-0.05, 0.05, size=blocks + WARM_UP)
    times = timed_blocks(mixer, detunes, blocks)
    sounding = mixer.voices_sounding()
    if sounding != voices:
        raise RuntimeError(f"{voices} voices x {partials} partials: only {sounding} still sounding")
    return times


def run() -> BenchResult:
    period_ms = 1000 * BLOCK / SAMPLE_RATE
    result = BenchResult(
        key="mixer",
        title="Overtone mixer compute per block",
        method=(f"`Rack` (the overtone voices' whole block compiled with numba, then bus gains and the limiter in numpy; no piano) is driven in the benchmark process with "
                f"no device, at {SAMPLE_RATE} Hz and {BLOCK} frames per block ({period_ms:.2f} ms). "
                f"For each of {len(VOICES)} x {len(PARTIALS)} cells (voices x partials per voice) "
                "that many note-ons (velocity 100, notes C2 upwards on distinct voice ids) start "
                "voices with `envelope = \"adsr\"`, so every voice is held and sounding for the whole "
                f"cell (checked at the end); a `DETUNE` command for all voices, a random value in "
                f"+-0.05, is applied every {DETUNE_EVERY} blocks, so the partials are always gliding "
                f"(the costlier render path). After {WARM_UP} untimed blocks, {BLOCKS} blocks are timed "
                "one by one with `time.perf_counter()` (detune command, when due, plus `render()`); "
                "each time is divided by the block period. Reported: the median and p99 of that "
                "share per cell. It is the mixing alone: the audio process adds the PortAudio "
                "callback, the command ring and the health report on top (see the soak benchmark's "
                "callback load). The machine runs other work, so p99 includes preemption."),
        goal=(f"Goal: median <= {GOAL_PERCENT:g} % of the block period at {GOAL_CELL[0]} voices x "
              f"{GOAL_CELL[1]} partials (a full piece's polyphony leaves most of a core to the "
              "callback's margins and the other processes)."))
    for voices in VOICES:
        for partials in PARTIALS:
            shares = block_times(voices, partials) / (BLOCK / SAMPLE_RATE) * 100
            median, p99 = float(np.median(shares)), float(np.percentile(shares, 99))
            is_goal = (voices, partials) == GOAL_CELL
            goal = f"<= {GOAL_PERCENT:g} %" if is_goal else ""
            met = bool(median <= GOAL_PERCENT) if is_goal else None
            result.figures.append(Figure(f"{voices} voices x {partials} partials, median", median, "%",
                                         goal, met))
            result.figures.append(Figure(f"{voices} voices x {partials} partials, p99", p99, "%"))
    goal_median = next(f.value for f in result.figures if f.met is not None)
    result.notes.append(f"At {GOAL_CELL[0]} x {GOAL_CELL[1]} the median block takes "
                        f"{goal_median / 100 * period_ms:.3f} ms of the {period_ms:.2f} ms period.")
    return result
