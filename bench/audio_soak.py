"""Benchmark: does the audio process keep up while the show's process is busy?

For each JACK period size a private dummy JACK server runs with the audio process (``LiveAudio``,
blocks of the period) playing notes; meanwhile this process does what a show's main process does
each frame: a learner step (a numpy stand-in, kept so the figures compare across runs; the ``ldd``
benchmark runs the real jax learners with live audio), a detune command, a
1280x720 frame drawn on the headless EGL display and read back. A client in a process of its own
(:mod:`bench.jack_listener`) counts JACK's xruns; the audio process's tap shows that sound is
played. Reported per period size: underruns counted by the audio process, xruns (each sorted by
what our callback did just before it, :func:`xrun_causes`), the callback's compute time as a share
of the period, and the frames rendered; after each realtime window, the xruns of a reference C
client (``jack_metro``) in our place under the same load.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import moderngl
import numpy as np

from bench.jack_server import JackUnavailable, jack_server
from bench.midi_latency import read_line
from bench.result import BenchResult, Figure
from engine.audio.config import MixerConfig
from engine.audio.live import LiveAudio
from engine.child_process import stop_child
from engine.display import FULLSCREEN_VERT, Display, open_display
from engine.errors import UserError
from scenes.ldd.sound.settings import OvertoneSettings

SAMPLE_RATE = 48000
SECONDS = float(os.environ.get("SHOWRUNNER_SOAK_SECONDS", "300"))  # per period size
# (frames per period, realtime JACK graph, seconds measured): the show machine's set-up (JACK with
# realtime scheduling, as jackd runs by default) at both sizes, then the tests' non-realtime JACK
# at 256 frames for a shorter window, the worst case.
RUNS = ((256, True, SECONDS), (128, True, SECONDS), (256, False, min(SECONDS, 60.0)))
PERIODS = tuple(sorted({period for period, _, _ in RUNS}, reverse=True))
# Each realtime run is followed by the same window with the reference client in place of ours.
REFERENCE = "reference-metro"  # jack_metro's client name
SAME_XRUN = 0.001  # seconds: JACK can notify one xrun twice; notifications closer are one event
SETTLE = 2.0  # seconds of the same load before the measured window
SIZE = (1280, 720)
FPS = 60.0
PARTIALS, POLYPHONY = 8, 64
NOTE_GAP = (0.1, 0.2)  # seconds between note-ons, uniform
NOTES, VELOCITIES = (36, 96), (40, 120)  # uniform ranges of the notes played
DEFAULTS = OvertoneSettings()  # the overtone voice's (the first piece's) default sound
POINTS = 300  # the learner stand-in's data points
CURVES, CURVE_POINTS = 8, 2000
SILENT = 1e-4  # a second of the tap whose peak stays under this was silence
ROOT = Path(__file__).resolve().parent.parent

# A moving interference field: a few dozen trigonometric calls per pixel, like a scene's background.
_FIELD_FRAG = """
#version 330
uniform float time;
uniform vec4 theta;
in vec2 uv;
out vec4 color;
void main() {
    vec2 p = (uv - 0.5) * vec2(16.0 / 9.0, 1.0) * 6.0;
    float v = 0.0;
    for (int i = 0; i < 8; i++) {
        float a = float(i) * 0.785 + time * 0.1 * float(i + 1);
        vec2 d = vec2(cos(a), sin(a));
        v += sin(dot(p, d) * (1.0 + 0.3 * float(i)) + time + theta[i % 4]);
    }
    v = v / 8.0;
    color = vec4(0.5 + 0.5 * cos(6.283 * (v + vec3(0.0, 0.33, 0.67))), 1.0);
}
"""
_CURVE_VERT = """
#version 330
in vec2 in_pos;
void main() { gl_Position = vec4(in_pos, 0.0, 1.0); }
"""
_CURVE_FRAG = """
#version 330
uniform vec3 tint;
out vec4 color;
void main() { color = vec4(tint, 1.0); }
"""


class CubicLearner:
    """The stand-in for a jax learner: a cubic fitted by gradient descent to noisy points of a
    target cubic (numpy, hand-written gradient), one step per frame; a new target on demand."""

    def __init__(self, seed: int = 0, points: int = POINTS, rate: float = 0.3) -> None:
        self.rng = np.random.default_rng(seed)
        self.x = np.linspace(-1.0, 1.0, points)
        self.design = np.vander(self.x, 4, increasing=True)  # 1, x, x^2, x^3
        self.rate = rate
        self.theta = np.zeros(4)
        self.new_target()

    def new_target(self) -> None:
        coefficients = self.rng.uniform(-1.0, 1.0, 4)
        self.y = self.design @ coefficients + self.rng.normal(0.0, 0.05, self.x.size)

    def step(self) -> float:
        """One gradient step on the mean squared error; returns the loss before it."""
        residual = self.design @ self.theta - self.y
        self.theta -= self.rate * (2.0 / self.x.size) * (self.design.T @ residual)
        return float(residual @ residual / self.x.size)


class FrameLoad:
    """What the main process draws each frame: the field shader over the whole frame, then
    ``CURVES`` line strips of ``CURVE_POINTS`` points (the learner's curve, shifted), read back."""

    def __init__(self, display: Display) -> None:
        gl = display.gl
        self.display = display
        self.field = gl.program(vertex_shader=FULLSCREEN_VERT, fragment_shader=_FIELD_FRAG)
        quad = gl.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4").tobytes())
        self.quad = gl.vertex_array(self.field, [(quad, "2f", "in_pos")])
        self.curve = gl.program(vertex_shader=_CURVE_VERT, fragment_shader=_CURVE_FRAG)
        self.points = np.zeros((CURVES, CURVE_POINTS, 2), np.float32)
        self.points[:, :, 0] = np.linspace(-0.95, 0.95, CURVE_POINTS)
        self.powers = np.vander(np.linspace(-1.0, 1.0, CURVE_POINTS), 4, increasing=True)
        self.vertices = gl.buffer(reserve=self.points.nbytes)
        self.lines = gl.vertex_array(self.curve, [(self.vertices, "2f", "in_pos")])

    def draw(self, now: float, theta: np.ndarray) -> np.ndarray:
        display = self.display
        display.begin_frame()
        self.field["time"].value = now
        self.field["theta"].value = tuple(float(t) for t in theta)
        self.quad.render(moderngl.TRIANGLE_STRIP)
        shape = self.powers @ theta
        for index in range(CURVES):
            self.points[index, :, 1] = np.clip(0.15 * shape + 0.8 - 0.2 * index, -1.0, 1.0)
        self.vertices.write(self.points.tobytes())
        self.curve["tint"].value = (1.0, 1.0, 1.0)
        for index in range(CURVES):
            self.lines.render(moderngl.LINE_STRIP, first=index * CURVE_POINTS, vertices=CURVE_POINTS)
        display.end_frame()
        return display.read_pixels()


@dataclass
class SoakRun:
    period: int
    realtime: bool = True  # the JACK graph's scheduling
    seconds: float = 0.0
    underruns: int = 0
    underruns_at_start: int = 0
    xruns: int = 0
    heard: TapWatch | None = None
    loads: np.ndarray = field(default_factory=lambda: np.zeros(0))
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0))  # each block's perf_counter()
    xrun_at: list[float] = field(default_factory=list)  # each xrun's perf_counter(), listener's
    loads_lost: int = 0
    late_blocks: int = 0
    blocks: int = 0
    frames: int = 0
    frame_ms: list[float] = field(default_factory=list)
    notes: int = 0
    voices: list[float] = field(default_factory=list)
    restarts: int = 0
    callback_errors: int = 0
    reference: bool = False  # jack_metro played, not our audio process
    causes: dict[str, int] = field(default_factory=dict)  # xrun_causes()


