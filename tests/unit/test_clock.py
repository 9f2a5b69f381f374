"""FixedStepClock turns elapsed time into whole ticks plus alpha; VirtualTime is freewheel time."""

from __future__ import annotations

import math
import time

import pytest

from engine.clock import FixedStepClock, FrameSteps, VirtualTime


def _run(clock: FixedStepClock, frames: list[float]) -> list[FrameSteps]:
    return [clock.advance(elapsed) for elapsed in frames]


# Exact multiples of dt.
def test_three_frames_of_one_tick_each_run_three_ticks() -> None:
    clock = FixedStepClock(60)
    steps = _run(clock, [1 / 60] * 3)
    assert [s.ticks for s in steps] == [1, 1, 1]
    assert clock.tick_count == 3
    assert clock.show_time == pytest.approx(3 / 60)


def test_one_frame_of_three_dt_runs_three_ticks_not_two() -> None:
    clock = FixedStepClock(60)
    step = clock.advance(3 * (1 / 60))
    assert step.ticks == 3
    assert step.alpha == pytest.approx(0.0, abs=1e-6)
    assert step.dropped == 0.0


@pytest.mark.parametrize(("rate", "k"), [(60.0, 3), (144.0, 7), (144.0, 14)])
def test_frame_of_k_whole_ticks_runs_exactly_k_ticks_despite_rounding(rate: float, k: int) -> None:
    # k * (1/144) / (1/144) is 6.999... for k = 7 in floats: the clock must still pay 7 ticks.
    clock = FixedStepClock(rate, max_ticks_per_frame=20)
    step = clock.advance(k * (1 / rate))
    assert step.ticks == k
    assert step.alpha == pytest.approx(0.0, abs=1e-6)


def test_frame_of_two_dt_at_30_fps_runs_two_ticks_every_frame() -> None:
    clock = FixedStepClock(60)
    steps = _run(clock, [1 / 30] * 1000)
    assert {s.ticks for s in steps} == {2}
    assert clock.tick_count == 2000


@pytest.mark.parametrize("rate", [60.0, 144.0])
def test_no_float_drift_over_10000_frames_of_exactly_one_tick(rate: float) -> None:
    clock = FixedStepClock(rate)
    steps = _run(clock, [1 / rate] * 10_000)
    assert all(s.ticks == 1 for s in steps), [i for i, s in enumerate(steps) if s.ticks != 1][:5]
    assert all(s.dropped == 0.0 for s in steps)
    assert clock.tick_count == 10_000


@pytest.mark.parametrize(("frame_period", "rate"), [(1 / 60, 60.0), (1 / 144, 60.0), (1 / 144, 144.0),
                                                    (1 / 60, 144.0)])
def test_total_ticks_match_total_time_after_10000_frames(frame_period: float, rate: float) -> None:
    clock = FixedStepClock(rate)
    steps = _run(clock, [frame_period] * 10_000)
    total_time = 10_000 * frame_period
    owed = total_time * rate
    # Whole ticks owed: exact for whole multiples, the floor otherwise (the fraction is still pending).
    expected = round(owed) if abs(owed - round(owed)) < 1e-6 else math.floor(owed)
    assert clock.tick_count == expected
    assert sum(s.ticks for s in steps) == expected
    assert clock.show_time == pytest.approx(expected / rate)
    # What is left over is exactly the last alpha's share of a tick.
    assert steps[-1].alpha == pytest.approx(owed - expected, abs=1e-6)


def test_144_hz_frames_on_a_60_hz_clock_run_zero_or_one_tick_each() -> None:
    clock = FixedStepClock(60)
    steps = _run(clock, [1 / 144] * 10_000)
    assert {s.ticks for s in steps} == {0, 1}
    assert sum(s.ticks for s in steps) == math.floor(10_000 * 60 / 144)


# Alpha.
def test_alpha_is_the_fraction_of_a_tick_left_over() -> None:
    clock = FixedStepClock(60)
    dt = clock.dt
    step = clock.advance(1.5 * dt)
    assert step.ticks == 1
    assert step.alpha == pytest.approx(0.5)
    step = clock.advance(0.25 * dt)
    assert step.ticks == 0
    assert step.alpha == pytest.approx(0.75)
    step = clock.advance(0.5 * dt)
    assert step.ticks == 1
    assert step.alpha == pytest.approx(0.25)


