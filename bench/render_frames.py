"""Benchmark: frame time of the piece's kinds of scene, against a plain clear-and-present frame.

Five scenes are drawn headless (EGL) into the show framebuffer of :class:`engine.display.Display`,
each frame ``begin_frame`` (bind and clear), the scene's drawing, ``end_frame`` (headless: a
``gl.finish()``, so the GPU's or llvmpipe's work is inside the time):

- plain: nothing drawn (the reference every scene is divided by);
- knot: the target and the learned Lissajous knot, two 1000-point 3D polylines, under the
  orbiting camera;
- cubic: the target and the learned cubic (512 points each), the last 8 learned curves faded, and
  the 100 sample points, in an orthographic projection;
- camera + RGB split: the webcam stand-in video uploaded at its own rate, split by a gradient;
- camera + 32 bubbles: the same video as the plain background, 32 bubbles over it.

Everything that is not drawing (the learner step, curve evaluation, video decoding, bubble ageing)
happens before ``begin_frame``, outside the time. The scenes are interleaved in rounds in one
process and compared as ratios of medians. ``SHOWRUNNER_RENDER_SIZES`` ("1280x720,3840x2160")
chooses the frame sizes (default 1280x720).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.result import BenchResult, Figure

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT.parent / "shared" / "data" / "video" / "intel_asl_book.mkv"
SIZES_VARIABLE = "SHOWRUNNER_RENDER_SIZES"
DEFAULT_SIZES = "1280x720"
SCENES = ("plain", "knot", "cubic", "camera + RGB split", "camera + 32 bubbles")
CURVE_SCENES = ("knot", "cubic")
CAMERA_SCENES = ("camera + RGB split", "camera + 32 bubbles")
ROUNDS = 10  # every scene is timed in each round, in a rotating order
FRAMES = 30  # consecutive timed frames per scene and round
WARM_UP = 10  # untimed frames per scene first (shader and buffer first-use costs)
TICK = 1 / 60  # show time per frame: the knot's orbit, the video's clock
LINE_WIDTH = 3.0  # px
CUBIC_POINTS, OLD_CURVES, OLD_EVERY = 512, 8, 15  # an older curve kept every 15 frames
POINT_SIZE = 6.0  # px
BUBBLES = 32
GOAL_CURVE_MS, GOAL_CAMERA_MS, GOAL_4K_MS = 16.7, 33.0, 4.0
SOFTWARE = ("llvmpipe", "softpipe", "swrast")


def frame_sizes(text: str | None = None) -> list[tuple[int, int]]:
    """Sizes from ``"WxH,WxH"`` (default: ``$SHOWRUNNER_RENDER_SIZES`` or 1280x720)."""
    text = os.environ.get(SIZES_VARIABLE, DEFAULT_SIZES) if text is None else text
    sizes = []
    for part in text.split(","):
        width, _, height = part.strip().lower().partition("x")
        try:
            size = (int(width), int(height))
        except ValueError:
            raise ValueError(f"{SIZES_VARIABLE}: {part.strip()!r} is not WIDTHxHEIGHT") from None
        if min(size) < 1:
            raise ValueError(f"{SIZES_VARIABLE}: {part.strip()!r} is not a frame size")
        sizes.append(size)
    return sizes


def _label(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


class _Scenes:
    """One display of one size with everything each scene draws; ``frame(name)`` draws one frame of
    a scene and returns its time in seconds (preparation outside the time)."""

    def __init__(self, size: tuple[int, int], video: Path = VIDEO) -> None:
        from engine.video_in import FileFrames, VideoTexture
        from engine.display import open_display
        from scenes.ldd.distortions import BubbleLens, RGBSplit
        from scenes.ldd.learners import LearnerGroup, oracle
        from engine.projection import OrbitCamera, orthographic
        from engine.primitives import Points, Polylines

        if not video.is_file():
            raise FileNotFoundError(f"the webcam stand-in video is missing: {video}")
        self.display = open_display(size, headless=True)
        try:
            gl, shaders = self.display.gl, self.display.shaders
            self.size = size
            self.lines = Polylines(gl, shaders, size)
            self.points = Points(gl, shaders)
            self.orbit = OrbitCamera(aspect=size[0] / size[1])
            self.knot = LearnerGroup("knot", seed=1)
            self.knot.load()
            self.cubic = LearnerGroup("cubic", seed=2)
            self.cubic.load()
            self.knot_target = self.knot.curve(0, "target")
            self.cubic_target = self.cubic.curve(0, "target", count=CUBIC_POINTS)
            x = self.cubic.points()[0]  # the learner's sample positions, on the target
            self.samples = np.stack([x, oracle.cubic_values(self.cubic.view.target[0], x)], axis=1)
            reach = max(2.0, 1.2 * float(np.abs(self.cubic_target[:, 1]).max()))
            self.cubic_mvp = orthographic(-1.1, 1.1, -reach, reach)  # a plot filling the frame
            self.old_curves: deque[np.ndarray] = deque(maxlen=OLD_CURVES)
            self.frames = FileFrames(video)
            self.video = VideoTexture(gl, self.frames)
            self.split = RGBSplit(gl, shaders, size)
            self.lens = BubbleLens(gl, shaders, size, seed=3)
            self._stagger_bubbles()
            self.frame_numbers = dict.fromkeys(SCENES, 0)
            self.uploads = 0  # video uploads in timed frames
            self.camera_frames = 0  # timed camera frames
            self.gpu_ms: dict[str, list[float]] = {name: [] for name in SCENES}
            self._previous: str | None = None  # the scene of the last timed frame (GPU timer)
        except BaseException:
            self.display.close()
            raise

    def _stagger_bubbles(self) -> None:
        """``BUBBLES`` bubbles of spread ages, as in a piece where notes keep coming."""
        lens = self.lens
        settings = lens.settings
        life = int(settings.radius / settings.shrink)  # ticks until a bubble has shrunk to nothing
        every = max(1, life // BUBBLES)
        for tick in range(life):
            if tick % every == 0 and lens.count < BUBBLES:
                lens.spawn()
            lens.tick()
        self._keep_bubbles()

    def _keep_bubbles(self) -> None:
        while self.lens.count < BUBBLES:
            self.lens.spawn()

    # Per scene: prepare (untimed) and draw (timed) ---------------------------------------------
    def _prepare(self, name: str, number: int) -> Callable[[], None]:
        show_time = number * TICK
        if name == "plain":
            return lambda: None
        if name == "knot":
            self.knot.step(1)
            learned = self.knot.curve(0)
            mvp = self.orbit.mvp(show_time)

            def knot() -> None:
                self.lines.draw(self.knot_target, (1.0, 1.0, 1.0), LINE_WIDTH, mvp, closed=True)
                self.lines.draw(learned, (1.0, 0.2, 0.2), LINE_WIDTH, mvp, closed=True)
            return knot
        if name == "cubic":
            self.cubic.step(1)
            learned = self.cubic.curve(0, count=CUBIC_POINTS)
            if number % OLD_EVERY == 0:
                self.old_curves.append(learned)
            old = list(self.old_curves)

            def cubic() -> None:
                for age, curve in enumerate(reversed(old)):  # the newest old curve the most visible
                    alpha = 0.5 * (1 - (age + 1) / (len(old) + 1))
                    self.lines.draw(curve, (1.0, 0.2, 0.2, alpha), LINE_WIDTH / 1.5, self.cubic_mvp)
                self.lines.draw(self.cubic_target, (1.0, 1.0, 1.0), LINE_WIDTH, self.cubic_mvp)
                self.lines.draw(learned, (1.0, 0.2, 0.2), LINE_WIDTH, self.cubic_mvp)
                self.points.draw(self.samples, (0.6, 0.8, 1.0), POINT_SIZE, self.cubic_mvp)
            return cubic
        # The camera scenes: the frame of the show time is decoded here (a live show decodes on its
        # capture thread); ``update(show_time)`` in the timed part finds it decoded and uploads it.
        self.frames.seek(show_time)
        self.frames.latest()
        grad = np.array([0.08 * np.sin(show_time), -0.05, 0.03 * np.cos(show_time)])
        if name == "camera + RGB split":
            def split() -> None:
                self.video.update(show_time)
                self.split.draw(self.video.texture, grad)
            return split
        self.lens.tick()
        self._keep_bubbles()

        def bubbles() -> None:
            self.video.update(show_time)
            self.split.draw(self.video.texture, np.zeros(3))
            self.lens.draw(self.video.texture, grad[:2], show_time)
        return bubbles

    def frame(self, name: str, record: bool = True) -> float:
        """One frame of scene ``name``; its seconds from ``begin_frame`` to the end of ``end_frame``."""
        number = self.frame_numbers[name]
        self.frame_numbers[name] = number + 1
        draw = self._prepare(name, number)
        display = self.display
        uploads = self.video.uploads
        clock = time.perf_counter
        started = clock()
        display.begin_frame()
        draw()
        display.end_frame()
        elapsed = clock() - started
        if display.gpu_timing:  # gpu_ms is the previous frame's: credit it to that frame's scene
            if self._previous is not None and display.gpu_ms is not None:
                self.gpu_ms[self._previous].append(display.gpu_ms)
            self._previous = name if record else None
        if record and name in CAMERA_SCENES:
            self.camera_frames += 1
            self.uploads += self.video.uploads - uploads
        return elapsed

    def check(self) -> None:
        """The frame is not black (something was drawn) and the learners are finite."""
        for group in (self.knot, self.cubic):
            view = group.view
            if not (np.isfinite(view.params).all() and np.isfinite(view.loss).all()):
                raise RuntimeError(f"a {group.kind.name} learner is not finite after the benchmark")
        for name in SCENES[1:]:
            self.frame(name, record=False)
            if int(self.display.read_pixels().max()) == 0:
                raise RuntimeError(f"scene {name!r} drew nothing at {_label(self.size)}")

    def close(self) -> None:
        texture = self.video.texture
        self.video_size = texture.size if texture is not None else (0, 0)
        self.video.close()  # stops the file source too
        self.display.close()


def time_scenes(size: tuple[int, int], rounds: int = ROUNDS, frames: int = FRAMES,
                warm_up: int = WARM_UP) -> tuple[dict[str, np.ndarray], _Scenes]:
    """Seconds per frame of every scene at ``size`` (rounds interleaved), and the scenes (closed)."""
    scenes = _Scenes(size)
    try:
        for name in SCENES:
            for _ in range(warm_up):
                scenes.frame(name, record=False)
        times: dict[str, list[float]] = {name: [] for name in SCENES}
        for number in range(rounds):
            shift = number % len(SCENES)
            for name in SCENES[shift:] + SCENES[:shift]:
                times[name] += [scenes.frame(name) for _ in range(frames)]
        scenes.check()
    finally:
        scenes.close()
    return {name: np.array(values) for name, values in times.items()}, scenes


def _goal(name: str, size: tuple[int, int], software: bool) -> float | None:
    """The median goal in ms for scene ``name`` at ``size``, or None (context only)."""
    if name == "plain":
        return None
    if size == (1280, 720):
        return GOAL_CURVE_MS if name in CURVE_SCENES else GOAL_CAMERA_MS
    if size == (3840, 2160) and not software:
        return GOAL_4K_MS
    return None


def run() -> BenchResult:
    sizes = frame_sizes()
    renderer = "?"
    measured = []
    for size in sizes:
        times, scenes = time_scenes(size)
        renderer = scenes.display.renderer
        measured.append((size, times, scenes))
    software = any(name in renderer.lower() for name in SOFTWARE)
    first = measured[0][2]
    video_size, fps = first.video_size, first.frames.fps
    result = BenchResult(
        key="render",
        title="Frame time of the piece's kinds of scene",
        method=(f"Headless EGL, renderer `{renderer}`, frame size{'s' if len(sizes) > 1 else ''} "
                f"{', '.join(_label(s) for s in sizes)} (`{SIZES_VARIABLE}`). Each frame is "
                "`Display.begin_frame()` (bind and clear the show framebuffer), the scene's drawing, "
                "`end_frame()` (headless: `gl.finish()`, so the renderer's work is inside the time), "
                "timed with `time.perf_counter()`. Scenes: *plain* draws nothing (a clear-and-present "
                "frame, the reference); *knot*: the target and the learned Lissajous knot of a "
                "`LearnerGroup(\"knot\")`, two 1000-point 3D `Polylines` "
                f"{LINE_WIDTH:g} px wide (white, red) under `OrbitCamera.mvp(t)`; *cubic*: the target "
                f"and learned cubic of a `LearnerGroup(\"cubic\")`, {CUBIC_POINTS} points each, the "
                f"last {OLD_CURVES} learned curves (one kept every {OLD_EVERY} frames) faded and "
                f"{LINE_WIDTH / 1.5:g} px wide, and the 100 sample points as {POINT_SIZE:g} px `Points`, "
                "orthographic over x in [-1.1, 1.1] (the frame's width); *camera + RGB split*: the "
                f"webcam stand-in video (`{VIDEO.name}`, {video_size[0]}x{video_size[1]} at {fps:g} fps, "
                f"looped) through `FileFrames` advanced {TICK * 1000:.1f} ms per frame, "
                "`VideoTexture.update(show_time)` (one texture upload per new video frame), then "
                "`RGBSplit.draw` with a non-zero gradient; "
                f"*camera + {BUBBLES} bubbles*: the same upload, `RGBSplit.draw` with a zero gradient "
                f"(the plain video) as background, then `BubbleLens.draw` with {BUBBLES} living "
                "bubbles of spread ages (one ticked per frame, a new one spawned when one dies) and a "
                "non-zero gradient. Outside the time, before `begin_frame`: the learner's `step(1)` "
                "and curve evaluation, the video frame's decoding (a live show decodes on its "
                "capture thread), the bubbles' ageing. Inside: the drawing calls' CPU work (vertex "
                "packing, buffer writes, uniforms), the upload and the rendering. After "
                f"{WARM_UP} untimed frames per scene, {ROUNDS} rounds; in each round every scene "
                f"draws {FRAMES} consecutive frames, the order rotated from round to round, so "
                "machine noise falls on all scenes alike. Reported per scene: the median and p99 "
                "frame time and the ratio of its median to the plain frame's median (ratios of "
                "medians from the same run). At the end each scene's frame is read back and must "
                "not be black."),
        goal=(f"Goal at 1280x720: curve scenes (knot, cubic) median <= {GOAL_CURVE_MS:g} ms (60 fps), "
              f"camera scenes median <= {GOAL_CAMERA_MS:g} ms (30 fps, the camera's rate), on this "
              f"machine's renderer; on a GPU every scene median <= {GOAL_4K_MS:g} ms at 3840x2160. "
              "The plain frame and the ratios are context."))
    for size, times, scenes in measured:
        label = _label(size)
        plain = float(np.median(times["plain"])) * 1000
        for name in SCENES:
            ms = times[name] * 1000
            median, p99 = float(np.median(ms)), float(np.percentile(ms, 99))
            goal = _goal(name, size, software)
            result.figures.append(Figure(f"{label} {name}: median", median, "ms",
                                         f"<= {goal:g} ms" if goal is not None else "",
                                         bool(median <= goal) if goal is not None else None))
            result.figures.append(Figure(f"{label} {name}: p99", p99, "ms"))
            if name != "plain":
                result.figures.append(Figure(f"{label} {name}: / plain", median / plain, "x"))
        if any(scenes.gpu_ms.values()):
            result.notes.append(f"{label}: GPU time per frame (timer queries), median: " + ", ".join(
                f"{name} {np.median(values):.3f} ms" for name, values in scenes.gpu_ms.items() if values)
                + ".")
        if scenes.camera_frames:
            result.notes.append(f"{label}: {scenes.uploads} video uploads in {scenes.camera_frames} "
                                "timed camera frames.")
        if size == (3840, 2160) and software:
            result.notes.append(f"{label} on `{renderer}` (a software renderer): context only, the "
                                f"<= {GOAL_4K_MS:g} ms goal is for a GPU.")
    if not any(size == (3840, 2160) for size in sizes):
        result.notes.append(f"3840x2160 not measured here: set `{SIZES_VARIABLE}=1280x720,3840x2160` "
                            "on a GPU machine for the 4K goal.")
    return result
