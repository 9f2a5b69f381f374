"""The grain VAE learns real recordings (issue 21): from scratch, with a fixed seed, on four of the
recordings in ../shared/data/audio (piano, frame drum, voice, vibraphone), at batch 16, the held-out
error falls under half the held-out power within 1,000 steps."""

from __future__ import annotations

import jax

from engine.learners.trainer import Trainer
from scenes.granolar.data import load_grains
from scenes.granolar.learner import GrainVae, VaeConfig
from tests.conftest import SHARED_DATA

RECORDINGS = [SHARED_DATA / "audio" / f"smstools_{name}.wav"
              for name in ("piano", "bendir", "singing-female", "vibraphone-C6")]


def test_from_scratch_the_held_out_error_falls_under_half_the_power_within_1000_steps():
    grains = load_grains(RECORDINGS, 48000, seed=0)
    assert len(grains.train) > 2000 and len(grains.held_out) > 200
    learner = GrainVae(grains, VaeConfig(batch=16))
    trainer = Trainer(learner, seed=1, paced_steps_per_tick=25)
    trainer.load()
    evaluate = jax.jit(learner.held_out_error)
    state = trainer.latest.state
    errors = [float(evaluate(state.params, state.stats))]
    assert errors[0] > 0.9  # untrained: about the power itself
    while trainer.latest.steps < 1000 and errors[-1] >= 0.5:
        trainer.tick(0.0)
        state = trainer.latest.state
        errors.append(float(evaluate(state.params, state.stats)))
    assert errors[-1] < 0.5, f"held-out error after {trainer.latest.steps} steps: {errors[-1]:.3f}"
    summary = trainer.latest.summary
    assert summary["reconstruction"] > 0 and summary["kl"] > 0