def test_alpha_stays_within_0_and_1_for_uneven_frames() -> None:
    clock = FixedStepClock(60)
    frames = [0.0011 * (i % 37) for i in range(5000)]
    leftover = 0.0
    for elapsed in frames:
        step = clock.advance(elapsed)
        assert 0.0 <= step.alpha <= 1.0
        leftover += elapsed - step.dropped - step.ticks * clock.dt
        assert step.alpha == pytest.approx(leftover / clock.dt, abs=1e-6)


def test_dt_is_one_over_tick_rate() -> None:
    assert FixedStepClock(50).dt == 0.02
    assert FixedStepClock(tick_rate=120).tick_rate == 120.0


@pytest.mark.parametrize("rate", [0, -60])
def test_non_positive_tick_rate_is_rejected(rate: float) -> None:
    with pytest.raises(ValueError, match="tick_rate"):
        FixedStepClock(rate)


def test_max_ticks_per_frame_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_ticks_per_frame"):
        FixedStepClock(60, max_ticks_per_frame=0)


# Catch-up bound.
def test_one_second_stall_runs_at_most_max_ticks_and_reports_the_rest_as_dropped() -> None:
    clock = FixedStepClock(60, max_ticks_per_frame=5, max_frame_time=0.25)
    clock.advance(0.5 / 60)  # half a tick pending before the stall
    step = clock.advance(1.0)
    assert step.ticks == 5
    # Everything not run as a tick or still pending is reported as dropped.
    assert step.dropped + step.ticks * clock.dt + step.alpha * clock.dt == pytest.approx(1.0 + 0.5 / 60)
    assert step.dropped == pytest.approx(1.0 - 5 / 60)
    assert 0.0 <= step.alpha < 1.0


def test_clock_does_not_spiral_after_a_stall() -> None:
    clock = FixedStepClock(60, max_ticks_per_frame=5)
    clock.advance(1.0)
    after = _run(clock, [1 / 60] * 120)
    assert [s.ticks for s in after] == [1] * 120
    assert all(s.dropped == 0.0 for s in after)


def test_stall_shorter_than_max_frame_time_is_bounded_by_max_ticks() -> None:
    clock = FixedStepClock(60, max_ticks_per_frame=3, max_frame_time=1.0)
    step = clock.advance(10 / 60)
    assert step.ticks == 3
    assert step.dropped == pytest.approx(7 / 60)
    assert clock.tick_count == 3


def test_negative_elapsed_is_ignored() -> None:
    clock = FixedStepClock(60)
    clock.advance(0.5 / 60)
    step = clock.advance(-1.0)
    assert (step.ticks, step.dropped) == (0, 0.0)
    assert step.alpha == pytest.approx(0.5)
    assert clock.tick_count == 0
    assert clock.advance(0.5 / 60).ticks == 1  # the half tick owed before is still owed


# Freewheel determinism and virtual time.
def test_same_elapsed_sequence_gives_identical_frame_steps() -> None:
    frames = [1 / 60, 1 / 144, 0.3, 0.0, -0.01, 1 / 30, 0.0169, 2.0, 1 / 60] * 200
    first = _run(FixedStepClock(60), frames)
    second = _run(FixedStepClock(60), frames)
    assert first == second
    assert sum(s.ticks for s in first) > 0


def test_freewheel_loop_over_virtual_time_is_reproducible() -> None:
    def render() -> list[FrameSteps]:
        clock, source = FixedStepClock(60), VirtualTime()
        last, out = source.now(), []
        for _ in range(600):
            source.advance(1 / 50)
            now = source.now()
            out.append(clock.advance(now - last))
            last = now
        return out

    first, second = render(), render()
    assert first == second
    assert sum(s.ticks for s in first) == 720  # 12 s of show at 60 Hz


def test_virtual_time_sleep_advances_time_without_sleeping() -> None:
    source = VirtualTime(start=5.0)
    started = time.perf_counter()
    source.sleep(3600.0)
    source.sleep(0.5)
    wall = time.perf_counter() - started
    assert source.now() == 3605.5
    assert wall < 0.05


def test_virtual_time_ignores_non_positive_sleep_and_advances_explicitly() -> None:
    source = VirtualTime()
    source.sleep(-1.0)
    source.sleep(0.0)
    assert source.now() == 0.0
    source.advance(0.25)
    assert source.now() == 0.25
