"""What the show and the scenes call to make sound: :class:`AudioOut`, one small interface over
three backends: the live audio process (:class:`engine.audio.live.LiveAudio`), the offline
renderer (:class:`engine.audio.offline.OfflineAudio`) and silence (:class:`NoAudio`).

Played notes go to the instruments the current cue routes the MIDI input to (:meth:`route`);
a scene plays any instrument of the rack by name through :meth:`instrument`, writes tables of the
shared sample pool (:meth:`write_table`) and reads the show's own sound (:meth:`listen`).

Every command the show sends during a tick is also kept (``take_sent``) so the metrics log can
show it: what the audio side was told is part of the record of a show.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from engine.audio import command_ring as cmd
from engine.audio.rack import RackConfig, legacy_rack_config
from engine.errors import UserError


class AudioOut:
    """Base class: builds commands and hands them to :meth:`_send`.

    Attributes:
        hears_midi: the audio side reads the live MIDI port itself (note-ons sound without waiting
            for the engine's tick), so the show must not forward that port's notes again.
        show_time: show seconds at the end of the tick being run; the offline renderer stamps
            commands with it.
        position: where the show is in its input: it moves on before each MIDI event a tick
            delivers and once after them (:meth:`next_position`). A scene that keeps it with an
            event and sends a command later in the tick ``at`` that position (``detune(..., at=)``)
            has the command take its place right after the event's own, in the metrics log and
            in renders, as if sent while the event was delivered: the notes of a tick can be
            handled together and sound as if handled one by one. (Live too: from the tick's first
            event until its scenes have ticked, commands wait, then leave in that order: :meth:`flush`.)
    """

    hears_midi = False

    def __init__(self, rack: RackConfig | None = None, pool=None) -> None:
        self.show_time = 0.0
        self.rack = rack if rack is not None else _default_rack()
        self.pool = pool  # engine.audio.pool.SamplePool: the tables, or None
        self.routes = list(self.rack.notes)
        self._sent: list[list] = []
        self._sent_at: list[int] = []  # the position of each command in _sent (non-decreasing)
        self.position = 0
        self._heard: list[list] = []
        self._mirror: NoAudio | None = None  # lists what the audio process heard itself

    # Notes and the pedal.
    def note_on(self, note: int, velocity: int, channel: int = 0) -> None:
        self._command(cmd.NOTE_ON, cmd.voice_id(note, channel), note, float(velocity), note,
                      float(velocity))

    def note_off(self, note: int, channel: int = 0) -> None:
        self._command(cmd.NOTE_OFF, cmd.voice_id(note, channel), note, 0.0, note)

    def sustain(self, value: int) -> None:
        """Sustain pedal position 0..127 (64 and up = down)."""
        self._command(cmd.SUSTAIN, 0, 0, float(value), float(value))

    def play(self, event, listed: bool = True) -> None:
        """Play a performed MIDI event (note, sustain pedal, all notes off) the way the audio
        process plays what it reads from a port itself (:func:`engine.audio.command_ring.midi_command`).
        ``listed``: list it among the commands sent (:meth:`take_sent`)."""
        if not listed:
            count = len(self._sent)
            self.play(event)
            del self._sent[count:], self._sent_at[count:]
            return
        command = cmd.midi_command(event)
        if command is None:
            return
        kind, voice, note, value = command
        if kind == cmd.NOTE_ON:
            self.note_on(note, int(value), voice // 128)
        elif kind == cmd.NOTE_OFF:
            self.note_off(note, voice // 128)
        elif kind == cmd.SUSTAIN:
            self.sustain(int(value))
        else:
            self.all_notes_off()

    def heard(self, event, send: bool = False) -> None:
        """Note a performed event the audio process played from the MIDI port itself (listed by
        :meth:`take_heard`, not among the commands sent). ``send``: play it here too (a replay,
        whose offline mixer has no port)."""
        if self._mirror is None:
            self._mirror = NoAudio(self.rack, self.pool)
        self._mirror.play(event)
        self._heard.extend(self._mirror.take_sent())
        if send:
            self.play(event, listed=False)

    # What the learners drive.
    def detune(self, value: float, note: int | None = None, channel: int = 0,
               at: int | None = None) -> None:
        """Detune d for the overtones of ``note`` (every sounding note when None): partial k >= 2
        glides to k * f * (1 + d). Later notes start from the last value sent. A value that is not
        finite is dropped here and never reaches the audio side. ``at``: a :attr:`position` kept
        earlier in this tick, to act as if sent then."""
        if not math.isfinite(value):
            return
        voice = cmd.ALL_VOICES if note is None else cmd.voice_id(note, channel)
        self._command(cmd.DETUNE, voice, -1 if note is None else note, float(value), note,
                      float(value), at=at)

    def set_gain(self, bus: str, db: float) -> None:
        """Set a bus gain in dB: "master" or a bus of the rack (ramped within a block)."""
        buses = self.rack.bus_names()
        if bus not in buses:
            raise ValueError(f"unknown bus '{bus}'; buses: {', '.join(buses)}")
        self._command(cmd.GAIN, self.rack.bus_index(bus), 0, float(db), bus, float(db))

    def set_tuning(self, tuning: str | list[float], root: int = 0) -> None:
        """Retune live: "equal", "just", "pythagorean" (from pitch class ``root``) or twelve cent
        offsets for C .. B. Notes struck afterwards use it; sounding notes keep their pitch."""
        from engine.audio.tuning import cent_offsets

        for pitch_class, cents in enumerate(cent_offsets(tuning, root)):
            self._command(cmd.TUNE, pitch_class, 0, float(cents), pitch_class, float(cents))

    def tune_note(self, note: int, hz: float) -> None:
        """Retune one MIDI note to ``hz`` (0: back to the show's tuning) for every instrument that
        plays by the host's frequencies, for notes struck afterwards: a scale of frequencies of
        its own (Padberg's 24 equal frequency steps) on ordinary keys."""
        self._command(cmd.TUNE_NOTE, int(note), 0, float(hz), int(note), float(hz))

    def all_notes_off(self) -> None:
        self._command(cmd.ALL_NOTES_OFF)

    def panic(self) -> None:
        """Silence everything at once (5 ms fade), detune back to 0, pedal up."""
        self._command(cmd.PANIC)

    # The rack: routing, instruments, tables, the show's sound.
    def route(self, names: list[str]) -> None:
        """The MIDI input plays these instruments from now on (none: it sounds nothing). Notes
        already sounding are released by the instruments that play them. Nothing is sent when
        the routing does not change."""
        for name in names:
            self._slot(name)
        if list(names) == self.routes:
            return
        self.routes = list(names)
        self._list(["route", *names], self.position)
        self._send(cmd.ROUTE, cmd.ALL_VOICES, 0, 0.0, cmd.RACK, 0.0, 0.0, 0.0, self.position)
        for name in names:
            self._send(cmd.ROUTE, self._slot(name), 0, 1.0, cmd.RACK, 0.0, 0.0, 0.0, self.position)

    def instrument(self, name: str) -> InstrumentHandle:
        """What a scene plays an instrument of the rack through; KeyError naming the rack's
        instruments when there is none called ``name``."""
        return InstrumentHandle(self, name, self._slot(name))

    def _slot(self, name: str) -> int:
        try:
            return self.rack.slot(name)
        except KeyError:
            known = ", ".join(spec.name for spec in self.rack.instruments) or "none"
            raise KeyError(f"no instrument '{name}' in the rack (instruments: {known})") from None

    def table(self, name: str) -> int:
        """The pool slot of the table called ``name`` (KeyError when there is none)."""
        if self.pool is None or name not in self.pool.names():
            known = ", ".join(self.pool.names()) if self.pool is not None else "none (no pool)"
            raise KeyError(f"no table '{name}' in the sample pool (tables: {known})")
        return self.pool.slot(name)

    def write_table(self, name: str, data: np.ndarray) -> bool:
        """Replace what table ``name`` plays with ``data`` ((frames,) or (frames, channels), at
        the show's rate): written into the table's back buffer here, played from the first block
        at or after the end of this tick, never torn. False (nothing written, try again next
        tick) while the table's previous write has not reached the audio side yet."""
        slot = self.table(name)
        data = self._checked_table(name, slot, data)
        if not self._write_table(slot, data):
            return False
        self._list(["swap", name, int(len(data))], self.position)
        return True

    def _checked_table(self, name: str, slot: int, data: np.ndarray) -> np.ndarray:
        data = np.asarray(data, np.float32)
        if data.ndim not in (1, 2) or (data.ndim == 2 and data.shape[1] not in (1, 2)) \
                or len(data) > self.pool.capacity(slot):
            raise ValueError(f"table '{name}' holds at most {self.pool.capacity(slot)} frames of 1 or 2 "
                             f"channels; got an array of shape {data.shape}")
        return data

    def _write_table(self, slot: int, data: np.ndarray) -> bool:
        return False

    writes_now = False  # write_table_now works (live sound)

    def write_table_now(self, name: str, data: np.ndarray) -> bool:
        """Live only (:class:`~engine.audio.live.LiveAudio`): write a table from any thread, its
        swap sent at once instead of at the end of the tick. Elsewhere (renders, no sound):
        False, nothing written; write in the tick with :meth:`write_table`."""
        return False

    def listen(self, seconds: float, source: str = "mix") -> np.ndarray:
        """The latest ``seconds`` of the show's sound at its rate, (frames, 2) float32, oldest
        first: "mix" is what the audience hears from the rack, "input" the audio input (the
        microphone or line live, the input file in renders). Fewer frames at the start of a show;
        zeros when there is no such sound."""
        return np.zeros((0, 2), np.float32)

    def heard_since(self, position: int, source: str = "mix") -> tuple[np.ndarray, int]:
        """What was played ("mix") or came in ("input") after frame ``position`` of the show's
        sound, (frames, 2) float32 oldest first (at most the last few seconds the tap keeps), and
        the position to pass next time: a listener that reads every tick gets each frame once,
        with no gap and no overlap. Nothing where there is no such sound."""
        return np.zeros((0, 2), np.float32), position

    def view(self, name: str) -> np.ndarray:
        """What instrument ``name`` shows of itself now (the granulator: a row per sounding grain),
        a (rows, columns) float64 copy whose columns are its kind's ``view_fields``
        (:data:`engine.audio.granular_kernels.VIEW_FIELDS`): live, as of the last block the audio
        process played; offline, as of the last block rendered (identical in every render). No
        rows without sound, or when the instrument shows nothing."""
        from engine.audio.instrument import instrument_class

        slot = self._slot(name)
        columns = len(instrument_class(self.rack.instruments[slot].kind).view_fields)
        return self._view(slot, columns)

    def _view(self, slot: int, columns: int) -> np.ndarray:
        return np.zeros((0, columns))

    # Show plumbing.
    def take_sent(self) -> list[list]:
        """The commands sent since the last call, for the metrics log: [name, what it acts on...],
        e.g. ["note_on", 60, 96.0], ["detune", None, 0.01], ["gain", "master", -3.0], ["panic"]."""
        sent, self._sent, self._sent_at = self._sent, [], []
        return sent

    def take_heard(self) -> list[list]:
        """The events the audio process played from the port itself since the last call, listed
        like :meth:`take_sent`'s commands (the metrics log's ``heard``)."""
        heard, self._heard = self._heard, []
        return heard

    def flush(self) -> None:
        """Send what this tick held back (live: see :meth:`LiveAudio.next_position`); the show
        calls it once its scenes have ticked."""

    def next_position(self) -> int:
        """Move :attr:`position` on (the show: before each event it delivers, and after them)."""
        self.position += 1
        return self.position

    def advance(self, show_time: float) -> None:
        """The show has reached ``show_time`` seconds (the offline renderer renders up to it)."""

    def poll(self) -> list[str]:
        """Check on the audio side once a tick; returns notices for the metrics log's events."""
        return []

    def tap_frames(self) -> int | None:
        """Frames the live audio process has played so far (its tap: the recorder's clock), or
        None when sound is not live."""
        return None

    def health(self) -> dict:
        """Fields for the metrics log and HUD (``xruns``, ``audio_load``), when known."""
        return {}

    def close(self) -> None:
        """Stop sound and release the audio side."""

    def _command(self, kind: int, voice: int = 0, note: int = 0, value: float = 0.0,
                 *shown, target: int | None = None, a: float = 0.0, b: float = 0.0,
                 c: float = 0.0, at: int | None = None) -> None:
        """Send a command; ``shown`` is what the metrics log lists after its name; ``at``: the
        :attr:`position` it belongs to (default: now)."""
        at = self.position if at is None else min(at, self.position)
        self._list([cmd.NAMES[kind], *shown], at)
        self._send(kind, voice, note, value,
                   cmd.DEFAULT_TARGET.get(kind, cmd.EVERY) if target is None else target, a, b, c, at)

    def _list(self, shown: list, at: int) -> None:
        index = bisect.bisect_right(self._sent_at, at)
        self._sent.insert(index, shown)
        self._sent_at.insert(index, at)

    def _send(self, kind: int, voice: int, note: int, value: float, target: int, a: float,
              b: float, c: float, at: int) -> None:
        """Hand one command to the backend; ``at``: its :attr:`position` (the order it takes
        among the commands of the same show time)."""
        raise NotImplementedError


class InstrumentHandle:
    """One instrument of the rack, as a scene plays it: notes, parameters, the sampler's tables.
    Every call is a command listed in the metrics log (``["note_on", "sampler", 60, 100.0]``)."""

    def __init__(self, audio: AudioOut, name: str, slot: int) -> None:
        self.audio, self.name, self.slot = audio, name, slot

    def note_on(self, note: int, velocity: int = 100, voice: int | None = None) -> None:
        """A note at ``velocity`` 1..127; ``voice``: the id to stop it by (default: from the note,
        in the range kept for scenes, apart from the MIDI input's)."""
        voice = cmd.SCENE_VOICES + note if voice is None else voice
        self.audio._command(cmd.NOTE_ON, voice, note, float(velocity), self.name, note,
                            float(velocity), target=self.slot)

    def note_off(self, note: int, voice: int | None = None) -> None:
        voice = cmd.SCENE_VOICES + note if voice is None else voice
        self.audio._command(cmd.NOTE_OFF, voice, note, 0.0, self.name, note, target=self.slot)

    def set(self, parameter: str, value: float | str) -> None:
        """Set one of the instrument's parameters (its kind's ``parameters``), from now on; a
        choice by name or index (``set("window", "hann")``)."""
        from engine.audio.instrument import instrument_class

        kind = instrument_class(self.audio.rack.instruments[self.slot].kind)
        if parameter not in kind.parameters:
            raise ValueError(f"instrument '{self.name}' ({kind.kind}) has no parameter '{parameter}'; "
                             f"parameters: {', '.join(kind.parameters) or 'none'}")
        try:
            number = kind.parameter_number(parameter, value)
        except ValueError as error:
            raise ValueError(f"instrument '{self.name}' ({kind.kind}), parameter '{parameter}': "
                             f"{error}") from None
        self.audio._command(cmd.SET, 0, kind.parameters.index(parameter), number, self.name,
                            parameter, number, target=self.slot)

    def play(self, table: str, voice: int, gain: float = 1.0, ratio: float = 1.0, pan: float = 0.0,
             loop: bool = False) -> None:
        """Play table ``table`` of the pool as voice ``voice`` (an id of the scene's choosing, from
        :data:`engine.audio.command_ring.SCENE_VOICES` up): linear ``gain``, pitch ``ratio`` (2 = an
        octave up), ``pan`` -1..1, one shot or ``loop``ed. Starts at the first block after the
        end of this tick."""
        self.audio._command(cmd.PLAY, voice, self.audio.table(table), float(gain), self.name,
                            table, voice, float(gain), float(ratio), float(pan), bool(loop),
                            target=self.slot, a=float(ratio), b=float(pan),
                            c=float(cmd.LOOP if loop else 0))

    def grain(self, table: str, start: float, duration: float, ratio: float = 1.0,
              gain: float = 1.0, delay: float = 0.0) -> None:
        """A granulator fires one grain of table ``table``: ``start`` seconds into it, ``duration``
        seconds long, at pitch ``ratio``, linear ``gain``, ``delay`` seconds after the first block
        that follows this tick, with the instrument's current pan and window."""
        frames = max(0, int(round(delay * self.audio.rack.sample_rate)))
        self.audio._command(cmd.GRAIN, frames, self.audio.table(table), float(gain), self.name,
                            table, float(start), float(duration), float(ratio), float(gain),
                            target=self.slot, a=float(start), b=float(duration), c=float(ratio))

    def stop(self, voice: int = cmd.ALL_VOICES, release: float = 0.0) -> None:
        """Release voice ``voice`` (every voice by default) over ``release`` seconds (0: the
        instrument's own release)."""
        self.audio._command(cmd.STOP, voice, 0, float(release), self.name, voice, target=self.slot)

    def queue(self, voice: int, table: str) -> None:
        """A looping voice moves to ``table`` when it next reaches its loop end (no gap)."""
        self.audio._command(cmd.QUEUE, voice, self.audio.table(table), 0.0, self.name, voice,
                            table, target=self.slot)


_DEFAULT_RACK: RackConfig | None = None


def _default_rack() -> RackConfig:
    """The overtone mixer alone, with its default settings (built once: the model is frozen), or,
    when no installed piece brings its instrument, an empty rack (sound off needs none)."""
    global _DEFAULT_RACK
    if _DEFAULT_RACK is None:
        from engine.audio.config import MixerConfig

        try:
            _DEFAULT_RACK = legacy_rack_config(MixerConfig(), piano=False)
        except UserError:
            _DEFAULT_RACK = RackConfig()
    return _DEFAULT_RACK


class NoAudio(AudioOut):
    """Sound switched off (``[audio] enabled = false``): commands are recorded, nothing plays."""

    def _send(self, kind, voice, note, value, target, a, b, c, at):
        pass
