"""What a learner is: pure jax functions over a state pytree that a trainer runs.

A learner's **state** is one jax pytree holding everything that changes while it trains: the network's
parameters, the optimizer's state (optax), step counters, and its random key (a raw ``uint32[2]``
threefry key, so a checkpoint can store it as plain numbers). The learner object itself holds only
what does not change (its configuration, its data tables) and is baked into the compiled code.

Networks are plain jax functions on parameter pytrees and optimizers come from optax (the choice is
explained in docs/learners.md). Every method here is pure and traced under ``jax.jit``: no Python
side effects, no host reads.

    class Regressor(Learner[TrainState]):
        name, version, precision = "regressor", 1, "float32"
        def init(self, seed): ...               # a fresh state from a uint32 seed
        def step(self, state): ...              # one optimizer update
        def summary(self, state): return {"loss": state.loss}

Run one with :class:`engine.learners.trainer.Trainer` (beside the show, or paced by show time) and
save it with :mod:`engine.learners.checkpoint`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, TypeVar

import jax

from engine.learners.precision import Precision

State = TypeVar("State")  # a jax pytree


class Learner(ABC, Generic[State]):
    """A model trained on stage. Override :meth:`init` and :meth:`step`; the rest has defaults.

    Attributes:
        name: names the learner in checkpoints, logs and metrics ("cubic", "regressor", ...).
        version: the layout of its state; bump it when the pytree changes, so an older checkpoint is
            refused instead of loaded wrongly.
        precision: "float32" (the default) or "float64": the width the learner is compiled and run
            at (:mod:`engine.learners.precision`), independent of any other learner in the process.
    """

    name: str = "learner"
    version: ClassVar[int] = 1
    precision: Precision = "float32"
    # True: a trainer fuses several steps in one compiled loop (:meth:`run`). False: it calls one
    # compiled step at a time from Python. XLA's CPU backend runs convolutions inside a loop (or a
    # conditional) body several times slower than at the top level (jax issue #12868; measured
    # 3x on the grain VAE), so a convolutional learner says False.
    fused_steps: ClassVar[bool] = True
    # A learner that takes data as the show goes (the sound it hears, the notes played) gives an
    # example of one piece of it (jax.ShapeDtypeStruct leaves, fixed shapes: it is compiled once,
    # at load) and :meth:`absorb`; :meth:`engine.learners.trainer.Trainer.feed` hands pieces over.
    feed_example: Any = None

    @abstractmethod
    def init(self, seed: jax.Array) -> State:
        """A fresh state from ``seed`` (a uint32 scalar): the same seed, the same state."""

    @abstractmethod
    def step(self, state: State) -> State:
        """One training step (one optimizer update)."""

    def run(self, state: State, count: jax.Array) -> State:
        """``count`` steps (an int32 scalar, 0 allowed) fused in one compiled loop."""
        return jax.lax.fori_loop(0, count, lambda _, s: self.step(s), state)

    def summary(self, state: State) -> dict[str, jax.Array]:
        """What the piece shows of the learner (loss terms, a gradient norm, ...): small arrays,
        read to the host after each published step. Default: nothing."""
        return {}

    def absorb(self, state: State, data: Any) -> State:
        """Take one piece of data shaped as :attr:`feed_example` into the state (before the next
        step). Only for a learner with a ``feed_example``."""
        raise NotImplementedError(f"learner {self.name} takes no data as the show goes")

    def describe(self) -> dict[str, Any]:
        """The settings that shaped the state, as JSON values (kept in a checkpoint's header; a
        checkpoint made with other settings loads with a warning). Default: none."""
        return {}

    def recipe(self) -> tuple[Any, tuple]:
        """How to make this learner again in a training process (``Trainer(process=True)``,
        :mod:`engine.learners.training_process`): a picklable callable and its arguments (the
        class and its settings and data). Default: the learner itself pickled, which works for a
        learner of plain attributes (an optax optimizer's closures do not pickle)."""
        return _same, (self,)


def _same(learner: Any) -> Any:
    return learner
