"""Video input through opencv: a webcam (index or name) or a video file standing in for it (looped).

Two ways to get frames, one interface (:meth:`latest` -> :class:`Frame` or None):

- :class:`LiveCapture` (a live show, a camera): a thread reads the source as fast as it delivers
  and keeps only the newest frame; the show never waits for it. A camera that stops delivering is
  reopened every ``retry`` seconds; meanwhile the last frame stays and :attr:`Frame.level` falls
  from 1 to 0 over ``fade`` seconds after ``lost_after`` seconds.
- :class:`FileFrames` (an offline render): the frame of a video file at a given show time, decoded in
  order, so renders are deterministic.
- :class:`FileCapture` (a live show, a video file standing in for the camera): the frames
  :class:`FileFrames` would give at the show's times, decoded a frame ahead on a thread, so the
  show never waits and a replay of the show sees the same pictures.

:class:`VideoTexture` uploads a source's frames to one GL texture, once per new frame.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.errors import UserError

log = logging.getLogger("showrunner.camera")


@dataclass(frozen=True)
class Frame:
    """One video frame: ``pixels`` (height, width, 3) uint8 RGB, top row first; ``number`` counts
    frames delivered (a new number means new pixels); ``level`` 1 = live, falling to 0 while lost."""

    pixels: np.ndarray
    number: int
    level: float = 1.0


def _cv2():
    import cv2

    return cv2


def describe(source: str | int) -> str:
    return f"camera {source}" if isinstance(source, int) else str(source)


def _open(source: str | int):
    cv2 = _cv2()
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        capture.release()
        return None
    return capture


def resolve_source(source: str | int | None, fallback: str | Path | None,
                   cameras: Callable[[], list[tuple[str, str]]] | None = None) -> str | int | None:
    """What to open for a camera setting: a device index, a video file, or a camera by name.

    A digit string is a device index; an existing file is a video file; otherwise the text is a
    case-insensitive substring of a camera's name (``showrunner devices`` lists them) and the
    camera's device path is returned. With no source the fallback file is used, with a notice. A
    camera name that matches nothing, or a missing fallback file, is bad input (exit 2).
    """
    if source is None:
        if fallback is None:
            return None
        path = Path(fallback)
        if not path.is_file():
            raise UserError(f"camera fallback video not found: {path}")
        log.info("no camera asked for: playing the fallback video %s", path)
        return str(path)
    if isinstance(source, int) or re.fullmatch(r"\d+", str(source)):
        return int(source)
    if Path(source).is_file():
        return str(source)
    if cameras is None:
        from engine.devices import cameras
    found = cameras()
    matches = [device for device, name in found if str(source).lower() in f"{device} {name}".lower()]
    if not matches:
        listed = ", ".join(f"{device} ({name})" for device, name in found) or "none"
        raise UserError(f"camera '{source}' not found (cameras: {listed}); use an index, a name, "
                        "or a video file")
    return matches[0]


class VideoSource(Protocol):
    """A camera or a video file as the show reads it (:class:`LiveCapture`, :class:`FileCapture`,
    :class:`FileFrames`, or a recorded camera: :class:`engine.recorded_source.RecordedSource`)."""

    def seek(self, show_time: float) -> None: ...

    def latest(self) -> Frame | None: ...

    def stop(self) -> None: ...


def open_source(source: str | int | None, fallback: str | Path | None, offline: bool,
                loop: bool = True) -> VideoSource | None:
    """The show's video source, started: live, a :class:`LiveCapture` for a camera and a
    :class:`FileCapture` for a video file; offline, :class:`FileFrames`; None when there is no
    camera and no fallback. Offline, a camera device cannot be read deterministically: the fallback
    file stands in for it (with a notice), else no video. ``loop``: a file source starts again at
    its end (False: it holds its last picture, as a recording of the camera should)."""
    if offline:  # no camera is looked for: a name need not match one on this machine
        index = isinstance(source, int) or re.fullmatch(r"\d+", str(source))
        if source is None or (not index and Path(source).is_file()):
            resolved = resolve_source(source, fallback)
            return None if resolved is None else FileFrames(resolved, loop=loop)
        if fallback is not None:
            log.info("rendering offline: the fallback video %s stands in for camera %s", fallback, source)
            return FileFrames(resolve_source(None, fallback))
        log.warning("rendering offline: camera %s cannot be rendered and there is no fallback video", source)
        return None
    resolved = resolve_source(source, fallback)
    if resolved is None:
        return None
    is_file = isinstance(resolved, str) and Path(resolved).is_file()
    capture = FileCapture(resolved, loop=loop) if is_file else LiveCapture(resolved)
    capture.start()
    log.info("video input: %s", describe(resolved))
    return capture


class LiveCapture:
    """Frames from a camera or a looped video file, read on a thread; the newest frame wins."""

    def __init__(self, source: str | int, lost_after: float = 1.0, fade: float = 2.0, retry: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.is_file = False  # decided when the source opens (a file may appear later)
        self.lost_after, self.fade, self.retry = lost_after, fade, retry
        self.clock = clock
        self._lock = threading.Lock()
        self._pixels: np.ndarray | None = None
        self._number = 0
        self._last_arrival = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reconnects = 0

    def seek(self, show_time: float) -> None:
        """Live frames come when they come: show time does not choose them."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="video-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
            self._thread = None

    def latest(self) -> Frame | None:
        with self._lock:
            pixels, number, arrival = self._pixels, self._number, self._last_arrival
        if pixels is None:
            return None
        silent = self.clock() - arrival - self.lost_after
        level = 1.0 if silent <= 0 else max(0.0, 1.0 - silent / self.fade)
        return Frame(pixels, number, level)

    def _deliver(self, bgr: np.ndarray) -> None:
        rgb = _cv2().cvtColor(bgr, _cv2().COLOR_BGR2RGB)
        with self._lock:
            self._pixels = rgb
            self._number += 1
            self._last_arrival = self.clock()

    def _run(self) -> None:
        cv2 = _cv2()
        capture, lost_logged = None, False
        while not self._stop.is_set():
            if capture is None:
                capture = _open(self.source)
                if capture is None:
                    if not lost_logged:
                        log.warning("video source %s not available; retrying every %.0f s",
                                    describe(self.source), self.retry)
                        lost_logged = True
                    self._stop.wait(self.retry)
                    continue
                if lost_logged:
                    self.reconnects += 1
                    log.info("video source %s is back", describe(self.source))
                lost_logged = False
                self.is_file = isinstance(self.source, str) and Path(self.source).is_file()
                period = 1.0 / (capture.get(cv2.CAP_PROP_FPS) or 30.0) if self.is_file else 0.0
                next_due = time.monotonic()
            ok, bgr = capture.read()
            if not ok:
                if self.is_file:  # the end of the file: loop
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, bgr = capture.read()
                if not ok:
                    log.warning("video source %s stopped delivering frames", describe(self.source))
                    capture.release()
                    capture, lost_logged = None, True
                    self._stop.wait(self.retry)
                    continue
            self._deliver(bgr)
            if period:
                next_due += period
                self._stop.wait(max(0.0, next_due - time.monotonic()))
        if capture is not None:
            capture.release()


