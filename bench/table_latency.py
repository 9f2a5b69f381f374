"""Benchmark: from a table written in the main process to its first sample heard, through JACK.

The audio process (``LiveAudio`` with a rack of one sampler) loops a table of the shared sample
pool that holds silence. The benchmark process rewrites that table with a click
(``AudioOut.write_table``: into the back buffer, a swap requested, a SWAP command down the ring),
and a JACK client records what the audio process plays; the first non-zero sample after the write
is when the new table was heard. The write is stamped on JACK's frame clock, as the MIDI note-ons of
:mod:`bench.audio_latency` are, so the delay is measured in frames with no wall clock involved.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import numpy as np

from bench.audio_latency import StampedRecorder
from bench.jack_server import JackUnavailable, jack_server
from bench.result import BenchResult, Figure
from engine.audio import command_ring as cmd
from engine.audio.live import LiveAudio
from engine.audio.pool import SamplePool
from engine.audio.rack import InstrumentSpec, RackConfig

SAMPLE_RATE = 48000
PERIODS = (256, 128)
TRIALS = 150  # per period size and way of writing
WARM_UP = 5  # untimed writes first
TABLE = "ear"
TABLE_FRAMES = 4800  # 0.1 s, looped
CLICK = 0.5  # every frame of the written table: whatever frame the voice reads, it is heard
GAP = (0.03, 0.06)  # seconds of silence before a write, uniform (its phase against the cycle too)
HEARD_WITHIN = 0.05  # seconds after a write to wait before the next trial
GOAL_MARGIN_MS = 2.0  # goal: p99 <= one period + this
WAYS = ("at a cycle's start", "from the main thread")


class WritingRecorder(StampedRecorder):
    """A stamped recorder that can run a write at the start of its next process cycle, or wake a
    waiting thread there, and note that cycle's JACK frame time (the stamp of the write)."""

    def __init__(self, *args, **kwargs) -> None:
        self._write: Callable[[], bool] | None = None
        self._armed = False
        self._cycle = threading.Event()
        self.cycle_at = 0  # frame time of the cycle that ran the write or woke the waiter
        self.wrote = False
        super().__init__(*args, **kwargs)

    def write_next_cycle(self, write: Callable[[], bool]) -> int | None:
        """Run ``write`` in the process thread at the start of the next cycle; that cycle's frame
        time, or None when ``write`` returned False."""
        self._cycle.clear()
        self._write = write
        self._wait()
        return self.cycle_at if self.wrote else None

    def wait_next_cycle(self) -> int:
        """Block the calling thread until the next cycle starts; that cycle's frame time."""
        self._cycle.clear()
        self._armed = True
        self._wait()
        return self.cycle_at

    def _wait(self) -> None:
        if not self._cycle.wait(2.0):
            self._write, self._armed = None, False
            raise RuntimeError("the recorder ran no process cycle within 2 s")

    def _process(self, frames: int) -> None:
        write, self._write = self._write, None
        if write is not None:
            self.cycle_at, self.wrote = self.client.last_frame_time, write()
            self._cycle.set()
        elif self._armed:
            self._armed = False
            self.cycle_at = self.client.last_frame_time
            self._cycle.set()
        super()._process(frames)


