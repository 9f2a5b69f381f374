"""A learner that counts its steps and sums what it is fed: for the trainer's tests (its process
tests make it again in the training process, which imports it from here)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from engine.learners.protocol import Learner


class Counting(Learner):
    name = "counting"
    feed_example = {"x": jax.ShapeDtypeStruct((3,), np.float32)}

    def init(self, seed):
        return {"steps": jnp.zeros((), jnp.int32), "fed": jnp.zeros((), jnp.float32)}

    def step(self, state):
        return {**state, "steps": state["steps"] + 1}

    def absorb(self, state, data):
        return {**state, "fed": state["fed"] + data["x"].sum()}

    def total(self, state, extra):
        """What it was fed plus ``extra`` (a job for ``Trainer.ask``)."""
        return state["fed"] + extra
