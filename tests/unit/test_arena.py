"""The arena: many arrays in one buffer, views on both sides (engine.audio.arena)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from engine.audio.arena import ALIGN, Arena, bool_1, f32_2, f64_1, f64_3, i64_1, u64_1


@njit
def _touch(buffer, layout):
    """Writes through the compiled views of an arena of six arrays; returns what they sum to."""
    f64_1(buffer, layout, 0)[2] = 7.0
    f64_3(buffer, layout, 1)[1, 2, 3] = 5.0
    f32_2(buffer, layout, 2)[0, 1] = 2.5
    i64_1(buffer, layout, 3)[4] = -9
    u64_1(buffer, layout, 4)[0] += np.uint64(1)
    bool_1(buffer, layout, 5)[1] = True
    return f64_1(buffer, layout, 0).sum() + f64_3(buffer, layout, 1).sum()


def test_an_arena_holds_copies_that_python_and_compiled_code_share() -> None:
    arrays = [np.arange(3.0), np.ones((2, 3, 4)), np.zeros((5, 2), np.float32),
              np.arange(6, dtype=np.int64), np.array([2 ** 63], np.uint64), np.zeros(3, bool)]
    arena = Arena(arrays)
    for array, view in zip(arrays, arena.views):
        assert view.shape == array.shape and view.dtype == array.dtype and np.array_equal(view, array)
        assert view.ctypes.data % ALIGN == 0 and np.shares_memory(view, arena.buffer)
    assert _touch(arena.buffer, arena.layout) == (0 + 1 + 7) + (23 + 5)
    first, block, out, ints, rng, flags = arena.views
    assert first[2] == 7.0 and block[1, 2, 3] == 5.0 and out[0, 1] == 2.5 and ints[4] == -9
    assert rng[0] == 2 ** 63 + 1 and flags.tolist() == [False, True, False]
    assert arrays[0][2] == 2.0  # the originals are left as they were
    with pytest.raises(ValueError, match="at most 3 dimensions"):
        Arena([np.zeros((1, 1, 1, 1))])


def test_the_granulators_kernel_state_is_its_kernel_fields() -> None:
    """The rack moves a granulator's arrays into its arena by name (kernel_fields); the Python
    render passes them by kernel_state: the two list the same arrays in the same order."""
    from engine.audio.instrument import Host
    from engine.audio.instruments.granulator import GranulatorInstrument, GranulatorSettings

    grains = GranulatorInstrument(GranulatorSettings(), Host(48000, 256, np.full(128, 440.0), None))
    state = grains.kernel_state()
    assert len(state) == len(grains.kernel_fields)
    assert all(array is getattr(grains, name) for array, name in zip(state, grains.kernel_fields))
    copies = [array.copy() for array in state]
    grains.adopt_kernel_state(copies)
    assert all(a is b for a, b in zip(grains.kernel_state(), copies))


def test_the_rack_refuses_a_kernel_state_the_arena_would_misread() -> None:
    from engine.audio.instrument import Host
    from engine.audio.instruments.granulator import GranulatorInstrument, GranulatorSettings
    from engine.audio.rack_block import rack_arrays

    grains = GranulatorInstrument(GranulatorSettings(), Host(48000, 256, np.full(128, 440.0), None))
    state = list(grains.kernel_state())
    rack = [np.zeros((1, 2, 256)), np.ones((2, 2)), np.ones(256), np.ones(3), np.zeros((2, 256)),
            np.zeros((256, 2), np.float32), np.zeros(1, np.int64)]
    assert len(rack_arrays(*rack, [state])) == len(rack) + len(state)
    state[5] = state[5].astype(np.int32)  # the cursor read as int64: garbage
    with pytest.raises(ValueError, match="kernel state"):
        rack_arrays(*rack, [state])
