"""Child processes: waiting for one to report through shared state, and ending one the polite
way first (ask, wait a grace period, then kill)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


def wait_until(done: Callable[[], object], timeout: float, interval: float = 0.01) -> bool:
    """Look at ``done`` every ``interval`` seconds until it is true (True) or ``timeout`` seconds
    have passed (False)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def stop_child(process: subprocess.Popen, ask: Callable[[], object] | None = None,
               grace: float = 5.0) -> None:
    """Ask ``process`` to end (``ask``, default SIGTERM), wait up to ``grace`` seconds, then kill
    it; returns once it has ended. A process that already ended is left alone."""
    if process.poll() is not None:
        return
    (ask or process.terminate)()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
