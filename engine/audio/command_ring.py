"""Commands from the engine to the rack, and the shared-memory ring that carries them live.

A command is eight numbers: ``(kind, target, voice, note, value, a, b, c)``. ``target`` says who
carries it out: an instrument's slot in the rack (0, 1, ...), :data:`ROUTED` (the instruments the
MIDI input plays in this cue), :data:`EVERY` (every instrument) or :data:`RACK` (the rack itself:
bus gains, tuning, routing, table swaps). Voice ids are ``channel * 128 + note`` by convention
(:func:`voice_id`), so the engine and the audio process's own MIDI reader name the same voice the
same way; a scene's own voices use ids from :data:`SCENE_VOICES` up.

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

# Played notes and the pedal (target: an instrument, ROUTED or EVERY).
NOTE_ON = 1  # voice, note, value = velocity 1..127
NOTE_OFF = 2  # voice, note
DETUNE = 3  # voice (or ALL_VOICES), value = detune d (the overtones: partial k >= 2 at k f (1 + d))
GAIN = 4  # RACK: voice = bus index (0 = master), value = dB
SUSTAIN = 5  # value = pedal position 0..127
ALL_NOTES_OFF = 6
PANIC = 7  # every voice fades out in 5 ms, detune back to 0, pedal up
TUNE = 8  # RACK: voice = pitch class 0..11, value = cents from equal temperament (for later notes)
ROUTE = 9  # RACK: voice = instrument slot, value = 1 (the MIDI input plays it) or 0; voice -1: none
SET = 10  # an instrument: note = parameter index (its ``parameters``), value
PLAY = 11  # an instrument: voice, note = table slot, value = gain, a = pitch ratio, b = pan, c = flags
STOP = 12  # an instrument: voice (ALL_VOICES = every voice); value = release seconds (0 = its own)
QUEUE = 13  # an instrument: voice, note = table slot the voice moves to at its next loop end
SWAP = 14  # RACK: voice = pool slot: its back buffer becomes the one played, from this block on
TUNE_NOTE = 15  # RACK: voice = MIDI note 0..127, value = its fundamental in Hz (0: the tuning's again)
# The granulator's own (engine.audio.instruments.granulator): one grain; a salad table.
GRAIN, SALAD_TABLE = 32, 33

ROUTED, EVERY, RACK = -1, -2, -3  # targets other than an instrument's slot
ALL_VOICES = -1
LOOP = 1  # PLAY flag: loop the table (else one shot)
SCENE_VOICES = 1 << 16  # voice ids a scene picks for its own sounds start here
ALL_SOUND_OFF, ALL_NOTES_OFF_CONTROLLER = 120, 123  # controller numbers
NAMES = {NOTE_ON: "note_on", NOTE_OFF: "note_off", DETUNE: "detune", GAIN: "gain",
         SUSTAIN: "sustain", ALL_NOTES_OFF: "all_notes_off", PANIC: "panic", TUNE: "tune",
         ROUTE: "route", SET: "set", PLAY: "play", STOP: "stop", QUEUE: "queue", SWAP: "swap",
         TUNE_NOTE: "tune_note", GRAIN: "grain", SALAD_TABLE: "salad_table"}
FIELDS = 8
# The target a command has when the sender names none: what every command did before the rack.
DEFAULT_TARGET = {NOTE_ON: ROUTED, NOTE_OFF: ROUTED, SUSTAIN: ROUTED, ALL_NOTES_OFF: ROUTED,
                  DETUNE: EVERY, PANIC: EVERY, GAIN: RACK, TUNE: RACK, ROUTE: RACK, SWAP: RACK,
                  TUNE_NOTE: RACK}


def voice_id(note: int, channel: int = 0) -> int:
    return channel * 128 + note


def midi_command(event) -> tuple[int, int, int, float] | None:
    """The command a performed MIDI event asks of the routed instruments (note on / off, sustain
    pedal, all notes off), or None: one mapping for the engine and for the audio process's own
    MIDI reader."""
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
    """Args: header: int64 array of two counters (written, read), shared; records: (capacity, 8)
    float64 array, shared. Use :class:`engine.audio.shared.SharedAudioState` to create both."""

    def __init__(self, header: np.ndarray, records: np.ndarray) -> None:
        self.header = header
        self.records = records
        self.capacity = records.shape[0]
        self.dropped = 0
        self._lock = threading.Lock()

    def push(self, kind: int, voice: int = 0, note: int = 0, value: float = 0.0,
             target: int | None = None, a: float = 0.0, b: float = 0.0, c: float = 0.0) -> bool:
        """Append a command (producer side, any thread); False when the ring is full."""
        if target is None:
            target = DEFAULT_TARGET.get(kind, EVERY)
        with self._lock:
            written, read = int(self.header[0]), int(self.header[1])
            if written - read >= self.capacity:
                self.dropped += 1
                return False
            self.records[written % self.capacity] = (kind, target, voice, note, value, a, b, c)
            self.header[0] = written + 1  # published after the record is in place
            return True

    def take(self) -> np.ndarray:
        """Every pending command as a (n, 8) array, oldest first (consumer side)."""
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
