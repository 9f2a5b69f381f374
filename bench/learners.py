"""Benchmark: what one learner step costs in jax (single, fused, batched) against numpy hand gradients.

Both kinds (cubic, knot) with their default configs. The jax side is :class:`LearnerGroup`, as a
scene uses it: ``step(1)`` once per tick (each call forced to finish), ``step(FUSED)`` as many steps
fused in one compiled call, with 1 and with ``BATCH`` learners in the group. The numpy side is the
original piece's step in :mod:`scenes.ldd.learners.oracle` (draw the minibatch, hand gradient, update):
one learner at a time, in a Python loop over ``BATCH`` learners, and vectorised over the batch. All
variants are timed interleaved in rounds in one process and compared as ratios of medians.

Also measured: the compile time at load, cold (empty cache) and warm (the same cache, a second
process), in fresh processes; and what reading the loss and gradient back adds to a tick.

jax is imported inside :func:`run`, so the other benchmarks never load it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from bench.result import BenchResult, Figure

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("cubic", "knot")
BATCH = 32  # learners in the batched group
FUSED = 100  # steps fused in one call
ROUNDS = 10  # timed rounds; every variant of both kinds is timed in each round
# Calls timed one by one per round and variant.
SINGLE_CALLS, FUSED_CALLS, NUMPY_CALLS = 100, 10, 100  # batch 1
SINGLE_CALLS_BATCH, FUSED_CALLS_BATCH, LOOP_CALLS, VECTOR_CALLS = 50, 5, 8, 50  # batch 32
COMPILE_PAIRS = 3  # cold + warm process pairs (10 to 25 s each here); the median is reported
GOAL_FUSED_1 = 2.0  # numpy loop / jax fused, batch 1
GOAL_FUSED_BATCH = 20.0  # numpy loop / jax fused, batch 32

# Run in a fresh interpreter with SHOWRUNNER_CACHE_DIR set: load a group of each kind and size and
# print their compile times. The backend is started first, so the figures are the compile alone.
_COMPILE_SCRIPT = f"""
import json, time
started = time.perf_counter()
import jax
from scenes.ldd.learners import LearnerGroup
jax.devices()
seconds = {{}}
for size in (1, {BATCH}):
    for kind in {KINDS!r}:
        group = LearnerGroup(kind, size=size)
        group.load()
        seconds[f"{{kind}}/{{size}}"] = group.compile_seconds