def _latencies(heard: np.ndarray, cycle_starts: list[tuple[int, int]], mark: int,
               stamps: list[int], period: int) -> tuple[list[int], dict[str, int]]:
    """Frames from each stamp (a JACK frame time) to the first non-zero recorded sample after it."""
    loud = np.abs(heard).max(axis=1) > 0.0
    cycles = np.array([c for c in cycle_starts if c[0] >= mark], dtype=np.int64)
    recorded, frame_times = cycles[:, 0] - mark, cycles[:, 1]
    latencies, unmeasured = [], {"not from silence": 0, "not heard": 0, "recorder gap": 0}
    for stamp in stamps:
        cycle = int(np.searchsorted(frame_times, stamp, side="right")) - 1
        if cycle < 1 or cycle + 1 >= len(frame_times) \
                or frame_times[cycle - 1] != frame_times[cycle] - period \
                or frame_times[cycle + 1] != frame_times[cycle] + period:
            unmeasured["recorder gap"] += 1
            continue
        start = int(recorded[cycle]) + int(stamp - frame_times[cycle])  # the stamp in the capture
        if loud[max(0, start - period):start].any():
            unmeasured["not from silence"] += 1
            continue
        found = np.flatnonzero(loud[start:start + int(HEARD_WITHIN * SAMPLE_RATE)])
        if found.size == 0:
            unmeasured["not heard"] += 1
            continue
        onset = start + int(found[0])
        onset_cycle = int(np.searchsorted(recorded, onset, side="right")) - 1
        if frame_times[onset_cycle] - frame_times[cycle] != recorded[onset_cycle] - recorded[cycle]:
            unmeasured["recorder gap"] += 1  # a cycle went unrecorded: the onset may lie in it
            continue
        onset_frame = int(frame_times[onset_cycle] + onset - recorded[onset_cycle])
        latencies.append(onset_frame - stamp)
    return latencies, unmeasured


def _measure(period: int) -> tuple[dict[str, list[int]], dict[str, dict[str, int]], int, int]:
    """(latency in frames of each write by way of writing, unmeasured writes by reason, writes
    refused (a swap still pending), underruns of the audio process)."""
    rng = random.Random(period)
    pool = SamplePool.create(4 * TABLE_FRAMES, max_tables=1)
    slot = pool.allocate(TABLE, TABLE_FRAMES, 1)
    silence = np.zeros(TABLE_FRAMES, np.float32)
    click = np.full(TABLE_FRAMES, CLICK, np.float32)
    pool.fill(slot, silence)
    rack = RackConfig(sample_rate=SAMPLE_RATE, block_size=period, buses={"samples": 0.0},
                      instruments=[InstrumentSpec(name="sampler", kind="sampler", bus="samples",
                                                  settings={"polyphony": 1})])
    per_trial = GAP[1] + HEARD_WITHIN + 0.1
    stamps: dict[str, list[int]] = {way: [] for way in WAYS}
    refused = 0
    try:
        with jack_server(SAMPLE_RATE, period):
            recorder = WritingRecorder(seconds=len(WAYS) * (TRIALS + WARM_UP) * per_trial + 10)
            audio = LiveAudio(rack, pool=pool)
            try:
                audio.start()
                if not audio.wait_running(15.0):
                    raise RuntimeError(f"the audio process did not start at {period} frames per "
                                       "period")
                if not recorder.wait_connected(10.0):
                    raise RuntimeError("the recorder found no PortAudio output ports")
                audio.instrument("sampler").play(TABLE, cmd.SCENE_VOICES, 1.0, 1.0, 0.0, loop=True)
                time.sleep(0.2)
                mark = recorder.mark()
                for way in WAYS:
                    for trial in range(WARM_UP + TRIALS):
                        while not audio.write_table(TABLE, silence):  # back to silence
                            time.sleep(0.001)
                        while pool.swap_pending(slot):
                            time.sleep(0.001)
                        time.sleep(rng.uniform(*GAP))
                        if way == WAYS[0]:
                            stamp = recorder.write_next_cycle(lambda: audio.write_table(TABLE, click))
                        else:  # the stamp is before the write: the delay measured is an upper bound
                            stamp = recorder.wait_next_cycle()
                            if not audio.write_table(TABLE, click):
                                stamp = None
                        if stamp is None:
                            refused += 1
                        elif trial >= WARM_UP:
                            stamps[way].append(stamp)
                        time.sleep(HEARD_WITHIN)
                time.sleep(0.1)
                heard = recorder.since(mark)
                cycle_starts = list(recorder.cycle_starts)
                underruns = audio.health()["xruns"]
            finally:
                audio.close()
                recorder.close()
    finally:
        pool.close()
    latencies, unmeasured = {}, {}
    for way in WAYS:
        latencies[way], unmeasured[way] = _latencies(heard, cycle_starts, mark, stamps[way], period)
    return latencies, unmeasured, refused, underruns


