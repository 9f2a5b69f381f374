"""The shared sample pool: tables of float32 audio that the main process writes and the audio
callback plays, in one shared-memory file (pyo's SharedTable is the model).

The file lives in /dev/shm (the temp directory where there is none) and holds a small header, one
row of int64 fields per table slot, the tables' names and the audio itself. The main process
creates it (:meth:`SamplePool.create`) and reserves tables by name (:meth:`SamplePool.allocate`);
the audio process maps the same file (:meth:`SamplePool.attach`, again after a restart, finding
the tables as they were) and knows tables by slot number only.

Every table is double buffered. The audio callback plays the front buffer; a writer fills the back
buffer (:meth:`write_back`), then asks for a swap (:meth:`request_swap`) and the engine sends a
SWAP command; the callback swaps between two blocks (:meth:`swap`). So a table rewritten while it
plays is heard whole, old or new, never half of each within a block, and neither side locks or
waits: the writer only ever touches the back buffer, and only when no swap is pending (the
"requested" and "applied" counters are equal), which is exactly when the callback will not flip
the buffers. The offline renderer uses the same class in one process.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from engine import leftovers
from engine.errors import UserError

MAGIC = 0x53484F57504F4F4C  # "SHOWPOOL"
VERSION = 1
# Global header (int64): magic, version, capacity (frames of one channel), slots, frames used,
# tables allocated; the rest spare.
GLOBAL_FIELDS = 8
_MAGIC, _VERSION, _CAPACITY, _SLOTS, _USED, _COUNT = range(6)
# A slot's header row (int64). OFFSET counts float32 items from the start of the audio section;
# CAPACITY is frames per buffer; buffer b starts at OFFSET + b * CAPACITY * CHANNELS; LENGTH0 + b is
# buffer b's length in frames. CHANNELS 0 = slot not allocated.
OFFSET, CAPACITY, CHANNELS, FRONT, LENGTH0, LENGTH1, REQUESTED, APPLIED = range(8)
SLOT_FIELDS = 8
NAME_BYTES = 64
_EMPTY = np.zeros((0, 1), np.float32)


class PoolFull(UserError):
    """The pool has no room left for a table (raise ``pool_seconds`` in [sound])."""


def _layout(capacity_frames: int, max_tables: int) -> tuple[int, int, int, int]:
    """Byte offsets of the slot headers, the names and the audio, and the file's size."""
    slots = 8 * GLOBAL_FIELDS
    names = slots + 8 * SLOT_FIELDS * max_tables
    audio = names + NAME_BYTES * max_tables
    audio = (audio + 63) // 64 * 64  # the audio starts on a cache line
    return slots, names, audio, audio + 4 * capacity_frames


