"""The scene stack: push / pop / switch requested any time, applied at the next tick boundary.

The top scene and any overlays above an opaque scene are *active*: they tick, draw (bottom-up) and
receive MIDI (top-down; an event falls through until a scene consumes it). An opaque scene pushed on
top pauses the one below. A hook that raises is logged and counted, never allowed to stop the show.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from engine.events import MIDI_TYPES

from engine.scene import Scene

log = logging.getLogger("showrunner.stack")


class SceneStack:
    def __init__(self, on_error: Callable[[Scene, str, BaseException], None] | None = None) -> None:
        self._scenes: list[Scene] = []
        self._pending: list[tuple[str, Scene | None]] = []
        self.errors = 0
        self._on_error = on_error

    # Requests: safe at any time (inside hooks too); nothing changes until apply_pending().
    def push(self, scene: Scene) -> None:
        self._pending.append(("push", scene))

    def pop(self) -> None:
        self._pending.append(("pop", None))

    def switch(self, scene: Scene) -> None:
        """Replace the top scene with ``scene``."""
        self._pending.append(("switch", scene))

    def replace_all(self, scene: Scene) -> None:
        """Exit every scene (top first) and enter ``scene`` alone: what a cue change does."""
        self._pending.append(("replace_all", scene))

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    @property
    def scenes(self) -> tuple[Scene, ...]:
        return tuple(self._scenes)

    @property
    def top(self) -> Scene | None:
        return self._scenes[-1] if self._scenes else None

    def active(self) -> list[Scene]:
        """Scenes that run this tick, bottom-up: the top opaque scene and the overlays above it."""
        return _active_part(self._scenes)

    def apply_pending(self) -> bool:
        """Apply queued requests in order; True when anything changed.

        Per request, in this order: scenes that stop running but stay on the stack are paused (top
        first), scenes that leave exit (top first), scenes that run again are resumed, and the new
        scene enters.
        """
        # Requests made by the hooks called here wait for the next call (two scenes switching to
        # each other from enter() must not loop forever).
        pending, self._pending = self._pending, []
        for operation, scene in pending:
            if operation == "push":
                leaving = []
            elif operation == "replace_all":
                leaving = list(reversed(self._scenes))
            else:  # pop, switch: the top scene leaves
                leaving = self._scenes[-1:]
            staying = self._scenes[:len(self._scenes) - len(leaving)] + ([scene] if scene else [])
            before, after = self.active(), _active_part(staying)
            for old in reversed(before):
                if old not in after and old not in leaving:
                    self._call(old, "pause")
            for old in leaving:
                self._call(old, "exit")
            self._scenes = staying
            for again in after:
                if again not in before and again is not scene:
                    self._call(again, "resume")
            if scene is not None:
                self._call(scene, "enter")
        return bool(pending)

    def dispatch(self, event) -> bool:
        """Offer ``event`` to active scenes top-down (MIDI to ``on_midi``, anything else to
        ``on_event``); True when one consumed it."""
        hook = "on_midi" if isinstance(event, MIDI_TYPES) else "on_event"
        for scene in reversed(self.active()):
            if self._call(scene, hook, event):
                return True
        return False

    def tick(self, dt: float) -> None:
        for scene in self.active():
            self._call(scene, "tick", dt)

    def draw(self, alpha: float) -> None:
        for scene in self.active():
            self._call(scene, "draw", alpha)

    def exit_all(self) -> None:
        """Exit every scene, top first, now (the show is over)."""
        while self._scenes:
            self._call(self._scenes.pop(), "exit")

    def status(self) -> dict[str, Any]:
        """The top scene's extra metrics fields ({} when it has none or fails)."""
        return (self._call(self._scenes[-1], "status") or {}) if self._scenes else {}

    def _call(self, scene: Scene, hook: str, *args: Any) -> Any:
        try:
            return getattr(scene, hook)(*args)
        except Exception as error:  # a failing scene must not stop the show
            self.errors += 1
            if self._on_error is not None:
                self._on_error(scene, hook, error)
            else:
                log.exception("scene %s: %s failed", type(scene).__name__, hook)
            return None


def _active_part(scenes: list[Scene]) -> list[Scene]:
    for index in range(len(scenes) - 1, -1, -1):
        if not scenes[index].overlay:
            return scenes[index:]
    return list(scenes)
