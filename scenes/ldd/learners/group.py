"""What scenes use: a group of learners of one kind, compiled at load, stepped once per tick.

A :class:`LearnerGroup` holds ``size`` learners (one per held note, several knots at once, or just
one) as one batched :class:`~scenes.ldd.learners.core.LearnerState`. Each method is one call of a
function compiled ahead of time in :meth:`LearnerGroup.load`, so nothing compiles during the show,
and there is no Python loop over learners. After a call, :attr:`LearnerGroup.view` holds the loss,
gradient, parameters and target of every learner as numpy arrays, read back from the device once,
on first use.

    group = LearnerGroup("cubic", CubicConfig(learning_rate=0.02), size=1, seed=seed)
    group.load()                     # compiles (or reads the persistent cache)
    group.renew()                    # new target and approximant for every learner
    group.step(1)                    # one gradient step each
    loss, grad = group.view.loss[0], group.view.grad[0]
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from functools import partial
from typing import Any, Sequence

import jax
import numpy as np

from engine.learners import checkpoint, precision
from scenes.ldd.learners import core, oracle
from scenes.ldd.learners.config import CubicConfig, KnotConfig
from scenes.ldd.learners.curves import CurveLearners
from scenes.ldd.learners.kinds import Kind

log = logging.getLogger("showrunner.learners")

Which = int | Sequence[int] | np.ndarray | None
EACH_MOST = 64  # single steps one compiled :meth:`LearnerGroup.step_each` call takes (more: more calls)
# Compiled functions by (kind, config, size, precision), shared by the groups alike in a process.
_COMPILED: dict[tuple, dict[str, Any]] = {}


@dataclass(frozen=True)
class LearnerView:
    """Every learner's state after the last call, as numpy arrays (leading axis: the learner).

    Attributes:
        loss: (B,) loss of each learner's last step (after a renewal: its first evaluation).
        grad: (B, P) gradient of that loss with respect to the parameters (0 once stopped).
        params: (B, P) learned parameters; target: (B, T) what they learn.
        steps: (B,) updates since the approximant was made; stopped: (B,) converged flags;
        resets: (B,) divergence resets so far.
    """

    loss: np.ndarray
    grad: np.ndarray
    params: np.ndarray
    target: np.ndarray
    steps: np.ndarray
    stopped: np.ndarray
    resets: np.ndarray


def _init(learners: CurveLearners, seed: jax.Array) -> tuple[core.LearnerState, jax.Array]:
    state = learners.init(seed)
    return state, learners.pack(state)


def _step(learners: CurveLearners, state: core.LearnerState,
          counts: jax.Array) -> tuple[core.LearnerState, jax.Array]:
    state = learners.run(state, counts)
    return state, learners.pack(state)


def _step_each(learners: CurveLearners, state: core.LearnerState,
               count: jax.Array) -> tuple[core.LearnerState, jax.Array, jax.Array]:
    state, losses = learners.run_each(state, count, EACH_MOST)
    return state, learners.pack(state), losses


def _renew(learners: CurveLearners, state: core.LearnerState, targets: jax.Array,
           approximants: jax.Array) -> tuple[core.LearnerState, jax.Array]:
    state = learners.renew(state, targets, approximants)
    return state, learners.pack(state)


class LearnerGroup:
    """``size`` learners of one kind ("cubic" or "knot") with one config and one seed.

    Call :meth:`load` once (in the scene's ``load``); it compiles everything. The same seed gives
    the same targets and trajectories, in any process, live or offline.
    """

    def __init__(self, kind: str, config: CubicConfig | KnotConfig | None = None, size: int = 1,
                 seed: int = 0) -> None:
        self.learners = CurveLearners(kind, config, size)  # the pure functions (the Learner protocol)
        self.kind: Kind = self.learners.kind
        self.config = self.kind.config
        self.size = size
        self.seed = seed
        self.compile_seconds = 0.0
        self._compiled: dict[str, Any] = {}
        self._state: core.LearnerState | None = None
        self._packed: jax.Array | None = None
        self._view: LearnerView | None = None
        self._points: np.ndarray | None = None
        self._resets_seen = 0
        self._events: list[str] = []

    # Loading -------------------------------------------------------------------------------------
    def load(self) -> None:
        """Compile init, step and renew for this kind, config and size; then start from ``seed``.
        Groups alike (the same kind, config and size: a piece's cubic in its first and last parts)
        share one compilation in a process: the functions are pure, and tracing them again cost a
        second each at every start (a restarted show's too)."""
        started = time.perf_counter()
        learners, size = self.learners, self.size
        key = (type(self.kind), repr(self.config), size, learners.precision)
        shared = key in _COMPILED
        if not shared:
            seed = np.uint32(0)
            with precision.scope(learners.precision):
                init = jax.jit(partial(_init, learners)).lower(seed).compile()
                state_shape, _ = jax.eval_shape(partial(_init, learners), seed)
                counts = jax.ShapeDtypeStruct((size,), np.int32)
                mask = jax.ShapeDtypeStruct((size,), np.bool_)
                _COMPILED[key] = {
                    "init": init,
                    # The state is donated: its buffers are reused for the new state instead of copied.
                    "step": jax.jit(partial(_step, learners), donate_argnums=0).lower(state_shape, counts).compile(),
                    "step_each": jax.jit(partial(_step_each, learners), donate_argnums=0).lower(
                        state_shape, jax.ShapeDtypeStruct((), np.int32)).compile(),
                    "renew": jax.jit(partial(_renew, learners), donate_argnums=0).lower(
                        state_shape, mask, mask).compile(),
                }
        self._compiled = _COMPILED[key]
        self.compile_seconds = time.perf_counter() - started
        log.info("%s learners x%d %s in %.2f s on %s", self.kind.name, size,
                 "shared the compilation of a group alike" if shared else "compiled", self.compile_seconds,
                 jax.default_backend())
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Every learner back to its first target and approximant for ``seed`` (default: the group's)."""
        if seed is not None:
            self.seed = seed
        self._apply(self._call("init", np.uint32(self.seed & 0xFFFFFFFF)))
        self._resets_seen = 0

    # Per tick -------------------------------------------------------------------------------------
    def renew(self, which: Which = None, target: bool = True, approximant: bool = True) -> None:
        """New target and/or new approximant for the learners ``which`` (index, indices or mask; all if None)."""
        selected = self._mask(which)
        self._apply(self._call("renew", self._state, selected & target, selected & approximant))
        self._points = None

    def step(self, count: int | Sequence[int] | np.ndarray = 1, which: Which = None) -> None:
        """``count`` fused gradient steps (one number, or one per learner) for ``which`` (all if None)."""
        selected = self._mask(which)
        counts = np.zeros(self.size, np.int32)
        counts[selected] = np.asarray(count, np.int32)[selected] if np.ndim(count) else count
        if not counts.any():
            return
        self._apply(self._call("step", self._state, counts))

    def step_each(self, count: int) -> np.ndarray:
        """``count`` single gradient steps of every learner, each exactly one :meth:`step` call
        (same losses and parameters, bit for bit), in one compiled call per 64 steps instead of
        ``count`` calls: a tick's notes step this way. Returns every step's loss, (count, size)."""
        losses = []
        while count > 0:
            take = min(count, EACH_MOST)
            with precision.scope("float64"):
                self._state, self._packed, chunk = self._compiled["step_each"](self._state, np.int32(take))
            self._view = None
            losses.append(np.asarray(chunk)[:take])
            count -= take
        return np.concatenate(losses) if losses else np.zeros((0, self.size))

    def take_events(self) -> list[str]:
        """Events since the last call ("learner_reset" per diverged learner), for the metrics line."""
        self.view  # noqa: B018  (reading the state notes any reset)
        events, self._events = self._events, []
        return events

    # Reading ---------------------------------------------------------------------------------------
    @property
    def view(self) -> LearnerView:
        """Loss, gradient, parameters and target of every learner (one device read per change)."""
        if self._view is None:
            if self._packed is None:
                raise RuntimeError("LearnerGroup.load() was not called")
            packed = np.asarray(self._packed)
            p, t = self.kind.n_params, self.kind.n_target
            self._view = LearnerView(
                loss=packed[:, 0], grad=packed[:, 1:1 + p], params=packed[:, 1 + p:1 + 2 * p],
                target=packed[:, 1 + 2 * p:1 + 2 * p + t], steps=packed[:, -3].astype(np.int64),
                stopped=packed[:, -2] > 0, resets=packed[:, -1].astype(np.int64))
            self._note_resets()
        return self._view

    def wait(self) -> None:
        """Block until the last call has finished computing (for timing; reading :attr:`view` waits too)."""
        if self._packed is not None:
            self._packed.block_until_ready()

    # Checkpoints -----------------------------------------------------------------------------------
    @property
    def state(self) -> core.LearnerState:
        """The batched state pytree (jax arrays; the next call donates them: copy to keep them)."""
        if self._state is None:
            raise RuntimeError("LearnerGroup.load() was not called")
        return self._state

    def save(self, path: str | Path) -> None:
        """Write every learner's state to ``path`` (atomic; :mod:`engine.learners.checkpoint`)."""
        checkpoint.save(path, self.learners, self.state)

    def restore(self, path: str | Path) -> None:
        """Every learner as saved in ``path``: the same view, the same trajectories from here.

        Raises :class:`engine.errors.UserError` (one line) for a missing, corrupt or mismatched file.
        """
        state = checkpoint.load(path, self.learners)
        # A run of 0 steps returns the state as it is, with its packed view: no extra compilation.
        self._apply(self._call("step", state, np.zeros(self.size, np.int32)))
        self._points = None
        self._resets_seen = int(np.asarray(state.resets).sum())

    def points(self) -> np.ndarray:
        """(B, N) sample points: the cubic's x values, the knot's t grid (read once per renewal)."""
        if self._points is None:
            self._points = np.asarray(self._state.points)
        return self._points

    def curve(self, index: int = 0, of: str = "learned", count: int = 1000) -> np.ndarray:
        """``count`` points of learner ``index``'s learned or target curve, computed on the host.

        Cubic: (count, 2) points (x, f(x)) with x evenly over ``x_range``. Knot: (count, 3) points
        with t evenly over one period [0, 2 pi) (the knot closes there: its frequencies are
        integers), for a closed polyline.
        """
        view = self.view
        if of not in ("learned", "target"):
            raise ValueError(f"curve of 'learned' or 'target', not {of!r}")
        if self.kind.name == "cubic":
            coefficients = view.params[index] if of == "learned" else view.target[index]
            x = np.linspace(*self.config.x_range, count)
            return np.stack([x, oracle.cubic_values(coefficients, x)], axis=1)
        target = view.target[index]
        phases = view.params[index] if of == "learned" else target[3:]
        return oracle.knot_values(target[:3], phases, np.linspace(0, 2 * np.pi, count, endpoint=False))

    # Internals ------------------------------------------------------------------------------------
    def _call(self, name: str, *args: Any) -> tuple[core.LearnerState, jax.Array]:
        if not self._compiled:
            raise RuntimeError("LearnerGroup.load() was not called")
        with precision.scope("float64"):  # the compiled code's width (0.7 us a call)
            return self._compiled[name](*args)

    def _apply(self, result: tuple[core.LearnerState, jax.Array]) -> None:
        self._state, self._packed = result
        self._view = None

    def _note_resets(self) -> None:
        resets = int(self._view.resets.sum())
        if resets > self._resets_seen:
            fresh = resets - self._resets_seen
            self._events.extend(["learner_reset"] * fresh)
            log.warning("%s learner diverged (learning_rate %g): %d reset to a fresh approximant",
                        self.kind.name, self.config.learning_rate, fresh)
        self._resets_seen = resets

    def _mask(self, which: Which) -> np.ndarray:
        if which is None:
            return np.ones(self.size, bool)
        which = np.asarray(which)
        if which.dtype == bool:
            if which.shape != (self.size,):
                raise ValueError(f"mask of shape {which.shape}; ({self.size},) expected")
            return which
        mask = np.zeros(self.size, bool)
        mask[which] = True
        return mask
