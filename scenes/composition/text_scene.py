"""``padberg_text``: Padberg's text-to-music as it plays. The cue's ``padberg`` note source writes
the text's letters as notes (scenes/composition/padberg.py); this scene retunes the source's 24
keys to the table's frequencies for the cue (``AudioOut.tune_note``: the instruments that play by
the show's tuning then sound exactly 440, 458.33, ... Hz; back to the tuning when the cue ends) and
shows the text, each letter with its frequency and rhythm value, the one sounding lit. New text
arrives by OSC ``/showrunner/text``."""

from __future__ import annotations

from typing import Any

from engine.primitives import Text
from engine.scene import Scene, SceneParams
from scenes.composition.padberg import LETTER_STEP, letter_hz

COLUMNS = 10


class PadbergScene(Scene):
    name = "padberg_text"
    Params = SceneParams

    def load(self) -> None:
        if getattr(self.context.source, "kind", None) != "padberg":
            raise ValueError('the cue needs a padberg note source: source = { kind = "padberg", text = "..." }')
        self.text = Text(self.context.gl, self.context.shaders, self.context.size) \
            if self.context.gl is not None else None
        self._reset()

    def _reset(self) -> None:
        self.time = 0.0
        self.began = 0.0
        self.throws = -1

    def _retune(self, on: bool) -> None:
        source = self.context.source
        for letter, step in LETTER_STEP.items():
            self.context.audio.tune_note(source.params.base_note + step, letter_hz(letter) if on else 0.0)

    def enter(self) -> None:
        self._reset()
        self._retune(True)

    def exit(self) -> None:
        self._retune(False)

    def tick(self, dt: float) -> None:
        source = self.context.source
        if source.throws != self.throws:
            self.throws, self.began = source.throws, self.time
        self.time += dt

    def sounding(self) -> int:
        """The index of the letter sounding now, or -1."""
        elapsed = self.time - self.began
        for index, (start, _letter, _hz, value) in enumerate(self.context.source.letters):
            if start <= elapsed < start + value * self.context.source.params.unit:
                return index
        return -1

    def status(self) -> dict[str, Any]:
        source = self.context.source
        now = self.sounding()
        return {"letter": source.letters[now][1] if now >= 0 else "", "cycle": list(source.cycle),
                "letters": len(source.letters)}

    def draw(self, alpha: float) -> None:
        if self.text is None:
            return
        source = self.context.source
        width, height = self.context.size
        size = max(12, height // 36)
        self.text.draw(f"Padberg: \u201c{source.text[:60]}\u201d   rhythm {' '.join(map(str, source.cycle))}",
                       0.04 * width, 0.05 * height, size + 2, alpha=0.9)
        now = self.sounding()
        first = max(0, now - 2 * COLUMNS) if now >= 0 else 0
        for slot, (start, letter, hz, value) in enumerate(source.letters[first:first + 4 * COLUMNS]):
            row, column = divmod(slot, COLUMNS)
            x, y = (0.04 + 0.092 * column) * width, (0.18 + 0.18 * row) * height
            lit = first + slot == now
            color = (255, 210, 120) if lit else (190, 190, 205)
            self.text.draw(letter.upper(), x, y, size * (2 if lit else 1) + 6, color=color)
            self.text.draw(f"{hz:.2f} Hz", x, y + 2.2 * size, max(10, size - 4), color=color, alpha=0.85)
            self.text.draw(f"x{value}", x, y + 3.3 * size, max(10, size - 4), color=color, alpha=0.7)
