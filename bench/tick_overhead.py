"""Benchmark 1: what the show loop costs per tick when the scene does nothing.

A one-cue setlist ("blackout", a scene with no hooks) runs for ``SHOW_SECONDS`` of show time under
virtual time (no sleeping, no display), so the wall time of ``Show.run`` divided by the tick count is
the engine's own overhead per tick: clock, MIDI polling, playhead checks, scene-stack dispatch and,
with metrics on, one JSON line per tick. The bare ``SceneStack.tick`` cost is measured alongside.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench.result import BenchResult, Figure
from bench.temp_setlist import setlist_from_cues
from engine.clock import VirtualTime
from engine.show import Show, ShowOptions
from engine.stack import SceneStack
from scenes.builtin.blackout import Blackout

TICK_RATE = 60.0  # Hz; one tick per frame (fps = tick rate)
SHOW_SECONDS = 600.0  # show seconds per run: 36 000 ticks
RUNS = 5  # the median of this many runs is reported
GOAL_US = 1e6 / TICK_RATE / 100  # 1 % of the tick period: 167 us at 60 Hz


def _show_us_per_tick(metrics: Path | None) -> float:
    setlist = setlist_from_cues([{"id": "dark", "scene": "blackout"}], tick_rate=TICK_RATE, fps=TICK_RATE)
    show = Show(setlist, ShowOptions(duration=SHOW_SECONDS, fps=TICK_RATE, metrics=metrics),
                VirtualTime(), display=None)
    show.load()
    started = time.perf_counter()
    summary = show.run()
    elapsed = time.perf_counter() - started
    expected = round(SHOW_SECONDS * TICK_RATE)
    if summary.ticks != expected:
        raise RuntimeError(f"show ran {summary.ticks} ticks, expected {expected}")
    return elapsed / summary.ticks * 1e6


def _stack_us_per_tick(ticks: int) -> float:
    stack = SceneStack()
    stack.replace_all(Blackout())
    stack.apply_pending()
    dt = 1.0 / TICK_RATE
    tick = stack.tick
    started = time.perf_counter()
    for _ in range(ticks):
        tick(dt)
    return (time.perf_counter() - started) / ticks * 1e6


def run() -> BenchResult:
    ticks = round(SHOW_SECONDS * TICK_RATE)
    result = BenchResult(
        key="tick",
        title="Tick overhead of an empty scene",
        method=(f"A setlist of one `blackout` cue runs for {SHOW_SECONDS:g} s of show time at "
                f"{TICK_RATE:g} Hz ({ticks} ticks, one tick per frame) under `VirtualTime` with no "
                "display, so the loop never sleeps and draws nothing; the wall time of `Show.run` "
                "divided by the tick count is the engine's own cost per tick (clock, MIDI polling, "
                "event queue, playhead checks, scene-stack dispatch). It is measured with the metrics "
                "log off and on (one JSON line per tick written to a temp file), as the median of "
                f"{RUNS} runs each. For comparison, the bare `SceneStack.tick` call on the same scene "
                f"is timed over {ticks} calls (median of {RUNS})."),
        goal=(f"Goal: at most 1 % of the tick period ({GOAL_US:.0f} us at {TICK_RATE:g} Hz) with "
              "metrics on, so that the whole tick budget is left to scenes, learners and rendering."))
    off = statistics.median(_show_us_per_tick(None) for _ in range(RUNS))
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as folder:
        on = statistics.median(_show_us_per_tick(Path(folder) / "metrics.jsonl") for _ in range(RUNS))
    bare = statistics.median(_stack_us_per_tick(ticks) for _ in range(RUNS))
    result.figures = [
        Figure("show loop per tick, metrics off", off, "us", f"<= {GOAL_US:.0f} us", off <= GOAL_US),
        Figure("show loop per tick, metrics on", on, "us", f"<= {GOAL_US:.0f} us", on <= GOAL_US),
        Figure("metrics log cost per tick", on - off, "us"),
        Figure("bare SceneStack.tick per tick", bare, "us"),
    ]
    return result
