"""A live trainer's calls in a process of its own, which the show stops while it works on a frame
(engine.compute_gate).

One training process per show, shared by every trainer made with ``process=True`` (a
:class:`Learning` each: its learner made again there from its ``recipe()``, compiled there).
The trainer's thread in the show stays what it is (duty, rests, snapshots, saves, generations);
only its calls go there. The state lives there: a generation begins by sending it (numpy
leaves), and each call takes the data fed since the last one and answers with the summary and
the leaves that changed (leaves under :data:`BIG` always travel, larger ones only when their
content changed: a VAE's 8 MB ring of heard grains when it was fed, its 0.5 MB of parameters and
optimizer state every call). The snapshots' states are then numpy.

The process compiles at normal priority (the show is loading) and, from its first call on, runs
every thread at SCHED_IDLE on the training half of the CPUs (:func:`training_cpus`). It dies with
the show (the kernel's parent-death signal, set against a thread that lives as long as the show,
which starts it) and ends when its socket closes or its last learner is forgotten. A failure
there fails that call (``Trainer.error``; the show goes on with the last snapshot); a process
that died is made again by the next :meth:`Trainer.start`.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import itertools
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

log = logging.getLogger("showrunner.learners")

BIG = 1 << 20  # bytes: a leaf this large travels only when its content changed
START_TIMEOUT = 120.0  # seconds for the process to import, unpickle and compile
PR_SET_PDEATHSIG = 1

_spawner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="training processes")


class ProcessFailed(RuntimeError):
    pass


def training_cpus() -> frozenset[int]:
    """Where a training process runs: the training half of the show's CPUs
    (:func:`engine.training_cores.halves`: CPU 1 of two), so that the show's CPU keeps its caches
    between frames (measured, granolar at 60 Hz on 2 CPUs, frame p99 at the median of 3 rounds:
    a gated process on both CPUs 1.34x the show not training, on the other CPU 0.89x, at 11.1
    and 6.8 steps/s); every CPU with ``SHOWRUNNER_TRAINING_CORES=shared`` or a single one."""
    from engine import training_cores

    full = training_cores._full or frozenset(range(os.cpu_count() or 1))
    pair = training_cores.halves(full) if training_cores.enabled() else None
    return full if pair is None else pair[1]


class TrainingProcess:
    """The show's side of the training process: one for the show's process, shared by every live
    trainer with ``process`` (each a :class:`Learning` of its own there); a lock keeps one
    exchange at a time."""

    def __init__(self, niceness: int = 19) -> None:
        self.niceness = niceness
        self.clients = 0
        self._lock = threading.Lock()
        self._keys = itertools.count(1)
        ours, theirs = socket.socketpair()
        try:
            self._process = _spawner.submit(self._start, theirs).result()
        finally:
            theirs.close()
        self._connection = Connection(os.dup(ours.fileno()))
        ours.close()

    def _start(self, theirs: socket.socket) -> subprocess.Popen:
        # On the spawner's thread: the parent-death signal fires when the thread that forked ends.
        cpus = ",".join(str(cpu) for cpu in sorted(training_cpus()))
        return subprocess.Popen(
            [sys.executable, "-m", "engine.learners.training_process", str(theirs.fileno()), str(os.getpid()),
             str(self.niceness), cpus], pass_fds=(theirs.fileno(),), close_fds=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)})

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def exchange(self, message: tuple, timeout: float | None = None) -> tuple:
        with self._lock:
            self._send(message)
            return self._receive(timeout)

    def close(self) -> None:
        from engine import compute_gate

        compute_gate.release(self._process.pid, every=True)
        try:
            self._connection.close()
        except OSError:
            pass
        try:
            self._process.wait(5.0)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _send(self, message: Any) -> None:
        try:
            self._connection.send(message)
        except (OSError, EOFError) as error:
            raise ProcessFailed(self._why(error)) from None

    def _receive(self, timeout: float | None = None) -> tuple:
        try:
            if timeout is not None and not self._connection.poll(timeout):
                raise ProcessFailed(f"the training process did not answer in {timeout:.0f} s")
            message = self._connection.recv()
        except (OSError, EOFError) as error:
            raise ProcessFailed(self._why(error)) from None
        if message[0] == "error":
            raise ProcessFailed(f"the training process failed: {message[1]}")
        return message

    def _why(self, error: BaseException) -> str:
        from engine import compute_gate

        compute_gate.release(self._process.pid, every=True)  # before it is reaped: its pid may come again
        try:
            code = self._process.wait(1.0)
        except subprocess.TimeoutExpired:
            return f"lost the training process ({type(error).__name__})"
        if code < 0:
            return f"the training process was killed by {signal.Signals(-code).name}"
        return f"the training process ended with exit status {code}"


_shared: TrainingProcess | None = None
_shared_lock = threading.Lock()


class Learning:
    """One trainer's learner in the training process: its state there, and the calls on it."""

    def __init__(self, learner: Any, niceness: int = 19) -> None:
        global _shared
        try:
            payload = pickle.dumps(learner.recipe(), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            raise ProcessFailed(f"learner {learner.name} cannot go to a training process: {error}") from None
        with _shared_lock:
            if _shared is None or not _shared.alive:
                if _shared is not None:
                    _shared.close()
                _shared = TrainingProcess(niceness)
            self.process = _shared
            self.process.clients += 1
            self.key = next(self.process._keys)
        self._leaves: list[np.ndarray] | None = None
        self._tree: Any = None
        self._closed = False
        try:
            self.compile_seconds = self.process.exchange(("learner", self.key, payload), START_TIMEOUT)[1]
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.alive and not self._closed

    def begin(self, state: Any) -> None:
        """The state the next calls go on from."""
        import jax

        leaves, self._tree = jax.tree_util.tree_flatten(state)
        self._leaves = [np.asarray(leaf) for leaf in leaves]
        self.process.exchange(("begin", self.key, self._leaves))

    def call(self, fed: list[Any], count: int, jobs: list[tuple[str, tuple]] = ()
             ) -> tuple[Any, dict[str, np.ndarray], list[Any]]:
        """``fed`` absorbed, then ``count`` steps: the new state (numpy), its summary, and the
        ``jobs`` done with it (``learner.<name>(state, *args)``, compiled there, numpy results;
        an exception where one failed)."""
        import jax

        if self._leaves is None:
            raise RuntimeError("begin() first")
        _, changed, summary, results = self.process.exchange(("call", self.key, fed, count, list(jobs)))
        for index, leaf in changed.items():
            self._leaves[index] = leaf
        return jax.tree_util.tree_unflatten(self._tree, list(self._leaves)), summary, results

    def close(self) -> None:
        """Forget this learner there; the process ends with its last one."""
        global _shared
        if self._closed:
            return
        self._closed = True
        if self.process.alive:
            try:
                self.process.exchange(("forget", self.key), 10.0)
            except ProcessFailed:
                pass
        with _shared_lock:
            self.process.clients -= 1
            if self.process.clients <= 0 or not self.process.alive:
                if _shared is self.process:
                    _shared = None
                if self.process.clients <= 0:
                    self.process.close()


def _pin_every_thread(cpus: set[int]) -> None:
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), cpus)
        except OSError:
            pass


