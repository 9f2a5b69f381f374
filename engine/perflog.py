"""The performance log: everything a live show took in, by tick, so it can be rendered again.

Every ``showrunner run`` writes one (JSON Lines, next to the show log unless ``--perf-log`` says
where). The first line describes the show: the setlist as run (its text and path), the start cue,
tick and frame rates, resolution, seed, camera and audio set-up, and the MIDI learn bindings it
started with. Then one line per tick in which something came in or the show took a cue: the MIDI
events delivered in that tick with their exact show-time stamps, the performer's moves (go,
previous, jump, restart, panic, gain), the MIDI learn bindings made or removed, the cue taken
(not an input: a replay checks that it takes the same) and the step count each background trainer's
scene saw where it changed (a replay trains each trainer up to it, tick by tick). The last line says at which tick the show
ended. Lines are flushed at least once a second, so a crash loses at most the last second; a log
without its end line replays up to its last input. Reading one checks every value (pydantic
models): a log is a file a performer can move, edit or cut short, and a wrong value must be a
one-line error, not a crash halfway through a render.

``showrunner replay LOG`` (:func:`load`, :class:`Replay`) feeds the same inputs into the same ticks
offline, so the learners follow the same trajectories and the metrics log comes out the same
(except timing and device health, which belong to the machine).
"""

from __future__ import annotations

import bisect
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import UserError
from engine.events import OscMessage
from engine.keyboard import TICK_ACTIONS, KeyAction
from engine.metrics import MetricsLog
from engine.midi import ControlChange, MidiEvent, NoteOff, NoteOn, PitchBend, ProgramChange
from engine.midi_learn import BoundRecord, ChangeRecord, LearnChange
from engine.setlist import CUE_ID, FrameRate, Resolution

FORMAT = "showrunner-performance"
VERSION = 5  # 2: tick lines carry the cue taken in that tick (version 1 logs replay without the check);
# 3: and the OSC messages taken in and what the scenes emitted (checked by a replay);
# 4: MIDI learn: the header's bindings the show started with, tick lines' bindings made or removed;
# 5: the step count each trainer's scene saw, in the ticks where it changed ("trained")
READABLE_VERSIONS = (1, 2, 3, 4, 5)
_EVENTS = {cls.__name__: cls for cls in (NoteOn, NoteOff, ControlChange, ProgramChange, PitchBend)}
# Metrics fields and events that measure the machine rather than the show: a replay cannot and
# need not reproduce them.
MACHINE_FIELDS = frozenset({"frame_ms", "gpu_ms", "capture_ms", "learn_ms", "xruns", "audio_load",
                            "audio_status", "rec_frames", "rec_dropped", "video_frames",
                            "osc_received", "osc_malformed", "osc_dropped", "osc_unknown", "osc_handler_errors",
                            "overload"})
MACHINE_EVENTS = frozenset({"recompile", "audio_restarted", "audio_device_lost", "audio_device_back",
                            "audio_no_device", "record_drop", "record_failed", "shader_error",
                            "shader_reloaded", "camera_lost", "camera_back", "midi_connected",
                            "midi_lost", "midi_reconnected", "overload"})


def event_record(event: MidiEvent) -> dict[str, Any]:
    return {"type": type(event).__name__, **dataclasses.asdict(event)}


# What a log line may hold, checked on reading: a log is a file a performer can move, edit or
# truncate, and a value of the wrong kind must be a one-line error, not a crash mid-render.
_Byte = Annotated[int, Field(ge=0, le=127)]
_Channel = Annotated[int, Field(ge=0, le=15)]
_Stamp = Annotated[float, Field(allow_inf_nan=False)]


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Midi(_Line):
    """What every MIDI event has besides its own fields."""

    channel: _Channel = 0
    time: _Stamp = 0.0


class _NoteOn(_Midi):
    type: Literal["NoteOn"]
    note: _Byte
    velocity: _Byte


class _NoteOff(_Midi):
    type: Literal["NoteOff"]
    note: _Byte
    velocity: _Byte = 0


