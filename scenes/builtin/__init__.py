"""Piece-agnostic scenes that ship with the engine (for demos, intermissions and tests)."""

from scenes.builtin.blackout import Blackout  # noqa: F401
from scenes.builtin.pulse import Pulse  # noqa: F401
from scenes.builtin.echo import Echo  # noqa: F401
from scenes.builtin.crash import Crash  # noqa: F401