class SamplePool:
    """Use :meth:`create` (the owner, main process) or :meth:`attach` (the audio process).

    Attributes:
        path: the shared-memory file.
        data: (capacity_frames,) float32, every table's buffers (for compiled kernels).
        headers: (max_tables, SLOT_FIELDS) int64, the slots' header rows (for compiled kernels).
    """

    snapshot_by_reference = True  # engine.snapshot: shared memory; its written tables are saved below

    def __init__(self, path: Path, owner: bool) -> None:
        self.path = Path(path)
        self.owner = owner
        with open(self.path, "rb") as file:
            head = np.frombuffer(file.read(8 * GLOBAL_FIELDS), np.int64)
        if head.size < GLOBAL_FIELDS or head[_MAGIC] != MAGIC or head[_VERSION] != VERSION:
            raise ValueError(f"{self.path} is not a sample pool")
        capacity, slots = int(head[_CAPACITY]), int(head[_SLOTS])
        slot_at, names_at, audio_at, size = _layout(capacity, slots)
        self._map = np.memmap(self.path, dtype=np.uint8, mode="r+", shape=(size,))
        self._global = np.ndarray((GLOBAL_FIELDS,), np.int64, buffer=self._map, offset=0)
        self.headers = np.ndarray((slots, SLOT_FIELDS), np.int64, buffer=self._map, offset=slot_at)
        self._names = np.ndarray((slots, NAME_BYTES), np.uint8, buffer=self._map, offset=names_at)
        self.data = np.ndarray((capacity,), np.float32, buffer=self._map, offset=audio_at)
        self.capacity_frames, self.max_tables = capacity, slots
        # Views made once per slot and buffer, so table() allocates nothing in steady state.
        self._buffers: list[tuple[np.ndarray, np.ndarray] | None] = [None] * slots
        self._front: list[tuple[int, int, np.ndarray] | None] = [None] * slots

    @classmethod
    def create(cls, capacity_frames: int, max_tables: int = 256) -> SamplePool:
        """A new, empty pool of ``capacity_frames`` float32 frames of one channel (a stereo table
        of N frames takes 4 N: two channels, two buffers) and ``max_tables`` slots."""
        if capacity_frames < 1 or max_tables < 1:
            raise ValueError("a sample pool needs capacity_frames >= 1 and max_tables >= 1")
        leftovers.sweep()  # what killed shows left in memory goes first
        shm = os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)
        folder = "/dev/shm" if shm else None
        handle, name = tempfile.mkstemp(prefix="showrunner-pool-", dir=folder)
        size = _layout(capacity_frames, max_tables)[3]
        head = np.zeros(GLOBAL_FIELDS, np.int64)
        head[[_MAGIC, _VERSION, _CAPACITY, _SLOTS]] = MAGIC, VERSION, capacity_frames, max_tables
        with os.fdopen(handle, "wb") as file:
            file.truncate(size)  # sparse: pages are only committed when written
            file.write(head.tobytes())
        return cls(Path(name), owner=True)

    @classmethod
    def attach(cls, path: str | Path) -> SamplePool:
        """The pool another process created, tables and all."""
        return cls(Path(path), owner=False)

    def close(self) -> None:
        """Remove the file (owner only); the mapping goes when its arrays are collected."""
        self._buffers = [None] * self.max_tables
        self._front = [None] * self.max_tables
        if self.owner:
            self.path.unlink(missing_ok=True)

    def __snapshot__(self) -> dict:
        """What a show snapshot keeps of the pool (engine.snapshot): every header, and the buffers
        of the tables written during the show (loading fills the others the same way again)."""
        written = [slot for slot in range(int(self._global[_COUNT])) if self.headers[slot, REQUESTED] > 0]
        return {"global": self._global.copy(), "headers": self.headers.copy(), "names": self._names.copy(),
                "tables": {slot: (self._buffer(slot, 0).copy(), self._buffer(slot, 1).copy())
                           for slot in written}}

    def __restore__(self, saved: dict) -> None:
        if saved["headers"].shape != self.headers.shape:
            raise ValueError("the sample pool of the saved show has another layout")
        self._global[:] = saved["global"]
        self.headers[:] = saved["headers"]
        self._names[:] = saved["names"]
        self._buffers = [None] * self.max_tables
        self._front = [None] * self.max_tables
        for slot, buffers in saved["tables"].items():
            for index, data in enumerate(buffers):
                self._buffer(slot, index)[:] = data

    # Tables by name (main process).
    def allocate(self, name: str, frames: int, channels: int) -> int:
        """Reserve a table of ``frames`` frames of 1 or 2 ``channels``, front and back buffer, and
        return its slot. PoolFull when the pool lacks room; UserError for a name taken."""
        if channels not in (1, 2) or frames < 1:
            raise ValueError(f"table {name!r}: frames must be >= 1 and channels 1 or 2")
        raw = name.encode("utf-8")
        if len(raw) >= NAME_BYTES:
            raise UserError(f"sample table name {name!r} is too long (at most {NAME_BYTES - 1} "
                            "bytes)")
        if name in self.names():
            raise UserError(f"sample table {name!r} is defined twice")
        used, count = int(self._global[_USED]), int(self._global[_COUNT])
        need, left = 2 * frames * channels, self.capacity_frames - used
        if count >= self.max_tables:
            raise PoolFull(f"sample pool full: no slot left for table {name!r} (all "
                           f"{self.max_tables} in use)")
        if need > left:
            raise PoolFull(f"sample pool full: table {name!r} needs {need} frames ({frames} x "
                           f"{channels} channel(s) x 2 buffers), {left} of {self.capacity_frames} "
                           "left; raise pool_seconds in the setlist's [sound] table")
        slot = count
        row = self.headers[slot]
        row[:] = 0
        row[OFFSET], row[CAPACITY] = used, frames
        self._names[slot] = 0
        self._names[slot, :len(raw)] = np.frombuffer(raw, np.uint8)
        row[CHANNELS] = channels  # last: a slot with channels is complete
        self._global[_USED] = used + need
        self._global[_COUNT] = count + 1
        return slot

    def slot(self, name: str) -> int:
        """The slot of table ``name``; KeyError when there is none."""
        return self.names()[name]

    def names(self) -> dict[str, int]:
        """Every table's name and slot."""
        return {bytes(self._names[slot]).split(b"\0", 1)[0].decode("utf-8"): slot
                for slot in range(int(self._global[_COUNT]))}

    # Writer side (main process).
    def write_back(self, slot: int, data: np.ndarray) -> bool:
        """Copy ``data`` ((frames,) or (frames, channels), float32-convertible; mono into a stereo
        table is duplicated, stereo into mono averaged) into the back buffer and record its
        length. False, writing nothing, while a swap of this slot is pending; ValueError when
        longer than the table."""
        row = self.headers[slot]
        if row[REQUESTED] != row[APPLIED]:
            return False
        back = 1 - int(row[FRONT])
        self._copy_into(slot, back, data)
        return True

    def request_swap(self, slot: int) -> None:
        """Mark the back buffer ready; the engine then sends a SWAP command for this slot."""
        self.headers[slot, REQUESTED] += 1

    def swap_pending(self, slot: int) -> bool:
        row = self.headers[slot]
        return bool(row[REQUESTED] != row[APPLIED])

    def fill(self, slot: int, data: np.ndarray) -> None:
        """Write ``data`` into both buffers (loading before the show, while nothing plays)."""
        self._copy_into(slot, 0, data)
        self._copy_into(slot, 1, data)

    def _copy_into(self, slot: int, buffer: int, data: np.ndarray) -> None:
        row = self.headers[slot]
        if row[CHANNELS] < 1:
            raise ValueError(f"sample pool slot {slot} holds no table")
        data = np.asarray(data, np.float32)
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2 or data.shape[1] not in (1, 2):
            raise ValueError(f"table data must be (frames,) or (frames, 1 or 2), not {data.shape}")
        frames, channels = data.shape[0], int(row[CHANNELS])
        if frames > row[CAPACITY]:
            raise ValueError(f"{frames} frames do not fit table slot {slot} "
                             f"({row[CAPACITY]} frames)")
        if data.shape[1] == 2 and channels == 1:
            data = data.mean(axis=1, keepdims=True)
        self._buffer(slot, buffer)[:frames] = data  # a mono column broadcasts to both channels
        row[LENGTH0 + buffer] = frames

    # Reader side (audio process, in the callback).
    def swap(self, slot: int) -> None:
        """Make the back buffer the front (between blocks), when a swap was requested; a SWAP
        with nothing pending does nothing, so a duplicate command cannot bring old audio back."""
        if not 0 <= slot < self.max_tables:
            return
        row = self.headers[slot]
        requested = row[REQUESTED]
        if requested != row[APPLIED]:
            row[FRONT] = 1 - row[FRONT]
            row[APPLIED] = requested  # after the flip: the writer may then fill the old front

    def table(self, slot: int) -> np.ndarray:
        """The front buffer as a (frames, channels) float32 view; (0, 1) for a slot holding no
        table. The view is cached until a swap or a new length."""
        if not 0 <= slot < self.max_tables or self.headers[slot, CHANNELS] < 1:
            return _EMPTY
        row = self.headers[slot]
        front = int(row[FRONT])
        length = int(row[LENGTH0 + front])
        cached = self._front[slot]
        if cached is not None and cached[0] == front and cached[1] == length:
            return cached[2]
        view = self._buffer(slot, front)[:length]
        self._front[slot] = (front, length, view)
        return view

    def capacity(self, slot: int) -> int:
        """The most frames table ``slot`` holds."""
        return int(self.headers[slot, CAPACITY])

    def frames(self, slot: int) -> int:
        """Length of the front buffer in frames (0 for a slot holding no table)."""
        return int(self.table(slot).shape[0])

    def channels(self, slot: int) -> int:
        """1 or 2 (0 for a slot holding no table)."""
        if not 0 <= slot < self.max_tables:
            return 0
        return int(self.headers[slot, CHANNELS])

    def _buffer(self, slot: int, buffer: int) -> np.ndarray:
        """Buffer 0 or 1 of a slot at its full capacity, (capacity, channels)."""
        views = self._buffers[slot]
        if views is None:
            row = self.headers[slot]
            offset, capacity, channels = int(row[OFFSET]), int(row[CAPACITY]), int(row[CHANNELS])
            size = capacity * channels
            views = tuple(self.data[offset + b * size:offset + (b + 1) * size]
                          .reshape(capacity, channels) for b in (0, 1))
            self._buffers[slot] = views
        return views[buffer]


def load_audio_file(path: str | Path, sample_rate: int) -> np.ndarray:
    """A sound file as (frames, channels) float32 at ``sample_rate`` Hz: any format and rate
    soundfile reads, 1 or 2 channels (of more, the first two), resampled (polyphase, exact rational
    ratio) when its rate differs. UserError (one line) for a missing, unreadable or empty file."""
    import soundfile
    from scipy.signal import resample_poly

    path = Path(path)
    if not path.is_file():
        raise UserError(f"audio file not found: {path}")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # libsndfile's errors differ by version and format
        reason = " ".join(str(error).split()) or type(error).__name__
        raise UserError(f"{path}: not an audio file soundfile can read ({reason})") from None
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise UserError(f"{path}: the audio file is empty")
    data = data[:, :2]
    if rate != sample_rate:
        divisor = np.gcd(int(rate), int(sample_rate))
        data = resample_poly(data, sample_rate // divisor, int(rate) // divisor, axis=0)
    return np.ascontiguousarray(data, dtype=np.float32)
