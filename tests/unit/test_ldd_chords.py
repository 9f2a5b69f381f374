"""Part 2's chord trigger, with hand-made onsets."""

from scenes.ldd.chords import ChordDetector


def strike(detector: ChordDetector, onsets: list[tuple[float, int]]) -> list[float]:
    return [t for t, note in onsets if detector.note_on(note, t)]


def test_three_bass_notes_within_the_window_are_one_chord():
    detector = ChordDetector()
    assert strike(detector, [(1.0, 36), (1.02, 43), (1.05, 48)]) == [1.05]
    assert detector.held


def test_a_fourth_note_or_a_restruck_note_of_the_same_chord_is_not_a_second_chord():
    detector = ChordDetector()
    assert strike(detector, [(1.0, 36), (1.02, 43), (1.05, 48), (1.06, 52), (1.07, 48)]) == [1.05]


def test_notes_too_far_apart_upper_notes_and_too_few_notes_are_no_chord():
    detector = ChordDetector()
    assert strike(detector, [(1.0, 36), (1.2, 43), (1.4, 48)]) == []
    assert strike(detector, [(2.0, 36), (2.01, 64), (2.02, 67)]) == []
    assert strike(detector, [(3.0, 36), (3.01, 40)]) == []


def test_the_chord_is_held_while_any_of_its_notes_is_down():
    detector = ChordDetector()
    strike(detector, [(1.0, 36), (1.02, 43), (1.05, 48)])
    detector.note_off(36), detector.note_off(43)
    assert detector.held
    detector.note_off(48)
    assert not detector.held


def test_the_originals_rule_any_bass_note_two_seconds_apart():
    detector = ChordDetector(any_bass=True, min_interval=2.0)
    assert strike(detector, [(0.0, 40), (1.0, 41), (2.5, 42), (3.0, 70), (5.0, 45)]) == [0.0, 2.5, 5.0]
