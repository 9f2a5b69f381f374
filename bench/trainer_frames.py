"""Benchmark: frame time of a live show while a model trains beside it (issue 19).

A one-cue setlist plays ``bench_trainee`` (a scene of this module) live: ``RealTime``, 60 Hz ticks
and frames, 1280x720 on the headless EGL display. Every frame it draws a moving 512-point curve and
64 points over the clear. With training, its ``context.trainer`` trains the conv-net ``Regressor``
(~50 ms a step) in the background from the cue's start, ``steps_per_call`` 1 or 4; without, the
scene has no trainer. The three kinds run in rounds, back to back in one process, their order
turning from round to round. Per run: frame time p99 from the metrics log's ``frame_ms``, the show
loop's wake-up lateness p99 (a ``RealTime`` that times its sleeps), steps trained per second. Each
figure is the median over the rounds; the ratio is the median of each round's p99 with / without.
``SHOWRUNNER_TRAINER_SECONDS`` (default 10) is the show time of a run, ``SHOWRUNNER_TRAINER_ROUNDS``
(default 5) the number of rounds.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from bench.result import BenchResult, Figure
from bench.settings import number
from bench.temp_setlist import setlist_from_cues
from engine.clock import RealTime
from engine.display import open_display
from engine.learners.regressor import Regressor
from engine.primitives import Points, Polylines
from engine.projection import orthographic
from engine.scene import Scene, SceneParams
from engine.show import Show, ShowOptions

SECONDS_VARIABLE = "SHOWRUNNER_TRAINER_SECONDS"
ROUNDS_VARIABLE = "SHOWRUNNER_TRAINER_ROUNDS"
RATE = 60.0  # Hz, ticks and frames
SIZE = (1280, 720)
KINDS = {"without training": 0, "training, 1 step a call": 1, "training, 4 steps a call": 4}
GOAL_RATIO = 1.2  # frame time p99 with training / without
CURVE_POINTS, DOTS = 512, 64


class TraineeParams(SceneParams):
    steps_per_call: int = Field(0, ge=0, description="trainer steps per compiled call; 0: no trainer")


class BenchTrainee(Scene):
    """Trains the regressor in the background (when ``steps_per_call`` > 0) and draws a moving
    Lissajous curve and dots every frame, so that the frame time is real drawing."""

    name = "bench_trainee"
    Params = TraineeParams

    def load(self) -> None:
        context = self.context
        self.trainer = None
        if self.params.steps_per_call:
            self.trainer = context.trainer(Regressor(), "regressor", steps_per_call=self.params.steps_per_call)
            self.trainer.load()
        self.lines = Polylines(context.gl, context.shaders, context.size)
        self.dots = Points(context.gl, context.shaders)
        aspect = context.size[0] / context.size[1]
        self.mvp = orthographic(-1.2 * aspect, 1.2 * aspect, -1.2, 1.2)
        self.angles = np.linspace(0, 2 * np.pi, CURVE_POINTS, endpoint=False)
        self.time, self.loss = 0.0, float("nan")

    def enter(self) -> None:
        self.time = 0.0
        if self.trainer is not None:
            self.trainer.reset()
            self.trainer.start()

    def exit(self) -> None:
        if self.trainer is not None:
            self.trainer.stop()

    def tick(self, dt: float) -> None:
        self.time += dt
        if self.trainer is not None:
            self.loss = float(self.trainer.seen.summary["loss"])

    def draw(self, alpha: float) -> None:
        phase = self.time * 0.7
        curve = np.column_stack([np.sin(3 * self.angles + phase), np.sin(4 * self.angles)])
        self.lines.draw(curve, (1.0, 0.3, 0.2), 3.0, self.mvp, closed=True)
        self.dots.draw(curve[:: CURVE_POINTS // DOTS], (0.6, 0.8, 1.0), 8.0, self.mvp)

    def status(self) -> dict:
        if self.trainer is None:
            return {}
        seen = self.trainer.seen
        return {"trained": seen.steps, "loss": self.loss, "call_ms": round(seen.seconds * 1000, 3)}


class WakeTimedRealTime(RealTime):
    """``RealTime`` that notes how late the show loop wakes from each sleep: seconds past the
    deadline it slept to (a loop already past its deadline is late by that much)."""

    def __init__(self) -> None:
        self.lateness: list[float] = []

    def sleep(self, seconds: float) -> None:
        deadline = time.perf_counter() + seconds
        super().sleep(seconds)
        self.lateness.append(time.perf_counter() - deadline)


@dataclass
class LiveRun:
    kind: str
    frame_p99: float  # ms
    lateness_p99: float  # ms
    fps: float  # frames drawn per show second
    steps_per_second: float  # 0 without training
    step_ms: float  # median call time / steps per call; nan without training
    recompilations: int


def _live_run(kind: str, seconds: float, folder: Path) -> LiveRun:
    steps_per_call = KINDS[kind]
    setlist = setlist_from_cues([{"id": "train", "scene": BenchTrainee.name,
                                  "params": {"steps_per_call": steps_per_call}}],
                                title="trainer bench", tick_rate=RATE, fps=RATE, resolution=SIZE)
    metrics = folder / "metrics.jsonl"
    clock = WakeTimedRealTime()
    display = open_display(SIZE, headless=True)
    try:
        show = Show(setlist, ShowOptions(duration=seconds, fps=RATE, metrics=metrics), clock, display)
        failures = show.load()
        if failures:
            raise RuntimeError(failures[0])
        trainer = show.scenes[0].trainer
        if trainer is not None:
            trainer.join(10)  # the warm-up's training call ends before the show starts
        summary = show.run()
        if trainer is not None:
            trainer.join(10)  # and the run's last call before the next run
            if trainer.error is not None:
                raise RuntimeError(f"the trainer failed: {trainer.error}")
        if int(display.read_pixels().max()) == 0:
            raise RuntimeError("the scene drew nothing")
    finally:
        display.close()
    records = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines()]
    frame_ms = [r["frame_ms"] for r in records if "frame_ms" in r]
    span = records[-1]["time"] - records[0]["time"]
    steps, step_ms = 0.0, float("nan")
    if steps_per_call:
        trained = [r for r in records if "trained" in r]
        steps = (trained[-1]["trained"] - trained[0]["trained"]) / span
        if not steps > 0 or not math.isfinite(trained[-1]["loss"] or float("nan")):
            raise RuntimeError(f"{kind}: the regressor did not train (or its loss is not finite)")
        calls = {r["trained"]: r["call_ms"] for r in trained if r["trained"] > 0}
        step_ms = float(np.median(list(calls.values()))) / steps_per_call
    return LiveRun(kind, float(np.percentile(frame_ms, 99)), 1000 * float(np.percentile(clock.lateness, 99)),
                   summary.frames / seconds, steps, step_ms, summary.recompilations)


def run() -> BenchResult:
    seconds = number(SECONDS_VARIABLE, 10.0)
    rounds = int(number(ROUNDS_VARIABLE, 5.0))
    kinds = list(KINDS)
    runs: list[dict[str, LiveRun]] = []
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as name:
        for index in range(rounds):
            turn = index % len(kinds)
            runs.append({kind: _live_run(kind, seconds, Path(name)) for kind in kinds[turn:] + kinds[:turn]})

    def median(kind: str, field: str) -> float:
        return float(np.median([getattr(one[kind], field) for one in runs]))

    base = kinds[0]
    result = BenchResult(
        key="trainer", title="Frame time with a model training beside the show",
        method=(f"A one-cue setlist plays the bench scene `{BenchTrainee.name}` live: `RealTime`, "
                f"{RATE:g} Hz ticks and frames, {SIZE[0]}x{SIZE[1]} on the headless EGL display. Each "
                f"frame it draws a moving {CURVE_POINTS}-point Lissajous curve (3 px) and {DOTS} points "
                "over the clear. With training, the scene's `context.trainer(Regressor(), ...)` (the "
                "conv-net regressor, about 50 ms a step on two cores) is reset and started in `enter` and "
                "trains in its background thread with `steps_per_call` 1 or 4, the scene reading "
                "`trainer.seen.summary[\"loss\"]` every tick; without, the scene makes no trainer. "
                f"{rounds} round{'s' if rounds != 1 else ''} of the three runs of {seconds:g} s show time back to back in one "
                "process, the order turning from round to round (`" + SECONDS_VARIABLE + "`, `"
                + ROUNDS_VARIABLE + "`). Per run: the p99 of the metrics lines' `frame_ms` (scene "
                "drawing and `gl.finish()`), the p99 of the show loop's wake-up lateness (after each "
                "sleep of the loop, the seconds past the frame deadline it slept to), frames drawn per "
                "second, the regressor's steps per second (the step count the scene saw, first to "
                "last metrics line) and its step time (the median call's seconds over steps per call). "
                "Before each show starts, the trainer's call from the show's warm-up of the scene is "
                "waited for, and after it, the run's last call. Figures: the median over the rounds; the ratio is the median of "
                "each round's p99 with training / without."),
        goal=(f"Goal: frame time p99 with the 50 ms-step learner training in the background at most "
              f"{GOAL_RATIO:g}x the p99 without it."))
    for kind in kinds:
        result.figures += [Figure(f"{kind}: frame time p99", median(kind, "frame_p99"), "ms"),
                           Figure(f"{kind}: loop wake-up lateness p99", median(kind, "lateness_p99"), "ms")]
        if kind == base:
            continue
        ratio = float(np.median([one[kind].frame_p99 / one[base].frame_p99 for one in runs]))
        lateness = float(np.median([one[kind].lateness_p99 / one[base].lateness_p99 for one in runs]))
        result.figures += [
            Figure(f"{kind}: frame time p99 / without", ratio, "x", f"<= {GOAL_RATIO:g}x",
                   bool(ratio <= GOAL_RATIO)),
            Figure(f"{kind}: wake-up lateness p99 / without", lateness, "x"),
            Figure(f"{kind}: steps trained per second", median(kind, "steps_per_second"), "/s"),
            Figure(f"{kind}: step time (call time / steps per call), median", median(kind, "step_ms"), "ms")]
    result.figures += [Figure(f"{kind}: frames drawn per second", median(kind, "fps"), "fps") for kind in kinds]
    for index, one in enumerate(runs, 1):
        result.notes.append(f"Round {index}: " + "; ".join(
            f"{r.kind} p99 {r.frame_p99:.2f} ms, lateness p99 {r.lateness_p99:.2f} ms, {r.fps:.1f} fps"
            + (f", {r.steps_per_second:.1f} steps/s" if r.steps_per_second else "")
            + (f", {r.recompilations} recompilations" if r.recompilations else "")
            for r in one.values()) + ".")
    one, five, _ = os.getloadavg()
    result.notes.append(f"Load average (1 / 5 min) at the end: {one:.2f} / {five:.2f}.")
    return result
