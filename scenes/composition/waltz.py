"""``dice_waltz``: what the dice game writes, as it plays. The cue's ``dice`` note source throws the
dice (scenes/composition/dice.py); this scene shows the two parts' eight bar positions, each with
its two dice, their sum and the bar they picked from the tables, the bar playing lit, and the notes
of the waltz so far as a piano roll. The notes themselves reach the sound (and any learner) the way
a piano's do."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.midi import NoteOff, NoteOn
from engine.primitives import Points, Polylines, Text
from engine.projection import orthographic
from engine.scene import Scene, SceneParams

ROLL_SECONDS = 8.0


class DiceWaltzScene(Scene):
    name = "dice_waltz"
    Params = SceneParams

    def load(self) -> None:
        if self.context.source is None or getattr(self.context.source, "kind", None) != "dice":
            raise ValueError('the cue needs a dice note source: source = { kind = "dice" }')
        self.text = self.points = self.lines = None
        if self.context.gl is not None:
            gl, shaders, size = self.context.gl, self.context.shaders, self.context.size
            self.text = Text(gl, shaders, size)
            self.points = Points(gl, shaders, capacity=4096)
            self.lines = Polylines(gl, shaders, size)
            self.mvp = orthographic(0.0, 1.0, 0.0, 1.0)
        self._reset()

    def _reset(self) -> None:
        self.time = 0.0
        self.began = 0.0
        self.throws = -1
        self.sounding: dict[int, float] = {}
        self.roll: list[tuple[float, float, int]] = []  # (start, end, pitch)

    def enter(self) -> None:
        self._reset()

    def on_midi(self, event) -> bool:
        if isinstance(event, NoteOn) and event.velocity > 0:
            self.sounding[event.note] = self.time
        elif isinstance(event, (NoteOn, NoteOff)) and event.note in self.sounding:
            self.roll.append((self.sounding.pop(event.note), self.time, event.note))
            del self.roll[:-400]
        return False

    def tick(self, dt: float) -> None:
        source = self.context.source
        if source.throws != self.throws:  # a new waltz: written at the cue start or a throw
            self.throws, self.began = source.throws, self.time
        self.time += dt

    def playing(self) -> int:
        """The bar position (0..15) playing now, or -1 after the waltz."""
        source = self.context.source
        played = source.bar_at(self.time - self.began)
        return source.order[played] if 0 <= played < len(source.order) else -1

    def status(self) -> dict[str, Any]:
        source = self.context.source
        return {"seed": int(source.seed), "bar": self.playing(),
                "bars": [int(b) for b in source.chosen]}

    def draw(self, alpha: float) -> None:
        if self.text is None:
            return
        source = self.context.source
        width, height = self.context.size
        size = max(12, height // 40)
        now = self.playing()
        self.text.draw(f"Mozart's dice game, K. 516f   seed {source.seed}   throw {source.throws}",
                       0.04 * width, 0.05 * height, size + 4, alpha=0.9)
        for position, bar in enumerate(source.chosen):
            part, column = divmod(position, 8)
            x = (0.04 + column * 0.115) * width
            y = (0.16 + part * 0.2) * height
            a, b = (int(v) for v in source.dice[position])
            lit = position == now
            color = (255, 210, 120) if lit else (200, 200, 210)
            self.text.draw(f"{'I II III IV V VI VII VIII'.split()[column]}", x, y, size, color=color, alpha=0.8)
            self.text.draw(f"{a}+{b}={a + b}", x, y + 1.4 * size, size, color=color, alpha=0.9)
            self.text.draw(f"bar {bar}", x, y + 2.8 * size, size + (4 if lit else 0), color=color,
                           alpha=1.0 if lit else 0.8)
        # the piano roll of what was played: time across, pitch up
        notes = [n for n in self.roll if n[1] > self.time - ROLL_SECONDS] + \
            [(start, self.time, pitch) for pitch, start in self.sounding.items()]
        if notes:
            starts = np.array([[0.04 + 0.92 * (1 - (self.time - s) / ROLL_SECONDS), 0.05 + 0.45 * (p - 36) / 60]
                               for s, _, p in notes])
            ends = np.array([[0.04 + 0.92 * (1 - (self.time - e) / ROLL_SECONDS), 0.05 + 0.45 * (p - 36) / 60]
                             for _, e, p in notes])
            keep = ends[:, 0] > 0.04
            self.lines.draw_segments(np.clip(starts[keep], 0.04, 1.0), ends[keep], (1.0, 0.8, 0.45, 0.9),
                                     max(2.0, height / 180), self.mvp)
