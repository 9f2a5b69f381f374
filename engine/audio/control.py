"""What the show and the scenes call to make sound: :class:`AudioOut`, one small interface over
three backends: the live audio process (:class:`engine.audio.live.LiveAudio`), the offline
renderer (:class:`engine.audio.offline.OfflineAudio`) and silence (:class:`NoAudio`).

Every command the show sends during a tick is also kept (``take_sent``) so the metrics log can
show it: what the audio side was told is part of the record of a show.
"""

from __future__ import annotations

import math

from engine.audio import commands as cmd
from engine.audio.commands import BUSES


class AudioOut:
    """Base class: builds commands and hands them to :meth:`_send`.

    Attributes:
        hears_midi: the audio side reads the live MIDI port itself (note-ons sound without waiting
            for the engine's tick), so the show must not forward that port's notes again.
        show_time: show seconds at the end of the tick being run; the offline renderer stamps
            commands with it.
    """

    hears_midi = False

    def __init__(self) -> None:
        self.show_time = 0.0
        self._sent: list[list] = []
        self._heard: list[list] = []

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
        process plays what it reads from a port itself (:func:`engine.audio.commands.midi_command`).
        ``listed``: list it among the commands sent (:meth:`take_sent`)."""
        if not listed:
            count = len(self._sent)
            self.play(event)
            del self._sent[count:]
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
        mirror = NoAudio()
        mirror.play(event)
        self._heard.extend(mirror.take_sent())
        if send:
            self.play(event, listed=False)

    # What the learners drive.
    def detune(self, value: float, note: int | None = None, channel: int = 0) -> None:
        """Detune d for the overtones of ``note`` (every sounding note when None): partial k >= 2
        glides to k * f * (1 + d). Later notes start from the last value sent. A value that is not
        finite is dropped here and never reaches the audio side."""
        if not math.isfinite(value):
            return
        voice = cmd.ALL_VOICES if note is None else cmd.voice_id(note, channel)
        self._command(cmd.DETUNE, voice, -1 if note is None else note, float(value), note,
                      float(value))

    def set_gain(self, bus: str, db: float) -> None:
        """Set a bus gain in dB: "master", "overtones" or "piano" (ramped within a block)."""
        if bus not in BUSES:
            raise ValueError(f"unknown bus '{bus}'; buses: {', '.join(BUSES)}")
        self._command(cmd.GAIN, BUSES.index(bus), 0, float(db), bus, float(db))

    def set_tuning(self, tuning: str | list[float], root: int = 0) -> None:
        """Retune live: "equal", "just", "pythagorean" (from pitch class ``root``) or twelve cent
        offsets for C .. B. Notes struck afterwards use it; sounding notes keep their pitch."""
        from engine.audio.tuning import cent_offsets

        for pitch_class, cents in enumerate(cent_offsets(tuning, root)):
            self._command(cmd.TUNE, pitch_class, 0, float(cents), pitch_class, float(cents))

    def all_notes_off(self) -> None:
        self._command(cmd.ALL_NOTES_OFF)

    def panic(self) -> None:
        """Silence everything at once (5 ms fade), detune back to 0, pedal up."""
        self._command(cmd.PANIC)

    # Show plumbing.
    def take_sent(self) -> list[list]:
        """The commands sent since the last call, for the metrics log: [name, what it acts on...],
        e.g. ["note_on", 60, 96.0], ["detune", None, 0.01], ["gain", "master", -3.0], ["panic"]."""
        sent, self._sent = self._sent, []
        return sent

    def take_heard(self) -> list[list]:
        """The events the audio process played from the port itself since the last call, listed
        like :meth:`take_sent`'s commands (the metrics log's ``heard``)."""
        heard, self._heard = self._heard, []
        return heard

    def advance(self, show_time: float) -> None:
        """The show has reached ``show_time`` seconds (the offline renderer renders up to it)."""

    def poll(self) -> list[str]:
        """Check on the audio side once a tick; returns notices for the metrics log's events."""
        return []

    def health(self) -> dict:
        """Fields for the metrics log and HUD (``xruns``, ``audio_load``), when known."""
        return {}

    def close(self) -> None:
        """Stop sound and release the audio side."""

    def _command(self, kind: int, voice: int = 0, note: int = 0, value: float = 0.0,
                 *shown) -> None:
        """Send a command; ``shown`` is what the metrics log lists after its name."""
        self._sent.append([cmd.NAMES[kind], *shown])
        self._send(kind, voice, note, value)

    def _send(self, kind: int, voice: int, note: int, value: float) -> None:
        raise NotImplementedError


class NoAudio(AudioOut):
    """Sound switched off (``[audio] enabled = false``): commands are recorded, nothing plays."""

    def _send(self, kind, voice, note, value):
        pass
