"""MIDI at the edge: mido messages become typed events once; pedals; the time-stamped event queue."""

from __future__ import annotations

import threading

import mido
import pytest

from engine.midi import (ControlChange, EventQueue, NoteOff, NoteOn, PedalState, PitchBend, ProgramChange,
                         describe, normalize)


# normalize.
def test_note_on_becomes_note_on_with_its_stamp() -> None:
    event = normalize(mido.Message("note_on", note=60, velocity=100, channel=3), time=1.25)
    assert event == NoteOn(note=60, velocity=100, channel=3, time=1.25)


def test_note_on_with_velocity_0_becomes_note_off() -> None:
    event = normalize(mido.Message("note_on", note=64, velocity=0, channel=2), time=0.5)
    assert event == NoteOff(note=64, velocity=0, channel=2, time=0.5)
    assert not isinstance(event, NoteOn)


def test_note_on_with_velocity_1_stays_a_note_on() -> None:
    assert normalize(mido.Message("note_on", note=64, velocity=1)) == NoteOn(64, 1)


def test_note_off_keeps_its_release_velocity() -> None:
    assert normalize(mido.Message("note_off", note=21, velocity=40, channel=9)) == NoteOff(21, 40, 9)


def test_control_change_becomes_control_change() -> None:
    assert normalize(mido.Message("control_change", control=64, value=127, channel=1), 2.0) == \
        ControlChange(control=64, value=127, channel=1, time=2.0)


def test_program_change_keeps_the_wire_number() -> None:
    assert normalize(mido.Message("program_change", program=0)) == ProgramChange(program=0)
    assert normalize(mido.Message("program_change", program=127, channel=15)) == ProgramChange(127, 15)


@pytest.mark.parametrize("pitch", [-8192, 0, 8191])
def test_pitchwheel_becomes_pitch_bend(pitch: int) -> None:
    assert normalize(mido.Message("pitchwheel", pitch=pitch, channel=4)) == PitchBend(pitch, 4)


@pytest.mark.parametrize("message", [
    mido.Message("clock"),
    mido.Message("active_sensing"),
    mido.Message("start"),
    mido.Message("sysex", data=[0x7E, 0x7F, 0x09, 0x01]),
    mido.Message("aftertouch", value=10),
    mido.Message("polytouch", note=60, value=10),
], ids=lambda m: m.type)
def test_messages_scenes_never_see_become_none(message: mido.Message) -> None:
    assert normalize(message) is None


def test_events_are_immutable() -> None:
    event = NoteOn(60, 100)
    with pytest.raises(AttributeError):
        event.velocity = 1  # type: ignore[misc]


# describe.
@pytest.mark.parametrize(("event", "text"), [
    (NoteOn(60, 100), "note_on 60 100"),
    (NoteOff(60), "note_off 60 0"),
    (NoteOff(61, 33), "note_off 61 33"),
    (ControlChange(64, 127), "cc 64 127"),
    (ProgramChange(5), "program 5"),
    (PitchBend(-200), "pitchbend -200"),
])
def test_describe_gives_compact_text(event, text: str) -> None:
    assert describe(event) == text


# PedalState.
def test_pedals_start_up() -> None:
    pedals = PedalState()
    assert (pedals.sustain, pedals.sostenuto, pedals.soft) == (0, 0, 0)
    assert not (pedals.sustain_down or pedals.sostenuto_down or pedals.soft_down)


def test_pedal_state_follows_cc_64_66_67() -> None:
    pedals = PedalState()
    pedals.update(ControlChange(64, 127))
    pedals.update(ControlChange(66, 30))
    pedals.update(ControlChange(67, 90))
    assert (pedals.sustain, pedals.sostenuto, pedals.soft) == (127, 30, 90)
    assert (pedals.sustain_down, pedals.sostenuto_down, pedals.soft_down) == (True, False, True)
    pedals.update(ControlChange(64, 0))
    assert pedals.sustain == 0 and pedals.sustain_down is False


@pytest.mark.parametrize(("value", "down"), [(0, False), (63, False), (64, True), (127, True)])
def test_pedal_is_down_from_64(value: int, down: bool) -> None:
    pedals = PedalState(sustain=value, sostenuto=value, soft=value)
    assert pedals.sustain_down is down
    assert pedals.sostenuto_down is down
    assert pedals.soft_down is down


def test_pedal_state_ignores_other_events() -> None:
    pedals = PedalState(sustain=100)
    for event in (ControlChange(1, 127), ControlChange(65, 127), NoteOn(64, 127), ProgramChange(64),
                  PitchBend(64)):
        pedals.update(event)
    assert (pedals.sustain, pedals.sostenuto, pedals.soft) == (100, 0, 0)


# EventQueue.
def test_pop_due_returns_events_stamped_at_or_before_until_in_arrival_order() -> None:
    queue = EventQueue()
    queue.push(0.10, NoteOn(60, 90))
    queue.push(0.20, NoteOff(60))
    queue.push(0.30, ControlChange(64, 127))
    assert queue.pop_due(0.05) == []
    assert queue.pop_due(0.20) == [(0.10, NoteOn(60, 90)), (0.20, NoteOff(60))]
    assert len(queue) == 1
    assert queue.pop_due(10.0) == [(0.30, ControlChange(64, 127))]
    assert len(queue) == 0


def test_pop_due_treats_float_noise_at_the_boundary_as_due() -> None:
    queue = EventQueue()
    queue.push(0.1 + 0.2, NoteOn(60, 90))  # 0.30000000000000004
    assert queue.pop_due(0.3) == [(0.1 + 0.2, NoteOn(60, 90))]


def test_pop_due_keeps_arrival_order_and_stops_at_the_first_event_not_due() -> None:
    # Stamps need not be monotonic across sources; order of arrival is kept, never re-sorted.
    queue = EventQueue()
    queue.push(0.5, NoteOn(1, 1))
    queue.push(0.1, NoteOn(2, 2))
    assert queue.pop_due(0.2) == []
    assert queue.pop_due(0.5) == [(0.5, NoteOn(1, 1)), (0.1, NoteOn(2, 2))]


def test_clear_empties_the_queue() -> None:
    queue = EventQueue()
    queue.push(0.0, NoteOn(60, 1))
    queue.clear()
    assert len(queue) == 0
    assert queue.pop_due(1.0) == []


def test_queue_from_several_threads_drains_every_event_exactly_once() -> None:
    queue = EventQueue()
    producers, per_producer = 4, 5000
    drained: list = []
    done = threading.Event()

    def produce(channel: int) -> None:
        for note in range(per_producer):
            queue.push(0.0, NoteOn(note % 128, 1 + note % 127, channel, note))

    def consume() -> None:
        while not done.is_set():
            drained.extend(queue.pop_due(1.0))
        drained.extend(queue.pop_due(1.0))

    consumer = threading.Thread(target=consume)
    consumer.start()
    threads = [threading.Thread(target=produce, args=(c,)) for c in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    consumer.join()
    assert len(drained) == producers * per_producer
    assert len({(e.channel, e.time) for _, e in drained}) == producers * per_producer
    for channel in range(producers):  # each producer's events stay in its own order
        times = [e.time for _, e in drained if e.channel == channel]
        assert times == sorted(times)
    assert len(queue) == 0
