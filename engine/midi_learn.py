"""MIDI learn: a controller's knob or fader bound to a scene parameter, from the rehearsal HUD.

A binding says: controller ``control`` on MIDI channel ``channel`` (1-16) moves parameter
``parameter`` of cue ``cue``'s scene, its value 0..127 mapped linearly onto ``low`` .. ``high``
(bool parameters: 64 and above is True; int parameters round). A binding acts while its cue is the
current cue: its controller's changes then set the parameter (through :meth:`Scene.set_param`,
validated) at the tick they are delivered, and do not reach the scenes as events. The pedals
(64, 66, 67) and the setlist's advance-trigger controllers keep their meaning and cannot be bound.

The bindings live in the JSON file the setlist names (``[midi] learn_file``): a list of
``{"channel", "control", "cue", "parameter", "low", "high"}`` (``low`` and ``high`` default to the
parameter's bounds). It is read when the show starts (anything wrong with it is a one-line
:class:`UserError`; a missing file is no bindings yet) and rewritten atomically (a temporary file
renamed over it) whenever a binding is made or removed.

The learn flow (keys in the window, engine/keyboard.py): F2 enters learn mode; the next controller
moved is captured; Up / Down pick one of the current cue's parameters that can be bound; Enter
binds, Delete removes the captured controller's binding; F2 or Escape leaves. Capturing and
picking are the HUD's business only; a binding made or removed acts at a tick and goes into the
performance log, so a replay binds at the same tick.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import UserError
from engine.midi import SOFT, SOSTENUTO, SUSTAIN, ControlChange

if TYPE_CHECKING:
    from engine.setlist import LoadedSetlist

PEDALS = {SUSTAIN: "the sustain pedal", SOSTENUTO: "the sostenuto pedal", SOFT: "the soft pedal"}
PROMPT = "MIDI learn: move a knob or fader"
HELP = "Up/Down: parameter  Enter: bind  Delete: unbind  F2/Esc: leave"
# An exclusive bound (gt, lt) of a float parameter is moved inwards by this fraction of the range
# for the default ends of a binding (decay in (0, 60]: 0.06 .. 60).
EXCLUSIVE_NUDGE = 1e-3

_Value = Annotated[float, Field(allow_inf_nan=False)]


class BindingRecord(BaseModel):
    """One binding as the learn file (and the performance log) holds it, checked on reading."""

    model_config = ConfigDict(extra="forbid")
    channel: Annotated[int, Field(ge=1, le=16)]
    control: Annotated[int, Field(ge=0, le=127)]
    cue: Annotated[str, Field(min_length=1, max_length=200)]
    parameter: Annotated[str, Field(min_length=1, max_length=200)]
    low: _Value | None = None
    high: _Value | None = None


class BoundRecord(BindingRecord):
    """A binding with its ends, as a performance log's header holds the show's starting ones."""

    low: _Value
    high: _Value


class ChangeRecord(BoundRecord):
    """A binding made or removed at a tick (a performance log's tick line, ``learn``)."""

    op: Literal["bind", "unbind"]


@dataclass(frozen=True)
class Binding:
    channel: int  # 1..16, as people count
    control: int  # 0..127
    cue: str
    parameter: str
    low: float
    high: float

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.channel, self.control, self.cue)

    def record(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return f"CC {self.control} ch{self.channel} -> {self.parameter} ({_num(self.low)} .. {_num(self.high)})"


@dataclass(frozen=True)
class LearnChange:
    """``op`` is ``bind`` (make ``binding``, replacing the controller's binding in that cue) or
    ``unbind`` (remove it)."""

    op: str
    binding: Binding

    def record(self) -> dict[str, Any]:
        return {"op": self.op, **self.binding.record()}

    @classmethod
    def from_record(cls, record: ChangeRecord) -> LearnChange:
        return cls(record.op, Binding(record.channel, record.control, record.cue, record.parameter,
                                      record.low, record.high))


@dataclass(frozen=True)
class Range:
    """What a parameter can be bound as: its kind and its default ends."""

    kind: str  # "float", "int" or "bool"
    low: float
    high: float


def _num(value: float) -> str:
    return f"{value:.4g}"


def parameter_range(params: type[BaseModel], name: str) -> Range | str:
    """How parameter ``name`` of a scene's ``Params`` maps from a controller: its kind and default
    ends (its Field bounds: ge/le, gt/lt moved inwards), or why it cannot be bound."""
    field = params.model_fields.get(name)
    if field is None:
        return f"no parameter '{name}' (parameters: {', '.join(params.model_fields) or 'none'})"
    kind = field.annotation
    if kind is bool:
        return Range("bool", 0.0, 1.0)
    if kind not in (int, float):
        return f"{name} is not a number"
    low = high = None
    low_open = high_open = False
    for constraint in field.metadata:
        if isinstance(constraint, annotated_types.Ge):
            low, low_open = constraint.ge, False
        elif isinstance(constraint, annotated_types.Gt):
            low, low_open = constraint.gt, True
        elif isinstance(constraint, annotated_types.Le):
            high, high_open = constraint.le, False
        elif isinstance(constraint, annotated_types.Lt):
            high, high_open = constraint.lt, True
    if low is None or high is None:
        missing = "no bounds" if low is None and high is None else \
            ("no lower bound" if low is None else "no upper bound")
        return f"{name} has {missing} (a binding needs its range)"
    low, high = float(low), float(high)
    if kind is int:
        low, high = (math.floor(low) + 1 if low_open else math.ceil(low)), \
            (math.ceil(high) - 1 if high_open else math.floor(high))
    else:
        span = high - low
        low, high = low + span * EXCLUSIVE_NUDGE * low_open, high - span * EXCLUSIVE_NUDGE * high_open
    if not low < high:
        return f"{name} has an empty range"
    return Range("int" if kind is int else "float", float(low), float(high))


def bindable(params: type[BaseModel]) -> tuple[list[str], dict[str, str]]:
    """The parameters of a scene's ``Params`` that can be bound, in order, and why each other one
    cannot."""
    names, refused = [], {}
    for name in params.model_fields:
        found = parameter_range(params, name)
        if isinstance(found, Range):
            names.append(name)
        else:
            refused[name] = found
    return names, refused


def cc_value(kind: str, low: float, high: float, value: int) -> Any:
    """Controller value 0..127 mapped onto ``low`` .. ``high`` (bool: 64 and above is True; int:
    rounded half up)."""
    if kind == "bool":
        return value >= 64
    t = min(127, max(0, value)) / 127
    mapped = low * (1 - t) + high * t  # exactly low at 0 and high at 127
    return int(math.floor(mapped + 0.5)) if kind == "int" else mapped


def kept_controllers(setlist: LoadedSetlist) -> dict[int, str]:
    """Controllers that keep their meaning (pedals, the setlist's advance triggers) and why."""
    kept = dict(PEDALS)
    for cue in setlist.cues:
        if cue.cue.advance.cc is not None and cue.cue.advance.cc not in kept:
            kept[cue.cue.advance.cc] = f"cue '{cue.id}''s advance trigger"
    return kept


def check_binding(setlist: LoadedSetlist, binding: Binding) -> str | None:
    """What is wrong with ``binding`` for this setlist, or None."""
    kept = kept_controllers(setlist)
    if binding.control in kept:
        return f"CC {binding.control} is {kept[binding.control]}: it keeps its meaning and cannot be bound"
    cue = next((c for c in setlist.cues if c.id == binding.cue), None)
    if cue is None:
        return f"no cue '{binding.cue}' in the setlist"
    found = parameter_range(cue.scene_class.Params, binding.parameter)
    if isinstance(found, str):
        return f"cue '{binding.cue}' (scene {cue.cue.scene}): {found}"
    if found.kind == "bool":
        return None
    for end, value in (("low", binding.low), ("high", binding.high)):
        try:
            cue.scene_class.Params.model_validate({**cue.params.model_dump(), binding.parameter: value})
        except ValidationError as error:
            return f"{end} {_num(value)} is not a value of {binding.parameter}: {error.errors()[0]['msg']}"
    return None


def _binding(setlist: LoadedSetlist, record: BindingRecord) -> Binding | str:
    cue = next((c for c in setlist.cues if c.id == record.cue), None)
    found = parameter_range(cue.scene_class.Params, record.parameter) if cue is not None else None
    low, high = record.low, record.high
    if isinstance(found, Range):
        low = found.low if low is None else low
        high = found.high if high is None else high
    if low is None or high is None:
        reason = found if isinstance(found, str) else None
        if cue is None:
            reason = f"no cue '{record.cue}' in the setlist"
        return reason or "low and high are needed"
    binding = Binding(record.channel, record.control, record.cue, record.parameter, float(low), float(high))
    return check_binding(setlist, binding) or binding


def load_bindings(path: Path, setlist: LoadedSetlist) -> list[Binding]:
    """The bindings in ``path``, each checked against the setlist; a missing file is none yet.
    Anything wrong is a one-line :class:`UserError` naming the file and the binding."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read MIDI learn file {path}: {getattr(error, 'strerror', None) or error}") from None
    try:
        raw = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not JSON (line {error.lineno}: {error.msg}); expected a list of "
                        "MIDI learn bindings") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply; expected a list of MIDI learn bindings") from None
    if not isinstance(raw, list):
        raise UserError(f"{path}: expected a list of MIDI learn bindings ({{\"channel\", \"control\", "
                        f"\"cue\", \"parameter\", \"low\", \"high\"}}), got {type(raw).__name__}")
    bindings: dict[tuple, tuple[int, Binding]] = {}
    for number, item in enumerate(raw, start=1):
        try:
            record = BindingRecord.model_validate(item)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise UserError(f"{path}: binding #{number}: {where + ': ' if where else ''}{problem['msg']}") from None
        found = _binding(setlist, record)
        if isinstance(found, str):
            raise UserError(f"{path}: binding #{number}: {found}")
        if found.key in bindings:
            raise UserError(f"{path}: binding #{number}: CC {found.control} ch{found.channel} is already "
                            f"bound in cue '{found.cue}' by binding #{bindings[found.key][0]}")
        bindings[found.key] = (number, found)
    return [binding for _, binding in bindings.values()]


def save_bindings(path: Path, bindings: list[Binding]) -> None:
    """Write the bindings atomically: a temporary file beside ``path``, renamed over it."""
    path = Path(path)
    text = json.dumps([b.record() for b in bindings], indent=2) + "\n"
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def for_setlist(setlist: LoadedSetlist) -> MidiLearn:
    """The show's MIDI learn: the bindings of the setlist's learn file (a UserError when it is
    wrong), saved back to it; without ``learn_file``, none and nowhere to save."""
    name = setlist.settings.midi.learn_file
    if not name:
        return MidiLearn(setlist)
    path = setlist.resolve_path(name)
    return MidiLearn(setlist, load_bindings(path, setlist), path)


def from_records(setlist: LoadedSetlist, records: list[dict[str, Any]]) -> MidiLearn:
    """A replay's MIDI learn: the bindings a performance log's header says the show started with
    (never saved)."""
    bindings = [Binding(**{k: r[k] for k in ("channel", "control", "cue", "parameter", "low", "high")})
                for r in records]
    return MidiLearn(setlist, bindings)


class MidiLearn:
    """The show's bindings, and the learn mode of the HUD.

    ``path``: where the bindings are saved (None: they are not, as in a replay or a render)."""

    def __init__(self, setlist: LoadedSetlist, bindings: list[Binding] | None = None,
                 path: Path | None = None) -> None:
        self.setlist = setlist
        self.path = path
        self.bindings: dict[tuple[int, int, str], Binding] = {b.key: b for b in bindings or []}
        self.started_with = list(self.bindings.values())  # for the performance log's header
        self.kept = kept_controllers(setlist)
        self._ranges: dict[tuple[str, str], Range | str] = {}
        self.active = False
        self.captured: tuple[int, int] | None = None  # (channel 1..16, control)
        self.choice = 0  # index into the current cue's bindable parameters
        self.message = ""  # what the HUD says below the capture (a refusal, what was done)
        self._choice_cue: int | None = None

    # Bindings.
    def _range(self, cue_index: int, parameter: str) -> Range | str:
        cue = self.setlist.cues[cue_index]
        key = (cue.id, parameter)
        if key not in self._ranges:
            self._ranges[key] = parameter_range(cue.scene_class.Params, parameter)
        return self._ranges[key]

    def header(self) -> list[dict[str, Any]]:
        return [b.record() for b in self.started_with]

    def apply(self, change: LearnChange) -> str | None:
        """Make or remove a binding (at a tick); saved when the show has a learn file. Returns
        what went wrong saving, or None."""
        binding = change.binding
        if change.op == "bind":
            self.bindings[binding.key] = binding
        else:
            self.bindings.pop(binding.key, None)
        if self.path is None:
            return None
        try:
            save_bindings(self.path, list(self.bindings.values()))
        except OSError as error:
            return f"cannot save MIDI learn bindings to {self.path}: {error.strerror or error}"
        return None

    def take(self, event: ControlChange, cue_index: int) -> tuple[Binding, Any] | None:
        """The binding of the current cue that ``event`` moves, with the value it maps to; None
        when the controller is not bound in this cue."""
        cue = self.setlist.cues[cue_index].id
        binding = self.bindings.get((event.channel + 1, event.control, cue))
        if binding is None:
            return None
        found = self._range(cue_index, binding.parameter)
        kind = found.kind if isinstance(found, Range) else "float"
        return binding, cc_value(kind, binding.low, binding.high, event.value)

    # Learn mode (the HUD; nothing here changes the show until a change is applied at a tick).
    def toggle(self) -> None:
        """F2: enter or leave learn mode."""
        if self.active:
            self.leave()
            return
        self.active, self.captured = True, None
        self.message = "" if self.path is not None else \
            "no [midi] learn_file in the setlist: bindings last until the show ends"

    def leave(self) -> None:
        self.active, self.captured, self.message = False, None, ""

    def capture(self, event: ControlChange, cue_index: int) -> None:
        """A controller moved in learn mode: the first one after entering (or after a bind or an
        unbind) is captured; a pedal is refused, saying why."""
        if not self.active or self.captured is not None:
            return
        if event.control in self.kept:
            self.message = f"CC {event.control} is {self.kept[event.control]}: it keeps its meaning"
            return
        self.captured = (event.channel + 1, event.control)
        self.message = ""
        names = self._parameters(cue_index)[0]
        bound = self.bindings.get((*self.captured, self.setlist.cues[cue_index].id))
        self.choice = names.index(bound.parameter) if bound is not None and bound.parameter in names else 0
        self._choice_cue = cue_index

    def _parameters(self, cue_index: int) -> tuple[list[str], dict[str, str]]:
        return bindable(self.setlist.cues[cue_index].scene_class.Params)

    def choose(self, step: int, cue_index: int) -> None:
        """Up / Down: the previous / next parameter that can be bound."""
        names = self._parameters(cue_index)[0]
        if not self.active or self.captured is None or not names:
            return
        self._sync(cue_index)
        self.choice = (self.choice + step) % len(names)
        self.message = ""

    def _sync(self, cue_index: int) -> None:
        if self._choice_cue != cue_index:  # the cue changed since: its parameters are others
            self.choice, self._choice_cue = 0, cue_index

    def chosen(self, cue_index: int) -> str | None:
        names = self._parameters(cue_index)[0]
        if not names:
            return None
        self._sync(cue_index)
        return names[self.choice % len(names)]

    def request_bind(self, cue_index: int) -> LearnChange | None:
        """Enter: the binding of the captured controller to the chosen parameter (to apply at the
        next tick), or None with the reason on the HUD."""
        if not self.active:
            return None
        if self.captured is None:
            self.message = "move a knob or fader first"
            return None
        parameter = self.chosen(cue_index)
        cue = self.setlist.cues[cue_index]
        if parameter is None:
            self.message = self._none_bindable(cue_index)
            return None
        found = self._range(cue_index, parameter)
        if isinstance(found, str):  # cannot happen for a parameter listed as bindable
            self.message = found
            return None
        binding = Binding(*self.captured, cue.id, parameter, found.low, found.high)
        self.message = f"bound {binding.describe()} in cue {cue.id}"
        self.captured = None
        return LearnChange("bind", binding)

    def request_unbind(self, cue_index: int) -> LearnChange | None:
        """Delete: remove the captured controller's binding in the current cue."""
        if not self.active:
            return None
        if self.captured is None:
            self.message = "move the knob or fader to unbind first"
            return None
        cue = self.setlist.cues[cue_index].id
        binding = self.bindings.get((*self.captured, cue))
        channel, control = self.captured
        self.captured = None
        if binding is None:
            self.message = f"CC {control} ch{channel} is not bound in cue {cue}"
            return None
        self.message = f"unbound CC {control} ch{channel} from {binding.parameter} in cue {cue}"
        return LearnChange("unbind", binding)

    def _none_bindable(self, cue_index: int) -> str:
        cue = self.setlist.cues[cue_index]
        refused = self._parameters(cue_index)[1]
        why = "; ".join(refused.values()) or "it has no parameters"
        return f"scene {cue.cue.scene} has no parameter that can be bound ({why})"

    def hud_lines(self, cue_index: int) -> list[str]:
        """What the HUD shows in learn mode (nothing outside it)."""
        if not self.active:
            return []
        if self.captured is None:
            lines = [PROMPT]
        else:
            channel, control = self.captured
            parameter = self.chosen(cue_index)
            if parameter is None:
                lines = [f"CC {control} ch{channel}: {self._none_bindable(cue_index)}"]
            else:
                found = self._range(cue_index, parameter)
                cue = self.setlist.cues[cue_index].id
                bound = self.bindings.get((channel, control, cue))
                ends = f"{_num(found.low)} .. {_num(found.high)}" if isinstance(found, Range) else found
                if isinstance(found, Range) and found.kind == "bool":
                    ends = "off .. on"
                mark = "  [bound]" if bound is not None and bound.parameter == parameter else \
                    (f"  [now {bound.parameter}]" if bound is not None else "")
                lines = [f"CC {control} ch{channel} -> {parameter} ({ends}){mark}"]
        if self.message:
            lines.append(self.message)
        lines.append(HELP)
        return lines
