"""The rule by which the JACK MIDI test tells a lost event JACK reported (a client missed its
cycle) from any other difference between what was sent and what the show received."""

import os
import subprocess

import pytest

import bench.jack_server as jack_server_module
from bench.jack_server import realtime_refused, realtime_threads
from tests.jack_cycles import left_out, missed_cycles, unexplained_losses

LATE = "JackEngine::XRun: client = {} was not finished, state = Triggered"
CLIENTS = ("showrunner", "piano-sim")


def report(at: float, client: str) -> list[tuple[float, str]]:
    return [(at, LATE.format(client))]


def test_events_left_out_are_found_by_index():
    wanted = ["note_on 60 90", "cc 64 0", "note_off 60 0", "note_on 60 90", "note_off 60 0"]
    assert left_out(wanted, wanted) == []
    assert left_out(wanted, wanted[:1] + wanted[2:]) == [1]
    assert left_out(wanted, wanted[:-1]) == [4]
    assert left_out(wanted, []) == [0, 1, 2, 3, 4]


def test_anything_but_events_left_out_is_not_a_loss():
    wanted = ["note_on 60 90", "cc 64 0", "note_off 60 0"]
    assert left_out(wanted, [wanted[1], wanted[0], wanted[2]]) is None  # out of order
    assert left_out(wanted, wanted + ["note_on 61 90"]) is None  # one added
    assert left_out(wanted, [wanted[0], wanted[0], *wanted[1:]]) is None  # delivered twice
    assert left_out(wanted, ["note_on 60 91", *wanted[1:]]) is None  # changed


def test_missed_cycles_are_picked_by_time_and_client():
    log = [(10.000, "JackTimedDriver::Process XRun = 45 usec"), (10.004, LATE.format("showrunner-01")),
           (10.006, LATE.format("PortAudio")), (10.300, LATE.format("piano-sim"))]
    assert missed_cycles(log, 9.9, 10.1) == [log[1][1], log[2][1]]  # any client
    assert missed_cycles(log, 9.9, 10.1, CLIENTS) == [log[1][1]]  # the MIDI clients only
    assert missed_cycles(log, 10.2, 10.4, CLIENTS) == [log[3][1]]
    assert missed_cycles(log[:1], 9.9, 10.1) == []  # the driver late, no client reported


def test_a_loss_is_explained_only_by_a_missed_midi_cycle_reported_just_after_the_sending():
    wanted = ["note_on 60 90", "cc 64 38", "cc 64 38", "cc 64 38", "note_off 60 0"]
    sent = [9.0, 9.998, 10.05, 10.19, 10.5]
    log = report(10.004, "showrunner")
    assert unexplained_losses(wanted, [1], sent, log, CLIENTS) == []
    assert unexplained_losses(wanted, [0, 4], sent, log, CLIENTS) == [0, 4]  # long before, and after
    # Losing the first of three twins shows as losing the last; the report after the first explains it.
    assert unexplained_losses(wanted, [3], sent, log, CLIENTS) == []
    assert unexplained_losses(wanted, [1], sent, report(10.004, "PortAudio"), CLIENTS) == [1]
    assert unexplained_losses(wanted, [1], sent, report(9.95, "showrunner"), CLIENTS) == [1]  # before
    assert unexplained_losses(wanted, [1], sent, report(10.25, "showrunner"), CLIENTS) == [1]  # after all
    assert unexplained_losses(wanted, [4], sent, report(10.54, "piano-sim"), CLIENTS) == []  # 40 ms on
    assert unexplained_losses(wanted, [4], sent, report(10.56, "piano-sim"), CLIENTS) == [4]  # 60 ms on



# Which mode the test JACK server runs in (bench/jack_server.py, realtime where allowed): the rule
# above is what a lost event must meet in either; realtime makes missed cycles rarer, not impossible.

def test_realtime_threads_are_told_by_their_scheduling_policy():
    if os.sched_getscheduler(0) in (os.SCHED_FIFO, os.SCHED_RR):
        pytest.skip("pytest itself runs realtime")
    assert realtime_threads(os.getpid()) == []
    if (reason := realtime_refused(1)) is not None:
        pytest.skip(reason)
    child = subprocess.Popen(["sleep", "10"], preexec_fn=lambda: os.sched_setscheduler(
        0, os.SCHED_FIFO, os.sched_param(1)))
    try:
        assert realtime_threads(child.pid) == [(child.pid, "SCHED_FIFO", 1)]
    finally:
        child.kill()
        child.wait()
    assert realtime_threads(child.pid) == []  # gone


def test_a_server_refused_realtime_runs_without_it_and_says_why(monkeypatch):
    before = os.environ.get("SHOWRUNNER_JACK_MODE")
    monkeypatch.setattr(jack_server_module, "realtime_refused", lambda priority=10: "refused for the test")
    try:
        with jack_server_module.jack_server(name_prefix="showrunner-unit", realtime="auto") as env:
            assert not env.realtime and env.detail == "no-realtime: refused for the test"
            assert env["SHOWRUNNER_JACK_MODE"] == os.environ["SHOWRUNNER_JACK_MODE"] == "no-realtime"
    except jack_server_module.JackUnavailable as error:
        pytest.skip(str(error))
    assert os.environ.get("SHOWRUNNER_JACK_MODE") == before