def _idle_every_thread(niceness: int) -> None:
    for task in os.listdir("/proc/self/task"):
        try:
            tid = int(task)
            os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), niceness))
            if hasattr(os, "SCHED_IDLE"):
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass


class _Entry:
    def __init__(self, payload: bytes) -> None:
        from engine.learners.trainer import Trainer

        make, args = pickle.loads(payload)
        self.learner = make(*args)
        self.trainer = Trainer(self.learner, paced_steps_per_tick=0, name=f"{self.learner.name} (process)")
        self.trainer.load()
        self.state: Any = None
        self.sent: list[np.ndarray] = []
        self.jobs: dict[str, Any] = {}

    def begin(self, leaves: list[np.ndarray]) -> None:
        import jax

        from engine.learners import precision

        with precision.scope(self.learner.precision):
            self.sent = list(leaves)
            tree = jax.tree_util.tree_structure(self.trainer.latest.state)
            self.state = jax.device_put(jax.tree_util.tree_unflatten(tree, self.sent))

    def call(self, fed: list[Any], count: int, jobs: list[tuple[str, tuple]]) -> tuple:
        import jax

        from engine.learners import precision

        results = []
        with precision.scope(self.learner.precision):
            state = self.state
            for data in fed:
                state = self.trainer._absorb(state, data)
            state, summary = self.trainer._call(state, count)
            summary = jax.device_get(summary)
            for name, args in jobs:
                try:
                    if name not in self.jobs:
                        self.jobs[name] = jax.jit(getattr(self.learner, name))
                    results.append(jax.device_get(self.jobs[name](state, *args)))
                except Exception as error:  # the job's asker gets it; training goes on
                    results.append(RuntimeError(f"{name}: {type(error).__name__}: {error}"))
        self.state = state
        changed = {}
        for index, leaf in enumerate(jax.tree_util.tree_leaves(state)):
            value = np.asarray(leaf)
            if value.nbytes >= BIG and value.shape == self.sent[index].shape and np.array_equal(value, self.sent[index]):
                continue
            changed[index] = self.sent[index] = value
        return ("done", changed, summary, results)


def _child(connection: Connection, cpus: set[int] | None, niceness: int) -> None:
    """Learners by key; every message answered, a failure with ("error", why), and the process
    goes on. Compiles run at normal priority (the show is loading); from the first call on, every
    thread is idle."""
    entries: dict[int, _Entry] = {}
    pinned = idle = False
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        kind, key = message[0], message[1]
        try:
            if kind == "learner":
                started = time.perf_counter()
                entries[key] = _Entry(message[2])
                if cpus and not pinned:  # after XLA made its pool: as many threads as the show's, the same sums
                    _pin_every_thread(cpus)
                    pinned = True
                answer: tuple = ("ready", time.perf_counter() - started)
            elif kind == "begin":
                entries[key].begin(message[2])
                answer = ("begun", key)
            elif kind == "call":
                if not idle:
                    _idle_every_thread(niceness)
                    idle = True
                answer = entries[key].call(*message[2:])
            elif kind == "forget":
                entries.pop(key, None)
                answer = ("forgotten", key)
            else:
                answer = ("error", f"unknown message {kind!r}")
        except Exception as error:  # said to the show's side, which keeps its last snapshot
            answer = ("error", f"{type(error).__name__}: {error}")
        connection.send(answer)


def main(argv: list[str]) -> int:
    fd, parent, niceness = int(argv[0]), int(argv[1]), int(argv[2])
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the show died before the signal was set
        return 1
    try:
        cpus = {int(cpu) for cpu in argv[3].split(",")}
    except (ValueError, IndexError):
        cpus = None
    _child(Connection(fd), cpus, niceness)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main(sys.argv[1:]))
