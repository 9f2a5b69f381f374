"""A fire drill for recovery (docs/recovery.md): a black stage whose process dies ``after`` seconds
into the cue, live, as a segfaulting driver or the OOM killer would end it. Rehearse with it that the
rig comes back (``showrunner run`` restarts the show at the same moment). Renders and replays
(paced shows) never die: they draw the black stage."""

from __future__ import annotations

import os
import signal
from typing import Literal

from pydantic import Field

from engine.scene import Scene, SceneParams


class CrashParams(SceneParams):
    after: float = Field(1.0, ge=0.1, le=3600.0)  # seconds into the cue (the warm-up ticks less)
    how: Literal["kill", "abort"] = "kill"  # SIGKILL (as the OOM killer), or abort() (as a failed assert in C)


class Crash(Scene):
    name = "crash"
    Params = CrashParams

    def enter(self) -> None:
        self.elapsed = 0.0

    def tick(self, dt: float) -> None:
        self.elapsed += dt
        if self.context.paced or self.elapsed < self.params.after or self.context.cue == "":
            return
        if self.params.how == "abort":
            os.abort()
        os.kill(os.getpid(), signal.SIGKILL)

    def warm_up_events(self) -> list:
        return []
