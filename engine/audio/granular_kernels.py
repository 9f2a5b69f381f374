"""The granulator's inner loops, compiled (numba): the schedulers that start grains and the block of
every sounding grain, one call each per block.

**Grains** live in a fixed pool of slots, a (max_grains, GRAIN_FIELDS) float64 array and an
``active`` flag per slot. A grain reads one table of the shared sample pool
(:mod:`engine.audio.pool`) from a fractional start frame, moving ``ratio`` table frames per output
frame (4-point cubic Hermite interpolation, as the sampler), for ``length`` output frames, shaped
by its window, scaled by its gain and panned (equal power for a mono table; a balance for a stereo
table, whose two channels are both read). A grain waits ``delay`` frames before its first sample,
so grains start at their exact sample inside a block, or blocks later.

**Past the table's end**: a grain never reads there. One that would starts earlier, so its last
read is the table's last frame (a grain near the end keeps its length, so its window keeps its
slopes: a squeezed window would click); only a grain longer than the whole table is shortened,
its window fitted to the shorter length. A table swapped for a shorter one under a sounding grain
reads as zeros past its end.

**Windows** (``WINDOWS``): ``hann``; ``tukey`` (flat, with raised-cosine tapers that take the
fraction ``shape`` of the grain, at least 2 ms each side); ``expodec`` (a 2 ms rise, then an
exponential decay of 60 dB over the grain, and a 2 ms fall); ``table`` (the table's own envelope:
flat, with only the 2 ms rise and fall, so a grain never clicks). The raised cosines come from one
table of the Hann window read with linear interpolation (error under 1e-6).

**Clouds** are the instrument's voices: a (polyphony, CLOUD_FIELDS) float64 array and a
``spawning`` flag each. A cloud keeps the frame of its next grain (``C_NEXT``) and of the grid
point it is drawn around (``C_GRID``), both counted from the start of the current block, so the
grid carries fractions of a frame from grain to grain and the mean rate is exact. What a grain
is and when the next one comes depend on the instrument's mode (see :func:`_cloud_step`,
:func:`_hold_step`, :func:`_pulse_step`, :func:`_salad_step`).

**Randomness** is one splitmix64 stream (a uint64 array of one state) drawn in a fixed order
(clouds in slot order, grains in onset order), so the same seed and the same commands give the same
samples run after run.
"""

from __future__ import annotations

import numpy as np
from numba import njit

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
WINDOWS = ("hann", "tukey", "expodec", "table")
HANN, TUKEY, EXPODEC, TABLE_WINDOW = range(len(WINDOWS))

# A grain's row.
(G_TABLE, G_POSITION, G_RATIO, G_AGE, G_LENGTH, G_WINDOW, G_TAPER, G_DECAY, G_LEFT, G_RIGHT,
 G_DELAY, G_FADE, G_FADE_STEP) = range(13)
GRAIN_FIELDS = 13
# A cloud's row: its pitch ratio (note against root), its gain (velocity), the frame of its next
# grain and of its grid point (from the current block's start), its scan offset (0..1 of a table).
C_RATIO, C_AMP, C_NEXT, C_GRID, C_SCAN = range(5)
CLOUD_FIELDS = 5
# Counters: salad steps and their choices, grains started, grains dropped (every slot busy).
STEPS, SILENCED_LEFT, SILENCED_RIGHT, HARMONIC, SPAWNED, DROPPED = range(6)
COUNTERS = 6

FADE = 0.002  # seconds: the shortest rise and fall of any window
DECAY = np.log(1000.0)  # expodec: -60 dB over the grain
MIN_GRAIN = 4  # frames: a grain that would be shorter (a table's very end) does not start
HANN_POINTS = 2048
IDLE_STEP = 0.1  # seconds: how often a salad with nothing to play (no table) tries again


