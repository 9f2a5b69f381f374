"""The granulator's clouds and grain tools, compiled (numba): one call a block starts the grains
of every spawning cloud at their exact frames (:func:`schedule_block`); the grains themselves are
:mod:`engine.audio.granular_kernels`.

**Clouds** are the instrument's voices: a (polyphony, CLOUD_FIELDS) float64 array and a
``spawning`` flag each. A cloud keeps the frame of its next grain (``C_NEXT``) and of the grid
point it is drawn around (``C_GRID``), both counted from the start of the current block, so the
grid carries fractions of a frame from grain to grain and the mean rate is exact. What a grain
is and when the next one comes depend on the instrument's mode (see :func:`_cloud_step`,
:func:`_hold_step` for hold and pulse, :func:`_salad_step`).

**Randomness** is one splitmix64 stream (a uint64 array of one state) drawn in a fixed order
(clouds in slot order, grains in onset order), so the same seed and the same commands give the same
samples run after run.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.audio.granular_kernels import (
    HARMONIC, SILENCED_LEFT, STEPS, fitted_length, fitted_start, render_grains, spawn_grain)
from engine.audio.sampler_kernels import front_buffer

_JIT = {"cache": True, "fastmath": True, "nogil": True, "error_model": "numpy"}

# The instrument's parameters (its ``values`` array; SET's index), in order.
PARAMETERS = ("gain_db", "mode", "table", "density", "timing", "jitter", "tempo", "division",
              "position", "position_deviation", "scan", "duration", "duration_deviation",
              "pitch", "pitch_deviation", "pan", "pan_deviation", "window", "window_shape",
              "pulse_length", "salad_silence", "salad_harmonic", "salad_shortest",
              "salad_longest", "salad_scale", "salad_ratio_low", "salad_ratio_high", "root")
(GAIN_DB, MODE, TABLE, DENSITY, TIMING, JITTER, TEMPO, DIVISION, POSITION, POSITION_DEVIATION,
 SCAN, DURATION, DURATION_DEVIATION, PITCH, PITCH_DEVIATION, PAN, PAN_DEVIATION, WINDOW,
 WINDOW_SHAPE, PULSE_LENGTH, SALAD_SILENCE, SALAD_HARMONIC, SALAD_SHORTEST, SALAD_LONGEST,
 SALAD_SCALE, SALAD_RATIO_LOW, SALAD_RATIO_HIGH, ROOT) = range(len(PARAMETERS))

MODES = ("cloud", "hold", "pulse", "salad")
CLOUD, HOLD, PULSE, SALAD = range(len(MODES))
TIMINGS = ("async", "sync", "tempo")
ASYNC, SYNC, TEMPO_SYNC = range(len(TIMINGS))

# A cloud's row: its pitch ratio (note against root), its gain (velocity), the frame of its next
# grain and of its grid point (from the current block's start), its scan offset (0..1 of a table).
C_RATIO, C_AMP, C_NEXT, C_GRID, C_SCAN = range(5)
CLOUD_FIELDS = 5
IDLE_STEP = 0.1  # seconds: how often a salad with nothing to play (no table) tries again


@njit(**_JIT)
def uniform(rng):  # pragma: no cover - compiled
    """The next number of the splitmix64 stream in ``rng[0]``, uniform in [0, 1)."""
    z = rng[0] + np.uint64(0x9E3779B97F4A7C15)
    rng[0] = z
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(**_JIT)
def _wrap(x):  # pragma: no cover - compiled
    return x - np.floor(x)


@njit(**_JIT)
def _start_frame(frames, fraction):  # pragma: no cover - compiled
    return _wrap(fraction) * frames


@njit(**_JIT)
def _beat(values, rate):  # pragma: no cover - compiled
    """Frames of one step at the tempo: 60 / (tempo x division) seconds."""
    return rate * 60.0 / (values[TEMPO] * values[DIVISION])


@njit(**_JIT)
def _cloud_step(values, cloud, scan, delay, rate, headers, data_size, grains, active, cursor,
                counters, rng):  # pragma: no cover - compiled
    """Mode cloud: one grain with every deviation drawn; the grid moves on by the density's
    period (async and sync) or the tempo's step."""
    jitter, position, duration = uniform(rng), uniform(rng), uniform(rng)
    pitch, pan = uniform(rng), uniform(rng)
    table = int(values[TABLE])
    frames = front_buffer(headers, data_size, table)[1]
    fraction = (values[POSITION] + scan + values[POSITION_DEVIATION] * (2.0 * position - 1.0))
    length = values[DURATION] * (1.0 + values[DURATION_DEVIATION] * (2.0 * duration - 1.0)) * rate
    semitones = values[PITCH] + values[PITCH_DEVIATION] * (2.0 * pitch - 1.0)
    spawn_grain(grains, active, cursor, counters, headers, data_size, table,
                _start_frame(frames, fraction), length,
                cloud[C_RATIO] * 2.0 ** (semitones / 12.0), cloud[C_AMP],
                values[PAN] + values[PAN_DEVIATION] * (2.0 * pan - 1.0), int(values[WINDOW]),
                values[WINDOW_SHAPE], delay, rate)
    timing = int(values[TIMING])
    if timing == TEMPO_SYNC:
        return _beat(values, rate), 0.0
    period = rate / values[DENSITY]
    return period, (values[JITTER] * period * (jitter - 0.5) if timing == ASYNC else 0.0)


