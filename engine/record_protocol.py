"""What the engine's recorder and the encoder process share: the frame slots in shared memory,
the control numbers, the pipe's message format and the timing constants (engine/recorder.py,
engine/encoder_process.py)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from engine.errors import UserError

MESSAGE = struct.Struct("<cqqqq")  # kind, four integers; 'A' is followed by its payload
CTRL = ("frames", "samples", "status", "resyncs", "lost_samples", "errors", "show_busy")
SHOW_BUSY = CTRL.index("show_busy")
STARTING, RUNNING, FINISHED, FAILED = range(4)
RESYNC_SECONDS = 0.03  # live sound further than this from the pictures is re-anchored
RESYNC_FRAMES = 9  # over the median of this many frames' observations
# Yielding to the show (live): the encoder starts no work while the show is busy with a frame,
# looking again this often, and waits this long at most (a show that never rests still records).
YIELD_POLL = 0.0005
YIELD_LIMIT = 0.1


class Slots:
    """The shared memory: a few control numbers, one state per slot (0 free, 1 full) and the
    slots' pixels (RGBA bottom row first as OpenGL reads them, or RGB top row first)."""

    def __init__(self, path: Path, count: int, size: tuple[int, int], create: bool,
                 channels: int = 4) -> None:
        self.path = path
        self.count = count
        width, height = size
        head = 8 * (len(CTRL) + count)
        total = head + count * width * height * channels
        if create:
            with open(path, "wb") as file:
                try:
                    # Reserve the memory now: a /dev/shm too small for the slots must fail here,
                    # not kill both processes with SIGBUS in the middle of the show.
                    os.posix_fallocate(file.fileno(), 0, total)
                except OSError as error:
                    path.unlink(missing_ok=True)
                    raise UserError(f"cannot record: no room for {total >> 20} MiB of frame slots in "
                                    f"{path.parent} ({error.strerror})") from None
        self._map = np.memmap(path, dtype=np.uint8, mode="r+", shape=(total,))
        self.ctrl = np.ndarray((len(CTRL),), np.int64, buffer=self._map, offset=0)
        self.state = np.ndarray((count,), np.int64, buffer=self._map, offset=8 * len(CTRL))
        self.pixels = np.ndarray((count, height, width, channels), np.uint8, buffer=self._map, offset=head)

    def get(self, name: str) -> int:
        return int(self.ctrl[CTRL.index(name)])

    def set(self, name: str, value: int) -> None:
        self.ctrl[CTRL.index(name)] = value

    def free_slot(self) -> int | None:
        free = np.flatnonzero(self.state == 0)
        return int(free[0]) if len(free) else None


def shm_folder() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