class _ControlChange(_Midi):
    type: Literal["ControlChange"]
    control: _Byte
    value: _Byte


class _ProgramChange(_Midi):
    type: Literal["ProgramChange"]
    program: _Byte


class _PitchBend(_Midi):
    type: Literal["PitchBend"]
    value: Annotated[int, Field(ge=-8192, le=8191)]


_Event = Annotated[Union[_NoteOn, _NoteOff, _ControlChange, _ProgramChange, _PitchBend], Field(discriminator="type")]


_OscArgument = Union[bool, int, Annotated[float, Field(allow_inf_nan=False)], str]


class _Osc(_Line):
    address: Annotated[str, Field(min_length=1, max_length=1024)]
    args: list[_OscArgument] = Field(default_factory=list)
    time: _Stamp = 0.0


class _TickLine(_Line):
    # (Factories, not [] and {}: pydantic deep-copies a mutable default for every line read, which
    # was two thirds of reading a long show's log back, on the way to a restarted show's picture.)
    tick: Annotated[int, Field(ge=0)]
    midi: list[_Event] = Field(default_factory=list)
    actions: list[tuple[Literal[tuple(sorted(TICK_ACTIONS))], int]] = Field(default_factory=list)  # type: ignore[valid-type]
    cue: str | None = None
    osc: list[_Osc] = Field(default_factory=list)
    emitted: list[str] = Field(default_factory=list)
    learn: list[ChangeRecord] = Field(default_factory=list)  # MIDI learn: bindings made or removed in this tick
    trained: dict[Annotated[str, Field(min_length=1, max_length=1024)], Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


class _EndLine(_Line):
    end: Annotated[int, Field(ge=0)]


class _SetlistRef(BaseModel):
    path: str
    text: str


class _Camera(BaseModel):
    source: int | str | None = None
    fallback: str | None = None
    recorded: str | None = None


class _Audio(BaseModel):
    live: bool = False
    hears_midi: bool = False
    piano: bool = False


class Header(BaseModel):
    """The first line, as a replay reads it (unknown keys are kept: a newer showrunner may add some)."""

    model_config = ConfigDict(extra="allow")
    format: str
    version: int
    setlist: _SetlistRef
    tick_rate: Annotated[float, Field(gt=0, le=10000, allow_inf_nan=False)]
    start_cue: Annotated[str, Field(pattern=CUE_ID.pattern)] | None = None
    fps: FrameRate | None = None
    resolution: Resolution | None = None
    seed: int | None = None
    performer: str = ""
    camera: _Camera = _Camera()
    audio: _Audio = _Audio()
    started: str | None = None
    midi_learn: list[BoundRecord] = []  # the MIDI learn bindings the show started with


def _first_problem(error: ValidationError) -> str:
    """A pydantic error as one short line: where and what."""
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem["loc"])
    return f"{where}: {problem['msg']}" if where else problem["msg"]


