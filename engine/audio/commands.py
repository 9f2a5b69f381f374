"""Commands from the engine to the mixer, and the shared-memory ring that carries them live.

A command is four numbers: ``(kind, voice, note, value)``. Voice ids are ``channel * 128 + note``
by convention (:func:`voice_id`), so the engine and the audio process's own MIDI reader name the
same voice the same way.

The ring is a single-producer, single-consumer queue in a memory-mapped file (in /dev/shm): the
engine appends under a lock; the audio callback takes everything pending without locking, blocking
or allocating more than one small array. When the ring is full (the audio process stalled or
dead) a command is dropped and counted: the engine never waits for audio.
"""

from __future__ import annotations

import threading

import numpy as np

from engine.midi import SUSTAIN as SUSTAIN_PEDAL
from engine.midi import ControlChange, NoteOff, NoteOn

NOTE_ON = 1  # voice, note, value = velocity 1..127
NOTE_OFF = 2  # voice
DETUNE = 3  # voice (or ALL_VOICES), value = detune d (partial k >= 2 at k * f * (1 + d))
GAIN = 4  # voice = bus index in BUSES, value = dB
SUSTAIN = 5  # value = pedal position 0..127
ALL_NOTES_OFF = 6
PANIC = 7  # every voice fades out in 5 ms, detune back to 0, pedal up
TUNE = 8  # voice = pitch class 0..11, value = cents from equal temperament (for later notes)

ALL_VOICES = -1
BUSES = ("master", "overtones", "piano")
ALL_SOUND_OFF, ALL_NOTES_OFF_CONTROLLER = 120, 123  # controller numbers
NAMES = {NOTE_ON: "note_on", NOTE_OFF: "note_off", DETUNE: "detune", GAIN: "gain",
         SUSTAIN: "sustain", ALL_NOTES_OFF: "all_notes_off", PANIC: "panic", TUNE: "tune"}
FIELDS = 4


def voice_id(note: int, channel: int = 0) -> int:
    return channel * 128 + note


def midi_command(event) -> tuple[int, int, int, float] | None:
    """The command a performed MIDI event asks of the mixer (note on / off, sustain pedal, all
    notes off), or None: one mapping for the engine and for the audio process's own MIDI reader."""
    if isinstance(event, NoteOn):
        return NOTE_ON, voice_id(event.note, event.channel), event.note, float(event.velocity)
    if isinstance(event, NoteOff):
        return NOTE_OFF, voice_id(event.note, event.channel), event.note, 0.0
    if isinstance(event, ControlChange):
        if event.control == SUSTAIN_PEDAL:
            return SUSTAIN, 0, 0, float(event.value)
        if event.control in (ALL_SOUND_OFF, ALL_NOTES_OFF_CONTROLLER):
            return ALL_NOTES_OFF, 0, 0, 0.0
    return None


class CommandRing:
    """Args: header: int64 array of two counters (written, read), shared; records: (capacity, 4)
    float64 array, shared. Use :class:`engine.audio.shared.SharedAudioState` to create both."""

    def __init__(self, header: np.ndarray, records: np.ndarray) -> None:
        self.header = header
        self.records = records
        self.capacity = records.shape[0]
        self.dropped = 0
        self._lock = threading.Lock()

    def push(self, kind: int, voice: int = 0, note: int = 0, value: float = 0.0) -> bool:
        """Append a command (producer side, any thread); False when the ring is full."""
        with self._lock:
            written, read = int(self.header[0]), int(self.header[1])
            if written - read >= self.capacity:
                self.dropped += 1
                return False
            self.records[written % self.capacity] = (kind, voice, note, value)
            self.header[0] = written + 1  # published after the record is in place
            return True

    def take(self) -> np.ndarray:
        """Every pending command as a (n, 4) array, oldest first (consumer side)."""
        written, read = int(self.header[0]), int(self.header[1])
        if written == read:
            return self.records[:0]
        start, end = read % self.capacity, written % self.capacity
        if start < end:
            pending = self.records[start:end].copy()
        else:
            pending = np.concatenate([self.records[start:], self.records[:end]])
        self.header[1] = written
        return pending

    def skip_pending(self) -> None:
        """Forget what is queued (a restarted audio process must not play stale notes)."""
        self.header[1] = self.header[0]

    def __len__(self) -> int:
        return int(self.header[0] - self.header[1])
