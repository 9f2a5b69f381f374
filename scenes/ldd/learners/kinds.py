"""The two learners of the piece as jax functions: what a target is, what is learned, the loss.

A kind knows how to draw a target (with its sample points and a table of values precomputed for
them), how to draw an approximant for it, and its loss; everything generic (stepping, stopping, the
divergence guard, batching) is in :mod:`scenes.ldd.learners.core`. The loss is the paper's
E[sqrt((f - f_theta)^2 + eps)]; jax derives its gradient (the numpy twin in
:mod:`scenes.ldd.learners.oracle` derives it by hand).

Precomputed tables make a step cheap, with no trigonometry per sample: the cubic keeps the powers of
its x values and the target's values per target; the knot gathers cos(n t) and sin(n t) from one
table shared by all knots.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from scenes.ldd.learners.config import CubicConfig, KnotConfig


class Cubic:
    """Learn theta = (a, b, c, d) of f(x) = a x^3 + b x^2 + c x + d from ``samples`` x values.

    Full batch: every sample counts in every step. Table (5, samples): x^3, x^2, x, 1 and f(x).
    """

    name = "cubic"
    minibatch = None

    def __init__(self, config: CubicConfig | None = None) -> None:
        self.config = config or CubicConfig()
        self.n_params = 4
        self.n_target = 4
        self.n_points = self.config.samples

    def sample_target(self, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """New target coefficients (4,), sample x values (samples,) and their table (5, samples)."""
        c = self.config
        coefficients_key, x_key = jax.random.split(key)
        target = jax.random.uniform(coefficients_key, (4,), jnp.float64, *c.coefficient_range)
        x = jax.random.uniform(x_key, (c.samples,), jnp.float64, *c.x_range)
        powers = jnp.stack([x ** 3, x ** 2, x, jnp.ones_like(x)])
        return target, x, jnp.concatenate([powers, (target @ powers)[None]])

    def sample_params(self, key: jax.Array) -> jax.Array:
        return jax.random.uniform(key, (4,), jnp.float64, *self.config.init_range)

    def loss(self, params: jax.Array, target: jax.Array, table: jax.Array, rows: None) -> jax.Array:
        residual = params @ table[:4] - table[4]
        return jnp.mean(jnp.sqrt(residual * residual + self.config.epsilon))


class Knot:
    """Learn the phases (a, b, c) of a Lissajous knot; the integer frequencies come from the target.

    The target vector is (n_x, n_y, n_z, a, b, c); the sample points are the t grid
    0, t_step, ... < t_max, of which each step uses a minibatch of rows drawn with replacement.
    cos(k t) and sin(k t) for every allowed frequency k and every t of the grid are one table shared
    by all knots (``basis``, baked into the compiled code), so a step gathers its rows from it and
    computes cos(n t + p) = cos(n t) cos(p) - sin(n t) sin(p) with no trigonometry per sample.
    """

    name = "knot"

    def __init__(self, config: KnotConfig | None = None) -> None:
        self.config = config or KnotConfig()
        self.n_params = 3
        self.n_target = 6
        self.n_points = self.config.points
        self.minibatch = self.config.minibatch
        t = np.arange(self.n_points) * self.config.t_step
        angle = np.arange(self.config.frequency_range[1] + 1)[:, None] * t
        self.basis = np.concatenate([np.cos(angle), np.sin(angle)]).ravel()  # (2 (K + 1) N,)

    def sample_target(self, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        c = self.config
        frequency_key, phase_key = jax.random.split(key)
        low, high = c.frequency_range
        frequencies = jax.random.randint(frequency_key, (3,), low, high + 1).astype(jnp.float64)
        phases = jax.random.uniform(phase_key, (3,), jnp.float64, *c.phase_range)
        t = jnp.arange(self.n_points, dtype=jnp.float64) * c.t_step
        return jnp.concatenate([frequencies, phases]), t, jnp.zeros(0, jnp.float64)

    def sample_params(self, key: jax.Array) -> jax.Array:
        return jax.random.uniform(key, (3,), jnp.float64, *self.config.init_range)

    def loss(self, params: jax.Array, target: jax.Array, table: jax.Array, rows: jax.Array) -> jax.Array:
        """Mean distance between the learned and the target knot at the grid ``rows`` (M,)."""
        n, sines = self.n_points, self.config.frequency_range[1] + 1
        cos_row = target[:3].astype(jnp.int32)[:, None] * n + rows[None, :].astype(jnp.int32)
        basis = jnp.asarray(self.basis)
        cos_nt, sin_nt = basis[cos_row], basis[cos_row + sines * n]  # (3, M) each
        learned = cos_nt * jnp.cos(params)[:, None] - sin_nt * jnp.sin(params)[:, None]
        wanted = cos_nt * jnp.cos(target[3:])[:, None] - sin_nt * jnp.sin(target[3:])[:, None]
        residual = learned - wanted
        return jnp.mean(jnp.sqrt(jnp.sum(residual * residual, axis=0) + self.config.epsilon))


Kind = Cubic | Knot


def make_kind(name: str, config: CubicConfig | KnotConfig | None = None) -> Kind:
    """The learner kind called ``name`` ("cubic" or "knot") with ``config`` (defaults if None)."""
    kinds = {"cubic": (Cubic, CubicConfig), "knot": (Knot, KnotConfig)}
    if name in kinds:
        kind, config_type = kinds[name]
        if config is not None and not isinstance(config, config_type):
            raise TypeError(f"a {name} learner takes a {config_type.__name__}, not {type(config).__name__}")
        return kind(config)
    raise ValueError(f"unknown learner kind {name!r}; expected 'cubic' or 'knot'")
