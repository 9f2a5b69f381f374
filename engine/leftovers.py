"""Shared files that a killed show left behind, found and removed by a later one.

A show removes its shared files when it ends: the audio process's state and the sample pool (in
/dev/shm, which is memory: 9 MiB of state and a pool of tens of MiB) and the audio process's
settings. A show killed outright cannot. Under a supervisor the show that comes back adopts them,
but without one, or when its audio process died with it, they stay until the machine restarts.

:func:`sweep` removes those whose show is gone: files of ours older than :data:`MIN_AGE` that no
process maps or holds open (read from ``/proc/*/maps`` and ``/proc/*/fd``), so the files of a show
that runs, or of an audio process that plays on for a show coming back, stay; and settings files
whose state file is gone. A new audio state or sample pool sweeps before it is made (once in 10 s:
a show making both sweeps once).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

log = logging.getLogger("showrunner.leftovers")

PREFIXES = ("showrunner-audio-", "showrunner-pool-")  # shared files (/dev/shm, else the temp folder)
SETTINGS = "showrunner-audio-*.json"  # the audio process's settings (the temp folder)
MIN_AGE = 60.0  # seconds: younger files may be between their creation and their mapping
MARK = "showrunner-"
AGAIN = 10.0  # seconds: a show's sweep within this long of its last one does nothing
_swept_at = float("-inf")  # time.monotonic() of this process's last sweep of the usual folders


def shared_folders() -> list[Path]:
    """Where shared files are made: /dev/shm when it is writable, and the temp folder."""
    folders = [Path("/dev/shm")] if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else []
    return [*folders, Path(tempfile.gettempdir())]


def in_use() -> set[str]:
    """Paths of our files that some process maps or holds open now."""
    used: set[str] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/maps", encoding="utf-8", errors="replace") as maps:
                for line in maps:
                    if MARK in line:
                        used.add(line.split(None, 5)[-1].strip().removesuffix(" (deleted)"))
            with os.scandir(f"/proc/{entry.name}/fd") as handles:
                for handle in handles:
                    try:
                        target = os.readlink(handle.path)
                    except OSError:
                        continue
                    if MARK in target:
                        used.add(target)
        except OSError:  # ended meanwhile, or another user's (which cannot open our 0600 files)
            continue
    return used


def sweep(folders: list[Path] | None = None, settings_folder: Path | None = None,
          min_age: float = MIN_AGE) -> list[Path]:
    """Remove the leftovers of shows that are gone; the paths removed. Never raises: a file or a
    folder that cannot be read, and a file that cannot be removed, is left. A sweep of the usual
    folders (no arguments) within :data:`AGAIN` seconds of the last does nothing: a show that
    makes its audio state and its sample pool sweeps once."""
    global _swept_at
    if folders is None and settings_folder is None:
        if time.monotonic() - _swept_at < AGAIN:
            return []
        _swept_at = time.monotonic()
    try:
        return _sweep(folders, settings_folder, min_age)
    except OSError:
        log.debug("the sweep of leftover shared files stopped", exc_info=True)
        return []


def _sweep(folders: list[Path] | None, settings_folder: Path | None, min_age: float) -> list[Path]:
    folders = shared_folders() if folders is None else folders
    settings_folder = Path(tempfile.gettempdir()) if settings_folder is None else settings_folder
    now = time.time()
    removed: list[Path] = []

    def old(path: Path) -> bool:
        try:
            return now - path.stat().st_mtime > min_age
        except OSError:
            return False

    candidates = [path for folder in dict.fromkeys(folders) for prefix in PREFIXES
                  for path in folder.glob(prefix + "*") if path.suffix != ".json" and old(path)]
    if candidates:
        used = in_use()
        for path in candidates:
            if str(path) not in used:
                removed += _remove(path)
    for path in settings_folder.glob(SETTINGS):
        if not old(path):
            continue
        try:
            state = json.loads(path.read_text(encoding="utf-8")).get("state")
        except (OSError, ValueError, AttributeError):
            continue  # not ours to judge
        if isinstance(state, str) and not Path(state).exists():
            removed += _remove(path)
    if removed:
        log.info("removed %d file(s) that shows which were killed left behind: %s", len(removed),
                 ", ".join(path.name for path in removed))
    return removed


def _remove(path: Path) -> list[Path]:
    try:
        path.unlink()
    except OSError:
        return []
    return [path]