def xrun_causes(xrun_at: list[float], starts: np.ndarray, loads: np.ndarray,
                period: float) -> dict[str, int]:
    """Sorts the xruns the listener saw (``xrun_at``, perf_counter seconds; notifications closer
    than ``SAME_XRUN`` are one event) by what our blocks did just before each (``starts``: when
    each callback began, ``loads``: how long it computed, seconds; ``period``: seconds):

    - ``long_callback``: a callback took longer than the period (it computed too long, or its
      thread lost the CPU: a virtual machine's guest counts time the host takes as the thread's);
    - ``late_start``: else, one began more than 1.5 periods after the one before it (its thread
      was woken late: it had nothing to do with what the process computes);
    - ``unseen``: neither (the server, another client, or a notification too late to match).

    The window is the blocks begun in the three periods plus 2 ms before the notification, which
    JACK sends when the next cycle finds the graph unfinished."""
    events: list[float] = []
    for when in sorted(xrun_at):
        if not events or when - events[-1] > SAME_XRUN:
            events.append(when)
    causes = {"events": len(events), "long_callback": 0, "late_start": 0, "unseen": 0}
    order = np.argsort(starts)
    starts, loads = np.asarray(starts)[order], np.asarray(loads)[order]
    for when in events:
        last = int(np.searchsorted(starts, when, side="right"))
        first = int(np.searchsorted(starts, when - 3 * period - 0.002, side="left"))
        if np.any(loads[first:last] > period):
            causes["long_callback"] += 1
        elif np.any(np.diff(starts[max(0, first - 1):last]) > 1.5 * period):
            causes["late_start"] += 1
        else:
            causes["unseen"] += 1
    return causes


