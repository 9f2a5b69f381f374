"""The granulator: clouds of short grains read from tables of the shared sample pool.

A note starts a **cloud** that spawns grains, at the note's pitch relative to ``root`` under the
show's tuning (``host.frequencies[note] / host.frequencies[root]``), at a level set by its
velocity. How it spawns them is the ``mode``:

- ``cloud``: grains at ``density`` per second, ``async`` (each onset drawn in its own period, by
  ``jitter``), ``sync`` (regular) or on the ``tempo`` grid; each grain with its own random
  position, duration, pitch and pan around the parameters.
- ``hold``: one grain one step long (60 / (tempo x division) seconds, or the whole table when
  shorter), repeated back to back: a held, pulsing tone (the talk's ``grain_hold``).
- ``pulse``: the same grain, ``pulse_length`` long, once a step: a rhythmic pulse (``short_pulse``).
- ``salad``: a stereo stream of long grains from a list of tables (``salad``; see
  :func:`engine.audio.grain_schedulers._salad_step`), its choices counted in :attr:`salad_stats`.

A note-off stops the cloud spawning; the grains already sounding finish, so nothing clicks. A
scene fires grains of its own with the GRAIN command (a VAE decoding grains into a table), and
changes the salad's table list with SALAD_TABLE. Per-grain parameters apply from the next grain
(each grain is windowed: a change never zippers); the gain ramps over a block. All per-sample
work is two compiled calls a block (:mod:`engine.audio.grain_schedulers` starts grains,
:mod:`engine.audio.granular_kernels` renders them).
"""

from __future__ import annotations

import numpy as np

from engine.audio import command_ring as cmd
from engine.audio import grain_schedulers as schedulers
from engine.audio import granular_kernels as kernels
from engine.audio.granulator_settings import (
    CHOICES, LIMITS, MAX_SALAD_TABLES, TABLE_SETTINGS, WHOLE, GranulatorSettings)
from engine.audio.instrument import Host, Instrument

__all__ = ["GRAIN", "SALAD_TABLE", "GranulatorInstrument", "GranulatorSettings"]

# The granulator's own command kinds (the rack passes them to ``command``; see command_ring).
GRAIN = cmd.GRAIN  # voice = delay in frames from the next block's start, note = table slot, value = gain
# (linear), a = start (seconds into the table), b = duration (seconds), c = pitch ratio
SALAD_TABLE = cmd.SALAD_TABLE  # voice = index in the salad's list, note = table slot (-1: the list ends
# before this index), value = the slot of its harmonic part (-1: none)
PANIC_FADE = 0.005  # seconds: panic fades every grain out over this
MAX_DELAY = 60.0  # seconds: the furthest ahead GRAIN schedules a grain


def _scalar(index: int, kind: type):
    """A property over one of the instrument's scalars (:data:`grain_schedulers.S_GAIN`, ...),
    which the compiled block reads and writes where the Python side does."""
    def get(self):
        return kind(self.scalars[index])

    def put(self, value) -> None:
        self.scalars[index] = value

    return property(get, put)


