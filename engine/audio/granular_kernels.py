"""The granulator's grains, compiled (numba): starting one in a free slot, and the block of every
sounding grain, one call a block. The clouds and grain tools that decide when grains start are in
:mod:`engine.audio.grain_schedulers`.

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
flat, with only the 2 ms rise and fall, so a grain never clicks). A Hann grain's window is
computed by a cosine recurrence started afresh at every block (within 2e-12 of the cosine over a
256-frame block; a block of 1,000 grains took 10 % less time than with the window read from a
table); the tapers come from one table of the Hann window read with linear interpolation (error
under 1e-6).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.audio.sampler_kernels import front_buffer

_JIT = {"cache": True, "fastmath": True, "nogil": True, "error_model": "numpy"}

WINDOWS = ("hann", "tukey", "expodec", "table")
HANN, TUKEY, EXPODEC, TABLE_WINDOW = range(len(WINDOWS))

# A grain's row.
(G_TABLE, G_POSITION, G_RATIO, G_AGE, G_LENGTH, G_WINDOW, G_TAPER, G_DECAY, G_LEFT, G_RIGHT,
 G_DELAY, G_FADE, G_FADE_STEP) = range(13)
GRAIN_FIELDS = 13
# Counters: salad steps and their choices (:mod:`engine.audio.grain_schedulers`), grains
# started, grains dropped (every slot busy).
STEPS, SILENCED_LEFT, SILENCED_RIGHT, HARMONIC, SPAWNED, DROPPED = range(6)
COUNTERS = 6

FADE = 0.002  # seconds: the shortest rise and fall of any window
DECAY = np.log(1000.0)  # expodec: -60 dB over the grain
MIN_GRAIN = 4  # frames: a grain that would be shorter (a table's very end) does not start
HANN_POINTS = 2048


def hann_table() -> np.ndarray:
    """(HANN_POINTS + 1,) float64: one Hann window, 0 at both ends, for the kernels' lookups."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(HANN_POINTS + 1) / HANN_POINTS)


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
def _cosines(age, length):  # pragma: no cover - compiled
    """A Hann window's cosine recurrence at frame ``age`` of ``length``: cos at this frame, at
    the one before, and 2 cos of a frame's step (``c[n + 1] = twice * c[n] - c[n - 1]``)."""
    step = 2.0 * np.pi / length
    return np.cos(age * step), np.cos((age - 1.0) * step), 2.0 * np.cos(step)


@njit(**_JIT)
def _window(env, first, last, row, hann):  # pragma: no cover - compiled
    """Write the grain's window x its fade into ``env[first:last]``, from its age; returns the frame
    where a fade reached 0 (the grain ends there), else ``last``."""
    age, length, kind, taper = row[G_AGE], row[G_LENGTH], int(row[G_WINDOW]), row[G_TAPER]
    points = hann.size - 1.0
    if kind == HANN:
        c, c_before, twice = _cosines(age, length)
        for n in range(first, last):
            env[n] = 0.5 - 0.5 * c
            c, c_before = twice * c - c_before, c
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


# The sampler's cubic (engine.audio.sampler_kernels), kept here on purpose: numba's cache does not
# notice a change to a function defined in another file, so a cached kernel here calling that one
# would go on running the old machine code after it changed.
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
def _hann_mono(out_left, out_right, data, base, p, r, age, length, first, stop, left_gain,
               right_gain):  # pragma: no cover - compiled
    """The usual grain in one pass: a mono table read inside its bounds under a Hann window (at
    frame ``age`` of ``length`` on ``first``), no fade."""
    c, c_before, twice = _cosines(age, length)
    for n in range(first, stop):
        w = 0.5 - 0.5 * c
        c, c_before = twice * c - c_before, c
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
            _hann_mono(mix_left, mix_right, data, base, p, r, age, length, first, last,
                       row[G_LEFT], row[G_RIGHT])
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


# The columns of :func:`grain_view`: the grain's table slot, where it reads (a fraction of the
# table), its window's value now (0..1, the fade of a panic included), its level (the window
# times its gain, pan and velocity), its balance (-1 left .. 1 right) and how far through it is.
VIEW_FIELDS = ("table", "position", "envelope", "level", "pan", "progress")
V_TABLE, V_POSITION, V_ENVELOPE, V_LEVEL, V_PAN, V_PROGRESS = range(len(VIEW_FIELDS))


@njit(**_JIT)
def grain_view(grains, active, headers, data_size, hann, out):  # pragma: no cover - compiled
    """Write a row of VIEW_FIELDS per sounding grain (not those still waiting for their onset)
    into ``out``, at most its rows; returns the rows written."""
    rows = out.shape[0]
    count = 0
    points = hann.size - 1.0
    for g in range(active.size):
        if count >= rows:
            break
        if not active[g]:
            continue
        row = grains[g]
        if row[G_DELAY] > 0.0:
            continue
        age, length = row[G_AGE], row[G_LENGTH]
        kind, taper = int(row[G_WINDOW]), row[G_TAPER]
        if kind == HANN:
            w = _lookup(hann, min(age / length, 1.0) * points)
        else:
            w = np.exp(-row[G_DECAY] * age) if kind == EXPODEC else 1.0
            t_scale = 0.5 * points / taper
            if age < taper:
                w *= _lookup(hann, age * t_scale)
            rest = length - age
            if rest < taper:
                w *= _lookup(hann, max(rest, 0.0) * t_scale)
        w *= row[G_FADE]
        frames = front_buffer(headers, data_size, int(row[G_TABLE]))[1]
        left, right = row[G_LEFT], row[G_RIGHT]
        loudest = max(left, right)
        view = out[count]
        view[V_TABLE] = row[G_TABLE]
        view[V_POSITION] = row[G_POSITION] / frames if frames > 0 else 0.0
        view[V_ENVELOPE] = w
        view[V_LEVEL] = w * loudest
        view[V_PAN] = (right - left) / (right + left) if right + left > 0.0 else 0.0
        view[V_PROGRESS] = age / length
        count += 1
    return count
