"""The compiled voice kernels (the engine's voice banks' and the first piece's overtone voice's)
against the closed-form sums they stand for.

Each kernel replaces sines per sample by rotating phasors; these tests compute every sample with
numpy's sine of the exact (quadratic, when the frequency glides) phase and compare.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.audio import kernels
from scenes.ldd.sound import kernels as overtone_kernels
from scenes.ldd.sound.settings import OvertoneSettings
from scenes.ldd.sound.voices import OvertoneVoices


def _ramp(frames: int) -> np.ndarray:
    return np.arange(1, frames + 1) / frames


def _phase(start: np.ndarray, step0: np.ndarray, step1: np.ndarray, frames: int) -> np.ndarray:
    """Phase at each frame of a frequency gliding linearly from step0 to step1 radians per frame:
    shape start.shape + (frames,)."""
    n = np.arange(frames)
    return (start[..., None] + step0[..., None] * n
            + (step1 - step0)[..., None] * n * (n + 1) / (2 * frames))


def _gains(rng, voices: int) -> list[np.ndarray]:
    return [rng.uniform(0.0, 0.4, voices) for _ in range(4)]


def _mix_reference(tone: np.ndarray, gains: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    ramp = _ramp(tone.shape[1])
    left0, left1, right0, right1 = (g[:, None] for g in gains)
    return (((left0 + (left1 - left0) * ramp) * tone).sum(axis=0),
            ((right0 + (right1 - right0) * ramp) * tone).sum(axis=0))


@pytest.mark.parametrize("voices,partials,frames", [(1, 1, 64), (5, 2, 256), (7, 8, 256),
                                                    (64, 16, 128), (3, 6, 8192)])
def test_chebyshev_voices_sum_the_fundamental_and_k_times_the_gliding_base(voices, partials, frames):
    rng = np.random.default_rng(voices * 100 + partials)
    fundamental_phase = rng.uniform(0, 2 * np.pi, voices)
    fundamental_step = rng.uniform(0.005, 0.2, voices)
    base_phase = rng.uniform(0, 2 * np.pi, voices)
    base_start = fundamental_step * rng.uniform(0.95, 1.05, voices)
    base_end = base_start * rng.uniform(0.98, 1.02, voices)
    base_end[0] = base_start[0]  # one voice not gliding
    amp_start = rng.uniform(0, 0.3, (voices, partials))
    amp_end = amp_start * rng.uniform(0.5, 1.5, (voices, partials))
    gains = _gains(rng, voices)
    left, right = np.full(frames, 0.25), np.full(frames, -0.5)  # the kernel adds to what is there

    overtone_kernels.chebyshev_voices(left, right, fundamental_phase, fundamental_step, base_phase,
                                      base_start, base_end, amp_start, amp_end, *gains)

    ramp = _ramp(frames)
    amplitude = amp_start[:, :, None] + (amp_end - amp_start)[:, :, None] * ramp  # (V, K, N)
    tone = amplitude[:, 0] * np.sin(_phase(fundamental_phase, fundamental_step, fundamental_step,
                                           frames))
    base = _phase(base_phase, base_start, base_end, frames)
    for k in range(2, partials + 1):
        tone += amplitude[:, k - 1] * np.sin(k * base)
    want_left, want_right = _mix_reference(tone, gains)
    # Rotating phasors in float64 drift by rounding only: under -180 dB over a usual block, and
    # under -140 dB over the longest block the settings allow (8192 frames, a gliding base).
    tolerance = 1e-9 if frames <= 1024 else 1e-7
    assert np.max(np.abs(left - 0.25 - want_left)) < tolerance
    assert np.max(np.abs(right + 0.5 - want_right)) < tolerance


@pytest.mark.parametrize("glide", [False, True])
@pytest.mark.parametrize("voices,partials,frames", [(1, 1, 32), (9, 6, 256), (40, 3, 1024)])
def test_partial_voices_give_every_partial_its_own_gliding_frequency(voices, partials, frames, glide):
    rng = np.random.default_rng(voices + partials + frames)
    phase = rng.uniform(0, 2 * np.pi, (voices, partials))
    step_start = rng.uniform(0.005, 0.5, (voices, partials))
    step_end = step_start * rng.uniform(0.97, 1.03, (voices, partials)) if glide else step_start.copy()
    amp_start = rng.uniform(0, 0.3, (voices, partials))
    amp_end = amp_start * rng.uniform(0.2, 1.0, (voices, partials))
    gains = _gains(rng, voices)
    left, right = np.zeros(frames), np.zeros(frames)

    kernels.partial_voices(left, right, phase, step_start, step_end, amp_start, amp_end, *gains)

    ramp = _ramp(frames)
    amplitude = amp_start[:, :, None] + (amp_end - amp_start)[:, :, None] * ramp
    tone = (amplitude * np.sin(_phase(phase, step_start, step_end, frames))).sum(axis=1)
    want_left, want_right = _mix_reference(tone, gains)
    assert np.max(np.abs(left - want_left)) < 1e-9
    assert np.max(np.abs(right - want_right)) < 1e-9


def test_the_kernels_leave_their_inputs_as_they_were_and_repeat_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    args = [rng.uniform(0, 1, 4) for _ in range(5)] + [rng.uniform(0, 1, (4, 8)) for _ in range(2)] \
        + _gains(rng, 4)
    before = [a.copy() for a in args]
    outputs = []
    for _ in range(2):
        left, right = np.zeros(256), np.zeros(256)
        overtone_kernels.chebyshev_voices(left, right, *args)
        outputs.append((left, right))
    assert all(np.array_equal(a, b) for a, b in zip(args, before))
    assert np.array_equal(outputs[0][0], outputs[1][0]) and np.array_equal(outputs[0][1], outputs[1][1])


def _perc(t: np.ndarray, attack: float, release: float, curve: float) -> np.ndarray:
    """Env.perc's level at t frames: SuperCollider's curved segments up, then down."""
    def shape(x):
        x = np.clip(x, 0.0, 1.0)
        return (1.0 - np.exp(curve * x)) / (1.0 - np.exp(curve))
    return np.where(t < attack, shape(t / attack), 1.0 - shape((t - attack) / release))


@pytest.mark.parametrize("partials,coupling", [(1, False), (4, False), (8, True)])
def test_an_overtone_block_is_the_closed_form_note_with_its_detune_gliding(partials, coupling):
    """One percussive note through the whole fused block
    (:func:`scenes.ldd.sound.kernels.overtone_block`), block after block: partial 1 at f, partial
    k >= 2 at k f (1 + d) with d gliding one-pole towards a new detune, amplitudes k^-rolloff
    (times 1 - d when coupled), the envelope drawn as lines between block ends, the gain and the
    pan; the voice ends when its release does."""
    config = OvertoneSettings(partials=partials, amplitude_coupling=coupling, attack=0.01,
                              release=0.05, bass_release=0.05, detune_glide=0.02)
    n, rate = 256, 48000
    bank = OvertoneVoices(config, rate, n)
    bank.set_detune(0.02)  # the detune a new note starts at
    bank.note_on(7, 69, 0.8, 440.0)
    bank.set_detune(0.1)  # then glides towards
    slot = int(np.flatnonzero(bank.active)[0])
    gain, pan_left, pan_right = bank.gain[slot], bank.pan_left[slot], bank.pan_right[slot]
    weights = np.arange(1, partials + 1) ** -config.rolloff
    weights = weights / weights.sum()
    step = 2 * np.pi * 440.0 / rate
    attack, release = config.attack * rate, config.release_for(69) * rate
    detune, fundamental, base = 0.02, 0.0, 0.0
    blocks = int(np.ceil((attack + release) / n))
    for block in range(blocks):
        left, right = np.zeros(n), np.zeros(n)
        bank.render(left, right)
        d1 = detune + (0.1 - detune) * bank.glide_step
        ramp = _ramp(n)
        amplitude = weights[:, None] * np.ones(n)
        if coupling:
            a0, a1 = 1.0 - detune, 1.0 - d1
            amplitude[1:] *= a0 + (a1 - a0) * ramp
        tone = amplitude[0] * np.sin(_phase(np.array(fundamental), np.array(step), np.array(step), n))
        base_phase = _phase(np.array(base), np.array(step * (1 + detune)), np.array(step * (1 + d1)), n)
        for k in range(2, partials + 1):
            tone = tone + amplitude[k - 1] * np.sin(k * base_phase)
        e0, e1 = _perc(np.array([block * n, (block + 1) * n], float), attack, release, config.curve)
        envelope = gain * (e0 + (e1 - e0) * ramp)
        assert np.max(np.abs(left - pan_left * envelope * tone)) < 1e-9, block
        assert np.max(np.abs(right - pan_right * envelope * tone)) < 1e-9, block
        fundamental += step * n
        base += step * (1 + detune) * n + step * (d1 - detune) * (n + 1) / 2
        detune = d1
    assert not bank.active.any() and bank.voice_id[slot] == -1
