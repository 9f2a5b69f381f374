"""The rack's block in one compiled call, for a rack whose instruments all have a compiled kernel.

In the audio callback, every entry into Python code or a compiled function runs cold, once a
block: measured on the granular benchmark's stream (200 grains a second), the rack's Python
around the granulator's kernel (its render method, the buses, the master stage) cost more than
the grains. :func:`granulator_rack` does what :meth:`engine.audio.rack.Rack.render` does, for a
rack of granulators, in one call: each bus zeroed, its instruments played into it
(:func:`engine.audio.grain_schedulers.granulator_play`), scaled by its gain (ramped across the
block when it changes), the buses summed in their order, the master gain and the limiter's gain
computer (:func:`engine.audio.limiter.master_block`). The arithmetic is the Python path's, in the
same order: the two give the same samples (tests/unit/test_granulator.py).

Every array it works on lives in one :class:`engine.audio.arena.Arena` (:func:`rack_arrays`
says which, in which order), so the call takes two arrays for them all. :func:`granulator_callback`
is the audio callback's whole block: :func:`granulator_rack`, then the tap and the health report
(:func:`engine.audio.shared.finish_block`) in the shared memory, with the block's compute time
read from the clock at its end.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from engine.audio import shared
from engine.audio.arena import bool_1, f32_2, f64_1, f64_2, f64_3, i64_1, u64_1
from engine.audio.grain_schedulers import S_GRAINS, granulator_idle, granulator_play
from engine.audio.limiter import _gain, master_block, reduction_db

# Not fastmath: each bus's gain and sum round as numpy's do in the Python path.
_JIT = {"cache": True, "nogil": True}

QUIET = -2  # granulator_rack's first result when the block is silence (``out`` zeroed)
ZEROS = -1  # its second when no bus has a working instrument (the mix was ``zeros``)
# The arena's rack arrays, by index; each instrument's kernel_state() follows, KERNEL_FIELDS each.
BUSES, GAINS, RAMP, LIMITER, ZERO_MIX, OUT, MEMBERS = range(7)
RACK_FIELDS = 7
# What _play reads each of an instrument's arrays as (GranulatorInstrument.kernel_fields' order):
# (dtype, dimensions); rack_arrays refuses others (the arena would read their bytes as these).
KERNEL_TYPES = ((np.float64, 1), (np.float64, 2), (np.bool_, 1), (np.float64, 2), (np.bool_, 1),
                (np.int64, 1), (np.int64, 1), (np.uint64, 1), (np.int64, 1), (np.int64, 1),
                (np.float64, 1), (np.float64, 2), (np.float64, 1))
KERNEL_FIELDS = len(KERNEL_TYPES)
# granulator_callback's result: bits for what is left to Python after the block.
SILENT = 1  # the block is silence and nothing moves (``out`` zeroed)
KNEE = 2  # the limiter's knee is to be applied; nothing after the render was done
VIEWED = 4  # a reader wants a view


def rack_arrays(buses, gains, ramp, limiter, zeros, out, members, states) -> list:
    """The arrays of a rack's arena in :func:`granulator_rack`'s order: buses (B, 2, N)
    float64, gains (2, B + 1) float64, ramp (N,), the limiter's state, zeros (2, N), out (N, 2)
    float32, members (the bus row of each instrument, int64), then each instrument's
    ``kernel_state()``."""
    arrays = [buses, gains, ramp, limiter, zeros, out, members]
    for state in states:
        kinds = [(array.dtype, array.ndim) for array in state]
        if kinds != [(np.dtype(dtype), ndim) for dtype, ndim in KERNEL_TYPES]:
            raise ValueError(f"a kernel state of {kinds}, not {KERNEL_TYPES}")
        arrays.extend(state)
    return arrays


@intrinsic
def monotonic(typingctx):  # pragma: no cover - compiled
    """CLOCK_MONOTONIC in seconds: time.perf_counter()'s clock (Linux), read in compiled code."""
    def codegen(context, builder, signature, args):
        i32, i64, f64 = ir.IntType(32), ir.IntType(64), ir.DoubleType()
        spec = ir.LiteralStructType([i64, i64])
        clock = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i32, [i32, spec.as_pointer()]), "clock_gettime")
        slot = cgutils.alloca_once(builder, spec)
        builder.call(clock, [ir.Constant(i32, 1), slot])  # CLOCK_MONOTONIC
        seconds = builder.sitofp(builder.load(cgutils.gep_inbounds(builder, slot, 0, 0)), f64)
        nanoseconds = builder.sitofp(builder.load(cgutils.gep_inbounds(builder, slot, 0, 1)), f64)
        return builder.fadd(seconds, builder.fmul(nanoseconds, ir.Constant(f64, 1e-9)))
    return types.float64(), codegen


@njit(**_JIT)
def _scalars(arena, layout, k):  # pragma: no cover - compiled
    """Instrument k's scalars (the last of its kernel state)."""
    return f64_1(arena, layout, RACK_FIELDS + (k + 1) * KERNEL_FIELDS - 1)


