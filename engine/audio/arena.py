"""One buffer holding many arrays, so that a compiled call takes two arguments instead of dozens.

In the audio callback, a compiled function pays for each array it is passed: measured with the
caches swept between calls, a call taking the granulator rack's 22 arrays cost 12.9 us before it
did anything, one taking two arrays 5.7 us. :class:`Arena` copies arrays into one uint8 buffer
(each at a 64-byte boundary) and gives back numpy views of it, which the Python side keeps using
in place of the originals; compiled code takes the buffer and its ``layout`` and gets each array
back as a view (:func:`f64_1`, :func:`f64_2`, ...), with no copy.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ALIGN = 64  # bytes: each array starts on a cache line
DIMS = 3  # the most dimensions an array of an arena may have
_JIT = {"cache": True, "nogil": True, "inline": "always"}


class Arena:
    """Args: arrays: what to hold, copied in, in order. ``views[i]`` is array i's copy (same
    shape and dtype, C order), ``layout[i]`` its (offset in bytes, shape padded with 1s)."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        offsets, end = [], 0
        for array in arrays:
            if array.ndim > DIMS:
                raise ValueError(f"an arena holds arrays of at most {DIMS} dimensions")
            offsets.append(end)
            end += -(-array.nbytes // ALIGN) * ALIGN
        raw = np.zeros(max(end, ALIGN) + ALIGN, np.uint8)
        skip = -raw.ctypes.data % ALIGN
        self.buffer = raw[skip:skip + max(end, ALIGN)]
        self.layout = np.ones((len(arrays), 1 + DIMS), np.int64)
        self.views = []
        for index, (array, offset) in enumerate(zip(arrays, offsets)):
            view = np.ndarray(array.shape, array.dtype, buffer=self.buffer, offset=offset)
            view[...] = array
            self.views.append(view)
            self.layout[index, 0] = offset
            self.layout[index, 1:1 + array.ndim] = array.shape


@njit(**_JIT)
def _bytes(arena, layout, index, itemsize):  # pragma: no cover - compiled
    start = layout[index, 0]
    return arena[start:start + itemsize * layout[index, 1] * layout[index, 2] * layout[index, 3]]


@njit(**_JIT)
def _rows(flat, layout, index):  # pragma: no cover - compiled
    """A flat view as array ``index``'s two dimensions."""
    return flat.reshape((layout[index, 1], layout[index, 2]))


@njit(**_JIT)
def f64_1(arena, layout, index):  # pragma: no cover - compiled
    return _bytes(arena, layout, index, 8).view(np.float64)


@njit(**_JIT)
def f64_2(arena, layout, index):  # pragma: no cover - compiled
    return _rows(_bytes(arena, layout, index, 8).view(np.float64), layout, index)


@njit(**_JIT)
def f64_3(arena, layout, index):  # pragma: no cover - compiled
    return _bytes(arena, layout, index, 8).view(np.float64).reshape(
        (layout[index, 1], layout[index, 2], layout[index, 3]))


@njit(**_JIT)
def f32_2(arena, layout, index):  # pragma: no cover - compiled
    return _rows(_bytes(arena, layout, index, 4).view(np.float32), layout, index)


@njit(**_JIT)
def i64_1(arena, layout, index):  # pragma: no cover - compiled
    return _bytes(arena, layout, index, 8).view(np.int64)


@njit(**_JIT)
def u64_1(arena, layout, index):  # pragma: no cover - compiled
    return _bytes(arena, layout, index, 8).view(np.uint64)


@njit(**_JIT)
def bool_1(arena, layout, index):  # pragma: no cover - compiled
    return _bytes(arena, layout, index, 1).view(np.bool_)
