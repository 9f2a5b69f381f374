"""Setlists: a concert as TOML, validated before any device opens.

Show-level settings (title, seed, tick rate, resolution, MIDI input, camera, audio) persist across
cues; each cue names a scene, its params (validated by the scene's own model), an advance trigger
and a transition. Every problem becomes one :class:`UserError` line that names the file, the cue
and the field and says what was expected.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.audio.config import LEGACY_INSTRUMENT, MixerConfig
from engine.audio.sound_settings import CueSound, SoundSettings, check_sound
from engine.errors import UserError
from engine.scene import Scene, SceneParams, known_scenes, scene_class


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MidiSettings(_Strict):
    input: str | None = Field(None, description="case-insensitive substring of the input port name")
    api: Literal["auto", "alsa", "jack"] = "auto"
    program_change_jumps: bool = Field(
        False, description="a program change p jumps to cue p + 1 (off: program changes are "
                           "events for the scenes, as instrument selections in most MIDI files)")
    program_change_channel: int | None = Field(
        None, ge=1, le=16, description="only program changes on this channel (1-16) jump; unset = any")
    output: str | None = Field(None, description="case-insensitive substring of a MIDI output port "
                                                 "name: what scenes emit goes there")
    max_events_per_tick: int = Field(
        32, ge=4, le=10000, description="input events the show takes in one tick; beyond it (a "
        "faulty controller, a MIDI loop) the rest are left out and counted as an overload")
    input_ms_per_tick: float = Field(
        3.0, gt=0, le=1000, description="milliseconds a live tick spends on its notes at most when "
        "more than 16 come in one tick (a flood: playing never does); later note-ons of that tick "
        "are left out and counted as an overload (renders take every note)")
    learn_file: str | None = Field(
        None, min_length=1, description="MIDI learn: the JSON file of controller bindings (relative to "
        "the setlist's folder), read when the show starts, rewritten when the performer binds (F2)")


class OscSettings(_Strict):
    listen: str | None = Field(None, description="PORT or HOST:PORT to take OSC on (loopback "
                                                 "unless a host is named); unset = no OSC in")
    send: list[str] = Field(default_factory=list, description="HOST:PORT (or PORT on loopback) "
                                                              "each to send what happens to")

    @field_validator("listen")
    @classmethod
    def _listen_address(cls, value):
        if value is not None:
            from engine.osc import parse_address

            parse_address(value)
        return value

    @field_validator("send")
    @classmethod
    def _send_addresses(cls, value):
        from engine.osc import parse_address

        for address in value:
            parse_address(address)
        return value


class CameraSettings(_Strict):
    source: str | int | None = Field(None, description="device index, device name or video file")
    fallback: str | None = Field(None, description="video file used when no camera is available")
    record: Literal["auto", "always", "never"] = Field(
        "auto", description="record the live camera for replays: auto = unless it is a video file")


class AudioSettings(MixerConfig):
    """The rack-wide sound settings (see :class:`engine.audio.config.MixerConfig`; without a
    ``[sound]`` table, the overtone instrument's settings too) and the device."""

    enabled: bool = True
    device: str | None = Field(None, description="output device name substring; default device if unset")
    input: str | None = Field(None, description="audio input to record (name substring or \"default\")")
    realtime: bool = Field(True, description="the audio process asks for realtime scheduling")
    piano: Literal["auto", "on", "off"] = Field(
        "auto", description="a simple piano under the overtones; auto = when no piano is live")

    def mixer_config(self) -> MixerConfig:
        """The sound settings, without the device ones."""
        device = set(AudioSettings.model_fields) - set(MixerConfig.model_fields)
        return MixerConfig(**self.model_dump(exclude=device))


class Advance(_Strict):
    """When a cue hands over to the next; with no field set, only the performer advances (manual)."""

    after: float | None = Field(None, gt=0, description="seconds of show time after the cue starts")
    cc: int | None = Field(None, ge=0, le=127, description="controller number, e.g. 67 (soft pedal)")
    note: int | None = Field(None, ge=0, le=127, description="a note-on of this MIDI note")
    program: int | None = Field(None, ge=0, le=127, description="a program change to this program")


class Transition(_Strict):
    kind: Literal["cut", "fade"] = "cut"
    seconds: float = Field(0.0, ge=0, le=60, description="fade-in length in seconds")


CUE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _sane_size(value: tuple[int, int]) -> tuple[int, int]:
    if not (16 <= value[0] <= 8192 and 16 <= value[1] <= 8192):
        raise ValueError("width and height must be between 16 and 8192 pixels")
    return value


# A show's picture size and frame rate, wherever they are read (the setlist, a performance log).
Resolution = Annotated[tuple[int, int], AfterValidator(_sane_size)]
FrameRate = Annotated[float, Field(ge=1, le=240)]


class Cue(_Strict):
    id: str
    scene: str
    title: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    advance: Advance = Advance()
    transition: Transition = Transition()
    sound: CueSound | None = None
    source: dict[str, Any] | None = Field(None, description="a note source (engine.note_sources): "
                                                          "{ kind = \"dice\", ... }")

    @field_validator("id")
    @classmethod
    def _id_is_a_word(cls, value: str) -> str:
        if not CUE_ID.match(value):
            raise ValueError("a cue id is letters, digits, '_', '-' or '.', starting with a letter or digit")
        return value


class Setlist(_Strict):
    title: str
    pieces: list[str] | None = Field(None, description="the pieces (plug-ins) whose scenes the setlist "
                                                        "uses; unset = every installed piece")
    seed: int = 0
    tick_rate: float = Field(60.0, ge=1, le=1000, description="fixed ticks per second (Hz)")
    fps: FrameRate = Field(60.0, description="frames per second drawn")
    resolution: Resolution = (1280, 720)
    midi: MidiSettings = MidiSettings()
    osc: OscSettings = OscSettings()
    camera: CameraSettings = CameraSettings()
    audio: AudioSettings = AudioSettings()
    sound: SoundSettings | None = None
    cues: list[Cue] = Field(min_length=1)

    @field_validator("resolution", mode="before")
    @classmethod
    def _parse_resolution(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
            if not match:
                raise ValueError("expected WIDTHxHEIGHT such as \"1280x720\" or [1280, 720]")
            return (int(match[1]), int(match[2]))
        return value


@dataclass(frozen=True)
class LoadedCue:
    """A validated cue with its scene class and params model instance."""

    cue: Cue
    scene_class: type[Scene]
    params: SceneParams

    @property
    def id(self) -> str:
        return self.cue.id


@dataclass(frozen=True)
class LoadedSetlist:

    snapshot_by_reference = True  # engine.snapshot: the restoring show's own, not saved
    path: Path
    settings: Setlist
    cues: tuple[LoadedCue, ...]

    def index_of(self, cue_id: str) -> int:
        for index, loaded in enumerate(self.cues):
            if loaded.id == cue_id:
                return index
        raise UserError(f"{self.path}: no cue '{cue_id}'; cues: {', '.join(c.id for c in self.cues)}")

    def resolve_path(self, value: str) -> Path:
        """A path from the setlist, relative to the setlist's folder."""
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else (self.path.parent / path)


def load_setlist(path: str | os.PathLike, text: str | None = None) -> LoadedSetlist:
    """Read, validate and resolve a setlist; any problem raises a one-line :class:`UserError`.
    ``text``: the setlist's TOML as given (a replay's setlist as run); ``path`` then only names
    it and anchors its relative paths."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig") if text is None else text)
    except FileNotFoundError:
        raise UserError(f"setlist not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"setlist is a folder, expected a .toml file: {path}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (expected UTF-8 TOML)") from None
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: invalid TOML: {error}") from None
    except RecursionError:
        raise UserError(f"{path}: invalid TOML: nested too deeply") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read setlist: {error.strerror}") from None
    try:
        settings = Setlist.model_validate(raw)
    except ValidationError as error:
        raise UserError(_describe(path, error, raw)) from None

    seen: dict[str, int] = {}
    for number, cue in enumerate(settings.cues, start=1):
        if cue.id in seen:
            raise UserError(f"{path}: cue '{cue.id}' (#{number}): duplicate cue id "
                            f"(first used by cue #{seen[cue.id]}); cue ids must be unique")
        seen[cue.id] = number

    from engine import pieces

    named = settings.pieces is not None
    pieces.load(settings.pieces)  # a bad piece name is a one-line error too
    _check_instrument_keys(path, settings)
    loaded = []
    for number, cue in enumerate(settings.cues, start=1):
        where = f"{path}: cue '{cue.id}' (#{number})"
        try:
            cls = scene_class(cue.scene, load_pieces=not named)
        except KeyError:
            hint = f" (the setlist's pieces: {', '.join(settings.pieces)})" if named else ""
            raise UserError(f"{where}: field 'scene': unknown scene '{cue.scene}'{hint}; "
                            f"known scenes: {', '.join(known_scenes(load_pieces=not named))}") from None
        try:
            params = cls.Params.model_validate(cue.params)
        except ValidationError as error:
            first = error.errors()[0]
            raise UserError(f"{where}: field 'params.{_dotted(first['loc'])}' of scene '{cue.scene}': "
                            f"{_explain(first)}{_more(error)}") from None
        loaded.append(LoadedCue(cue, cls, params))
    check_sound(str(path), settings.audio, settings.sound,
                [(f"cue '{cue.id}' (#{number})", cue.sound) for number, cue in enumerate(settings.cues, 1)])
    return LoadedSetlist(path=path, settings=settings, cues=tuple(loaded))


def _check_instrument_keys(path: Path, settings: Setlist) -> None:
    """``[audio]``'s keys beyond its own (:class:`engine.audio.config.MixerConfig`). Without
    ``[sound]``: the settings of the legacy rack's instrument, checked by that instrument's own
    model (a piece's, found by kind: the engine names the kind, never the module), as a cue's params
    are by its scene's. With ``[sound]``: each of them, and ``piano``, is an error saying where an
    instrument's settings go."""
    from engine.audio.instrument import instrument_class
    from engine.audio.rack import missing_legacy_instrument

    written = settings.audio.instrument_settings()
    if settings.sound is not None:
        left = sorted(set(written) | ({"piano"} & settings.audio.model_fields_set))
        if left:
            key = left[0]
            if key != "piano" and not _legacy_setting(key):
                raise UserError(f"{path}: unknown key 'audio.{key}' (not allowed here)")
            raise UserError(f"{path}: field 'audio.{key}': with a [sound] table, an instrument's "
                            f"settings go in its own table ([sound.instruments.NAME]); [audio] keeps "
                            f"the device, rate, block, tuning and master gain")
        return
    try:
        legacy = instrument_class(LEGACY_INSTRUMENT).Settings
    except KeyError:
        raise UserError(f"{path}: {missing_legacy_instrument()}") from None
    try:
        legacy.model_validate(written)
    except ValidationError as error:
        first = error.errors()[0]
        field = f"audio.{_dotted(first['loc'])}"
        if first["type"] == "extra_forbidden":
            raise UserError(f"{path}: unknown key '{field}' (not allowed here){_more(error)}") from None
        raise UserError(f"{path}: field '{field}': {_explain(first)}{_more(error)}") from None


def _legacy_setting(key: str) -> bool:
    """Whether ``key`` is a setting of the legacy rack's instrument (False when none is installed)."""
    from engine.audio.instrument import instrument_class

    try:
        return key in instrument_class(LEGACY_INSTRUMENT).Settings.model_fields
    except KeyError:
        return False


def _dotted(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _explain(error: dict) -> str:
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return "unknown key (not allowed here)"
    if kind == "missing":
        return "required but missing"
    shown = repr(error.get("input"))
    if len(shown) > 40:
        shown = shown[:37] + "..."
    message = message.removeprefix("Value error, ")
    return f"{message[0].lower()}{message[1:]} (got {shown})"


def _more(error: ValidationError) -> str:
    extra = error.error_count() - 1
    return f" (and {extra} more problem{'s' if extra > 1 else ''})" if extra else ""


def _describe(path: Path, error: ValidationError, raw: dict) -> str:
    first = error.errors()[0]
    loc = tuple(first["loc"])
    where = f"{path}"
    if len(loc) >= 2 and loc[0] == "cues" and isinstance(loc[1], int):
        index = loc[1]
        cues = raw.get("cues") if isinstance(raw, dict) else None
        cue_id = None
        if isinstance(cues, list) and index < len(cues) and isinstance(cues[index], dict):
            cue_id = cues[index].get("id")
        label = f"cue '{cue_id}' (#{index + 1})" if isinstance(cue_id, str) else f"cue #{index + 1}"
        where += f": {label}"
        loc = loc[2:]
    field_name = _dotted(loc) if loc else None
    if first["type"] == "extra_forbidden" and field_name:
        return f"{where}: unknown key '{field_name}' (not allowed here){_more(error)}"
    if first["type"] == "too_short" and loc == ("cues",):
        return f"{where}: field 'cues': a setlist needs at least one cue ([[cues]] with id and scene)"
    label = f"field '{field_name}'" if field_name else ("the cue" if where.endswith(")") or ": cue #" in where else "setlist")
    return f"{where}: {label}: {_explain(first)}{_more(error)}"