print(json.dumps({{"seconds": seconds, "process": time.perf_counter() - started}}))
"""


class NumpyLearners:
    """``B`` learners stepped as the original piece did, with the hand gradients of the oracle.

    One step of one learner: draw the minibatch (knot: ``minibatch`` grid indices with
    ``Generator.integers``, t = index * t_step; cubic: all of its x values), the loss and gradient,
    and ``params -= learning_rate * grad`` unless the loss is under ``stop_below``.
    """

    def __init__(self, kind: Any, params: np.ndarray, target: np.ndarray, points: np.ndarray,
                 seed: int = 0) -> None:
        self.kind = kind
        self.config = kind.config
        self.params = np.array(params, np.float64)  # (B, P), updated in place
        self.target = np.array(target, np.float64)  # (B, T)
        self.x = np.array(points, np.float64)  # (B, N): the cubic's x values (unused by the knot)
        self.rng = np.random.default_rng(seed)

    def _loss_and_grad(self, params: np.ndarray, target: np.ndarray, x: np.ndarray,
                       shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        from scenes.ldd.learners import oracle

        config = self.config
        if self.kind.name == "cubic":
            return oracle.cubic_loss_and_grad(params, target, x, config.epsilon)
        t = self.rng.integers(0, self.kind.n_points, size=shape + (config.minibatch,)) * config.t_step
        return oracle.knot_loss_and_grad(params, target, t, config.epsilon)

    def step_one(self, index: int) -> float:
        """One step of learner ``index`` alone; returns its loss."""
        params = self.params[index]
        loss, grad = self._loss_and_grad(params, self.target[index], self.x[index], ())
        if loss >= self.config.stop_below:
            params -= self.config.learning_rate * grad
        return float(loss)

    def step_all(self) -> np.ndarray:
        """One step of every learner at once, vectorised over the batch; returns the losses."""
        loss, grad = self._loss_and_grad(self.params, self.target, self.x, (len(self.params),))
        moving = (loss >= self.config.stop_below)[:, None]
        self.params -= np.where(moving, self.config.learning_rate * grad, 0.0)
        return loss


def _seconds(call: Any, times: int) -> list[float]:
    """Wall seconds of each of ``times`` calls of ``call()``."""
    clock = time.perf_counter
    out = []
    for _ in range(times):
        started = clock()
        call()
        out.append(clock() - started)
    return out


def _paired_seconds(first: Any, second: Any, times: int) -> tuple[list[float], list[float]]:
    """``first`` and ``second`` timed alternately, ``times`` calls each."""
    clock = time.perf_counter
    a, b = [], []
    for _ in range(times):
        started = clock()
        first()
        a.append(clock() - started)
        started = clock()
        second()
        b.append(clock() - started)
    return a, b


class _Cell:
    """Everything timed for one kind: two groups, their numpy twins, and the samples (seconds)."""

    def __init__(self, name: str) -> None:
        from scenes.ldd.learners import LearnerGroup

        self.name = name
        self.one = LearnerGroup(name, size=1, seed=1)
        self.many = LearnerGroup(name, size=BATCH, seed=2)
        self.one.load()
        self.many.load()
        self.kind = self.one.kind
        self.numpy_one = self._twin(self.one, seed=1)
        self.numpy_many = self._twin(self.many, seed=2)
        self.samples: dict[str, list[float]] = {}

    @staticmethod
    def _twin(group: Any, seed: int) -> NumpyLearners:
        """numpy learners on the same targets, starting points and sample points as ``group``."""
        view = group.view
        twin = NumpyLearners(group.kind, view.params, view.target, group.points(), seed)
        if group.kind.name == "cubic":  # full batch: the first evaluation must agree with jax's
            from scenes.ldd.learners import oracle

            loss, _ = oracle.cubic_loss_and_grad(twin.params, twin.target, twin.x, group.config.epsilon)
            if not np.allclose(loss, view.loss, rtol=1e-9, atol=1e-12):
                raise RuntimeError(f"numpy and jax cubic losses differ: {loss} against {view.loss}")
        return twin

    def _add(self, key: str, seconds: list[float], per: int = 1) -> None:
        self.samples.setdefault(key, []).extend(s / per for s in seconds)

    def round(self, record: bool = True) -> None:
        """Every variant once, in turn (batch 1 then batch ``BATCH``)."""
        one, many, numpy_one, numpy_many = self.one, self.many, self.numpy_one, self.numpy_many
        add = self._add if record else (lambda *args, **kwargs: None)

        def blocked(group: Any, count: int) -> Any:
            def call() -> None:
                group.step(count)
                group.wait()  # finish, read nothing
            return call

        def read(group: Any) -> Any:
            def call() -> None:
                group.step(1)
                view = group.view  # one device-to-host read of the packed result
                float(view.loss[0]), view.grad[0].copy()
            return call

        alone, with_read = _paired_seconds(blocked(one, 1), read(one), SINGLE_CALLS)
        add("jax single 1", alone)
        add("jax read 1", with_read)
        add("numpy 1", _seconds(lambda: numpy_one.step_one(0), NUMPY_CALLS))
        add("jax fused 1", _seconds(blocked(one, FUSED), FUSED_CALLS), FUSED)

        def loop() -> None:
            for index in range(BATCH):
                numpy_many.step_one(index)

        alone, with_read = _paired_seconds(blocked(many, 1), read(many), SINGLE_CALLS_BATCH)
        add("jax single batch", alone, BATCH)
        add("jax read batch", with_read, BATCH)
        add("numpy loop batch", _seconds(loop, LOOP_CALLS), BATCH)
        add("jax fused batch", _seconds(blocked(many, FUSED), FUSED_CALLS_BATCH), FUSED * BATCH)
        add("numpy vector batch", _seconds(numpy_many.step_all, VECTOR_CALLS), BATCH)

    def us(self, key: str) -> float:
        """Median of the samples of ``key`` in microseconds."""
        return median(self.samples[key]) * 1e6

    def check(self) -> None:
        """Every learner's numbers still finite (a diverged learner would time something else)."""
        for group in (self.one, self.many):
            view = group.view
            if not (np.isfinite(view.loss).all() and np.isfinite(view.params).all()):
                raise RuntimeError(f"{self.name}: a jax learner is not finite after the benchmark")
            if view.resets.any():
                raise RuntimeError(f"{self.name}: a jax learner diverged during the benchmark")
        for twin in (self.numpy_one, self.numpy_many):
            if not np.isfinite(twin.params).all():
                raise RuntimeError(f"{self.name}: a numpy learner is not finite after the benchmark")