def _cut_partial_line(path: Path) -> None:
    """A line the dying show left half-written goes (its tick was not finished either)."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as file:
            file.truncate(data.rfind(b"\n") + 1)


class PerformanceLog(MetricsLog):
    """Write a performance log. ``header``: the show's description (see the module text).
    Floats are written in full (repr), so the stamps come back bit for bit."""

    def __init__(self, path: Path, header: dict[str, Any] | None, flush_every: float = 1.0) -> None:
        """``header`` None: go on writing the log of a show that died (engine/supervisor.py: its
        restart appends the ticks that follow, so the log replays as one show)."""
        if header is None:
            _cut_partial_line(Path(path))
        super().__init__(path, flush_every, what="performance log", append=header is None)
        if header is not None:
            self.write({"format": FORMAT, "version": VERSION, **header})
        self._file.flush()

    def tick(self, tick: int, midi: list[MidiEvent], actions: list[KeyAction], cue: str | None = None,
             osc: list | None = None, emitted: list[str] | None = None,
             learn: list[LearnChange] | None = None, trained: dict[str, int] | None = None) -> None:
        """The inputs of tick ``tick`` (MIDI, the performer's moves, OSC, MIDI-learn bindings made
        or removed), and what the show did with them that a replay checks: ``cue``, the cue it
        took, and ``emitted``, what its scenes emitted (described); ``trained``: the step count of
        each trainer whose scene saw a new one this tick ("cue/name": steps), which a replay
        trains up to."""
        if not midi and not actions and cue is None and not osc and not emitted and not learn \
                and not trained:
            return
        record: dict[str, Any] = {"tick": tick}
        if midi:
            record["midi"] = [event_record(e) for e in midi]
        if actions:
            record["actions"] = [[a.kind, a.value] for a in actions]
        if cue is not None:
            record["cue"] = cue
        if osc:
            record["osc"] = [{"address": m.address, "args": list(m.args), "time": m.time} for m in osc]
        if emitted:
            record["emitted"] = emitted
        if learn:
            record["learn"] = [change.record() for change in learn]
        if trained:
            record["trained"] = dict(trained)
        self.write(record)
        self._file.flush()  # inputs are rare and each one matters: none waits in a buffer

    def end(self, ticks: int) -> None:
        if not self._file.closed:
            self.write({"end": ticks})
        self.close()


@dataclasses.dataclass
class Replay:
    """A performance log read back: the header, the inputs by tick, and the last tick to run."""

    snapshot_by_reference = True  # engine.snapshot: the restoring show's own, not saved

    path: Path
    header: dict[str, Any]  # as checked by :class:`Header`
    midi: dict[int, list[MidiEvent]]
    actions: dict[int, list[KeyAction]]
    end: int
    complete: bool  # the log has its end line (the show ended normally)
    cues: dict[int, str] | None = None  # the cue taken in each tick that took one (None: not logged)
    osc: dict[int, list] = dataclasses.field(default_factory=dict)  # OscMessage by tick
    emitted: dict[int, list[str]] | None = None  # what scenes emitted, by tick (None: not logged)
    learn: dict[int, list[LearnChange]] = dataclasses.field(default_factory=dict)  # MIDI learn, by tick
    # the step counts each trainer's scene saw, where they changed: {"cue/name": [(tick, steps)]}
    # (None: not logged, a log before version 5)
    trained: dict[str, list[tuple[int, int]]] | None = None

    @property
    def hears_midi(self) -> bool:
        """The live audio process read the MIDI port itself (its notes are ``heard``, not sent)."""
        return bool(self.header["audio"]["hears_midi"])

    def due(self, tick: int) -> list[MidiEvent]:
        return self.midi.get(tick, [])

    def moves(self, tick: int) -> list[KeyAction]:
        return self.actions.get(tick, [])

    def osc_messages(self, tick: int) -> list:
        return self.osc.get(tick, [])

    def learn_changes(self, tick: int) -> list[LearnChange]:
        return self.learn.get(tick, [])

    def trained_steps(self, key: str) -> Callable[[int], int] | None:
        """For trainer ``key`` ("cue/name"): the step count its scene saw at a tick in the live
        show (0 before the first logged one), or None when the log predates trainer counts."""
        if self.trained is None:
            return None
        trained = self.trained

        def steps(tick: int) -> int:  # reads the log as it is now (a follower's grows)
            changes = trained.get(key, [])
            at = bisect.bisect_right(changes, tick, key=lambda change: change[0])
            return changes[at - 1][1] if at else 0

        return steps


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
        except (json.JSONDecodeError, RecursionError):  # RecursionError: nested too deeply
            if number == len(lines) > 1:  # the show died mid-line: the rest is still good
                break
            raise UserError(f"{path}: line {number} is not JSON; is this a performance log?") from None
    first = records[0]
    if not isinstance(first, dict) or first.get("format") != FORMAT:
        raise UserError(f"{path}: not a showrunner performance log (first line has no "
                        f"\"format\": \"{FORMAT}\")")
    if first.get("version") not in READABLE_VERSIONS:
        raise UserError(f"{path}: performance log version {first.get('version')!r} is not supported "
                        f"(this showrunner reads versions {', '.join(map(str, READABLE_VERSIONS))})")
    try:
        header = Header.model_validate(first).model_dump()
    except ValidationError as error:
        raise UserError(f"{path}: line 1 (the header): {_first_problem(error)}") from None
    replay = _empty_replay(path, header)
    end = None
    for number, record in enumerate(records[1:], start=2):
        if end is not None:
            raise UserError(f"{path}: line {number}: a line after the end line")
        end = _take_record(replay, record, number)
    if replay.trained is not None:
        for changes in replay.trained.values():
            changes.sort()
    return replay


def _empty_replay(path: Path, header: dict[str, Any]) -> Replay:
    version = header["version"]
    return Replay(path, header, {}, {}, 0, False, {} if version >= 2 else None, {},
                  {} if version >= 3 else None, {}, {} if version >= 5 else None)


def _take_record(replay: Replay, record: Any, number: int) -> int | None:
    """Add one line (after the header) to ``replay``; returns the end tick when it is the end line."""
    path = replay.path
    try:
        if isinstance(record, dict) and "end" in record:
            end = _EndLine.model_validate(record).end
            if end < replay.end:
                raise UserError(f"{path}: line {number}: the show ends at tick {end}, before its "
                                f"last input (tick {replay.end})")
            replay.end, replay.complete = end, True
            return end
        line = _TickLine.model_validate(record)
    except ValidationError as error:
        raise UserError(f"{path}: line {number}: not a tick record ({_first_problem(error)})") from None
    if line.midi:
        replay.midi[line.tick] = [_EVENTS[e.type](**e.model_dump(exclude={"type"})) for e in line.midi]
    if line.actions:
        replay.actions[line.tick] = [KeyAction(kind, value) for kind, value in line.actions]
    if line.cue is not None and replay.cues is not None:
        replay.cues[line.tick] = line.cue
    if line.osc:
        replay.osc[line.tick] = [OscMessage(m.address, tuple(m.args), m.time) for m in line.osc]
    if line.emitted and replay.emitted is not None:
        replay.emitted[line.tick] = list(line.emitted)
    if line.learn:
        replay.learn[line.tick] = [LearnChange.from_record(change) for change in line.learn]
    if replay.trained is not None:
        for key, steps in line.trained.items():
            replay.trained.setdefault(key, []).append((line.tick, steps))
    replay.end = max(replay.end, line.tick)
    return None


class Follower:
    """A performance log being written by a live show, read as it grows (a standby show,
    engine.supervisor: it ticks along behind the show, so that taking over costs a moment)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.replay: Replay | None = None
        self._file = None
        self._partial = b""
        self._lines = 0

    def read(self) -> Replay | None:
        """Take in what was written since the last call; the replay (None until the header is in)."""
        if self._file is None:
            try:
                self._file = open(self.path, "rb")
            except OSError:
                return None
        data = self._partial + self._file.read()
        *complete, self._partial = data.split(b"\n")
        for raw in complete:
            self._lines += 1
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, RecursionError):  # RecursionError: nested too deeply
                raise UserError(f"{self.path}: line {self._lines} is not JSON") from None
            if self.replay is None:
                if not isinstance(record, dict) or record.get("format") != FORMAT \
                        or record.get("version") not in READABLE_VERSIONS:
                    raise UserError(f"{self.path}: not a showrunner performance log this showrunner reads")
                try:
                    header = Header.model_validate(record).model_dump()
                except ValidationError as error:
                    raise UserError(f"{self.path}: line 1 (the header): {_first_problem(error)}") from None
                self.replay = _empty_replay(self.path, header)
            else:
                _take_record(self.replay, record, self._lines)
        return self.replay

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A metrics line without what measures the machine (timing, device health and their
    events): what a replay must reproduce exactly."""
    kept = {k: v for k, v in record.items() if k not in MACHINE_FIELDS}
    kept["events"] = [e for e in record.get("events", []) if e not in MACHINE_EVENTS]
    return kept
