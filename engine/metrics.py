"""The metrics log: JSON Lines, one object per tick (``--metrics FILE``).

Each line has at least ``tick`` (int), ``time`` (show seconds), ``cue``, ``scene`` and ``events``
(list of strings); MIDI delivered in the tick is listed under ``midi`` as ``[text, stamp]`` pairs
(stamp = arrival in show seconds); scenes add their own fields (``loss``, ``grad``) and the show adds
frame time when known. Lines are flushed at least once a second and when the show ends, however it
ends, so a crash loses at most the last second.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from engine.errors import UserError


def _finite(value: Any) -> Any:
    """JSON has no NaN or Infinity: write them as null so every line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class MetricsLog:
    """A JSON Lines log flushed at least every ``flush_every`` seconds; ``what`` names it in
    errors (the performance log is written the same way)."""

    snapshot_by_reference = True  # engine.snapshot: the restoring show's own, not saved

    def __init__(self, path: str | Path, flush_every: float = 1.0, what: str = "metrics log",
                 append: bool = False) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a" if append else "w", encoding="utf-8")
        except OSError as error:
            raise UserError(f"cannot write {what} {self.path}: {error.strerror}") from None
        self._flush_every = flush_every
        self._last_flush = time.monotonic()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps({k: _finite(v) for k, v in record.items()}, separators=(",", ":"))
        self._file.write(line + "\n")
        now = time.monotonic()
        if now - self._last_flush >= self._flush_every:
            self._file.flush()
            self._last_flush = now

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()
