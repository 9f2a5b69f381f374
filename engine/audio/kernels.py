"""The voices' inner loops, compiled (numba): one block of every sounding voice, summed to stereo;
for the overtone voices, the whole block (:func:`overtone_block`: the per-voice frequencies,
amplitudes, envelope and state as well as the samples).

numpy spent most of a block on (voices x frames) temporaries that had to be written and read back
many times over, and in the audio callback (cold caches every 5 ms) that cost doubled. Here each
voice runs frame by frame in registers and only the two output channels are written.

No sine per sample: each oscillator is a unit phasor multiplied by its rotation every frame, and a
frequency that glides linearly across the block (the detune) turns that rotation by a fixed step
each frame, so the phase is exactly the quadratic ``p0 + w0 n + (w1 - w0) n (n + 1) / (2 N)`` the
phase bookkeeping in :mod:`engine.audio.voices` advances by. Phasors start each block from the exact
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
def chebyshev_voices(out_left, out_right, fundamental_phase, fundamental_step, base_phase,
                     base_start, base_end, amp_start, amp_end, left_start, left_end, right_start,
                     right_end):  # pragma: no cover - compiled
    """Voices whose partial 1 sounds at the fundamental and partials k >= 2 at k times a (detuned)
    base frequency: sin(k x) by the Chebyshev recurrence sin(k x) = 2 cos x sin((k-1) x) -
    sin((k-2) x) from one base phasor, so a voice costs two phasors whatever its partial count.

    Per voice v: ``fundamental_step[v]`` radians per frame; the base glides from ``base_start[v]``
    to ``base_end[v]`` radians per frame; ``amp_start``/``amp_end`` (V, K) partial amplitudes;
    ``left_*``/``right_*`` the gains (envelope x pan) into each channel. Adds into the outputs.

    Frame by frame, every loop runs over the voices, so the compiler spreads voices over SIMD
    lanes and no voice waits on its own previous frame."""
    frames = out_left.size
    voices, partials = amp_start.shape
    fund_cos, fund_sin = np.cos(fundamental_phase), np.sin(fundamental_phase)
    fund_rot_cos, fund_rot_sin = np.cos(fundamental_step), np.sin(fundamental_step)
    base_cos, base_sin = np.cos(base_phase), np.sin(base_phase)
    bend = (base_end - base_start) / frames  # the base's step grows by this each frame
    rot_cos, rot_sin = np.cos(base_start + bend), np.sin(base_start + bend)
    bend_cos, bend_sin = np.cos(bend), np.sin(bend)
    amp = np.ascontiguousarray(amp_start.T)  # (K, V): each partial's amplitudes side by side
    amp_step = np.ascontiguousarray((amp_end - amp_start).T)
    left_step, right_step = left_end - left_start, right_end - right_start
    tone, twice_cos = np.empty(voices), np.empty(voices)
    previous, current = np.empty(voices), np.empty(voices)
    for n in range(frames):
        ramp = (n + 1) / frames
        for v in range(voices):  # partial 1, the fundamental, and the base's sin x and sin 2x
            tone[v] = fund_sin[v] * (amp[0, v] + amp_step[0, v] * ramp)
            twice_cos[v] = 2.0 * base_cos[v]
            previous[v] = base_sin[v]
            current[v] = twice_cos[v] * base_sin[v]
        if partials > 1:
            for v in range(voices):
                tone[v] += current[v] * (amp[1, v] + amp_step[1, v] * ramp)
        for k in range(2, partials):
            for v in range(voices):
                following = twice_cos[v] * current[v] - previous[v]
                previous[v] = current[v]
                current[v] = following
                tone[v] += following * (amp[k, v] + amp_step[k, v] * ramp)
        _add_stereo(out_left, out_right, n, ramp, tone, left_start, left_step, right_start, right_step)
        for v in range(voices):  # advance the phasors one frame; the base's rotation by its glide
            c, s = fund_cos[v], fund_sin[v]
            fund_cos[v] = c * fund_rot_cos[v] - s * fund_rot_sin[v]
            fund_sin[v] = s * fund_rot_cos[v] + c * fund_rot_sin[v]
            c, s = base_cos[v], base_sin[v]
            base_cos[v] = c * rot_cos[v] - s * rot_sin[v]
            base_sin[v] = s * rot_cos[v] + c * rot_sin[v]
            c, s = rot_cos[v], rot_sin[v]
            rot_cos[v] = c * bend_cos[v] - s * bend_sin[v]
            rot_sin[v] = s * bend_cos[v] + c * bend_sin[v]


@njit(**_JIT)
def partial_voices(out_left, out_right, phase, step_start, step_end, amp_start, amp_end,
                   left_start, left_end, right_start, right_end):  # pragma: no cover - compiled
    """Voices whose K partials each have a frequency of their own (any multipliers): one phasor
    per partial. ``phase``, ``step_start``, ``step_end`` (radians per frame), ``amp_start``,
    ``amp_end``: (V, K); gains as in :func:`chebyshev_voices`. Adds into the outputs."""
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


@njit(**_JIT)
def _shape(x, curve):  # pragma: no cover - compiled
    """A segment from 0 to 1 over x in [0, 1] with SuperCollider's curvature (0 = linear)."""
    x = min(1.0, max(0.0, x))
    if abs(curve) < 1e-4:
        return x
    return (1.0 - np.exp(curve * x)) / (1.0 - np.exp(curve))


