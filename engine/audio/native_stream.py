"""The audio callback with no Python in the blocks that need none: a PortAudio output stream whose
callback is compiled (a numba ``cfunc``), for a rack whose block is one compiled call.

PyAudio enters Python for every block: the GIL, a thread state, the arguments it builds and the
result it parses, before and after our code runs cold. Measured on the granular benchmark's
stream (docs/granular.md), that entry alone cost as much as the grains. Here PortAudio (the library
PyAudio wraps and has already started: the same devices, the same indices) calls
:func:`native_callback`, which does the whole block in compiled code when it can: asleep, a silent
block and its bookkeeping; else, on the fused path, :func:`engine.audio.rack_block.
granulator_callback`, its block copied to PortAudio's buffer. Whatever it leaves to Python (the
stream's first block, commands in the ring, a status flag from PortAudio, an odd-sized block, the
knee, a view, the general path) goes to the server's own Python callback through a ctypes
function pointer, which takes the GIL as PyAudio's would: the Python path is the same code either
way, and produces the same bytes.

The callback reads everything through :class:`Words`, an array of machine words whose address
PortAudio hands it (``userData``): the arena and the other arrays of the fused call, the flags
the server sets (fast path chosen, asleep, a view to empty), the Python callback's address. The
server changes them only from inside the callback (a rewire happens in a block) or before the
stream starts, so the compiled side never reads a half-written set.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import ir
from numba import carray, cfunc, types
from numba.extending import intrinsic

from engine.audio import shared
from engine.audio.arena import f32_2
from engine.audio.rack_block import OUT, SILENT, monotonic, granulator_callback

# Words: flags, then addresses and sizes, then two doubles (as their bits).
(FAST, ASLEEP, STARTED, ANY_VIEWED, PYTHON, ARENA, ARENA_BYTES, LAYOUT, LAYOUT_ROWS, DATA, DATA_SIZE,
 HEADERS, HEADER_ROWS, HEADER_COLUMNS, MEMORY, MEMORY_BYTES, RING, ZEROS, BLOCK, RATE,
 PERIOD) = range(21)
WORDS = 21
NOT_RENDERED = -1  # the Python callback's ``code`` when no compiled block ran
# The Python side: (input, output, frames, status flags, code, started) -> paContinue (0).
PYTHON_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong,
                                   ctypes.c_ulong, ctypes.c_int64, ctypes.c_double)


@intrinsic
def pointer_at(typingctx, address):  # pragma: no cover - compiled
    """A machine word as a pointer (for ``carray``)."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.voidptr))
    return types.voidptr(types.uint64), codegen


@intrinsic
def _call_python(typingctx, address, input_, output, frames, status, code, started):  # pragma: no cover
    """Call the PYTHON_CALLBACK at ``address``."""
    def codegen(context, builder, signature, args):
        i8p, i64 = ir.IntType(8).as_pointer(), ir.IntType(64)
        function = ir.FunctionType(ir.IntType(32), [i8p, i8p, i64, i64, i64, ir.DoubleType()])
        return builder.call(builder.inttoptr(args[0], function.as_pointer()), list(args[1:]))
    return types.int32(types.uint64, types.voidptr, types.voidptr, types.uint64, types.uint64,
                       types.int64, types.float64), codegen


_SIGNATURE = types.int32(types.voidptr, types.voidptr, types.uint64, types.voidptr, types.uint64,
                         types.voidptr)


