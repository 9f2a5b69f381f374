"""Benchmark: what 64 sampler voices playing looped tables cost per block, as a share of the block's
own duration: in the benchmark process (the rack alone, as :mod:`bench.mixer_load` measures the
overtones) and in the live audio process on a JACK dummy server (the whole callback, from the
per-block compute times the audio process keeps in its shared state).
"""

from __future__ import annotations

import time

import numpy as np

from bench.jack_server import JackUnavailable, jack_server
from bench.result import BenchResult, Figure
from engine.audio import command_ring as cmd
from engine.audio.live import LiveAudio
from engine.audio.pool import SamplePool
from engine.audio.rack import InstrumentSpec, Rack, RackConfig
from engine.audio.shared import LOADS

SAMPLE_RATE, BLOCK = 48000, 256
VOICES = 64
TABLES = 8  # tables of TABLE_SECONDS, the even ones mono, the odd ones stereo
TABLE_SECONDS = 1.0
CROSSFADE = 0.01  # seconds: each loop end cross-fades into its start (the sampler's default)
GAIN = 0.05  # per voice, so 64 voices stay mostly under the limiter's threshold
BLOCKS = 1500  # timed blocks in the benchmark process (8 s of audio)
WARM_UP = 50
LIVE_IDLE = 2.0  # seconds of the live callback with nothing playing, before the voices
LIVE_SETTLE = 1.0  # seconds after the PLAY commands before the live blocks count
LIVE_SECONDS = 8.0  # seconds of live blocks counted (1500 blocks at 256 frames)
TABLE = "loop{}"


def _pool() -> SamplePool:
    frames = int(TABLE_SECONDS * SAMPLE_RATE)
    channels = [1 + number % 2 for number in range(TABLES)]
    pool = SamplePool.create(2 * frames * sum(channels), max_tables=TABLES)
    rng = np.random.default_rng(1)
    t = np.arange(frames) / SAMPLE_RATE
    for number, count in enumerate(channels):
        slot = pool.allocate(TABLE.format(number), frames, count)
        # A tone with a little noise: nonzero everywhere, different in every table.
        tone = 0.5 * np.sin(2 * np.pi * (110 * (number + 1)) * t)[:, None] \
            + 0.1 * rng.standard_normal((frames, count))
        pool.fill(slot, tone.astype(np.float32))
    return pool


def _rack_config(pool: SamplePool | None = None) -> RackConfig:
    return RackConfig(sample_rate=SAMPLE_RATE, block_size=BLOCK, buses={"samples": 0.0},
                      instruments=[InstrumentSpec(name="sampler", kind="sampler", bus="samples",
                                                  settings={"polyphony": VOICES,
                                                            "crossfade": CROSSFADE})],
                      notes=[], pool=str(pool.path) if pool is not None else None)


def _voices() -> list[tuple[int, int, float, float]]:
    """(voice id, table number, pitch ratio, pan) of each voice: pitches over two octaves (so
    reads fall between frames), pans across the field."""
    return [(cmd.SCENE_VOICES + number, number % TABLES, 2.0 ** ((number % 25 - 12) / 12.0),
             -1.0 + 2.0 * number / (VOICES - 1)) for number in range(VOICES)]


def block_times(pool: SamplePool) -> np.ndarray:
    """Seconds per ``Rack.render`` block, every voice looping, over BLOCKS blocks."""
    rack = Rack(_rack_config(), pool)
    rack.warm_up()
    for voice, table, ratio, pan in _voices():
        rack.apply(cmd.PLAY, voice, pool.slot(TABLE.format(table)), GAIN, 0, a=ratio, b=pan,
                   c=float(cmd.LOOP))
    times = np.empty(BLOCKS)
    clock = time.perf_counter
    for number in range(WARM_UP + BLOCKS):
        started = clock()
        rack.render()
        elapsed = clock() - started
        if number >= WARM_UP:
            times[number - WARM_UP] = elapsed
    if rack.voices_sounding() != VOICES:
        raise RuntimeError(f"only {rack.voices_sounding()} of {VOICES} sampler voices still sound")
    return times


def _loads(audio: LiveAudio, seconds: float) -> np.ndarray:
    """The live callback's compute time (seconds) of every block over the next ``seconds``."""
    first = int(audio.state.get("blocks"))
    time.sleep(seconds)
    last = int(audio.state.get("blocks"))
    if last - first >= LOADS:
        raise RuntimeError(f"{last - first} blocks: more than the {LOADS} the shared state keeps")
    return audio.state.loads[np.arange(first, last) % LOADS].copy()