@njit(**_JIT)
def envelope_level(t, since, released, release_level, release_frames, percussive, attack, decay,
                   sustain, curve):  # pragma: no cover - compiled
    """The overtone envelope's level 0..1 at ``t`` frames since note-on. Percussive (Env.perc):
    rises over ``attack`` frames, then falls over ``release_frames``, whatever the key does. ADSR:
    rises, decays over ``decay`` frames to ``sustain`` and holds; once ``released``, falls from
    ``release_level`` over ``release_frames``, ``since`` frames into the release."""
    if t < attack:
        held = _shape(t / attack, curve)
    elif percussive:
        return 1.0 - _shape((t - attack) / release_frames, curve)
    else:
        held = 1.0 + (sustain - 1.0) * _shape((t - attack) / decay, curve)
    if released and not percussive:
        return release_level * (1.0 - _shape(since / release_frames, curve))
    return held


@njit(**_JIT)
def envelope_levels(t, since, released, release_level, release_frames, percussive, attack, decay,
                    sustain, curve):  # pragma: no cover - compiled
    """:func:`envelope_level` for arrays of voices (``t``, ``since``, ``released``,
    ``release_level``, ``release_frames``: one value per voice)."""
    levels = np.empty(t.size)
    for v in range(t.size):
        levels[v] = envelope_level(t[v], since[v], released[v], release_level[v], release_frames[v],
                                   percussive, attack, decay, sustain, curve)
    return levels