def _compile_process(cache: str) -> dict[str, Any]:
    """Compile times of a fresh process whose cache root is ``cache``."""
    env = {**os.environ, "SHOWRUNNER_CACHE_DIR": cache}
    done = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"compile process failed ({done.returncode}): {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _entries(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file())


def compile_times(pairs: int = COMPILE_PAIRS) -> tuple[dict[str, float], dict[str, float], list[str]]:
    """Median compile seconds per "kind/size", cold and warm, and notes on the cache entries."""
    cold: dict[str, list[float]] = {}
    warm: dict[str, list[float]] = {}
    notes = []
    for _ in range(pairs):
        with tempfile.TemporaryDirectory(prefix="bench-jax-cache-") as root:
            first = _compile_process(root)
            entries = _entries(Path(root) / "jax")
            second = _compile_process(root)
            added = _entries(Path(root) / "jax") - entries
        if entries == 0 or added:
            raise RuntimeError(f"the persistent cache did not serve the warm process ({entries} entries "
                               f"after the cold one, {added} more after the warm one)")
        for times, out in ((cold, first), (warm, second)):
            for key, value in out["seconds"].items():
                times.setdefault(key, []).append(value)
        notes.append(f"{entries} cache entries; process start to last load {first['process']:.2f} s cold, "
                     f"{second['process']:.2f} s warm")
    return ({key: median(v) for key, v in cold.items()}, {key: median(v) for key, v in warm.items()}, notes)


