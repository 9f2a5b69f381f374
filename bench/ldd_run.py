"""Benchmark: the piece, all four parts, live, as ``showrunner run setlists/ldd-demo.toml`` plays it.

``setlists/ldd-demo.toml`` (four cues of "Losses, Dissonances, and Distortions", each handing over
after 30 s) runs in real time at 1280x720 on the headless EGL display, played by the bundled piano
performance through the MIDI-file performer, with the bundled webcam video as the camera (decoded
on its own thread by show time, as live) and the audio process (``LiveAudio``) playing into a private dummy JACK
server at 48 kHz / 256 frames. The show's metrics log gives, per part, the frame time, the learner
time per tick and the learners' steps and new targets, and underruns over the run; a thread samples
this process's resident memory once a second. ``SHOWRUNNER_LDD_SECONDS_PER_PART`` (default 30)
shortens the parts (a temporary copy of the setlist with ``after = N``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.jack_server import JackUnavailable, jack_server
from bench.result import BenchResult, Figure
from engine.audio.live import LiveAudio
from engine.video_in import open_source
from engine.clock import RealTime
from engine.display import open_display
from engine.midi_file import MidiFilePerformer, load_performance
from engine.setlist import LoadedSetlist, load_setlist
from engine.show import Show, ShowOptions

ROOT = Path(__file__).resolve().parent.parent
SETLIST = ROOT / "setlists" / "ldd-demo.toml"
MIDI_FILE = ROOT / "assets" / "midi" / "prettymidi_example_type0_420tempos_sysex.mid"
SECONDS_VARIABLE = "SHOWRUNNER_LDD_SECONDS_PER_PART"
SECONDS_PER_PART = float(os.environ.get(SECONDS_VARIABLE, "30"))
SIZE = (1280, 720)
SAMPLE_RATE, PERIOD = 48000, 256
CURVE_PARTS = ("ldd_cubic", "ldd_knot")  # scenes, for the render benchmark's goals
GOAL_CURVE_MS, GOAL_CAMERA_MS = 16.7, 33.0  # the render benchmark's median goals at 1280x720
MEMORY_FROM = 60.0  # seconds: growth is measured from here to the end
MEMORY_GOAL_MIB = 5.0
MEMORY_WINDOW = 10.0  # seconds: the RSS "at" a time is the lowest sample of this many before it
MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss(pid: int | str = "self") -> int | None:
    """Resident bytes of a process (``/proc/PID/statm``), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as file:
            return int(file.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None


class MemorySampler(threading.Thread):
    """Once a second: (seconds since start, this process's RSS, the audio process's RSS or None)."""

    def __init__(self, audio_pid: int | None, every: float = 1.0) -> None:
        super().__init__(name="bench-rss", daemon=True)
        self.audio_pid, self.every = audio_pid, every
        self.samples: list[tuple[float, int, int | None]] = []
        self._done = threading.Event()
        self._started_at = 0.0

    def start(self) -> None:
        self._started_at = time.perf_counter()
        super().start()

    def run(self) -> None:
        due = self._started_at
        while True:
            now = time.perf_counter()
            self.samples.append((now - self._started_at, _rss() or 0,
                                 _rss(self.audio_pid) if self.audio_pid else None))
            due += self.every
            if self._done.wait(max(0.0, due - time.perf_counter())):
                break

    def stop(self) -> None:
        """Stop sampling and take a last sample (once; later calls do nothing)."""
        if self._done.is_set() or not self._started_at:
            return
        self._done.set()
        if self.is_alive():
            self.join(5.0)
        self.samples.append((time.perf_counter() - self._started_at, _rss() or 0,
                             _rss(self.audio_pid) if self.audio_pid else None))


def demo_setlist_text(seconds_per_part: float) -> str:
    """The text of ``ldd-demo.toml`` with every ``after = N`` set to ``seconds_per_part`` and the
    camera fallback made absolute, so that a copy anywhere plays the same show."""
    original = load_setlist(SETLIST)
    text = SETLIST.read_text(encoding="utf-8")
    text = re.sub(r"\bafter\s*=\s*[0-9.]+", f"after = {seconds_per_part!r}", text)
    fallback = original.settings.camera.fallback
    if fallback:
        absolute = original.resolve_path(fallback).resolve()
        text = re.sub(r"^fallback\s*=.*$", lambda _: f"fallback = {json.dumps(str(absolute))}", text,
                      flags=re.MULTILINE)
    return text


def demo_setlist(seconds_per_part: float) -> LoadedSetlist:
    """``ldd-demo.toml`` itself, or (other part lengths) a temporary copy
    (:func:`demo_setlist_text`), loaded through the normal setlist path."""
    original = load_setlist(SETLIST)
    afters = {cue.cue.advance.after for cue in original.cues}
    if afters == {seconds_per_part}:
        return original
    text = demo_setlist_text(seconds_per_part)
    handle, name = tempfile.mkstemp(prefix="bench-ldd-", suffix=".toml")
    path = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        setlist = load_setlist(path)
    finally:
        path.unlink(missing_ok=True)
    if {cue.cue.advance.after for cue in setlist.cues} != {seconds_per_part}:
        raise RuntimeError(f"the temporary setlist does not hand over after {seconds_per_part:g} s")
    return setlist


@dataclass
class Part:
    """What the metrics log says about one cue."""

    cue: str
    scene: str
    ticks: int = 0
    frame_ms: list[float] = field(default_factory=list)
    learn_ms: list[float] = field(default_factory=list)
    events: Counter = field(default_factory=Counter)
    notes: int = 0  # note-ons delivered
    trail_max: int | None = None  # the most frozen curves the scene drew in a frame (cubic scenes)
    first_time: float = 0.0
    last_time: float = 0.0


@dataclass
class LiveRun:
    parts: dict[str, Part]
    duration: float  # show seconds
    tick_ms: float
    lines: int
    xruns_end: int
    xruns_at_show_start: int
    memory: list[tuple[float, int, int | None]]
    frames: int
    ticks: int
    cues_played: list[str]
    recompilations: int
    scene_errors: int
    renderer: str
    jack_realtime: bool
    jack_realtime_error: str
    audio_device: str
    audio_scheduling: str
    audio_restarts: int
    video: str
    audio_status: str


class TrailWatch:
    """The show's frame sink: per cue, the most frozen curves (``scene.trail``, the cubic parts'
    ``FadingCurves``) in a drawn frame; None for scenes without a trail."""

    def __init__(self, show: Show) -> None:
        self.show = show
        self.most: dict[str, int] = {}

    def __call__(self) -> None:
        playhead = self.show.playhead
        trail = getattr(self.show.scenes[playhead.index], "trail", None)
        curves = getattr(trail, "curves", None)
        if curves is not None:
            cue = playhead.current.id
            self.most[cue] = max(self.most.get(cue, 0), len(curves))


def read_metrics(path: Path, cue_order: list[str]) -> tuple[dict[str, Part], int, int]:
    """Parts (in setlist order, only those played), the number of lines, the last line's xruns."""
    parts: dict[str, Part] = {}
    lines = xruns = 0
    with open(path, encoding="utf-8") as file:
        for text in file:
            record = json.loads(text)
            lines += 1
            cue = record["cue"]
            part = parts.get(cue)
            if part is None:
                part = parts[cue] = Part(cue, record["scene"], first_time=record["time"])
            part.ticks += 1
            part.last_time = record["time"]
            if "frame_ms" in record:
                part.frame_ms.append(float(record["frame_ms"]))
            if "learn_ms" in record:
                part.learn_ms.append(float(record["learn_ms"]))
            part.events.update(record.get("events", ()))
            part.notes += sum(1 for text, _ in record.get("midi", ()) if text.startswith("note_on"))
            xruns = int(record.get("xruns", xruns))
    ordered = {cue: parts[cue] for cue in cue_order if cue in parts}
    ordered.update((cue, part) for cue, part in parts.items() if cue not in ordered)
    return ordered, lines, xruns


def _start_jack(stack: ExitStack) -> tuple[bool, str]:
    """A private dummy JACK server: realtime (``jackd -R``) when allowed, else ``--no-realtime``."""
    try:
        stack.enter_context(jack_server(SAMPLE_RATE, PERIOD, realtime=True))
        return True, ""
    except JackUnavailable as error:
        stack.enter_context(jack_server(SAMPLE_RATE, PERIOD, realtime=False))
        return False, str(error)


def _log_line(path: Path, marker: str) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "?"
    found = [line.split(marker, 1)[1].strip() for line in text.splitlines() if marker in line]
    return found[-1] if found else "?"


def measure(seconds_per_part: float = SECONDS_PER_PART) -> LiveRun:
    setlist = demo_setlist(seconds_per_part)
    settings = setlist.settings
    if tuple(settings.resolution) != SIZE:
        raise RuntimeError(f"{SETLIST.name} is {settings.resolution}, not {SIZE[0]}x{SIZE[1]}")
    if not settings.audio.enabled:
        raise RuntimeError(f"{SETLIST.name} has [audio] enabled = false")
    camera = settings.camera
    if camera.fallback is None:
        raise RuntimeError(f"{SETLIST.name} has no camera fallback video")
    fallback = setlist.resolve_path(camera.fallback)
    if not fallback.is_file():
        raise FileNotFoundError(f"the webcam stand-in video is missing: {fallback}")
    performance = load_performance(MIDI_FILE)
    duration = seconds_per_part * len(setlist.cues)
    with ExitStack() as stack:
        handle, name = tempfile.mkstemp(prefix="bench-ldd-", suffix=".jsonl")
        os.close(handle)
        metrics = Path(name)
        stack.callback(metrics.unlink, missing_ok=True)
        handle, name = tempfile.mkstemp(prefix="bench-ldd-audio-", suffix=".log")
        os.close(handle)
        audio_log = Path(name)
        stack.callback(audio_log.unlink, missing_ok=True)

        jack_realtime, jack_error = _start_jack(stack)
        # As `showrunner run`: the camera (no device: the setlist's fallback video, looped, decoded
        # on its own thread by show time), the audio process, then the display and the scenes.
        video = open_source(None, fallback, offline=False)
        if video is not None:
            stack.callback(video.stop)
        config = settings.audio.mixer_config().model_copy(
            update={"sample_rate": SAMPLE_RATE, "block_size": PERIOD})
        audio = LiveAudio(config, piano=settings.audio.piano in ("auto", "on"),
                          device=settings.audio.device, log_file=audio_log,
                          realtime=settings.audio.realtime)
        stack.callback(audio.close)
        audio.start()
        display = open_display(SIZE, headless=True, title=settings.title)
        stack.callback(display.close)
        show = Show(setlist, ShowOptions(duration=duration, fps=settings.fps, metrics=metrics),
                    RealTime(), display, audio=audio, video_source=video)
        failures = show.load()
        if failures:
            raise RuntimeError(failures[0])
        if not audio.wait_running(20.0):
            raise RuntimeError(f"the audio process did not start on the JACK server ({audio.health()})")
        show.add_source(MidiFilePerformer(performance, show.queue))
        trails = TrailWatch(show)
        show.frame_sink = trails
        sampler = MemorySampler(audio.pid)
        stack.callback(sampler.stop)
        xruns_at_start = int(audio.health()["xruns"])
        sampler.start()
        summary = show.run(performer_end=performance.length)
        sampler.stop()
        audio_status = str(audio.health().get("audio_status", "running"))
        parts, lines, xruns = read_metrics(metrics, [cue.id for cue in setlist.cues])
        for cue, most in trails.most.items():
            if cue in parts:
                parts[cue].trail_max = most
        return LiveRun(
            parts=parts, duration=duration, tick_ms=1000 / settings.tick_rate, lines=lines,
            xruns_end=xruns, xruns_at_show_start=xruns_at_start,
            memory=list(sampler.samples), frames=summary.frames, ticks=summary.ticks,
            cues_played=list(summary.cues_played), recompilations=summary.recompilations,
            scene_errors=summary.scene_errors, renderer=display.renderer,
            jack_realtime=jack_realtime, jack_realtime_error=jack_error,
            audio_device=audio.state.device or "?",
            audio_scheduling=_log_line(audio_log, "audio process scheduling:"),
            audio_restarts=audio.restarts, video=_shown(fallback.resolve()),
            audio_status=audio_status)


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _memory_from(samples: list[tuple[float, int, int | None]]) -> float:
    """Seconds from which growth is measured: the first minute's end, or a short run's middle."""
    end = samples[-1][0]
    return MEMORY_FROM if end >= 2 * MEMORY_FROM else end / 2


def _window(samples: list[tuple[float, int, int | None]], first: float, last: float) -> np.ndarray:
    """MiB of this process's RSS in the samples from ``first`` to ``last`` seconds (both included)."""
    return np.array([rss for t, rss, _ in samples if first - 1e-6 <= t <= last + 1e-6], float) / MIB


def _memory_figures(samples: list[tuple[float, int, int | None]], result: BenchResult) -> None:
    """RSS at the start, at ``_memory_from`` and at the end, as the lowest sample of the
    ``MEMORY_WINDOW`` seconds before each (a frame's transient allocations swing single samples; a
    leak raises the low), the growth between them and the slope of the window lows after it."""
    times = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples], dtype=float) / MIB
    end = float(times[-1])
    start = _memory_from(samples)
    span = min(MEMORY_WINDOW, start / 2)
    at_start = float(_window(samples, start - span, start).min())
    at_end = float(_window(samples, end - span, end).min())
    growth = at_end - at_start
    edges = np.arange(start, end + 1e-6, span)
    lows = [(b + span / 2, float(w.min())) for a, b in zip(edges[:-1], edges[1:])
            if len(w := _window(samples, a, b))]
    lows = [(start - span / 2, at_start)] + lows
    slope = float(np.polyfit([t / 60 for t, _ in lows], [low for _, low in lows], 1)[0]) \
        if len(lows) >= 3 else float("nan")
    peak = float(rss.max())
    result.figures += [
        Figure("memory: RSS at the show's start", float(rss[0]), "MiB"),
        Figure(f"memory: RSS at {start:.0f} s (lowest of the {span:g} s before)", at_start, "MiB"),
        Figure(f"memory: RSS at the end, {end:.0f} s (lowest of the last {span:g} s)", at_end, "MiB"),
        Figure(f"memory: growth from {start:.0f} s to the end", growth, "MiB",
               f"<= {MEMORY_GOAL_MIB:g} MiB", bool(growth <= MEMORY_GOAL_MIB)),
        Figure(f"memory: slope from {start:.0f} s ({span:g} s lows, least squares)", slope, "MiB/min"),
        Figure("memory: RSS peak (any sample)", peak, "MiB"),
    ]
    note = (f"Memory: {len(samples)} samples of this process's RSS (`/proc/self/statm`, once a "
            f"second); first {rss[0]:.1f} MiB, last {rss[-1]:.1f} MiB, peak {peak:.1f} MiB at "
            f"{times[int(rss.argmax())]:.0f} s; lowest per {span:g} s from {start:.0f} s (MiB): "
            + ", ".join(f"{low:.1f}" for _, low in lows[1:]))
    audio = [s[2] for s in samples if s[2]]
    if audio:
        note += (f". The audio process (not counted above) went from {audio[0] / MIB:.1f} to "
                 f"{audio[-1] / MIB:.1f} MiB")
    if start != MEMORY_FROM:
        note += (f". The run was shorter than {2 * MEMORY_FROM:g} s, so growth is measured over its "
                 "second half instead of after the first minute")
    result.notes.append(note + ".")


