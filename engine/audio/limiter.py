"""The master soft limiter: whatever the voices add up to, the output stays under 0 dBFS.

Two stages. A gain computer looks at each block's peak and glides the gain down (within the block)
to bring it to ``threshold``, and back up with a ``release`` time constant. What still overshoots
(the start of a block that just got loud) goes through a soft knee that bends everything above the
threshold towards ``ceiling`` (tanh): far over the knee it rounds to the ceiling, never past it.
"""

from __future__ import annotations

import numpy as np


class SoftLimiter:
    """Args: threshold and ceiling are linear amplitudes (defaults -3 dBFS and -0.2 dBFS);
    release in seconds; sample_rate in Hz; block_size in frames."""

    def __init__(self, sample_rate: int, block_size: int, threshold: float = 0.708,
                 ceiling: float = 0.977, release: float = 0.3) -> None:
        self.threshold = threshold
        self.ceiling = ceiling
        self.gain = 1.0
        self.recovery = 1.0 - float(np.exp(-block_size / (release * sample_rate)))
        self._ramp = np.arange(1, block_size + 1, dtype=np.float64) / block_size

    @property
    def reduction_db(self) -> float:
        """The gain reduction now, in dB (0 = none), for the health report."""
        return -20.0 * float(np.log10(self.gain))

    def process(self, stereo: np.ndarray) -> None:
        """Limit a (2, N) float64 block in place."""
        peak = float(np.max(np.abs(stereo)))
        target = min(1.0, self.threshold / peak) if peak > 0 else 1.0
        start = self.gain
        end = target if target < start else start + (target - start) * self.recovery
        if end > 0.9999:
            end = 1.0  # recovered (-0.001 dB away): snap, so an idle mixer can skip its work
        if start != 1.0 or end != 1.0:
            stereo *= start + (end - start) * self._ramp
        self.gain = end
        over = np.abs(stereo) > self.threshold
        if over.any():
            room = self.ceiling - self.threshold
            bent = self.threshold + room * np.tanh((np.abs(stereo) - self.threshold) / room)
            np.copyto(stereo, np.sign(stereo) * bent, where=over)