class FileFrames:
    """The frame of a (looped) video file at a show time: deterministic renders.

    Frames are decoded in order; a jump backwards (the loop) or far ahead seeks instead of decoding
    every frame in between."""

    def __init__(self, path: str | Path, loop: bool = True) -> None:
        cv2 = _cv2()
        self.path = str(path)
        self.loop = loop  # False: after the last frame, the last frame stays
        self._capture = _open(self.path)
        if self._capture is None:
            raise UserError(f"cannot read video file {self.path}")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or 30.0
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        self._position = -1  # index in the file of the frame in _pixels
        self._pixels: np.ndarray | None = None
        self._show_time = 0.0
        self._delivered = 0

    def seek(self, show_time: float) -> None:
        self._show_time = show_time

    def _read(self) -> np.ndarray | None:
        ok, bgr = self._capture.read()
        return bgr if ok else None

    def latest(self) -> Frame | None:
        cv2 = _cv2()
        wanted = self.index(self._show_time)
        if self.frame_count:
            wanted = wanted % self.frame_count if self.loop else min(wanted, self.frame_count - 1)
        if wanted != self._position or self._pixels is None:
            if wanted < self._position or wanted - self._position > 2 * self.fps:
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, wanted)
                self._position = wanted - 1
            bgr = None
            while self._position < wanted:
                read = self._read()
                if read is None:  # the real end of the file (the frame count was too high)
                    if self._position < 0:
                        raise UserError(f"video file {self.path} has no frames")
                    self.frame_count = self._position + 1
                    if not self.loop:
                        break  # the last frame stays
                    wanted %= self.frame_count
                    self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    self._position, bgr = -1, None
                    continue
                bgr = read
                self._position += 1
            if bgr is not None:
                self._pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                self._delivered += 1
        return Frame(self._pixels, self._delivered) if self._pixels is not None else None

    def index(self, show_time: float) -> int:
        """The number of the file's frame due at ``show_time``, counting on past the end."""
        return int(show_time * self.fps + 1e-9)

    def stop(self) -> None:
        self._capture.release()