def run() -> BenchResult:
    seconds = SECONDS_PER_PART
    result = BenchResult(key="ldd", title="The piece, all four parts, live", method="", goal="")
    if seconds <= 0:
        result.error = f"{SECONDS_VARIABLE} must be positive"
        return result
    live = measure(seconds)
    total = live.duration
    memory_from = _memory_from(live.memory)
    since = (f"{memory_from:g} s" if memory_from == MEMORY_FROM else
             f"{memory_from:.0f} s (the middle: this run is shorter than {2 * MEMORY_FROM:g} s)")
    jack = ("realtime (`jackd -R`)" if live.jack_realtime else
            f"non-realtime (`--no-realtime`: `jackd -R` failed here: {live.jack_realtime_error})")
    result.method = (
        f"`setlists/ldd-demo.toml` (its four cues, each handing over after {seconds:g} s"
        + ("" if seconds == 30 else f": a temporary copy with `after = {seconds:g}`, "
           f"`{SECONDS_VARIABLE}`; the file says 30")
        + f") runs as `showrunner run` runs it: `RealTime` clock, {SIZE[0]}x{SIZE[1]} on the headless "
        f"EGL display (renderer `{live.renderer}`; `end_frame` calls `gl.finish()`, so the "
        "renderer's work is inside the frame time), played by `MidiFilePerformer` from "
        f"`assets/midi/{MIDI_FILE.name}` (its program changes before the first note, instrument selections, left out as in `showrunner run`), the "
        f"camera is `open_source(None, fallback)`: the setlist's fallback video `{live.video}` looped, "
        "played by show time and decoded a frame ahead on its own thread (`FileCapture`), and the sound is the audio process (`LiveAudio`, the setlist's "
        f"[audio] settings, piano on, blocks of {PERIOD}) on a private dummy JACK server at "
        f"{SAMPLE_RATE} Hz / {PERIOD} frames, {jack}; the audio process opened {live.audio_device} "
        f"with scheduling {live.audio_scheduling}. The show runs {total:g} s of show time with a "
        "JSON Lines metrics log, read afterwards. Per part (the metrics line's `cue`): frame time "
        "p50 / p99 from the lines' `frame_ms` (the show's draw time of the last frame before that "
        "tick: video upload, scene drawing, fade, `gl.finish()`; a frame drawn in a loop iteration "
        "that ran no tick is not in the log, and a part's first line may carry the previous part's "
        "last frame); learner time per tick: p50 / p99 of `learn_ms` (milliseconds in learner calls: "
        "steps, renewals) over the ticks that have it, and that p99 as a share of the "
        f"{live.tick_ms:.1f} ms tick period; the learners' `step` and `new_target` events counted. "
        "Underruns: the audio process's own count (PortAudio's output-underflow flag) as the "
        "metrics lines' `xruns`, at the show's start and on the last line. Memory: a thread reads "
        "this process's resident set (`/proc/self/statm`) once a second from the show's start "
        "(the audio process is a process of its own and is sampled apart). Single samples swing: "
        "memory a frame allocates and frees again (the renderer's storage for the frame's draw "
        "calls) is resident in some samples and not in others, by up to about 20 MiB when a part "
        "draws many curves, while a leak raises the lowest samples too. So the RSS \"at\" a time is "
        f"the lowest sample of the {MEMORY_WINDOW:g} s before it; growth is the RSS at the end "
        f"minus the RSS at {since}, the slope a least-squares line through the lows of "
        f"consecutive {MEMORY_WINDOW:g} s windows from there; the peak and the lows are in the "
        f"notes. The tolerance of {MEMORY_GOAL_MIB:g} MiB: RSS creeps by a few MiB without any leak "
        "(malloc arenas and numpy temporaries returned late or never, the metrics log's buffer, "
        "the video frames' buffers), while a leak of about 90 KiB a second (1.5 KiB a frame at "
        "60 fps; keeping a 512-point curve every tick would be 240 KiB a second) passes 5 MiB "
        "within the minute. The most frozen curves a part drew in a frame (its `FadingCurves`, read "
        "from the scene by the show's frame sink) are in the notes.")
    result.goal = (f"Goal: no memory growth after the first minute (<= {MEMORY_GOAL_MIB:g} MiB from "
                   f"{MEMORY_FROM:g} s to the end) and 0 underruns during the show. The issue sets no "
                   "frame-time goal; the median goals shown are the render benchmark's at 1280x720 "
                   f"(curve parts <= {GOAL_CURVE_MS:g} ms, 60 fps; camera parts <= "
                   f"{GOAL_CAMERA_MS:g} ms, the camera's 30 fps), as context for the same scenes "
                   "drawn live, with learning, sound and video decoding in the same machine.")
    for part in live.parts.values():
        tag = f"{part.cue} ({part.scene})"
        goal = GOAL_CURVE_MS if part.scene in CURVE_PARTS else GOAL_CAMERA_MS
        p50 = _percentile(part.frame_ms, 50)
        share = 100 * _percentile(part.learn_ms, 99) / live.tick_ms
        result.figures += [
            Figure(f"{tag}: frame time p50", p50, "ms", f"<= {goal:g} ms", bool(p50 <= goal)),
            Figure(f"{tag}: frame time p99", _percentile(part.frame_ms, 99), "ms"),
        ]
        if part.learn_ms:  # no learner call in a part: nothing to give percentiles of
            result.figures += [
                Figure(f"{tag}: learner time per tick p50", _percentile(part.learn_ms, 50), "ms"),
                Figure(f"{tag}: learner time per tick p99", _percentile(part.learn_ms, 99), "ms"),
                Figure(f"{tag}: learner p99 / tick period", share, "%"),
            ]
        result.figures += [
            Figure(f"{tag}: steps", part.events["step"], "count"),
            Figure(f"{tag}: new targets", part.events["new_target"], "count"),
        ]
    during = live.xruns_end - live.xruns_at_show_start
    result.figures += [
        Figure("underruns during the show", during, "count", "= 0", during == 0),
        Figure("underruns in all (last metrics line's xruns)", live.xruns_end, "count"),
    ]
    _memory_figures(live.memory, result)
    result.notes.append("RSS per part, lowest and highest sample (MiB): " + "; ".join(
        f"{part.cue} {rss.min():.1f}-{rss.max():.1f}" for part in live.parts.values()
        if len(rss := _window(live.memory, part.first_time, part.last_time))) + ".")
    for part in live.parts.values():
        result.notes.append(
            f"{part.cue}: show time {part.first_time:.2f}-{part.last_time:.2f} s, {part.ticks} ticks, "
            f"{len(part.frame_ms)} frame times, frame max {max(part.frame_ms, default=0):.1f} ms; "
            f"{part.notes} note-ons; learner calls in {len(part.learn_ms)} ticks, max "
            f"{max(part.learn_ms, default=0):.2f} ms; {part.events['step']} steps, "
            f"{part.events['new_target']} new targets"
            + (f", at most {part.trail_max} frozen curves drawn in a frame"
               if part.trail_max is not None else "")
            + "".join(f", {part.events[e]} {e}" for e in ("recompile", "scene_error", "audio_restarted")
                      if part.events[e]) + ".")
    result.notes.append(
        f"The show: {live.ticks} ticks, {live.frames} frames drawn ({live.frames / max(total, 1e-9):.1f} "
        f"per second), {live.lines} metrics lines; cues started in order {' '.join(live.cues_played)}; "
        f"{live.recompilations} jax recompilations, {live.scene_errors} scene errors; underruns at "
        f"the show's start (scene loading) {live.xruns_at_show_start}"
        + (f"; the audio process restarted {live.audio_restarts}x" if live.audio_restarts else "")
        + (f"; audio status at the end: {live.audio_status}" if live.audio_status != "running" else "")
        + ".")
    repeated = sorted(cue for cue, n in Counter(live.cues_played).items() if n > 1)
    if repeated:
        result.notes.append(
            f"Started more than once: {', '.join(repeated)} (the setlist's triggers or timers).")
    missing = [cue for cue in ("cubic", "knot", "split", "bubbles") if cue not in live.parts]
    if missing:
        raise RuntimeError(f"parts never played: {', '.join(missing)} (cues {live.cues_played})")
    if not any(part.events["step"] for part in live.parts.values()):
        raise RuntimeError("the learners made no step in any part")
    idle = [part.cue for part in live.parts.values() if not part.events["step"]]
    if idle:  # a short part may see no chord: said, not failed
        result.notes.append(f"No learner step in {', '.join(idle)} (no note that steps it, in "
                            f"{seconds:g} s of this performance).")
    return result
