"""Pulse: every note played lights a bar over its key that fades away; the sustain pedal glows.

The engine's built-in demo scene. Bars sit where the note sits on an 88-key piano (A0..C8), their
height follows the velocity and their colour the pitch class, and they fade over ``decay`` seconds
(or hold while the key is down). It shows at a glance that every note reaches the show.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from typing import Literal

import moderngl
import numpy as np
from pydantic import Field

from engine.midi import MidiEvent, NoteOff, NoteOn
from engine.scene import Scene, SceneParams

LOWEST, HIGHEST = 21, 108  # A0..C8
CAPACITY = 512


class PulseParams(SceneParams):
    decay: float = Field(1.5, gt=0, le=60, description="seconds a released bar takes to fade out")
    palette: Literal["rainbow", "mono"] = "rainbow"
    hue: float = Field(0.0, ge=0, le=1, description="hue shift (rainbow) or the hue (mono), 0..1")
    bar_width: float = Field(1.0, gt=0, le=8, description="bar width in piano keys")


@dataclass
class Bars:
    """One bar per note-on, in fixed-size arrays (no allocation per note)."""

    note: np.ndarray = field(default_factory=lambda: np.zeros(CAPACITY, np.int16))
    level: np.ndarray = field(default_factory=lambda: np.zeros(CAPACITY, np.float32))  # 0..1
    held: np.ndarray = field(default_factory=lambda: np.zeros(CAPACITY, bool))
    next_slot: int = 0

    def clear(self) -> None:
        self.level[:] = 0
        self.held[:] = False

    def strike(self, note: int, velocity: int) -> None:
        slot = self.next_slot
        self.next_slot = (slot + 1) % CAPACITY
        self.note[slot], self.level[slot], self.held[slot] = note, velocity / 127.0, True

    def release(self, note: int) -> None:
        self.held[self.note == note] = False


class Pulse(Scene):
    name = "pulse"
    Params = PulseParams

    def load(self) -> None:
        self.bars = Bars()
        self.sustain_glow = 0.0
        gl = self.context.gl
        if gl is None:
            return
        self.program = self.context.shaders.program("pulse")
        corners = np.array([0, 0, 1, 0, 0, 1, 1, 1], dtype="f4")
        self.instances = gl.buffer(reserve=CAPACITY * 8 * 4, dynamic=True)
        self.vao = self.program.vertex_array([
            (gl.buffer(corners.tobytes()), "2f", "in_corner"),
            (self.instances, "4f 4f/i", "in_rect", "in_color"),
        ])
        hues = (np.arange(12) / 12.0 * 7) % 1.0  # neighbours on the circle of fifths get near colours
        self.pitch_colors = np.array([colorsys.hsv_to_rgb(h, 0.75, 1.0) for h in hues], dtype="f4")

    def enter(self) -> None:
        self.bars.clear()

    def on_midi(self, event: MidiEvent) -> bool:
        if isinstance(event, NoteOn):
            self.bars.strike(event.note, event.velocity)
            return True
        if isinstance(event, NoteOff):
            self.bars.release(event.note)
            return True
        return False

    def tick(self, dt: float) -> None:
        fading = ~self.bars.held
        self.bars.level[fading] = np.maximum(0.0, self.bars.level[fading] - dt / self.params.decay)
        target = 1.0 if self.context.pedals.sustain_down else 0.0
        self.sustain_glow += (target - self.sustain_glow) * min(1.0, dt * 8)

    def _colors(self, notes: np.ndarray) -> np.ndarray:
        if self.params.palette == "mono":
            return np.tile(np.array(colorsys.hsv_to_rgb(self.params.hue, 0.6, 1.0), "f4"), (len(notes), 1))
        shift = int(round(self.params.hue * 12)) % 12
        return self.pitch_colors[(notes + shift) % 12]

    def draw(self, alpha: float) -> None:
        if self.context.gl is None:
            return
        live = np.flatnonzero(self.bars.level > 0)
        keys = HIGHEST - LOWEST + 1
        width = self.params.bar_width / keys
        rects = [np.array([[0.0, 0.0, 1.0, 0.02 + 0.04 * self.sustain_glow]], "f4")]
        colors = [np.array([[0.3, 0.3, 0.4, self.sustain_glow]], "f4")]
        if live.size:
            notes = self.bars.note[live].astype("f4")
            level = self.bars.level[live]
            x = (notes - LOWEST + 0.5) / keys - width / 2
            rects.append(np.stack([x, np.full_like(x, 0.06), np.full_like(x, width), 0.9 * level], 1))
            colors.append(np.column_stack([self._colors(self.bars.note[live]), level]).astype("f4"))
        data = np.hstack([np.vstack(rects), np.vstack(colors)]).astype("f4")
        self.instances.write(data.tobytes())
        gl = self.context.gl
        gl.enable(moderngl.BLEND)
        gl.blend_func = moderngl.SRC_ALPHA, moderngl.ONE
        self.vao.render(moderngl.TRIANGLE_STRIP, instances=len(data))
        gl.disable(moderngl.BLEND)

    def status(self) -> dict:
        return {"bars": int(np.count_nonzero(self.bars.level > 0))}
