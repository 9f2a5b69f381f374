"""Recovery: ``showrunner run`` performs under a small parent that starts the show again when its
process dies (a driver's segfault, the OOM killer, an uncaught error, a lost GL context).

The parent runs the show as a child process (the same command line) and waits. The show writes its
performance log as it goes (every input, by tick) and, four times a second, the tick it reached
(``PERF.alive``). When the child dies (a signal, or exit status 1: an internal error) the parent
starts it again at once with ``--resume``: the new show loads the setlist, ticks through the
performance log without drawing or sounding up to where the old one got (every learner, trainer,
trail, cue, pedal and MIDI-learn binding as it was: :meth:`engine.show.Show.catch_up`), then goes
on live from that tick, appending to the same performance log (so that ``showrunner replay`` of it
renders the show as if it had never died), with the same ports, camera and sound settings. It says
on the HUD and in the log that it came back and how long the gap was.

Its sound does not stop: the audio process outlives the show (it ends with this process, which
collects it as the subreaper of its orphans) and the show that comes back takes it over, with
the MIDI it heard in the gap (engine.audio.live.LiveAudio.adopt). With ``--standby`` a second show
loads once the first is live and waits, following the performance log as it grows; it takes over
the moment the first dies (:class:`Standby`), and another loads behind it.

Limits: a show that dies again within 2 show seconds of where it died before is restarted there
``TRIES`` times, then at the next cue; dying there still, the parent stops with a one-line message
(exit 1). Ctrl-C and SIGTERM go to the show, which ends normally; a bad input (exit 2) is never
retried. ``--no-recover`` runs the show in this process, as before.

This module imports nothing heavy: the parent stays small.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine import recovery_state

TRIES = 3  # restarts at the same place before moving on to the next cue
SAME_PLACE = 2.0  # show seconds: a death this close to the last one is at the same place
MAX_RESTARTS = 20  # in one show, whatever the places
SUPERVISED = "SHOWRUNNER_SUPERVISED"  # set in the child's environment: the supervisor's pid
PERF_LOG_NOTE = "SHOWRUNNER_PERF_LOG_NOTE"  # a file where the child writes its performance log's path
DIED_AT = "SHOWRUNNER_DIED_AT"  # wall-clock time (time.time()) the previous show died, for the gap
NORMAL = (0, 2, 130)  # ended, bad input, stopped by the performer
STANDBY = "--standby"  # keep a second show loaded and waiting to take over at once


def training_folder(perf_log: Path) -> Path:
    """Where a supervised show's trainers save their newest states, one file each, for the show
    started after it dies (:meth:`engine.show.Show.publish_training`)."""
    return perf_log.with_name(perf_log.name + ".training")


def clear_training(perf_log: Path) -> None:
    """A new show writing ``perf_log`` (not one back after dying): what an earlier show of the
    same log path left in its training folder goes (a catch-up must never take another show's
    model). Never fails: what cannot be removed stays, and is said."""
    folder = training_folder(perf_log)
    try:
        stale = [path for path in folder.iterdir() if path.name.endswith((".ckpt", ".tmp"))]
    except OSError:
        return
    for path in stale:
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            print(f"showrunner: could not remove {path}: {error}", file=sys.stderr)


def heartbeat_path(perf_log: Path) -> Path:
    return perf_log.with_name(perf_log.name + ".alive")


def sound_note_path(perf_log: Path) -> Path:
    """Where a supervised show says which audio process plays its sound (pid, shared files), so
    that the show started after it dies takes that process over instead of starting another."""
    return perf_log.with_name(perf_log.name + ".sound")


def supervisor_pid() -> int | None:
    """In a supervised show: the supervisor's pid (the audio process lives as long as it does)."""
    value = os.environ.get(SUPERVISED, "")
    return int(value) if value.isdigit() and int(value) > 1 else None


