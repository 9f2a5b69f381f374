"""Live sound: the engine's side of the audio process.

:class:`LiveAudio` starts ``engine.audio.server`` as a child process, sends it commands through
the shared ring, reads its health once a tick and restarts it if it dies (the show goes on; the
restarted process gets the standing settings again: bus gains, tuning, routing, instrument
parameters and the last detune; the sample pool lives in shared memory and outlives it). Nothing here ever waits for the
audio process.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from engine import training_cores
from engine.audio import command_ring as cmd
from engine.audio import shared
from engine.audio.config import MixerConfig
from engine.audio.control import AudioOut
from engine.audio.rack import RackConfig, legacy_rack_config
from engine.audio.server import EXIT_DEVICE_LOST, ServerSettings
from engine.child_process import stop_child, wait_until

log = logging.getLogger("showrunner.audio")

RESTART_BACKOFF = 1.0  # seconds between restarts of an audio process that keeps dying


# The audio process computes on its callback thread alone. Without these, numpy's and scipy's
# OpenBLAS (scipy comes in with numba) each start worker threads, which inherit the process's
# realtime scheduling and spin after any matrix call, above the audio callback.
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class _Adopted:
    """An audio process this show did not start (a show that died before it did), watched
    through a pidfd and ended by signals, with what :func:`engine.child_process.stop_child` and
    :meth:`LiveAudio.poll` use of a Popen. Its exit status is not this process's to read:
    ``code`` says what to take it for."""

    def __init__(self, pid: int, code) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._code = code
        try:
            self._handle: int | None = os.pidfd_open(pid)
        except OSError:
            self._handle = None
            self.returncode = code()

    def poll(self) -> int | None:
        if self.returncode is None and self._ended(0):
            self.returncode = self._code()
        return self.returncode

    def _ended(self, timeout: float | None) -> bool:
        import select

        if self._handle is None:
            return True
        ended = bool(select.select([self._handle], [], [], timeout)[0])
        if ended:
            os.close(self._handle)
            self._handle = None
        return ended

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not self._ended(timeout):
                raise subprocess.TimeoutExpired(f"audio process {self.pid}", timeout)
            self.returncode = self._code()
        return self.returncode

    def _signal(self, signum: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)


class LiveAudio(AudioOut):
    """Args: config: the rack (or, for the overtone mixer alone, its settings, with ``piano`` to
    mix the piano in); pool: the shared sample pool the rack's instruments read; device: output device name
    substring (None = the default device); midi_input / midi_api: the live MIDI port the audio
    process reads itself (None = the engine forwards notes); log_file: the show log;
    input_device: an audio input recorded alongside the mixer (name substring, "default", None);
    realtime: the audio process asks for SCHED_FIFO scheduling (else a raised priority);
    keeper: a recovering show's supervisor (engine.supervisor): the audio process outlives this
    show and ends with that process; note: where to say which audio process plays (for the show
    that comes back if this one dies, :meth:`adopt`).

    What the mixer played and the input heard are kept in ``state``'s tap (the last 5 s) for the
    recorder: :meth:`engine.audio.shared.SharedAudioState.read_tap`."""

    snapshot_by_reference = True  # engine.snapshot: a show's client of its audio process, not state

    def __init__(self, config: RackConfig | MixerConfig, piano: bool = False,
                 device: str | None = None, midi_input: str | None = None, midi_api: str = "auto",
                 log_file: Path | None = None, input_device: str | None = None,
                 realtime: bool = True, pool=None, keeper: int | None = None,
                 note: Path | None = None) -> None:
        rack = legacy_rack_config(config, piano) if isinstance(config, MixerConfig) else config
        if pool is not None:
            rack = rack.model_copy(update={"pool": str(pool.path)})
        super().__init__(rack, pool)
        self.state = shared.SharedAudioState.create()
        self.hears_midi = midi_input is not None
        self.settings = ServerSettings(
            state=str(self.state.path), rack=rack, device=device,
            input_device=input_device, realtime=realtime,
            midi_input=midi_input, midi_api=midi_api,
            log_file=str(log_file) if log_file else None, parent=os.getpid(), keeper=keeper)
        self.note = note
        self.adopted = False  # plays through an audio process a show that died left playing
        self._own_pool = None  # that show's sample pool, this show's now
        handle, name = tempfile.mkstemp(prefix="showrunner-audio-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(self.settings.model_dump(mode="json"), file)
        self._settings_file = Path(name)
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._restart_at = 0.0
        self._status = shared.STARTING
        # The commands a restarted process must be told again, in order: the last of each bus
        # gain, tuning offset, route, instrument parameter and the detune for all voices.
        self._standing: dict[tuple[int, int, int], tuple] = {}
        self._xruns_before = 0  # underruns counted by audio processes that have ended
        # While the show delivers a tick's input and its scenes tick, commands wait here in
        # position order (see next_position), then leave together.
        self._last_views: dict[int, np.ndarray] = {}  # by slot: the last view read whole
        self._holding = False
        self._held: list[tuple] = []
        self._held_at: list[int] = []
        # The ring has one writer at a time: the show's thread, or a scene's worker writing a
        # table at once (write_table_now).
        self._ring_lock = threading.Lock()
        self._sent_now: deque[list] = deque(maxlen=1024)  # listed by write_table_now, any thread

    def start(self) -> None:
        """Start (or restart) the audio process; it opens its device once its imports are done."""
        self.state.set("status", shared.STARTING)
        self.state.set("blocks", 0)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine.audio.server", str(self._settings_file)],
            stdin=subprocess.DEVNULL, start_new_session=True, env={**os.environ, **SINGLE_THREADED})
        training_cores.widen_child(self.process.pid)  # every CPU, though the show's thread has half
        log.debug("audio process %d started", self.process.pid)
        self._write_note()

    def _write_note(self) -> None:
        if self.note is None or self.process is None:
            return
        partial = self.note.with_name(self.note.name + ".new")
        try:
            partial.write_text(json.dumps({"pid": self.process.pid, "state": str(self.state.path),
                                           "pool": str(self.pool.path) if self.pool is not None else None,
                                           "settings": str(self._settings_file)}), encoding="utf-8")
            os.replace(partial, self.note)
        except OSError:
            log.warning("could not write %s: a show that dies will start its sound afresh", self.note)

    def can_adopt(self, left: dict) -> str | None:
        """Why the audio process a show that died left playing (``left``: its note, read by
        :func:`engine.supervisor.read_sound_note`) cannot play this show's sound, or None when it
        can: the same rack, devices and MIDI input, and a sample pool of the same tables."""
        from engine.audio.pool import SamplePool

        try:
            with open(left["settings"], encoding="utf-8") as file:
                old = ServerSettings.model_validate(json.load(file))
        except (OSError, ValueError, KeyError, TypeError):
            return "its settings are gone"
        if not Path(left["state"]).exists() or (left.get("pool") and not Path(left["pool"]).exists()):
            return "its shared files are gone"
        same = {"parent": 0, "keeper": 0, "state": "", "log_file": None}
        mine = self.settings.model_copy(update={**same, "rack": self.rack.model_copy(update={"pool": None})})
        theirs = old.model_copy(update={**same, "rack": old.rack.model_copy(update={"pool": None})})
        if mine != theirs:
            return "its settings differ (the setlist or the command line changed)"
        if (left.get("pool") is None) != (self.pool is None):
            return "its sample pool differs"
        if self.pool is not None:
            pool = SamplePool.attach(left["pool"])
            names = pool.names()
            if names != self.pool.names() or any(pool.capacity(slot) != self.pool.capacity(slot)
                                                  for slot in names.values()):
                return "its sample pool holds other tables"
        return None

    def adopt(self, left: dict) -> None:
        """Play through the audio process a show that died left playing (:meth:`can_adopt` said
        it can): its stream goes on without a break, its pool (with the tables that show wrote)
        becomes this show's, and this show's commands follow in its ring."""
        from engine.audio.pool import SamplePool

        fresh, self.state = self.state, shared.SharedAudioState(Path(left["state"]), owner=True)
        fresh.close()
        if self.pool is not None:
            self._own_pool = self.pool = SamplePool(Path(left["pool"]), owner=True)
            self.rack = self.rack.model_copy(update={"pool": str(self.pool.path)})
        Path(left["settings"]).unlink(missing_ok=True)
        self.settings = self.settings.model_copy(update={"state": str(self.state.path), "rack": self.rack})
        with open(self._settings_file, "w", encoding="utf-8") as file:  # for a restart of it later
            json.dump(self.settings.model_dump(mode="json"), file)
        self.process = _Adopted(int(left["pid"]), lambda: EXIT_DEVICE_LOST
                                if int(self.state.get("status")) == shared.DEVICE_LOST else 1)
        self._status = int(self.state.get("status"))
        self.adopted = True
        self._write_note()
        log.info("sound: playing on through audio process %d, which the show that died left playing", self.process.pid)

    def midi_heard(self, after: float, until: float) -> list[tuple[float, object]]:
        """The MIDI events the audio process took from the live port itself, stamped after
        ``after`` and at or before ``until`` (time.monotonic seconds), oldest first."""
        events, lost = self.state.read_heard(after, until)
        if lost:
            log.warning("more MIDI came in while the show was away than the audio process keeps (%d "
                        "events); the oldest are not taken in", shared.HEARD)
        return events

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def next_position(self) -> int:
        """The show is delivering a tick's input: hold what is sent until :meth:`flush`, so a
        command sent ``at`` an earlier position still leaves in its place (as offline)."""
        self._holding = True
        return super().next_position()

    def flush(self) -> None:
        """Send what the tick held, in position order (the show: once the scenes have ticked)."""
        held, self._held, self._held_at, self._holding = self._held, [], [], False
        for record in held:
            self._push(record)

    def _send(self, kind, voice, note, value, target, a, b, c, at):
        record = (kind, voice, note, value, target, a, b, c)
        if not self._holding:
            self._push(record)
            return
        index = bisect.bisect_right(self._held_at, at)
        self._held.insert(index, record)
        self._held_at.insert(index, at)

    def _push(self, record: tuple) -> None:
        """Into the ring now, noting what a restarted process must be told again."""
        kind, voice, note, value, target, a, b, c = record
        standing = self._standing
        if kind in (cmd.GAIN, cmd.TUNE, cmd.TUNE_NOTE):
            standing[kind, target, voice] = record
        elif kind == cmd.SET:
            standing[kind, target, note] = record
        elif kind == cmd.ROUTE:
            if voice == cmd.ALL_VOICES:  # a new routing: what came before no longer stands
                for key in [key for key in standing if key[0] == cmd.ROUTE]:
                    del standing[key]
            standing.pop((kind, target, voice), None)
            standing[kind, target, voice] = record
        elif kind == cmd.DETUNE:  # any detune is where later notes start: the all-voices value
            standing[cmd.DETUNE, target, cmd.ALL_VOICES] = (kind, cmd.ALL_VOICES, -1, value, target,
                                                            a, b, c)
        elif kind == cmd.PANIC:
            for key in [key for key in standing if key[0] == cmd.DETUNE]:
                standing[key] = (cmd.DETUNE, cmd.ALL_VOICES, -1, 0.0, key[1], 0.0, 0.0, 0.0)
        with self._ring_lock:
            self.state.ring.push(kind, voice, note, value, target, a, b, c)

    def _write_table(self, slot: int, data: np.ndarray) -> bool:
        """Into the back buffer now; the swap goes down the ring, so it takes effect at the
        block boundary where the audio process reaches it, in order with the tick's commands."""
        if self.pool is None or not self.pool.write_back(slot, data):
            return False
        self.pool.request_swap(slot)
        self._send(cmd.SWAP, slot, 0, 0.0, cmd.RACK, 0.0, 0.0, 0.0, self.position)
        return True

    writes_now = True

    def write_table_now(self, name: str, data: np.ndarray) -> bool:
        """Live: from any thread, at once: into the back buffer, and the swap straight down the
        ring (not held to the end of the tick), so the audio process plays it from its next
        block. For a scene's worker thread (a decoder) that must not wait for a tick; it must be
        the only writer of that table. False (nothing written) while the table's previous swap
        is pending."""
        slot = self.table(name)
        data = self._checked_table(name, slot, data)
        if self.pool is None or not self.pool.write_back(slot, data):
            return False
        self.pool.request_swap(slot)
        with self._ring_lock:
            self.state.ring.push(cmd.SWAP, slot, 0, 0.0, cmd.RACK, 0.0, 0.0, 0.0)
        self._sent_now.append(["swap", name, int(len(data))])
        return True

    def take_sent(self) -> list[list]:
        sent = super().take_sent()
        while self._sent_now:
            sent.append(self._sent_now.popleft())
        return sent

    def listen(self, seconds: float, source: str = "mix") -> np.ndarray:
        frames = int(round(seconds * self.rack.sample_rate))
        return self.state.read_latest(frames, source)

    def heard_since(self, position: int, source: str = "mix") -> tuple[np.ndarray, int]:
        return self.state.read_since(position, source)

    def _view(self, slot: int, columns: int) -> np.ndarray:
        """The latest view; while the audio process is writing it (three reads in a row found it
        mid-write: that process was preempted there), the last one read."""
        if slot >= shared.VIEWS:
            return np.zeros((0, columns))
        rows = self.state.read_view(slot, columns)
        if rows is None:
            rows = self._last_views.get(slot, np.zeros((0, columns)))
        self._last_views[slot] = rows
        return rows.copy()

    def poll(self) -> list[str]:
        notices = []
        process = self.process
        if process is not None and process.poll() is not None:
            now = time.monotonic()
            if now >= self._restart_at:
                if process.returncode == EXIT_DEVICE_LOST:
                    log.warning("audio output lost; the show goes on silently while it is looked for")
                    notices.append("audio_device_lost")
                else:
                    log.error("audio process %d ended (status %s); restarting it, the show goes on",
                              process.pid, process.returncode)
                self._restart_at = now + RESTART_BACKOFF
                self.restarts += 1
                self._xruns_before += int(self.state.get("underruns"))
                self.state.set("underruns", 0)
                self.state.ring.skip_pending()  # notes queued for the dead process are stale now
                self.start()
                with self._ring_lock:
                    for kind, voice, note, value, target, a, b, c in self._standing.values():
                        self.state.ring.push(kind, voice, note, value, target, a, b, c)
                    if self.pool is not None:  # writes whose swap was lost with the old process
                        for slot in [slot for slot in self.pool.names().values()
                                     if self.pool.swap_pending(slot)]:
                            self.state.ring.push(cmd.SWAP, slot, 0, 0.0, cmd.RACK)
                notices.append("audio_restarted")
        status = int(self.state.get("status"))
        if status != self._status:
            if status == shared.RUNNING and self._status in (shared.NO_DEVICE, shared.DEVICE_LOST):
                notices.append("audio_device_back")
                log.info("audio output back: %s", self.state.device)
            elif status == shared.NO_DEVICE and self._status == shared.STARTING:
                notices.append("audio_no_device")
                log.warning("no audio output device; the show goes on silently (see the log)")
            self._status = status
        return notices

    def tap_frames(self) -> int | None:
        return int(self.state.get("tap_frames"))

    def health(self) -> dict:
        state = self.state
        report = {"xruns": self._xruns_before + int(state.get("underruns")), "audio_load": round(state.get("load_peak"), 4)}
        if self._status != shared.RUNNING:
            report["audio_status"] = shared.STATUS.get(self._status, "?")
        return report

    def wait_running(self, timeout: float = 10.0) -> bool:
        """Block until the stream runs (tests and benchmarks; a show never waits)."""
        return wait_until(self._running, timeout)

    def wait_started(self, timeout: float = 5.0) -> str:
        """Before the show starts: block until the audio process has either opened its device
        (its stream runs) or found none, at most ``timeout`` seconds; notes played before that
        would be lost. Returns the status then ("running", "no_device", ...)."""
        def settled() -> bool:
            status = int(self.state.get("status"))
            return self._running() or status not in (shared.STARTING, shared.RUNNING) \
                or self.process is None or self.process.poll() is not None

        wait_until(settled, timeout)
        return shared.STATUS.get(int(self.state.get("status")), "?")

    def _running(self) -> bool:
        return int(self.state.get("status")) == shared.RUNNING and self.state.get("blocks") > 0

    def leave(self) -> None:
        """This show is dying of an error under a supervisor: leave the audio process playing and
        its shared files in place for the show that comes back (:meth:`adopt`); ``close`` then
        only lets go of them. Without a supervisor (no ``keeper``) it does nothing."""
        if self.settings.keeper is None or self.process is None:
            return
        self.flush()
        self._leaving = True
        if self.pool is not None:
            self.pool.owner = False  # the pool's file stays for the show that comes back
        log.info("the sound plays on for the show that comes back (audio process %d)", self.process.pid)

    _leaving = False

    def close(self) -> None:
        if self._leaving:
            self.process = None
            self.state.owner = False
            self.state.close()
            return
        self.flush()
        process = self.process
        self.process = None
        if process is not None:
            stop_child(process, grace=3.0)
        self.state.close()
        if self._own_pool is not None:
            self._own_pool.close()
        self._settings_file.unlink(missing_ok=True)