def _callback(input_, output, frames, _time_info, status, user):  # pragma: no cover - compiled
    """PortAudio's callback (PaStreamCallback): the block in compiled code when it can be, else
    the server's Python callback (see the module's doc). Returns paContinue, or what the Python
    callback returns."""
    words = carray(user, (WORDS,), np.uint64)
    doubles = carray(user, (WORDS,), np.float64)
    started = monotonic()
    ring = carray(pointer_at(words[RING]), (2,), np.int64)
    code = NOT_RENDERED
    if words[STARTED] != 0 and status == 0 and frames == words[BLOCK] and ring[0] == ring[1]:
        memory = carray(pointer_at(words[MEMORY]), (words[MEMORY_BYTES],), np.uint8)
        block = carray(output, (2 * frames,), np.float32)
        if words[ASLEEP] != 0:
            zeros = carray(pointer_at(words[ZEROS]), (frames, 2), np.float32)
            shared.finish_block(memory, shared.health_of(memory), zeros, shared.NO_INPUT, started,
                                monotonic() - started, doubles[PERIOD])
            block[:] = 0.0
            return 0
        if words[FAST] != 0:
            arena = carray(pointer_at(words[ARENA]), (words[ARENA_BYTES],), np.uint8)
            layout = carray(pointer_at(words[LAYOUT]), (words[LAYOUT_ROWS], 4), np.int64)
            data = carray(pointer_at(words[DATA]), (words[DATA_SIZE],), np.float32)
            headers = carray(pointer_at(words[HEADERS]), (words[HEADER_ROWS], words[HEADER_COLUMNS]),
                             np.int64)
            code = granulator_callback(started, arena, layout, doubles[RATE], data, headers, memory,
                                       doubles[PERIOD])
            if code == 0 and words[ANY_VIEWED] == 0:
                out = f32_2(arena, layout, OUT)
                for i in range(frames):
                    block[2 * i] = out[i, 0]
                    block[2 * i + 1] = out[i, 1]
                return 0
            if code == SILENT and words[ANY_VIEWED] == 0:
                words[ASLEEP] = 1  # as the server's _after_fused: zeros until a command comes
                block[:] = 0.0
                return 0
    return _call_python(words[PYTHON], input_, output, frames, status, code, started)


@functools.cache
def native_callback():
    """:func:`_callback` compiled as a C function (numba's cache; compiled on first use, not at
    import: the engine imports this module without ever playing through it)."""
    return cfunc(_SIGNATURE, cache=True, nopython=True)(_callback)


def _contiguous(*arrays: np.ndarray) -> None:
    if not all(array.flags.c_contiguous for array in arrays):
        raise ValueError("the native callback reads C-contiguous arrays only")


class Words:
    """The machine words :func:`native_callback` reads (its ``userData``), and the arrays they
    point at, kept alive here."""

    def __init__(self) -> None:
        self.array = np.zeros(WORDS, np.uint64)
        self._doubles = self.array.view(np.float64)
        self._kept: tuple = ()

    @property
    def address(self) -> int:
        return self.array.ctypes.data

    def flag(self, word: int, value: bool) -> None:
        self.array[word] = 1 if value else 0

    def is_set(self, word: int) -> bool:
        return bool(self.array[word])

    def point(self, memory: np.ndarray, ring_header: np.ndarray, zeros: np.ndarray, block: int,
              rate: float, period: float, python: int) -> None:
        """The arrays every block reads: the shared memory, the command ring's header, a zero
        block, the block size, rate and period, and the Python callback's address."""
        _contiguous(memory, ring_header, zeros)
        words = self.array
        words[MEMORY], words[MEMORY_BYTES] = memory.ctypes.data, memory.nbytes
        words[RING], words[ZEROS], words[BLOCK] = ring_header.ctypes.data, zeros.ctypes.data, block
        words[PYTHON] = python
        self._doubles[RATE], self._doubles[PERIOD] = rate, period
        self._base = (memory, ring_header, zeros)

    def fused(self, arena: np.ndarray, layout: np.ndarray, rate: float, data: np.ndarray,
              headers: np.ndarray) -> None:
        """The fused call's arrays (the rack's ``fused`` tuple, less its memory and period)."""
        _contiguous(arena, layout, data, headers)
        if layout.dtype != np.int64 or layout.shape[1:] != (4,) or data.dtype != np.float32 \
                or headers.dtype != np.int64 or headers.ndim != 2 or arena.dtype != np.uint8:
            raise ValueError("the fused call's arrays are not of the types the native callback reads")
        if rate != self._doubles[RATE]:
            raise ValueError("the rack's rate is not the stream's")
        words = self.array
        words[ARENA], words[ARENA_BYTES] = arena.ctypes.data, arena.nbytes
        words[LAYOUT], words[LAYOUT_ROWS] = layout.ctypes.data, layout.shape[0]
        words[DATA], words[DATA_SIZE] = data.ctypes.data, data.size
        words[HEADERS], (words[HEADER_ROWS], words[HEADER_COLUMNS]) = headers.ctypes.data, headers.shape
        self._kept = (arena, layout, data, headers)