def read_sound_note(path: Path) -> dict:
    """The audio process a show left behind ({"pid", "state", "pool", "settings", "alive"}: alive
    when it still runs); empty when there is no note."""
    try:
        note = json.loads(path.read_text(encoding="utf-8"))
        pid = int(note["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            command = file.read()
        with open(f"/proc/{pid}/stat", "rb") as file:
            state = file.read().rsplit(b")", 1)[-1].split()[0]
        note["alive"] = b"engine.audio.server" in command and state != b"Z"
    except OSError:
        note["alive"] = False
    return note


def stop_sound(note: dict, grace: float = 3.0) -> None:
    """End an audio process a show left playing (SIGTERM, then SIGKILL after ``grace`` seconds)
    and remove its shared files."""
    if note.get("alive"):
        pid = int(note["pid"])
        try:
            handle = os.pidfd_open(pid)
        except OSError:
            handle = None
        if handle is not None:
            try:
                import select

                os.kill(pid, signal.SIGTERM)
                if not select.select([handle], [], [], grace)[0]:
                    os.kill(pid, signal.SIGKILL)
                    select.select([handle], [], [], grace)
            except OSError:
                pass
            finally:
                os.close(handle)
            _reap(pid)
    for key in ("state", "pool", "settings"):
        if note.get(key):
            Path(note[key]).unlink(missing_ok=True)


def _reap(pid: int) -> None:
    """Collect the exit of a process this one adopted (a dead show's audio process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _reap_adopted(*own: int) -> None:
    """Collect every ended child but this process's own (the show, its standby: Popen's to
    collect): the audio processes of shows that died, which came here as to their subreaper."""
    while True:
        try:
            found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if found is None or found.si_pid in own:
            return
        _reap(found.si_pid)


def _become_subreaper() -> None:
    """Processes orphaned below this one (a dead show's audio process) become its children, so
    that it can watch and collect them (Linux PR_SET_CHILD_SUBREAPER)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(36, 1)
    except OSError:
        pass


class Standby:
    """In a standby show (``--standby``): the show loads everything, then waits here for the
    supervisor's word that the show died, which says where to take over from; an end of the pipe
    instead means the show ended well (this one leaves, its show log removed). While it waits,
    what it would print goes nowhere (the terminal is the live show's)."""

    def __init__(self, fd: int, log_path: Path) -> None:
        self.fd = fd
        self.log_path = log_path
        self._kept = (os.dup(1), os.dup(2))
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        os.close(quiet)
        # Dismissed while it still loads: it leaves cleanly (its shared files and its log go).
        signal.signal(signal.SIGTERM, self._dismissed)

    def _dismissed(self, _signum, _frame) -> None:
        self.log_path.unlink(missing_ok=True)
        raise SystemExit(0)

    def wait(self, args, follow=None) -> bool:
        """Block until told; True: take over (``args`` now say from where: ``resume``,
        ``resume_part``, ``resume_next_cue``), False: leave. Meanwhile, twice a second,
        ``follow(PERF_LOG)`` once the supervisor has said which performance log the live show
        writes (the standby ticks along behind it)."""
        import select

        pending, following = b"", None
        while True:
            if b"\n" not in pending:
                if select.select([self.fd], [], [], 0.5)[0]:
                    data = os.read(self.fd, 4096)
                    if not data:  # the pipe ended: the show ended well
                        os.close(self.fd)
                        self.log_path.unlink(missing_ok=True)
                        return False
                    pending += data
                elif following is not None and follow is not None:
                    follow(following)
                continue
            line, pending = pending.split(b"\n", 1)
            try:
                word = json.loads(line)
            except ValueError:
                continue
            if "follow" in word:
                following = Path(word["follow"])
                continue
            os.close(self.fd)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the show's own handling from here
            for fd, kept in zip((1, 2), self._kept):
                os.dup2(kept, fd)
                os.close(kept)
            args.resume, args.resume_part = Path(word["resume"]), int(word["part"])
            args.resume_next_cue = bool(word["next_cue"])
            os.environ[DIED_AT] = repr(float(word["died_at"]))
            return True


class _Spare:
    """A standby show the supervisor keeps ready (``--standby``)."""

    def __init__(self, arguments: list[str], environment: dict, perf_log: Path) -> None:
        read, self._write = os.pipe()
        self.process = subprocess.Popen([sys.executable, "-m", "engine.cli", *arguments, "--standby-fd", str(read)],
                                        env=environment, pass_fds=(read,), preexec_fn=_die_with_parent,
                                        start_new_session=True)
        os.close(read)
        os.write(self._write, (json.dumps({"follow": str(perf_log)}) + "\n").encode())

    def go(self, perf_log: Path, part: int, next_cue: bool, died: float) -> subprocess.Popen:
        word = {"resume": str(perf_log), "part": part, "next_cue": next_cue, "died_at": died}
        os.write(self._write, (json.dumps(word) + "\n").encode())
        os.close(self._write)
        self._write = None
        return self.process

    def dismiss(self) -> None:
        """Not needed: it leaves when the pipe ends, or, still loading, when asked (SIGTERM; killed
        if it has not left 5 s later)."""
        if self._write is not None:
            os.close(self._write)
            self._write = None
        try:
            self.process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def read_heartbeat(path: Path) -> dict:
    """The last tick a show said it reached ({"tick", "seconds", "cue"}); empty when none."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _die_with_parent() -> None:
    """In the child before exec: killed when the parent dies (Linux), so that a supervisor killed
    takes its show with it rather than leaving it playing."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def note_perf_log(path: Path) -> None:
    """In a supervised show: tell the parent where the performance log is (it chooses its name
    beside its show log, as unsupervised)."""
    note = os.environ.get(PERF_LOG_NOTE)
    if note:
        try:
            Path(note).write_text(str(Path(path).absolute()), encoding="utf-8")
        except OSError:
            pass


def supervise(argv: list[str]) -> int:
    """Run ``showrunner run ARGV`` as a child and start it again when it dies; returns its exit
    status (or 1 after giving up)."""
    import tempfile

    arguments = list(argv)
    handle, name = tempfile.mkstemp(prefix="showrunner-perf-log-")
    os.close(handle)
    note = Path(name)
    environment = {**os.environ, SUPERVISED: str(os.getpid()), PERF_LOG_NOTE: str(note)}
    _become_subreaper()
    try:
        return _supervise(arguments, environment, note)
    finally:
        named = note.read_text(encoding="utf-8").strip() if note.exists() else ""
        if named:  # a show that died last leaves its audio process playing: end it
            sound = sound_note_path(Path(named))
            stop_sound(read_sound_note(sound))
            sound.unlink(missing_ok=True)
        _reap_adopted()
        note.unlink(missing_ok=True)


def _supervise(arguments: list[str], environment: dict, note: Path) -> int:
    stopping: list[int] = []
    child: subprocess.Popen | None = None
    standby = STANDBY in arguments
    spare: _Spare | None = None
    spares_failed = 0

    def forward(signum, _frame) -> None:
        stopping.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    deaths: list[float] = []  # show seconds where the show died, in order
    restarts, at_place, moved_on = 0, 0, False
    extra: list[str] = []
    try:
        while True:
            # Its own process group: Ctrl-C in a terminal reaches the parent alone, which passes it
            # on once (the show's second Ctrl-C means "stop at once").
            if extra and spare is not None and spare.process.poll() is None:
                # The standby, loaded and waiting, takes over: no start-up, no loading.
                child, spare = spare.go(Path(extra[1]), int(extra[3]), "--resume-next-cue" in extra,
                                        float(environment[DIED_AT])), None
            else:
                child = subprocess.Popen([sys.executable, "-m", "engine.cli", *arguments, *extra], env=environment,
                                         preexec_fn=_die_with_parent, start_new_session=True)
            while True:
                try:
                    code = child.wait(timeout=0.25)
                    break
                except (InterruptedError, subprocess.TimeoutExpired):
                    _reap_adopted(child.pid, *([spare.process.pid] if spare is not None else []))
                if spare is not None and spare.process.poll() is not None:
                    spares_failed += 1
                    print(f"showrunner: the standby show ended (status {spare.process.returncode}); "
                          f"{'starting another' if spares_failed < 3 else 'going on without one'}",
                          file=sys.stderr)
                    spare = None
                if standby and spare is None and spares_failed < 3 and not stopping and _live(note):
                    # Once the show is live, not while it loads; it follows the show's log.
                    spare = _Spare(arguments, environment, Path(note.read_text(encoding="utf-8").strip()))
            named = note.read_text(encoding="utf-8").strip() if note.exists() else ""
            perf_log = Path(named) if named else None
            heartbeat = heartbeat_path(perf_log) if perf_log is not None else None
            if stopping or code in NORMAL or code in (-signal.SIGINT, -signal.SIGTERM):
                if heartbeat is not None:
                    heartbeat.unlink(missing_ok=True)
                    recovery_state.clear(perf_log)  # its saved state: of no more use
                return 128 - code if code < 0 else code
            died = time.time()
            beat = read_heartbeat(heartbeat) if heartbeat is not None else {}
            seconds = float(beat.get("seconds", 0.0))
            how = f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.Signals._value2member_map_ \
                else f"exit status {code}"
            if perf_log is None or not perf_log.exists():
                print(f"showrunner: the show died ({how}) before it started; not restarting it", file=sys.stderr)
                return 1
            same = bool(deaths) and abs(seconds - deaths[-1]) <= SAME_PLACE
            deaths.append(seconds)
            set_aside = recovery_state.take_set_aside(perf_log)  # it died of its saved state: no try spent
            if set_aside:
                print("showrunner: the show back could not take the state it saved (set aside); it comes back "
                      "from the log's start", file=sys.stderr)
            if same:  # the show back from its saved state died there again: the next one starts from the log's
                recovery_state.clear(perf_log)
            at_place = (at_place if set_aside else at_place + 1) if same else 1
            if not same:
                moved_on = False
            restarts += 1
            next_cue = False
            if at_place > TRIES:
                if moved_on:
                    print(f"showrunner: the show died {at_place} times at {seconds:.1f} s (cue {beat.get('cue', '?')}), "
                          f"even after moving on to the next cue (the last: {how}); stopping. Its performance log {perf_log} "
                          "replays it up to there", file=sys.stderr)
                    return 1
                moved_on, next_cue, at_place = True, True, TRIES  # dying here once more: stop
            if restarts > MAX_RESTARTS:
                print(f"showrunner: the show died {restarts} times (the last: {how}); stopping. Its performance log {perf_log} "
                      "replays it up to there", file=sys.stderr)
                return 1
            print(f"showrunner: the show died ({how}) at {seconds:.1f} s, cue {beat.get('cue', '?')}; starting it "
                  f"again{' at the next cue' if next_cue else ''} (restart {restarts})", file=sys.stderr)
            environment[DIED_AT] = repr(died)
            extra = ["--resume", str(perf_log), "--resume-part", str(restarts + 1)]
            if next_cue:
                extra.append("--resume-next-cue")
    finally:
        if spare is not None:
            spare.dismiss()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _live(note: Path) -> bool:
    """The show has gone live: its heartbeat exists."""
    named = note.read_text(encoding="utf-8").strip() if note.exists() else ""
    return bool(named) and heartbeat_path(Path(named)).exists()
