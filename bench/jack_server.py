"""A private JACK server for benchmarks and tests: ``jackd --no-realtime -d dummy``, started and
stopped by PID (tests/conftest.py's ``jack`` fixture uses it too).

The server gets its own name (``-n``), and clients reach it through ``JACK_DEFAULT_SERVER``, so a
JACK server someone else runs on the machine is neither used nor disturbed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from engine.child_process import stop_child


class JackUnavailable(RuntimeError):
    pass


@contextmanager
def jack_server(sample_rate: int = 48000, period: int = 256, timeout: float = 10.0,
                name_prefix: str = "showrunner-bench", realtime: bool = False,
                log: list[tuple[float, str]] | None = None) -> Iterator[dict[str, str]]:
    """Run a dummy-driver JACK server; yields the environment its clients need.

    While the block runs, ``os.environ`` carries ``JACK_DEFAULT_SERVER`` and ``JACK_NO_START_SERVER``
    (restored afterwards) so in-process clients such as python-rtmidi find this server.

    Args:
        sample_rate: Hz, default 48000.
        period: frames per process cycle, default 256 (5.33 ms at 48 kHz).
        timeout: seconds to wait for the server to answer ``jack_lsp``, default 10.
        name_prefix: the server is called ``PREFIX-PID``.
        realtime: run the graph with realtime scheduling (``jackd -R``, as on a show machine;
            needs root or an rtprio limit) instead of ``--no-realtime`` (tests: works anywhere).
        log: a list that receives ``(time.monotonic(), line)`` for each line the server prints.
            Its errors (such as a client that missed a cycle, "... was not finished") go to its
            unbuffered stderr and arrive as printed; its other lines may come in batches.
    """
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        raise JackUnavailable("jackd / jack_lsp not found (Debian package jackd2)")
    name = f"{name_prefix}-{os.getpid()}"
    env = {"JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1"}
    child_env = {**os.environ, **env}
    # Without a log to fill, the output goes to a file: a pipe nobody reads fast enough would make
    # the server wait when it has much to say (a storm of missed cycles).
    lines = log if log is not None else []
    output = subprocess.PIPE if log is not None else tempfile.TemporaryFile()
    server = subprocess.Popen(
        ["jackd", "-n", name, "-R" if realtime else "--no-realtime", "-d", "dummy", "-r", str(sample_rate),
         "-p", str(period)],
        env=child_env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    reader = None
    if log is not None:
        reader = threading.Thread(target=_read_lines, args=(server.stdout, lines), name="jackd-log", daemon=True)
        reader.start()
    saved = {key: os.environ.get(key) for key in env}
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                if reader is not None:
                    reader.join(timeout=1.0)
                else:
                    output.seek(0)
                    _read_lines(output, lines)
                tail = [line for _, line in lines if line.strip()][-3:]
                raise JackUnavailable(f"jackd exited with status {server.returncode}: {' | '.join(tail)}")
            probe = subprocess.run(["jack_lsp"], env=child_env, capture_output=True)
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise JackUnavailable(f"jackd did not answer jack_lsp within {timeout:g} s")
            time.sleep(0.1)
        os.environ.update(env)
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stop_child(server)
        if reader is not None:
            reader.join(timeout=1.0)
        (server.stdout or output).close()


def _read_lines(stream, lines: list[tuple[float, str]]) -> None:
    """Append each line of ``stream`` to ``lines`` with the monotonic time it was read (the server's
    errors go to its unbuffered stderr, so that is within moments of when it printed them)."""
    for raw in iter(stream.readline, b""):
        lines.append((time.monotonic(), raw.decode(errors="replace").rstrip()))
