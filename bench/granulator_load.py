"""Benchmark: what the granulator costs per block with 1,000 grains sounding at once (50 ms Hann
grains of a mono table, each its own start position and pitch), as a share of the block's own
duration, in this process (``Rack.render``, the instrument alone in a rack). The goal is 25 %.

Run: ``.venv/bin/python -m bench.granulator_load``.
"""

from __future__ import annotations

import time

import numpy as np

from engine.audio import command_ring as cmd
from engine.audio.pool import SamplePool
from engine.audio.rack import InstrumentSpec, Rack, RackConfig

SAMPLE_RATE, BLOCK = 48000, 256
GRAINS = 1000
DURATION = 0.05  # seconds per grain
TABLE_SECONDS = 4.0
BLOCKS = 2000  # timed blocks (about 10.7 s of audio)
WARM_UP = 50


def block_times() -> tuple[np.ndarray, int]:
    """Seconds per ``Rack.render`` block over BLOCKS blocks, and the fewest grains sounding."""
    frames = int(TABLE_SECONDS * SAMPLE_RATE)
    pool = SamplePool.create(2 * frames, max_tables=1)
    try:
        slot = pool.allocate("tone", frames, 1)
        t = np.arange(frames) / SAMPLE_RATE
        pool.fill(slot, (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
        settings = {"table": slot, "density": GRAINS / DURATION, "timing": "sync",
                    "duration": DURATION, "position": 0.5, "position_deviation": 0.4,
                    "pitch_deviation": 2.0, "gain_db": -40.0}
        rack = Rack(RackConfig(sample_rate=SAMPLE_RATE, block_size=BLOCK, buses={"grains": 0.0},
                               instruments=[InstrumentSpec(name="grains", kind="granulator",
                                                           bus="grains", settings=settings)],
                               notes=["grains"]), pool)
        rack.warm_up()
        granulator = rack.instrument("grains")
        rack.apply(cmd.NOTE_ON, 60, 60, 127.0)
        for _ in range(WARM_UP):
            rack.render()
        times, fewest = np.empty(BLOCKS), GRAINS * 10
        for block in range(BLOCKS):
            start = time.perf_counter()
            rack.render()
            times[block] = time.perf_counter() - start
            fewest = min(fewest, granulator.sounding())
        return times, fewest
    finally:
        pool.close()


def main() -> None:
    times, fewest = block_times()
    block = BLOCK / SAMPLE_RATE
    median, p99 = float(np.median(times)), float(np.percentile(times, 99))
    print(f"granulator, {fewest}+ grains of {DURATION * 1000:.0f} ms (Hann): median "
          f"{median * 1e6:.0f} us per {BLOCK}-frame block = {100 * median / block:.1f} % of the "
          f"block; p99 {p99 * 1e6:.0f} us = {100 * p99 / block:.1f} %")


if __name__ == "__main__":
    main()
