"""The learner protocol beside the curve learners: paced training, checkpoints, float32 and float64
learners in one process (real jax on the CPU, a real conv net trained with optax)."""

from __future__ import annotations

import time
import zipfile

import jax
import numpy as np
import pytest

from engine.errors import UserError
from engine.learners import Trainer, checkpoint
from engine.learners.regressor import Regressor, RegressorConfig
from scenes.ldd.learners import LearnerGroup
from tests.counting_learner import Counting

SMALL = RegressorConfig(image_size=8, channels=4, layers=2, batch=4, learning_rate=1e-2)


def leaves(state) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(state)]


def assert_same_state(a, b) -> None:
    for x, y in zip(leaves(a), leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def paced_run(config: RegressorConfig, ticks: int, seed: int = 3) -> Trainer:
    trainer = Trainer(Regressor(config), seed=seed, paced_steps_per_tick=2)
    trainer.load()
    for tick in range(1, ticks + 1):
        trainer.tick(tick / 60)
    return trainer


def test_two_paced_runs_give_identical_parameters_and_summaries():
    first, second = paced_run(SMALL, 25), paced_run(SMALL, 25)
    assert first.latest.steps == second.latest.steps == 50
    assert_same_state(first.latest.state, second.latest.state)
    for name, value in first.latest.summary.items():
        np.testing.assert_array_equal(second.latest.summary[name], value)
    other_seed = paced_run(SMALL, 25, seed=4)
    assert not np.array_equal(leaves(other_seed.latest.state)[-1], leaves(first.latest.state)[-1])


def test_the_regressor_learns():
    trainer = Trainer(Regressor(SMALL), seed=1, paced_steps_per_tick=50)
    trainer.load()
    losses = []
    for tick in range(8):
        trainer.tick(tick)
        losses.append(float(trainer.latest.summary["loss"]))
    assert np.mean(losses[-3:]) < np.mean(losses[:2]) / 2
    assert float(trainer.latest.summary["grad_norm"]) > 0


def test_a_checkpoint_round_trip_gives_identical_outputs_and_identical_continued_training(tmp_path):
    trained = paced_run(SMALL, 10)
    path = trained.save(tmp_path / "regressor.npz")
    restored = Trainer(Regressor(SMALL), seed=99, paced_steps_per_tick=2)
    restored.load()
    restored.restore(path)
    assert_same_state(restored.latest.state, trained.latest.state)
    assert restored.latest.summary["loss"] == trained.latest.summary["loss"]
    for tick in range(5):
        trained.tick(tick)
        restored.tick(tick)
    assert_same_state(restored.latest.state, trained.latest.state)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left beside it


def test_a_curve_group_checkpoint_restores_the_view_and_the_trajectory(tmp_path):
    group = LearnerGroup("knot", size=3, seed=8)
    group.load()
    group.step([5, 1, 9])
    group.save(tmp_path / "knots.npz")
    group.step(7)
    expected = group.view
    other = LearnerGroup("knot", size=3, seed=1)
    other.load()
    other.restore(tmp_path / "knots.npz")
    other.step(7)
    for name in ("loss", "grad", "params", "target", "steps"):
        np.testing.assert_array_equal(getattr(other.view, name), getattr(expected, name))


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty", "not_a_zip"])
def test_a_damaged_checkpoint_is_a_one_line_user_error(tmp_path, damage):
    path = paced_run(SMALL, 2).save(tmp_path / "state.npz")
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        with zipfile.ZipFile(path) as archive:
            member = archive.getinfo("leaf_0001.npy")
        spot = member.header_offset + 30 + len(member.filename) + member.compress_size - 2
        path.write_bytes(data[:spot] + bytes([data[spot] ^ 0xFF]) + data[spot + 1:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.write_text("weights, honest")
    with pytest.raises(UserError) as caught:
        checkpoint.load(path, Regressor(SMALL))
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert "truncated or corrupt" in message
    assert "pickle" not in message  # numpy's advice to load it unsafely is not the performer's to take


def test_a_checkpoint_whose_header_is_nested_too_deeply_is_a_one_line_user_error(tmp_path):
    path = tmp_path / "deep.npz"
    np.savez(path, header=np.frombuffer(("[" * 100_000 + "]" * 100_000).encode(), np.uint8))
    with pytest.raises(UserError, match="corrupt .its header is nested too deeply"):
        checkpoint.load(path, Regressor(SMALL))


def test_a_checkpoint_loaded_with_other_settings_says_which(tmp_path, caplog):
    path = paced_run(SMALL, 1).save(tmp_path / "small.npz")
    faster = RegressorConfig(**{**SMALL.__dict__, "learning_rate": 2 * SMALL.learning_rate})
    with caplog.at_level("WARNING", logger="showrunner.learners"):
        checkpoint.load(path, Regressor(SMALL))
        assert not caplog.records
        checkpoint.load(path, Regressor(faster))
    [record] = caplog.records
    assert f"(learning_rate {SMALL.learning_rate!r} -> {faster.learning_rate!r})" in record.getMessage()


def test_a_checkpoint_of_another_learner_or_size_is_refused_naming_the_problem(tmp_path):
    path = paced_run(SMALL, 1).save(tmp_path / "small.npz")
    with pytest.raises(UserError, match="expects"):
        checkpoint.load(path, Regressor(RegressorConfig(image_size=8, channels=8, layers=2, batch=4)))
    group = LearnerGroup("cubic")
    group.load()
    with pytest.raises(UserError, match="'regressor' learner, not 'cubic'"):
        group.restore(path)
    with pytest.raises(UserError, match="no such file"):
        group.restore(tmp_path / "missing.npz")


def test_a_float32_and_a_float64_learner_coexist_with_their_own_dtypes():
    narrow = paced_run(SMALL, 3)
    wide = paced_run(RegressorConfig(**{**SMALL.__dict__, "precision": "float64"}), 3)
    group = LearnerGroup("cubic", seed=2)
    group.load()
    group.step(3)
    assert {leaf.dtype for leaf in leaves(narrow.latest.state.params)} == {np.dtype(np.float32)}
    assert {leaf.dtype for leaf in leaves(wide.latest.state.params)} == {np.dtype(np.float64)}
    assert narrow.latest.summary["loss"].dtype == np.float32
    assert wide.latest.summary["loss"].dtype == np.float64
    assert group.view.params.dtype == np.float64 and group.state.params.dtype == np.float64
    assert not jax.config.jax_enable_x64  # the process default is untouched: float32
    assert jax.numpy.ones(2).dtype == np.float32


def test_fed_data_is_absorbed_before_the_next_step_paced_and_live():
    trainer = Trainer(Counting(), paced_steps_per_tick=0.5)
    trainer.load()
    trainer.tick(0.0)  # half a step owed: no step
    assert trainer.feed({"x": np.array([1, 2, 3], np.float32)})
    trainer.tick(1 / 60)  # the step, after the data
    assert float(trainer.seen.state["fed"]) == 6.0 and int(trainer.seen.state["steps"]) == 1
    assert trainer.fed == 1

    live = Trainer(Counting())
    live.load()
    for _ in range(Trainer.MAX_WAITING + 2):  # nothing trains: the oldest are dropped and counted
        live.feed({"x": np.ones(3, np.float32)})
    assert live.feed_dropped == 2
    live.start()
    try:
        deadline = time.monotonic() + 10
        while float(live.latest.state["fed"]) != 3.0 * Trainer.MAX_WAITING and time.monotonic() < deadline:
            time.sleep(0.01)
        assert float(live.latest.state["fed"]) == 3.0 * Trainer.MAX_WAITING
    finally:
        assert live.join(5)


def test_a_learner_that_takes_no_data_says_so():
    trainer = Trainer(Regressor(SMALL), paced_steps_per_tick=1)
    trainer.load()
    assert not trainer.feed({"x": np.ones(3)})
