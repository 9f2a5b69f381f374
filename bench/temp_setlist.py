"""Throw-away setlists for benchmarks, written as TOML and loaded through the normal setlist path."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from engine.setlist import LoadedSetlist, load_setlist


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def setlist_from_cues(cues: list[dict], title: str = "bench", tick_rate: float = 60.0,
                      fps: float = 60.0, resolution: tuple[int, int] = (1280, 720)) -> LoadedSetlist:
    """Write a setlist with ``cues`` (each ``{"id", "scene", "params"?}``) to a temp file and load it."""
    lines = [f"title = {_toml_value(title)}", f"tick_rate = {tick_rate}", f"fps = {fps}",
             f'resolution = "{resolution[0]}x{resolution[1]}"', "", "[audio]", "enabled = false", ""]
    for cue in cues:
        lines += ["[[cues]]", f"id = {_toml_value(cue['id'])}", f"scene = {_toml_value(cue['scene'])}"]
        params = cue.get("params") or {}
        if params:
            inner = ", ".join(f"{k} = {_toml_value(v)}" for k, v in params.items())
            lines.append(f"params = {{ {inner} }}")
        lines.append("")
    handle, name = tempfile.mkstemp(prefix="bench-setlist-", suffix=".toml")
    path = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write("\n".join(lines))
        return load_setlist(path)
    finally:
        path.unlink(missing_ok=True)
