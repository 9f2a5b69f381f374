"""Pure learner functions over a state pytree: new target, new approximant, step, many steps.

Every function takes the learner ``kind`` (static: it is baked into the compiled code) and a
:class:`LearnerState`, and returns a new state; nothing is mutated. ``step`` and ``run_steps`` leave
the step's loss and full gradient in the state. They are written for one learner; the batched
versions (``jax.vmap`` over a leading axis) are in :mod:`scenes.ldd.learners.group`.

Step semantics:
- the loss and gradient are evaluated at the current parameters (the knot on a fresh minibatch),
  then ``params -= learning_rate * grad``;
- a step whose loss is under ``stop_below`` stops the learner instead: no update, the gradient
  reported as 0 (nothing moves any more), the loss kept; a new target or approximant restarts it;
- the divergence guard runs at the end of every call: a non-finite loss or gradient, or a parameter
  that is not finite or beyond ``divergence_limit``, is replaced by a fresh approximant (its loss and
  gradient evaluated) and counted as a reset, so NaN or Inf never leave the learner.

Randomness: targets and approximants come from the threefry ``key``; minibatch rows come from a
SplitMix64 hash of (``stream``, draw number, row), cheap enough to run every step and reproducible
in numpy (:func:`scenes.ldd.learners.oracle.minibatch_rows`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from scenes.ldd.learners.kinds import Kind


class LearnerState(NamedTuple):
    """One learner (or, with a leading axis, a batch of them).

    Attributes:
        params: learned parameters (P,): cubic (a, b, c, d); knot phases (a, b, c).
        target: what is learned (T,): cubic coefficients; knot (n_x, n_y, n_z, a, b, c).
        points: sample points (N,): cubic x values, knot t grid.
        table: values precomputed per target for the loss (cubic (5, N); the knot needs none).
        key: raw threefry PRNG key (2,) uint32 for targets and approximants.
        stream: uint64 seed of the minibatch rows; draws: minibatches drawn so far (uint64).
        loss: loss of the last step (or of the evaluation after a renewal), a scalar.
        grad: gradient of that loss with respect to params (P,).
        steps: updates applied since the approximant was made.
        stopped: True once a step's loss fell under ``stop_below``.
        resets: divergence resets since the learner was created.
    """

    params: jax.Array
    target: jax.Array
    points: jax.Array
    table: jax.Array
    key: jax.Array
    stream: jax.Array
    draws: jax.Array
    loss: jax.Array
    grad: jax.Array
    steps: jax.Array
    stopped: jax.Array
    resets: jax.Array


_U64 = jnp.uint64


def minibatch_rows(stream: jax.Array, draw: jax.Array, size: int, n: int) -> jax.Array:
    """``size`` row indices in [0, n) for minibatch number ``draw`` (SplitMix64 finaliser)."""
    z = stream + (draw * _U64(size) + jnp.arange(size, dtype=_U64) + _U64(1)) * _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    z = z ^ (z >> _U64(31))
    return ((z >> _U64(32)) * _U64(n)) >> _U64(32)


def loss_and_grad(kind: Kind, state: LearnerState) -> tuple[jax.Array, jax.Array]:
    """Loss and gradient at the current parameters, on the rows the next step would use."""
    rows = None if kind.minibatch is None else minibatch_rows(
        state.stream, state.draws, kind.minibatch, kind.n_points)
    return jax.value_and_grad(kind.loss)(state.params, state.target, state.table, rows)


def _evaluate(kind: Kind, state: LearnerState) -> LearnerState:
    loss, grad = loss_and_grad(kind, state)
    return state._replace(loss=loss, grad=grad, draws=state.draws + _U64(1))


def _stream(key: jax.Array) -> jax.Array:
    bits = jax.random.bits(key, (2,), jnp.uint32).astype(_U64)
    return (bits[0] << _U64(32)) | bits[1]


def init(kind: Kind, key: jax.Array) -> LearnerState:
    """A learner with a fresh target and approximant, evaluated once; ``key`` is a raw PRNG key."""
    target_key, params_key, stream_key, key = jax.random.split(key, 4)
    target, points, table = kind.sample_target(target_key)
    state = LearnerState(
        params=kind.sample_params(params_key), target=target, points=points, table=table, key=key,
        stream=_stream(stream_key), draws=jnp.zeros((), _U64),
        loss=jnp.zeros((), jnp.float64), grad=jnp.zeros(kind.n_params, jnp.float64),
        steps=jnp.zeros((), jnp.int32), stopped=jnp.zeros((), bool), resets=jnp.zeros((), jnp.int32))
    return _evaluate(kind, state)


def new_target(kind: Kind, state: LearnerState) -> LearnerState:
    """A new target (and sample points); the approximant stays, evaluated against the new target."""
    key, target_key = jax.random.split(state.key)
    target, points, table = kind.sample_target(target_key)
    state = state._replace(target=target, points=points, table=table, key=key,
                           steps=jnp.zeros_like(state.steps), stopped=jnp.zeros_like(state.stopped))
    return _evaluate(kind, state)


def new_approximant(kind: Kind, state: LearnerState) -> LearnerState:
    """Fresh learned parameters for the current target, evaluated once."""
    key, params_key = jax.random.split(state.key)
    state = state._replace(params=kind.sample_params(params_key), key=key,
                           steps=jnp.zeros_like(state.steps), stopped=jnp.zeros_like(state.stopped))
    return _evaluate(kind, state)


def _learning_rate(kind: Kind, steps: jax.Array) -> jax.Array | float:
    halflife = kind.config.learning_rate_halflife
    if halflife is None:
        return kind.config.learning_rate
    return kind.config.learning_rate * jnp.exp2(-steps.astype(jnp.float64) / halflife)


def raw_step(kind: Kind, state: LearnerState) -> LearnerState:
    """One gradient step without the divergence guard (see the module docstring)."""
    loss, grad = loss_and_grad(kind, state)
    stop_now = ~state.stopped & (loss < kind.config.stop_below)
    moving = ~state.stopped & ~stop_now
    return state._replace(
        params=jnp.where(moving, state.params - _learning_rate(kind, state.steps) * grad, state.params),
        draws=state.draws + _U64(1),
        loss=jnp.where(state.stopped, state.loss, loss),
        grad=jnp.where(moving, grad, jnp.zeros_like(grad)),
        steps=state.steps + moving.astype(state.steps.dtype),
        stopped=state.stopped | stop_now)


def healthy(kind: Kind, state: LearnerState) -> jax.Array:
    """False when the learner diverged: a non-finite loss or gradient, or a parameter beyond the limit."""
    return (jnp.isfinite(state.loss) & jnp.all(jnp.isfinite(state.grad))
            & jnp.all(jnp.abs(state.params) <= kind.config.divergence_limit))


def reset_diverged(kind: Kind, state: LearnerState) -> LearnerState:
    """A fresh approximant in place of a diverged one, counted in ``resets``."""
    return new_approximant(kind, state)._replace(resets=state.resets + 1)


def guard(kind: Kind, state: LearnerState) -> LearnerState:
    """The state as it is when healthy, else reset (see :func:`healthy`)."""
    return jax.lax.cond(healthy(kind, state), lambda s: s, lambda s: reset_diverged(kind, s), state)


def step(kind: Kind, state: LearnerState) -> LearnerState:
    """One gradient step, guarded."""
    return guard(kind, raw_step(kind, state))


# What a step changes; the rest of the state (target, table, ...) stays out of the loop carry, so a
# batched loop does not copy the tables at every iteration.
_MOVING = ("params", "draws", "loss", "grad", "steps", "stopped")


def run_raw_steps(kind: Kind, state: LearnerState, count: jax.Array | int) -> LearnerState:
    """``count`` gradient steps fused in one loop, without the divergence guard."""
    def body(_: jax.Array, moving: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
        stepped = raw_step(kind, state._replace(**dict(zip(_MOVING, moving))))
        return tuple(getattr(stepped, name) for name in _MOVING)

    moving = jax.lax.fori_loop(0, count, body, tuple(getattr(state, name) for name in _MOVING))
    return state._replace(**dict(zip(_MOVING, moving)))


def run_steps(kind: Kind, state: LearnerState, count: jax.Array | int) -> LearnerState:
    """``count`` gradient steps fused in one loop (0 returns the state as it is), guarded at the end.

    Within the loop a non-finite value only propagates; the guard at the end resets it, so a call
    never returns NaN or Inf.
    """
    return guard(kind, run_raw_steps(kind, state, count))
