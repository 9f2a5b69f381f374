"""Benchmark 3: does a cue change (a scene jump) make the frames after it slower?

A three-cue setlist of ``pulse`` scenes runs in real time on the headless EGL display, played by the
bundled Mozart performance through the MIDI-file performer; every ``JUMP_EVERY`` show seconds the
playhead is sent forward or back (``go`` and ``previous`` alternately), as a performer would. Each
loop iteration's work (clock, MIDI, ticks with the cue change, drawing, and the GPU finishing it) is
timed, and the slowest of the frames right after each jump is compared with the median frame.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from bench.result import BenchResult, Figure
from bench.temp_setlist import setlist_from_cues
from engine.clock import RealTime
from engine.display import open_display
from engine.midi_file import MidiFilePerformer, load_performance
from engine.show import Show, ShowOptions

MIDI_FILE = Path(__file__).resolve().parent.parent / "assets" / "midi" / "partitura_mozart_k265_var1.mid"
SIZE = (1280, 720)
TICK_RATE = 60.0  # Hz, and frames per second
SHOW_SECONDS = 30.0
JUMP_EVERY = 2.0  # show seconds between jumps
WINDOW = 10  # frames after a jump (the jump's own frame first) whose slowest is compared
GOAL_RATIO = 1.5
CUES = [
    {"id": "rainbow", "scene": "pulse", "params": {"palette": "rainbow", "decay": 1.5}},
    {"id": "blue", "scene": "pulse",
     "params": {"palette": "mono", "hue": 0.6, "decay": 3.0, "bar_width": 2.0}},
    {"id": "coda", "scene": "pulse", "params": {"palette": "rainbow", "hue": 0.5, "decay": 0.8}},
]


class IterationTimer(RealTime):
    """Real time that also measures each loop iteration's work: from the end of one sleep to the
    start of the next (the show calls ``sleep`` exactly once per iteration, after drawing)."""

    def __init__(self) -> None:
        self.work_ms: list[float] = []
        self.cpu_ms: list[float] = []  # process CPU time (all threads, llvmpipe's too) per iteration
        self._since: float | None = None
        self._cpu_since = 0.0

    def now(self) -> float:
        now = time.perf_counter()
        if self._since is None:
            self._since, self._cpu_since = now, time.process_time()
        return now

    def sleep(self, seconds: float) -> None:
        self.work_ms.append((time.perf_counter() - self._since) * 1000)
        self.cpu_ms.append((time.process_time() - self._cpu_since) * 1000)
        super().sleep(seconds)
        self._since, self._cpu_since = time.perf_counter(), time.process_time()


class Jumper:
    """The show's frame sink: requests a jump every ``JUMP_EVERY`` show seconds and notes the indices
    of the loop iteration and of the drawn frame in which each cue change was applied (they differ:
    an iteration that runs no tick yet draws nothing)."""

    def __init__(self, show: Show, timer: IterationTimer) -> None:
        self.show, self.timer = show, timer
        self.next_jump = JUMP_EVERY
        self.forward = True
        self.cues_seen = 1  # the first cue starting is not a jump
        self.jump_iterations: list[int] = []
        self.jump_frames: list[int] = []

    def __call__(self) -> None:
        played = len(self.show.summary.cues_played)
        if played > self.cues_seen:  # a cue changed in this iteration's ticks
            self.cues_seen = played
            self.jump_iterations.append(len(self.timer.work_ms))
            self.jump_frames.append(len(self.show.summary.frame_ms))  # this frame is appended later
        if self.show.clock.show_time >= self.next_jump - 1e-9:
            self.next_jump += JUMP_EVERY
            (self.show.playhead.go if self.forward else self.show.playhead.previous)()
            self.forward = not self.forward


def _ratios(frame_ms: list[float], starts: list[int]) -> list[float]:
    median = statistics.median(frame_ms)
    return [max(frame_ms[s:s + WINDOW]) / median for s in starts if s + WINDOW <= len(frame_ms)]


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def _measure() -> tuple[list[float], list[float], list[int], list[int], str]:
    performance = load_performance(MIDI_FILE)
    display = open_display(SIZE, headless=True)
    try:
        setlist = setlist_from_cues(CUES, tick_rate=TICK_RATE, fps=TICK_RATE, resolution=SIZE)
        timer = IterationTimer()
        show = Show(setlist, ShowOptions(duration=SHOW_SECONDS, fps=TICK_RATE), timer, display)
        failures = show.load()
        if failures:
            raise RuntimeError(failures[0])
        show.add_source(MidiFilePerformer(performance, show.queue))
        jumper = Jumper(show, timer)
        show.frame_sink = jumper
        summary = show.run()
        return (timer.work_ms, timer.cpu_ms, summary.frame_ms, jumper.jump_iterations,
                jumper.jump_frames, display.renderer)
    finally:
        display.close()


def run() -> BenchResult:
    result = BenchResult(
        key="jump",
        title="Scene jump",
        method=(f"A setlist of three `pulse` cues runs in `RealTime` at {TICK_RATE:g} Hz on the "
                f"headless EGL display ({SIZE[0]}x{SIZE[1]}), played by `MidiFilePerformer` from "
                f"`assets/midi/{MIDI_FILE.name}`, for {SHOW_SECONDS:g} s of show time. Every "
                f"{JUMP_EVERY:g} s of show time the bench's frame sink calls `playhead.go()` and "
                "`playhead.previous()` alternately; the show applies the cue change at the next tick "
                "(exit the old scene, enter the new one). The headless display calls `gl.finish()` "
                "at the end of every frame, so GPU work is inside the timing. Two per-frame times are kept: the "
                "*loop iteration* (from the end of one sleep to the start of the next: clock, MIDI, "
                "ticks including the cue change, drawing, GPU), measured by a `RealTime` subclass, and "
                "the show's own *draw* time (`summary.frame_ms`). For each jump, the largest time "
                f"among the {WINDOW} frames starting with the one whose ticks applied the cue change "
                "is divided by the median over the whole run; reported are the maximum and the "
                "median of that ratio over the jumps. As a control, the same ratio is computed for "
                f"{WINDOW}-frame windows starting 1 s after each jump, where nothing changes, and the "
                "iteration that applied the cue change is also reported alone. With frames of about a "
                "millisecond, a single scheduling hiccup of a few milliseconds (another process on a "
                "shared core) sets a window's maximum; the control windows show how much of the ratio "
                "is that noise rather than the jump. A third time per iteration, the process's CPU time "
                "(`time.process_time`, all threads, so llvmpipe's rendering threads too), counts the "
                "work done and not the time spent waiting for a core: it is the ratio least disturbed "
                "by other processes."),
        goal=(f"Goal: max ratio <= {GOAL_RATIO:g}: a cue change must not stall the picture "
              "(scenes load everything before the show, so entering one is cheap)."))
    work_ms, cpu_ms, draw_ms, jumps, jump_frames, renderer = _measure()
    if not jumps:
        raise RuntimeError("no cue change happened")
    control = [j + round(TICK_RATE) for j in jumps]
    loop_ratios, draw_ratios = _ratios(work_ms, jumps), _ratios(draw_ms, jump_frames)
    cpu_ratios, cpu_control = _ratios(cpu_ms, jumps), _ratios(cpu_ms, control)
    control_ratios = _ratios(work_ms, control)
    jump_alone = max(work_ms[j] for j in jumps) / statistics.median(work_ms)
    result.figures = [
        Figure("jumps", len(loop_ratios), "count"),
        Figure("median loop iteration", statistics.median(work_ms), "ms"),
        Figure("median draw (summary.frame_ms)", statistics.median(draw_ms), "ms"),
        Figure("loop: max ratio over jumps", max(loop_ratios), "x", f"<= {GOAL_RATIO:g}",
               max(loop_ratios) <= GOAL_RATIO),
        Figure("loop: median ratio over jumps", statistics.median(loop_ratios), "x"),
        Figure("draw: max ratio over jumps", max(draw_ratios), "x", f"<= {GOAL_RATIO:g}",
               max(draw_ratios) <= GOAL_RATIO),
        Figure("draw: median ratio over jumps", statistics.median(draw_ratios), "x"),
        Figure("loop CPU time: max ratio over jumps", max(cpu_ratios), "x", f"<= {GOAL_RATIO:g}",
               max(cpu_ratios) <= GOAL_RATIO),
        Figure("loop CPU time: median ratio over jumps", statistics.median(cpu_ratios), "x"),
        Figure("loop CPU time, control (no jump): max ratio", max(cpu_control), "x"),
        Figure("jump iteration alone: max ratio", jump_alone, "x"),
        Figure("control (no jump): max ratio", max(control_ratios), "x"),
        Figure("control (no jump): median ratio", statistics.median(control_ratios), "x"),
    ]
    median = statistics.median(work_ms)
    windows = [f"{max(work_ms[j:j + WINDOW]) / median:.2f} (slowest at +{_argmax(work_ms[j:j + WINDOW])})"
               for j in jumps if j + WINDOW <= len(work_ms)]
    result.notes.append("Loop ratio per jump, in order, with the slowest frame's position in its window "
                        "(+0 = the iteration that applied the cue change): " + ", ".join(windows) + ".")
    slow = sum(1 for w in work_ms if w > GOAL_RATIO * median)
    result.notes.append(
        f"Over the whole run, {slow} of {len(work_ms)} loop iterations ({100 * slow / len(work_ms):.1f} %) "
        f"took more than {GOAL_RATIO:g}x the median, jump or not; a {WINDOW}-frame window catches one "
        f"of them by chance with probability about {100 * (1 - (1 - slow / len(work_ms)) ** WINDOW):.0f} %. "
        f"The iteration that applied the cue change was at most {jump_alone:.2f}x the median.")
    result.notes.append(f"Rendered by {renderer}.")
    return result