class LoadCollector:
    """Copies the audio process's per-block compute times and start times out of their rings
    (``state.loads``, ``state.block_starts``, indexed by ``blocks % len``) before they are
    overwritten; call at least every few hundred ms."""

    def __init__(self, state) -> None:
        self.state = state
        self.seen = int(state.get("blocks"))
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.lost = 0

    def collect(self) -> None:
        size = len(self.state.loads)
        blocks = int(self.state.get("blocks"))
        if blocks - self.seen > size:
            self.lost += blocks - self.seen - size
            self.seen = blocks - size
        if blocks > self.seen:
            rows = np.arange(self.seen, blocks) % size
            self.parts.append((self.state.loads[rows].copy(), self.state.block_starts[rows].copy()))
            self.seen = blocks

    def loads(self) -> np.ndarray:
        return np.concatenate([loads for loads, _ in self.parts]) if self.parts else np.zeros(0)

    def starts(self) -> np.ndarray:
        return np.concatenate([starts for _, starts in self.parts]) if self.parts else np.zeros(0)


class TapWatch:
    """Looks at what the audio process played (its tap, ``state.read_tap``) about once a second:
    the peak, and how much of it was silent (a whole second's peak under ``SILENT``)."""

    def __init__(self, state, sample_rate: int) -> None:
        self.state = state
        self.rate = sample_rate
        self.seen = int(state.get("tap_frames"))
        self.seconds = self.silent_seconds = self.peak = 0.0

    def look(self) -> None:
        if int(self.state.get("tap_frames")) - self.seen < self.rate:
            return
        played, self.seen = self.state.read_tap(self.seen)
        loudest = float(np.abs(played[:, :2]).max())
        self.peak = max(self.peak, loudest)
        self.seconds += len(played) / self.rate
        if loudest < SILENT:
            self.silent_seconds += len(played) / self.rate


def _frame(state: dict, audio: LiveAudio | None, learner: CubicLearner, frames: FrameLoad,
           now: float, rng: random.Random) -> None:
    """One frame of the stand-in show: a note when due, a learner step, a detune, a drawn frame.
    ``audio`` None: the reference run, the same work without our audio process."""
    if now >= state["next_note"]:
        note = rng.randint(*NOTES)
        if audio is not None:
            audio.note_on(note, rng.randint(*VELOCITIES))
        if note < 60:  # a bass note starts a new polynomial, as in the piece
            learner.new_target()
        state["next_note"] = now + rng.uniform(*NOTE_GAP)
        state["notes"] += 1
    loss = learner.step()
    if audio is not None:
        audio.detune(min(0.5, 0.05 * loss))
    frames.draw(now, learner.theta)
    if audio is not None:
        audio.poll()


