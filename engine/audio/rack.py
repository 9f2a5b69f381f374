"""The rack: every instrument of a show, their buses, the bus gains, the tuning, the routing of the
MIDI input and the master limiter, driven by commands.

:meth:`Rack.apply` takes one command (see :mod:`engine.audio.command_ring`); :meth:`Rack.render`
produces the next block as interleaved float32 stereo. The live audio process and the offline
renderer call exactly these two methods, so identical command streams applied at identical block
boundaries give bit-identical audio.

Each instrument adds into its bus; each bus is scaled by its gain (ramped across a block when it
changes), the buses are summed in their order, the sum scaled by the master gain and limited.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from engine.audio import command_ring as cmd
from engine.audio import shared
from engine.audio.arena import Arena
from engine.audio.config import LEGACY_INSTRUMENT, MixerConfig
from engine.audio.instrument import Host, Instrument, instrument_class
from engine.audio.limiter import SoftLimiter
from engine.audio.rack_block import (KERNEL_FIELDS, MEMBERS, QUIET, RACK_FIELDS, ZEROS,
                                     granulator_callback, granulator_rack, rack_arrays)
from engine.audio.tuning import cent_offsets, frequencies_from_offsets
from engine.errors import UserError

log = logging.getLogger("showrunner.audio")

MASTER = "master"
HELD_VOICES = 16 * 128  # note voice ids (channel * 128 + note) whose instruments the rack tracks
# "off": every rack renders in Python (the compiled block, engine.audio.rack_block, unused): for
# comparing the two.
COMPILED = os.environ.get("SHOWRUNNER_COMPILED_RACK", "on") != "off"


def db_to_gain(db: float) -> float:
    return 0.0 if db <= -120.0 else float(10.0 ** (db / 20.0))


class InstrumentSpec(BaseModel):
    """One instrument of the rack: its name (what scenes and cues call it), its kind (registered
    instrument class), the bus it plays into and its settings (validated by the kind's model)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str
    bus: str
    settings: dict[str, Any] = Field(default_factory=dict)


class RackConfig(BaseModel):
    """Everything the audio process needs to build the rack (sent to it as JSON).

    Attributes:
        sample_rate: Hz; block_size: frames per block.
        tuning, tuning_root, reference_hz, reference_note: the show's tuning (see MixerConfig).
        master_gain_db: the master bus, in dB, before the limiter.
        buses: bus name -> gain in dB, in the order they are summed.
        instruments: in slot order (a command's target is the slot).
        notes: names of the instruments the MIDI input plays when the show starts.
        pool: the shared sample pool's file (live), or None.
        modules: modules to import before building (a piece's own instruments register there).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_rate: int = Field(48000, ge=8000, le=192000)
    block_size: int = Field(256, ge=16, le=8192)
    tuning: Literal["equal", "just", "pythagorean"] | list[float] = "equal"
    tuning_root: int = Field(0, ge=0, le=11)
    reference_hz: float = 440.0
    reference_note: int = 69
    master_gain_db: float = 0.0
    buses: dict[str, float] = Field(default_factory=dict)
    instruments: list[InstrumentSpec] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    pool: str | None = None
    modules: list[str] = Field(default_factory=list)

    def slot(self, name: str) -> int:
        """The slot of the instrument called ``name``; KeyError when there is none."""
        for index, spec in enumerate(self.instruments):
            if spec.name == name:
                return index
        raise KeyError(name)

    def bus_index(self, name: str) -> int:
        """A bus's index in GAIN commands: 0 is the master, then the buses in order."""
        if name == MASTER:
            return 0
        return 1 + list(self.buses).index(name)

    def bus_names(self) -> list[str]:
        return [MASTER, *self.buses]


def piece_modules(instruments: list[InstrumentSpec]) -> list[str]:
    """The modules of the instruments a piece brings (the audio process imports them before it
    builds the rack; the engine's own are always there)."""
    return sorted({module for module in (instrument_class(spec.kind).__module__ for spec in instruments)
                   if not module.startswith("engine.")})


def legacy_rack_config(config: MixerConfig, piano: bool) -> RackConfig:
    """The rack a setlist without a [sound] table gets: the instrument of kind "overtones" (the
    first piece's voice, found by kind among the installed pieces) on the "overtones" bus, with the
    settings ``config`` holds for it, and (when ``piano``) the additive piano on the "piano" bus,
    both played by every note: the overtone mixer as it was, sample for sample. A
    :class:`UserError` when no installed piece brings the kind."""
    settings = config.instrument_settings()
    instruments = [InstrumentSpec(name=LEGACY_INSTRUMENT, kind=LEGACY_INSTRUMENT,
                                  bus=LEGACY_INSTRUMENT, settings=settings)]
    if piano:  # [audio]'s polyphony and spread have always been the piano's too
        instruments.append(InstrumentSpec(name="piano", kind="piano", bus="piano",
                                          settings={key: settings[key] for key in ("polyphony", "spread")
                                                    if key in settings}))
    try:
        modules = piece_modules(instruments)
    except KeyError:
        raise UserError(missing_legacy_instrument()) from None
    return RackConfig(
        sample_rate=config.sample_rate, block_size=config.block_size, tuning=config.tuning,
        tuning_root=config.tuning_root, reference_hz=config.reference_hz,
        reference_note=config.reference_note, master_gain_db=config.master_gain_db,
        buses={LEGACY_INSTRUMENT: config.overtone_gain_db, "piano": config.piano_gain_db},
        instruments=instruments, notes=[spec.name for spec in instruments], modules=modules)


def missing_legacy_instrument() -> str:
    """What to say when no installed piece brings the legacy rack's instrument."""
    from engine import pieces

    return (f"without a [sound] table the show plays an instrument of kind '{LEGACY_INSTRUMENT}', "
            f"which no installed piece brings (installed pieces: "
            f"{', '.join(sorted(pieces.installed())) or 'none'}); install the piece that brings it "
            f"or give the setlist a [sound] table")


class Rack:
    """Args: config: what to build; pool: the shared sample pool instruments read (or None)."""

    def __init__(self, config: RackConfig, pool=None) -> None:
        self.config = config
        self.sample_rate = config.sample_rate
        self.block_size = n = config.block_size
        self.pool = pool
        for module in config.modules:  # a piece's instruments (the audio process imports them here)
            importlib.import_module(module)
        self.tuning_offsets = cent_offsets(config.tuning, config.tuning_root)
        self.note_hz = np.zeros(128)  # notes retuned to a frequency of their own (TUNE_NOTE); 0: none
        self.host = Host(config.sample_rate, n, self._frequencies(), pool)
        self.instruments: list[Instrument] = []
        for spec in config.instruments:
            cls = instrument_class(spec.kind)
            self.instruments.append(cls(cls.Settings.model_validate(spec.settings), self.host))
        self.names = [spec.name for spec in config.instruments]
        self.broken = [False] * len(self.instruments)  # raised once: silent from then on
        self.bus_names = config.bus_names()
        self.bus_of = [self.bus_names.index(spec.bus) for spec in config.instruments]
        self.limiter = SoftLimiter(config.sample_rate, n)
        targets = [db_to_gain(config.master_gain_db), *(db_to_gain(db) for db in config.buses.values())]
        # The master's and each bus's gain: where it is (row 0) and where it goes (row 1); the
        # next block ramps it there.
        self._gains = np.array([targets, targets], np.float64)
        # The buses in mix order, each with the instruments that play into it and a buffer (a
        # row of one array: the compiled block takes them all).
        self._bus_buffers = np.zeros((len(self.bus_names) - 1, 2, n))
        self._members = [[i for i, bus in enumerate(self.bus_of) if bus == index]
                         for index in range(1, len(self.bus_names))]
        self.routes = [self.names.index(name) for name in config.notes]
        # Per note voice: a bit per instrument slot that took its note-on, so its note-off reaches
        # the instruments that play it even when the routing changed in between.
        self._held = np.zeros(HELD_VOICES, np.int64)
        self._ramp = np.arange(1, n + 1, dtype=np.float64) / n
        self._rate = float(config.sample_rate)
        self._out = np.zeros((n, 2), np.float32)
        self._zeros = np.zeros((2, n))
        self.quiet = False  # the last block was silent with nothing moving (render's fast path)
        self.on_wire = None  # called after the fast paths change (an instrument failed)
        self._rendering = self._rewire = False  # an instrument failed in render: rewire after it
        self._mix_row = 0
        self._wire()

    def _frequencies(self) -> np.ndarray:
        frequencies = frequencies_from_offsets(self.tuning_offsets, self.config.reference_hz,
                                               self.config.reference_note)
        retuned = self.note_hz > 0
        frequencies[retuned] = self.note_hz[retuned]
        return frequencies

    @property
    def bus_gain(self) -> list[float]:
        """The master's and each bus's gain now (linear)."""
        return self._gains[0].tolist()

    @property
    def bus_target(self) -> list[float]:
        """The gains they are moving to (linear): set by GAIN, reached at the next block's end."""
        return self._gains[1].tolist()

    def instrument(self, name: str) -> Instrument:
        return self.instruments[self.names.index(name)]

    # Commands.
    def apply_record(self, record) -> None:
        """Carry out a command as the ring holds it: (kind, target, voice, note, value, a, b, c).
        One whose integer fields are not finite numbers is dropped (it came from a bug upstream;
        the commands after it still play)."""
        kind, target, voice, note, value, a, b, c = record
        if not math.isfinite(kind + target + voice + note):  # one check in the callback, not four
            return
        self.apply(int(kind), int(voice), int(note), float(value), int(target), float(a),
                   float(b), float(c))

    def apply(self, kind: int, voice: int = 0, note: int = 0, value: float = 0.0,
              target: int | None = None, a: float = 0.0, b: float = 0.0, c: float = 0.0) -> None:
        """Carry out one command now (between blocks). ``target`` None: the kind's usual target
        (:data:`engine.audio.command_ring.DEFAULT_TARGET`). Unknown kinds and targets are ignored."""
        if target is None:
            target = cmd.DEFAULT_TARGET.get(kind, cmd.EVERY)
        if target == cmd.RACK:
            self._rack_command(kind, voice, value)
            return
        if kind == cmd.NOTE_ON:
            velocity = min(1.0, max(0.0, value / 127.0))
            if velocity <= 0.0:
                self.apply(cmd.NOTE_OFF, voice, note, 0.0, target)
                return
            slots = self._targets(target)
            if 0 <= voice < HELD_VOICES:
                mask = 0
                for slot in slots:
                    mask |= 1 << slot
                self._held[voice] |= mask
            for slot in slots:
                self._call(slot, "note_on", voice, note, velocity)
        elif kind == cmd.NOTE_OFF:
            slots = self._targets(target)
            if target == cmd.ROUTED and 0 <= voice < HELD_VOICES:
                held = int(self._held[voice])
                slots = [slot for slot in range(len(self.instruments)) if held >> slot & 1] or slots
                self._held[voice] = 0
            for slot in slots:
                self._call(slot, "note_off", voice, note)
        elif kind == cmd.SUSTAIN:
            down = value >= 64
            # The pedal lifts everywhere (a note held by it must never hang); it goes down where
            # the input plays.
            for slot in (self._targets(target) if down else self._targets(cmd.EVERY)):
                self._call(slot, "sustain", down)
        elif kind == cmd.ALL_NOTES_OFF:
            for slot in self._targets(cmd.EVERY if target == cmd.ROUTED else target):
                self._call(slot, "all_notes_off")
        elif kind == cmd.PANIC:
            for slot in self._targets(target):
                self._call(slot, "panic")
        elif kind == cmd.SET:
            for slot in self._targets(target):
                self._call(slot, "set", note, value)
        else:
            for slot in self._targets(target):
                self._call(slot, "command", kind, voice, note, value, a, b, c)

    def _call(self, slot: int, hook: str, *args) -> None:
        if self.broken[slot]:
            return
        try:
            getattr(self.instruments[slot], hook)(*args)
        except Exception:
            self._break(slot, hook)

    def _break(self, slot: int, hook: str) -> None:
        """An instrument raised: it is silent from now on, the others play on (the fast paths
        rebuilt at once, or after the block when it raised in one: render holds them)."""
        self.broken[slot] = True
        if self._rendering:
            self._rewire = True
        else:
            self._wire()
        log.exception("instrument '%s' (%s) failed in %s; it is silent from now on, the rest of "
                      "the rack plays on", self.names[slot], type(self.instruments[slot]).__name__, hook)

    def _targets(self, target: int) -> list[int]:
        if target == cmd.ROUTED:
            return self.routes
        if target == cmd.EVERY:
            return list(range(len(self.instruments)))
        return [target] if 0 <= target < len(self.instruments) else []

    def _rack_command(self, kind: int, voice: int, value: float) -> None:
        if kind == cmd.GAIN:
            gains = self._gains
            if 0 <= voice < gains.shape[1] and np.isfinite(value):
                gains[1, voice] = db_to_gain(min(value, 24.0))
                if voice > 0 and not self._members[voice - 1]:  # no instrument: nothing to ramp
                    gains[0, voice] = gains[1, voice]
        elif kind == cmd.TUNE:
            if 0 <= voice < 12 and np.isfinite(value) and abs(value) <= 1200:
                self.tuning_offsets[voice] = float(value)
                self.host.frequencies = self._frequencies()
        elif kind == cmd.TUNE_NOTE:
            if 0 <= voice < 128 and np.isfinite(value) and 0.0 <= value <= 20000.0:
                self.note_hz[voice] = float(value)
                self.host.frequencies = self._frequencies()
        elif kind == cmd.ROUTE:
            if voice == cmd.ALL_VOICES:
                self.routes = []
            elif 0 <= voice < len(self.instruments):
                routes = [slot for slot in self.routes if slot != voice]
                self.routes = sorted(routes + [voice]) if value >= 0.5 else routes
        elif kind == cmd.SWAP:
            if self.pool is not None and 0 <= voice < self.pool.max_tables:
                self.pool.swap(voice)

    # Audio.
    def render(self) -> np.ndarray:
        """The next block: a (block_size, 2) float32 array (reused: copy it to keep it)."""
        if self._compiled is not None:
            return self._render_compiled()
        if self._silent():
            self._out.fill(0.0)
            self.quiet = True
            return self._out
        self.quiet = False
        mix = None
        gains = self._gains
        for index, renders, bus, left, right in self._playing:
            if not renders:
                gains[0, index] = gains[1, index]
                continue
            bus.fill(0.0)
            for render in renders:
                try:
                    render(left, right)
                except Exception:  # silenced from the next block on; the others play on
                    self._rendering = True
                    self._break(self._render_slot(render), "render")
            self._scale(bus, index)
            if mix is None:
                mix = bus
            else:
                mix += bus
        if mix is None:
            mix = self._zeros
        start = gains[0, 0]  # the master gain, the limiter and the output in one compiled call
        gains[0, 0] = end = gains[1, 0]
        self.limiter.finish(mix, self._out, start, end)
        if self._rendering:  # an instrument failed in this block: the paths rebuilt after it
            self._rendering = False
            if self._rewire:
                self._rewire = False
                self._wire()
        return self._out

    def _render_compiled(self) -> np.ndarray:
        """:meth:`render` in one compiled call (:mod:`engine.audio.rack_block`); the knee, when a
        block needs it, in Python as :meth:`SoftLimiter.finish` applies it."""
        pool = self.pool
        status, mix = granulator_rack(*self._compiled, self._rate, pool.data, pool.headers)
        self.quiet = status == QUIET
        if status == 1:
            self.limiter.bend(self._zeros if mix == ZEROS else self._bus_buffers[mix], self._out)
        return self._out

    @property
    def fused(self) -> tuple | None:
        """What :func:`engine.audio.rack_block.granulator_callback` takes after the start time
        (the arena, its layout, the rate, the pool's data and headers), when the rack renders in
        one compiled call; else None."""
        if self._compiled is None:
            return None
        return (*self._compiled, self._rate, self.pool.data, self.pool.headers)

    @property
    def out(self) -> np.ndarray:
        """The block :meth:`render` and the compiled callback write ((N, 2) float32)."""
        return self._out

    def bend_compiled(self) -> None:
        """The limiter's knee on the mix the compiled block left (it said KNEE), into ``out``."""
        self.limiter.bend(self._bus_buffers[self._mix_row], self._out)

    def _silent(self) -> bool:
        """Nothing sounds and nothing is moving: the block is zeros (the idle callback's cost is
        what a show pays between notes)."""
        for idle in self._idle_checks:
            if not idle():
                return False
        gains = self._gains
        return self.limiter.gain == 1.0 and bool((gains[0] == gains[1]).all())

    def _wire(self) -> None:
        """The callback's fast paths, over the instruments that have not failed: each bus's render
        methods and its two channel views, and every idle check (rebuilt when one fails)."""
        working = [slot for slot, broken in enumerate(self.broken) if not broken]
        # The whole block in one compiled call when every working instrument has the rack's
        # compiled kernel (a rack of granulators playing from a pool), over one arena holding
        # the rack's arrays and theirs (engine.audio.arena: two arguments, not dozens).
        self._compiled = None
        if COMPILED and self.pool is not None and working and all(
                getattr(self.instruments[slot], "rack_kernel", None) == "granulator" for slot in working):
            members = np.array([self.bus_of[slot] - 1 for slot in working], np.int64)
            arena = Arena(rack_arrays(self._bus_buffers, self._gains, self._ramp, self.limiter.state,
                                      self._zeros, self._out, members,
                                      [self.instruments[slot].kernel_state() for slot in working]))
            views = arena.views
            (self._bus_buffers, self._gains, self._ramp, self.limiter.state, self._zeros,
             self._out) = views[:MEMBERS]  # (members: the compiled block's alone)
            for k, slot in enumerate(working):
                start = RACK_FIELDS + k * KERNEL_FIELDS
                self.instruments[slot].adopt_kernel_state(views[start:start + KERNEL_FIELDS])
            self._compiled = (arena.buffer, arena.layout)
            self._mix_row = int(members.min())  # the first bus in mix order: where it sums them
        self._buses = [(index, members, self._bus_buffers[index - 1])
                       for index, members in enumerate(self._members, start=1)]
        self._idle_checks = [self.instruments[slot].idle for slot in working]
        self._playing = [(index, [self.instruments[slot].render for slot in members if slot in working],
                          bus, bus[0], bus[1]) for index, members, bus in self._buses]
        if self.on_wire is not None:
            self.on_wire()

    def _render_slot(self, render) -> int:
        return next(slot for slot, instrument in enumerate(self.instruments)
                    if instrument.render == render)

    def _scale(self, bus: np.ndarray, index: int) -> None:
        gains = self._gains
        start, end = gains[0, index], gains[1, index]
        if start == end:
            if start != 1.0:
                bus *= start
        else:
            bus *= start + (end - start) * self._ramp
            gains[0, index] = end

    def voices_sounding(self) -> int:
        return sum(instrument.sounding() for instrument in self.instruments)

    def warm_up(self) -> None:
        """First-use costs of every instrument (compiled kernels loading) paid now, on throwaway
        instruments built like these: before a stream opens, never in the callback."""
        probe = Rack(self.config, self.pool)
        for instrument in probe.instruments:
            instrument.warm_up()
        probe.render()
        probe.limiter.reduction_db  # the HUD's report, compiled: loaded now
        if probe.fused is not None:  # the audio callback's whole block, on scratch shared memory
            granulator_callback(0.0, *probe.fused, np.zeros(shared.SIZE, np.uint8), 1.0)


def overtone_rack(config: MixerConfig, piano: bool = False) -> Rack:
    """The overtone mixer as it was (overtones, and the piano when ``piano``) as a rack."""
    return Rack(legacy_rack_config(config, piano))
