"""The sampler: voices that play tables of the shared sample pool, by note or by command.

Notes (note_on) play the table in ``table`` at the note's pitch relative to ``root`` under the
show's tuning (``host.frequencies[note] / host.frequencies[root]``). A scene plays any table with
PLAY (its own gain, pitch ratio, pan, loop or one shot), stops it with STOP and, for a loop, queues
the next table with QUEUE: at its loop end the voice cross-fades into the new table's loop, so a
loop being recomputed elsewhere (the artificial ear) changes without a gap or a click.

Voices start at the start of the block after their command, rise over ``attack`` and fall over
``release`` from wherever they are; a voice stolen beyond ``polyphony`` or silenced by a panic
fades out in 5 ms. All per-sample work is one compiled call a block
(:func:`engine.audio.sampler_kernels.sampler_block`); the commands here only set numbers.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from engine.audio import command_ring as commands
from engine.audio import sampler_kernels
from engine.audio.instrument import Host, Instrument
from engine.audio.pool import CHANNELS

FADE = 0.005  # seconds: a stolen or panicked voice fades out over this


class SamplerSettings(BaseModel):
    """A sampler's table in the setlist (``[sound.instruments.NAME]``, ``kind = "sampler"``).

    Attributes:
        polyphony: voices sounding at once (1..512, default 32); one more steals the oldest
            released voice, else the oldest, which fades out in 5 ms.
        gain_db: the instrument's gain in dB (default 0).
        attack: seconds a voice takes to rise to full level (default 0.002; 0 = at once).
        release: seconds a released voice takes to fall from its level to silence (default 0.05).
        root: the MIDI note at which a table plays at its own pitch (default 60).
        table: the pool slot notes play (default -1 = none: notes are silent).
        loop: notes loop their table between the loop points (default False: one shot).
        loop_start: seconds into the table where the loop begins (default 0).
        loop_end: seconds into the table where the loop ends (default 0 = the table's end).
        crossfade: seconds over which a loop's end fades into its start (default 0.01).
        velocity_sensitivity: 0 = every note at full level; 1 = amplitude follows velocity
            squared (default 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    polyphony: int = Field(32, ge=1, le=512, description="voices")
    gain_db: float = Field(0.0, ge=-120.0, le=24.0, description="dB")
    attack: float = Field(0.002, ge=0.0, le=10.0, description="seconds")
    release: float = Field(0.05, ge=0.001, le=60.0, description="seconds")
    root: int = Field(60, ge=0, le=127, description="MIDI note")
    table: int = Field(-1, ge=-1, description="pool slot, -1 = none")
    loop: bool = False
    loop_start: float = Field(0.0, ge=0.0, description="seconds")
    loop_end: float = Field(0.0, ge=0.0, description="seconds, 0 = the table's end")
    crossfade: float = Field(0.01, ge=0.0, le=10.0, description="seconds")
    velocity_sensitivity: float = Field(1.0, ge=0.0, le=1.0)


class SamplerInstrument(Instrument):
    kind = "sampler"
    Settings = SamplerSettings
    parameters = ("gain_db", "attack", "release", "root", "table", "loop", "loop_start", "loop_end",
                  "crossfade")
    # What a SET may set each parameter to (values outside are clamped).
    _LIMITS = ((-120.0, 24.0), (0.0, 10.0), (0.001, 60.0), (0.0, 127.0), (-1.0, 1e9), (0.0, 1.0),
               (0.0, 1e6), (0.0, 1e6), (0.0, 10.0))

    def __init__(self, settings: SamplerSettings, host: Host) -> None:
        super().__init__(settings, host)
        self.polyphony = settings.polyphony
        # Spare slots hold stolen voices while they fade, so a new chord never waits for them.
        self.slots = slots = 2 * settings.polyphony + 8
        self.active = np.zeros(slots, bool)
        self.voice_id = np.full(slots, -1, np.int64)
        self.order = np.zeros(slots, np.int64)  # start sequence number: lower = older
        self.table = np.full(slots, -1, np.int64)
        self.next_table = np.full(slots, -1, np.int64)
        self.crossing = np.full(slots, -1, np.int64)
        self.position = np.zeros(slots)  # frames into the table
        self.ratio = np.ones(slots)  # table frames per output frame
        self.looping = np.zeros(slots, bool)
        self.level = np.zeros(slots)  # envelope 0..1
        self.level_step = np.zeros(slots)  # envelope change per frame
        self.amp = np.zeros(slots)  # linear gain (velocity or PLAY's value)
        self.pan = np.zeros(slots)
        self.released = np.zeros(slots, bool)
        self.held = np.zeros(slots, bool)  # note released while the pedal is down
        self.fading = np.zeros(slots, bool)
        self.values = np.array([float(getattr(settings, name)) for name in self.parameters])
        self._gain = 10.0 ** (settings.gain_db / 20.0)  # linear, where the last block ended
        self._pedal = False
        self._sequence = 0

    def _value(self, name: str) -> float:
        return float(self.values[self.parameters.index(name)])

    # Notes.
    def note_on(self, voice: int, note: int, velocity: float) -> None:
        if velocity <= 0.0:
            self.note_off(voice, note)
            return
        frequencies = self.host.frequencies
        root = int(self._value("root")) & 127
        ratio = float(frequencies[int(note) & 127] / frequencies[root])
        sensitivity = self.settings.velocity_sensitivity
        amp = 1.0 - sensitivity + sensitivity * min(1.0, velocity) ** 2
        self._start(voice, int(self._value("table")), amp, ratio, 0.0, bool(self._value("loop")))

    def note_off(self, voice: int, note: int) -> None:
        slots = np.flatnonzero(self.active & (self.voice_id == voice) & ~self.released & ~self.held)
        if self._pedal:
            self.held[slots] = True
        else:
            self._release(slots, self._value("release"))

    def sustain(self, down: bool) -> None:
        self._pedal = bool(down)
        if not down:
            held = np.flatnonzero(self.active & self.held)
            self.held[held] = False
            self._release(held, self._value("release"))

    def all_notes_off(self) -> None:
        self.held[:] = False
        self._release(np.flatnonzero(self.active & ~self.released), self._value("release"))

    def panic(self) -> None:
        self._pedal = False
        self.held[:] = False
        self.next_table[:] = -1
        for slot in np.flatnonzero(self.active & ~self.fading):
            self._fade_out(int(slot))

    def set(self, parameter: int, value: float) -> None:
        if 0 <= parameter < len(self.parameters) and np.isfinite(value):
            low, high = self._LIMITS[parameter]
            self.values[parameter] = min(high, max(low, value))

    def command(self, kind: int, voice: int, note: int, value: float, a: float, b: float,
                c: float) -> None:
        """PLAY: voice, note = table slot, value = linear gain, a = pitch ratio (<= 0 or not a
        number: 1), b = pan -1..1, c = flags (LOOP). STOP: voice or ALL_VOICES, value = release
        seconds (0 = the ``release`` setting). QUEUE: voice, note = the table slot its loop moves
        to at its next loop end (-1: none)."""
        if kind == commands.PLAY:
            ratio = a if np.isfinite(a) and a > 0.0 else 1.0
            pan = min(1.0, max(-1.0, b)) if np.isfinite(b) else 0.0
            self._start(voice, int(note), max(0.0, value), ratio, pan, bool(int(c) & commands.LOOP))
        elif kind == commands.STOP:
            seconds = value if value > 0.0 else self._value("release")
            chosen = self.active & ~self.released
            if voice != commands.ALL_VOICES:
                chosen &= self.voice_id == voice
            self._release(np.flatnonzero(chosen), seconds)
        elif kind == commands.QUEUE:
            chosen = np.flatnonzero(self.active & (self.voice_id == voice) & ~self.fading)
            self.next_table[chosen] = int(note) if self._valid(int(note)) else -1

    # Voices.
    def _valid(self, table: int) -> bool:
        pool = self.host.pool
        return (pool is not None and 0 <= table < pool.max_tables
                and pool.headers[table, CHANNELS] > 0)

    def _start(self, voice: int, table: int, amp: float, ratio: float, pan: float,
               loop: bool) -> None:
        if not self._valid(table):
            return
        for slot in np.flatnonzero(self.active & (self.voice_id == voice) & ~self.fading):
            self._fade_out(int(slot))  # the same voice again: the old one makes way
        live = self.active & ~self.fading
        if np.count_nonzero(live) >= self.polyphony:
            self._fade_out(self._victim(live))
        slot = self._free_slot()
        self._sequence += 1
        attack = self._value("attack") * self.host.sample_rate
        self.active[slot], self.voice_id[slot], self.order[slot] = True, voice, self._sequence
        self.table[slot], self.next_table[slot], self.crossing[slot] = table, -1, -1
        self.position[slot], self.ratio[slot], self.looping[slot] = 0.0, ratio, loop
        rising = attack >= 1.0  # an attack under a frame: at full level at once
        self.level[slot], self.level_step[slot] = (0.0, 1.0 / attack) if rising else (1.0, 0.0)
        self.amp[slot], self.pan[slot] = amp, pan
        self.released[slot] = self.held[slot] = self.fading[slot] = False

    def _release(self, slots: np.ndarray, seconds: float) -> None:
        """Fall from the level each voice is at to silence over ``seconds``."""
        frames = max(1.0, seconds * self.host.sample_rate)
        self.released[slots] = True
        self.held[slots] = False
        self.level_step[slots] = -np.maximum(self.level[slots], 1e-9) / frames
        self._free_unheard(slots)

    def _fade_out(self, slot: int) -> None:
        self.fading[slot] = self.released[slot] = True
        frames = max(1.0, FADE * self.host.sample_rate)
        self.level_step[slot] = -max(float(self.level[slot]), 1e-9) / frames
        self._free_unheard(np.array([slot]))

    def _free_unheard(self, slots: np.ndarray) -> None:
        """A voice stopped before it made a sound (level 0, started within this block) ends now."""
        silent = slots[self.level[slots] <= 0.0]
        self.active[silent] = False
        self.voice_id[silent] = -1

    def _victim(self, live: np.ndarray) -> int:
        """The voice to steal: the oldest released one, else the oldest."""
        chosen = live & self.released
        if not chosen.any():
            chosen = live
        candidates = np.flatnonzero(chosen)
        return int(candidates[np.argmin(self.order[candidates])])

    def _free_slot(self) -> int:
        free = np.flatnonzero(~self.active)
        if free.size:
            return int(free[0])
        fading = np.flatnonzero(self.fading)  # every slot busy: the fade nearest silence
        return int(fading[np.argmin(self.level[fading])])

    # Sound.
    def render(self, left: np.ndarray, right: np.ndarray) -> None:
        pool = self.host.pool
        if pool is None or not self.active.any():
            return
        rate = self.host.sample_rate
        values = self.values
        gain = 10.0 ** (values[0] / 20.0)
        sampler_kernels.sampler_block(
            left, right, pool.data, pool.headers, self.active, self.voice_id, self.table,
            self.next_table, self.crossing, self.position, self.ratio, self.looping, self.level,
            self.level_step, self.amp, self.pan, self._gain, gain, values[6] * rate,
            values[7] * rate, values[8] * rate)
        self._gain = gain

    def idle(self) -> bool:
        return not self.active.any()

    def sounding(self) -> int:
        return int(np.count_nonzero(self.active & ~self.fading))

    def warm_up(self) -> None:
        """Run every kernel path once (one shot, loop, queued cross-fade, mono and stereo, the
        release) on a small pool of its own, so numba's cache loads before the stream opens."""
        from engine.audio.pool import SamplePool

        pool = SamplePool.create(4096, max_tables=2)
        try:
            saved, self.host.pool = self.host.pool, pool
            mono, stereo = pool.allocate("mono", 512, 1), pool.allocate("stereo", 512, 2)
            pool.fill(mono, np.sin(np.arange(512) * 0.1))
            pool.fill(stereo, np.zeros((512, 2)))
            left, right = np.zeros(self.host.block_size), np.zeros(self.host.block_size)
            self.command(commands.PLAY, 1, mono, 1.0, 1.0, 0.0, 0.0)
            self.command(commands.PLAY, 2, mono, 1.0, 3.0, 0.0, commands.LOOP)
            self.command(commands.QUEUE, 2, stereo, 0.0, 0.0, 0.0, 0.0)
            for _ in range(4):
                self.render(left, right)
            self.command(commands.STOP, commands.ALL_VOICES, 0, 0.0, 0.0, 0.0, 0.0)
            self.render(left, right)
            self.panic()
            self.render(left, right)
        finally:
            self.host.pool = saved
            pool.close()
            self.active[:] = False
            self.voice_id[:] = -1
