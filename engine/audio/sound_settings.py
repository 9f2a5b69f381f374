"""The setlist's ``[sound]`` table (the rack: instruments, buses, the sample pool) and each cue's
``sound`` (which instruments the MIDI input plays, and their settings when the cue starts).

A setlist without ``[sound]`` gets the overtone mixer as it always was, from ``[audio]``: the
overtone voices, and the piano when it is wanted, both played by every note. A setlist with
``[sound]`` says everything about its instruments there; ``[audio]`` then keeps only the device
and the rack-wide settings (rate, block, tuning, master gain), and an overtone setting left in it is
an error saying where it goes now (:func:`engine.setlist.load_setlist` checks ``[audio]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.audio.config import LEGACY_INSTRUMENT, MixerConfig
from engine.audio.rack import InstrumentSpec, RackConfig, legacy_rack_config, piece_modules
from engine.errors import UserError

MAX_INSTRUMENTS = 63  # the rack keeps which instruments took a note in a 63-bit mask


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleFile(_Strict):
    """An audio file loaded into the pool when the show loads (any rate, 1 or 2 channels).

    With ``hpss``, two more tables are loaded beside table NAME: "NAME.harmonic" and
    "NAME.percussive", its harmonic and percussive parts (same frames and channels), separated
    when the show loads (:mod:`engine.audio.hpss`); together they take twice the file's room in
    the pool again.
    """

    file: str = Field(description="path, relative to the setlist's folder")
    rate: int | None = Field(None, description="Hz the file must have (checked); unset = any")
    hpss: bool = Field(False, description="also load the harmonic and percussive parts")
    hpss_margin: float = Field(1.0, ge=1.0, le=100.0, allow_inf_nan=False,
                               description="separation margin, 1 to 100; 1 = the two parts sum to "
                               "the file, above = each keeps only what is clearly its own")

    @model_validator(mode="before")
    @classmethod
    def _path_alone(cls, value: Any) -> Any:
        """A bare path is a file with every other setting at its default (validated as one model,
        so a bad setting is reported by its own name, not as "not a string")."""
        return {"file": value} if isinstance(value, str) else value


class EmptyTable(_Strict):
    """A table a scene fills while the show runs (silence until then)."""

    seconds: float = Field(gt=0, le=600, description="capacity in seconds at the show's rate")
    channels: int = Field(1, ge=1, le=2)


class SoundSettings(_Strict):
    """``[sound]``.

    Attributes:
        notes: the instruments the MIDI input plays in cues that do not say (default: all).
        buses: bus name -> gain in dB, in mix order; an instrument's bus not listed here is added
            at 0 dB.
        instruments: name -> ``{ kind = "...", bus = "...", <the kind's settings> }``.
        samples: table name -> audio file (a path, or ``{ file = ..., rate = ..., hpss = ...,
            hpss_margin = ... }``; with hpss the sample also gives tables "NAME.harmonic" and
            "NAME.percussive").
        tables: table name -> ``{ seconds = ..., channels = ... }``: empty tables scenes write.
        pool_seconds: the pool's capacity in seconds of stereo tables at the show's rate (a mono
            table takes half as much; each table has a back buffer too, counted in; a sample
            with hpss takes three times its room).
        input_file: the audio input in renders and replays (a recording standing in for the
            microphone), relative to the setlist's folder; ``--audio-in-file`` overrides.
    """

    notes: list[str] | None = None
    buses: dict[str, float] = Field(default_factory=dict)
    instruments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    samples: dict[str, SampleFile] = Field(default_factory=dict)
    tables: dict[str, EmptyTable] = Field(default_factory=dict)
    pool_seconds: float = Field(60.0, gt=0, le=3600)
    input_file: str | None = None


class FixedMedia(_Strict):
    """A recording that plays with a cue (``media`` of a cue's ``sound``): pool table ``table`` (a
    ``[sound.samples]`` file) on sampler ``instrument``, from the first block after the cue's
    start; ``end`` says what it does when the cue ends: "stop" (a 5 ms fade), "fade" (over ``fade``
    seconds) or "carry" (plays on into the next cues until it ends, or until a later cue plays
    media of the same table)."""

    table: str
    instrument: str = "media"
    gain_db: float = Field(0.0, ge=-120.0, le=24.0)
    pan: float = Field(0.0, ge=-1.0, le=1.0)
    loop: bool = False
    end: Literal["stop", "fade", "carry"] = "stop"
    fade: float = Field(2.0, gt=0.0, le=60.0, description="seconds")


class CueSound(_Strict):
    """A cue's ``sound``: ``notes`` the instruments the MIDI input plays in this cue (``[]``:
    none; unset: the show's default), ``settings`` instrument -> parameter -> value, set when the
    cue starts (a sampler's ``table`` by name), ``media`` recordings that play with it."""

    notes: list[str] | None = None
    settings: dict[str, dict[str, float | str | bool]] = Field(default_factory=dict)
    media: list[FixedMedia] = Field(default_factory=list, max_length=16)


def instrument_specs(where: str, sound: SoundSettings) -> list[InstrumentSpec]:
    """Every instrument of ``[sound]`` validated by its kind (UserError naming the field)."""
    from engine.audio.instrument import instrument_class, known_instruments

    specs = []
    for name, table in sound.instruments.items():
        field = f"sound.instruments.{name}"
        if not isinstance(table, dict) or "kind" not in table:
            raise UserError(f"{where}: field '{field}': an instrument needs a kind "
                            f"(one of: {', '.join(known_instruments())})")
        settings = dict(table)
        kind = settings.pop("kind")
        bus = settings.pop("bus", name)
        try:
            cls = instrument_class(kind)
        except (KeyError, TypeError):
            raise UserError(f"{where}: field '{field}.kind': unknown instrument '{kind}'; "
                            f"known instruments: {', '.join(known_instruments())}") from None
        if not isinstance(bus, str) or bus == "master":
            raise UserError(f"{where}: field '{field}.bus': a bus name other than 'master' (got {bus!r})")
        checked = {key: (0 if key in cls.table_settings and isinstance(value, str) else value)
                   for key, value in settings.items()}  # table names are resolved with the pool
        try:
            cls.Settings.model_validate(checked)
        except ValidationError as error:
            first = error.errors()[0]
            loc = ".".join(str(part) for part in first["loc"])
            message = "unknown key (not allowed here)" if first["type"] == "extra_forbidden" \
                else first["msg"].removeprefix("Value error, ")
            raise UserError(f"{where}: field '{field}.{loc}': {message}") from None
        specs.append(InstrumentSpec(name=name, kind=kind, bus=bus, settings=settings))
    return specs


def check_sound(where: str, audio: MixerConfig, sound: SoundSettings | None,
                cues: list[tuple[str, CueSound | None]]) -> None:
    """Everything about sound a setlist can get wrong, found when it loads: instruments, buses,
    routing names, table names, cue settings. ``cues``: (how a message names the cue, its sound)
    for each cue."""
    tables: set[str] = set()
    classes: dict = {}
    specs: list[InstrumentSpec] = []
    if sound is None:
        names = [LEGACY_INSTRUMENT, "piano"]
        parameters = {LEGACY_INSTRUMENT: (), "piano": ()}
    else:
        specs = instrument_specs(where, sound)
        if len(specs) > MAX_INSTRUMENTS:
            raise UserError(f"{where}: field 'sound.instruments': at most {MAX_INSTRUMENTS} instruments "
                            f"(got {len(specs)})")
        names = [spec.name for spec in specs]
        from engine.audio.instrument import instrument_class

        classes = {spec.name: instrument_class(spec.kind) for spec in specs}
        parameters = {name: cls.parameters for name, cls in classes.items()}
        tables = sample_table_names(where, sound)
        for spec in specs:
            for key in classes[spec.name].table_settings:
                for table in _table_names(spec.settings.get(key)):
                    if table not in tables:
                        raise UserError(f"{where}: field 'sound.instruments.{spec.name}.{key}': no "
                                        f"table '{table}' in [sound.samples] or [sound.tables]")
        for name in sound.notes or ():
            if name not in names:
                raise UserError(f"{where}: field 'sound.notes': no instrument '{name}' "
                                f"(instruments: {', '.join(names) or 'none'})")
    for cue_label, cue in cues:
        if cue is None:
            continue
        label = f"{where}: {cue_label}"
        for name in cue.notes or ():
            if name not in names:
                raise UserError(f"{label}: field 'sound.notes': no instrument '{name}' "
                                f"(instruments: {', '.join(names)})")
        for index, media in enumerate(cue.media):
            field = f"{label}: field 'sound.media.{index}"
            if media.instrument not in names or specs[names.index(media.instrument)].kind != "sampler":
                samplers = [spec.name for spec in specs if spec.kind == "sampler"]
                raise UserError(f"{field}.instrument': no sampler '{media.instrument}' (samplers: "
                                f"{', '.join(samplers) or 'none'})")
            if media.table not in tables:
                raise UserError(f"{field}.table': no table '{media.table}' in [sound.samples] or [sound.tables]")
        for name, values in cue.settings.items():
            if name not in names:
                raise UserError(f"{label}: field 'sound.settings.{name}': no instrument '{name}' "
                                f"(instruments: {', '.join(names)})")
            for parameter, value in values.items():
                if parameter not in parameters[name]:
                    raise UserError(f"{label}: field 'sound.settings.{name}.{parameter}': unknown "
                                    f"parameter (parameters: {', '.join(parameters[name]) or 'none'})")
                field = f"{label}: field 'sound.settings.{name}.{parameter}'"
                if isinstance(value, str) and parameter == "table":
                    if value not in tables:
                        raise UserError(f"{field}: no table '{value}' in [sound.samples] or "
                                        f"[sound.tables]")
                elif isinstance(value, str):
                    try:
                        classes[name].parameter_number(parameter, value)
                    except ValueError as error:
                        raise UserError(f"{field}: {error}") from None


def build_sound(setlist_path: Path, audio: MixerConfig, sound: SoundSettings | None, piano: bool,
                resolve) -> tuple[RackConfig, Any]:
    """The rack and its sample pool (None without ``[sound]``): every file loaded and every table
    allocated now, before any device opens, so a missing or corrupt file or a pool too small is a
    one-line error and never a crash on stage. ``resolve``: a setlist path -> a Path."""
    if sound is None:
        return legacy_rack_config(audio, piano), None
    from engine.audio.pool import SamplePool, load_audio_file

    rate = audio.sample_rate
    where = str(setlist_path)
    loaded = {}
    for name, spec in sound.samples.items():
        path = resolve(spec.file)
        if spec.rate is not None:
            actual = _file_rate(path)
            if actual is not None and actual != spec.rate:
                raise UserError(f"{where}: field 'sound.samples.{name}': {path} is {actual} Hz, "
                                f"not the {spec.rate} Hz the setlist says")
        loaded[name] = (spec, path, load_audio_file(path, rate))
    pool = SamplePool.create(int(round(sound.pool_seconds * rate)) * 4)  # stereo, front and back
    try:
        for name, (spec, _, data) in loaded.items():
            pool.fill(pool.allocate(name, len(data), data.shape[1]), data)
            for part in _parts(name, spec):
                pool.allocate(part, len(data), data.shape[1])
        for name, table in sound.tables.items():
            pool.allocate(name, int(round(table.seconds * rate)), table.channels)
        # Separated last, once every table has its room: a pool too small is said at once.
        for name, (spec, path, data) in loaded.items():
            _fill_parts(pool, where, name, spec, path, data)
        return _rack(where, audio, sound, pool), pool
    except BaseException:  # nothing is left behind in /dev/shm
        pool.close()
        raise


def _table_names(value) -> list[str]:
    """The table names a table setting gives: a name, or the names in a list ("" = none)."""
    values = value if isinstance(value, list) else [value]
    return [name for name in values if isinstance(name, str) and name]


def _slots(value, pool):
    """A table setting with its names as pool slots ("" = -1, none)."""
    if isinstance(value, list):
        return [_slots(item, pool) for item in value]
    if isinstance(value, str):
        return pool.slot(value) if value else -1
    return value


def _rack(where: str, audio: MixerConfig, sound: SoundSettings, pool) -> RackConfig:
    from engine.audio.instrument import instrument_class

    specs = []
    for spec in instrument_specs(where, sound):
        resolved = {key: _slots(spec.settings[key], pool)
                    for key in instrument_class(spec.kind).table_settings if key in spec.settings}
        if resolved:
            spec = spec.model_copy(update={"settings": {**spec.settings, **resolved}})
        specs.append(spec)
    buses = dict(sound.buses)
    for spec in specs:
        buses.setdefault(spec.bus, 0.0)
    names = [spec.name for spec in specs]
    return RackConfig(
        sample_rate=audio.sample_rate, block_size=audio.block_size, tuning=audio.tuning,
        tuning_root=audio.tuning_root, reference_hz=audio.reference_hz,
        reference_note=audio.reference_note, master_gain_db=audio.master_gain_db, buses=buses,
        instruments=specs, notes=names if sound.notes is None else sound.notes,
        modules=piece_modules(specs))


def sample_table_names(where: str, sound: SoundSettings) -> set[str]:
    """Every table name ``[sound]`` gives the pool: samples (with their harmonic and percussive
    parts where asked) and empty tables. UserError (naming the field) for a name given twice or an
    ``hpss_margin`` without ``hpss``."""
    names = set(sound.tables)
    for name, spec in sound.samples.items():
        if "hpss_margin" in spec.model_fields_set and not spec.hpss:
            raise UserError(f"{where}: field 'sound.samples.{name}.hpss_margin': a separation "
                            f"margin needs hpss = true")
        for table in (name, *_parts(name, spec)):
            if table in names:
                raise UserError(f"{where}: field 'sound.samples.{name}': table '{table}' is "
                                f"defined twice" + (" (a sample with hpss = true adds "
                                "NAME.harmonic and NAME.percussive)" if spec.hpss else ""))
            names.add(table)
    return names


def _parts(name: str, spec: SampleFile) -> tuple[str, ...]:
    """The names of a sample's harmonic and percussive tables; none without hpss."""
    from engine.audio.hpss import part_names

    return part_names(name) if spec.hpss else ()


def _fill_parts(pool, where: str, name: str, spec: SampleFile, path: Path, data) -> None:
    """Separate a sample with hpss (librosa, imported now and only for this) into its tables."""
    if not spec.hpss:
        return
    from engine.audio.hpss import separate

    try:
        parts = separate(data, spec.hpss_margin)
    except ValueError as error:
        raise UserError(f"{where}: field 'sound.samples.{name}.hpss': {path}: {error}") from None
    for table, part in zip(_parts(name, spec), parts):
        pool.fill(pool.slot(table), part)


def _file_rate(path: Path) -> int | None:
    import soundfile

    try:
        return int(soundfile.info(str(path)).samplerate)
    except Exception:
        return None  # load_audio_file says what is wrong with it
