"""A live trainer in a process of its own (engine.learners.training_process) and the frame gate
that stops it while the show works on a frame (engine.compute_gate): real processes, real signals."""

from __future__ import annotations

import mmap
import os
import signal
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from engine import compute_gate
from engine.learners.regressor import Regressor, RegressorConfig
from engine.learners.trainer import Trainer
from engine.learners.training_process import ProcessFailed, training_cpus
from tests.counting_learner import Counting

SMALL = RegressorConfig(image_size=8, channels=4, layers=2, batch=4, learning_rate=1e-2)

COUNTER = """
import mmap, struct, sys
with open(sys.argv[1], "r+b") as file:
    memory = mmap.mmap(file.fileno(), 8)
    count = 0
    while True:
        count += 1
        memory[:8] = struct.pack("q", count)
"""


def _wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_the_frames_stop_a_held_process_and_its_rest_lets_it_go_on(tmp_path):
    path = tmp_path / "count"
    path.write_bytes(bytes(8))
    child = subprocess.Popen([sys.executable, "-c", COUNTER, str(path)])
    try:
        with open(path, "r+b") as file:
            memory = mmap.mmap(file.fileno(), 8)
            count = lambda: struct.unpack("q", memory[:8])[0]  # noqa: E731
            _wait_for(lambda: count() > 1000, 10)
            compute_gate.busy()  # not held yet: it counts on through the frame
            before = count()
            time.sleep(0.05)
            assert count() > before
            compute_gate.rest()

            compute_gate.hold(child.pid)
            for _ in range(3):
                compute_gate.busy()
                time.sleep(0.01)  # the stop has landed
                stopped_at = count()
                time.sleep(0.05)
                assert count() == stopped_at  # not a step during the frame's work
                compute_gate.rest()
                time.sleep(0.05)
                assert count() > stopped_at  # on again in the rest
            compute_gate.busy()
            time.sleep(0.01)
            stopped_at = count()
            compute_gate.release(child.pid)  # released while stopped: continued at once
            time.sleep(0.05)
            assert count() > stopped_at
            compute_gate.rest()
            compute_gate.busy()  # no longer held: never stopped again
            time.sleep(0.01)
            before = count()
            time.sleep(0.05)
            assert count() > before
            compute_gate.rest()
            assert child.pid not in compute_gate.held()
    finally:
        child.kill()
        child.wait()


class _Unpicklable(Counting):
    name = "unpicklable"

    def __init__(self):
        self.hook = lambda: None  # a lambda does not pickle


def test_a_process_trains_the_same_states_as_a_paced_trainer_and_feeds_and_answers():
    live = Trainer(Regressor(SMALL), process=True)
    live.load()
    live.start()
    try:
        _wait_for(lambda: live.latest.steps >= 30 or live.error is not None)
        assert live.error is None
        pid = live._process.pid
        assert pid != os.getpid() and pid in compute_gate.held()
        assert os.sched_getaffinity(pid) == training_cpus()
    finally:
        assert live.join(10)
    assert pid not in compute_gate.held()  # released when the thread ended
    snapshot = live.latest
    assert isinstance(jax.tree_util.tree_leaves(snapshot.state)[0], np.ndarray)
    paced = Trainer(Regressor(SMALL), paced_steps_per_tick=0)
    paced.load()
    for _ in range(snapshot.steps):
        paced._advance(1)
    for ours, theirs in zip(jax.tree_util.tree_leaves(snapshot.state), jax.tree_util.tree_leaves(paced.latest.state)):
        np.testing.assert_array_equal(ours, np.asarray(theirs))  # bit for bit: the same sums
    live.start()  # the same process goes on from where it stopped
    try:
        _wait_for(lambda: live.latest.steps >= snapshot.steps + 5)
        assert live._process.pid == pid
    finally:
        live.close()
    assert live._process is None

    counting = Trainer(Counting(), process=True)
    counting.load()
    counting.feed({"x": np.array([1, 2, 3], np.float32)})
    counting.start()
    try:
        _wait_for(lambda: float(counting.latest.state["fed"]) == 6.0)
        assert counting.fed == 1
        answer = counting.ask("total", np.float32(0.5))
        assert float(answer.result(30)) == 6.5
        failing = counting.ask("no_such_method")
        with pytest.raises(RuntimeError, match="no_such_method"):
            failing.result(30)
        steps = counting.latest.steps
        _wait_for(lambda: counting.latest.steps >= steps + 2)
        assert counting.error is None and counting.running  # a failed job fails its asker, not the training
    finally:
        counting.close()
    with pytest.raises(RuntimeError, match="a live trainer in a process"):
        Trainer(Counting(), paced_steps_per_tick=1).ask("total", 0.0)


def test_a_training_process_that_dies_leaves_the_last_snapshot_and_a_clear_error():
    trainer = Trainer(Counting(), process=True)
    trainer.load()
    trainer.start()
    try:
        _wait_for(lambda: trainer.latest.steps >= 3)
        asked = trainer.ask("total", np.float32(0.0))
        os.kill(trainer._process.pid, signal.SIGKILL)
        _wait_for(lambda: not trainer.running)
        assert isinstance(trainer.error, ProcessFailed)
        assert "killed by SIGKILL" in str(trainer.error) or "lost the training process" in str(trainer.error)
        steps = trainer.latest.steps
        assert steps >= 3 and int(trainer.latest.state["steps"]) == steps  # the show goes on with it
        assert not compute_gate.held()
        trainer.start()  # a new process, from the last snapshot
        _wait_for(lambda: trainer.latest.steps >= steps + 3)
        assert trainer.error is None
        # the job was answered before the kill, failed with it, or waited for the new process
        _wait_for(lambda: asked.done(), 30)
        assert asked.exception() is not None or float(asked.result()) == 0.0
    finally:
        trainer.close()

    unpicklable = Trainer(_Unpicklable(), process=True)
    unpicklable.load()
    unpicklable.start()
    _wait_for(lambda: not unpicklable.running)
    assert isinstance(unpicklable.error, ProcessFailed)
    assert "cannot go to a training process" in str(unpicklable.error)
    unpicklable.close()


def test_trainers_share_one_training_process_which_ends_with_the_last():
    first, second = Trainer(Counting(), process=True), Trainer(Regressor(SMALL), process=True)
    for trainer in (first, second):
        trainer.load()  # each starts making its learner there, beside the loading
        trainer.start()
    try:
        _wait_for(lambda: first.latest.steps >= 5 and second.latest.steps >= 5)
        pid = first._process.pid
        assert second._process.pid == pid and compute_gate.held() == {pid}
        first.close()
        steps = second.latest.steps
        _wait_for(lambda: second.latest.steps >= steps + 5)  # the other goes on there
        assert os.path.exists(f"/proc/{pid}")
    finally:
        first.close()
        second.close()
    _wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z", 10)
    assert not compute_gate.held()
