"""A supervised live show's whole state, saved now and then beside its performance log, so that a
show started after it dies catches up from there instead of from the start (docs/recovery.md).

Without it the catch-up ticks through the whole log: 1.8 s for a death 10 minutes into the first
piece, 5.3 s at 30 minutes, on top of the 3.5-4 s a show takes to start. The state is the render
farm's snapshot (engine/snapshot.py): every ``every`` show seconds, between two frames, the show
pickles itself (about 3 ms for the first piece; under a millisecond of it is the pickle), and a
thread writes the bytes to ``PERF.state`` (written whole, then renamed over the last). The show
started after a death reads it, checks it is the state of the same show (a digest of its log's
header) from before where it got, puts it into itself, and ticks through the log from there only.

What a show owns of its devices stays the restoring show's own, as after a catch-up from the start:
its note sources and their queue (they go on from the show's time at the end of the catch-up), the
computer keyboard's held keys, its frame count, its audio process's client. A state that cannot be
read (another version of the code, a file cut short) is said in the log and the catch-up runs from
the start, as without one.

Shows whose models train in background threads (engine/learners/trainer.py) save no state: a
thread's model is not between two frames when the show is; their trainers save their own newest
states for the catch-up (``Show.publish_training``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from engine import snapshot

log = logging.getLogger("showrunner.recovery")

EVERY_S = 30.0  # show seconds between two saved states (``showrunner run --save-state-every``)
MAGIC = b"showrunner state 2 "  # then the tick, the log's identity and a newline, then the snapshot's bytes
# The restoring show's own: what faces its devices (a catch-up from the start leaves them as loaded).
KEPT = ("sources", "queue", "keyboard", "frame_index")


def state_path(perf_log: Path) -> Path:
    """Where a supervised show writing ``perf_log`` saves its state."""
    return perf_log.with_name(perf_log.name + ".state")


def _partial(state: Path) -> Path:
    """Where a state is written before it is renamed over the last."""
    return state.with_name(state.name + ".tmp")


def _set_aside(state: Path) -> Path:
    """Where a state the show back could not take is moved (:func:`restore`)."""
    return state.with_name(state.name + ".bad")


def take_set_aside(perf_log: Path) -> bool:
    """Whether the show that just died set its saved state aside (it died of it, not of the show:
    engine.supervisor counts no try); the set-aside file goes."""
    path = _set_aside(state_path(perf_log))
    found = path.exists()
    path.unlink(missing_ok=True)
    return found


def log_identity(perf_log: Path) -> str:
    """Which show's log ``perf_log`` is: a digest of its first line (the header, with the time the
    show started), so that a state another show of the same path left is never taken for its."""
    try:
        with open(perf_log, "rb") as file:
            return hashlib.sha1(file.readline()).hexdigest()[:16]
    except OSError:
        return "-"


def clear(perf_log: Path) -> None:
    """A new show writing ``perf_log``: the state an earlier show of the same path saved goes."""
    state = state_path(perf_log)
    for path in (state, _partial(state), _set_aside(state)):
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            log.warning("cannot remove %s: %s (a show back after dying may start from it)", path, error.strerror)


class StateSaver:
    """Saves ``show``'s state to ``path`` every ``every`` show seconds (see the module)."""

    snapshot_by_reference = True  # engine.snapshot: how the show is driven, not its state

    def __init__(self, path: Path, every: float, tick_rate: float, identity: str) -> None:
        self.path = path
        self.identity = identity  # log_identity() of the show's performance log
        self.every_ticks = max(1, round(every * tick_rate))
        self.next_tick = self.every_ticks
        self.saved: list[tuple[int, float, int]] = []  # (tick, milliseconds on the show's thread, bytes)
        self._writer: threading.Thread | None = None
        self._off = False
        self._failures = 0  # saves in a row that failed: three, and saving stops

    def maybe_save(self, show: Any) -> None:
        """At the top of a frame: the state, when it is due and the last one is written."""
        tick = show.clock.tick_count
        if self._off or tick < self.next_tick or (self._writer is not None and self._writer.is_alive()):
            return
        if any(scene.context.trainers for scene in show.scenes):
            self._off = True
            log.info("no saved states for recovery: models train in the background here (their trainers "
                     "save their own)")
            return
        started = time.perf_counter()
        try:
            data = snapshot.save(show, show.frame_index, leave=KEPT)
        except Exception as error:  # the show goes on; a catch-up from the start still works
            # Something that cannot be saved stays so; a passing failure (another thread changing
            # what was being pickled) is tried again at the next save.
            self._failures += 1
            self._off = isinstance(error, snapshot.SnapshotError) or self._failures >= 3
            self.next_tick = tick + self.every_ticks
            log.warning("cannot save the show's state for recovery (%s)%s", error,
                        "; a show back after dying catches up from the start" if self._off else
                        "; trying again at the next save")
            return
        self._failures = 0
        took = (time.perf_counter() - started) * 1000
        self.saved.append((tick, took, len(data)))
        log.debug("state at tick %d saved in %.1f ms (%.2f MB)", tick, took, len(data) / 1e6)
        self.next_tick = tick + self.every_ticks
        self._writer = threading.Thread(target=self._write, args=(tick, data), name="state-writer", daemon=True)
        self._writer.start()

    def _write(self, tick: int, data: bytes) -> None:
        partial = _partial(self.path)
        try:
            with open(partial, "wb") as out:
                out.write(MAGIC + f"{tick} {self.identity}\n".encode())
                out.write(data)
            os.replace(partial, self.path)
        except OSError as error:
            self._off = True
            log.warning("cannot write the show's state to %s (%s); a show back after dying catches up from "
                        "the start", self.path, error.strerror)

    def join(self, timeout: float = 5.0) -> None:
        if self._writer is not None:
            self._writer.join(timeout)


