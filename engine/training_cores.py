"""A core of its own for training: while a model trains beside the live show, the process's CPUs
are split in two, the training half for XLA's compute pool and the threads that train, the show
half for every other thread (the show's loop, MIDI, OSC, a scene's decoder).

Why: the training pool at SCHED_IDLE (:func:`engine.learners.trainer.lower_training_priority`)
still slowed the show's frames about 2x at p99 on two cores (measured, a 30 ms-step conv net:
frame p99 6.3 ms against 3.1 ms). The scheduler gives the waking show thread a core, but the
caches and the memory bus it finds are the pool's. With the pool and the trainer's thread on CPU 1
and everything else on CPU 0 the same show measured 2.74 ms against 2.71 ms (1.0x), at about 2/3
of the training speed (21 steps/s against 30). The split holds while any thread is registered with
:func:`enter` and is undone, on every thread, when the last one calls :func:`leave`.

``SHOWRUNNER_TRAINING_CORES=shared`` turns it off (training as fast as the machine allows, frames
slower); a process allowed one CPU never splits. Threads started while split inherit their
parent's half; :func:`refresh` (the trainer calls it after each call) puts new ones where they
belong, and :func:`widen_child` gives a child process (the audio process, the encoder) the full
set back.

A scene's helper thread (the grain VAE's decoders) may ask for the training half while split
(:func:`assign`): at normal priority it runs ahead of the idle pool there, away from the show's
frames.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("showrunner.learners")

ENVIRONMENT = "SHOWRUNNER_TRAINING_CORES"
XLA_POOL = "tf_XLAEigen"  # the name of XLA's CPU compute pool threads

_lock = threading.Lock()
_training: set[int] = set()  # native thread ids registered by enter()
_halves: tuple[frozenset[int], frozenset[int]] | None = None  # (show, training)
_placed: frozenset[int] = frozenset()  # the threads of the last placement (refresh compares)
_assigned: dict[int, str] = {}  # native thread id: TRAINING or EVERY, while split (assign)


def _process_cpus() -> frozenset[int] | None:
    try:  # the main thread's: taken at import, before any split
        return frozenset(os.sched_getaffinity(os.getpid()))
    except (OSError, AttributeError):
        return None


_full: frozenset[int] | None = _process_cpus()  # the process's CPUs, what a split divides

TRAINING = "training"  # the training half (the pool at SCHED_IDLE there yields to a normal thread)
EVERY = "every"  # every CPU of the process, whether split or not


def halves(cpus: set[int] | frozenset[int]) -> tuple[frozenset[int], frozenset[int]] | None:
    """``cpus`` split into (show, training): the training half is the upper ``len // 2`` CPUs
    (on two CPUs: {0} and {1}); None for fewer than two."""
    ordered = sorted(cpus)
    if len(ordered) < 2:
        return None
    cut = len(ordered) - len(ordered) // 2
    return frozenset(ordered[:cut]), frozenset(ordered[cut:])


def enabled() -> bool:
    """Whether training may take a core of its own (``SHOWRUNNER_TRAINING_CORES`` is not
    "shared", and the platform can pin threads)."""
    setting = os.environ.get(ENVIRONMENT, "split").strip().lower()
    return setting != "shared" and hasattr(os, "sched_setaffinity")


def split() -> tuple[frozenset[int], frozenset[int]] | None:
    """The (show, training) halves while the split holds, else None."""
    return _halves


def enter() -> bool:
    """Register the calling thread as one that trains, and split the CPUs if they are not yet.
    Returns whether the split holds (False: turned off, one CPU, or the platform cannot)."""
    global _halves
    if not enabled() or _full is None:
        return False
    tid = threading.get_native_id()
    with _lock:
        pair = _halves or halves(_full)
        if pair is None:
            return False
        if _halves is None:
            log.info("training on CPU %s, the show on CPU %s (%s=shared to share them)",
                     _names(pair[1]), _names(pair[0]), ENVIRONMENT)
        _training.add(tid)
        _place(pair)
        _halves = pair  # published once every thread is where it belongs
    return True


def leave() -> None:
    """Unregister the calling thread; the last one to leave gives every thread the full set back."""
    global _halves
    tid = threading.get_native_id()
    with _lock:
        if tid not in _training:
            return
        _training.discard(tid)
        if _training:
            _pin(tid, _home(tid, _halves))  # no longer training: where a helper asked, else the show's
            return
        done: set[int] = set()
        while True:  # again until no thread started meanwhile (it would keep its half)
            tasks = set(_tasks()) - done
            if not tasks:
                break
            for task in tasks:
                _pin(task, _full)
            done |= tasks
        _halves = None
        for task in set(_assigned) - done:  # helpers that ended (their ids may come again)
            del _assigned[task]
        log.debug("training ended: every thread on CPU %s", _names(_full))


def assign(half: str) -> None:
    """Where the calling thread (a scene's helper: a decoder, a listener) runs while the CPUs are
    split, instead of the show's half: :data:`TRAINING` (beside the trainer, ahead of XLA's idle
    pool and away from the show's frames) or :data:`EVERY`. Kept until the thread ends or calls
    :func:`unassign`; placed at once when split, else when a split begins."""
    if half not in (TRAINING, EVERY):
        raise ValueError(f"half must be {TRAINING!r} or {EVERY!r}, got {half!r}")
    tid = threading.get_native_id()
    with _lock:
        _assigned[tid] = half
        if _halves is not None:
            _pin(tid, _home(tid, _halves))


def unassign() -> None:
    """The calling thread back to the show's half (while split)."""
    tid = threading.get_native_id()
    with _lock:
        if _assigned.pop(tid, None) is not None and _halves is not None:
            _pin(tid, _home(tid, _halves))


def refresh() -> None:
    """Place threads started since the last placement (cheap when none were: one directory listing)."""
    if _halves is None:
        return
    with _lock:
        if _halves is not None and frozenset(_tasks()) != _placed:
            _place(_halves)


def widen_child(pid: int) -> None:
    """Give child process ``pid`` (just started, perhaps from a thread on the show's half) every CPU
    of this process, split or not (a split may begin or end while it starts)."""
    if _full is None or not hasattr(os, "sched_setaffinity"):
        return
    for task in _tasks(pid):
        _pin(task, _full)


def _place(pair: tuple[frozenset[int], frozenset[int]]) -> None:
    """Every thread to its half of ``pair`` (caller holds the lock)."""
    global _placed
    tasks = _tasks()
    _training.intersection_update(tasks)  # a registered thread that ended without leaving
    for task in set(_assigned) - set(tasks):
        del _assigned[task]
    for task in tasks:
        _pin(task, _home(task, pair))
    _placed = frozenset(tasks)


def _home(tid: int, pair: tuple[frozenset[int], frozenset[int]]) -> frozenset[int]:
    """Where thread ``tid`` runs while split into ``pair``: the training half for a thread that
    trains, XLA's pool and a helper assigned there; every CPU for a helper assigned EVERY; else the
    show's half (caller holds the lock)."""
    show, training = pair
    if tid in _training or _assigned.get(tid) == TRAINING or _comm(tid) == XLA_POOL:
        return training
    return _full if _assigned.get(tid) == EVERY else show


def xla_pool_threads() -> list[int]:
    """The native ids of XLA's compute pool threads in this process (none before jax computes)."""
    return [tid for tid in _tasks() if _comm(tid) == XLA_POOL]


def _tasks(pid: int | str = "self") -> list[int]:
    try:
        return [int(task) for task in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def _comm(tid: int) -> str:
    try:
        with open(f"/proc/self/task/{tid}/comm") as file:
            return file.read().strip()
    except OSError:
        return ""


def _pin(tid: int, cpus: frozenset[int]) -> None:
    try:
        os.sched_setaffinity(tid, cpus)
    except OSError:  # the thread ended meanwhile
        pass


def _names(cpus: frozenset[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))
