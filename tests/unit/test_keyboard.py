"""The computer keyboard: rehearsal moves, and musical typing from C4 with octave shifts."""

from __future__ import annotations

import pytest

from engine.keyboard import KeyAction, KeyboardInstrument


@pytest.fixture
def keys() -> KeyboardInstrument:
    return KeyboardInstrument()


@pytest.mark.parametrize(("key", "action"), [
    ("space", KeyAction("go")),
    ("right", KeyAction("go")),
    ("page down", KeyAction("go")),
    ("left", KeyAction("previous")),
    ("page up", KeyAction("previous")),
    ("backspace", KeyAction("restart")),
    ("home", KeyAction("restart")),
    ("escape", KeyAction("quit")),
])
def test_rehearsal_keys_map_to_moves(keys: KeyboardInstrument, key: str, action: KeyAction) -> None:
    assert keys.key_down(key) == action


@pytest.mark.parametrize(("key", "cue_index"), [("1", 0), ("2", 1), ("9", 8), ("0", 9)])
def test_digit_keys_jump_to_cues_1_to_10(keys: KeyboardInstrument, key: str, cue_index: int) -> None:
    assert keys.key_down(key) == KeyAction("jump", cue_index)


def test_a_plays_middle_c_and_releasing_it_stops_middle_c(keys: KeyboardInstrument) -> None:
    assert keys.key_down("a") == KeyAction("note_on", 60)
    assert keys.key_up("a") == KeyAction("note_off", 60)


@pytest.mark.parametrize(("key", "note"), [("w", 61), ("s", 62), ("d", 64), ("k", 72), ("'", 77)])
def test_home_row_and_row_above_play_a_chromatic_scale(keys: KeyboardInstrument, key: str, note: int) -> None:
    assert keys.key_down(key) == KeyAction("note_on", note)


def test_key_repeat_of_a_held_key_gives_none(keys: KeyboardInstrument) -> None:
    assert keys.key_down("a") == KeyAction("note_on", 60)
    assert keys.key_down("a") is None
    assert keys.key_down("a") is None
    assert keys.key_up("a") == KeyAction("note_off", 60)
    assert keys.key_down("a") == KeyAction("note_on", 60)


def test_key_up_of_a_key_not_sounding_gives_none(keys: KeyboardInstrument) -> None:
    assert keys.key_up("a") is None
    assert keys.key_up("space") is None


def test_x_shifts_up_an_octave_so_a_plays_72(keys: KeyboardInstrument) -> None:
    assert keys.key_down("x") == KeyAction("octave", 1)
    assert keys.base_note == 72
    assert keys.key_down("a") == KeyAction("note_on", 72)


def test_z_shifts_down_an_octave(keys: KeyboardInstrument) -> None:
    assert keys.key_down("z") == KeyAction("octave", -1)
    assert keys.key_down("a") == KeyAction("note_on", 48)


def test_key_released_after_an_octave_shift_stops_the_note_it_started(keys: KeyboardInstrument) -> None:
    keys.key_down("a")
    keys.key_down("x")
    assert keys.key_up("a") == KeyAction("note_off", 60)
    assert keys.key_down("a") == KeyAction("note_on", 72)


def test_octave_shift_stops_where_the_top_key_would_pass_127(keys: KeyboardInstrument) -> None:
    for _ in range(10):
        keys.key_down("x")
    assert keys.base_note == 108
    assert keys.key_down("'") == KeyAction("note_on", 125)


def test_octave_shift_stops_at_the_bottom(keys: KeyboardInstrument) -> None:
    for _ in range(10):
        keys.key_down("z")
    assert keys.base_note == 0
    assert keys.key_down("a") == KeyAction("note_on", 0)


@pytest.mark.parametrize("key", ["q", "m", "f3", "up", "delete", "left shift", "[1]", ""])
def test_unmapped_keys_give_none(keys: KeyboardInstrument, key: str) -> None:
    assert keys.key_down(key) is None


def test_superscript_two_key_is_not_a_cue_jump_and_does_not_raise(keys: KeyboardInstrument) -> None:
    assert keys.key_down("²") is None


def test_f5_asks_the_cues_note_source_to_write_anew(keys: KeyboardInstrument) -> None:
    from engine.keyboard import TICK_ACTIONS

    action = keys.key_down("f5")
    assert action is not None and action.kind == "throw" and "throw" in TICK_ACTIONS


def test_f6_types_text_and_enter_sends_it(keys: KeyboardInstrument) -> None:
    assert keys.key_down("f6") == KeyAction("text_edit", text="")
    for key in ["h", "i", "space", "x", "backspace", "y", "left shift"]:
        keys.key_down(key)
    assert keys.typing == "hi y"
    assert keys.key_up("h") is None  # typing plays no note
    assert keys.key_down("return") == KeyAction("text_send", text="hi y")
    assert keys.typing is None and keys.key_down("a").kind == "note_on"  # playing again
    keys.key_down("f6")
    keys.key_down("q")
    assert keys.key_down("escape") == KeyAction("text_cancel") and keys.typing is None