def run() -> BenchResult:
    result = BenchResult(
        key="table-latency",
        title="Table written to first sample heard through JACK",
        method=(f"For each period size ({' and '.join(map(str, PERIODS))} frames at {SAMPLE_RATE} "
                "Hz) a private `jackd --no-realtime -d dummy -p PERIOD` runs, with a `LiveAudio` "
                "whose rack is one sampler on its bus, reading a shared sample pool of one mono "
                f"table of {TABLE_FRAMES} frames; one looped voice (`PLAY`, gain 1, ratio 1) plays "
                "it while it holds silence, and a JACK client of the benchmark records the "
                "PortAudio output ports, noting the JACK frame time of every cycle it records. "
                "Each trial writes silence back into the table (and waits for its swap), waits "
                f"{GAP[0] * 1000:.0f}-{GAP[1] * 1000:.0f} ms, then writes the click with "
                "`AudioOut.write_table` (the back buffer written, a swap requested, a `SWAP` "
                f"command in the ring): every frame {CLICK:g}, so whatever frame of its loop the "
                "voice is reading, the first block after the swap is non-zero from its first "
                f"frame. {TRIALS} trials (after {WARM_UP} unmeasured) are made each way: (1) the "
                "recorder makes the write itself at the start of a process cycle and stamps it "
                "with that cycle's frame time (exact; the PortAudio client has already run in "
                "that cycle, so one period is the floor, as for a MIDI note); (2) the benchmark's "
                "main thread, woken by the recorder at the start of a cycle, makes it, stamped "
                "with that cycle's frame time: the write comes after its stamp by the thread's "
                "wake-up, so the delay is an upper bound and includes the main thread's own "
                "scheduling, as a scene's write from the show's tick would. (JACK's "
                "`jack_frame_time()` estimate was not used as a stamp: on this dummy, "
                "non-realtime server it read from -240 to +1621 frames off the current cycle's "
                "start.) Delay = the frame time of the first recorded sample that is not "
                "zero (either channel) - the stamp; the period before the stamp must be silent "
                "and a write whose onset could lie in a cycle the recorder missed is left out and "
                "counted. A real sound card's output latency comes on top."),
        goal=(f"Goal: p99 <= one period + {GOAL_MARGIN_MS:g} ms: a table written in the main "
              "process is heard from the next block the audio process computes."))
    for period in PERIODS:
        try:
            latencies, unmeasured, refused, underruns = _measure(period)
        except JackUnavailable as error:
            result.error = str(error)
            return result
        period_ms = 1000 * period / SAMPLE_RATE
        goal_ms = period_ms + GOAL_MARGIN_MS
        for way in WAYS:
            frames = np.asarray(latencies[way])
            if frames.size == 0:
                raise RuntimeError(f"no write was heard at {period} frames per period ({way})")
            ms = frames * 1000 / SAMPLE_RATE
            p99 = float(np.percentile(ms, 99))
            tag = f"{period} frames ({period_ms:.2f} ms), written {way}"
            result.figures += [
                Figure(f"{tag}: writes measured", frames.size, "count", f">= 100",
                       bool(frames.size >= 100)),
                Figure(f"{tag}: delay p50", float(np.median(ms)), "ms"),
                Figure(f"{tag}: delay p99", p99, "ms", f"<= {goal_ms:.2f} ms", bool(p99 <= goal_ms)),
                Figure(f"{tag}: delay max", float(ms.max()), "ms"),
            ]
            skipped = ", ".join(f"{n} ({why})" for why, n in unmeasured[way].items() if n) or "none"
            result.notes.append(
                f"{period} frames, written {way}: delays from {ms.min():.2f} to {ms.max():.2f} ms "
                f"over {frames.size} writes; not measurable: {skipped}.")
        result.notes.append(f"{period} frames: {refused} write(s) refused (a swap still pending) "
                            f"and {underruns} underrun(s) in the audio process over the run.")
    return result
