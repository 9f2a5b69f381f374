"""The sampler's inner loop, compiled (numba): one block of every sounding sampler voice.

A voice reads a table of the shared pool (:mod:`engine.audio.pool`) at a fractional position that
moves by its pitch ratio every frame, with 4-point cubic Hermite interpolation. The kernel reads
the pool's flat float32 audio and its slot headers directly, and looks up each table's front
buffer once at the start of the block: the same buffer :meth:`SamplePool.table` returns, so a SWAP
applied between blocks is heard from the next block on, whole.

Loops: a looping voice plays from the table's start into the loop ``[start, end)``. Over the last
``fade`` frames before ``end`` it cross-fades (equal power) into the loop's first ``fade`` frames,
then carries on from ``start + fade``; the seam is continuous for any material, at the price of
the loop being ``fade`` frames shorter. A queued table (QUEUE) is the destination of that cross-fade
instead of the voice's own table, so the switch happens at the loop end, with the same fade.

Envelope: a level moved by a fixed step every frame (up over the attack, down over a release or a
steal / panic fade); the voice ends when a falling level reaches 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.audio.pool import CAPACITY, CHANNELS, FRONT, LENGTH0, OFFSET

_JIT = {"cache": True, "fastmath": True, "nogil": True, "error_model": "numpy"}
HALF_PI = 0.5 * np.pi


@njit(**_JIT)
def front_buffer(headers, data_size, slot):  # pragma: no cover - compiled
    """(first item, frames, channels) of ``slot``'s front buffer in the pool's data; 0 frames for
    a slot that holds no table or whose header does not fit the data (never read out of bounds)."""
    if slot < 0 or slot >= headers.shape[0]:
        return 0, 0, 1
    channels = headers[slot, CHANNELS]
    front = headers[slot, FRONT]
    if channels < 1 or channels > 2 or front < 0 or front > 1:
        return 0, 0, 1
    capacity = headers[slot, CAPACITY]
    base = headers[slot, OFFSET] + front * capacity * channels
    frames = headers[slot, LENGTH0 + front]
    if base < 0 or frames < 0 or frames > capacity or base + frames * channels > data_size:
        return 0, 0, 1
    return base, frames, channels


@njit(**_JIT)
def loop_points(frames, loop_start, loop_end):  # pragma: no cover - compiled
    """The loop ``(start, end)`` in frames of a table of ``frames``: ``loop_end`` 0 (or past the
    end) = the table's end; a loop under 2 frames long = the whole table."""
    end = loop_end if 0.0 < loop_end < frames else float(frames)
    start = min(max(loop_start, 0.0), end)
    if end - start < 2.0:
        return 0.0, float(frames)
    return start, end


@njit(**_JIT)
def _hermite(y0, y1, y2, y3, t):  # pragma: no cover - compiled
    c1 = 0.5 * (y2 - y0)
    c2 = y0 - 2.5 * y1 + 2.0 * y2 - 0.5 * y3
    c3 = 0.5 * (y3 - y0) + 1.5 * (y1 - y2)
    return ((c3 * t + c2) * t + c1) * t + y1


@njit(**_JIT)
def read(data, base, frames, channels, position, mono_left, mono_right, stereo_left,
         stereo_right):  # pragma: no cover - compiled
    """The table at ``position`` (frames, >= 0), panned: (left, right). Indices past either end
    hold the end sample; a table under one frame reads 0."""
    if frames < 1:
        return 0.0, 0.0
    i = int(position)
    t = position - i
    last = frames - 1
    i1 = min(i, last)
    i0 = max(i1 - 1, 0)
    i2 = min(i + 1, last)
    i3 = min(i + 2, last)
    if channels == 1:
        value = _hermite(data[base + i0], data[base + i1], data[base + i2], data[base + i3], t)
        return value * mono_left, value * mono_right
    left = _hermite(data[base + 2 * i0], data[base + 2 * i1], data[base + 2 * i2],
                    data[base + 2 * i3], t)
    right = _hermite(data[base + 2 * i0 + 1], data[base + 2 * i1 + 1], data[base + 2 * i2 + 1],
                     data[base + 2 * i3 + 1], t)
    return left * stereo_left, right * stereo_right


@njit(**_JIT)
def _destination(table, next_table, crossing):  # pragma: no cover - compiled
    """Where the voice goes at its loop end: the table latched by a cross-fade under way, else a
    queued one, else its own."""
    if crossing >= 0:
        return crossing
    if next_table >= 0:
        return next_table
    return table


