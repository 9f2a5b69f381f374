"""Training on a core of its own: the split of the process's CPUs while a thread trains, and back."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from engine import training_cores
from tests.conftest import ROOT

FULL = frozenset(os.sched_getaffinity(0))
needs_two = pytest.mark.skipif(len(FULL) < 2, reason="a split needs two CPUs (CI has two)")


def affinity(tid: int) -> frozenset[int]:
    return frozenset(os.sched_getaffinity(tid))


class Worker:
    """A thread that runs what it is handed, one call at a time, and reports back."""

    def __init__(self, comm: str | None = None) -> None:
        self._jobs: list = []
        self._wake = threading.Event()
        self._done = threading.Event()
        self._result = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self.tid = self.run(threading.get_native_id)
        if comm is not None:  # the name XLA gives its pool's threads
            with open(f"/proc/self/task/{self.tid}/comm", "w") as file:
                file.write(comm)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            job = self._jobs.pop()
            if job is None:
                return
            self._result = job()
            self._done.set()

    def run(self, job):
        self._done.clear()
        self._jobs.append(job)
        self._wake.set()
        assert self._done.wait(10)
        return self._result

    def close(self) -> None:
        self._jobs.append(None)
        self._wake.set()
        self._thread.join(10)


@pytest.fixture(autouse=True)
def whole_process_back():
    yield
    left_split = training_cores.split() is not None
    for task in os.listdir("/proc/self/task"):  # whatever happened, the next test starts whole
        try:
            os.sched_setaffinity(int(task), FULL)
        except OSError:
            pass
    training_cores._halves = None
    training_cores._training.clear()
    training_cores._assigned.clear()
    assert not left_split, "a test left the CPUs split"


def test_the_training_half_is_the_upper_half():
    assert training_cores.halves({0, 1}) == ({0}, {1})
    assert training_cores.halves({0, 1, 2, 3}) == ({0, 1}, {2, 3})
    assert training_cores.halves({0, 1, 2}) == ({0, 1}, {2})
    assert training_cores.halves({4, 9}) == ({4}, {9})
    assert training_cores.halves({3}) is None


@needs_two
def test_a_training_thread_and_the_pool_get_their_half_and_every_thread_gets_the_full_set_back():
    show, training = training_cores.halves(FULL)
    trainer, pool, other = Worker(), Worker(comm="tf_XLAEigen"), Worker()
    main = threading.get_native_id()
    try:
        assert trainer.run(training_cores.enter) is True
        assert training_cores.split() == (show, training)
        assert affinity(trainer.tid) == training
        assert affinity(pool.tid) == training
        assert affinity(other.tid) == show
        assert affinity(main) == show
    finally:
        trainer.run(training_cores.leave)
    assert training_cores.split() is None
    for tid in (trainer.tid, pool.tid, other.tid, main):
        assert affinity(tid) == FULL
    for worker in (trainer, pool, other):
        worker.close()


@needs_two
def test_the_split_holds_until_the_last_training_thread_leaves():
    show, training = training_cores.halves(FULL)
    first, second = Worker(), Worker()
    try:
        first.run(training_cores.enter)
        second.run(training_cores.enter)
        first.run(training_cores.leave)
        assert training_cores.split() is not None
        assert affinity(first.tid) == show  # no longer training
        assert affinity(second.tid) == training
    finally:
        second.run(training_cores.leave)
    assert affinity(first.tid) == affinity(second.tid) == FULL
    first.close()
    second.close()


@needs_two
def test_a_thread_started_while_split_is_placed_by_refresh():
    show, training = training_cores.halves(FULL)
    trainer = Worker()
    try:
        trainer.run(training_cores.enter)
        late_pool = Worker(comm="tf_XLAEigen")  # started by the main thread: the show's half
        assert affinity(late_pool.tid) == show
        trainer.run(training_cores.refresh)
        assert affinity(late_pool.tid) == training
    finally:
        trainer.run(training_cores.leave)
    assert affinity(late_pool.tid) == FULL
    trainer.close()
    late_pool.close()


@needs_two
def test_a_child_process_started_while_split_gets_every_cpu():
    trainer = Worker()
    try:
        trainer.run(training_cores.enter)
        show, _ = training_cores.split()
        plain = subprocess.Popen(["sleep", "30"])
        widened = subprocess.Popen(["sleep", "30"])
        training_cores.widen_child(widened.pid)
        assert affinity(plain.pid) == show  # inherited from the show's thread
        assert affinity(widened.pid) == FULL
    finally:
        trainer.run(training_cores.leave)
        for child in (plain, widened):
            child.kill()
            child.wait()
    trainer.close()


def test_shared_turns_the_split_off(monkeypatch):
    monkeypatch.setenv(training_cores.ENVIRONMENT, "shared")
    trainer = Worker()
    assert trainer.run(training_cores.enter) is False
    assert training_cores.split() is None
    assert affinity(trainer.tid) == affinity(threading.get_native_id()) == FULL
    trainer.run(training_cores.leave)  # harmless when it never entered
    trainer.close()


@needs_two
def test_a_live_trainer_trains_on_its_half_and_gives_the_cpus_back_when_stopped():
    from engine.learners import Trainer
    from engine.learners.regressor import Regressor, RegressorConfig

    show, training = training_cores.halves(FULL)
    trainer = Trainer(Regressor(RegressorConfig()), seed=3)
    trainer.load()
    seen = None
    trainer.start()
    try:
        for _ in range(400):  # the split comes after the first call (XLA's pool exists by then)
            if training_cores.split() is not None and trainer._thread is not None:
                seen = (affinity(trainer._thread.native_id), affinity(threading.get_native_id()))
                if seen == (training, show):
                    break
            threading.Event().wait(0.05)
    finally:
        trainer.stop()
        assert trainer.join(30)
    assert seen == (training, show)
    assert trainer.latest.steps > 0
    assert training_cores.split() is None
    assert affinity(threading.get_native_id()) == FULL


def test_a_trainer_without_own_cores_trains_on_every_cpu():
    """A scene whose show-side work runs jax (the ear) keeps the CPUs shared, even while another
    trainer has split them."""
    from engine.learners import Trainer
    from engine.learners.regressor import Regressor, RegressorConfig

    trainer = Trainer(Regressor(RegressorConfig()), seed=3, own_cores=False)
    trainer.load()
    trainer.start()
    try:
        for _ in range(400):
            if trainer.latest.steps >= 3:
                break
            threading.Event().wait(0.05)
        assert trainer.latest.steps >= 3
        assert training_cores.split() is None
        assert affinity(trainer._thread.native_id) == FULL
        if len(FULL) >= 2:
            other = Worker()
            try:
                other.run(training_cores.enter)
                assert training_cores.split() is not None
                assert affinity(trainer._thread.native_id) == FULL
            finally:
                other.run(training_cores.leave)
                other.close()
    finally:
        trainer.stop()
        assert trainer.join(30)
    assert affinity(threading.get_native_id()) == FULL


@needs_two
def test_assigned_helpers_go_where_they_asked_while_split_and_back_after():
    show, training = training_cores.halves(FULL)
    early = Worker()  # assigned before the split begins: placed when it does
    early.run(lambda: training_cores.assign(training_cores.TRAINING))
    assert affinity(early.tid) == FULL  # nothing to do while not split
    trainer, late, anywhere = Worker(), Worker(), Worker()
    try:
        trainer.run(training_cores.enter)
        assert affinity(early.tid) == training
        late.run(lambda: training_cores.assign(training_cores.TRAINING))  # during the split: at once
        anywhere.run(lambda: training_cores.assign(training_cores.EVERY))
        assert affinity(late.tid) == training
        assert affinity(anywhere.tid) == FULL
        trainer.run(training_cores.refresh)  # a placement keeps them where they asked
        assert (affinity(early.tid), affinity(late.tid), affinity(anywhere.tid)) == (training, training, FULL)
        late.run(training_cores.unassign)
        assert affinity(late.tid) == show
        trainer.run(training_cores.refresh)
        assert affinity(late.tid) == show
    finally:
        trainer.run(training_cores.leave)
        for worker in (early, anywhere):
            worker.run(training_cores.unassign)
    for worker in (early, late, anywhere, trainer):
        assert affinity(worker.tid) == FULL
        worker.close()


def test_assign_takes_a_half_it_knows():
    with pytest.raises(ValueError, match="half must be"):
        training_cores.assign("show")


def test_lower_training_priority_puts_xla_pool_idle_and_nothing_else():
    """In a process of its own (the pool stays lowered for the rest of a process): after a
    computation has started XLA's pool, every pool thread is at niceness 19 in SCHED_IDLE, the
    calling thread keeps its class and niceness, and a second call changes nothing."""
    script = """
import os, threading
import jax.numpy as jnp
from engine import training_cores
from engine.learners.trainer import lower_training_priority
me = threading.get_native_id()
before = (os.sched_getscheduler(me), os.getpriority(os.PRIO_PROCESS, me))
x = jnp.ones((512, 512))
(x @ x).block_until_ready()
pool = training_cores.xla_pool_threads()
assert pool, "no XLA pool thread after a computation"
assert lower_training_priority(19) == len(pool)
for tid in pool:
    assert os.sched_getscheduler(tid) == os.SCHED_IDLE and os.getpriority(os.PRIO_PROCESS, tid) == 19, tid
assert (os.sched_getscheduler(me), os.getpriority(os.PRIO_PROCESS, me)) == before
assert lower_training_priority(19) == 0
print("pool", len(pool))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("pool ")
