"""Typed MIDI events, normalised once at the edge, and the time-stamped event queue.

Everything past this module sees clean events: a note-on with velocity 0 is a ``NoteOff`` (here and
nowhere else); clock, active sensing and SysEx are dropped. Sources (live ports, MIDI-file
performers, the computer keyboard) stamp each event with the time source's clock on arrival and push
it into an :class:`EventQueue`; the show drains the events that are due at each tick, in order.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import mido

SUSTAIN = 64
SOSTENUTO = 66
SOFT = 67


@dataclass(frozen=True, slots=True)
class NoteOn:
    note: int
    velocity: int  # 1..127
    channel: int = 0
    time: float = 0.0  # show seconds when delivered (stamp on arrival)


@dataclass(frozen=True, slots=True)
class NoteOff:
    note: int
    velocity: int = 0
    channel: int = 0
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class ControlChange:
    control: int
    value: int
    channel: int = 0
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class ProgramChange:
    program: int  # 0..127 as sent on the wire (shown to people as 1..128)
    channel: int = 0
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class PitchBend:
    value: int  # -8192..8191
    channel: int = 0
    time: float = 0.0


MidiEvent = NoteOn | NoteOff | ControlChange | ProgramChange | PitchBend


def normalize(msg: mido.Message, time: float = 0.0) -> MidiEvent | None:
    """Turn a mido message into a typed event, or None for messages scenes never see."""
    kind = msg.type
    if kind == "note_on":
        if msg.velocity == 0:
            return NoteOff(msg.note, 0, msg.channel, time)
        return NoteOn(msg.note, msg.velocity, msg.channel, time)
    if kind == "note_off":
        return NoteOff(msg.note, msg.velocity, msg.channel, time)
    if kind == "control_change":
        return ControlChange(msg.control, msg.value, msg.channel, time)
    if kind == "program_change":
        return ProgramChange(msg.program, msg.channel, time)
    if kind == "pitchwheel":
        return PitchBend(msg.pitch, msg.channel, time)
    return None


def describe(event: MidiEvent) -> str:
    """Compact text for logs and the metrics log, e.g. ``note_on 60 100``."""
    match event:
        case NoteOn():
            return f"note_on {event.note} {event.velocity}"
        case NoteOff():
            return f"note_off {event.note} {event.velocity}"
        case ControlChange():
            return f"cc {event.control} {event.value}"
        case ProgramChange():
            return f"program {event.program}"
        case PitchBend():
            return f"pitchbend {event.value}"
    return repr(event)


@dataclass
class PedalState:
    """Pedal positions (0..127) as of the current tick: sustain CC 64, sostenuto CC 66, soft CC 67."""

    sustain: int = 0
    sostenuto: int = 0
    soft: int = 0

    @property
    def sustain_down(self) -> bool:
        return self.sustain >= 64

    @property
    def sostenuto_down(self) -> bool:
        return self.sostenuto >= 64

    @property
    def soft_down(self) -> bool:
        return self.soft >= 64

    def update(self, event: MidiEvent) -> None:
        if isinstance(event, ControlChange):
            if event.control == SUSTAIN:
                self.sustain = event.value
            elif event.control == SOSTENUTO:
                self.sostenuto = event.value
            elif event.control == SOFT:
                self.soft = event.value


@dataclass
class EventQueue:
    """Thread-safe FIFO of (stamp, event); stamps are time-source seconds at arrival.

    Producers (MIDI callback threads) call :meth:`push`; the loop calls :meth:`pop_due` once per tick.
    Stamps are not required to be monotonic across sources; order of arrival is kept.
    """

    _items: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, stamp: float, event: MidiEvent) -> None:
        with self._lock:
            self._items.append((stamp, event))

    def pop_due(self, until: float) -> list[tuple[float, MidiEvent]]:
        """Remove and return, in arrival order, the events stamped at or before ``until``."""
        due = []
        with self._lock:
            while self._items and self._items[0][0] <= until + 1e-9:
                due.append(self._items.popleft())
        return due

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def replace_until(self, until: float, events: list[tuple[float, MidiEvent]]) -> int:
        """Drop the events stamped at or before ``until`` and put ``events`` first in their place
        (a show back after its process died: what the audio process heard in the gap stands for
        what this show's own reader caught of it). Returns how many were dropped."""
        with self._lock:
            kept = [item for item in self._items if item[0] > until + 1e-9]
            dropped = len(self._items) - len(kept)
            self._items = deque([*events, *kept])
        return dropped

    def __len__(self) -> int:
        return len(self._items)
