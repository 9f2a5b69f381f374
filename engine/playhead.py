"""The playhead: which cue is live, and the moves a performer makes (GO, next, previous, jump).

Moves are requests: the show applies them at the next tick boundary. Advance triggers (after N
seconds, a controller such as the soft pedal, a note, a program change) are checked here, once per
tick and per event. A controller trigger fires when the value rises from 0 to above 0 (the pedal goes
down), so a held pedal, even one still sending values as it moves, advances exactly once, also
across the cue change it caused.
"""

from __future__ import annotations

from engine.midi import ControlChange, MidiEvent, NoteOn, ProgramChange
from engine.setlist import Advance, LoadedCue


class Playhead:
    def __init__(self, cues: tuple[LoadedCue, ...], start: int = 0) -> None:
        if not cues:
            raise ValueError("a playhead needs at least one cue")
        self.cues = cues
        self.index = start
        self.cue_started_at = 0.0  # show seconds
        self._requested: int | None = start
        self._restart = False
        self._controller_values: dict[int, int] = {}  # last value per controller, kept across cues

    @property
    def current(self) -> LoadedCue:
        return self.cues[self.index]

    @property
    def is_last(self) -> bool:
        return self.index == len(self.cues) - 1

    # Performer moves.
    def go(self) -> bool:
        """Advance to the next cue; False (and no move) at the last cue."""
        return self.jump_to_index(self._target() + 1)

    next = go

    def previous(self) -> bool:
        return self.jump_to_index(self._target() - 1)

    def jump(self, cue_id: str) -> bool:
        for index, cue in enumerate(self.cues):
            if cue.id == cue_id:
                return self.jump_to_index(index)
        return False

    def jump_to_index(self, index: int) -> bool:
        if not 0 <= index < len(self.cues):
            return False
        self._requested = index
        return True

    def restart(self) -> None:
        self._requested = self._target()
        self._restart = True

    def _target(self) -> int:
        return self._requested if self._requested is not None else self.index

    def take_request(self) -> int | None:
        """The cue index to (re)start now, if any; the show calls this at each tick boundary."""
        requested, self._requested, self._restart = self._requested, None, False
        return requested

    def started(self, index: int, show_time: float) -> None:
        self.index = index
        self.cue_started_at = show_time

    # Advance triggers.
    def check_time(self, show_time: float) -> bool:
        after = self.current.cue.advance.after
        if after is not None and self._requested is None and show_time - self.cue_started_at >= after - 1e-9:
            return self.go()
        return False

    def check_event(self, event: MidiEvent) -> bool:
        """True when ``event`` fired the current cue's advance trigger (the event is then consumed)."""
        advance: Advance = self.current.cue.advance
        if self._requested is not None and not isinstance(event, ControlChange):
            return False
        if isinstance(event, ControlChange):
            was_up = self._controller_values.get(event.control, 0) == 0
            self._controller_values[event.control] = event.value
            if event.control == advance.cc and was_up and event.value > 0 and self._requested is None:
                self.go()
                return True
            return False
        if isinstance(event, NoteOn) and event.note == advance.note:
            self.go()
            return True
        if isinstance(event, ProgramChange) and advance.program is not None and event.program == advance.program:
            self.go()
            return True
        return False
