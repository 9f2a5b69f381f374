"""A tick's input is bounded so a flood never freezes the picture (engine.input_bound.bound_input)."""

from __future__ import annotations

from engine.midi import ControlChange, NoteOff, NoteOn, PitchBend, ProgramChange
from engine.input_bound import PEDALS, bound_input


def stamped(*events):
    return [(0.001 * i, event) for i, event in enumerate(events)]


def test_a_streaming_controller_keeps_only_its_latest_value_in_a_tick():
    due = stamped(ControlChange(1, 10), ControlChange(1, 20), ControlChange(2, 5), ControlChange(1, 30),
                  PitchBend(100), PitchBend(200))
    kept, dropped = bound_input(due, budget=32)
    assert [e for _, e in kept] == [ControlChange(2, 5), ControlChange(1, 30), PitchBend(200)]
    assert dropped == 0  # superseded values are not an overload


def test_pedals_and_advance_triggers_keep_every_change():
    due = stamped(ControlChange(64, 127), ControlChange(64, 0), ControlChange(67, 90), ControlChange(67, 0),
                  ControlChange(20, 127), ControlChange(20, 0))
    kept, _ = bound_input(due, budget=32, kept_controllers=PEDALS | {20})
    assert len(kept) == 6


def test_beyond_the_budget_note_ons_are_left_out_and_counted_but_note_offs_always_pass():
    ons = [NoteOn(40 + i, 90) for i in range(10)]
    offs = [NoteOff(40 + i, 0) for i in range(10)]
    kept, dropped = bound_input(stamped(*ons, *offs, ProgramChange(3)), budget=4)
    events = [e for _, e in kept]
    assert events[:4] == ons[:4] and events[4:] == offs
    assert dropped == 7  # six note-ons and the program change
    assert [stamp for stamp, _ in kept] == sorted(stamp for stamp, _ in kept)  # order kept


def test_within_the_budget_nothing_changes():
    due = stamped(NoteOn(60, 90), ControlChange(64, 127), NoteOff(60, 0), ControlChange(1, 3))
    assert bound_input(due, budget=32) == (due, 0)


def test_over_budget_a_note_off_passes_only_for_a_note_taken_in():
    ons = [NoteOn(40 + i, 90) for i in range(10)]
    offs = [NoteOff(40 + i, 0) for i in range(10)]
    kept, dropped = bound_input(stamped(*ons, *offs), budget=4, held={(0, 70)})
    events = [e for _, e in kept]
    assert events == ons[:4] + offs[:4]  # the note-offs of the four note-ons taken
    assert dropped == 12
    kept, _ = bound_input(stamped(NoteOff(70, 0), *ons), budget=4, held={(0, 70)})
    assert kept[0][1] == NoteOff(70, 0)  # a note held from an earlier tick is released


def test_a_reset_of_every_channel_does_not_crowd_out_the_notes():
    """A MIDI file's (or a synth's) reset at its start: bank select MSB and LSB and the volume on all
    16 channels in one tick (asap_Chopin_Ballades_1_Ali01.mid has such a burst) pass whole, and so
    do the notes that come with them."""
    reset = [ControlChange(control, 0, channel=channel) for control in (0, 32, 7) for channel in range(16)]
    notes = [NoteOn(48 + i, 80) for i in range(32)]
    kept, dropped = bound_input(stamped(*reset, *notes), budget=32)
    assert dropped == 0 and len(kept) == 48 + 32
    # but the streams have a bound of their own: 4 x the budget
    many = [ControlChange(control, 1, channel=channel) for control in range(1, 20) for channel in range(16)]
    kept, dropped = bound_input(stamped(*many, NoteOn(60, 90)), budget=32)
    assert len(kept) == 128 + 1 and dropped == len(many) - 128
    assert kept[-1][1] == NoteOn(60, 90)