@njit(**_JIT)
def overtone_block(out_left, out_right, active, voice_id, fundamental, phase, detune, detune_target,
                   glide_step, harmonics, weights, coupling, gain, pan_left, pan_right, age,
                   released, release_age, release_level, release_frames, fading, fade_age,
                   fade_frames, percussive, attack, decay, sustain, curve,
                   sample_rate):  # pragma: no cover - compiled
    """One block of every sounding overtone voice, added into the outputs, and the voices' state
    advanced by a block (the arrays are the bank's, one row per slot; see
    :class:`engine.audio.overtones.OvertoneVoices`). Per voice: partial k >= 2 at k f (1 + d),
    d gliding one step (``glide_step``) towards its target within the block; amplitudes
    ``weights``, times 1 - d on the detuned partials with ``coupling``; partials that reach 0.45 x
    the sample rate are silent; the envelope (:func:`envelope_level`) and a steal / panic fade over
    ``fade_frames``, drawn as lines between the block's two ends, times the gain and the pan.
    ``phase`` holds the fundamental's phase in column 0 and the detuned base's in column 1."""
    frames = out_left.size
    slots = np.flatnonzero(active)
    voices, partials = slots.size, harmonics.size
    scale = 2.0 * np.pi / sample_rate
    nyquist = 0.45 * 2.0 * np.pi
    fund_phase, fund_step, base_phase = np.empty(voices), np.empty(voices), np.zeros(voices)
    base_start, base_end = np.zeros(voices), np.zeros(voices)
    amp_start, amp_end = np.empty((voices, partials)), np.empty((voices, partials))
    left_start, left_end = np.empty(voices), np.empty(voices)
    right_start, right_end = np.empty(voices), np.empty(voices)
    next_detune = np.empty(voices)
    for v in range(voices):
        slot = slots[v]
        d0 = detune[slot]
        d1 = d0 + (detune_target[slot] - d0) * glide_step
        next_detune[v] = d1
        step = fundamental[slot] * scale
        fund_phase[v], fund_step[v] = phase[slot, 0], step
        for k in range(partials):
            m0 = m1 = harmonics[k]
            a0 = a1 = weights[k]
            if k >= 1:  # the detuned partials
                m0, m1 = m0 * (1.0 + d0), m1 * (1.0 + d1)
                if coupling:  # the original: amplitude 2 - (1 + d)
                    a0 *= min(2.0, max(0.0, 1.0 - d0))
                    a1 *= min(2.0, max(0.0, 1.0 - d1))
            if max(step * m0, step * m1) >= nyquist:
                a0 = a1 = 0.0
            amp_start[v, k], amp_end[v, k] = a0, a1
        if partials > 1:
            base_phase[v] = phase[slot, 1]
            base_start[v] = step * (1.0 + d0)  # the detuned base, f (1 + d)
            base_end[v] = step * (1.0 + d1)
        t = float(age[slot])
        since = float(release_age[slot])
        g0 = gain[slot] * envelope_level(t, since, released[slot], release_level[slot],
                                         release_frames[slot], percussive, attack, decay, sustain, curve)
        g1 = gain[slot] * envelope_level(t + frames, since + frames, released[slot],
                                         release_level[slot], release_frames[slot], percussive,
                                         attack, decay, sustain, curve)
        if fading[slot]:
            g0 *= min(1.0, max(0.0, 1.0 - fade_age[slot] / fade_frames))
            g1 *= min(1.0, max(0.0, 1.0 - (fade_age[slot] + frames) / fade_frames))
        left_start[v], left_end[v] = pan_left[slot] * g0, pan_left[slot] * g1
        right_start[v], right_end[v] = pan_right[slot] * g0, pan_right[slot] * g1
    chebyshev_voices(out_left, out_right, fund_phase, fund_step, base_phase, base_start, base_end,
                     amp_start, amp_end, left_start, left_end, right_start, right_end)
    two_pi = 2.0 * np.pi
    for v in range(voices):
        slot = slots[v]
        phase[slot, 0] = np.mod(fund_phase[v] + fund_step[v] * frames, two_pi)
        if partials > 1:
            start, end = base_start[v], base_end[v]
            phase[slot, 1] = np.mod(base_phase[v] + start * frames + (end - start) * (frames + 1) / 2.0,
                                    two_pi)
        detune[slot] = next_detune[v]
        age[slot] += frames
        if released[slot]:
            release_age[slot] += frames
        done = False
        if fading[slot]:
            fade_age[slot] += frames
            done = fade_age[slot] >= fade_frames
        if percussive:
            done = done or age[slot] >= attack + release_frames[slot]
        else:
            done = done or (released[slot] and release_age[slot] >= release_frames[slot])
        if done:
            active[slot] = False
            voice_id[slot] = -1


def warm_up() -> None:
    """Compile the kernels now (seconds the first time; numba caches the machine code beside this
    file, so later processes load it in milliseconds). `make setup` calls this, so the first show
    on a fresh machine does not wait for the compiler."""
    from engine.audio.config import MixerConfig
    from engine.audio.overtones import OvertoneVoices

    one, two = np.zeros(1), np.zeros((1, 1))
    chebyshev_voices(np.zeros(2), np.zeros(2), one, one, one, one, one, two, two, one, one, one, one)
    partial_voices(np.zeros(2), np.zeros(2), two, two, two, two, two, one, one, one, one)
    for envelope in ("percussive", "adsr"):
        bank = OvertoneVoices(MixerConfig(envelope=envelope, block_size=64))
        bank.note_on(60, 60, 1.0, 261.6)
        bank.note_off(60)  # an ADSR release computes its starting level
        bank.render(np.zeros(64), np.zeros(64))
    _warm_up_granulator()


def _warm_up_granulator() -> None:
    """The granulator's kernels (:mod:`engine.audio.granular_kernels`), every path once."""
    from engine.audio.instrument import Host
    from engine.audio.instruments.granulator import GranulatorInstrument, GranulatorSettings

    frequencies = 440.0 * 2.0 ** ((np.arange(128) - 69) / 12.0)
    GranulatorInstrument(GranulatorSettings(max_grains=64, polyphony=2),
                         Host(48000, 64, frequencies)).warm_up()


if __name__ == "__main__":
    warm_up()