class GranulatorInstrument(Instrument):
    kind = "granulator"
    Settings = GranulatorSettings
    parameters = schedulers.PARAMETERS
    choices = CHOICES  # parameters set by name (SET sends the name's index)
    table_settings = TABLE_SETTINGS  # settings naming pool tables
    view_fields = kernels.VIEW_FIELDS  # a row per sounding grain (see kernels.grain_view)
    _LIMITS = tuple(LIMITS[name] for name in schedulers.PARAMETERS)
    rack_kernel = "granulator"  # the rack plays it in its compiled block (engine.audio.rack_block)
    _gain = _scalar(schedulers.S_GAIN, float)  # linear, where the last block ended
    _level = _scalar(schedulers.S_LEVEL, float)  # linear, the setting now (kept where it changes)
    _grains = _scalar(schedulers.S_GRAINS, int)  # active grains after the last change
    _spawning = _scalar(schedulers.S_SPAWNING, bool)  # any cloud spawning (spawning.any())
    salad_count = _scalar(schedulers.S_SALAD_COUNT, int)  # tables in the salad's list

    def __init__(self, settings: GranulatorSettings, host: Host) -> None:
        super().__init__(settings, host)
        self.scalars = np.zeros(schedulers.SCALARS)
        self.values = np.array([self.parameter_number(name, getattr(settings, name))
                                for name in self.parameters], np.float64)
        self.grains = np.zeros((settings.max_grains, kernels.GRAIN_FIELDS))
        self.active = np.zeros(settings.max_grains, bool)
        self.clouds = np.zeros((settings.polyphony, schedulers.CLOUD_FIELDS))
        self.spawning = np.zeros(settings.polyphony, bool)
        self.voice_id = np.full(settings.polyphony, -1, np.int64)
        self.order = np.zeros(settings.polyphony, np.int64)  # start sequence: lower = older
        self.held = np.zeros(settings.polyphony, bool)  # released while the pedal is down
        self.salad_tables = np.full(MAX_SALAD_TABLES, -1, np.int64)
        self.salad_harmonics = np.full(MAX_SALAD_TABLES, -1, np.int64)
        self.salad_count = len(settings.tables)
        self.salad_tables[:self.salad_count] = [self._slot(t) for t in settings.tables]
        self.salad_harmonics[:len(settings.harmonic_tables)] = [
            self._slot(t) for t in settings.harmonic_tables]
        self.rng = np.array([settings.seed], np.uint64)
        self.counters = np.zeros(kernels.COUNTERS, np.int64)
        self.cursor = np.zeros(1, np.int64)
        self.hann = kernels.hann_table()
        # The kernel's scratch space: a grain's window, the grains' sum before the gain ramp.
        self._scratch = np.zeros((3, host.block_size))
        self._gain = 10.0 ** (settings.gain_db / 20.0)
        self._level = self._gain_of_values()
        self._pedal = False
        self._sequence = 0

    def _slot(self, table: str | int) -> int:
        """A pool slot from a table's name, or a slot as it is; -1 (none: silent) for "" or a
        name the pool lacks (a setlist with one does not load), so the audio side never fails."""
        if not isinstance(table, str):
            return int(table)
        pool = self.host.pool
        return -1 if pool is None else pool.names().get(table, -1)

    def _value(self, index: int) -> float:
        return float(self.values[index])

    @property
    def salad_stats(self) -> dict[str, int]:
        """Salad steps played so far and how many of them silenced the left grain, the right
        grain, or played the harmonic part."""
        counters = self.counters
        return {"steps": int(counters[kernels.STEPS]),
                "silenced_left": int(counters[kernels.SILENCED_LEFT]),
                "silenced_right": int(counters[kernels.SILENCED_RIGHT]),
                "harmonic": int(counters[kernels.HARMONIC])}

    @property
    def grains_started(self) -> int:
        return int(self.counters[kernels.SPAWNED])

    @property
    def grains_dropped(self) -> int:
        """Grains that found every slot busy (raise ``max_grains``)."""
        return int(self.counters[kernels.DROPPED])

    # Notes.
    def note_on(self, voice: int, note: int, velocity: float) -> None:
        if velocity <= 0.0:
            self.note_off(voice, note)
            return
        self._stop(np.flatnonzero(self.spawning & (self.voice_id == voice)))
        if not (~self.spawning).any():
            self._stop(np.array([self._victim()]))
        cloud = int(np.flatnonzero(~self.spawning)[0])
        frequencies = self.host.frequencies
        root = int(self._value(schedulers.ROOT)) & 127
        sensitivity = self.settings.velocity_sensitivity
        row = self.clouds[cloud]
        row[schedulers.C_RATIO] = frequencies[int(note) & 127] / frequencies[root]
        row[schedulers.C_AMP] = 1.0 - sensitivity + sensitivity * min(1.0, velocity) ** 2
        row[schedulers.C_NEXT] = row[schedulers.C_GRID] = row[schedulers.C_SCAN] = 0.0
        self._sequence += 1
        self.spawning[cloud], self.voice_id[cloud], self.order[cloud] = True, voice, self._sequence
        self.held[cloud] = False
        self._spawning = True

    def note_off(self, voice: int, note: int) -> None:
        clouds = np.flatnonzero(self.spawning & (self.voice_id == voice) & ~self.held)
        if self._pedal:
            self.held[clouds] = True
        else:
            self._stop(clouds)

    def sustain(self, down: bool) -> None:
        self._pedal = bool(down)
        if not down:
            self._stop(np.flatnonzero(self.held))

    def all_notes_off(self) -> None:
        self._stop(np.flatnonzero(self.spawning))

    def panic(self) -> None:
        """Clouds stop; grains waiting for their onset never start; sounding ones fade out over
        5 ms from where they are."""
        self._pedal = False
        self.all_notes_off()
        grains = self.grains
        waiting = self.active & (grains[:, kernels.G_DELAY] > 0.0)
        self.active[waiting] = False
        frames = max(1.0, PANIC_FADE * self.host.sample_rate)
        sounding = self.active
        grains[sounding, kernels.G_FADE_STEP] = np.minimum(
            grains[sounding, kernels.G_FADE_STEP],
            -np.maximum(grains[sounding, kernels.G_FADE], 1e-9) / frames)
        self._grains = int(np.count_nonzero(self.active))

    def _stop(self, clouds: np.ndarray) -> None:
        """The clouds spawn no more; their grains ring out."""
        self.spawning[clouds] = False
        self.held[clouds] = False
        self.voice_id[clouds] = -1
        self._spawning = bool(self.spawning.any())

    def _victim(self) -> int:
        """The cloud to steal: the oldest held by the pedal, else the oldest."""
        chosen = self.spawning & self.held
        if not chosen.any():
            chosen = self.spawning
        candidates = np.flatnonzero(chosen)
        return int(candidates[np.argmin(self.order[candidates])])

    # Parameters and commands.
    def set(self, parameter: int, value: float) -> None:
        if 0 <= parameter < len(self.parameters) and np.isfinite(value):
            low, high = self._LIMITS[parameter]
            value = min(high, max(low, value))
            if self.parameters[parameter] in WHOLE:
                value = float(round(value))
            self.values[parameter] = value
            if parameter == schedulers.GAIN_DB:
                self._level = self._gain_of_values()

    def _gain_of_values(self) -> float:
        return 10.0 ** (self.values[schedulers.GAIN_DB] / 20.0)

    def command(self, kind: int, voice: int, note: int, value: float, a: float, b: float,
                c: float) -> None:
        """GRAIN (32): one grain, with the current pan, window and window shape: voice = delay in
        frames from the start of the next block (>= 0), note = table slot, value = linear gain,
        a = start in seconds into the table, b = duration in seconds, c = pitch ratio (<= 0 or
        not a number: 1). SALAD_TABLE (33): voice = index in the salad's list (past its end:
        appended), note = table slot (-1: the list ends before the index), value = the slot of
        its harmonic part (-1: none). Other kinds are ignored."""
        if kind == GRAIN:
            self.fire(int(note), a, b, c if np.isfinite(c) and c > 0.0 else 1.0, value,
                      int(voice))
        elif kind == SALAD_TABLE:
            index = min(max(int(voice), 0), self.salad_count, MAX_SALAD_TABLES - 1)
            if note < 0:
                self.salad_count = index
                return
            self.salad_tables[index] = int(note)
            self.salad_harmonics[index] = int(value) if np.isfinite(value) else -1
            self.salad_count = max(self.salad_count, index + 1)

    def fire(self, table: int, start: float, duration: float, ratio: float = 1.0,
             gain: float = 1.0, delay: int = 0) -> bool:
        """Start one grain of ``table`` (pool slot) ``start`` seconds in, ``duration`` seconds long,
        at pitch ``ratio``, linear ``gain``, ``delay`` frames after the next block starts, with
        the current pan, window and shape. False when it cannot sound (no such table, a bad
        number, too short, every slot busy)."""
        rate = float(self.host.sample_rate)
        pool = self.host.pool
        numbers = (start, duration, ratio, gain)
        if pool is None or not all(np.isfinite(x) for x in numbers) or duration <= 0.0 \
                or ratio <= 0.0 or gain < 0.0:
            return False
        dropped = self.grains_dropped
        values = self.values
        kept = kernels.spawn_grain(
            self.grains, self.active, self.cursor, self.counters, pool.headers, int(pool.data.size),
            int(table), max(0.0, float(start)) * rate, float(duration) * rate, float(ratio),
            float(gain), float(values[schedulers.PAN]), int(values[schedulers.WINDOW]),
            float(values[schedulers.WINDOW_SHAPE]), float(min(max(delay, 0), MAX_DELAY * rate)),
            rate)
        self._grains = int(np.count_nonzero(self.active))
        return kept > 0.0 and self.grains_dropped == dropped

    # Sound.
    def render(self, left: np.ndarray, right: np.ndarray) -> None:
        pool = self.host.pool
        if pool is None:
            self._gain = self._level
            return
        schedulers.granulator_play(left, right, float(self.host.sample_rate), pool.data,
                                   pool.headers, *self.kernel_state())

    # What granulator_play takes after the pool, by attribute: the instrument's arrays.
    kernel_fields = ("values", "clouds", "spawning", "grains", "active", "cursor", "counters", "rng",
                     "salad_tables", "salad_harmonics", "hann", "_scratch", "scalars")

    def kernel_state(self) -> tuple:
        """What :func:`engine.audio.grain_schedulers.granulator_play` takes after the pool: the
        instrument's arrays (:attr:`kernel_fields`), named here (the Python render's path)."""
        return (self.values, self.clouds, self.spawning, self.grains, self.active, self.cursor,
                self.counters, self.rng, self.salad_tables, self.salad_harmonics, self.hann,
                self._scratch, self.scalars)

    def adopt_kernel_state(self, arrays) -> None:
        """Use ``arrays`` (copies of :meth:`kernel_state`'s, in its order, e.g. views of the rack's
        :class:`engine.audio.arena.Arena`) from now on, in place of the instrument's own."""
        for name, array in zip(self.kernel_fields, arrays, strict=True):
            setattr(self, name, array)

    def idle(self) -> bool:
        return schedulers.granulator_idle(self.scalars)

    def view(self, out: np.ndarray) -> int:
        """A row per sounding grain (:data:`engine.audio.granular_kernels.VIEW_FIELDS`): its
        table, where it reads, its window's value, level, balance and progress."""
        pool = self.host.pool
        if pool is None or self._grains == 0:
            return 0
        return kernels.grain_view(self.grains, self.active, pool.headers, int(pool.data.size),
                                  self.hann, out)

    @property
    def clouds_started(self) -> int:
        """Clouds started by notes since the instrument was built."""
        return self._sequence

    def sounding(self) -> int:
        """Grains sounding (or scheduled by GRAIN and waiting for their onset)."""
        return self._grains

    def warm_up(self) -> None:
        """Run the kernels on every path (each mode and window, mono and stereo tables, a fired
        grain, a panic, the view, the idle check) on a small pool of its own, so numba's cache loads before the stream opens;
        then put everything back as it was built."""
        from engine.audio.pool import SamplePool

        pool = SamplePool.create(16384, max_tables=2)
        saved_pool, saved_values = self.host.pool, self.values.copy()
        saved_salad = (self.salad_tables.copy(), self.salad_harmonics.copy(), self.salad_count)
        try:
            self.host.pool = pool
            mono, stereo = pool.allocate("mono", 2048, 1), pool.allocate("stereo", 2048, 2)
            pool.fill(mono, np.sin(np.arange(2048) * 0.1))
            pool.fill(stereo, np.zeros((2048, 2)))
            self.command(SALAD_TABLE, 0, mono, float(stereo), 0.0, 0.0, 0.0)
            left, right = np.zeros(self.host.block_size), np.zeros(self.host.block_size)
            for mode in range(len(schedulers.MODES)):
                for window in range(len(kernels.WINDOWS)):
                    self.values[schedulers.MODE], self.values[schedulers.WINDOW] = mode, window
                    self.values[schedulers.TABLE] = mono if window % 2 else stereo
                    self.values[schedulers.SALAD_SHORTEST] = 0.01
                    self.values[schedulers.SALAD_LONGEST] = 0.01
                    self.note_on(1, 60, 1.0)
                    self.render(left, right)
                    self.note_off(1, 60)
            self.command(GRAIN, 3, mono, 1.0, 0.0, 0.01, 1.5)
            self.render(left, right)
            self.view(np.zeros((4, len(self.view_fields))))
            self.panic()
            self.render(left, right)
            self.idle()
        finally:
            self.host.pool = saved_pool
            pool.close()
            self.values[:] = saved_values
            self.salad_tables[:], self.salad_harmonics[:], self.salad_count = saved_salad
            self.active[:] = False
            self.spawning[:] = self.held[:] = False
            self._spawning = False
            self.voice_id[:] = -1
            self.counters[:] = 0
            self.cursor[:] = 0
            self.rng[0] = np.uint64(self.settings.seed)
            self._grains, self._pedal, self._sequence = 0, False, 0
            self._gain = self._level = self._gain_of_values()
