"""What counts as a left-hand chord (part 2's trigger)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ChordDetector:
    """Finds chords below ``split``: ``notes`` onsets within ``window`` seconds (the paper's "chord").

    With ``any_bass`` (the original's rule) a single note below the split triggers, provided
    ``min_interval`` seconds have passed since the last trigger. A chord counts as held while any of
    its notes is down.
    """

    split: int = 60
    notes: int = 3
    window: float = 0.08
    any_bass: bool = False
    min_interval: float = 2.0
    _recent: list[tuple[float, int]] = field(default_factory=list)  # (time, note) of bass onsets
    _chord: set[int] = field(default_factory=set)  # the notes of the last chord still down
    _last_trigger: float | None = None

    def reset(self) -> None:
        self._recent.clear()
        self._chord.clear()
        self._last_trigger = None

    def note_on(self, note: int, time: float) -> bool:
        """A note-on at ``time`` seconds; True when it completes a chord (a new target is due)."""
        if note >= self.split:
            return False
        if self.any_bass:
            if self._last_trigger is not None and time - self._last_trigger < self.min_interval:
                self._chord.add(note)
                return False
            self._last_trigger = time
            self._chord = {note}
            return True
        if self._last_trigger is not None and time - self._last_trigger <= self.window:
            self._chord.add(note)  # one more note of the chord just completed
            return False
        self._recent = [(t, n) for t, n in self._recent if time - t <= self.window and n != note]
        self._recent.append((time, note))
        if len(self._recent) < self.notes:
            return False
        self._chord = {n for _, n in self._recent}  # complete: once per chord
        self._recent.clear()
        self._last_trigger = time
        return True

    def note_off(self, note: int) -> None:
        self._chord.discard(note)
        self._recent = [(t, n) for t, n in self._recent if n != note]

    @property
    def held(self) -> bool:
        return bool(self._chord)