class FileCapture:
    """A video file standing in for the camera in a live show: at each show time, the very frame
    :class:`FileFrames` gives offline (so a replay of the show sees the same pictures), decoded on a
    thread one frame ahead of the show, so drawing never waits for the decoder. Should the decoder
    fall behind, the show keeps the last frame it had."""

    is_file = True
    reconnects = 0

    def __init__(self, path: str | Path, loop: bool = True) -> None:
        self.source = str(path)
        self._frames = FileFrames(path, loop=loop)  # an unreadable file is bad input (exit 2)
        self._show_time = 0.0
        self._ready: dict[int, Frame] = {}  # frames decoded ahead, by frame number
        self._current: Frame | None = None
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def seek(self, show_time: float) -> None:
        with self._wake:
            self._show_time = show_time
            self._wake.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="video-file", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=3)
            self._thread = None
        self._frames.stop()

    def latest(self) -> Frame | None:
        with self._wake:
            due = self._frames.index(self._show_time)
            frame = self._ready.get(due)
            if frame is not None and frame is not self._current:
                self._current = frame
                self._wake.notify()  # time to decode the next one
        return self._current

    def _wanted(self) -> int | None:
        """The next frame to decode (the due one, else the one after it), or None."""
        due = self._frames.index(self._show_time)
        for number in (due, due + 1):
            if number not in self._ready:
                return number
        return None

    def _run(self) -> None:
        frames = self._frames
        while True:
            with self._wake:
                while not self._stopping and (number := self._wanted()) is None:
                    self._wake.wait()
                if self._stopping:
                    return
            try:
                frames.seek(number / frames.fps)
                picture = frames.latest()
            except Exception:
                log.exception("video file %s: decoding failed; the last picture stays", self.source)
                return
            with self._wake:
                due = frames.index(self._show_time)
                self._ready = {n: f for n, f in self._ready.items() if n >= due}
                self._ready[number] = picture  # its number changes only with its pixels


class VideoTexture:
    """A GL texture holding a source's newest frame; uploads once per new frame number.

    Attributes:
        texture: the moderngl texture (RGB, linear filtering, edges clamped), or None before a frame.
        level: the frame's level (1 live, towards 0 while the camera is lost; 0 with no frame yet).
        uploads: frames uploaded so far.
    """

    snapshot_by_reference = True  # engine.snapshot: the restoring show's own, not saved

    def __init__(self, gl, source) -> None:
        self.gl = gl
        self.source = source
        self.texture = None
        self.level = 0.0
        self.uploads = 0
        self._number = 0

    def update(self, show_time: float | None = None) -> bool:
        """Take the source's frame for ``show_time`` (live sources, or None: the newest); True when a
        new frame was uploaded."""
        if show_time is not None:
            self.source.seek(show_time)
        frame = self.source.latest()
        if frame is None:
            self.level = 0.0
            return False
        self.level = frame.level
        if frame.number == self._number:
            return False
        height, width = frame.pixels.shape[:2]
        if self.texture is None or self.texture.size != (width, height):
            if self.texture is not None:
                self.texture.release()
            import moderngl

            self.texture = self.gl.texture((width, height), 3)
            self.texture.filter = moderngl.LINEAR, moderngl.LINEAR
            self.texture.repeat_x = self.texture.repeat_y = False
        # Rows top first in the frame; GL's first row is the bottom: flip in the shader (uv.y).
        self.texture.write(np.ascontiguousarray(frame.pixels).data)
        self._number = frame.number
        self.uploads += 1
        return True

    def close(self) -> None:
        self.source.stop()
        if self.texture is not None:
            self.texture.release()
            self.texture = None
