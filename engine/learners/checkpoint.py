"""Checkpoints: a learner's whole state (parameters, optimizer state, step counters, random key) in
one file, written atomically, read back exactly.

The file is a numpy ``.npz`` (a zip, each member CRC-checked): the state pytree's leaves in order as
``leaf_0000``, ``leaf_0001``, ... and a JSON header (``header``, UTF-8 bytes) saying what it holds:

    {"format": "showrunner-learner-checkpoint", "format_version": 1,
     "learner": "cubic", "version": 1, "precision": "float64", "settings": {...},
     "tree": "<the pytree's structure>", "leaves": [{"shape": [1, 4], "dtype": "float64"}, ...]}

Saving writes a temporary file in the same folder, flushes it to disk and renames it over the
destination, so a crash leaves either the old checkpoint or the new one, never half of one.

Loading checks the file against the learner it is loaded into (its ``name``, ``version``, and the
shapes and dtypes of a fresh state) and raises :class:`engine.errors.UserError` with one line naming
the file and what is wrong: missing, not a checkpoint, truncated or corrupt, of another learner or
version, or of other shapes. A checkpoint made with other settings (``Learner.describe``) loads,
with a warning in the log: the shapes fit, the settings are the current ones.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np

from engine.errors import UserError
from engine.learners import precision
from engine.learners.protocol import Learner

log = logging.getLogger("showrunner.learners")

FORMAT = "showrunner-learner-checkpoint"
FORMAT_VERSION = 1

State = TypeVar("State")


def _template(learner: Learner[State]) -> tuple[Any, list[jax.ShapeDtypeStruct]]:
    """The tree structure and leaf shapes of a fresh state of ``learner`` (nothing computed)."""
    with precision.scope(learner.precision):
        shape = jax.eval_shape(learner.init, np.uint32(0))
    leaves, tree = jax.tree_util.tree_flatten(shape)
    return tree, leaves


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def save(path: str | Path, learner: Learner[State], state: State, extra: dict[str, Any] | None = None) -> Path:
    """Write ``state`` of ``learner`` to ``path`` (atomically); returns the path. ``extra``: what
    the saver wants to read back with it (:func:`load_with_extra`), kept in the header."""
    path = Path(path)
    leaves, tree = jax.tree_util.tree_flatten(state)
    arrays = {f"leaf_{index:04d}": np.asarray(leaf) for index, leaf in enumerate(leaves)}
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "learner": learner.name,
        "version": learner.version, "precision": learner.precision, "settings": learner.describe(),
        "tree": str(tree),
        "leaves": [{"shape": list(array.shape), "dtype": array.dtype.name} for array in arrays.values()],
    }
    if extra is not None:
        header["extra"] = extra
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(buffer.getbuffer())
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # as any file the performer saves (mkstemp's is 0600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)
    return path


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (a power cut after it keeps the new file)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def read(path: str | Path) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The header and leaves of the checkpoint at ``path``, checked only for being whole."""
    path = Path(path)
    where = f"learner checkpoint {path}"
    if not path.is_file():
        raise UserError(f"{where}: no such file")
    try:
        with open(path, "rb") as file:
            magic = file.read(4)
    except OSError as error:
        raise UserError(f"{where}: cannot read it ({error.strerror or error})") from None
    if magic != b"PK\x03\x04":  # np.load would take anything else for a pickle, and say so
        raise UserError(f"{where}: truncated or corrupt ({'empty' if not magic else 'not a zip archive'})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            if "header" not in names:
                raise UserError(f"{where}: not a learner checkpoint (no header)")
            header = json.loads(archive["header"].tobytes().decode())
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise UserError(f"{where}: not a learner checkpoint")
            if header.get("format_version") != FORMAT_VERSION:
                raise UserError(f"{where}: checkpoint format {header.get('format_version')}, this showrunner "
                                f"reads {FORMAT_VERSION}")
            count = len(header.get("leaves", []))
            leaves = [archive[f"leaf_{index:04d}"] for index in range(count)]
    except UserError:
        raise
    except (zipfile.BadZipFile, EOFError) as error:
        raise UserError(f"{where}: truncated or corrupt ({error})") from None
    except KeyError as error:
        raise UserError(f"{where}: truncated or corrupt (missing {error})") from None
    except RecursionError:  # a header of JSON nested too deeply
        raise UserError(f"{where}: corrupt (its header is nested too deeply)") from None
    except (ValueError, OSError, UnicodeDecodeError) as error:  # bad zip members, bad JSON, bad arrays
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{where}: truncated or corrupt ({reason})") from None
    for index, (leaf, expected) in enumerate(zip(leaves, header["leaves"])):
        if list(leaf.shape) != expected.get("shape") or leaf.dtype.name != expected.get("dtype"):
            raise UserError(f"{where}: corrupt (leaf {index} is {leaf.dtype.name}{list(leaf.shape)}, the header "
                            f"says {expected.get('dtype')}{expected.get('shape')})")
    return header, leaves


def load(path: str | Path, learner: Learner[State]) -> State:
    """The state saved in ``path``, for ``learner`` (see :func:`load_with_extra`)."""
    return load_with_extra(path, learner)[0]


def load_with_extra(path: str | Path, learner: Learner[State]) -> tuple[State, dict[str, Any]]:
    """The state saved in ``path``, for ``learner`` (host numpy leaves in the learner's pytree),
    and the ``extra`` it was saved with ({} if none).

    Raises :class:`UserError` (one line: the file and what is wrong) when the file is missing,
    truncated, corrupt, or holds another learner, version, precision or shapes.
    """
    header, leaves = read(path)
    where = f"learner checkpoint {path}"
    if header.get("learner") != learner.name:
        raise UserError(f"{where}: holds a {header.get('learner')!r} learner, not {learner.name!r}")
    if header.get("version") != learner.version:
        raise UserError(f"{where}: {learner.name} state version {header.get('version')}, this showrunner "
                        f"has version {learner.version}")
    if header.get("precision") != learner.precision:
        raise UserError(f"{where}: {header.get('precision')} state, the learner runs at {learner.precision}")
    tree, expected = _template(learner)
    if len(leaves) != len(expected) or header.get("tree") != str(tree):
        raise UserError(f"{where}: another state layout ({len(leaves)} arrays, the learner has {len(expected)})")
    for index, (leaf, want) in enumerate(zip(leaves, expected)):
        if leaf.shape != tuple(want.shape) or leaf.dtype != want.dtype:
            raise UserError(f"{where}: array {index} is {leaf.dtype.name}{list(leaf.shape)}, the learner expects "
                            f"{np.dtype(want.dtype).name}{list(want.shape)} (other settings or size?)")
    settings, saved = json.loads(json.dumps(learner.describe())), header.get("settings")
    if saved != settings:
        if isinstance(saved, dict) and isinstance(settings, dict):
            changed = ", ".join(f"{key} {saved.get(key)!r} -> {settings.get(key)!r}"
                                for key in sorted(set(saved) | set(settings)) if saved.get(key) != settings.get(key))
        else:
            changed = "other settings"
        log.warning("%s was saved with other settings than %s has now (%s); loading it with the current ones",
                    path, learner.name, changed)
    extra = header.get("extra")
    return jax.tree_util.tree_unflatten(tree, leaves), extra if isinstance(extra, dict) else {}