@njit(**_JIT)
def _play(arena, layout, k, bus, rate, data, headers):  # pragma: no cover - compiled
    """Instrument k of the arena played into ``bus`` ((2, N))."""
    i = RACK_FIELDS + k * KERNEL_FIELDS
    granulator_play(
        bus[0], bus[1], rate, data, headers, f64_1(arena, layout, i),
        f64_2(arena, layout, i + 1), bool_1(arena, layout, i + 2), f64_2(arena, layout, i + 3),
        bool_1(arena, layout, i + 4), i64_1(arena, layout, i + 5), i64_1(arena, layout, i + 6),
        u64_1(arena, layout, i + 7), i64_1(arena, layout, i + 8), i64_1(arena, layout, i + 9),
        f64_1(arena, layout, i + 10), f64_2(arena, layout, i + 11), f64_1(arena, layout, i + 12))


@njit(**_JIT)
def granulator_rack(arena, layout, rate, data, headers):  # pragma: no cover - compiled
    """One block of a rack of granulators into its ``out`` ((N, 2) float32).

    Args:
        arena, layout: the rack's :class:`engine.audio.arena.Arena` (see :func:`rack_arrays`):
            the buses in mix order (rack bus index b + 1); the gain now and the target of the
            master (column 0) and of each bus (the ramps move the first row to the second); the
            ramp 1/N .. 1; the limiter's state ([gain, threshold, recovery]); zeros, the mix
            when no bus has an instrument; out; each instrument's bus row and kernel state.
        rate, data, headers: the sample rate and the pool's data and headers.

    Returns (status, mix): status QUIET (the block is silence and nothing moves: ``out`` zeroed,
    nothing else changed), 1 when a sample is still over the limiter's threshold (the knee is to
    be applied to the mix and ``out`` was not written), else 0; mix: the bus row holding the mix,
    or ZEROS.
    """
    buses, gains = f64_3(arena, layout, BUSES), f64_2(arena, layout, GAINS)
    limiter, out = f64_1(arena, layout, LIMITER), f32_2(arena, layout, OUT)
    members = i64_1(arena, layout, MEMBERS)
    count = members.size
    quiet = limiter[0] == 1.0
    for b in range(gains.shape[1]):
        if gains[0, b] != gains[1, b]:
            quiet = False
    for k in range(count):
        if not granulator_idle(_scalars(arena, layout, k)):
            quiet = False
    if quiet:
        out[:] = 0.0
        return QUIET, ZEROS
    ramp = f64_1(arena, layout, RAMP)
    mix = ZEROS
    for b in range(buses.shape[0]):
        bus = buses[b]
        present = False
        for k in range(count):
            if members[k] == b:
                present = True
        if not present:
            gains[0, b + 1] = gains[1, b + 1]
            continue
        bus[:] = 0.0
        for k in range(count):
            if members[k] == b:
                _play(arena, layout, k, bus, rate, data, headers)
        _gain(bus, ramp, gains[0, b + 1], gains[1, b + 1])  # Rack._scale
        gains[0, b + 1] = gains[1, b + 1]
        if mix == ZEROS:
            mix = b
        else:
            buses[mix] += bus
    start = gains[0, 0]
    gains[0, 0] = end = gains[1, 0]
    mixed = f64_2(arena, layout, ZERO_MIX) if mix == ZEROS else buses[mix]
    limiter[0], over = master_block(mixed, ramp, start, end, limiter[0], limiter[1], limiter[2],
                                    out)
    return (1 if over else 0), mix


@njit(**_JIT)
def granulator_callback(started, arena, layout, rate, data, headers, memory,
                        period):  # pragma: no cover - compiled
    """The audio callback's block for a rack of granulators, in one call: :func:`granulator_rack`,
    then (unless the knee is still to apply) the block appended to the tap and its compute time
    (from ``started``, time.perf_counter(), to now) to the health report and the recent loads in
    the shared memory ``memory`` (:attr:`engine.audio.shared.SharedAudioState.memory`), with no
    audio input; every 16 blocks, and at a silent one (the callback may fall asleep), the voices
    sounding and the limiter's reduction for the HUD, as the server's report. Returns the bits
    of what is left to Python: SILENT; KNEE (the caller bends the mix) or VIEWED (a reader wants
    a view: the caller publishes it), and with either nothing after the render was done (the
    caller finishes the block, so that its compute time counts that work too)."""
    status, mix = granulator_rack(arena, layout, rate, data, headers)
    code = SILENT if status == QUIET else 0
    if status == 1:
        return KNEE
    health = shared.health_of(memory)
    if shared.view_wanted(memory, health):
        return code | VIEWED
    blocks = shared.finish_block(memory, health, f32_2(arena, layout, OUT), shared.NO_INPUT, started,
                                 monotonic() - started, period)
    if not blocks & 15 or code & SILENT:  # the HUD's voices and limiter (the server's report)
        voices = 0.0
        for k in range(i64_1(arena, layout, MEMBERS).size):
            voices += _scalars(arena, layout, k)[S_GRAINS]
        health[shared.VOICES_FIELD] = voices
        health[shared.LIMITER_DB_FIELD] = reduction_db(f64_1(arena, layout, LIMITER)[0])
    return code