def hann_table() -> np.ndarray:
    """(HANN_POINTS + 1,) float64: one Hann window, 0 at both ends, for the kernels' lookups."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(HANN_POINTS + 1) / HANN_POINTS)


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
def fitted_length(frames, start, length, ratio):  # pragma: no cover - compiled
    """Output frames a grain of ``length`` keeps when it starts at ``start`` in a table of
    ``frames`` and moves ``ratio`` frames a frame: its last read is at most the table's last
    frame; 0 when under MIN_GRAIN."""
    if frames < 2 or not ratio > 0.0 or start > frames - 1.0:
        return 0.0
    kept = min(np.floor(length), np.floor((frames - 1.0 - start) / ratio) + 1.0)
    return kept if kept >= MIN_GRAIN else 0.0


@njit(**_JIT)
def fitted_start(frames, start, length, ratio):  # pragma: no cover - compiled
    """Where a grain of ``length`` output frames moving ``ratio`` table frames a frame starts when
    asked to start at ``start`` in a table of ``frames``: there, or early enough that its last
    read is the table's last frame (at the earliest, the table's start)."""
    start = min(max(start, 0.0), frames - 1.0)
    if ratio > 0.0 and length >= 1.0:
        start = max(0.0, min(start, frames - 1.0 - (np.floor(length) - 1.0) * ratio))
    return start


@njit(**_JIT)
def spawn_grain(grains, active, cursor, counters, headers, data_size, table, start, length, ratio,
                amp, pan, window, shape, delay, rate):  # pragma: no cover - compiled
    """Start a grain in a free slot: ``table`` pool slot, ``start`` frame (fractional; moved
    earlier when the grain would read past the table's end, see :func:`fitted_start`), ``length``
    output frames (shortened to a table shorter than the grain), ``ratio``, linear ``amp``,
    ``pan`` -1..1, ``window`` (an index of WINDOWS) and its ``shape``, ``delay`` frames before
    its first sample. Returns the length the grain has (or would have had: a grain dropped because
    every slot is busy is counted in DROPPED), 0 when it cannot sound (no table, too short)."""
    base, frames, channels = front_buffer(headers, data_size, table)
    start = fitted_start(frames, start, length, ratio)
    kept = fitted_length(frames, start, length, ratio)
    if kept <= 0.0:
        return 0.0
    slots = active.size
    slot = -1
    for k in range(slots):  # from where the last search ended: free slots are usually there
        g = (cursor[0] + k) % slots
        if not active[g]:
            slot = g
            break
    if slot < 0:
        counters[DROPPED] += 1
        return kept
    cursor[0] = (slot + 1) % slots
    fade = min(FADE * rate, 0.5 * kept)
    if window == TUKEY:
        taper = max(fade, min(max(shape, 0.0), 1.0) * 0.5 * kept)
    else:
        taper = fade
    pan = min(1.0, max(-1.0, pan))
    angle = (pan + 1.0) * 0.25 * np.pi
    left, right = np.cos(angle), np.sin(angle)
    if channels == 2:  # a balance: both channels at full level in the middle
        left, right = min(1.0, np.sqrt(2.0) * left), min(1.0, np.sqrt(2.0) * right)
    row = grains[slot]
    row[G_TABLE], row[G_POSITION], row[G_RATIO] = table, start, ratio
    row[G_AGE], row[G_LENGTH], row[G_WINDOW] = 0.0, kept, window
    row[G_TAPER], row[G_DECAY] = taper, DECAY / kept
    row[G_LEFT], row[G_RIGHT] = amp * left, amp * right
    row[G_DELAY], row[G_FADE], row[G_FADE_STEP] = max(0.0, np.floor(delay)), 1.0, 0.0
    active[slot] = True
    counters[SPAWNED] += 1
    return kept


@njit(**_JIT)
def _lookup(hann, x):  # pragma: no cover - compiled
    i = int(x)
    return hann[i] + (x - i) * (hann[i + 1] - hann[i])


@njit(**_JIT)
def _window(env, first, last, row, hann):  # pragma: no cover - compiled
    """Write the grain's window x its fade into ``env[first:last]``, from its age; returns the frame
    where a fade reached 0 (the grain ends there), else ``last``."""
    age, length, kind, taper = row[G_AGE], row[G_LENGTH], int(row[G_WINDOW]), row[G_TAPER]
    points = hann.size - 1.0
    if kind == HANN:
        scale = points / length  # Hann table points per frame
        x = age * scale
        for n in range(first, last):
            i = int(x)
            env[n] = hann[i] + (x - i) * (hann[i + 1] - hann[i])
            x += scale
    else:
        t_scale = 0.5 * points / taper  # half the table spans a taper
        decay, decay_step = 1.0, 1.0
        if kind == EXPODEC:
            decay, decay_step = np.exp(-row[G_DECAY] * age), np.exp(-row[G_DECAY])
        for n in range(first, last):
            a = age + (n - first)
            w = decay
            decay *= decay_step
            if a < taper:
                w *= _lookup(hann, a * t_scale)
            rest = length - a
            if rest < taper:
                w *= _lookup(hann, rest * t_scale)
            env[n] = w
    fade_step = row[G_FADE_STEP]
    if fade_step != 0.0:  # a panic's fade
        fade = row[G_FADE]
        for n in range(first, last):
            fade += fade_step
            if fade <= 0.0:
                return n
            env[n] *= fade
        row[G_FADE] = fade
    return last


@njit(**_JIT)
def _hermite(y0, y1, y2, y3, t):  # pragma: no cover - compiled
    c1 = 0.5 * (y2 - y0)
    c2 = y0 - 2.5 * y1 + 2.0 * y2 - 0.5 * y3
    c3 = 0.5 * (y3 - y0) + 1.5 * (y1 - y2)
    return ((c3 * t + c2) * t + c1) * t + y1


@njit(**_JIT)
def _read_mono(out_left, out_right, data, base, last_frame, p, r, env, first, stop, left_gain,
               right_gain):  # pragma: no cover - compiled
    if p >= 1.0 and p + (stop - first - 1) * r + 2.0 <= last_frame:
        # Every read's four points lie inside the table (the usual case): no clamping.
        for n in range(first, stop):
            i = int(p)
            k = base + i
            value = _hermite(data[k - 1], data[k], data[k + 1], data[k + 2], p - i) * env[n]
            out_left[n] += value * left_gain
            out_right[n] += value * right_gain
            p += r
        return
    for n in range(first, stop):
        i = min(int(p), last_frame)
        t = p - i
        y0 = data[base + max(i - 1, 0)]
        y1 = data[base + i]
        y2 = data[base + min(i + 1, last_frame)]
        y3 = data[base + min(i + 2, last_frame)]
        value = _hermite(y0, y1, y2, y3, t) * env[n]
        out_left[n] += value * left_gain
        out_right[n] += value * right_gain
        p += r


@njit(**_JIT)
def _hann_mono(out_left, out_right, data, base, p, r, x, scale, hann, first, stop, left_gain,
               right_gain):  # pragma: no cover - compiled
    """The usual grain in one pass: a mono table read inside its bounds under a Hann window (``x``
    the window table's point at ``first``, moving ``scale`` points a frame), no fade."""
    for n in range(first, stop):
        j = int(x)
        w = hann[j] + (x - j) * (hann[j + 1] - hann[j])
        x += scale
        i = int(p)
        k = base + i
        value = _hermite(data[k - 1], data[k], data[k + 1], data[k + 2], p - i) * w
        out_left[n] += value * left_gain
        out_right[n] += value * right_gain
        p += r


@njit(**_JIT)
def _read_stereo(out_left, out_right, data, base, last_frame, p, r, env, first, stop, left_gain,
                 right_gain):  # pragma: no cover - compiled
    for n in range(first, stop):
        i = min(int(p), last_frame)
        t = p - i
        i0, i1 = base + 2 * max(i - 1, 0), base + 2 * i
        i2, i3 = base + 2 * min(i + 1, last_frame), base + 2 * min(i + 2, last_frame)
        w = env[n]
        out_left[n] += _hermite(data[i0], data[i1], data[i2], data[i3], t) * w * left_gain
        out_right[n] += (_hermite(data[i0 + 1], data[i1 + 1], data[i2 + 1], data[i3 + 1], t)
                         * w * right_gain)
        p += r


@njit(**_JIT)
def render_grains(out_left, out_right, data, headers, grains, active, hann, gain_start, gain_end,
                  env, mix_left, mix_right):  # pragma: no cover - compiled
    """Add one block of every active grain into ``out_left``/``out_right`` (float64) and advance
    them; a grain that ends (its length played, or a fade down to 0) is freed. The instrument's
    gain moves linearly from ``gain_start`` to ``gain_end`` across the block (reaching it on the
    last frame), applied once to the grains' sum. ``env``, ``mix_left`` and ``mix_right`` are
    scratch space of a block. Returns the grains still active (sounding or waiting)."""
    frames = out_left.size
    size = data.size
    mix_left[:] = 0.0
    mix_right[:] = 0.0
    sounding = 0
    for g in range(active.size):
        if not active[g]:
            continue
        row = grains[g]
        delay = row[G_DELAY]
        if delay >= frames:
            row[G_DELAY] = delay - frames
            sounding += 1
            continue
        first = int(delay)
        age, length = row[G_AGE], row[G_LENGTH]
        last = min(frames, first + int(length - age))
        base, t_frames, channels = front_buffer(headers, size, int(row[G_TABLE]))
        p, r = row[G_POSITION], row[G_RATIO]
        if (channels == 1 and int(row[G_WINDOW]) == HANN and row[G_FADE_STEP] == 0.0
                and p >= 1.0 and p + (last - first - 1) * r + 2.0 <= t_frames - 1):
            scale = (hann.size - 1.0) / length
            _hann_mono(mix_left, mix_right, data, base, p, r, age * scale, scale, hann, first,
                       last, row[G_LEFT], row[G_RIGHT])
            age += last - first
            if age >= length:
                active[g] = False
            else:
                row[G_POSITION], row[G_AGE], row[G_DELAY] = p + (last - first) * r, age, 0.0
                sounding += 1
            continue
        stop = _window(env, first, last, row, hann)
        # Frames whose read falls inside the table (all of them, unless the table was swapped
        # for a shorter one under the grain: past its end the grain reads zeros).
        inside = stop
        if p + (stop - first) * r >= t_frames:
            inside = first + max(0, min(stop - first, int(np.ceil((t_frames - p) / r))))
        if channels == 1:
            _read_mono(mix_left, mix_right, data, base, t_frames - 1, p, r, env, first, inside,
                       row[G_LEFT], row[G_RIGHT])
        else:
            _read_stereo(mix_left, mix_right, data, base, t_frames - 1, p, r, env, first, inside,
                         row[G_LEFT], row[G_RIGHT])
        age += stop - first
        if stop < last or age >= length:
            active[g] = False
        else:
            row[G_POSITION], row[G_AGE], row[G_DELAY] = p + (stop - first) * r, age, 0.0
            sounding += 1
    gain_step = (gain_end - gain_start) / frames
    for n in range(frames):
        gain = gain_start + gain_step * (n + 1)
        out_left[n] += mix_left[n] * gain
        out_right[n] += mix_right[n] * gain
    return sounding


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
    pick, harmonic, silence_left, silence_right = uniform(rng), uniform(rng), uniform(rng), uniform(rng)
    left_draw, right_draw, ratio_draw, position = uniform(rng), uniform(rng), uniform(rng), uniform(rng)
    if salad_count > 0:
        entry = min(int(pick * salad_count), salad_count - 1)
        table, harmonic_table = salad_tables[entry], salad_harmonics[entry]
    else:
        table, harmonic_table = int(values[TABLE]), -1
    counters[STEPS] += 1
    if harmonic < values[SALAD_HARMONIC] and front_buffer(headers, data_size, harmonic_table)[1] > 0:
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