@njit(**_JIT)
def sampler_block(out_left, out_right, data, headers, active, voice_id, table, next_table,
                  crossing, position, ratio, looping, level, level_step, amp, pan, gain_start,
                  gain_end, loop_start, loop_end, crossfade):  # pragma: no cover - compiled
    """Add one block of every active voice into ``out_left``/``out_right`` (float64) and advance
    the voices (arrays are the instrument's, one entry per voice slot).

    Per voice: ``table`` pool slot; ``next_table`` queued slot or -1; ``crossing`` the slot a loop
    cross-fade under way fades into, or -1; ``position`` frames into the table; ``ratio`` frames
    of table per output frame; ``looping``; ``level``/``level_step`` the envelope and its change
    per frame; ``amp`` linear gain; ``pan`` -1..1 (equal power for mono tables, a balance for
    stereo ones). The instrument's gain moves linearly from ``gain_start`` to ``gain_end`` across
    the block. ``loop_start``, ``loop_end`` (0 = the table's end) and ``crossfade``: frames.
    A voice that ends (one shot past its table's end, envelope down to 0) is freed: ``active``
    False, ``voice_id`` -1. Returns the voices still active."""
    frames = out_left.size
    size = data.size
    gain_step = (gain_end - gain_start) / frames
    sounding = 0
    for v in range(active.size):
        if not active[v]:
            continue
        angle = (min(1.0, max(-1.0, pan[v])) + 1.0) * 0.25 * np.pi
        mono_left, mono_right = np.cos(angle), np.sin(angle)
        stereo_left = min(1.0, np.sqrt(2.0) * mono_left)
        stereo_right = min(1.0, np.sqrt(2.0) * mono_right)
        slot = table[v]
        base, length, channels = front_buffer(headers, size, slot)
        start, end = loop_points(length, loop_start, loop_end)
        target = _destination(slot, next_table[v], crossing[v])
        t_base, t_length, t_channels = front_buffer(headers, size, target)
        t_start, t_end = loop_points(t_length, loop_start, loop_end)
        fade = min(crossfade, 0.5 * (end - start), 0.5 * (t_end - t_start))
        p, e, step, a, r = position[v], level[v], level_step[v], amp[v], ratio[v]
        loop = looping[v]
        done = False
        for n in range(frames):
            e += step
            if step > 0.0:
                if e >= 1.0:
                    e, step = 1.0, 0.0
            elif step < 0.0 and e <= 0.0:
                done = True
                break
            if not loop:
                if p >= length:  # a one shot ends with its table (at once for an empty table)
                    done = True
                    break
                left, right = read(data, base, length, channels, p, mono_left, mono_right,
                                   stereo_left, stereo_right)
            else:
                if p >= end and length >= 2:  # the loop end: on into the destination
                    span = t_end - t_start - fade
                    p = t_start + fade + ((p - end) % span if span > 0.0 else 0.0)
                    crossing[v] = -1
                    if next_table[v] == target:  # a queue met with no cross-fade (fade 0)
                        next_table[v] = -1
                    if target != slot:
                        slot, base, length, channels = target, t_base, t_length, t_channels
                        start, end = t_start, t_end
                        target = _destination(slot, next_table[v], -1)
                        t_base, t_length, t_channels = front_buffer(headers, size, target)
                        t_start, t_end = loop_points(t_length, loop_start, loop_end)
                        fade = min(crossfade, 0.5 * (end - start), 0.5 * (t_end - t_start))
                if length < 2:  # an empty table loops silence until it is filled
                    p = 0.0
                    continue
                fade_from = end - fade
                if fade > 0.0 and p >= fade_from:
                    if crossing[v] < 0:  # the fade begins: the destination is fixed from here
                        crossing[v] = target
                        if next_table[v] == target:
                            next_table[v] = -1
                    x = (p - fade_from) / fade * HALF_PI
                    out_weight, in_weight = np.cos(x), np.sin(x)
                    left, right = read(data, base, length, channels, p, mono_left, mono_right,
                                       stereo_left, stereo_right)
                    in_left, in_right = read(data, t_base, t_length, t_channels,
                                             t_start + (p - fade_from), mono_left, mono_right,
                                             stereo_left, stereo_right)
                    left = out_weight * left + in_weight * in_left
                    right = out_weight * right + in_weight * in_right
                else:
                    left, right = read(data, base, length, channels, p, mono_left, mono_right,
                                       stereo_left, stereo_right)
            g = e * a * (gain_start + gain_step * (n + 1))
            out_left[n] += left * g
            out_right[n] += right * g
            p += r
        table[v], position[v], level[v], level_step[v] = slot, p, e, step
        if done:
            active[v] = False
            voice_id[v] = -1
            next_table[v] = -1
            crossing[v] = -1
        else:
            sounding += 1
    return sounding
