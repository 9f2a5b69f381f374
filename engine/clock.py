"""Fixed-timestep clock and injectable time sources.

Show state advances only in fixed ticks (default 60 Hz). A frame asks the clock how many ticks the
elapsed wall time pays for, runs them, then draws with ``alpha`` (0..1), the fraction of a tick
already elapsed, for interpolation. Catch-up is bounded: a frame runs at most
``max_ticks_per_frame`` ticks and counts at most ``max_frame_time`` seconds, so a stall (a slow
disk, a debugger, a suspended laptop) never turns into a spiral of ever longer frames. Time that is
dropped this way is reported so the show can keep its MIDI time stamps aligned.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol


class TimeSource(Protocol):
    """Where the loop reads time (seconds, monotonic) and how it waits."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealTime:
    """Wall-clock time for live shows: ``time.perf_counter`` and a real sleep."""

    def now(self) -> float:
        return time.perf_counter()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualTime:
    """Freewheel time for offline rendering: never sleeps; the loop advances it explicitly.

    ``sleep`` advances virtual time too, so code written for real time runs unchanged (and
    instantly) under it.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._t = float(start)

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        self._t += seconds

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._t += seconds


@dataclass(frozen=True)
class FrameSteps:
    """What one frame must do: ``ticks`` to run, ``alpha`` to draw with, ``dropped`` seconds lost."""

    ticks: int
    alpha: float
    dropped: float


class FixedStepClock:
    """Turns elapsed wall time into a whole number of fixed ticks plus an interpolation alpha.

    Args:
        tick_rate: ticks per second (Hz), default 60.
        max_ticks_per_frame: catch-up bound; extra owed ticks are dropped, default 5.
        max_frame_time: elapsed time per frame is clamped to this many seconds, default 0.25.
    """

    def __init__(self, tick_rate: float = 60.0, max_ticks_per_frame: int = 5,
                 max_frame_time: float = 0.25) -> None:
        if tick_rate <= 0:
            raise ValueError("tick_rate must be positive")
        if max_ticks_per_frame < 1:
            raise ValueError("max_ticks_per_frame must be at least 1")
        self.tick_rate = float(tick_rate)
        self.dt = 1.0 / self.tick_rate
        self.max_ticks_per_frame = int(max_ticks_per_frame)
        self.max_frame_time = float(max_frame_time)
        self._accumulator = 0.0
        self.tick_count = 0

    @property
    def show_time(self) -> float:
        """Show seconds at the end of the last tick run (``tick_count * dt``)."""
        return self.tick_count * self.dt

    def advance(self, elapsed: float) -> FrameSteps:
        """Account ``elapsed`` wall seconds; return the ticks this frame runs and the alpha."""
        elapsed = max(0.0, float(elapsed))
        dropped = max(0.0, elapsed - self.max_frame_time)
        self._accumulator += elapsed - dropped
        # The small epsilon keeps float sums such as 3 * (1/60) from owing 2.999... ticks.
        owed = math.floor(self._accumulator / self.dt + 1e-9)
        ticks = min(owed, self.max_ticks_per_frame)
        self._accumulator -= ticks * self.dt
        if owed > ticks:
            # Drop the unpaid ticks, keep the fraction: the show slows down instead of spiralling.
            extra = (owed - ticks) * self.dt
            self._accumulator -= extra
            dropped += extra
        self._accumulator = max(0.0, self._accumulator)
        self.tick_count += ticks
        return FrameSteps(ticks=ticks, alpha=min(1.0, self._accumulator / self.dt), dropped=dropped)
