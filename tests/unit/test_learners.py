"""Learners: jax against the numpy hand-gradient oracle, stepping, stopping, the divergence guard,
determinism, convergence, compilation (real jax on the CPU)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from functools import partial

import jax
import numpy as np
import pytest
from pydantic import ValidationError

from engine.learners import compilation, precision
from scenes.ldd.learners import CubicConfig, KnotConfig, LearnerGroup, core, oracle
from scenes.ldd.learners.kinds import make_kind
from tests.conftest import ROOT

KINDS = ["cubic", "knot"]


@pytest.fixture(autouse=True)
def float64():
    """The pure functions of core are float64 code: tests that jit them themselves run them in the
    curve learners' precision scope, as LearnerGroup does (the process default stays float32)."""
    with precision.scope("float64"):
        yield


def random_states(kind_name: str, count: int, seed: int, spread: float = 2.0):
    """``count`` initialised learners with their parameters replaced by random ones in +-spread."""
    kind = make_kind(kind_name)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed), i))(np.arange(count))
    states = jax.jit(jax.vmap(partial(core.init, kind)))(keys)
    params = np.random.default_rng(seed).uniform(-spread, spread, (count, kind.n_params))
    return kind, states._replace(params=params)


def oracle_loss_and_grad(kind, state: core.LearnerState, index: int):
    """The numpy oracle at learner ``index`` of a batched state, on the rows jax would use."""
    params, target = np.asarray(state.params[index]), np.asarray(state.target[index])
    points = np.asarray(state.points[index])
    eps = kind.config.epsilon
    if kind.name == "cubic":
        return oracle.cubic_loss_and_grad(params, target, points, eps)
    rows = oracle.minibatch_rows(int(state.stream[index]), int(state.draws[index]), kind.minibatch, len(points))
    return oracle.knot_loss_and_grad(params, target, points[rows], eps)


@pytest.mark.parametrize("kind_name", KINDS)
def test_jax_and_numpy_losses_and_gradients_agree_on_random_targets(kind_name):
    kind, states = random_states(kind_name, 200, seed=11)
    losses, grads = jax.jit(jax.vmap(partial(core.loss_and_grad, kind)))(states)
    for index in range(200):
        loss, grad = oracle_loss_and_grad(kind, states, index)
        assert abs(float(losses[index]) - loss) <= 1e-6
        np.testing.assert_allclose(np.asarray(grads[index]), grad, rtol=0, atol=1e-6)
    assert np.ptp(np.asarray(losses)) > 0.1  # the 200 cases really differ


@pytest.mark.parametrize("kind_name", KINDS)
def test_trajectories_follow_the_numpy_oracle_step_by_step(kind_name):
    group = LearnerGroup(kind_name, seed=5)
    group.load()
    kind, eps, rate = group.kind, group.config.epsilon, group.config.learning_rate
    params, target = group.view.params[0].copy(), group.view.target[0]
    points = group.points()[0]
    stream = int(group._state.stream[0])
    draw = int(group._state.draws[0])
    for _ in range(150):
        if kind.name == "cubic":
            loss, grad = oracle.cubic_loss_and_grad(params, target, points, eps)
        else:
            t = points[oracle.minibatch_rows(stream, draw, kind.minibatch, len(points))]
            loss, grad = oracle.knot_loss_and_grad(params, target, t, eps)
        draw += 1
        params = params - rate * grad
        group.step(1)
        assert group.view.loss[0] == pytest.approx(loss, abs=1e-9)
        np.testing.assert_allclose(group.view.grad[0], grad, atol=1e-9)
    np.testing.assert_allclose(group.view.params[0], params, atol=1e-9)


