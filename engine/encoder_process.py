"""The encoder process: ``python -m engine.encoder_process SETTINGS``, started by
:class:`engine.recorder.Recorder`. It owns the file (:class:`engine.encoder.MediaWriter`), takes
frames from the shared slots as the engine's messages name them, and the sound from the audio
process's tap (live) or from the pipe (offline); it finishes the file at the end of the show, on
SIGTERM and when the engine dies (its pipe closes)."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sys
import threading
from collections import deque
from pathlib import Path

import numpy as np

from engine.child_process import wait_until
from engine.encoder import yuv420
from engine.record_protocol import (FAILED, FINISHED, MESSAGE, RESYNC_FRAMES, RESYNC_SECONDS, RUNNING,
                                    SHOW_BUSY, YIELD_LIMIT, YIELD_POLL, Slots)

class _Encoder:
    def __init__(self, settings: dict) -> None:
        from engine.encoder import MediaWriter

        self.settings = settings
        self.fps = settings["fps"]
        size = tuple(settings["size"])
        self.pictures = settings.get("pictures", False)
        self.live = settings["live"]
        self.slots = Slots(Path(settings["slots"]), settings["slot_count"], size, create=False,
                            channels=3 if self.pictures else 4)
        # Both processes have it mapped now: its name can go, so that nothing is left in /dev/shm
        # whichever process is killed.
        self.slots.path.unlink(missing_ok=True)
        self.previous: np.ndarray | None = None  # the last picture (pictures: repeated over gaps)
        self.writer = MediaWriter(settings["path"], size, self.fps, settings["sample_rate"],
                                  live=settings["live"], lossless=settings.get("lossless", False),
                                  absolute=settings.get("absolute", False),
                                  bframes=settings.get("bframes", True))
        self.tap = None
        if settings["tap"]:
            from engine.audio.shared import SharedAudioState

            self.tap = SharedAudioState.attach(settings["tap"])
        self.anchor: int | None = None  # tap frame at show time 0
        self.read_to = 0  # tap frames taken so far
        self.observed: deque = deque(maxlen=RESYNC_FRAMES)  # tap frame at show time 0, per frame
        self.taps: deque = deque(maxlen=RESYNC_FRAMES)  # where the tap was, per frame
        self.slots.set("status", RUNNING)

    def frame(self, slot: int, pts: int, tap_now: int, show_us: int) -> None:
        pixels = self.slots.pixels[slot]
        try:
            self.wait_for_rest()
            picture = pixels.copy() if self.pictures else yuv420(pixels, bottom_up=True)
        finally:
            self.slots.state[slot] = 0  # free again once its pixels are read, or could not be
        if self.pictures and self.previous is not None:
            # A constant frame rate: the previous picture holds until this one (at most 10 s of
            # repeats; a longer gap is left as a gap).
            for held in range(max(self.writer.last_pts + 1, pts - 10 * round(self.fps)), pts):
                self.writer.video(self.previous, held)
        self.previous = picture
        if self.anchor is not None and tap_now >= 0:
            # The sound's clock (the audio device) and the show's can part: the audio process may
            # start playing after the show started, an underrun or a restart loses time. Each
            # frame says where the tap was at its show time; when the median of the last few
            # disagrees with the anchor, re-anchor so the sound stays with the pictures.
            self.observed.append(tap_now - round(show_us * 1e-6 * self.writer.sample_rate))
            self.taps.append(tap_now)
            # A tap that did not move over the window has no sound to keep in step (no audio
            # device: the show goes on silently): nothing to re-anchor to.
            if len(self.observed) == self.observed.maxlen and self.taps[-1] > self.taps[0]:
                median = int(np.median(self.observed))
                if abs(median - self.anchor) > RESYNC_SECONDS * self.writer.sample_rate:
                    self.drain_tap()
                    self.anchor = median
                    self.observed.clear()
                    self.slots.set("resyncs", self.slots.get("resyncs") + 1)
        self.wait_for_rest()
        self.writer.video(picture, pts)
        self.slots.set("frames", self.writer.frames)

    def wait_for_rest(self) -> None:
        """Live: wait while the show says it is busy with a frame (at most YIELD_LIMIT), so that
        the conversion and the encoding, a few ms each, fall in its rest between frames. The
        engine says busy only when the recording yields to the show."""
        if self.live:
            wait_until(lambda: not self.slots.ctrl[SHOW_BUSY], YIELD_LIMIT, YIELD_POLL)

    def start_tap(self, anchor: int) -> None:
        self.anchor = anchor
        self.read_to = anchor

    def drain_tap(self) -> None:
        if self.tap is None or self.anchor is None:
            return
        from engine.audio.shared import TAP_FRAMES

        block, written = self.tap.read_tap(self.read_to)
        lost = max(0, written - TAP_FRAMES - self.read_to)
        if lost:
            self.slots.set("lost_samples", self.slots.get("lost_samples") + lost)
        start = self.read_to + lost - self.anchor
        self.read_to = written
        if len(block) == 0:
            return
        sound = block[:, :2]
        if self.tap.get("input_channels") > 0:  # the room (piano, voice) under the overtones
            sound = sound + block[:, 2:4]
        if start < 0:
            sound = sound[-start:]
            start = 0
        self.writer.audio(sound, start)
        self.slots.set("samples", self.writer.samples)

    def pushed(self, payload: bytes) -> None:
        self.writer.audio(np.frombuffer(payload, np.float32).reshape(-1, 2))
        self.slots.set("samples", self.writer.samples)

    def close(self) -> None:
        self.drain_tap()
        self.writer.close()
        self.slots.set("status", FINISHED)


def _read_messages(stream, out: queue.Queue) -> None:
    """The pipe reader thread: messages into ``out``; None when the pipe closes."""
    try:
        while True:
            head = stream.read(MESSAGE.size)
            if len(head) < MESSAGE.size:
                break
            kind, a, b, c, d = MESSAGE.unpack(head)
            payload = stream.read(c) if kind == b"A" else b""
            out.put((kind, a, b, c, d, payload))
            if kind == b"Q":
                return
    finally:
        out.put(None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine decides when recording ends
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logging.basicConfig(level=logging.INFO, format="recorder: %(message)s")
    settings = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    Path(argv[0]).unlink(missing_ok=True)
    if settings["live"]:
        # The show comes first: the live encoder runs when a core is idle, and when none is the
        # recording drops frames (counted) rather than taking time from the show's frames.
        # Offline the renderer waits for the encoder instead, and both should run at full speed.
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (AttributeError, OSError):
            try:
                os.nice(19)
            except OSError:
                pass
        # And on one thread: beside the show, a second one would only take a core from it.
        import cv2

        cv2.setNumThreads(1)
    encoder = _Encoder(settings)
    messages: queue.Queue = queue.Queue()
    threading.Thread(target=_read_messages, args=(sys.stdin.buffer, messages), daemon=True).start()
    errors = 0
    try:
        while not stop.is_set():
            try:
                message = messages.get(timeout=0.05)
            except queue.Empty:
                encoder.drain_tap()
                continue
            if message is None or message[0] == b"Q":
                break
            kind, a, b, c, d, payload = message
            try:
                if kind == b"V":
                    encoder.frame(a, b, c, d)
                    encoder.drain_tap()
                elif kind == b"A":
                    encoder.pushed(payload)
                elif kind == b"T":
                    encoder.start_tap(a)
            except OSError as error:  # the disk is full or gone: the engine sees the process end
                encoder.slots.set("errors", errors + 1)
                logging.getLogger("recorder").error("cannot write %s: %s; recording stopped",
                                                    encoder.writer.path, error.strerror or error)
                encoder.slots.set("status", FAILED)
                return 1
            except Exception:
                errors += 1
                encoder.slots.set("errors", errors)
                if errors == 1:
                    logging.getLogger("recorder").exception("encoding failed (the recording goes on)")
    finally:
        try:
            encoder.close()
        except Exception as error:  # one line, not a traceback on the performer's terminal
            logging.getLogger("recorder").error("cannot finish %s: %s", encoder.writer.path, error)
            return 1
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    os._exit(code)  # the pipe reader may still wait in read(): do not join it at shutdown
