"""The rehearsal HUD: what the show is doing, drawn over the frame (toggled with F1).

Shows the cue and the next cue, frame time (CPU, and GPU where the driver measures it), the audio
load and underruns, the held notes, a plot of the loss over the last seconds, recording status,
MIDI learn (F2: the controller captured and the parameter picked, engine/midi_learn.py) and the
last error (a scene hook that failed, a shader that does not compile, an audio device lost).
The show feeds it once per tick (:meth:`Hud.observe`) and draws it last (:meth:`Hud.draw`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.projection import orthographic
from engine.primitives import Polylines, Text, TexturedRect

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
LOSS_HISTORY = 600  # ticks of loss plotted (10 s at 60 Hz)
ERROR_EVENTS = {"scene_error": "a scene hook failed (see the log)", "shader_error": None,
                "audio_device_lost": "audio device lost: silent, retrying",
                "audio_no_device": "no audio device: silent, retrying", "learner_reset": "a learner diverged: reset",
                "recompile": "jax compiled during the show (a stall)"}


def note_name(note: int) -> str:
    return f"{NOTE_NAMES[note % 12]}{note // 12 - 1}"


@dataclass
class HudState:
    """What the HUD shows; updated every tick whether or not it is visible (cheap)."""

    cue: str = ""
    next_cue: str = ""
    frame_ms: float | None = None
    gpu_ms: float | None = None
    audio_load: float | None = None
    xruns: int = 0
    held: set[int] = field(default_factory=set)
    losses: deque = field(default_factory=lambda: deque(maxlen=LOSS_HISTORY))
    recording: str = "not recording"
    osc: str = ""  # OSC counts, when the show takes OSC
    learn: list[str] = field(default_factory=list)  # MIDI learn mode's lines (empty outside it)
    last_error: str = ""

    def lines(self) -> list[str]:
        frame = f"{self.frame_ms:.1f} ms" if self.frame_ms is not None else "-"
        if self.gpu_ms is not None:
            frame += f" (GPU {self.gpu_ms:.1f} ms)"
        load = f"{self.audio_load:.0%}" if self.audio_load is not None else "-"
        held = " ".join(note_name(n) for n in sorted(self.held)[:12]) or "-"
        loss = f"{self.losses[-1]:.5g}" if self.losses else "-"
        return [f"cue {self.cue}  next {self.next_cue or '-'}", f"frame {frame}",
                f"audio load {load}  underruns {self.xruns}", f"held {held}", f"loss {loss}",
                self.recording] + ([self.osc] if self.osc else []) + self.learn


class Hud:
    """Draws :class:`HudState` in the top-left corner of the show frame."""

    snapshot_by_reference = True  # engine.snapshot: the restoring show's own, not saved

    def __init__(self, gl, shaders, size: tuple[int, int], visible: bool = False) -> None:
        self.state = HudState()
        self.visible = visible
        self.gl, self.size = gl, size
        self.scale = max(0.75, size[1] / 720)
        self.text = Text(gl, shaders, size)
        self.lines = Polylines(gl, shaders, size)
        self.panel = TexturedRect(gl, shaders, size)
        self._white = gl.texture((1, 1), 4, b"\xff\xff\xff\xff")

    def toggle(self) -> None:
        self.visible = not self.visible

    def show_learn(self, lines: list[str]) -> None:
        """MIDI learn's lines (empty: learn mode is off); entering learn mode shows the HUD."""
        if lines and not self.state.learn:
            self.visible = True
        self.state.learn = list(lines)

    def observe(self, cue: str, next_cue: str, events: list[str], status: dict[str, Any],
                health: dict[str, Any], errors: dict[str, str], frame_ms: float | None = None,
                gpu_ms: float | None = None) -> None:
        """One tick's news: the cue, its events, the scene's status, the audio health, shader errors,
        and the last frame's times (None: no frame was drawn since the last tick, keep the shown one)."""
        s = self.state
        s.cue, s.next_cue = cue, next_cue
        if frame_ms is not None:
            s.frame_ms, s.gpu_ms = frame_ms, gpu_ms
        loss = status.get("loss")
        if isinstance(loss, (int, float)) and np.isfinite(loss):
            s.losses.append(float(loss))
        s.audio_load = health.get("audio_load", s.audio_load)
        s.xruns = int(health.get("xruns", s.xruns) or 0)
        for event in events:
            if event in ERROR_EVENTS:
                message = ERROR_EVENTS[event]
                if event == "shader_error" and errors:
                    message = next(reversed(errors.values()))
                s.last_error = message or event
        if "cue" in events:
            s.losses.clear()

    def note(self, note: int, down: bool) -> None:
        (self.state.held.add if down else self.state.held.discard)(note)

    def draw(self) -> None:
        if not self.visible:
            return
        k = self.scale
        size, pad = int(20 * k), 10 * k
        rows = self.state.lines() + ([f"error: {self.state.last_error}"] if self.state.last_error else [])
        width, height = 520 * k, pad * 2 + len(rows) * size * 1.1 + 90 * k
        self.panel.draw(self._white, (pad, pad, width, height), tint=(0, 0, 0, 0.65))
        y = 2 * pad
        learning = set(self.state.learn)
        for row in rows:
            color = (255, 110, 110) if row.startswith("error:") else \
                (255, 220, 90) if row in learning else (235, 235, 235)
            self.text.draw(row[:70], 2 * pad, y, size=size, color=color)
            y += size * 1.1
        self._plot(2 * pad, y + 5 * k, width - 2 * pad, 70 * k)

    def _plot(self, x: float, y: float, width: float, height: float) -> None:
        """The loss over the last LOSS_HISTORY ticks, scaled to its own maximum."""
        losses = np.asarray(self.state.losses, float)
        if losses.size < 2:
            return
        top = max(losses.max(), 1e-12)
        xs = x + np.linspace(0, width, losses.size)
        ys = y + height * (1 - losses / top)
        pixels = orthographic(0, self.size[0], self.size[1], 0)
        self.lines.draw(np.column_stack([[x, x + width], [y + height] * 2]), (0.5, 0.5, 0.5, 1), 1, pixels)
        self.lines.draw(np.column_stack([xs, ys]), (1.0, 0.35, 0.35, 1), 2 * self.scale, pixels)