def test_minibatch_rows_cover_the_grid_evenly_and_match_numpy():
    rows = np.asarray(jax.jit(lambda s, d: core.minibatch_rows(s, d, 64, 1000))(
        np.uint64(12345), np.uint64(7)))
    np.testing.assert_array_equal(rows, oracle.minibatch_rows(12345, 7, 64, 1000))
    many = np.concatenate([oracle.minibatch_rows(99, draw, 64, 1000) for draw in range(500)])
    counts = np.bincount(many // 100, minlength=10)
    assert counts.min() > 0.9 * len(many) / 10 and counts.max() < 1.1 * len(many) / 10
    assert rows.min() >= 0 and rows.max() < 1000


def test_fused_steps_equal_single_steps():
    one, fused = LearnerGroup("knot", seed=3), LearnerGroup("knot", seed=3)
    one.load(), fused.load()
    for _ in range(40):
        one.step(1)
    fused.step(40)
    np.testing.assert_array_equal(one.view.params, fused.view.params)
    assert one.view.loss[0] == fused.view.loss[0] and fused.view.steps[0] == 40


@pytest.mark.parametrize("kind_name", ["cubic", "knot"])
@pytest.mark.parametrize("learning_rate", [0.02, 1e306])  # the second diverges: every step resets
def test_a_ticks_steps_in_one_call_give_each_steps_own_loss_as_single_steps_do(kind_name, learning_rate):
    config = (CubicConfig if kind_name == "cubic" else KnotConfig)(learning_rate=learning_rate)
    one, each = LearnerGroup(kind_name, config, size=2, seed=5), LearnerGroup(kind_name, config, size=2, seed=5)
    one.load(), each.load()
    singles = []
    for count in (1, 3, 70, 5):  # 70: more than one compiled call takes
        for _ in range(count):
            one.step(1)
            singles.append(one.view.loss.copy())
    losses = np.concatenate([each.step_each(count) for count in (1, 3, 70, 5)])
    assert losses.shape == (79, 2)
    np.testing.assert_array_equal(losses, np.array(singles))  # bit for bit
    np.testing.assert_array_equal(each.view.params, one.view.params)
    np.testing.assert_array_equal(each.view.resets, one.view.resets)
    assert (one.view.resets > 0).all() == (learning_rate > 1)
    assert each.step_each(0).shape == (0, 2)


def test_each_learner_takes_its_own_number_of_steps_and_renews_alone():
    group = LearnerGroup("cubic", size=4, seed=2)
    group.load()
    before = group.view
    group.step([0, 1, 5, 0])
    assert list(group.view.steps) == [0, 1, 5, 0]
    np.testing.assert_array_equal(group.view.params[[0, 3]], before.params[[0, 3]])
    targets, params = group.view.target.copy(), group.view.params.copy()
    group.renew(which=[2], approximant=False)
    changed = np.any(group.view.target != targets, axis=1)
    assert list(changed) == [False, False, True, False]
    assert group.view.steps[2] == 0 and group.view.steps[1] == 1
    np.testing.assert_array_equal(group.view.params, params)


def test_a_new_target_keeps_the_approximant_and_a_new_approximant_keeps_the_target():
    group = LearnerGroup("knot", seed=8)
    group.load()
    group.step(10)
    params, target = group.view.params.copy(), group.view.target.copy()
    group.renew(approximant=False)
    np.testing.assert_array_equal(group.view.params, params)
    assert np.any(group.view.target != target)
    target = group.view.target.copy()
    group.renew(target=False)
    np.testing.assert_array_equal(group.view.target, target)
    assert np.any(group.view.params != params)
    frequencies = group.view.target[0, :3]
    assert np.all(frequencies == np.round(frequencies)) and np.all((frequencies >= 1) & (frequencies <= 8))


def test_a_learner_under_the_stop_threshold_stops_with_a_zero_gradient_until_renewed():
    group = LearnerGroup("knot", KnotConfig(learning_rate_halflife=100), seed=4)
    group.load()
    group.step(3000)
    view = group.view
    assert view.stopped[0] and view.loss[0] < 1e-6
    assert np.all(view.grad[0] == 0)
    steps, params = view.steps[0], view.params[0].copy()
    group.step(50)
    assert group.view.steps[0] == steps
    np.testing.assert_array_equal(group.view.params[0], params)
    group.renew()
    assert not group.view.stopped[0] and group.view.steps[0] == 0 and group.view.loss[0] > 1e-3


@pytest.mark.parametrize("kind_name", KINDS)
def test_a_diverging_learner_is_reset_never_sending_nan_and_the_reset_is_logged(kind_name, caplog):
    config = (CubicConfig if kind_name == "cubic" else KnotConfig)(learning_rate=1e306)
    group = LearnerGroup(kind_name, config, size=3, seed=1)
    group.load()
    with caplog.at_level(logging.WARNING, logger="showrunner.learners"):
        for _ in range(20):
            group.step([3, 0, 7])
            view = group.view
            for values in (view.loss, view.grad, view.params):
                assert np.all(np.isfinite(values))
            assert np.all(np.abs(view.params) <= config.divergence_limit)
    events = group.take_events()
    assert len(events) >= 20 and set(events) == {"learner_reset"}
    assert group.view.resets[1] == 0 and group.view.resets[0] >= 10
    assert "diverged" in caplog.text
    assert group.take_events() == []


def test_the_pure_single_step_is_guarded_too():
    kind = make_kind("cubic", CubicConfig(learning_rate=1e306))
    state = jax.jit(partial(core.init, kind))(jax.random.PRNGKey(0))
    step = jax.jit(partial(core.step, kind))
    for _ in range(5):
        state = step(state)
        assert np.isfinite(float(state.loss)) and np.all(np.isfinite(np.asarray(state.params)))
    assert int(state.resets) >= 2


def trajectory_digest(kind_name: str, seed: int) -> str:
    """A script's worth of learner use (renewals, steps) reduced to one hash of every view."""
    import hashlib

    group = LearnerGroup(kind_name, size=3, seed=seed)
    group.load()
    digest = hashlib.sha256()
    for round_ in range(12):
        if round_ % 4 == 0:
            group.renew(which=round_ % 3)
        group.step([1, round_, 3])
        view = group.view
        for values in (view.loss, view.grad, view.params, view.target):
            digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("kind_name", KINDS)
def test_the_same_seed_gives_the_same_trajectories_in_another_process(kind_name):
    here = trajectory_digest(kind_name, seed=42)
    code = ("from tests.unit.test_learners import trajectory_digest; "
            f"print(trajectory_digest({kind_name!r}, 42), trajectory_digest({kind_name!r}, 43))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=True)
    there, other_seed = result.stdout.split()
    assert there == here
    assert other_seed != here


CONVERGENCE_TARGETS = 100


def converge(kind_name: str, config, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Initial loss, final loss and stopped flags of 100 learners on random targets after ``steps``."""
    group = LearnerGroup(kind_name, config, size=CONVERGENCE_TARGETS, seed=2021)
    group.load()
    initial = group.view.loss.copy()
    group.step(steps)
    return initial, group.view.loss, group.view.stopped


@pytest.mark.parametrize("kind_name, steps", [("cubic", 20000), ("knot", 5000)])
def test_at_the_papers_constant_step_size_the_loss_falls_but_hovers_over_the_stop_threshold(
        kind_name, steps, record_property):
    initial, final, stopped = converge(kind_name, None, steps)
    record_property("stopped_fraction", float(stopped.mean()))
    record_property("median_final_loss", float(np.median(final)))
    print(f"{kind_name}: {stopped.mean():.0%} under the stop threshold after {steps} steps; "
          f"median loss {np.median(initial):.3f} -> {np.median(final):.4f}")
    assert np.all(final < initial)
    assert np.median(final) < np.median(initial) / 20
    # The paper's loss is a mean absolute error: its gradient does not shrink near the target, so a
    # constant step keeps overshooting by about learning_rate x |grad| (docs/learners.md).
    assert np.median(final) < 0.01
    assert stopped.mean() <= 0.05


@pytest.mark.parametrize("kind_name, halflife, steps, bound", [
    ("cubic", 2000, 5000, 0.95), ("knot", 100, 2000, 0.95)])
def test_with_a_halving_step_size_most_learners_fall_under_the_stop_threshold(
        kind_name, halflife, steps, bound, record_property):
    config = (CubicConfig if kind_name == "cubic" else KnotConfig)(learning_rate_halflife=halflife)
    initial, final, stopped = converge(kind_name, config, steps)
    record_property("stopped_fraction", float(stopped.mean()))
    print(f"{kind_name}, halflife {halflife}: {stopped.mean():.0%} under {config.stop_below} within {steps} steps")
    assert stopped.mean() >= bound
    assert np.all(final[stopped] < config.stop_below)


def test_loading_compiles_and_stepping_never_does():
    group = LearnerGroup("knot", size=5, seed=0)
    group.load()
    before = compilation.compilations()
    for count in (1, 2, 30, 0, 1):
        group.step(count)
        group.renew(which=[count % 5])
        group.view
        group.curve(1), group.curve(2, "target")
    group.reset(seed=9)
    assert compilation.compilations() == before


def test_the_compilation_counter_sees_a_new_compilation():
    before = compilation.compilations()
    jax.jit(lambda x: x * 3.0 + 1.0)(np.arange(7.0)).block_until_ready()
    assert compilation.compilations() == before + 1


def test_groups_alike_share_one_compilation_and_learn_as_one_alone_does():
    # A piece's cubic in its first and last parts: the second group compiles nothing; a group
    # with another config or size compiles its own.
    first = LearnerGroup("cubic", CubicConfig(learning_rate=0.031), seed=4)
    first.load()
    before = compilation.compilations()
    second = LearnerGroup("cubic", CubicConfig(learning_rate=0.031), seed=4)
    second.load()
    assert compilation.compilations() == before
    for group in (first, second):
        group.renew()
        group.step(25)
    np.testing.assert_array_equal(first.view.params, second.view.params)
    np.testing.assert_array_equal(first.view.loss, second.view.loss)
    other = LearnerGroup("cubic", CubicConfig(learning_rate=0.032), seed=4)
    other.load()
    assert compilation.compilations() > before
    before = compilation.compilations()
    LearnerGroup("cubic", CubicConfig(learning_rate=0.031), size=2, seed=4).load()
    assert compilation.compilations() > before


def test_a_second_process_loads_learners_from_the_persistent_cache(tmp_path):
    code = """
import json
from jax import monitoring
hits = []
monitoring.register_event_listener(lambda event, **_: hits.append(event) if event.endswith("cache_hits") else None)
from scenes.ldd.learners import LearnerGroup
groups = [LearnerGroup(kind) for kind in ("cubic", "knot")]
for group in groups:
    group.load()
print(json.dumps({"hits": len(hits), "seconds": sum(g.compile_seconds for g in groups)}))
"""
    env = dict(os.environ, SHOWRUNNER_CACHE_DIR=str(tmp_path))
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                                      text=True, timeout=180, check=True).stdout) for _ in range(2)]
    assert runs[0]["hits"] == 0
    assert any((tmp_path / "jax").iterdir())
    assert runs[1]["hits"] == 8  # init, step, step_each and renew of both kinds


def test_curves_for_drawing():
    cubic = LearnerGroup("cubic", seed=1)
    cubic.load()
    curve = cubic.curve(0, count=50)
    assert curve.shape == (50, 2)
    np.testing.assert_allclose(curve[:, 1], np.polyval(cubic.view.params[0], curve[:, 0]))
    target = cubic.curve(0, "target")
    np.testing.assert_allclose(target[:, 1], np.polyval(cubic.view.target[0], target[:, 0]))
    knot = LearnerGroup("knot", seed=1)
    knot.load()
    points = knot.curve(0)
    assert points.shape == (1000, 3)
    n, phases = knot.view.target[0, :3], knot.view.params[0]
    np.testing.assert_allclose(points[17], np.cos(n * 2 * np.pi * 17 / 1000 + phases), atol=1e-12)
    # one whole period: the last point comes back next to the first (a closed knot)
    step = np.abs(np.diff(points, axis=0)).max()
    assert np.abs(points[-1] - points[0]).max() <= step
    with pytest.raises(ValueError):
        knot.curve(0, "both")


@pytest.mark.parametrize("config, field", [
    (dict(kind=CubicConfig, x_range=(1, -1)), "x_range"),
    (dict(kind=CubicConfig, learning_rate=0), "learning_rate"),
    (dict(kind=CubicConfig, stop_below=1e-9, epsilon=1e-12), "stop_below"),
    (dict(kind=CubicConfig, coefficient_range=(-5000, 5000)), "divergence_limit"),
    (dict(kind=KnotConfig, frequency_range=(-1, 3)), "frequency"),
    (dict(kind=KnotConfig, t_max=0.1, t_step=0.1), "points"),
    (dict(kind=KnotConfig, minibatch=0), "minibatch"),
    (dict(kind=KnotConfig, speed=2), "speed"),
    (dict(kind=CubicConfig, learning_rate=float("inf")), "learning_rate"),
])
def test_bad_learner_settings_are_refused_with_the_field_named(config, field):
    kind = config.pop("kind")
    with pytest.raises(ValidationError, match=field):
        kind(**config)


def test_a_config_of_the_wrong_kind_is_refused():
    with pytest.raises(TypeError, match="CubicConfig"):
        LearnerGroup("cubic", KnotConfig())
    with pytest.raises(ValueError, match="unknown learner kind"):
        LearnerGroup("mlp")