def read_state(path: Path) -> tuple[int, str, bytes] | None:
    """(the tick a saved state is from, the identity of the log it belongs to, its snapshot
    bytes), or None when there is none or it is not one."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    head, _, data = raw.partition(b"\n")
    if not head.startswith(MAGIC) or not data:
        return None
    tick, _, identity = head[len(MAGIC):].decode("ascii", "replace").partition(" ")
    try:
        return int(tick), identity, data
    except ValueError:
        return None


def read_tick(path: Path, identity: str) -> tuple[int, bytes] | None:
    """(the tick, the snapshot bytes) of the state saved at ``path`` for the show whose log has
    ``identity``; None when there is none, it is not one or it is another show's."""
    found = read_state(path)
    if found is None or found[1] != identity:
        return None
    return found[0], found[2]


def restore(show: Any, path: Path, until: int, identity: str) -> int | None:
    """Put the state saved at ``path`` into ``show`` (loaded, not yet run) when it is the state of
    the show whose log has ``identity``, from tick ``until`` or before; returns its tick, or None
    (the show untouched) when there is none, it is another show's or from later, or it cannot be
    read. A state that is read but cannot be put into the show is renamed ``.bad`` (the next show
    back catches up from the start) and the error raised: the show is half the state's by then."""
    found = read_state(path)
    if found is None:
        if path.exists():
            log.warning("the saved state %s is not one (cut short?): catching up from the start", path)
        return None
    tick, saved_for, data = found
    if saved_for != identity:
        log.warning("the saved state %s is another show's (its log's identity %s, this log's %s): catching up "
                    "from the start", path, saved_for, identity)
        return None
    if tick > until:
        log.warning("the saved state is from tick %d, after the log's end (%d): catching up from the start",
                    tick, until)
        return None
    try:
        saved = snapshot.read(show, data)
    except snapshot.SnapshotError as error:
        log.warning("cannot read the saved state %s (%s): catching up from the start", path, error)
        return None
    # How the restoring show is driven, not what it was doing: live or paced, replayed or not.
    driven = [(scene.context.paced, scene.context.replayed_steps, scene.context.osc_now) for scene in show.scenes]
    learn_file = show.learn.path  # where this show saves its MIDI learn bindings (the state's is the dead show's)
    try:
        snapshot.apply(show, saved, keep=KEPT)
    except Exception:
        try:
            os.replace(path, _set_aside(path))
        except OSError:
            pass
        log.error("the saved state %s could not be put into the show: renamed .bad; the next show back catches "
                  "up from the start", path)
        raise
    for scene, (paced, replayed_steps, osc_now) in zip(show.scenes, driven):
        scene.context.paced, scene.context.replayed_steps, scene.context.osc_now = paced, replayed_steps, osc_now
    # What waited for a next tick in the show that saved it is in the log at that tick: taken from there.
    show._pending_actions, show._pending_learn, show._typed = [], [], []
    show._throw_requested = False
    # Between ticks, as a catch-up from the start leaves its clock: the dead show's fraction of a
    # tick would move where the live inputs fall.
    show.clock._accumulator = 0.0
    # Out of MIDI learn mode, with the bindings made, as after a catch-up from the start (the
    # log holds the bindings, not the mode); the kept keyboard is out of it already.
    show.learn.leave()
    show.learn.path = learn_file
    if show.osc_in is not None:  # the scenes' own OSC handlers are the restored scenes'
        show.osc_in.set_now_handlers(show._osc_handlers)
    return tick