@njit(**_JIT)
def _hold_step(values, cloud, scan, delay, rate, headers, data_size, grains, active, cursor,
               counters, rng, length):  # pragma: no cover - compiled
    """Modes hold and pulse: the same grain every step (no deviations), ``length`` frames long
    (shortened to the table's end). Hold's grains follow each other back to back; the step
    returned is the grain's length (or ``length`` when none could start)."""
    table = int(values[TABLE])
    frames = front_buffer(headers, data_size, table)[1]
    kept = spawn_grain(grains, active, cursor, counters, headers, data_size, table,
                       _start_frame(frames, values[POSITION] + scan), length,
                       cloud[C_RATIO] * 2.0 ** (values[PITCH] / 12.0), cloud[C_AMP], values[PAN],
                       int(values[WINDOW]), values[WINDOW_SHAPE], delay, rate)
    return kept if kept > 0.0 else length


@njit(**_JIT)
def _salad_step(values, cloud, scan, delay, rate, headers, data_size, grains, active, cursor,
                counters, rng, salad_tables, salad_harmonics,
                salad_count):  # pragma: no cover - compiled
    """Mode salad: a random table of the list (its harmonic part with probability
    ``salad_harmonic``, when it has one); a left grain (pan -1) and a right grain (pan +1), each
    of a random length between max(``salad_shortest``, half the table) and ``salad_longest`` x
    ``salad_scale`` seconds, each silenced with probability ``salad_silence``; both re-pitched by
    one ratio drawn log-uniformly in [``salad_ratio_low``, ``salad_ratio_high``]. The next step
    starts when the longer grain ends. Every choice is counted."""
    pick, harmonic = uniform(rng), uniform(rng)
    silence_left, silence_right = uniform(rng), uniform(rng)
    left_draw, right_draw = uniform(rng), uniform(rng)
    ratio_draw, position = uniform(rng), uniform(rng)
    if salad_count > 0:
        entry = min(int(pick * salad_count), salad_count - 1)
        table, harmonic_table = salad_tables[entry], salad_harmonics[entry]
    else:
        table, harmonic_table = int(values[TABLE]), -1
    counters[STEPS] += 1
    has_harmonic = front_buffer(headers, data_size, harmonic_table)[1] > 0
    if harmonic < values[SALAD_HARMONIC] and has_harmonic:
        table = harmonic_table
        counters[HARMONIC] += 1
    frames = front_buffer(headers, data_size, table)[1]
    shortest = max(values[SALAD_SHORTEST], 0.5 * frames / rate)
    longest = max(shortest, values[SALAD_LONGEST] * values[SALAD_SCALE])
    low = min(values[SALAD_RATIO_LOW], values[SALAD_RATIO_HIGH])
    high = max(values[SALAD_RATIO_LOW], values[SALAD_RATIO_HIGH])
    ratio = (cloud[C_RATIO] * 2.0 ** (values[PITCH] / 12.0)
             * np.exp(np.log(low) + (np.log(high) - np.log(low)) * ratio_draw))
    start = _start_frame(frames, values[POSITION] + scan
                         + values[POSITION_DEVIATION] * (2.0 * position - 1.0))
    step = 0.0
    for side in range(2):
        draw = left_draw if side == 0 else right_draw
        length = (shortest + (longest - shortest) * draw) * rate
        silenced = (silence_left if side == 0 else silence_right) < values[SALAD_SILENCE]
        if silenced:
            counters[SILENCED_LEFT + side] += 1
            kept = fitted_length(frames, fitted_start(frames, start, length, ratio), length,
                                 ratio)
        else:
            kept = spawn_grain(grains, active, cursor, counters, headers, data_size, table, start,
                               length, ratio, cloud[C_AMP], -1.0 if side == 0 else 1.0,
                               int(values[WINDOW]), values[WINDOW_SHAPE], delay, rate)
        step = max(step, kept)
    return step if step > 0.0 else max(shortest, IDLE_STEP) * rate


