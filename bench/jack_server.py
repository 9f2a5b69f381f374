"""A private JACK server for benchmarks and tests: ``jackd -d dummy``, started and stopped by PID
(tests/conftest.py's ``jack`` fixture uses it too), with or without realtime scheduling.

The server gets its own name (``-n``), and clients reach it through ``JACK_DEFAULT_SERVER``, so a
JACK server someone else runs on the machine is neither used nor disturbed.

``realtime="auto"`` (the tests) runs ``jackd -R -P 10`` when this machine lets a process take
SCHED_FIFO, checks that the server's process thread really runs SCHED_FIFO/SCHED_RR, and otherwise
runs ``jackd --no-realtime``, saying why. The mode used is in the yielded environment
(``SHOWRUNNER_JACK_MODE``: ``realtime`` or ``no-realtime``) and on it (``.realtime``, ``.detail``).
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from engine.child_process import stop_child

log_ = logging.getLogger(__name__)

# jackd's own default: libjack runs a client's process callback at this minus 5, i.e. 5, above the
# audio process's own SCHED_FIFO 4 (docs/audio.md, "Realtime scheduling").
REALTIME_PRIORITY = 10
MODE_VARIABLE = "SHOWRUNNER_JACK_MODE"
REALTIME_POLICIES = {os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR"}


class JackUnavailable(RuntimeError):
    pass


class JackEnv(dict):
    """The environment a server's clients need (a plain ``dict[str, str]`` to merge into a child's
    environment), with how the server runs: ``realtime`` and, in words, ``detail``."""

    realtime: bool = False
    detail: str = ""


def realtime_refused(priority: int = REALTIME_PRIORITY) -> str | None:
    """Why a process started from here could not take SCHED_FIFO ``priority``; None if it can.
    A short-lived child tries it (root, CAP_SYS_NICE or an RLIMIT_RTPRIO of at least ``priority``
    is needed, and a container or cgroup can still refuse)."""
    if not hasattr(os, "sched_setscheduler"):
        return "this platform has no sched_setscheduler"
    probe = subprocess.run(
        [sys.executable, "-c", f"import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param({priority}))"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if probe.returncode == 0:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
    error = (probe.stderr.strip().splitlines() or ["?"])[-1]
    return (f"a child could not take SCHED_FIFO {priority} ({error}; uid {os.geteuid()}, "
            f"RLIMIT_RTPRIO {soft})")


def realtime_threads(pid: int) -> list[tuple[int, str, int]]:
    """``(thread id, policy, priority)`` of each thread of ``pid`` that runs SCHED_FIFO or
    SCHED_RR (from ``/proc/PID/task``); threads that end meanwhile are skipped."""
    found = []
    try:
        tids = sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return found
    for tid in tids:
        try:
            policy = os.sched_getscheduler(tid)
            if policy in REALTIME_POLICIES:
                found.append((tid, REALTIME_POLICIES[policy], os.sched_getparam(tid).sched_priority))
        except OSError:
            continue
    return found


@contextmanager
def jack_server(sample_rate: int = 48000, period: int = 256, timeout: float = 10.0,
                name_prefix: str = "showrunner-bench", realtime: bool | Literal["auto"] = False,
                log: list[tuple[float, str]] | None = None,
                priority: int = REALTIME_PRIORITY) -> Iterator[JackEnv]:
    """Run a dummy-driver JACK server; yields the environment its clients need (a :class:`JackEnv`).

    While the block runs, ``os.environ`` carries ``JACK_DEFAULT_SERVER``, ``JACK_NO_START_SERVER``
    and ``SHOWRUNNER_JACK_MODE`` (restored afterwards) so in-process clients such as python-rtmidi
    find this server.

    Args:
        sample_rate: Hz, default 48000.
        period: frames per process cycle, default 256 (5.33 ms at 48 kHz).
        timeout: seconds to wait for the server to answer ``jack_lsp``, default 10.
        name_prefix: the server is called ``PREFIX-PID``.
        realtime: True: run the graph with realtime scheduling (``jackd -R -P priority``, as on a
            show machine; needs root or an rtprio limit), whether or not the server gets it.
            False: ``--no-realtime`` (works anywhere). ``"auto"`` (the tests): realtime when a
            child can take SCHED_FIFO ``priority`` and the started server's threads are seen to
            run realtime; else (a refusal, a server that exits or is not realtime) the server is
            run ``--no-realtime`` and the reason logged (this module's logger) and kept in
            ``detail``.
        log: a list that receives ``(time.monotonic(), line)`` for each line the server prints.
            Its errors (such as a client that missed a cycle, "... was not finished") go to its
            unbuffered stderr and arrive as printed; its other lines may come in batches.
        priority: the realtime priority of the server's process thread (``-P``), default 10
            (jackd's own default); its clients' process threads get 5 less.
    """
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        raise JackUnavailable("jackd / jack_lsp not found (Debian package jackd2)")
    name = f"{name_prefix}-{os.getpid()}"
    env = JackEnv(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
    child_env = {**os.environ, **env}
    lines = log if log is not None else []

    server = None
    if realtime == "auto":
        reason = realtime_refused(priority)
        if reason is None:
            try:
                server = _Server(name, True, priority, sample_rate, period, timeout, child_env, log, lines)
            except JackUnavailable as error:
                reason = f"the realtime server did not start: {error}"
            else:
                threads = server.wait_realtime_threads()
                if threads:
                    env.realtime = True
                    env.detail = _describe(threads)
                else:
                    server.stop()
                    server = None
                    reason = "jackd -R ran, but none of its threads ran SCHED_FIFO or SCHED_RR"
        if server is None:
            log_.warning("JACK server %s: falling back to --no-realtime: %s", name, reason)
            server = _Server(name, False, priority, sample_rate, period, timeout, child_env, log, lines)
            env.detail = f"no-realtime: {reason}"
    else:
        server = _Server(name, bool(realtime), priority, sample_rate, period, timeout, child_env, log, lines)
        threads = server.wait_realtime_threads() if realtime else []
        env.realtime = bool(threads)
        env.detail = (_describe(threads) if threads
                      else "no-realtime" + (": jackd -R ran with no realtime thread" if realtime else ""))
    env[MODE_VARIABLE] = "realtime" if env.realtime else "no-realtime"
    log_.info("JACK server %s: %s", name, env.detail)

    saved = {key: os.environ.get(key) for key in env}
    try:
        os.environ.update(env)
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


class _Server:
    """One ``jackd`` process, started and answering ``jack_lsp`` (else stopped, JackUnavailable)."""

    def __init__(self, name: str, realtime: bool, priority: int, sample_rate: int, period: int,
                 timeout: float, child_env: dict[str, str], log: list | None, lines: list) -> None:
        # Without a log to fill, the output goes to a file: a pipe nobody reads fast enough would
        # make the server wait when it has much to say (a storm of missed cycles).
        self.output = subprocess.PIPE if log is not None else tempfile.TemporaryFile()
        mode = ["-R", "-P", str(priority)] if realtime else ["--no-realtime"]
        self.process = subprocess.Popen(
            ["jackd", "-n", name, *mode, "-d", "dummy", "-r", str(sample_rate), "-p", str(period)],
            env=child_env, stdout=self.output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.reader = None
        if log is not None:
            self.reader = threading.Thread(target=_read_lines, args=(self.process.stdout, lines),
                                           name="jackd-log", daemon=True)
            self.reader.start()
        try:
            deadline = time.monotonic() + timeout
            while True:
                if self.process.poll() is not None:
                    if self.reader is not None:
                        self.reader.join(timeout=1.0)
                    else:
                        self.output.seek(0)
                        _read_lines(self.output, lines)
                    tail = [line for _, line in lines if line.strip()][-3:]
                    raise JackUnavailable(f"jackd exited with status {self.process.returncode}: {' | '.join(tail)}")
                probe = subprocess.run(["jack_lsp"], env=child_env, capture_output=True)
                if probe.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise JackUnavailable(f"jackd did not answer jack_lsp within {timeout:g} s")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def wait_realtime_threads(self, within: float = 1.0) -> list[tuple[int, str, int]]:
        """The server's realtime threads, looking again for up to ``within`` seconds while none."""
        deadline = time.monotonic() + within
        while not (threads := realtime_threads(self.process.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return threads

    def stop(self) -> None:
        stop_child(self.process)
        if self.reader is not None:
            self.reader.join(timeout=1.0)
        (self.process.stdout or self.output).close()


def _describe(threads: list[tuple[int, str, int]]) -> str:
    return "realtime: " + ", ".join(f"{policy} {prio} on thread {tid}" for tid, policy, prio in threads)


def _read_lines(stream, lines: list[tuple[float, str]]) -> None:
    """Append each line of ``stream`` to ``lines`` with the monotonic time it was read (the server's
    errors go to its unbuffered stderr, so that is within moments of when it printed them)."""
    for raw in iter(stream.readline, b""):
        lines.append((time.monotonic(), raw.decode(errors="replace").rstrip()))