def run() -> BenchResult:
    import jax

    from engine.learners import compilation

    cells = [_Cell(name) for name in KINDS]
    for cell in cells:
        cell.round(record=False)  # first-call costs
    loaded = compilation.compilations()
    for _ in range(ROUNDS):
        for cell in cells:
            cell.round()
    recompiled = compilation.compilations() - loaded
    for cell in cells:
        cell.check()
    cold, warm, cache_notes = compile_times()
    backend = jax.default_backend()
    result = BenchResult(
        key="learners",
        title="Learner step time: jax against numpy hand gradients",
        method=(f"jax {jax.__version__} on the `{backend}` backend, float64, in the benchmark process. "
                "For each kind (cubic: 100 x values, full batch; knot: a 1000-point t grid, minibatch "
                f"of 64), default config, a `LearnerGroup` of 1 and one of {BATCH} learners are loaded "
                "(compiled ahead of time), and numpy twins start from the same targets, parameters and "
                "sample points. Timed, each call on its own with `time.perf_counter()`: jax `step(1)` "
                "forced to finish (`block_until_ready` on the group's packed result, nothing read back: "
                f"the per-tick path), jax `step({FUSED})` ({FUSED} steps fused in one compiled call), "
                "and the numpy step of the original piece (`scenes.ldd.learners.oracle`: draw the minibatch "
                "with `Generator.integers`, t = 0.1 i; cubic: every x; hand-derived loss and gradient; "
                f"`params -= learning_rate * grad` unless under `stop_below`). At batch {BATCH} numpy is "
                f"timed both as a Python loop over the {BATCH} learners (one at a time, as the original "
                "would run them) and vectorised over the batch (the oracle functions on "
                f"({BATCH}, P) arrays, one call per step; the original had no such path). Every time is "
                "per learner-step: a call's time divided by its steps x learners. One untimed round, "
                f"then {ROUNDS} rounds; in each round every variant of both kinds is timed in turn "
                f"(batch 1: {SINGLE_CALLS} single, {NUMPY_CALLS} numpy, {FUSED_CALLS} fused calls; batch "
                f"{BATCH}: {SINGLE_CALLS_BATCH} single, {LOOP_CALLS} numpy loops, {FUSED_CALLS_BATCH} "
                f"fused, {VECTOR_CALLS} vectorised calls), so machine noise falls on all of them alike; "
                "the figures are medians over all rounds and the ratios are ratios of medians. "
                "Read overhead per tick: `step(1)` then `view.loss[0]` and `view.grad[0]` (one "
                "device-to-host read of the packed array) timed alternately with the blocked `step(1)`; "
                "the difference of the medians. Compile time: `LearnerGroup.load()` "
                "(`compile_seconds`: lowering plus AOT compile of init, step and renew) in fresh "
                "interpreters with `SHOWRUNNER_CACHE_DIR` on a new temporary folder (cold), then a "
                "second interpreter on the same folder (warm, served from jax's persistent cache: "
                "checked, it adds no entry), the backend started before the first load; groups of 1 "
                f"and {BATCH} of each kind, the median of {COMPILE_PAIRS} such pairs. Context only, "
                "with no goal: the ratios against `step(1)`, the ratio against vectorised numpy (a "
                "stronger peer than the original), the read overhead and the compile times."),
        goal=(f"Goal: numpy (one learner at a time) per learner-step / jax `step({FUSED})` per "
              f"learner-step >= {GOAL_FUSED_1:g}x at batch 1 and >= {GOAL_FUSED_BATCH:g}x with "
              f"{BATCH} learners, for both kinds (scenes step many learners in one call, and "
              "several steps per tick when they catch up)."))
    figures = result.figures
    for cell in cells:
        name = cell.name
        single, fused, numpy_one = cell.us("jax single 1"), cell.us("jax fused 1"), cell.us("numpy 1")
        single_b, fused_b = cell.us("jax single batch"), cell.us("jax fused batch")
        loop_b, vector_b = cell.us("numpy loop batch"), cell.us("numpy vector batch")
        ratio_1, ratio_b = numpy_one / fused, loop_b / fused_b
        figures += [
            Figure(f"{name} x1: jax step(1) per step", single, "us"),
            Figure(f"{name} x1: jax step({FUSED}) per step", fused, "us"),
            Figure(f"{name} x1: numpy per step", numpy_one, "us"),
            Figure(f"{name} x1: numpy / jax step(1)", numpy_one / single, "x"),
            Figure(f"{name} x1: numpy / jax step({FUSED})", ratio_1, "x", f">= {GOAL_FUSED_1:g}x",
                   ratio_1 >= GOAL_FUSED_1),
            Figure(f"{name} x{BATCH}: jax step(1) per learner-step", single_b, "us"),
            Figure(f"{name} x{BATCH}: jax step({FUSED}) per learner-step", fused_b, "us"),
            Figure(f"{name} x{BATCH}: numpy loop per learner-step", loop_b, "us"),
            Figure(f"{name} x{BATCH}: numpy vectorised per learner-step", vector_b, "us"),
            Figure(f"{name} x{BATCH}: numpy loop / jax step(1)", loop_b / single_b, "x"),
            Figure(f"{name} x{BATCH}: numpy loop / jax step({FUSED})", ratio_b, "x",
                   f">= {GOAL_FUSED_BATCH:g}x", ratio_b >= GOAL_FUSED_BATCH),
            Figure(f"{name} x{BATCH}: numpy vectorised / jax step({FUSED})", vector_b / fused_b, "x"),
            Figure(f"{name} x1: loss + grad read per tick", cell.us("jax read 1") - single, "us"),
            Figure(f"{name} x{BATCH}: loss + grad read per tick",
                   (cell.us("jax read batch") - single_b) * BATCH, "us"),
        ]
    for name in KINDS:
        key = f"{name}/1"
        figures += [Figure(f"{name} x1: compile at load, cold", cold[key], "s"),
                    Figure(f"{name} x1: compile at load, warm cache", warm[key], "s"),
                    Figure(f"{name} x1: compile cold / warm", cold[key] / warm[key], "x")]
    slower = [cell for cell in cells if cell.us("jax single 1") > cell.us("numpy 1")]
    if slower:
        result.notes.append(
            "With one learner, one jax `step(1)` costs more than the numpy step ("
            + ", ".join(f"{cell.name} {cell.us('jax single 1'):.0f} us against "
                        f"{cell.us('numpy 1'):.0f} us" for cell in slower)
            + "): dispatching a compiled call outweighs a step this small; fused steps and batched "
            "learners are where jax pays.")
    result.notes += [
        "A scene's tick with one learner (`step(1)`, then loss and gradient read), median: "
        + ", ".join(f"{cell.name} {cell.us('jax read 1'):.0f} us" for cell in cells)
        + f" of the {1e6 / 60:.0f} us tick period at 60 Hz.",
        f"Compile at load with {BATCH} learners, cold / warm: "
        + ", ".join(f"{name} {cold[f'{name}/{BATCH}']:.2f} s / {warm[f'{name}/{BATCH}']:.2f} s"
                    for name in KINDS) + ".",
        f"jax compilations during the timed rounds: {recompiled} (every call ran compiled code "
        "loaded before).",
        *(f"Compile pair {number + 1}: {note}." for number, note in enumerate(cache_notes)),
    ]
    return result
