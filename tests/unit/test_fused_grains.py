"""The granular benchmark's yardstick (bench/fused_grains.py) plays the benchmark's stream: grains
at the density asked for, each DURATION long, limited, finite."""

from __future__ import annotations

import numpy as np

from bench import fused_grains as fused
from bench.grain_players import PERIOD, SAMPLE_RATE


def test_the_yardstick_starts_the_grains_asked_for_and_stays_limited():
    table = 0.9 * np.sin(np.arange(SAMPLE_RATE * 2) * 0.05)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(fused.LENGTH) / fused.LENGTH)
    grains = np.zeros((fused.MAX_GRAINS, 4))
    state = np.array([0.0, 1000.0, 1.0, 1.0, 0.01])
    out, mix = np.zeros(2 * PERIOD, np.float32), np.zeros(PERIOD)
    blocks = SAMPLE_RATE // PERIOD  # about a second
    peaks = []
    for _ in range(blocks):
        fused.block(out, mix, table, window, grains, state)
        peaks.append(float(np.abs(out).max()))
        assert np.isfinite(out).all() and np.array_equal(out[0::2], out[1::2])
    sounding = int(grains[:, 0].sum())
    assert 49 <= sounding <= 51  # 1,000 grains a second of 50 ms each
    assert max(peaks[blocks // 2:]) <= 0.72  # the limiter holds the sum near its threshold
    state[fused.PLAYING] = 0.0
    for _ in range(12):  # 64 ms: every grain ends
        fused.block(out, mix, table, window, grains, state)
    assert grains[:, 0].sum() == 0 and np.abs(out).max() == 0.0
