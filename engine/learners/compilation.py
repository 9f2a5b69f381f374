"""Compilation bookkeeping: jax's persistent cache in the project, and a count of every compilation.

Importing :mod:`engine.learners` calls :func:`configure` once: the persistent cache in
``.cache/jax`` under the project (or ``$SHOWRUNNER_CACHE_DIR/jax``), every compiled function cached
whatever its size or compile time (the learners' are small and quick, but a show loads many), and a
listener that counts XLA compilations (including those served from the persistent cache). Scenes
compile in ``load``; the show compares :func:`compilations` before and after the run, so any
compilation during the show is seen and reported.

Nothing here changes jax's numeric width for the process: each learner chooses float32 or float64
for itself (:mod:`engine.learners.precision`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import jax
from jax import monitoring

# jax fires this event around every executable it builds, whether compiled or read from the cache.
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"

_lock = threading.Lock()
_count = 0
_configured = False


def _on_duration(event: str, duration: float, **_: object) -> None:
    global _count
    if event == _COMPILE_EVENT:
        with _lock:
            _count += 1


def cache_directory() -> Path:
    """Where compiled learners are kept between runs."""
    root = os.environ.get("SHOWRUNNER_CACHE_DIR")
    base = Path(root) if root else Path(__file__).resolve().parents[2] / ".cache"
    return base / "jax"


def configure() -> None:
    """Set jax up for the learners (idempotent)."""
    global _configured
    if _configured:
        return
    directory = cache_directory()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # a read-only install compiles every time; the cache is an optimisation
    else:
        jax.config.update("jax_compilation_cache_dir", str(directory))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    monitoring.register_event_duration_secs_listener(_on_duration)
    _configured = True


def compilations() -> int:
    """XLA compilations in this process so far (cache hits included)."""
    with _lock:
        return _count
