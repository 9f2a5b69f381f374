"""Training processes wait while the show works on a frame: stopped (SIGSTOP) for the show's ticks
and drawing, continued (SIGCONT) for its rest until the next frame.

Why: on two CPUs a model training on the other CPU slowed the show's frames even with the two kept
apart (:mod:`engine.training_cores`) and the training at idle priority: the CPUs share caches,
memory and, in a virtual machine, perhaps a physical core. Measured here (2 vCPUs, AMD EPYC, the
granolar scene live at 60 Hz, the VAE training step after step in another process at idle
priority), frame time p99, medians of 5 rounds of 10 s: the show alone 4.85 ms; the process
training throughout 5.93 ms (1.22x); the process stopped during each frame's work 4.90 ms (1.01x).
A frame works for a few ms of its 16.7, so the training keeps most of the wall clock.

Only processes: a thread cannot be stopped from outside, and a signal handler in XLA's compute
threads corrupted the heap (tried). The show calls :func:`busy` and :func:`rest` from its live
loop; a live trainer in a process of its own (engine.learners.training_process) registers its
process while it trains (:func:`hold`, :func:`release`). Nothing here runs in a render (it never
rests). ``SHOWRUNNER_FRAME_GATE=off`` lets the processes run through the frames.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading

ENVIRONMENT = "SHOWRUNNER_FRAME_GATE"

_lock = threading.Lock()
_held: dict[int, int] = {}  # pids the frames stop: how many hold each
_stopped: set[int] = set()  # of those, stopped now
stops = 0  # frames that stopped at least one process (a measure)


def enabled() -> bool:
    return os.environ.get(ENVIRONMENT, "on").strip().lower() not in ("off", "0", "no", "false") \
        and hasattr(signal, "SIGSTOP")


def hold(pid: int) -> None:
    """Stop process ``pid`` during the show's frames from the next one on (until :func:`release`)."""
    if not enabled():
        return
    with _lock:
        _held[pid] = _held.get(pid, 0) + 1


def release(pid: int, every: bool = False) -> None:
    """One hold of ``pid`` less (``every``: all of them); when none is left, the frames no
    longer stop it, and it is continued now if it is stopped."""
    with _lock:
        left = 0 if every else _held.get(pid, 0) - 1
        if left > 0:
            _held[pid] = left
            return
        _held.pop(pid, None)
        if pid in _stopped:
            _stopped.discard(pid)
            _send(pid, signal.SIGCONT)


def busy() -> None:
    """The show starts a frame's work: every held process stops."""
    global stops
    if not _held:
        return
    with _lock:
        for pid in set(_held) - _stopped:
            if _send(pid, signal.SIGSTOP):
                _stopped.add(pid)
        if _stopped:
            stops += 1


def rest() -> None:
    """The show rests until its next frame (or ends its loop): every stopped process goes on."""
    if not _stopped:
        return
    with _lock:
        for pid in _stopped:
            _send(pid, signal.SIGCONT)
        _stopped.clear()


def held() -> frozenset[int]:
    return frozenset(_held)


def _send(pid: int, number: int) -> bool:
    try:
        os.kill(pid, number)
        return True
    except ProcessLookupError:  # it ended
        _held.pop(pid, None)
        return False


@atexit.register
def _continue_all() -> None:  # a stopped process never outlives the show stopped
    with _lock:
        for pid in _stopped:
            _send(pid, signal.SIGCONT)
        _stopped.clear()
