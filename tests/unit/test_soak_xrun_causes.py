"""The soak benchmark's sorting of xruns by what the audio process's blocks did just before them."""

import numpy as np

from bench.audio_soak import xrun_causes

PERIOD = 128 / 48000  # 2.67 ms


def _blocks(count: int, load: float = 0.0004) -> tuple[np.ndarray, np.ndarray]:
    return 10.0 + PERIOD * np.arange(count), np.full(count, load)


def test_a_callback_over_its_period_is_a_long_callback():
    starts, loads = _blocks(100)
    loads[50] = 1.2 * PERIOD
    at = [starts[51] + 0.0005]
    assert xrun_causes(at, starts, loads, PERIOD) == {
        "events": 1, "long_callback": 1, "late_start": 0, "unseen": 0}


def test_a_block_that_began_late_with_short_callbacks_is_a_late_start():
    starts, loads = _blocks(100)
    starts[60:] += 2 * PERIOD  # the thread woke two periods late; every callback stays short
    at = [starts[60] + 0.0005]
    assert xrun_causes(at, starts, loads, PERIOD) == {
        "events": 1, "long_callback": 0, "late_start": 1, "unseen": 0}


def test_regular_short_blocks_leave_the_xrun_unseen_and_twin_notifications_count_once():
    starts, loads = _blocks(100)
    at = [starts[40] + 0.001, starts[40] + 0.0012, starts[80] + 0.001]
    assert xrun_causes(at, starts, loads, PERIOD) == {
        "events": 2, "long_callback": 0, "late_start": 0, "unseen": 2}


def test_only_blocks_shortly_before_the_notification_count():
    starts, loads = _blocks(200)
    loads[20] = 2 * PERIOD  # long, but 150 periods before the xrun: not its cause
    starts[30:] += 3 * PERIOD  # late, but long before as well
    at = [starts[170] + 0.001]
    assert xrun_causes(at, starts, loads, PERIOD)["unseen"] == 1
    assert xrun_causes([], starts, loads, PERIOD) == {
        "events": 0, "long_callback": 0, "late_start": 0, "unseen": 0}
