"""The memory the engine and the audio process share: the command ring, the health report, the
recent per-block compute times, the output device's name, the tap (output and audio input) and
the instruments' views (what a scene draws of them: the granulator's sounding grains).

One small file in /dev/shm (falling back to the temp directory), mapped by both processes with
numpy. The engine creates it before starting the audio process and removes it at the end; a
restarted audio process maps the same file and carries on.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from pathlib import Path

import numpy as np
from numba import njit

from engine import leftovers
from engine.audio.command_ring import FIELDS, CommandRing
from engine.midi import ControlChange, MidiEvent, NoteOff, NoteOn, PitchBend, ProgramChange

CAPACITY = 4096  # commands in flight
LOADS = 4096  # recent blocks whose compute time and start time are kept, for benchmarks
HEALTH_FIELDS = ("blocks", "underruns", "load", "load_peak", "load_mean", "status", "pid", "voices",
                 "limiter_db", "latency", "starts", "callback_errors", "tap_frames", "input_channels",
                 "midi_heard", "compiled_callback")
TAP_FRAMES = 1 << 19  # 10.9 s at 48 kHz of what was played and heard, for the recorder and scenes
TAP_CHANNELS = 4  # mixer left, right; audio input left, right (zeros without an input)
FIELD = {name: index for index, name in enumerate(HEALTH_FIELDS)}  # for the callback's fast path
STATUS = {0: "starting", 1: "running", 2: "no_device", 3: "device_lost", 4: "stopped"}
STARTING, RUNNING, NO_DEVICE, DEVICE_LOST, STOPPED = range(5)
TEXT_BYTES = 256  # the output device's name
VIEWS = 8  # instruments of the rack (the first slots) whose view is shared
VIEW_ROWS = 512  # rows of a view (the granulator: sounding grains drawn)
VIEW_COLUMNS = 8  # at most; an instrument's view_fields say how many it writes
# A view: a sequence number (odd while written), a row count, the block until which a reader wants
# it (each read moves it VIEW_WANTED blocks on), rows. The audio process writes it after each block
# only while it is wanted: nobody drawing it, it costs nothing.
VIEW_ITEMS = 3 + VIEW_ROWS * VIEW_COLUMNS
VIEW_WANTED = 128  # blocks (0.68 s at 48 kHz and 256 frames)
# The MIDI the audio process took from the port itself, newest last: what a show restarted after its
# process died takes in for the gap (engine.supervisor). A row: stamp (time.monotonic), kind, channel, a, b.
HEARD = 1024
HEARD_FIELDS = 5
_KINDS = (NoteOn, NoteOff, ControlChange, ProgramChange, PitchBend)


def _layout() -> dict[str, tuple[int, int]]:
    """(offset in bytes, count of 8-byte items) of each section."""
    sections = {"header": 2, "records": CAPACITY * FIELDS, "health": len(HEALTH_FIELDS),
                "loads": LOADS, "block_starts": LOADS, "text": TEXT_BYTES // 8, "tap": TAP_FRAMES * TAP_CHANNELS // 2,
                "views": VIEWS * VIEW_ITEMS, "heard": HEARD * HEARD_FIELDS}
    layout, offset = {}, 0
    for name, count in sections.items():
        layout[name] = (offset, count)
        offset += 8 * count
    return layout


LAYOUT = _layout()
SIZE = sum(8 * count for _offset, count in LAYOUT.values())


NO_INPUT = np.zeros((0, 2), np.float32)  # what write_tap takes for "no audio input"
_TAP_FRAMES_FIELD = FIELD["tap_frames"]


@njit(cache=True, nogil=True)
def write_tap(tap, health, played, heard):  # pragma: no cover - compiled
    """Append ``played`` ((N, 2) float32) and ``heard`` ((N, channels) float32; fewer rows: none,
    zeros; one channel: on both) to the ``tap`` ring at the frame count health's ``tap_frames``
    holds, and count them. Compiled: in the audio callback each numpy call paid a cold cache."""
    size = tap.shape[0]
    written = int(health[_TAP_FRAMES_FIELD])
    count = played.shape[0]
    channels = heard.shape[1] if heard.shape[0] >= count else 0
    for i in range(count):
        row = (written + i) % size
        tap[row, 0] = played[i, 0]
        tap[row, 1] = played[i, 1]
        if channels == 0:
            tap[row, 2] = 0.0
            tap[row, 3] = 0.0
        elif channels == 1:
            tap[row, 2] = heard[i, 0]
            tap[row, 3] = heard[i, 0]
        else:
            tap[row, 2] = heard[i, 0]
            tap[row, 3] = heard[i, 1]
    health[_TAP_FRAMES_FIELD] = written + count


_HEALTH_AT, _HEALTH_COUNT = LAYOUT["health"]
_LOADS_AT = LAYOUT["loads"][0]
_STARTS_AT = LAYOUT["block_starts"][0]
_TAP_AT = LAYOUT["tap"][0]
_VIEWS_AT = LAYOUT["views"][0]
_BLOCKS, _LOAD, _LOAD_PEAK, _LOAD_MEAN = (FIELD[name] for name in ("blocks", "load", "load_peak", "load_mean"))
VOICES_FIELD, LIMITER_DB_FIELD = FIELD["voices"], FIELD["limiter_db"]


@njit(cache=True, nogil=True, inline="always")
def health_of(memory):  # pragma: no cover - compiled
    """The health report in the whole shared ``memory`` (:attr:`SharedAudioState.memory`)."""
    return memory[_HEALTH_AT:_HEALTH_AT + 8 * _HEALTH_COUNT].view(np.float64)


@njit(cache=True, nogil=True)
def view_wanted(memory, health):  # pragma: no cover - compiled
    """Whether a reader wants any instrument's view now (:meth:`SharedAudioState.view_wanted` for
    every view, in one compiled check)."""
    views = memory[_VIEWS_AT:_VIEWS_AT + 8 * VIEWS * VIEW_ITEMS].view(np.float64)
    blocks = max(health[_BLOCKS] - 1.0, 0.0)  # before the last block, as the callback counts
    for index in range(VIEWS):
        if views[index * VIEW_ITEMS + 2] > blocks:
            return True
    return False


@njit(cache=True, nogil=True)
def finish_block(memory, health, played, heard, started, seconds,
                 period):  # pragma: no cover - compiled
    """The audio callback's bookkeeping in one compiled call (each numpy call there paid a cold
    cache: measured, the silent callback took 42-45 us a block without the numpy tap copy and
    accounting, 62 us with them): ``played`` ((N, 2) float32) and ``heard`` ((N, channels)
    float32, or no rows: zeros) appended to the tap (:func:`write_tap`), and the block's compute
    time ``seconds`` (from ``started``, time.perf_counter()) noted in the health report and the
    recent loads, in the shared ``memory`` whose health report ``health`` is. Returns the blocks
    counted before this one."""
    tap = memory[_TAP_AT:_TAP_AT + 4 * TAP_FRAMES * TAP_CHANNELS].view(np.float32).reshape(
        (TAP_FRAMES, TAP_CHANNELS))
    write_tap(tap, health, played, heard)
    loads = memory[_LOADS_AT:_LOADS_AT + 8 * LOADS].view(np.float64)
    block_starts = memory[_STARTS_AT:_STARTS_AT + 8 * LOADS].view(np.float64)
    load = seconds / period
    blocks = int(health[_BLOCKS])
    slot = blocks % LOADS
    loads[slot] = seconds
    block_starts[slot] = started
    peak = health[_LOAD_PEAK] * 0.995
    health[_LOAD] = load
    health[_LOAD_PEAK] = load if load > peak else peak
    health[_LOAD_MEAN] = 0.99 * health[_LOAD_MEAN] + 0.01 * load
    health[_BLOCKS] = blocks + 1
    return blocks


def warm_up_finish_block() -> None:
    """:func:`finish_block` loaded (numba's cache) for every input the callback can hand it (no
    input; an input's buffer, read-only), on scratch arrays of the shared ones' types."""
    memory = np.zeros(SIZE, np.uint8)
    block = np.zeros((64, 2), np.float32)
    for heard in (NO_INPUT, np.frombuffer(bytes(block), np.float32).reshape(64, 2)):
        finish_block(memory, health_of(memory), block, heard, 0.0, 0.0, 1.0)


def tap_rows(tap: np.ndarray, start: int, stop: int, columns: slice) -> np.ndarray:
    """Frames ``start`` .. ``stop`` of a ring ``tap`` (frame n at row n % len), as a copy: two
    slices, not an index array."""
    size = len(tap)
    count = min(max(0, stop - start), size)
    first = (stop - count) % size
    if first + count <= size:
        return tap[first:first + count, columns].copy()
    return np.concatenate([tap[first:, columns], tap[:first + count - size, columns]])


class SharedAudioState:
    def __init__(self, path: Path, owner: bool) -> None:
        self.path = path
        self.owner = owner
        self._map = np.memmap(path, dtype=np.uint8, mode="r+", shape=(SIZE,))
        # All of it as a plain array: what compiled code takes (finish_block), one argument.
        self.memory = np.ndarray((SIZE,), np.uint8, buffer=self._map)

        def section(name: str, dtype) -> np.ndarray:
            offset, count = LAYOUT[name]
            return np.ndarray((count,), dtype=dtype, buffer=self._map, offset=offset)

        self.ring = CommandRing(section("header", np.int64),
                                section("records", np.float64).reshape(CAPACITY, FIELDS))
        self.health = section("health", np.float64)
        self.loads = section("loads", np.float64)  # seconds computing, per block (blocks % LOADS)
        self.block_starts = section("block_starts", np.float64)  # when it began: time.perf_counter()
        self._text = np.ndarray((TEXT_BYTES,), np.uint8, buffer=self._map, offset=LAYOUT["text"][0])
        self.tap = np.ndarray((TAP_FRAMES, TAP_CHANNELS), np.float32, buffer=self._map,
                              offset=LAYOUT["tap"][0])
        self.views = section("views", np.float64).reshape(VIEWS, VIEW_ITEMS)
        # The rows part of each view, as the instrument writes it.
        self.view_rows = [self.views[index, 3:].reshape(VIEW_ROWS, VIEW_COLUMNS) for index in range(VIEWS)]
        self._view_headers = [memoryview(self.views[index, :3]) for index in range(VIEWS)]
        self.heard = section("heard", np.float64).reshape(HEARD, HEARD_FIELDS)

    def write_heard(self, stamp: float, event: MidiEvent) -> None:
        """Note a MIDI event the audio process took from the port (its callback; no allocation
        beyond a row's numbers)."""
        index = FIELD["midi_heard"]
        count = int(self.health[index])
        row = self.heard[count % HEARD]
        kind = type(event)
        row[0] = stamp
        row[1] = _KINDS.index(kind)
        row[2] = event.channel
        if kind is NoteOn or kind is NoteOff:
            row[3], row[4] = event.note, event.velocity
        elif kind is ControlChange:
            row[3], row[4] = event.control, event.value
        elif kind is ProgramChange:
            row[3], row[4] = event.program, 0
        else:
            row[3], row[4] = event.value, 0
        self.health[index] = count + 1

    def read_heard(self, after: float, until: float) -> tuple[list[tuple[float, MidiEvent]], bool]:
        """The events the audio process took from the port stamped after ``after`` and at or
        before ``until`` (time.monotonic seconds), oldest first, and whether older ones of that
        span were overwritten already (more than HEARD events since)."""
        count = int(self.get("midi_heard"))
        events, complete = [], False
        for number in range(count - 1, max(-1, count - HEARD - 1), -1):
            stamp, kind, channel, a, b = (float(value) for value in self.heard[number % HEARD])
            if stamp <= after:
                complete = True
                break
            if stamp > until:
                continue
            made = _KINDS[int(kind)]
            if made is NoteOn or made is NoteOff:
                event = made(int(a), int(b), int(channel))
            elif made is ControlChange:
                event = made(int(a), int(b), int(channel))
            elif made is ProgramChange:
                event = made(int(a), int(channel))
            else:
                event = made(int(a), int(channel))
            events.append((stamp, event))
        events.reverse()
        return events, not complete and count > HEARD

    def write_view(self, index: int, instrument) -> int:
        """Publish instrument ``index``'s view (audio process, after a block): the sequence number
        is odd while the rows change, so a reader never takes a torn view. Returns its rows."""
        header = self._view_headers[index]  # Python floats, not numpy scalars, in the callback
        header[0] += 1
        header[1] = count = instrument.view(self.view_rows[index])
        header[0] += 1
        return count

    def view_wanted(self, index: int, blocks: int) -> bool:
        """Whether a reader wants instrument ``index``'s view at block ``blocks`` (audio process)."""
        return self._view_headers[index][2] > blocks

    def clear_view(self, index: int) -> None:
        """Publish an empty view (audio process: nobody reads it any more, so what a reader finds
        when it comes back is no rows, never old ones)."""
        header = self._view_headers[index]
        header[0] += 1
        header[1] = 0.0
        header[0] += 1

    def read_view(self, index: int, columns: int) -> np.ndarray | None:
        """A copy of instrument ``index``'s latest view, (rows, columns), or None when the audio
        process was writing it during each of three tries. Each read asks the audio process to
        go on publishing it for VIEW_WANTED blocks."""
        header = self.views[index]
        header[2] = self.health[FIELD["blocks"]] + VIEW_WANTED
        for _ in range(3):
            before = header[0]
            if int(before) % 2:
                continue
            count = min(int(header[1]), VIEW_ROWS)
            rows = self.view_rows[index][:count, :columns].copy()
            if header[0] == before:
                return rows
        return None

    def write_tap(self, played: np.ndarray, heard: np.ndarray | None) -> None:
        """Append a block to the tap (audio process): ``played`` (N, 2) mixer output, ``heard``
        (N, channels) audio input or None. ``tap_frames`` counts frames ever written."""
        write_tap(self.tap, self.health, np.ascontiguousarray(played, np.float32),
                  NO_INPUT if heard is None else np.ascontiguousarray(heard, np.float32))

    def read_tap(self, since: int) -> tuple[np.ndarray, int]:
        """What the tap holds after frame ``since`` (at most the last TAP_FRAMES), as a
        (frames, 4) copy, and the frame count to pass next time."""
        written = int(self.get("tap_frames"))
        start = max(since, written - TAP_FRAMES)
        rows = np.arange(start, written) % TAP_FRAMES
        return self.tap[rows].copy(), written
    def read_latest(self, frames: int, source: str = "mix") -> np.ndarray:
        """The latest ``frames`` of the mix ("mix") or the audio input ("input") as a (frames, 2)
        float32 copy, oldest first (fewer when less has been played; at most TAP_FRAMES less a
        block, which the audio process may be writing)."""
        if source not in ("mix", "input"):
            raise ValueError(f"unknown sound '{source}' (mix or input)")
        written = int(self.get("tap_frames"))
        count = max(0, min(int(frames), written, TAP_FRAMES - 8192))
        rows = np.arange(written - count, written) % TAP_FRAMES
        columns = slice(0, 2) if source == "mix" else slice(2, 4)
        return self.tap[rows, columns]

    def read_since(self, position: int, source: str = "mix") -> tuple[np.ndarray, int]:
        """The mix or the input after frame ``position`` (at most TAP_FRAMES less a block) as a
        (frames, 2) float32 copy, and the frame count written so far (the next ``position``)."""
        if source not in ("mix", "input"):
            raise ValueError(f"unknown sound '{source}' (mix or input)")
        written = int(self.get("tap_frames"))
        start = max(int(position), written - (TAP_FRAMES - 8192))
        columns = slice(0, 2) if source == "mix" else slice(2, 4)
        return tap_rows(self.tap, start, written, columns), written

    @classmethod
    def create(cls) -> SharedAudioState:
        leftovers.sweep()  # what killed shows left in memory goes first
        folder = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        handle, name = tempfile.mkstemp(prefix="showrunner-audio-", dir=folder)
        with os.fdopen(handle, "wb") as file:
            file.truncate(SIZE)
            try:  # the pages themselves now, not at the audio callback's first write to each
                os.posix_fallocate(file.fileno(), 0, SIZE)
            except (OSError, AttributeError):
                pass  # a file system that cannot: they come at first touch
        return cls(Path(name), owner=True)

    @classmethod
    def attach(cls, path: str | Path) -> SharedAudioState:
        return cls(Path(path), owner=False)

    def map_pages(self) -> None:
        """Map every page of the file into this process now (a read of one byte of each): the
        audio callback's first pass over the tap (its first 11 s) would otherwise page-fault
        about once a block (measured: 3,360 faults in 10 s of the callback's thread, 1,480 of
        them the tap's)."""
        int(self._map[::mmap.PAGESIZE].max())

    def get(self, field: str) -> float:
        return float(self.health[FIELD[field]])

    def set(self, field: str, value: float) -> None:
        self.health[FIELD[field]] = value

    @property
    def device(self) -> str:
        raw = bytes(self._text)
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    @device.setter
    def device(self, name: str) -> None:
        raw = name.encode("utf-8")[:TEXT_BYTES - 1]
        self._text[:] = 0
        self._text[:len(raw)] = np.frombuffer(raw, np.uint8)

    def close(self) -> None:
        """Remove the file (owner only); the mapping itself goes when the arrays are collected."""
        if self.owner:
            self.path.unlink(missing_ok=True)
