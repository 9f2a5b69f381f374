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
"""

from __future__ import annotations

from numba import njit

from engine.audio.grain_schedulers import S_GRAINS, S_SPAWNING, granulator_play
from engine.audio.limiter import _gain, master_block

# Not fastmath: each bus's gain and sum round as numpy's do in the Python path.
_JIT = {"cache": True, "nogil": True}

QUIET = -2  # granulator_rack's first result when the block is silence (``out`` zeroed)
ZEROS = -1  # its second when no bus has a working instrument (the mix was ``zeros``)


@njit(**_JIT)
def granulator_rack(buses, members, gains, ramp, limiter, zeros, out, rate, data, headers,
                    states):  # pragma: no cover - compiled
    """One block of a rack of granulators into ``out`` ((N, 2) float32).

    Args:
        buses: (B, 2, N) float64, the buses in mix order (rack bus index b + 1).
        members: int64, the bus row of each instrument in ``states`` (slot order).
        gains: (2, B + 1) float64: the gain now and the target of the master (column 0) and of
            each bus; the ramps move the first row to the second.
        ramp: (N,) 1/N .. 1; limiter: the limiter's state ([gain, threshold, recovery]).
        zeros: (2, N) float64 of zeros, the mix when no bus has an instrument.
        rate, data, headers: the sample rate and the pool's data and headers.
        states: a tuple of each instrument's ``kernel_state()``.

    Returns (status, mix): status QUIET (the block is silence and nothing moves: ``out`` zeroed,
    nothing else changed), 1 when a sample is still over the limiter's threshold (the knee is to
    be applied to the mix and ``out`` was not written), else 0; mix: the bus row holding the mix,
    or ZEROS.
    """
    quiet = limiter[0] == 1.0
    for b in range(gains.shape[1]):
        if gains[0, b] != gains[1, b]:
            quiet = False
    for k in range(len(states)):
        scalars = states[k][-1]
        if scalars[S_GRAINS] != 0.0 or scalars[S_SPAWNING] != 0.0:
            quiet = False
    if quiet:
        out[:] = 0.0
        return QUIET, ZEROS
    mix = ZEROS
    for b in range(buses.shape[0]):
        bus = buses[b]
        present = False
        for k in range(members.size):
            if members[k] == b:
                present = True
        if not present:
            gains[0, b + 1] = gains[1, b + 1]
            continue
        bus[:] = 0.0
        for k in range(len(states)):
            if members[k] == b:
                granulator_play(bus[0], bus[1], rate, data, headers, *states[k])
        _gain(bus, ramp, gains[0, b + 1], gains[1, b + 1])  # Rack._scale
        gains[0, b + 1] = gains[1, b + 1]
        if mix == ZEROS:
            mix = b
        else:
            buses[mix] += bus
    start = gains[0, 0]
    gains[0, 0] = end = gains[1, 0]
    mixed = zeros if mix == ZEROS else buses[mix]
    limiter[0], over = master_block(mixed, ramp, start, end, limiter[0], limiter[1], limiter[2],
                                    out)
    return (1 if over else 0), mix
