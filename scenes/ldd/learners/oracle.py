"""The learners in plain numpy with hand-derived gradients: the test oracle and the benchmark peer.

The original piece computed its gradients by hand like this. Every function broadcasts over leading
batch axes, so ``params`` may be (P,) for one learner or (B, P) for B of them.

Loss (the paper's, with epsilon): L = mean_i sqrt(r_i^2 + eps) where r_i is the learned curve minus
the target at sample i; for the knot r_i is a 3-vector and r_i^2 its squared length.
"""

from __future__ import annotations

import numpy as np


def minibatch_rows(stream: int, draw: int, size: int, n: int) -> np.ndarray:
    """The row indices the jax learner uses for minibatch number ``draw`` (same SplitMix64 hash)."""
    with np.errstate(over="ignore"):
        z = np.uint64(stream) + (np.uint64(draw) * np.uint64(size) + np.arange(size, dtype=np.uint64)
                                 + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        return ((z >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32)


def cubic_features(x: np.ndarray) -> np.ndarray:
    """(..., N) x values -> (..., N, 4) rows [x^3, x^2, x, 1]."""
    return np.stack([x ** 3, x ** 2, x, np.ones_like(x)], axis=-1)


def cubic_values(coefficients: np.ndarray, x: np.ndarray) -> np.ndarray:
    """f(x) = a x^3 + b x^2 + c x + d for (..., 4) coefficients at (..., N) x."""
    a, b, c, d = (coefficients[..., k, None] for k in range(4))
    return ((a * x + b) * x + c) * x + d


def cubic_loss_and_grad(params: np.ndarray, target: np.ndarray, x: np.ndarray,
                        epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """Loss (...,) and gradient (..., 4) of the cubic learner at ``params``.

    dL/dtheta_k = mean_i (r_i / s_i) * x_i^(3-k), with r = f_theta(x) - f(x) and s = sqrt(r^2 + eps).
    """
    residual = cubic_values(params, x) - cubic_values(target, x)
    spread = np.sqrt(residual * residual + epsilon)
    slope = residual / spread
    grad = np.einsum("...n,...nk->...k", slope, cubic_features(x)) / x.shape[-1]
    return spread.mean(axis=-1), grad


def knot_values(frequencies: np.ndarray, phases: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Points (..., N, 3) of the knot cos(n_c t + phase_c) for (..., 3) frequencies and phases."""
    return np.cos(frequencies[..., None, :] * t[..., :, None] + phases[..., None, :])


def knot_loss_and_grad(phases: np.ndarray, target: np.ndarray, t: np.ndarray,
                       epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """Loss (...,) and gradient (..., 3) of the knot learner on the samples ``t`` (..., N).

    ``target`` is (..., 6): frequencies n_x, n_y, n_z then the target phases. With
    r_c = cos(n_c t + p_c) - cos(n_c t + a_c) and s = sqrt(sum_c r_c^2 + eps):
    dL/dp_c = mean_t (r_c / s) * -sin(n_c t + p_c).
    """
    frequencies = target[..., :3]
    angle = frequencies[..., None, :] * t[..., :, None] + phases[..., None, :]
    residual = np.cos(angle) - knot_values(frequencies, target[..., 3:], t)
    spread = np.sqrt((residual * residual).sum(axis=-1) + epsilon)
    grad = -(residual / spread[..., None] * np.sin(angle)).mean(axis=-2)
    return spread.mean(axis=-1), grad
