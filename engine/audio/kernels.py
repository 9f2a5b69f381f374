"""The voice banks' inner loop, compiled (numba): one block of every sounding voice, summed to
stereo (:func:`partial_voices`, under :class:`engine.audio.voices.VoiceBank`; a piece's own voices
may bring kernels of their own, as the first piece's overtone voice does in
``scenes/ldd/sound/kernels.py``).

numpy spent most of a block on (voices x frames) temporaries that had to be written and read back
many times over, and in the audio callback (cold caches every 5 ms) that cost doubled. Here each
voice runs frame by frame in registers and only the two output channels are written.

No sine per sample: each oscillator is a unit phasor multiplied by its rotation every frame, and a
frequency that glides linearly across the block turns that rotation by a fixed step each frame, so
the phase is exactly the quadratic ``p0 + w0 n + (w1 - w0) n (n + 1) / (2 N)`` the phase
bookkeeping in :mod:`engine.audio.voices` advances by. Phasors start each block from the exact
phase (float64), so rounding never accumulates beyond one block.

Amplitudes, envelope gains and pans move linearly across the block and reach their end values on
its last frame: ``x0 + (x1 - x0) (n + 1) / N``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# fastmath lets the compiler fuse multiply-adds; the same compiled code runs live and offline, so
# identical commands still give bit-identical blocks.
_JIT = {"cache": True, "fastmath": True, "nogil": True, "error_model": "numpy"}


@njit(**_JIT)
def _add_stereo(out_left, out_right, n, ramp, tone, left_start, left_step, right_start,
                right_step):  # pragma: no cover - compiled
    """Add frame ``n`` of the voices' tones into the outputs under each voice's gain ramps."""
    left = right = 0.0
    for v in range(tone.size):
        left += tone[v] * (left_start[v] + left_step[v] * ramp)
        right += tone[v] * (right_start[v] + right_step[v] * ramp)
    out_left[n] += left
    out_right[n] += right


@njit(**_JIT)
def partial_voices(out_left, out_right, phase, step_start, step_end, amp_start, amp_end,
                   left_start, left_end, right_start, right_end):  # pragma: no cover - compiled
    """Voices whose K partials each have a frequency of their own (any multipliers): one phasor
    per partial. ``phase``, ``step_start``, ``step_end`` (radians per frame), ``amp_start``,
    ``amp_end``: (V, K); ``left_*``/``right_*`` (V,) the gains (envelope x pan) into each channel at
    the block's start and end. Adds into the outputs."""
    frames = out_left.size
    voices, partials = amp_start.shape
    # (K, V) arrays: each partial's voices side by side, for the SIMD lanes.
    cos_, sin_ = np.ascontiguousarray(np.cos(phase).T), np.ascontiguousarray(np.sin(phase).T)
    bend = np.ascontiguousarray(((step_end - step_start) / frames).T)
    first = np.ascontiguousarray(step_start.T) + bend
    rot_cos, rot_sin = np.cos(first), np.sin(first)
    bend_cos, bend_sin = np.cos(bend), np.sin(bend)
    glides = np.any(bend != 0.0)
    amp = np.ascontiguousarray(amp_start.T)
    amp_step = np.ascontiguousarray((amp_end - amp_start).T)
    left_step, right_step = left_end - left_start, right_end - right_start
    tone = np.empty(voices)
    for n in range(frames):
        ramp = (n + 1) / frames
        tone[:] = 0.0
        for k in range(partials):
            for v in range(voices):
                tone[v] += sin_[k, v] * (amp[k, v] + amp_step[k, v] * ramp)
                c, s = cos_[k, v], sin_[k, v]
                cos_[k, v] = c * rot_cos[k, v] - s * rot_sin[k, v]
                sin_[k, v] = s * rot_cos[k, v] + c * rot_sin[k, v]
        _add_stereo(out_left, out_right, n, ramp, tone, left_start, left_step, right_start, right_step)
        if glides:
            for k in range(partials):
                for v in range(voices):
                    c, s = rot_cos[k, v], rot_sin[k, v]
                    rot_cos[k, v] = c * bend_cos[k, v] - s * bend_sin[k, v]
                    rot_sin[k, v] = s * bend_cos[k, v] + c * bend_sin[k, v]


def warm_up() -> None:
    """Compile the kernel now (seconds the first time; numba caches the machine code beside this
    file, so later processes load it in milliseconds). `make setup` calls this, so the first show
    on a fresh machine does not wait for the compiler."""
    one, two = np.zeros(1), np.zeros((1, 1))
    partial_voices(np.zeros(2), np.zeros(2), two, two, two, two, two, one, one, one, one)
    _warm_up_granulator()


def _warm_up_granulator() -> None:
    """The granulator's kernels (:mod:`engine.audio.granular_kernels`), every path once, and a
    rack of one in its one-call block (:mod:`engine.audio.rack_block`) with the callback's
    bookkeeping (:func:`engine.audio.shared.finish_block`, with and without an input)."""
    from engine.audio import native_stream, shared
    from engine.audio.instrument import Host
    from engine.audio.instruments.granulator import GranulatorInstrument, GranulatorSettings
    from engine.audio.pool import SamplePool
    from engine.audio.rack import InstrumentSpec, Rack, RackConfig

    frequencies = 440.0 * 2.0 ** ((np.arange(128) - 69) / 12.0)
    GranulatorInstrument(GranulatorSettings(max_grains=64, polyphony=2),
                         Host(48000, 64, frequencies)).warm_up()
    pool = SamplePool.create(4096, max_tables=1)
    try:
        config = RackConfig(buses={"grains": 0.0}, notes=["grains"], instruments=[
            InstrumentSpec(name="grains", kind="granulator", bus="grains", settings={"max_grains": 64})])
        Rack(config, pool).warm_up()
    finally:
        pool.close()
    native_stream.native_callback()  # the compiled PortAudio callback, into numba's cache
    shared.warm_up_finish_block()


if __name__ == "__main__":
    warm_up()
