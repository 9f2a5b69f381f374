"""Shared fixtures: the real stand-ins for devices this machine lacks.

- ``jack``: a real JACK server (``jackd -d dummy``, bench/jack_server.py), started here and stopped
  by PID: realtime (``-R -P 10``) where this machine allows it and the server is seen to run
  realtime, else ``--no-realtime`` with the reason; the mode is in ``SHOWRUNNER_JACK_MODE``
  (``realtime`` / ``no-realtime``) and printed in the header and the summary of the run.
  ``jack_log``: what that server printed, each line with its time.
- ``egl``: skips nothing; fails loudly if Mesa EGL cannot give an OpenGL 3.3 context.
- ``gl``: a headless OpenGL 3.3 context of the test's own, released after it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
PERFORMANCES = SHARED_DATA / "midi" / "performances"
MALFORMED = SHARED_DATA / "midi" / "malformed"
DEMO_SETLIST = ROOT / "setlists" / "demo.toml"
BUNDLED_MIDI = ROOT / "assets" / "midi" / "partitura_mozart_k265_var1.mid"


def showrunner_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *args]


def dropped_show_ms(log: str) -> list[int]:
    """The show time, in ms, each late frame dropped, as a show log says it (engine/show.py)."""
    return [int(ms) for ms in re.findall(r"frame took too long: (\d+) ms of show time dropped", log)]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"test material missing: {SHARED_DATA} (the shared/ folder beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def jack_log() -> list[tuple[float, str]]:
    """What the test JACK server has printed: ``(time.monotonic(), line)`` per line, as it came."""
    return []


JACK_MODE: list[str] = []  # how the session's JACK server ran, once it has started


def pytest_report_header(config):
    from bench.jack_server import REALTIME_PRIORITY, realtime_refused

    refused = realtime_refused()
    return [f"JACK for tests: realtime SCHED_FIFO {REALTIME_PRIORITY} allowed here (jackd -R is tried first)"
            if refused is None else f"JACK for tests: --no-realtime ({refused})"]


def pytest_terminal_summary(terminalreporter):
    if JACK_MODE:
        terminalreporter.write_line(f"JACK test server: {JACK_MODE[-1]}")


@pytest.fixture(scope="session")
def jack(jack_log):
    """A JACK dummy server at 48 kHz / 256 frames, under a name of our own (a JACK server the
    developer already runs is left alone), realtime where the machine allows it (else
    ``--no-realtime``, the reason logged); yields the environment that selects it and JACK MIDI,
    with ``SHOWRUNNER_JACK_MODE`` = ``realtime`` or ``no-realtime``."""
    from bench.jack_server import jack_server

    with jack_server(48000, 256, name_prefix="showrunner-test", realtime="auto", log=jack_log) as server:
        JACK_MODE.append(server.detail)
        print(f"\nJACK test server: {server.detail}", file=sys.stderr)
        yield dict(os.environ, MIDO_BACKEND="mido.backends.rtmidi/UNIX_JACK")


@pytest.fixture
def gl(egl):
    """A headless OpenGL 3.3 context of its own (Mesa EGL), released after the test."""
    import moderngl

    context = moderngl.create_standalone_context(backend="egl", require=330)
    yield context
    context.release()


@pytest.fixture(scope="session")
def egl():
    import moderngl

    ctx = moderngl.create_standalone_context(backend="egl", require=330)
    ctx.release()
    return True


@pytest.fixture
def x_display():
    """A virtual X display (Xvfb) of the test's own; yields the environment that selects it."""
    number = next(n for n in range(90, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists()
                  and not Path(f"/tmp/.X{n}-lock").exists())
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "640x360x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            assert server.poll() is None and time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.05)
        environment = {k: v for k, v in os.environ.items() if k not in ("SDL_VIDEODRIVER", "WAYLAND_DISPLAY")}
        yield {**environment, "DISPLAY": f":{number}"}
    finally:
        server.terminate()
        server.wait(timeout=10)
