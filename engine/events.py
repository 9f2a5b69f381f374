"""Events besides MIDI, typed like the MIDI ones (:mod:`engine.midi`): what OSC brings in, text for
the pieces that take it, and what scenes emit.

A show's event stream is MIDI (:mod:`engine.midi`), OSC (:class:`OscMessage`), text
(:class:`TextInput`), the performer's moves (:class:`engine.keyboard.KeyAction`) and what scenes
emit (:class:`Emitted`, or a MIDI event): every kind goes into the performance log and comes back
in a replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from engine.midi import ControlChange, MidiEvent, NoteOff, NoteOn, PitchBend, ProgramChange, describe

OscArgument = Union[int, float, str, bool]


@dataclass(frozen=True, slots=True)
class OscMessage:
    """An OSC message received: ``address`` ("/showrunner/go"), ``args`` (ints, floats, strings,
    booleans), ``time`` in show seconds when delivered."""

    address: str
    args: tuple[OscArgument, ...] = ()
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class TextInput:
    """Text for a piece that takes it (typed on stage, or sent by OSC)."""

    text: str
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class Emitted:
    """Something a scene tells the world that is not MIDI: ``name`` and its values (sent as OSC
    ``/showrunner/emit/<name>``)."""

    name: str
    values: tuple[OscArgument, ...] = ()


Event = Union[MidiEvent, OscMessage, TextInput]
MIDI_TYPES = (NoteOn, NoteOff, ControlChange, ProgramChange, PitchBend)


def describe_any(event) -> str:
    """One short line for a log or the metrics: "note_on 60 100" (" ch2" after it on channels
    other than the first), "osc /showrunner/go", ..."""
    if isinstance(event, MIDI_TYPES):
        return describe(event) + (f" ch{event.channel + 1}" if event.channel else "")
    if isinstance(event, OscMessage):
        return " ".join(["osc", event.address, *map(str, event.args)])
    if isinstance(event, TextInput):
        return f"text {event.text!r}"
    if isinstance(event, Emitted):
        return " ".join(["emit", event.name, *map(str, event.values)])
    return repr(event)
