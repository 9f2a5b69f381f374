"""The rule by which the JACK MIDI test tells a lost event JACK reported (a client missed its
cycle) from any other difference between what was sent and what the show received."""

from tests.integration.test_midi_jack import left_out, missed_cycle_after


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


def test_a_loss_is_explained_only_by_a_missed_cycle_reported_just_after_the_sending():
    log = [(10.000, "JackTimedDriver::Process XRun = 45 usec"),
           (10.004, "JackEngine::XRun: client = showrunner was not finished, state = Triggered")]
    assert missed_cycle_after(9.998, log) == log[1][1]
    assert missed_cycle_after(10.010, log) == log[1][1]  # reported the moment before (slack)
    assert missed_cycle_after(10.020, log) is None  # reported before the event was sent
    assert missed_cycle_after(9.7, log) is None  # too long after: another cycle
    assert missed_cycle_after(9.998, log[:1]) is None  # the driver late, no client reported