def _start_reference(jack_env: dict[str, str]) -> subprocess.Popen:
    """The reference client: ``jack_metro`` (C, from jackd2's example clients), a click track
    whose process callback does next to nothing, connected to the dummy playback ports as ours is."""
    env = {**os.environ, **jack_env}
    metro = subprocess.Popen(["jack_metro", "-n", REFERENCE, "-b", "300", "-f", "880"], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10.0
    while True:
        ports = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True).stdout.split()
        out = [port for port in ports if port.startswith(f"{REFERENCE}:")]
        if out:
            for playback in ("system:playback_1", "system:playback_2"):
                subprocess.run(["jack_connect", out[0], playback], env=env, capture_output=True)
            return metro
        if metro.poll() is not None or time.monotonic() > deadline:
            stop_child(metro)
            raise RuntimeError(f"jack_metro did not start (status {metro.poll()})")
        time.sleep(0.1)


def _soak(period: int, realtime: bool, frames: FrameLoad, seconds: float,
          reference: bool = False) -> SoakRun:
    """One measured window. ``reference``: jack_metro plays instead of our audio process."""
    run = SoakRun(period, realtime, reference=reference)
    rng = random.Random(period)
    learner = CubicLearner(seed=period)
    with jack_server(SAMPLE_RATE, period, realtime=realtime) as jack_env:
        audio = None if reference else LiveAudio(MixerConfig(
            sample_rate=SAMPLE_RATE, block_size=period, partials=PARTIALS, polyphony=POLYPHONY))
        listener = metro = None
        try:
            if audio is None:
                metro = _start_reference(jack_env)
            else:
                audio.start()
                if not audio.wait_running(15.0):
                    raise RuntimeError(f"the audio process did not start at {period} frames per period")
            listener = subprocess.Popen(
                [sys.executable, "-m", "bench.jack_listener"], cwd=ROOT, env={**os.environ, **jack_env},
                text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            ready = read_line(listener.stdout, 20, "'ready' from the listener")
            if ready.strip() != "ready":
                raise RuntimeError(f"listener: {ready.strip()}")
            state = {"next_note": 0.0, "notes": 0}
            started = time.perf_counter()
            while time.perf_counter() - started < SETTLE:  # the same load, unmeasured
                _frame(state, audio, learner, frames, time.perf_counter() - started, rng)
            listener.stdin.write("mark\n")
            listener.stdin.flush()
            if audio is not None:
                run.underruns_at_start = audio.health()["xruns"]  # summed over restarts, if any
                blocks_at_start = int(audio.state.get("blocks"))
                collector = LoadCollector(audio.state)
                run.heard = TapWatch(audio.state, SAMPLE_RATE)
            state["notes"] = 0
            window = time.perf_counter()
            due = window
            while (now := time.perf_counter()) - window < seconds:
                _frame(state, audio, learner, frames, now - started, rng)
                run.frame_ms.append((time.perf_counter() - now) * 1000)
                if audio is not None:
                    collector.collect()
                    run.heard.look()
                    run.voices.append(audio.state.get("voices"))
                due += 1.0 / FPS
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                else:
                    due = time.perf_counter()  # behind: no burst of frames to catch up
            run.seconds = time.perf_counter() - window
            listener.stdin.write("report\n")
            listener.stdin.flush()
            report = read_line(listener.stdout, 10, "the listener's report")
            reported = json.loads(report)
            run.xruns, run.xrun_at = int(reported["xruns"]), reported["at"]
            run.frames, run.notes = len(run.frame_ms), state["notes"]
            if audio is not None:
                collector.collect()
                run.underruns = audio.health()["xruns"] - run.underruns_at_start
                run.blocks = int(audio.state.get("blocks")) - blocks_at_start
                run.loads, run.starts, run.loads_lost = collector.loads(), collector.starts(), collector.lost
                run.late_blocks = int(np.count_nonzero(run.loads > period / SAMPLE_RATE))
                run.restarts = audio.restarts
                run.callback_errors = int(audio.state.get("callback_errors"))
                run.causes = xrun_causes(run.xrun_at, run.starts, run.loads, period / SAMPLE_RATE)
        finally:
            if listener is not None:
                stop_child(listener, listener.stdin.close)
            if metro is not None:
                stop_child(metro)
            if audio is not None:
                audio.close()
    return run


def _figures(run: SoakRun) -> list[Figure]:
    period_ms = 1000 * run.period / SAMPLE_RATE
    tag = f"{run.period} frames, {'realtime' if run.realtime else 'non-realtime'} JACK"
    if run.reference:
        return [Figure(f"{tag}: reference C client (jack_metro), JACK xruns (listener)", run.xruns, "count"),
                Figure(f"{tag}: reference C client, frames per second", run.frames / run.seconds, "fps")]
    load = run.loads * 1000 / period_ms * 100  # % of the period
    causes = run.causes
    return [
        Figure(f"{tag}: underruns (audio process)", run.underruns, "count",
               *(("= 0", run.underruns == 0) if run.realtime else ())),
        Figure(f"{tag}: JACK xruns (listener)", run.xruns, "count"),
        Figure(f"{tag}: xrun events during a callback of ours longer than the period",
               causes["long_callback"], "count"),
        Figure(f"{tag}: xrun events with our callback woken late", causes["late_start"], "count"),
        Figure(f"{tag}: xrun events with neither", causes["unseen"], "count"),
        Figure(f"{tag}: callbacks computing longer than the period", run.late_blocks, "count"),
        Figure(f"{tag}: callback load p50", float(np.percentile(load, 50)), "%"),
        Figure(f"{tag}: callback load p99", float(np.percentile(load, 99)), "%"),
        Figure(f"{tag}: callback load max", float(load.max()), "%"),
        Figure(f"{tag}: frames rendered", run.frames, "count"),
        Figure(f"{tag}: frames per second", run.frames / run.seconds, "fps"),
    ]


def run() -> BenchResult:
    minutes = f"{SECONDS / 60:g} min" if SECONDS >= 60 else f"{SECONDS:g} s"
    result = BenchResult(
        key="soak",
        title="Audio soak under show load",
        method=(f"For each period size ({' and '.join(map(str, PERIODS))} frames at {SAMPLE_RATE} Hz) a "
                "private `jackd -R -d dummy -p PERIOD` runs (realtime scheduling, as a show machine "
                "runs JACK; then once more at 256 frames with `--no-realtime`, as the tests run it, "
                f"for at most {RUNS[2][2]:g} s: the worst case) and the audio process (which asks for SCHED_FIFO "
                "itself; the log says what it got) "
                f"(`LiveAudio`, blocks of the period, {PARTIALS} partials, polyphony {POLYPHONY}, the "
                f"default percussive envelope: {DEFAULTS.release:g} s release, "
                f"{DEFAULTS.bass_release:g} s below MIDI {DEFAULTS.bass_below}) plays a note-on every "
                f"{NOTE_GAP[0]:g}-{NOTE_GAP[1]:g} s (random notes {NOTES[0]}-{NOTES[1]}, velocities "
                f"{VELOCITIES[0]}-{VELOCITIES[1]}). The "
                f"benchmark process meanwhile runs a frame loop paced at {FPS:g} fps: a learner "
                "stand-in step (kept so the figures compare across runs; the piece benchmark below runs "
                "the real jax learners with live audio: a numpy cubic fitted by one "
                f"hand-written gradient step per frame on {POINTS} noisy points, a new target cubic "
                "at each bass note), a `DETUNE` command for all voices from its loss, then a "
                f"{SIZE[0]}x{SIZE[1]} frame on the headless EGL display (a full-frame shader summing "
                f"eight moving sine gratings per pixel, then {CURVES} line strips of {CURVE_POINTS} "
                "points updated from the learner), `gl.finish()` and `read_pixels()`. A JACK client "
                "in a process of its own (`bench/jack_listener.py`) counts JACK's xrun "
                "notifications; it has no process callback and no ports, so it adds nothing to the "
                "cycle and cannot be late itself (a recording client runs Python in every cycle and "
                "can miss cycles under this load, adding xruns of its own). Whether "
                "sound is played is checked on the audio process's tap (what its callback "
                f"produced) about once a second. After {SETTLE:g} s of the same load, a window of "
                f"{minutes} per period size is measured (`SHOWRUNNER_SOAK_SECONDS` sets it): "
                "underruns are the audio process's own count (PortAudio's output-underflow status "
                "flag, which the JACK host API raises after any xrun of the graph, whichever "
                "client was late), xruns the listener's; the callback load is each block's compute "
                "time in the callback (`state.loads`, collected every frame before the ring wraps) "
                "over the period (wall time: a callback whose thread loses its CPU, on this virtual "
                "machine also to the host, which the guest's clock counts as the thread's, shows as "
                "long as one that computes too much). Each xrun event (JACK may "
                "notify one twice) is sorted by our blocks begun in the 3 periods + 2 ms before its "
                "notification (`state.block_starts`, the same clock): a callback computing longer "
                "than the period, else a block begun over 1.5 periods after the one before "
                "(its thread was woken late: nothing it computes shows there), else neither. "
                "After each realtime window, the same window runs again with a reference client in "
                "place of our audio process: `jack_metro` (C, jackd2's example click track, whose "
                "callback does next to nothing), connected to the same playback ports, under the "
                "same frame load; its xruns are what the machine's scheduling costs any client."),
        goal=("Goal: 0 underruns at both period sizes with realtime JACK: the audio process, "
              "away from the main process's GIL, keeps up while frames are rendered, read back and "
              "learned from. The reference client's xruns say how far 0 is within this machine's reach. "
              "The non-realtime run has no goal: it shows what a JACK graph without "
              f"realtime scheduling suffers on this busy {os.cpu_count()}-core machine."))
    if SECONDS <= 0:
        result.error = "SHOWRUNNER_SOAK_SECONDS must be positive"
        return result
    try:
        display = open_display(SIZE, headless=True)
    except UserError as error:
        result.error = str(error)
        return result
    try:
        frames = FrameLoad(display)
        for _ in range(10):  # shader compilation and first-use costs before any audio runs
            frames.draw(0.0, np.zeros(4))
        runs = []
        for period, realtime, seconds in RUNS:
            runs.append(_soak(period, realtime, frames, seconds))
            if realtime:
                runs.append(_soak(period, realtime, frames, seconds, reference=True))
        renderer = display.renderer
    except JackUnavailable as error:
        result.error = str(error)
        return result
    finally:
        display.close()
    for soak in runs:
        result.figures += _figures(soak)
        if soak.reference:
            frame_ms = np.asarray(soak.frame_ms)
            result.notes.append(
                f"{soak.period} frames per period, reference C client: {soak.seconds:.0f} s measured, "
                f"{soak.xruns} JACK xruns; frame work median {np.median(frame_ms):.1f} ms, p99 "
                f"{np.percentile(frame_ms, 99):.1f} ms.")
            continue
        heard = soak.heard
        frame_ms = np.asarray(soak.frame_ms)
        result.notes.append(
            f"{soak.period} frames per period, {'realtime' if soak.realtime else 'non-realtime'} "
            f"JACK: {soak.seconds:.0f} s measured, {soak.blocks} blocks, "
            f"{soak.notes} note-ons, voices sounding median {np.median(soak.voices):.0f} / max "
            f"{max(soak.voices):.0f}; frame work median {np.median(frame_ms):.1f} ms, p99 "
            f"{np.percentile(frame_ms, 99):.1f} ms; underruns before the window (start-up) "
            f"{soak.underruns_at_start}; the tap's peak {heard.peak:.2f}, {heard.silent_seconds:.0f} s "
            f"of {heard.seconds:.0f} s silent"
            + (f"; {soak.loads_lost} block loads lost (ring wrapped)" if soak.loads_lost else "")
            + (f"; audio process restarted {soak.restarts}x" if soak.restarts else "")
            + (f"; {soak.callback_errors} callback errors" if soak.callback_errors else "") + ".")
        if heard.peak < 0.01:
            raise RuntimeError(f"the audio process played nothing at {soak.period} frames per period "
                               f"(tap peak {heard.peak:.4f}): the soak did not play")
    result.notes.append(f"Rendered by {renderer}.")
    return result
