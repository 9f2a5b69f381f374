"""Training a learner beside the show without ever stalling a tick or a frame.

A :class:`Trainer` runs any :class:`~engine.learners.protocol.Learner` in one of two ways, chosen
from outside (the show knows whether it is live or offline):

- **live** (``paced_steps_per_tick=None``): a background thread trains flat out, ``steps_per_call``
  steps per compiled call, and after each call publishes a :class:`Snapshot` (the state, its summary
  already read to numpy, the step count). The scene reads :attr:`Trainer.latest` in its tick: one
  attribute read, never a wait. The thread swaps the reference under a tiny lock (so a stale
  thread cannot overwrite a reset); readers take no lock. A 50 ms step therefore costs the tick
  nothing, and the summary the scene sees is as new as the last finished call.
- **paced** (``paced_steps_per_tick=N``, renders): :meth:`Trainer.tick` runs N steps in the tick, in
  one compiled call, then publishes. Learning is a function of the ticks alone: two renders give the
  same parameters and summaries, bit for bit (on one machine and jax version), whatever the speed.
- **replayed** (``replay_steps=steps_at``, replays): :meth:`Trainer.tick` trains, in calls of
  ``steps_per_call``, until the step count is ``steps_at(tick)``, the count the live show's scene saw
  at that tick (:meth:`Trainer.tick` returns it live, for the performance log). A replay then shows
  exactly the snapshots the live show showed.

A show restarted after its process died (engine.supervisor) catches up as a replay, except that a
trainer the dead show's thread saved states of (``publish_to``: every :attr:`Trainer.PUBLISH_EVERY`
seconds and when it stops) jumps to the newest of them (``resume_from``) instead of computing every
step again, and computes only the steps after it (:meth:`Trainer.settle`); until the jump its scene
sees the state it had. The state it goes on from is the live show's own.

The same seed gives the same initial state; a live run's trajectory is the same sequence of states
as a paced one (calls of ``steps_per_call`` steps); only *which* of them a tick sees depends on the
wall clock.

A scene gets one made for the show's mode from its context, and the show ticks it before the scene:

    trainer = self.context.trainer(Regressor(), "net")   # scene load (engine.scene.SceneContext)
    trainer.load()                      # scene load: compile (AOT), fresh state
    trainer.start()                     # scene enter: the thread starts (live); nothing (paced)
    snapshot = trainer.seen             # scene tick: this tick's state and numpy summary
    trainer.stop()                      # scene exit: asks the thread to stop; never waits

The show calls ``trainer.tick(show_time, tick)`` before the scene's tick (paced steps, a replay's
steps, or, live, nothing but pinning :attr:`Trainer.seen`) and logs the count it returns.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import jax
import numpy as np

from engine import compute_gate
from engine import training_cores as cores
from engine.learners import checkpoint, precision
from engine.learners.protocol import Learner

log = logging.getLogger("showrunner.learners")

State = TypeVar("State")

# XLA's CPU client runs heavy kernels (convolutions, large matrix products) on a pool of threads
# (engine.training_cores.XLA_POOL), shared by the whole process; small calls (the curve learners')
# run on the caller.


def lower_training_priority(niceness: int) -> int:
    """Put XLA's compute pool at ``niceness`` and in Linux's SCHED_IDLE class (elsewhere nothing).

    On a machine with few cores a training step keeps every core busy; at a lower priority the
    scheduler hands a core to the show's thread the moment it wakes. SCHED_IDLE does that at once
    (niceness alone still let a waking show thread wait: measured, a 60 Hz loop's wake-up lateness
    p99 2.2 ms with the pool at niceness 19, 0.35 ms with it idle, 0.7 ms with no training). The trainer's own thread keeps
    its priority: it holds Python's GIL while it dispatches a call, and lowered it would keep the
    show's thread waiting for the GIL (a priority inversion). Raising a thread's priority
    back needs privileges, so the pool stays lowered for the rest of the process. Returns the number
    of threads changed.
    """
    changed = 0
    for tid in cores.xla_pool_threads():
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
                changed += 1
            if hasattr(os, "SCHED_IDLE") and os.sched_getscheduler(tid) != os.SCHED_IDLE:
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except OSError:  # the thread ended meanwhile
            continue
    return changed


@dataclass(frozen=True)
class Snapshot(Generic[State]):
    """One published result of a trainer. Immutable, safe to keep and to read from any thread.

    Attributes:
        state: the learner's state after ``steps`` steps (jax arrays, never donated or reused).
        summary: ``learner.summary(state)`` as numpy arrays.
        steps: steps trained since the last reset or restore.
        show_time: show seconds of the last tick the trainer had seen when it published this.
        seconds: wall seconds the call that produced it took (0 for a reset or restore).
    """

    state: State
    summary: dict[str, np.ndarray]
    steps: int
    show_time: float = 0.0
    seconds: float = 0.0
    _published: float = field(default_factory=time.perf_counter, repr=False, compare=False)


class Trainer(Generic[State]):
    """Runs ``learner`` live in a background thread, or paced by the show's ticks.

    Args:
        learner: what to train.
        seed: its initial state's seed (uint32 range).
        paced_steps_per_tick: None: live (a background thread); N >= 0: N steps in every
            :meth:`tick`, synchronously (renders); a fraction trains a step in some ticks only
            (0.1: one every tenth tick, counted from the last reset, so renders stay identical).
        replay_steps: paced to a recorded live run: ``replay_steps(tick)`` is the step count to
            reach at that tick (the counts :meth:`tick` returned live, one per tick from 1).
        steps_per_call: steps fused in one compiled call by the live thread and by a replay;
            a snapshot is published after each call.
        niceness: XLA's compute pool runs at this Unix niceness once a live thread trains (0..19;
            :func:`lower_training_priority`), so the show's thread always gets a core first.
        own_cores: the live thread and XLA's pool train on half of the CPUs and the show's
            threads run on the other half (:mod:`engine.training_cores`); False for a scene whose
            show-side work runs jax kernels too (they would queue on the pool's half): its thread
            then keeps every CPU even while another trainer has split them (XLA's pool does not).
        name: for logs and errors (default: the learner's name).
        gated: paced trainers train only between :meth:`start` and :meth:`stop`, as a live thread
            does (a scene's trainers: a cue that does not start its trainer trains in no render);
            False: every paced tick trains (offline training, tests).
        resumable: a show catching up after its process died may go on from the state the live
            thread saved (``publish_to`` / ``resume_from``) instead of computing every step.
        duty: live, the share of the wall clock the thread trains (0.01..1; :attr:`duty`, settable
            while it runs): after a call of t seconds it rests t x (1 - duty) / duty (at most
            :attr:`LONGEST_REST`; not after the first call, which pays warm-ups). Paced and
            replayed trainers ignore it (their steps follow the ticks).
        process: live, the thread's calls run in a process of its own
            (:mod:`engine.learners.training_process`) that the show stops while it works on a
            frame (:mod:`engine.compute_gate`), instead of on this process's XLA pool; the
            snapshots' states are then numpy. For a learner whose steps are heavy enough to slow
            the frames from the other CPU; it pickles (or says how it is made again). Paced and
            replayed trainers ignore it.
    """

    MIN_DUTY = 0.01
    REST_SLICE = 0.02  # seconds: a resting thread looks this often for a stop or a new duty
    LONGEST_REST = 30.0  # seconds: one rest, whatever a slow call and a low duty ask

    def __init__(self, learner: Learner[State], seed: int = 0, *, paced_steps_per_tick: float | None = None,
                 replay_steps: Callable[[int], int] | None = None, steps_per_call: int = 1,
                 niceness: int = 19, name: str | None = None, gated: bool = False,
                 resumable: bool = True, own_cores: bool = True, duty: float = 1.0,
                 process: bool = False) -> None:
        if paced_steps_per_tick is not None and not 0 <= paced_steps_per_tick < 1e6:
            raise ValueError(f"paced_steps_per_tick must be >= 0, got {paced_steps_per_tick}")
        if paced_steps_per_tick is not None and replay_steps is not None:
            raise ValueError("a trainer is paced per tick or replays recorded step counts, not both")
        if steps_per_call < 1:
            raise ValueError(f"steps_per_call must be >= 1, got {steps_per_call}")
        self.learner = learner
        self.seed = seed
        self.paced_steps_per_tick = paced_steps_per_tick
        self.replay_steps = replay_steps
        self.steps_per_call = steps_per_call
        self.name = name or learner.name
        self.niceness = niceness
        self.own_cores = own_cores
        self.duty = duty
        self.process = process
        self._process: Any = None  # live with ``process``: its Learning in the training process, kept between generations
        self._starting: Any = None  # a future of the one being made since load()
        self.rested = 0.0  # seconds the live threads have rested for the duty since load
        self.compile_seconds = 0.0
        self.error: BaseException | None = None  # what stopped the live thread, if anything did
        self._init: Any = None
        self._run: Any = None
        self._step: Any = None  # a learner that does not fuse steps: one step and its summary
        self._summary: Any = None
        self._latest: Snapshot[State] | None = None
        self._seen: Snapshot[State] | None = None  # pinned by tick()
        self._lock = threading.Lock()  # guards the swap of _latest against a stale thread
        self._generation = 0  # bumped by reset, restore and stop: a thread of an older one quits
        self._thread: threading.Thread | None = None
        self._show_time = 0.0
        self._ticks = 0
        self._owed = 0.0  # paced by a fraction a tick: the part of a step carried to the next tick
        self.gated = gated
        self._started = False  # between start() and stop() (gated paced trainers train only then)
        self._absorb: Any = None
        self._fed: list[Any] = []  # data handed over by feed(), absorbed before the next step
        self._asked: list[tuple[str, tuple, Any]] = []  # ask(): (name, args, future) for the next call
        self.fed = 0  # pieces of data absorbed since load
        self.feed_dropped = 0  # pieces dropped because too many waited (MAX_WAITING)
        # Recovery (engine.supervisor): live, the thread saves its newest state here every
        # PUBLISH_EVERY seconds and when it stops; a show catching up after the show died reads it
        # from ``resume_from`` instead of computing every step again (:meth:`tick`, :meth:`settle`).
        self.resumable = resumable
        self.publish_to: Path | None = None
        self.resume_from: Path | None = None
        self.published = 0  # states saved to publish_to
        self.resumed = 0  # jumps to a state read from resume_from
        self._epoch = 0  # resets and restores since construction: the same count in a replay
        self._resume_file: tuple | None = None  # (stat key, epoch, steps, state) of the last read

    @property
    def duty(self) -> float:
        """Live, the share of the wall clock the thread trains (see the class's ``duty``)."""
        return self._duty

    @duty.setter
    def duty(self, value: float) -> None:
        value = float(value)
        if not self.MIN_DUTY <= value <= 1.0:  # NaN fails too
            raise ValueError(f"duty must be between {self.MIN_DUTY} and 1, got {value}")
        self._duty = value

    @property
    def paced(self) -> bool:
        """True when training advances only in :meth:`tick` (renders and replays)."""
        return self.paced_steps_per_tick is not None or self.replay_steps is not None

    # Loading ----------------------------------------------------------------------------------------
    def load(self) -> None:
        """Compile init and the fused steps with the summary (at the learner's precision); reset."""
        started = time.perf_counter()
        learner = self.learner

        def run(state: State, count: jax.Array) -> tuple[State, dict[str, jax.Array]]:
            state = learner.run(state, count)
            return state, learner.summary(state)

        def step(state: State) -> tuple[State, dict[str, jax.Array]]:
            state = learner.step(state)
            return state, learner.summary(state)

        with precision.scope(learner.precision):
            seed = np.uint32(0)
            self._init = jax.jit(learner.init).lower(seed).compile()
            shape = jax.eval_shape(learner.init, seed)
            # Not donated: a published state stays valid while the next step runs.
            if learner.feed_example is not None:
                self._absorb = jax.jit(learner.absorb).lower(shape, learner.feed_example).compile()
            if learner.fused_steps:
                self._run = jax.jit(run).lower(shape, jax.ShapeDtypeStruct((), np.int32)).compile()
            else:
                self._step = jax.jit(step).lower(shape).compile()
                self._summary = jax.jit(learner.summary).lower(shape).compile()
        self.compile_seconds = time.perf_counter() - started
        if self.process and not self.paced:
            self._make_process()
        log.info("trainer %s compiled in %.2f s on %s (%s, %s)", self.name, self.compile_seconds,
                 jax.default_backend(), learner.precision, "paced" if self.paced else "live")
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Back to the initial state for ``seed`` (default: the trainer's); a live thread stops."""
        if seed is not None:
            self.seed = seed
        with precision.scope(self.learner.precision):
            state = self._compiled(self._init)(np.uint32(self.seed & 0xFFFFFFFF))
        self._restart_from(state, steps=0)

    # Show hooks ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Live: start training in the background (from the current state); paced: the ticks train
        from now on (a gated trainer's; an ungated one's always do)."""
        self._started = True
        if self.paced or (self._thread is not None and self._thread.is_alive() and
                          self._thread.name.endswith(f"#{self._generation}")):
            return
        self.error = None
        snapshot = self.latest
        thread = threading.Thread(target=self._train, args=(self._generation, snapshot.state, snapshot.steps,
                                                            self._epoch, self.publish_to),
                                  name=f"trainer {self.name} #{self._generation}", daemon=True)
        self._thread = thread
        thread.start()

    def tick(self, show_time: float, tick: int | None = None) -> int:
        """Called once per show tick with its show time (seconds) and, from a show, its number.
        Paced: trains this tick's steps and publishes them before returning. Live: notes the time
        and returns at once. Either way :attr:`seen` becomes :attr:`latest` as it is now.

        Returns the step count of :attr:`seen`: what the scene sees this tick (a performance log
        keeps it, so a replay can reproduce it with ``replay_steps``, which is asked for ``tick``,
        or without one for the ticks counted since the last reset).
        """
        self._show_time = show_time
        self._ticks += 1
        if self.gated and not self._started:
            pass
        elif self.paced_steps_per_tick:
            self._owed += self.paced_steps_per_tick
            count = int(self._owed + 1e-9)
            if count:
                self._owed -= count
                self._advance(count)
        elif self.replay_steps is not None:
            target = self.replay_steps(self._ticks if tick is None else tick)
            if self.resume_from is None or target <= self.latest.steps or not self._resume(target):
                self._advance_to(target)
        self._seen = self.latest
        return self._seen.steps

    PUBLISH_EVERY = 2.0  # seconds between two states saved to publish_to by a live thread

    def settle(self, tick: int) -> None:
        """The end of a catch-up (a show back after its process died): reach the step count the
        live show had at ``tick``, from the newest state the show that died saved (even one call
        past that count: the state it was about to show), computing only the steps after it."""
        if self.replay_steps is not None:
            target = self.replay_steps(tick)
            if self.resume_from is not None:
                self._resume(None)
            self._advance_to(target)
        self.resume_from = None
        self._seen = self.latest

    def _advance_to(self, target: int) -> None:
        due = target - self.latest.steps
        while due > 0:
            self._advance(self.steps_per_call)
            due -= self.steps_per_call

    def _resume(self, target: int | None) -> bool:
        """Catching up: jump to the state in ``resume_from`` when it is of this trainer's current
        reset (the same epoch) and ahead of :attr:`latest` (up to ``target`` steps; None: any).
        True while a saved state of this epoch is ahead or still being renewed (saved within
        3 x :attr:`PUBLISH_EVERY`: a standby following a live show): the steps before it are not
        computed (the scene sees the state it had until the jump); False: compute them as a
        replay does."""
        try:
            status = os.stat(self.resume_from)
        except OSError:
            return False
        key = (status.st_ino, status.st_mtime_ns, status.st_size)
        if self._resume_file is None or self._resume_file[0] != key:
            try:
                state, extra = checkpoint.load_with_extra(self.resume_from, self.learner)
                self._resume_file = (key, int(extra["epoch"]), int(extra["steps"]), state)
            except Exception as error:  # unreadable: compute, as with none (said once)
                log.warning("trainer %s: not resuming from %s: %s", self.name, self.resume_from, error)
                self.resume_from = None
                return False
        _, epoch, steps, state = self._resume_file
        if epoch != self._epoch:
            return False
        ahead = steps > self.latest.steps
        if ahead and (target is None or steps <= target):
            with precision.scope(self.learner.precision):
                state, summary = self._call(jax.device_put(state), 0)
                summary = jax.device_get(summary)
            with self._lock:
                self._fed = []  # what was fed before that state is in it
            self._latest = Snapshot(state, summary, steps, self._show_time)
            self.resumed += 1
        return ahead or time.time() - status.st_mtime < 3 * self.PUBLISH_EVERY

    def _publish(self, snapshot: Snapshot[State], epoch: int, path: Path) -> bool:
        """Save a live snapshot to ``path`` (the training thread; never the show's). False when it
        could not: the show goes on, the file is removed (a restart computes the steps instead of
        waiting for a state that no longer comes), and this trainer saves no more."""
        if epoch != self._epoch:  # reset meanwhile: that state is of no use
            return True
        try:
            checkpoint.save(path, self.learner, snapshot.state, extra={"epoch": epoch, "steps": snapshot.steps})
            self.published += 1
            return True
        except Exception as error:
            log.warning("trainer %s: could not save its state to %s (saving no more): %s", self.name, path, error)
            self.publish_to = None
            try:
                Path(path).unlink(missing_ok=True)
            except OSError:
                pass
            return False

    MAX_WAITING = 8

    def feed(self, data: Any) -> bool:
        """Hand the learner a piece of data shaped as its ``feed_example`` (numpy arrays), taken in
        with ``learner.absorb`` just before the next step: live, by the training thread between
        two calls; paced, in the next tick that trains (renders stay identical). At most
        :attr:`MAX_WAITING` pieces wait (while nothing trains); an older one is then dropped and
        counted in :attr:`feed_dropped`. Returns False for a learner that takes no data."""
        if self._absorb is None:
            return False
        with self._lock:
            self._fed.append(data)
            if len(self._fed) > self.MAX_WAITING:
                del self._fed[0]
                self.feed_dropped += 1
        return True

    def _take_fed(self, state: State) -> State:
        for data in self._fed_list():
            state = self._absorb(state, data)
            self.fed += 1
        return state

    def ask(self, name: str, *args: Any) -> concurrent.futures.Future:
        """Live with a training process: ``learner.<name>(state, *args)`` (jax, compiled there)
        with the state of the next call, done in that process after the call (so it waits, as
        the training does, while the show works on a frame). A future of its numpy result; it
        fails with the call when the process does. Raises RuntimeError for a trainer without a
        training process (paced, or live in a thread): compute it in the scene instead."""
        if not self.process or self.paced:
            raise RuntimeError(f"Trainer {self.name}: ask() needs a live trainer in a process")
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._asked.append((name, args, future))
        return future

    def _take_asked(self) -> list[tuple[str, tuple, concurrent.futures.Future]]:
        with self._lock:
            asked, self._asked = self._asked, []
        return asked

    def _fed_list(self) -> list[Any]:
        with self._lock:
            fed, self._fed = self._fed, []
        return fed

    def stop(self) -> None:
        """Ask the live thread to stop after its current call (its result is dropped); never waits.
        A gated paced trainer's ticks train no more (until :meth:`start`)."""
        self._started = False
        with self._lock:
            self._generation += 1

    def join(self, timeout: float | None = None) -> bool:
        """Stop, then wait up to ``timeout`` seconds for the thread to end (not in a tick: a step can
        take 100 ms). True when no thread is left."""
        self.stop()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                return False
            self._thread = None
        return True

    # Reading ------------------------------------------------------------------------------------------
    @property
    def latest(self) -> Snapshot[State]:
        """The newest published snapshot (a reference read: never waits, never locks)."""
        snapshot = self._latest
        if snapshot is None:
            raise RuntimeError(f"Trainer {self.name}: load() was not called")
        return snapshot

    @property
    def seen(self) -> Snapshot[State]:
        """The snapshot of the last :meth:`tick` (before any: :attr:`latest`): what a scene shows
        and plays in this tick. Live, :attr:`latest` may move on during the tick; :attr:`seen`
        does not, and a replay reproduces its state, summary and step count exactly (the count
        is logged; its ``show_time`` and ``seconds`` are the machine's, not reproduced)."""
        return self._seen if self._seen is not None else self.latest

    @property
    def running(self) -> bool:
        """True while a live thread of the current generation trains."""
        thread = self._thread
        return thread is not None and thread.is_alive() and thread.name.endswith(f"#{self._generation}")

    # Checkpoints ----------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write :attr:`latest`'s state to ``path`` (atomic). Safe while the live thread trains."""
        return checkpoint.save(path, self.learner, self.latest.state)

    def restore(self, path: str | Path) -> None:
        """Continue from the state saved in ``path`` (a live thread stops; :meth:`start` resumes).

        Raises :class:`engine.errors.UserError` (one line) for a missing, corrupt or mismatched file.
        The step count restarts at 0; the learner's own counters (in its state) go on.
        """
        state = checkpoint.load(path, self.learner)
        with precision.scope(self.learner.precision):
            state = jax.device_put(state)
        self._restart_from(state, steps=0)

    # Internals ----------------------------------------------------------------------------------------
    def _compiled(self, function: Any) -> Any:
        if function is None:
            raise RuntimeError(f"Trainer {self.name}: load() was not called")
        return function

    def _call(self, state: State, count: int) -> tuple[State, dict[str, jax.Array]]:
        """``count`` steps (0: none) and the summary after them: one fused call, or, for a
        learner that does not fuse steps, ``count`` calls of one step."""
        if self._step is None:
            return self._compiled(self._run)(state, np.int32(count))
        summary = None
        for _ in range(count):
            state, summary = self._step(state)
        return state, (self._summary(state) if summary is None else summary)

    def _rest(self, busy: float, generation: int) -> None:
        """The live thread, after a call that kept it ``busy`` seconds: rest so that it trains
        :attr:`duty` of the time, at most :attr:`LONGEST_REST`, in slices (a stop ends it; a duty
        changed meanwhile shortens or lengthens it)."""
        started = time.perf_counter()
        while self._generation == generation:
            duty = self._duty
            left = min(busy * (1.0 - duty) / duty, self.LONGEST_REST) - (time.perf_counter() - started)
            if left <= 0.0:
                break
            time.sleep(min(left, self.REST_SLICE))
        self.rested += time.perf_counter() - started

    def _restart_from(self, state: State, steps: int) -> None:
        """A new generation starting at ``state``: any live thread stops; the evaluation of the
        state (0 steps) is published."""
        with self._lock:
            self._generation += 1
        self._epoch += 1
        self._resume_file = None
        with precision.scope(self.learner.precision):
            state, summary = self._call(state, 0)
            summary = jax.device_get(summary)
        with self._lock:
            self._latest = self._seen = Snapshot(state, summary, steps, self._show_time)
        self._ticks = 0
        self._owed = 0.0

    def _advance(self, count: int) -> None:
        """``count`` steps in this thread, published (paced modes)."""
        snapshot = self.latest
        started = time.perf_counter()
        with precision.scope(self.learner.precision):
            state, summary = self._call(self._take_fed(snapshot.state), count)
            summary = jax.device_get(summary)
        self._latest = Snapshot(state, summary, snapshot.steps + count, self._show_time,
                                time.perf_counter() - started)

    def _train(self, generation: int, state: State, steps: int, epoch: int = 0,
               publish_to: Path | None = None) -> None:
        """The live thread: calls of ``steps_per_call`` steps, each published, until stopped; every
        :attr:`PUBLISH_EVERY` seconds and at the end, the newest saved to ``publish_to`` (the
        :attr:`publish_to` of when it started: a thread of a scene's warm-up never saves)."""
        count = self.steps_per_call
        self._compiled(self._init)
        saved_at, saved, last = time.perf_counter(), steps, None
        lowered = entered = False
        elsewhere = None
        try:
            if self.process:
                elsewhere = self._process_for(state)
                compute_gate.hold(elsewhere.pid)
                lowered = True  # nothing of this process's to lower or to place
            with precision.scope(self.learner.precision):  # per thread: not inherited from the caller
                while self._generation == generation:
                    started = time.perf_counter()
                    if elsewhere is not None:
                        fed, jobs = self._fed_list(), self._take_asked()
                        try:
                            state, summary, results = elsewhere.call(fed, count, [job[:2] for job in jobs])
                        except BaseException as error:
                            for _, _, future in jobs:
                                future.set_exception(error)
                            raise
                        for (_, _, future), result in zip(jobs, results):
                            if isinstance(result, BaseException):
                                future.set_exception(result)
                            else:
                                future.set_result(result)
                        self.fed += len(fed)
                    else:
                        state, summary = self._call(self._take_fed(state), count)
                        jax.block_until_ready(summary)  # waits for the call with the GIL released
                        summary = jax.device_get(summary)
                    busy = time.perf_counter() - started  # the call alone: what the duty shares out
                    first = not lowered  # (a training process has compiled before its first call)
                    if not lowered:  # after the first call: XLA's pool exists by then
                        lower_training_priority(self.niceness)
                        entered = lowered = True
                        if self.own_cores:
                            cores.enter()  # this thread and the pool on CPUs of their own
                        else:
                            cores.assign(cores.EVERY)  # shared, though another trainer split them
                    elif self.own_cores:
                        cores.refresh()  # threads started since: to their half
                    steps += self.steps_per_call
                    snapshot = Snapshot(state, summary, steps, self._show_time, time.perf_counter() - started)
                    with self._lock:
                        if self._generation != generation:
                            break
                        self._latest = last = snapshot
                    if publish_to is not None and time.perf_counter() - saved_at >= self.PUBLISH_EVERY:
                        if not self._publish(snapshot, epoch, publish_to):
                            publish_to = None
                        saved_at, saved = time.perf_counter(), snapshot.steps
                    if self._duty < 1.0 and not first:  # the first call pays warm-ups: no rest for those
                        self._rest(busy, generation)
            if publish_to is not None and last is not None and last.steps != saved:  # stopped: where it got
                self._publish(last, epoch, publish_to)
        except Exception as error:  # the show goes on with the last snapshot; the scene can look
            self.error = error
            log.exception("trainer %s stopped: %s", self.name, error)
        finally:
            if elsewhere is not None:
                compute_gate.release(elsewhere.pid)
            if entered:
                cores.leave() if self.own_cores else cores.unassign()

    def _process_for(self, state: State) -> Any:
        """The training process (made on the first live start, or again when it died), told to
        go on from ``state``."""
        from engine.learners.training_process import Learning

        starting, self._starting = self._starting, None
        if starting is not None:  # made from load() on: ready by now, or soon
            try:
                self._process = starting.result()
            except Exception as error:  # said once here; a new one is tried below
                log.warning("trainer %s: the training process made at load failed: %s", self.name, error)
        if self._process is not None and not self._process.alive:
            self._process.close()
            self._process = None
        if self._process is None:
            self._process = Learning(self.learner, self.niceness)
        self._process.begin(state)
        return self._process

    def _make_process(self) -> None:
        """Live with ``process``: start making the training process now (load), beside the rest
        of the loading, so that the first start (or a show back after its process died, once it
        has caught up) trains at once rather than seconds later."""
        from engine.learners.training_process import Learning

        if self._process is not None or self._starting is not None:
            return
        future: concurrent.futures.Future = concurrent.futures.Future()

        def make() -> None:
            try:
                made = Learning(self.learner, self.niceness)
                log.info("trainer %s: a training process (%d), compiled in %.2f s", self.name, made.pid,
                         made.compile_seconds)
                future.set_result(made)
            except BaseException as error:
                future.set_exception(error)

        self._starting = future
        threading.Thread(target=make, name=f"trainer {self.name} process", daemon=True).start()

    def close(self) -> None:
        """Stop, and end the training process if there is one (a new start makes another)."""
        self.join(10.0)
        starting, self._starting = self._starting, None
        if starting is not None:
            try:
                self._process = self._process or starting.result(60)
            except Exception:
                pass
        process, self._process = self._process, None
        if process is not None:
            process.close()
