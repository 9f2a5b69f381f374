"""MIDI-file performer: plays a Standard MIDI File into the show as if a pianist played it.

The file is read with mido and flattened to (seconds, event) pairs through its own tempo map (types 0
and 1; in type 1 the tempo events of any track govern every track). The performer pushes each event
into the same :class:`~engine.midi.EventQueue` a live port uses, stamped with the exact time it is
due, so live and file input share one code path. Under virtual time it follows the virtual clock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import mido

from engine.errors import UserError
from engine.midi import EventQueue, MidiEvent, NoteOn, ProgramChange, normalize

MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Performance:
    """A MIDI file flattened to events at their times in seconds from the start of the file."""

    # engine.snapshot: the restoring show's own (read from the same file), not saved: its tens of
    # thousands of events made a snapshot of the first piece take 0.5 s
    snapshot_by_reference = True

    path: Path
    events: tuple[tuple[float, MidiEvent], ...]
    length: float  # seconds, to the last event of the file (meta events included)
    instrument_selections: int = 0  # program changes before the first note, left out

    @property
    def note_count(self) -> int:
        return sum(1 for _, e in self.events if isinstance(e, NoteOn))


def load_performance(path: str | os.PathLike) -> Performance:
    """Read and flatten a Standard MIDI File; any problem raises :class:`UserError` (one line)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a MIDI file (.mid)")
    if not path.is_file():
        raise UserError(f"MIDI file not found: {path}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UserError(f"{path}: {size} bytes is too large for a MIDI file (limit {MAX_FILE_BYTES})")
    try:
        midi = mido.MidiFile(path)
    except EOFError:
        raise UserError(f"{path}: corrupt MIDI file: data ends in the middle of a track "
                        "(truncated, or a message with missing data bytes)") from None
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: not a valid Standard MIDI File: {reason}") from None
    if midi.type == 0 and len(midi.tracks) != 1:
        raise UserError(f"{path}: invalid MIDI file: type 0 must have exactly one track, "
                        f"this one has {len(midi.tracks)}")
    if midi.type == 2:
        raise UserError(f"{path}: MIDI file type 2 (independent sequences) is not supported; "
                        "use type 0 or 1")
    if midi.type not in (0, 1):
        raise UserError(f"{path}: invalid MIDI file: type {midi.type} (a Standard MIDI File is type 0, 1 or 2)")
    if not 0 < midi.ticks_per_beat < 0x8000:  # the header's top bit set: SMPTE frames, read as negative
        raise UserError(f"{path}: MIDI file timed in {'SMPTE frames' if midi.ticks_per_beat < 0 else 'zero ticks a beat'}"
                        " is not supported; save it with ticks per quarter note")
    events: list[tuple[float, MidiEvent]] = []
    now = 0.0
    try:
        for now, msg in _timed(midi):
            if msg.is_meta:
                continue
            event = normalize(msg)
            if event is not None:
                events.append((now, event))
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path}: cannot play MIDI file: {error}") from None
    # Program changes before the first note select the file's instruments (most files have them):
    # they are not a performer asking for a cue, so they are left out.
    first_note = next((at for at, event in events if isinstance(event, NoteOn)), now)
    played = tuple((at, event) for at, event in events
                   if not (isinstance(event, ProgramChange) and at <= first_note))
    return Performance(path=path, events=played, length=now,
                       instrument_selections=len(events) - len(played))


def _timed(midi: mido.MidiFile):
    """(seconds, message) for every message of ``midi`` in playing order, through the merged
    tempo map: the times iterating ``midi`` gives, to the last bit (the same sums of the same
    products), without mido copying every message three times on the way (half the time: a
    restarted show reads its whole performance before its picture is back). As mido merges:
    the tracks' messages sorted by their tick (stably, so tracks keep their order at one tick);
    the end-of-track markers left out but for one at the end, the ticks up to each message
    counted from the last other message and turned into seconds at the tempo then."""
    timed = []
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            timed.append((tick, msg))
    timed.sort(key=lambda pair: pair[0])
    tempo, now, last = mido.midifiles.midifiles.DEFAULT_TEMPO, 0.0, 0
    for tick, msg in timed:
        if msg.type == "end_of_track":
            continue
        if tick > last:
            now += (tick - last) * (tempo * 1e-6 / midi.ticks_per_beat)
        last = tick
        yield now, msg
        if msg.type == "set_tempo":
            tempo = msg.tempo
    end = timed[-1][0] if timed else 0
    if end > last:
        now += (end - last) * (tempo * 1e-6 / midi.ticks_per_beat)
    yield now, mido.MetaMessage("end_of_track")


class MidiFilePerformer:
    """Feeds a :class:`Performance` into an event queue as the show's time passes.

    Args:
        performance: the flattened file.
        queue: where events go (the same queue as live ports).
        speed: playback speed factor (1.0 = as recorded).
    """

    def __init__(self, performance: Performance, queue: EventQueue, speed: float = 1.0) -> None:
        self.performance = performance
        self.queue = queue
        self.speed = float(speed)
        self._origin: float | None = None
        self._next = 0

    def start(self, origin: float) -> None:
        """Begin playback so that file time 0 falls at time-source second ``origin``."""
        self._origin = origin
        self._next = 0

    def skip_to(self, show_time: float) -> None:
        """Go on from file second ``show_time`` x speed: the events up to it are taken as played
        (a show restarted after a crash has them from its performance log)."""
        events = self.performance.events
        self._next = 0
        while self._next < len(events) and events[self._next][0] / self.speed <= show_time + 1e-9:
            self._next += 1

    @property
    def finished(self) -> bool:
        return self._next >= len(self.performance.events)

    @property
    def end_time(self) -> float | None:
        """Time-source seconds at which the file ends, once started."""
        if self._origin is None:
            return None
        return self._origin + self.performance.length / self.speed

    def take_notices(self) -> list[str]:
        """A file has no port to lose: nothing to tell."""
        return []

    def poll(self, now: float) -> None:
        """Push every event due at or before ``now`` (time-source seconds), stamped exactly."""
        if self._origin is None:
            return
        events = self.performance.events
        while self._next < len(events):
            at, event = events[self._next]
            stamp = self._origin + at / self.speed
            if stamp > now + 1e-9:  # the same tolerance as the clock and the queue
                break
            self.queue.push(stamp, event)
            self._next += 1
