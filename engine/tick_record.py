"""What happened in one tick, gathered as the tick runs, for its metrics line and the HUD.

The show fills a :class:`TickRecord` concern by concern (moves, the cue, the input, the scenes,
sound) and writes it once at the end (:meth:`TickRecord.metrics`): the line's fields are documented
in docs/setlists.md ("Timing") and docs/recording.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TickRecord:
    """One tick. ``time`` is show seconds at its end; lists hold what the metrics line lists."""

    tick: int
    time: float
    events: list[str] = field(default_factory=list)  # "cue", "advance", "overload", ...
    delivered: list[list] = field(default_factory=list)  # [MIDI event text, arrival in show s]
    osc: list[str] = field(default_factory=list)  # OSC messages acted on (besides moves)
    emitted: list[str] = field(default_factory=list)  # what scenes emitted
    learned: list[list] = field(default_factory=list)  # [cue, parameter, value] set by MIDI learn
    sent: list[list] = field(default_factory=list)  # commands sent to the sound
    heard: list[list] = field(default_factory=list)  # what the audio process played itself
    overload: int = 0  # input events left out (a flood)
    taken_cue: str | None = None  # the cue started in this tick
    status: dict[str, Any] = field(default_factory=dict)  # the scene's fields (loss, grad, ...)
    health: dict[str, Any] = field(default_factory=dict)  # audio health (xruns, audio_load)
    machine: dict[str, Any] = field(default_factory=dict)  # frame and recording figures, counters

    def metrics(self, cue: str, scene: str) -> dict[str, Any]:
        """The metrics line: the tick, its time, the cue and scene current at its end, then what
        happened, each field only when there is something to say."""
        record: dict[str, Any] = {"tick": self.tick, "time": round(self.time, 6), "cue": cue,
                                  "scene": scene, "events": self.events}
        for name in ("delivered", "osc", "emitted", "learned"):
            value = getattr(self, name)
            if value:
                record["midi" if name == "delivered" else name] = value
        machine = dict(self.machine)
        for name in ("frame_ms", "gpu_ms", "capture_ms"):
            if name in machine:
                record[name] = machine.pop(name)
        if self.sent:
            record["audio"] = self.sent
        if self.heard:
            record["heard"] = self.heard
        record.update(machine)
        if self.overload:
            record["overload"] = self.overload
        record.update(self.health)
        record.update(self.status)
        return record
