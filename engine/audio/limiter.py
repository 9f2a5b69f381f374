"""The master soft limiter: whatever the voices add up to, the output stays under 0 dBFS.

Two stages. A gain computer looks at each block's peak and glides the gain down (within the block)
to bring it to ``threshold``, and back up with a ``release`` time constant. What still overshoots
(the start of a block that just got loud) goes through a soft knee that bends everything above the
threshold towards ``ceiling`` (tanh): far over the knee it rounds to the ceiling, never past it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Not fastmath: a multiply and an add stay two roundings, as numpy's are (tests/unit/
# test_audio_mixer.py compares the two bit for bit).
_JIT = {"cache": True, "nogil": True}


@njit(**_JIT)
def _gain(stereo, ramp, start, end):  # pragma: no cover - compiled
    """Scale a (2, N) block in place by a gain moving from ``start`` to ``end`` across it
    (``start + (end - start) * ramp``, reaching ``end`` on the last frame); a steady gain of 1
    leaves it alone. A steady gain multiplies by ``start`` itself: what the ramp gives exactly."""
    if start == end:
        if start != 1.0:
            for i in range(stereo.shape[1]):
                stereo[0, i] *= start
                stereo[1, i] *= start
        return
    step = end - start
    for i in range(stereo.shape[1]):
        g = start + step * ramp[i]
        stereo[0, i] *= g
        stereo[1, i] *= g


@njit(**_JIT)
def _limit(stereo, ramp, start, threshold, recovery):  # pragma: no cover - compiled
    """The gain computer on a (2, N) float64 block in place: the block's peak, the gain glided
    from ``start`` towards what brings it to ``threshold``; (the gain at the block's end, whether
    a sample is still over the threshold)."""
    n = stereo.shape[1]
    peak = 0.0
    unordered = False  # a NaN: numpy's peak would be NaN, and no gain change
    for c in range(2):
        for i in range(n):
            a = abs(stereo[c, i])
            if a > peak:
                peak = a
            elif a != a:
                unordered = True
    target = 1.0
    if peak > 0.0 and not unordered:
        target = min(1.0, threshold / peak)
    end = target if target < start else start + (target - start) * recovery
    if end > 0.9999:
        end = 1.0
    _gain(stereo, ramp, start, end)
    over = False
    for c in range(2):
        for i in range(n):
            if abs(stereo[c, i]) > threshold:
                over = True
    return end, over


@njit(**_JIT)
def master_block(mix, ramp, gain_start, gain_end, start, threshold, recovery,
                 out):  # pragma: no cover - compiled
    """The rack's last step on its (2, N) float64 mix: the master gain (``gain_start`` to
    ``gain_end`` across the block), the limiter's gain computer (:func:`_limit`) and, when no
    sample is left over the threshold, the block written to ``out`` ((N, 2) float32). Returns
    (the limiter's gain at the block's end, whether the knee is still to apply: then ``out`` is
    not written)."""
    _gain(mix, ramp, gain_start, gain_end)
    end, over = _limit(mix, ramp, start, threshold, recovery)
    if not over:
        for i in range(mix.shape[1]):
            out[i, 0] = mix[0, i]
            out[i, 1] = mix[1, i]
    return end, over


@njit(**_JIT)
def reduction_db(gain):  # pragma: no cover - compiled
    """The reduction a limiter's ``gain`` makes, in dB (0 = none): compiled, so that the rack's
    compiled callback and Python report the same number."""
    return -20.0 * math.log10(gain)


class SoftLimiter:
    """Args: threshold and ceiling are linear amplitudes (defaults -3 dBFS and -0.2 dBFS);
    release in seconds; sample_rate in Hz; block_size in frames."""

    def __init__(self, sample_rate: int, block_size: int, threshold: float = 0.708,
                 ceiling: float = 0.977, release: float = 0.3) -> None:
        self.threshold = threshold
        self.ceiling = ceiling
        self.recovery = 1.0 - float(np.exp(-block_size / (release * sample_rate)))
        # [the gain now, threshold, recovery]: an array, so that a compiled block
        # (engine.audio.rack_block) carries the gain on where Python would.
        self.state = np.array([1.0, threshold, self.recovery])
        self._ramp = np.arange(1, block_size + 1, dtype=np.float64) / block_size

    @property
    def gain(self) -> float:
        """The limiter's gain now (1: no reduction)."""
        return float(self.state[0])

    @gain.setter
    def gain(self, value: float) -> None:
        self.state[0] = value

    @property
    def reduction_db(self) -> float:
        """The gain reduction now, in dB (0 = none), for the health report."""
        return reduction_db(float(self.state[0]))

    def process(self, stereo: np.ndarray) -> None:
        """Limit a (2, N) float64 block in place."""
        # The gain snaps to 1 within -0.001 dB, so an idle mixer can skip its work.
        self.gain, over = _limit(stereo, self._ramp, self.gain, self.threshold, self.recovery)
        if over:
            self.knee(stereo)

    def finish(self, mix: np.ndarray, out: np.ndarray, gain_start: float, gain_end: float) -> None:
        """The rack's last step: ``mix`` ((2, N) float64) scaled by the master gain (from
        ``gain_start`` to ``gain_end`` across the block), limited, and written to ``out`` ((N, 2)
        float32); one compiled call unless the knee is needed."""
        self.gain, over = master_block(mix, self._ramp, gain_start, gain_end, self.gain,
                                       self.threshold, self.recovery, out)
        if over:
            self.bend(mix, out)

    def bend(self, mix: np.ndarray, out: np.ndarray) -> None:
        """The knee on ``mix`` ((2, N)), written to ``out`` ((N, 2) float32): what a block whose
        gain computer left a sample over the threshold still needs."""
        self.knee(mix)
        out[:] = mix.T

    def knee(self, stereo: np.ndarray) -> None:
        """Bend what is over the threshold towards the ceiling (tanh), in place."""
        over = np.abs(stereo) > self.threshold
        if over.any():
            room = self.ceiling - self.threshold
            bent = self.threshold + room * np.tanh((np.abs(stereo) - self.threshold) / room)
            np.copyto(stereo, np.sign(stereo) * bent, where=over)
