"""Note sources: music a process writes, played into the show as a piano would be.

A cue may name a source (``source = { kind = "dice", tempo = 66 }`` in the setlist): when the cue
starts, the source writes its notes (events stamped in seconds from then) and the show feeds them,
as they fall due, into the same input as a piano's: the scenes, the learners, the sound's routing,
MIDI out, the performance log. A replay plays them back from the log like any performed note and
does not play them again (it writes the same, for what the scenes show, and takes the notes from the
log). When the cue ends, notes not yet played are dropped and the source's
sounding notes released.

The performer can have it write again from now (``rethrow``): the soft pedal (controller 67)
pressed, or OSC ``/showrunner/throw``; each writing gets a seed of its own (the show seed, the cue,
the count), said in the metrics (``source:dice seed N``) and the log.

A piece brings a kind by subclassing :class:`NoteSource` with a ``kind`` and a pydantic ``Params``.
"""

from __future__ import annotations

import zlib
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.errors import UserError
from engine.midi import MidiEvent, NoteOff, NoteOn

_KINDS: dict[str, type[NoteSource]] = {}


class SourceParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoteSource:
    """Writes notes for a cue. Override :meth:`write`."""

    kind: ClassVar[str | None] = None
    Params: ClassVar[type[SourceParams]] = SourceParams

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            _KINDS[cls.kind] = cls

    def __init__(self, params: SourceParams) -> None:
        self.params = params
        self.seed = 0
        self.throws = 0

    def write(self, seed: int) -> list[tuple[float, MidiEvent]]:
        """The notes of one writing, (seconds from its start, event), in time order; the same seed,
        the same notes."""
        raise NotImplementedError

    def throws_on(self, event: MidiEvent) -> bool:
        """True when a played ``event`` asks this source to write anew (a key of its own choosing,
        which it never writes itself). Default: none."""
        return False

    def take_text(self, text: str) -> bool:
        """Text typed on stage or sent by OSC (``/showrunner/text``): True when the source writes
        from text (it then writes anew, from it). Default: not a text source."""
        return False


def source_kinds() -> list[str]:
    return sorted(_KINDS)


def make_source(spec: dict[str, Any], where: str) -> NoteSource:
    """A source from a cue's ``source`` table; a one-line UserError for an unknown kind or a bad
    parameter (``where`` names the cue)."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    cls = _KINDS.get(kind) if isinstance(kind, str) else None  # a list, a table: no kind
    if cls is None:
        known = ", ".join(source_kinds()) or "none (is the piece that brings it in `pieces`?)"
        raise UserError(f"{where}: unknown note source kind {kind!r} (kinds: {known})")
    try:
        return cls(cls.Params(**spec))
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "source"
        raise UserError(f"{where}: source.{field}: {first['msg']}") from None


class SourcePlayer:
    """The current cue's source as the show plays it: its pending notes, in show time."""

    def __init__(self, source: NoteSource, cue: str, show_seed: int) -> None:
        self.source = source
        self.cue = cue
        self.show_seed = show_seed
        self.pending: list[tuple[float, MidiEvent]] = []
        self.sounding: set[tuple[int, int]] = set()

    def throw(self, show_time: float, releasing: list[tuple[float, MidiEvent]] = ()) -> str:
        """Write anew from ``show_time``: what was pending is dropped, ``releasing`` (the note-offs
        of :meth:`release`) comes first; returns the metrics' word."""
        seed = zlib.crc32(f"{self.show_seed}/{self.cue}/{self.source.kind}/{self.source.throws}".encode())
        self.source.seed = seed
        self.source.throws += 1
        written = self.source.write(seed)
        self.pending = list(releasing) + [(show_time + at, event) for at, event in written]
        return f"source:{self.source.kind} seed {seed}"

    def due(self, show_time: float) -> list[tuple[float, MidiEvent]]:
        """The notes due by ``show_time`` (taken out), the sounding ones remembered."""
        count = 0
        while count < len(self.pending) and self.pending[count][0] <= show_time + 1e-9:
            count += 1
        due, self.pending = self.pending[:count], self.pending[count:]
        for _, event in due:
            if isinstance(event, NoteOn) and event.velocity > 0:
                self.sounding.add((event.channel, event.note))
            elif isinstance(event, (NoteOn, NoteOff)):
                self.sounding.discard((event.channel, event.note))
        return due

    def release(self, show_time: float) -> list[tuple[float, MidiEvent]]:
        """Stop: nothing more pending; note-offs for the notes sounding."""
        self.pending = []
        offs = [(show_time, NoteOff(note, 0, channel=channel)) for channel, note in sorted(self.sounding)]
        self.sounding.clear()
        return offs