def live_times(pool: SamplePool) -> tuple[np.ndarray, np.ndarray, int, float, int]:
    """(callback seconds per block idle, and with every voice looping; voices the audio process
    reported; the peak it played; its underruns), on a private JACK dummy server."""
    with jack_server(SAMPLE_RATE, BLOCK):
        audio = LiveAudio(_rack_config(), pool=pool)
        try:
            audio.start()
            if not audio.wait_running(15.0):
                raise RuntimeError(f"the audio process did not start on JACK "
                                   f"({audio.state.device or 'no device'})")
            idle = _loads(audio, LIVE_IDLE)
            sampler = audio.instrument("sampler")
            for voice, table, ratio, pan in _voices():
                sampler.play(TABLE.format(table), voice, GAIN, ratio, pan, loop=True)
            time.sleep(LIVE_SETTLE)
            underruns = audio.health()["xruns"]
            playing = _loads(audio, LIVE_SECONDS)
            voices = int(audio.state.get("voices"))
            peak = float(np.abs(audio.listen(0.5)).max())
            return idle, playing, voices, peak, audio.health()["xruns"] - underruns
        finally:
            audio.close()


def run() -> BenchResult:
    period = BLOCK / SAMPLE_RATE
    result = BenchResult(
        key="sampler",
        title="Sampler compute per block, 64 looped voices",
        method=(f"A rack of one sampler (polyphony {VOICES}, loop cross-fade {CROSSFADE * 1000:g} "
                f"ms) on its bus reads a shared sample pool of {TABLES} tables of "
                f"{TABLE_SECONDS:g} s ({SAMPLE_RATE} Hz; half mono, half stereo; a tone plus "
                f"noise). {VOICES} `PLAY` commands start {VOICES} looped voices at once, gain "
                f"{GAIN:g} each, pitch ratios 2^(-12/12) .. 2^(12/12) (so reads fall between "
                "frames: cubic interpolation), pans spread across the field; every voice sounds "
                "for the whole run (checked). In the benchmark process, with no device: after "
                f"{WARM_UP} untimed blocks, {BLOCKS} blocks of `Rack.render()` ({BLOCK} frames) are "
                "timed one by one with `time.perf_counter()`, each divided by the block period "
                f"({1000 * period:.2f} ms); the sampler's kernel, the bus and the limiter, as the "
                "mixer benchmark times the overtones. Live: a private `jackd --no-realtime -d "
                f"dummy -r {SAMPLE_RATE} -p {BLOCK}`, a `LiveAudio` with the same rack and pool, "
                f"the same voices started through `instrument(\"sampler\").play(...)`; after "
                f"{LIVE_SETTLE:g} s, the audio process's own compute time of each block over "
                f"{LIVE_SECONDS:g} s (`SharedAudioState.loads`: the callback from entry until the "
                "block's bytes are ready, draining the ring and rendering; the tap and health "
                "report after it are one compiled call), over the period; and the same for "
                f"{LIVE_IDLE:g} s before any voice, the callback's fixed cost. Reported: median "
                "and p99 of each. The machine runs other work, so p99 includes preemption."),
        goal=("Goal: none set for this figure yet; for scale, the overtone mixer's goal is a median "
              "<= 10 % of the period at 64 voices x 8 partials."))
    pool = _pool()
    try:
        shares = 100 * block_times(pool) / period
        result.figures += [
            Figure(f"{VOICES} looped voices, in process: median", float(np.median(shares)), "%"),
            Figure(f"{VOICES} looped voices, in process: p99", float(np.percentile(shares, 99)), "%"),
        ]
        try:
            idle, playing, voices, peak, underruns = live_times(pool)
        except (JackUnavailable, RuntimeError) as error:
            result.notes.append(f"The live measure did not run: {error}")
            return result
    finally:
        pool.close()
    if voices != VOICES or peak <= 0.0:
        raise RuntimeError(f"the live audio process did not play the voices: {voices} sounding, "
                           f"peak {peak:.4f}")
    playing, idle = 100 * playing / period, 100 * idle / period
    result.figures += [
        Figure(f"{VOICES} looped voices, live callback: median", float(np.median(playing)), "%"),
        Figure(f"{VOICES} looped voices, live callback: p99", float(np.percentile(playing, 99)), "%"),
        Figure("no voice, live callback: median", float(np.median(idle)), "%"),
        Figure("no voice, live callback: p99", float(np.percentile(idle, 99)), "%"),
    ]
    in_process = result.figures[0].value
    result.notes.append(
        f"In process the median block takes {in_process / 100 * period * 1e6:.0f} us of the "
        f"{period * 1e6:.0f} us period. Live: {playing.size} blocks counted with the voices, "
        f"{idle.size} without; the audio process reported {voices} voices sounding, a peak of "
        f"{peak:.2f} after its limiter, and {underruns} underrun(s) while measured.")
    return result
