"""The piece's curve learners (cubic, knot) as a :class:`~engine.learners.protocol.Learner`.

:class:`CurveLearners` is ``size`` learners of one kind as one batched
:class:`~scenes.ldd.learners.core.LearnerState` (the pytree: parameters, targets, sample tables, the
threefry key, the minibatch stream and its draw count, the last loss and gradient, step counters).
Plain gradient descent is the optimizer (the paper's update, with its stop threshold and divergence
guard, :mod:`scenes.ldd.learners.core`); there is no optax state. float64, as the piece always ran.

:class:`~scenes.ldd.learners.group.LearnerGroup` compiles these functions for a scene; a
:class:`~engine.learners.trainer.Trainer` or :mod:`~engine.learners.checkpoint` takes them as any
other learner.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from scenes.ldd.learners import core
from scenes.ldd.learners.config import CubicConfig, KnotConfig
from scenes.ldd.learners.kinds import Kind, make_kind
from engine.learners.protocol import Learner


class CurveLearners(Learner[core.LearnerState]):
    """``size`` cubic or knot learners with one config; state leaves have a leading axis ``size``."""

    version = 1
    precision = "float64"  # the knot's 1e-6 stop threshold is below float32 resolution at t ~ 100

    def __init__(self, kind: str | Kind, config: CubicConfig | KnotConfig | None = None, size: int = 1) -> None:
        if size < 1:
            raise ValueError(f"a learner group needs at least one learner, got size {size}")
        self.kind: Kind = make_kind(kind, config) if isinstance(kind, str) else kind
        self.name = self.kind.name
        self.size = size

    def init(self, seed: jax.Array) -> core.LearnerState:
        """Learner i starts from key fold_in(PRNGKey(seed), i)."""
        base = jax.random.PRNGKey(seed)
        keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(self.size))
        return jax.vmap(partial(core.init, self.kind))(keys)

    def step(self, state: core.LearnerState) -> core.LearnerState:
        return self.run(state, jnp.ones((), jnp.int32))

    def run(self, state: core.LearnerState, count: jax.Array) -> core.LearnerState:
        """``count`` steps: an int32 scalar for every learner, or (size,) counts, one per learner."""
        kind = self.kind
        counts = jnp.broadcast_to(count, (self.size,))
        state = jax.vmap(partial(core.run_raw_steps, kind))(state, counts)
        # The guard behind one real branch for the whole batch: vmapped, the guard's per-learner
        # branch becomes a select that computes the reset for every learner, so it only runs when
        # one diverged.
        all_healthy = jnp.all(jax.vmap(partial(core.healthy, kind))(state))
        return jax.lax.cond(all_healthy, lambda s: s, jax.vmap(partial(core.guard, kind)), state)

    def run_each(self, state: core.LearnerState, count: jax.Array,
                 most: int) -> tuple[core.LearnerState, jax.Array]:
        """``count`` (<= ``most``) single steps in one loop, each exactly :meth:`step` (its own
        guard), returning the state and every step's loss: (most, size), rows past ``count`` 0.
        The notes of one tick step this way: one call, each note still detuned by its own loss."""
        def body(index: jax.Array, carry: tuple[core.LearnerState, jax.Array]):
            state, losses = carry
            state = self.step(state)
            return state, losses.at[index].set(state.loss)

        losses = jnp.zeros((most, self.size), jnp.float64)
        return jax.lax.fori_loop(0, count, body, (state, losses))

    def renew(self, state: core.LearnerState, targets: jax.Array, approximants: jax.Array) -> core.LearnerState:
        """New targets where ``targets`` (size,) is True, new approximants where ``approximants`` is."""
        kind = self.kind

        def one(s: core.LearnerState, target: jax.Array, approximant: jax.Array) -> core.LearnerState:
            s = jax.lax.cond(target, partial(core.new_target, kind), lambda s: s, s)
            return jax.lax.cond(approximant, partial(core.new_approximant, kind), lambda s: s, s)

        return jax.vmap(one)(state, targets, approximants)

    def summary(self, state: core.LearnerState) -> dict[str, jax.Array]:
        return {"loss": state.loss, "grad": state.grad, "params": state.params, "target": state.target,
                "steps": state.steps, "stopped": state.stopped, "resets": state.resets}

    def pack(self, state: core.LearnerState) -> jax.Array:
        """One (size, 1 + 2P + T + 3) float64 array of the summary, so a tick reads it in one transfer."""
        columns = [state.loss[:, None], state.grad, state.params, state.target,
                   state.steps[:, None].astype(jnp.float64), state.stopped[:, None].astype(jnp.float64),
                   state.resets[:, None].astype(jnp.float64)]
        return jnp.concatenate(columns, axis=1)

    def describe(self) -> dict[str, Any]:
        return {"size": self.size, "config": self.kind.config.model_dump(mode="json")}
