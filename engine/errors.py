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


def check_not_an_input(outputs: dict[str, Path | None], inputs: dict[str, Path | None]) -> None:
    """An output that names one of the command's inputs (the same file, by any path) is bad input:
    writing it would destroy what the performer made (a performance log, a metrics log)."""
    def same(a: Path, b: Path) -> bool:
        try:
            return os.path.samefile(a, b)
        except OSError:  # one of them does not exist (yet): the same path or not
            return Path(a).resolve() == Path(b).resolve()

    for out_name, out in outputs.items():
        for in_name, source in inputs.items():
            if out is not None and source is not None and same(Path(out), Path(source)):
                raise UserError(f"the {out_name} {out} is the {in_name}: writing it would destroy it; "
                                "name another file")
