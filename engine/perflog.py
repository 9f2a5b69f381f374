"""The performance log: everything a live show took in, by tick, so it can be rendered again.

Every ``showrunner run`` writes one (JSON Lines, next to the show log unless ``--perf-log`` says
where). The first line describes the show: the setlist as run (its text and path), the start cue,
tick and frame rates, resolution, seed, camera and audio set-up. Then one line per tick in which
something came in: the MIDI events delivered in that tick with their exact show-time stamps and
the performer's moves (go, previous, jump, restart, panic, gain). The last line says at which tick
the show ended. Lines are flushed at least once a second, so a crash loses at most the last second;
a log without its end line replays up to its last input.

``showrunner replay LOG`` (:func:`load`, :class:`Replay`) feeds the same inputs into the same ticks
offline, so the learners follow the same trajectories and the metrics log comes out the same
(except timing and device health, which belong to the machine).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.keyboard import KeyAction
from engine.metrics import MetricsLog
from engine.midi import ControlChange, MidiEvent, NoteOff, NoteOn, PitchBend, ProgramChange

FORMAT = "showrunner-performance"
VERSION = 1
_EVENTS = {cls.__name__: cls for cls in (NoteOn, NoteOff, ControlChange, ProgramChange, PitchBend)}
# Metrics fields and events that measure the machine rather than the show: a replay cannot and
# need not reproduce them.
MACHINE_FIELDS = frozenset({"frame_ms", "gpu_ms", "capture_ms", "learn_ms", "xruns", "audio_load",
                            "audio_status", "rec_frames", "rec_dropped", "video_frames"})
MACHINE_EVENTS = frozenset({"recompile", "audio_restarted", "audio_device_lost", "audio_device_back",
                            "audio_no_device", "record_drop", "record_failed", "shader_error",
                            "shader_reloaded", "camera_lost", "camera_back", "midi_connected",
                            "midi_lost", "midi_reconnected"})


def event_record(event: MidiEvent) -> dict[str, Any]:
    return {"type": type(event).__name__, **dataclasses.asdict(event)}


def event_from_record(record: dict[str, Any]) -> MidiEvent:
    fields = dict(record)
    return _EVENTS[fields.pop("type")](**fields)


class PerformanceLog(MetricsLog):
    """Write a performance log. ``header``: the show's description (see the module text).
    Floats are written in full (repr), so the stamps come back bit for bit."""

    def __init__(self, path: Path, header: dict[str, Any], flush_every: float = 1.0) -> None:
        super().__init__(path, flush_every, what="performance log")
        self.write({"format": FORMAT, "version": VERSION, **header})
        self._file.flush()

    def tick(self, tick: int, midi: list[MidiEvent], actions: list[KeyAction]) -> None:
        if not midi and not actions:
            return
        record: dict[str, Any] = {"tick": tick}
        if midi:
            record["midi"] = [event_record(e) for e in midi]
        if actions:
            record["actions"] = [[a.kind, a.value] for a in actions]
        self.write(record)
        self._file.flush()  # inputs are rare and each one matters: none waits in a buffer

    def end(self, ticks: int) -> None:
        if not self._file.closed:
            self.write({"end": ticks})
        self.close()


@dataclasses.dataclass
class Replay:
    """A performance log read back: the header, the inputs by tick, and the last tick to run."""

    path: Path
    header: dict[str, Any]
    midi: dict[int, list[MidiEvent]]
    actions: dict[int, list[KeyAction]]
    end: int
    complete: bool  # the log has its end line (the show ended normally)

    @property
    def hears_midi(self) -> bool:
        """The live audio process read the MIDI port itself (its notes are ``heard``, not sent)."""
        return bool((self.header.get("audio") or {}).get("hears_midi"))

    def due(self, tick: int) -> list[MidiEvent]:
        return self.midi.get(tick, [])

    def moves(self, tick: int) -> list[KeyAction]:
        return self.actions.get(tick, [])


def load(path: Path) -> Replay:
    """Read a performance log; anything wrong with it is a one-line :class:`UserError`."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"performance log not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read performance log {path}: {getattr(error, 'strerror', None) or error}") from None
    if not lines:
        raise UserError(f"{path}: empty file, not a performance log")
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines) > 1:  # the show died mid-line: the rest is still good
                break
            raise UserError(f"{path}: line {number} is not JSON; is this a performance log?") from None
    header = records[0]
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise UserError(f"{path}: not a showrunner performance log (first line has no "
                        f"\"format\": \"{FORMAT}\")")
    if header.get("version") != VERSION:
        raise UserError(f"{path}: performance log version {header.get('version')} is not supported "
                        f"(this showrunner reads version {VERSION})")
    midi: dict[int, list[MidiEvent]] = {}
    actions: dict[int, list[KeyAction]] = {}
    end, last = None, 0
    for number, record in enumerate(records[1:], start=2):
        try:
            if "end" in record:
                end = int(record["end"])
                continue
            tick = int(record["tick"])
            if record.get("midi"):
                midi[tick] = [event_from_record(e) for e in record["midi"]]
            if record.get("actions"):
                actions[tick] = [KeyAction(str(kind), int(value)) for kind, value in record["actions"]]
            last = max(last, tick)
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"{path}: line {number}: not a tick record ({type(error).__name__}: {error})") from None
    return Replay(path, header, midi, actions, end if end is not None else last, end is not None)


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A metrics line without what measures the machine (timing, device health and their
    events): what a replay must reproduce exactly."""
    kept = {k: v for k, v in record.items() if k not in MACHINE_FIELDS}
    kept["events"] = [e for e in record.get("events", []) if e not in MACHINE_EVENTS]
    return kept
