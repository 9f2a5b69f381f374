"""Shared fixtures: the real stand-ins for devices this machine lacks.

- ``jack``: a real JACK server (``jackd --no-realtime -d dummy``), started here and stopped by PID.
- ``egl``: skips nothing; fails loudly if Mesa EGL cannot give an OpenGL 3.3 context.
"""

from __future__ import annotations

import os
import shutil
import signal
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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"test material missing: {SHARED_DATA} (the shared/ folder beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def jack():
    """A JACK dummy server at 48 kHz / 256 frames; yields the environment that selects JACK MIDI."""
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.fail("jackd not installed (make test installs jackd2)")
    # A server name of our own: a JACK server the developer already runs is left alone.
    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER=f"showrunner-test-{os.getpid()}")
    process = subprocess.Popen([jackd, "-n", env["JACK_DEFAULT_SERVER"], "--no-realtime",
                                "-d", "dummy", "-r", "48000", "-p", "256"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                               start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"jackd exited: {process.stderr.read().decode(errors='replace')[-500:]}")
        if subprocess.run(["jack_lsp"], capture_output=True, env=env).returncode == 0:
            break
        time.sleep(0.1)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("jackd did not start within 10 s")
    yield dict(env, MIDO_BACKEND="mido.backends.rtmidi/UNIX_JACK")
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def egl():
    import moderngl

    ctx = moderngl.create_standalone_context(backend="egl", require=330)
    ctx.release()
    return True