@njit(**_JIT)
def schedule_block(frames, rate, headers, data_size, values, clouds, spawning, grains, active,
                   cursor, counters, rng, salad_tables, salad_harmonics,
                   salad_count):  # pragma: no cover - compiled
    """Start the grains of every spawning cloud whose onsets fall in the next ``frames`` frames,
    each ``delay``ed to its exact frame, and move the clouds on by a block (their next onsets and
    grid points, their scan offsets)."""
    mode = int(values[MODE])
    for c in range(spawning.size):
        if not spawning[c]:
            continue
        cloud = clouds[c]
        for _ in range(frames + 1):  # at most one grain a frame: periods are at least a frame
            onset = cloud[C_NEXT]
            if onset >= frames:
                break
            delay = max(0.0, np.floor(onset))
            scan = cloud[C_SCAN] + values[SCAN] * delay / rate
            jitter = 0.0
            if mode == CLOUD:
                period, jitter = _cloud_step(values, cloud, scan, delay, rate, headers, data_size,
                                             grains, active, cursor, counters, rng)
            elif mode == HOLD:
                period = _hold_step(values, cloud, scan, delay, rate, headers, data_size, grains,
                                    active, cursor, counters, rng, _beat(values, rate))
            elif mode == PULSE:
                _hold_step(values, cloud, scan, delay, rate, headers, data_size, grains, active,
                           cursor, counters, rng, values[PULSE_LENGTH] * rate)
                period = _beat(values, rate)
            else:
                period = _salad_step(values, cloud, scan, delay, rate, headers, data_size, grains,
                                     active, cursor, counters, rng, salad_tables, salad_harmonics,
                                     salad_count)
            grid = cloud[C_GRID] + max(1.0, period)
            cloud[C_GRID] = grid
            cloud[C_NEXT] = max(grid + jitter, onset + 1.0)
        cloud[C_NEXT] -= frames
        cloud[C_GRID] -= frames
        cloud[C_SCAN] = _wrap(cloud[C_SCAN] + values[SCAN] * frames / rate)


@njit(**_JIT)
def granulator_block(out_left, out_right, rate, data, headers, values, clouds, spawning, spawn,
                     grains, active, cursor, counters, rng, salad_tables, salad_harmonics,
                     salad_count, hann, gain_start, gain_end, scratch):  # pragma: no cover - compiled
    """A granulator's block in one compiled call (one entry from Python: each paid a cold cache
    in the audio callback): when ``spawn``, :func:`schedule_block`, then
    :func:`engine.audio.granular_kernels.render_grains` into ``out_left``/``out_right`` with
    ``scratch`` ((3, frames) float64) as its scratch space. Returns the grains still active."""
    if spawn:
        schedule_block(out_left.size, rate, headers, data.size, values, clouds, spawning, grains,
                       active, cursor, counters, rng, salad_tables, salad_harmonics, salad_count)
    return render_grains(out_left, out_right, data, headers, grains, active, hann, gain_start,
                         gain_end, scratch[0], scratch[1], scratch[2])


# A granulator's scalars, kept in one float64 array (``GranulatorInstrument.scalars``) that the
# instrument's Python side and the compiled block both read and write: the gain where the last
# block ended (linear), the gain set now (linear), the grains active after the last block or
# command, whether any cloud spawns (0 / 1) and the length of the salad's table list.
S_GAIN, S_LEVEL, S_GRAINS, S_SPAWNING, S_SALAD_COUNT = range(5)
SCALARS = 5


@njit(**_JIT)
def granulator_idle(scalars):  # pragma: no cover - compiled
    """Whether a granulator is idle: no grain active and no cloud spawning (its ``scalars``)."""
    return scalars[S_GRAINS] == 0.0 and scalars[S_SPAWNING] == 0.0


@njit(**_JIT)
def granulator_play(out_left, out_right, rate, data, headers, values, clouds, spawning, grains,
                    active, cursor, counters, rng, salad_tables, salad_harmonics, hann, scratch,
                    scalars):  # pragma: no cover - compiled
    """A granulator's block with its scalars in ``scalars`` (see :data:`S_GAIN`): nothing but the
    gain moving on when it is idle (:func:`granulator_idle`), else :func:`granulator_block`."""
    level = scalars[S_LEVEL]
    if not granulator_idle(scalars):
        scalars[S_GRAINS] = granulator_block(
            out_left, out_right, rate, data, headers, values, clouds, spawning,
            scalars[S_SPAWNING] != 0.0, grains, active, cursor, counters, rng, salad_tables,
            salad_harmonics, int(scalars[S_SALAD_COUNT]), hann, scalars[S_GAIN], level, scratch)
    scalars[S_GAIN] = level
