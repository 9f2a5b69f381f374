"""Recording the show: the frames the audience sees and the sound, encoded in a process of its own.

The engine's side (:class:`Recorder`) reads each finished frame back into one of a few frame slots
in shared memory and tells the encoder process which slot holds which frame, in a 33-byte message.
On a GPU the readback goes through a ring of pixel-pack buffers, so the copy of frame n is collected
two frames later and never waits for the GPU; on Mesa's software rasteriser, which has finished the
frame when it returns, the frame is read straight into the slot (one copy instead of two).
When every slot is still in use the encoder has fallen behind: live, the frame is dropped and
counted (the show never waits); offline (render, replay), the renderer waits for a slot.

The encoder process (``python -m engine.encoder_process SETTINGS``, engine/encoder_process.py) owns the file (:class:`MediaWriter`).
Sound comes one of two ways: live, it reads the audio process's tap itself (what the mixer played,
plus the audio input when there is one), anchored so that tap frame ``anchor`` is show time 0;
offline, the renderer sends the offline mixer's blocks through the pipe. It stops cleanly at the
end of the show, on SIGTERM, and when the engine dies (its pipe closes), so the file is finished
even then; killed itself, it leaves a file playable up to about the last second.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np

from engine import training_cores
from engine.child_process import stop_child, wait_until
from engine.encoder import check_output
from engine.record_protocol import CTRL, MESSAGE, SHOW_BUSY, STARTING, Slots, shm_folder

log = logging.getLogger("showrunner.recorder")


class Recorder:
    """The engine's side of a recording.

    Args:
        path: the .mkv or .mp4 file to write (checked now: bad paths are a :class:`UserError`).
        size: frame size (the show's resolution).
        fps: the frame rate timestamps count in (frame pts = round(show time x fps)).
        live: drop frames rather than wait when the encoder is behind; encode fast.
        sample_rate: the sound's rate, or None for a silent file.
        tap: the live audio process's shared state path (its tap is the sound), or None when the
            renderer sends sound itself (:meth:`audio`).
        slots: frames that can wait for the encoder.
        pictures: the frames are RGB pictures handed to :meth:`picture` (a camera), top row
            first, rather than read from the display; the file then has a constant frame rate
            (a picture is repeated until the next one), so it can be read back by frame number.
        yield_to_show: (live) the encoder starts no work while the show says it is busy
            (:meth:`show_busy`): it converts and encodes in the show's rest between frames, and
            when that rest is too short the recording drops frames, not the show. False: it also
            works while the show draws (at the idle scheduling class), so it records more frames
            and the show's frames take longer. An attribute too, to set before the show starts.
        lossless, absolute, bframes: offline, as :class:`engine.encoder.MediaWriter` takes them (a render
            farm's chunks: engine/farm.py).
    """

    snapshot_by_reference = True  # engine.snapshot: the restoring show's own, not saved

    def __init__(self, path: Path, size: tuple[int, int], fps: float, live: bool,
                 sample_rate: int | None = None, tap: Path | None = None, slots: int = 8,
                 pictures: bool = False, yield_to_show: bool = False, lossless: bool = False,
                 absolute: bool = False, bframes: bool = True) -> None:
        check_output(path, size)
        self.path = Path(path)
        self.size = size
        self.fps = fps
        self.live = live
        self.sample_rate = sample_rate
        self.tap = tap
        handle, name = tempfile.mkstemp(prefix="showrunner-record-", dir=shm_folder())
        os.close(handle)
        self._slots = Slots(Path(name), slots, size, create=True, channels=3 if pictures else 4)
        settings = {"path": str(self.path), "size": list(size), "fps": fps, "live": live,
                    "sample_rate": sample_rate, "tap": str(tap) if tap else None,
                    "slots": str(self._slots.path), "slot_count": slots, "pictures": pictures,
                    "lossless": lossless, "absolute": absolute, "bframes": bframes}
        handle, name = tempfile.mkstemp(prefix="showrunner-record-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(settings, file)
        self._settings = Path(name)
        self.process: subprocess.Popen | None = None
        self.frames = 0  # frames handed to the encoder
        self.dropped = 0  # frames the encoder had no room for (live)
        self.failed = False
        self.capture_ms: float | None = None  # the show's time in the last capture (live: its cost)
        self._last_pts = -1
        self.first_pts: int | None = None  # the first frame's timestamp, in frames
        self._pbos: list = []
        self._in_flight: deque = deque()  # (pbo, pts, tap) read back asynchronously, oldest first
        self._pbo_next = 0
        self._events: list[str] = []
        self._closed = False
        self.yield_to_show = yield_to_show

    # Life cycle.
    def start(self) -> None:
        """Start the encoder process (it opens the file once its imports are done)."""
        self.process = subprocess.Popen([sys.executable, "-m", "engine.encoder_process", str(self._settings)],
                                        stdin=subprocess.PIPE, bufsize=0, start_new_session=True)
        training_cores.widen_child(self.process.pid)  # every CPU, though the show's thread has half
        log.info("recording to %s (encoder process %d)", self.path, self.process.pid)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Before the show starts: block until the encoder process has its file open (its imports
        take a few tenths of a second, more on a loaded machine; the show's first frames would
        otherwise fill the slots and be dropped) or has ended, at most ``timeout`` seconds."""
        def settled() -> bool:
            return self._slots.get("status") != STARTING or self.process is None or self.process.poll() is not None

        if not wait_until(settled, timeout):
            log.warning("the encoder process is not ready after %g s; the show starts without waiting "
                        "longer", timeout)

    def begin(self, anchor: int | None = None) -> None:
        """Show time 0 is now: live, ``anchor`` is the tap's frame count at this moment."""
        if anchor is not None:
            self._send(b"T", anchor, 0, 0, 0)

    def show_busy(self, busy: bool) -> None:
        """The show starts (True) or ends (False) its work on a frame: its ticks and drawing.
        Only a live recorder that yields says busy (offline, the show is never at rest); rest is
        always passed on, so that the encoder is never left waiting."""
        if busy and not (self.live and self.yield_to_show):
            return
        if not self._closed:
            self._slots.ctrl[SHOW_BUSY] = busy

    # Frames.
    def capture(self, display, show_time: float, tap_now: int | None = None) -> None:
        """Read the frame just drawn (``display.fbo``) and queue it for the encoder. ``show_time``:
        the time the frame shows; ``tap_now``: the tap's frame count now (live sound). Whatever
        goes wrong here ends the recording, never the show. ``capture_ms`` is then the time it
        took: the recording's cost to the frame on the show's thread (the readback, handing it on).

        On a software rasteriser the frame's drawing is finished first, outside that time: there
        the read would otherwise wait for the drawing it forces to finish (the frame's own cost,
        which ``gl.finish()`` pays anyway when nothing is recorded)."""
        if getattr(display, "software", False):
            self._guarded(display.gl.finish)
        started = time.perf_counter()
        self._guarded(self._capture, display, show_time, -1 if tap_now is None else tap_now)
        self.capture_ms = (time.perf_counter() - started) * 1000

    def picture(self, rgb: np.ndarray, show_time: float) -> None:
        """Queue an RGB picture (height, width, 3), top row first, shown from ``show_time`` (a
        recorder made with ``pictures=True``); a larger picture is cropped to the file's size."""
        self._guarded(self._picture, rgb, show_time)

    def _guarded(self, work, *args) -> None:
        if self.failed or self._closed:
            return
        try:
            work(*args)
        except Exception as error:
            log.debug("recording failed", exc_info=True)
            self._fail(f"{type(error).__name__}: {error}")

    def _take_pts(self, show_time: float) -> int | None:
        """The frame's timestamp in frames of the recording, or None to leave it out. Live frames
        jitter around their period: one that rounds onto the last timestamp takes the next,
        unless that is more than half a frame early (more frames than the recording's rate)."""
        exact = show_time * self.fps
        pts = max(round(exact), self._last_pts + 1)
        if pts - exact > 0.5 or not self._alive():
            return None
        self._last_pts = pts
        if self.first_pts is None:
            self.first_pts = pts
        return pts

    def _picture(self, rgb: np.ndarray, show_time: float) -> None:
        pts = self._take_pts(show_time)
        slot = self._slot() if pts is not None else None
        if slot is not None:
            height, width = self._slots.pixels.shape[1:3]
            self._slots.pixels[slot] = rgb[:height, :width]
            self._queue_frame(slot, pts, -1, show_time)

    def _capture(self, display, show_time: float, tap_now: int) -> None:
        pts = self._take_pts(show_time)
        if pts is None:
            return
        if getattr(display, "software", False):
            slot = self._slot()
            if slot is None:
                return
            display.fbo.read_into(self._slots.pixels[slot], components=4, alignment=1)
            self._queue_frame(slot, pts, tap_now, show_time)
            return
        if not self._pbos:
            nbytes = self.size[0] * self.size[1] * 4
            self._pbos = [display.gl.buffer(reserve=nbytes) for _ in range(3)]
        pbo = self._pbos[self._pbo_next % 3]
        self._pbo_next += 1
        display.fbo.read_into(pbo, components=4, alignment=1)
        self._in_flight.append((pbo, pts, tap_now, show_time))
        if len(self._in_flight) >= 3:
            self._collect()

    def _collect(self) -> None:
        pbo, pts, tap_now, show_time = self._in_flight.popleft()
        slot = self._slot()
        if slot is not None:
            pbo.read_into(self._slots.pixels[slot])
            self._queue_frame(slot, pts, tap_now, show_time)

    def _slot(self) -> int | None:
        slot = self._slots.free_slot()
        if slot is None and not self.live:
            while slot is None and self._alive():  # offline: every frame counts, wait for room
                time.sleep(0.0005)
                slot = self._slots.free_slot()
        if slot is None:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 300 == 0:
                log.warning("recording: the encoder is behind, %d frame(s) dropped from the recording "
                            "(the show is not affected)", self.dropped)
            self._events.append("record_drop")
        return slot

    def _queue_frame(self, slot: int, pts: int, tap_now: int, show_time: float) -> None:
        self._slots.state[slot] = 1
        if self._send(b"V", slot, pts, tap_now, round(show_time * 1e6)):
            self.frames += 1

    # Sound (offline).
    def audio(self, block: np.ndarray) -> None:
        """Append (N, 2) float32 sound right after the last block (the offline renderer's sink)."""
        if self.failed or self._closed or self.sample_rate is None:
            return
        data = np.ascontiguousarray(block, dtype=np.float32).tobytes()
        self._send(b"A", len(block), 0, len(data), 0, data)

    # Reports.
    def take_events(self) -> list[str]:
        events, self._events = self._events, []
        return events

    def status(self) -> str:
        """One line for the HUD."""
        if self.failed:
            return "recording FAILED (see the log)"
        seconds = max(0, self._last_pts) / self.fps
        text = f"REC {int(seconds // 60):02d}:{seconds % 60:04.1f} {self.path.name}"
        return text + (f" ({self.dropped} dropped)" if self.dropped else "")

    def stats(self) -> dict[str, int]:
        """What the encoder process reports: frames and samples written, audio re-anchors, tap
        samples lost, errors."""
        return {name: self._slots.get(name) for name in CTRL if name != "show_busy"}

    # Plumbing.
    def _alive(self) -> bool:
        if self.failed:
            return False
        if self.process is None or self.process.poll() is not None:
            self._fail(f"the encoder process ended (status {self.process.returncode if self.process else '-'})")
            return False
        return True

    def _send(self, kind: bytes, a: int, b: int, c: int, d: int, payload: bytes = b"") -> bool:
        if self.process is None or self.failed:
            return False
        try:
            self.process.stdin.write(MESSAGE.pack(kind, a, b, c, d) + payload)
        except (BrokenPipeError, OSError) as error:
            self._fail(f"cannot reach the encoder process: {error}")
            return False
        return True

    def _fail(self, reason: str) -> None:
        if not self.failed:
            self.failed = True
            self._events.append("record_failed")
            log.error("recording stopped: %s; the show goes on (what was written so far stays in %s)",
                      reason, self.path)

    def close(self, timeout: float = 60.0) -> dict[str, int]:
        """Finish the file: the frames still in flight, then the encoder's flush. Returns
        :meth:`stats`."""
        if self._closed:
            return self.stats()
        try:
            while self._in_flight and not self.failed:
                self._collect()
        finally:
            self.show_busy(False)  # the frames still queued are encoded without waiting
            self._closed = True
            process = self.process
            if process is not None:
                self._send(b"Q", 0, 0, 0, 0)
                try:
                    process.stdin.close()
                except OSError:
                    pass
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.error("the encoder process did not finish in %.0f s; stopping it", timeout)
                    stop_child(process, grace=3.0)
                if process.returncode not in (0, None) and not self.failed:
                    self._fail(f"the encoder process ended with status {process.returncode}")
            for pbo in self._pbos:
                pbo.release()
            self._pbos = []
            stats = self.stats()
            self._slots.path.unlink(missing_ok=True)
            self._settings.unlink(missing_ok=True)
        if stats["errors"]:
            log.error("recording: %d encoder error(s); see the log", stats["errors"])
        return stats
