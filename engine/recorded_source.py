"""A live video source whose pictures are also recorded (the camera of a performance log)."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("showrunner.recorder")


class RecordedSource:
    """A live video source whose pictures are also recorded, each stamped with the show time it
    was first shown at, into a constant-rate file a replay reads back by show time (the camera of
    a performance log). The file is started at the first picture (its size is known then)."""

    FPS = 30

    def __init__(self, source, path: Path) -> None:
        self.source = source
        self.path = Path(path)
        self.recorder = None  # an engine.recorder.Recorder, once the first picture came
        self.failed = False
        self._number = 0
        self._time = 0.0

    def seek(self, show_time: float) -> None:
        self._time = show_time
        self.source.seek(show_time)

    def latest(self):
        frame = self.source.latest()
        if frame is not None and frame.number != self._number:
            self._number = frame.number
            if self.recorder is None and not self.failed:
                height, width = frame.pixels.shape[:2]
                from engine.recorder import Recorder

                try:
                    self.recorder = Recorder(self.path, (width // 2 * 2, height // 2 * 2), self.FPS,
                                             live=True, pictures=True)
                    self.recorder.start()
                except Exception as error:  # the show goes on without the camera's recording
                    self.failed = True
                    log.error("cannot record the camera to %s: %s; the show goes on", self.path, error)
            if self.recorder is not None:
                self.recorder.picture(frame.pixels, self._time)
        return frame

    def stop(self) -> None:
        self.source.stop()
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            stats = recorder.close()
            log.info("camera recorded to %s: %d frames%s", self.path, stats["frames"],
                     f", {recorder.dropped} dropped" if recorder.dropped else "")

    def __getattr__(self, name: str):  # the rest (is_file, source, reconnects) is the source's
        return getattr(self.source, name)
