"""Padberg's text-to-music (scenes/composition/padberg.py; issue 23): the letter table, the rhythm
cycle PyPadberg's log gives for "harriet padberg", and text outside the table handled as the docs
say (accents folded, digits, punctuation and emoji silent but counted)."""

from __future__ import annotations

import pytest

from engine.midi import NoteOff, NoteOn
from scenes.composition.padberg import PadbergParams, PadbergText, fold, letter_hz, rhythm_cycle


@pytest.mark.parametrize("letter, hz", [("a", 440.0), ("b", 458.33), ("c", 476.66), ("i", 586.66), ("j", 605.0),
                                        ("m", 660.0), ("u", 806.66), ("v", 825.0), ("w", 825.0),
                                        ("x", 843.33), ("y", 861.66), ("z", 861.66)])
def test_letters_sit_on_24_equal_frequency_steps_from_440(letter, hz):
    assert letter_hz(letter) == pytest.approx(hz, abs=0.01)


def test_harriet_padberg_has_the_rhythm_pypadbergs_log_gives():
    assert rhythm_cycle("harriet padberg") == [1, 2, 4, 4, 8, 22, 44, 165]
    source = PadbergText(PadbergParams(text="harriet padberg", unit=0.1, gap=0.0))
    events = source.write(0)
    values = [value for _, _, _, value in source.letters]
    assert "".join(letter for _, letter, _, _ in source.letters) == "harrietpadberg"  # the space: silent
    assert values == [1, 2, 4, 4, 8, 22, 44, 165, 1, 2, 4, 4, 8, 22]
    ons = [(at, e.note) for at, e in events if isinstance(e, NoteOn)]
    offs = [at for at, e in events if isinstance(e, NoteOff)]
    assert [note - 69 for _, note in ons[:3]] == [7, 0, 17]  # h a r
    lengths = [off - on for (on, _), off in zip(ons, offs)]
    assert lengths == pytest.approx([0.1 * v for v in values])


@pytest.mark.parametrize("text, letters", [
    ("Été à Zürich", "eteazurich"),
    ("R2-D2 says: 42!", "rdsays"),
    ("music 🎹 now", "musicnow"),
    ("Straße", "strasse"),
    ("1234 !?", ""),
])
def test_text_outside_the_table_is_folded_or_silent_never_a_crash(text, letters):
    source = PadbergText(PadbergParams(text=text))
    events = source.write(0)
    assert "".join(letter for _, letter, _, _ in source.letters) == letters
    assert len(events) == 2 * len(letters)
    assert source.cycle and all(v > 0 for v in source.cycle)
    assert fold("ÉÀÜ") == "eau"


def test_new_text_from_the_stage_is_taken():
    source = PadbergText(PadbergParams())
    assert source.take_text("abc")
    source.write(1)
    assert [letter for _, letter, _, _ in source.letters] == ["a", "b", "c"]
