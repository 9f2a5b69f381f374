"""Playhead: performer moves as requests, and the advance triggers (time, controller, note, program)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.midi import ControlChange, NoteOff, NoteOn, PitchBend, ProgramChange
from engine.playhead import Playhead
from engine.setlist import LoadedSetlist, load_setlist

SETLIST = """
title = "playhead test"

[[cues]]
id = "dark"
scene = "blackout"

[[cues]]
id = "timed"
scene = "pulse"
advance = { after = 2.5 }

[[cues]]
id = "pedal"
scene = "pulse"
advance = { cc = 67 }

[[cues]]
id = "pedal-again"
scene = "pulse"
advance = { cc = 67 }

[[cues]]
id = "note"
scene = "pulse"
advance = { note = 21 }

[[cues]]
id = "program"
scene = "blackout"
advance = { program = 5 }

[[cues]]
id = "end"
scene = "blackout"
"""
DARK, TIMED, PEDAL, PEDAL_AGAIN, NOTE, PROGRAM, END = range(7)


@pytest.fixture(scope="module")
def setlist(tmp_path_factory: pytest.TempPathFactory) -> LoadedSetlist:
    path: Path = tmp_path_factory.mktemp("setlists") / "playhead.toml"
    path.write_text(SETLIST, encoding="utf-8")
    return load_setlist(path)


def _at(setlist: LoadedSetlist, index: int, show_time: float = 0.0) -> Playhead:
    """A playhead whose cue ``index`` has started (as the show does: take the request, then start)."""
    playhead = Playhead(setlist.cues, start=index)
    assert playhead.take_request() == index
    playhead.started(index, show_time)
    return playhead


def _apply(playhead: Playhead, show_time: float) -> int | None:
    """What the show does at a tick boundary."""
    requested = playhead.take_request()
    if requested is not None:
        playhead.started(requested, show_time)
    return requested


# Construction and take_request.
def test_new_playhead_requests_its_start_cue_once(setlist: LoadedSetlist) -> None:
    playhead = Playhead(setlist.cues, start=PEDAL)
    assert playhead.index == PEDAL
    assert playhead.current.id == "pedal"
    assert playhead.take_request() == PEDAL
    assert playhead.take_request() is None


def test_playhead_needs_at_least_one_cue() -> None:
    with pytest.raises(ValueError):
        Playhead(())


def test_moves_are_requests_until_the_show_starts_the_cue(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, DARK)
    assert playhead.go() is True
    assert playhead.index == DARK  # nothing moved yet
    assert playhead.take_request() == TIMED
    assert playhead.index == DARK
    playhead.started(TIMED, 1.0)
    assert (playhead.index, playhead.current.id, playhead.cue_started_at) == (TIMED, "timed", 1.0)


# Performer moves.
def test_go_moves_to_the_next_cue(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, DARK)
    assert playhead.go() is True
    assert _apply(playhead, 0.0) == TIMED


def test_next_is_go(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, NOTE)
    assert playhead.next() is True
    assert playhead.take_request() == PROGRAM


def test_go_twice_before_the_tick_moves_two_cues(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, DARK)
    playhead.go()
    playhead.go()
    assert playhead.take_request() == PEDAL


def test_go_at_the_last_cue_returns_false_and_requests_nothing(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, END)
    assert playhead.is_last is True
    assert playhead.go() is False
    assert playhead.take_request() is None
    assert playhead.index == END


def test_is_last_is_false_before_the_last_cue(setlist: LoadedSetlist) -> None:
    assert _at(setlist, PROGRAM).is_last is False


def test_previous_moves_back_one_cue(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, NOTE)
    assert playhead.previous() is True
    assert playhead.take_request() == PEDAL_AGAIN


def test_previous_at_the_first_cue_returns_false(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, DARK)
    assert playhead.previous() is False
    assert playhead.take_request() is None


def test_go_then_previous_before_the_tick_requests_the_current_cue_again(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, TIMED)
    playhead.go()
    playhead.previous()
    assert playhead.take_request() == TIMED


def test_jump_by_cue_id(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, DARK)
    assert playhead.jump("program") is True
    assert playhead.take_request() == PROGRAM


def test_jump_to_an_unknown_cue_id_returns_false(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, DARK)
    assert playhead.jump("finale") is False
    assert playhead.take_request() is None


@pytest.mark.parametrize(("index", "moved"), [(0, True), (6, True), (7, False), (-1, False), (99, False)])
def test_jump_to_index_accepts_only_existing_cues(setlist: LoadedSetlist, index: int, moved: bool) -> None:
    playhead = _at(setlist, TIMED)
    assert playhead.jump_to_index(index) is moved
    assert playhead.take_request() == (index if moved else None)


def test_restart_requests_the_current_cue_again(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, NOTE, show_time=3.0)
    playhead.restart()
    assert _apply(playhead, 10.0) == NOTE
    assert playhead.cue_started_at == 10.0


def test_restart_after_go_restarts_the_requested_cue(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, DARK)
    playhead.go()
    playhead.restart()
    assert playhead.take_request() == TIMED


# Advance after N seconds.
def test_advance_after_seconds_fires_when_the_time_is_up(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, TIMED, show_time=10.0)
    assert playhead.check_time(12.4) is False
    assert playhead.take_request() is None
    assert playhead.check_time(12.5) is True
    assert playhead.take_request() == PEDAL


def test_advance_after_fires_once_while_the_move_is_pending(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, TIMED)
    assert playhead.check_time(3.0) is True
    assert playhead.check_time(3.1) is False
    assert playhead.take_request() == PEDAL


def test_advance_after_counts_from_a_restart(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, TIMED, show_time=0.0)
    playhead.restart()
    _apply(playhead, 2.0)
    assert playhead.check_time(4.0) is False
    assert playhead.check_time(4.5) is True


def test_manual_cue_never_advances_on_time(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, DARK)
    assert playhead.check_time(1e6) is False
    assert playhead.take_request() is None


# Controller trigger.
def test_cc_trigger_fires_on_pedal_down(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, PEDAL)
    assert playhead.check_event(ControlChange(67, 127)) is True
    assert playhead.take_request() == PEDAL_AGAIN


def test_cc_trigger_fires_once_while_pedal_held(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, PEDAL)
    assert playhead.check_event(ControlChange(67, 127)) is True
    assert playhead.check_event(ControlChange(67, 100)) is False
    assert playhead.take_request() == PEDAL_AGAIN  # one cue, not two


def test_cc_trigger_held_across_a_cue_change_does_not_advance_the_next_cue(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, PEDAL)
    assert playhead.check_event(ControlChange(67, 127)) is True
    assert _apply(playhead, 1.0) == PEDAL_AGAIN
    assert playhead.check_event(ControlChange(67, 120)) is False  # still held, never released
    assert playhead.take_request() is None


def test_cc_trigger_rearms_after_value_0(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, PEDAL)
    assert playhead.check_event(ControlChange(67, 127)) is True
    assert _apply(playhead, 1.0) == PEDAL_AGAIN
    assert playhead.check_event(ControlChange(67, 0)) is False
    assert playhead.check_event(ControlChange(67, 64)) is True
    assert playhead.take_request() == NOTE


def test_cc_trigger_disarmed_after_firing_waits_for_release(setlist: LoadedSetlist) -> None:
    # Within one cue the controller stays disarmed after firing until it reads 0 again.
    playhead = _at(setlist, PEDAL)
    assert playhead.check_event(ControlChange(67, 127)) is True
    playhead.take_request()  # taken without starting a new cue: the same cue is still live
    assert playhead.check_event(ControlChange(67, 127)) is False
    assert playhead.take_request() is None
    assert playhead.check_event(ControlChange(67, 0)) is False
    assert playhead.check_event(ControlChange(67, 1)) is True


def test_pedal_released_while_a_move_is_pending_fires_again_on_the_next_press(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, PEDAL)
    assert playhead.check_event(ControlChange(67, 127)) is True
    assert playhead.check_event(ControlChange(67, 0)) is False  # released before the cue changed
    assert _apply(playhead, 1.0) == PEDAL_AGAIN
    assert playhead.check_event(ControlChange(67, 127)) is True
    assert playhead.take_request() == NOTE


def test_other_controllers_do_not_trigger_a_cc_cue(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, PEDAL)
    assert playhead.check_event(ControlChange(64, 127)) is False
    assert playhead.check_event(ControlChange(66, 127)) is False
    assert playhead.take_request() is None


# Note and program triggers.
def test_note_trigger_fires_on_its_note_on(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, NOTE)
    assert playhead.check_event(NoteOn(22, 100)) is False
    assert playhead.check_event(NoteOff(21)) is False
    assert playhead.take_request() is None
    assert playhead.check_event(NoteOn(21, 1)) is True
    assert playhead.take_request() == PROGRAM


def test_program_trigger_fires_on_its_program_change(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, PROGRAM)
    assert playhead.check_event(ProgramChange(4)) is False
    assert playhead.take_request() is None
    assert playhead.check_event(ProgramChange(5)) is True
    assert playhead.take_request() == END


def test_manual_cue_ignores_every_event(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, DARK)
    for event in (NoteOn(21, 100), ControlChange(67, 127), ProgramChange(5), PitchBend(100), NoteOn(0, 5)):
        assert playhead.check_event(event) is False
    assert playhead.take_request() is None


def test_triggers_are_ignored_while_a_move_is_pending(setlist: LoadedSetlist) -> None:
    playhead = _at(setlist, NOTE)
    playhead.jump("dark")
    assert playhead.check_event(NoteOn(21, 100)) is False
    assert playhead.take_request() == DARK
