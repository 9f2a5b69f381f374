"""Errors that reach the performer as one line on stderr."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class UserError(Exception):
    """Bad input (setlist, MIDI file, argument, missing device named explicitly).

    The CLI prints ``str(error)`` as one line and exits with code 2; no traceback.
    """


def check_writable(path: Path, what: str) -> None:
    """An output file that cannot be written is bad input: a one-line :class:`UserError` before
    any work starts. A file that exists is checked without emptying it (a later bad input must
    not cost the performer an earlier recording); its folder is made if missing."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {what} {path}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            if not os.access(path, os.W_OK):
                raise PermissionError(13, "Permission denied")
        else:
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".showrunner-check-"):
                pass
    except OSError as error:
        raise UserError(f"cannot write {what} {path}: {error.strerror or error}") from None