class _Parameters(ctypes.Structure):
    """PaStreamParameters."""
    _fields_ = [("device", ctypes.c_int), ("channelCount", ctypes.c_int),
                ("sampleFormat", ctypes.c_ulong), ("suggestedLatency", ctypes.c_double),
                ("hostApiSpecificStreamInfo", ctypes.c_void_p)]


class _StreamInfo(ctypes.Structure):
    """PaStreamInfo."""
    _fields_ = [("structVersion", ctypes.c_int), ("inputLatency", ctypes.c_double),
                ("outputLatency", ctypes.c_double), ("sampleRate", ctypes.c_double)]


PA_FLOAT32 = 0x1
PA_CLIP_OFF = 0x1  # a stream flag, as PyAudio opens its streams: the limiter keeps samples in range
_LIBRARY = "libportaudio.so.2"


def _portaudio() -> ctypes.CDLL:
    library = ctypes.CDLL(_LIBRARY)  # the one PyAudio's module linked, already loaded
    stream, pointer = ctypes.c_void_p, ctypes.POINTER
    for name, result, arguments in (
            ("Pa_OpenStream", ctypes.c_int, [pointer(stream), ctypes.c_void_p, pointer(_Parameters),
                                             ctypes.c_double, ctypes.c_ulong, ctypes.c_ulong,
                                             ctypes.c_void_p, ctypes.c_void_p]),
            ("Pa_StartStream", ctypes.c_int, [stream]), ("Pa_StopStream", ctypes.c_int, [stream]),
            ("Pa_CloseStream", ctypes.c_int, [stream]), ("Pa_IsStreamActive", ctypes.c_int, [stream]),
            ("Pa_GetStreamInfo", pointer(_StreamInfo), [stream]),
            ("Pa_GetErrorText", ctypes.c_char_p, [ctypes.c_int])):
        function = getattr(library, name)
        function.restype, function.argtypes = result, arguments
    return library


class NativeStream:
    """A PortAudio output stream (float32, interleaved) whose callback is the compiled function at
    ``callback`` (a PaStreamCallback: :func:`native_callback`) with ``user`` as its userData (an
    object with an ``address``, kept alive with the stream: :class:`Words`): the part of PyAudio's
    Stream the server uses (start_stream, is_active, get_output_latency, close). PortAudio must be
    initialised (a PyAudio instance); ``device`` is an index of PyAudio's (PortAudio's)."""

    def __init__(self, device: int, channels: int, rate: float, frames: int, latency: float,
                 user, callback: int | None = None) -> None:
        self._pa = _portaudio()
        self._user = user  # read by the callback until the stream is closed
        self._handle = ctypes.c_void_p()
        parameters = _Parameters(device, channels, PA_FLOAT32, latency, None)
        self._check(self._pa.Pa_OpenStream(
            ctypes.byref(self._handle), None, ctypes.byref(parameters), float(rate), frames, PA_CLIP_OFF,
            native_callback().address if callback is None else callback, user.address))

    def _check(self, error: int) -> None:
        if error < 0:
            raise OSError(f"PortAudio: {self._pa.Pa_GetErrorText(error).decode(errors='replace')}")

    def start_stream(self) -> None:
        self._check(self._pa.Pa_StartStream(self._handle))

    def is_active(self) -> bool:
        active = self._pa.Pa_IsStreamActive(self._handle)
        self._check(active)
        return active == 1

    def get_output_latency(self) -> float:
        info = self._pa.Pa_GetStreamInfo(self._handle)
        return float(info.contents.outputLatency) if info else 0.0

    def stop_stream(self) -> None:
        self._check(self._pa.Pa_StopStream(self._handle))

    def close(self) -> None:
        if self._handle.value is not None:
            handle, self._handle = self._handle, ctypes.c_void_p()
            self._check(self._pa.Pa_CloseStream(handle))
