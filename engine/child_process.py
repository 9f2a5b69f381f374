"""Ending a child process the polite way first: ask, wait a grace period, then kill."""

from __future__ import annotations

import subprocess
from collections.abc import Callable


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
