"""The grain clouds' picture: the source's waveform across the frame, every sounding grain a glowing
bar where it reads (as tall as its level, as bright as its window, blue to the left, amber to the
right), the band the position and its deviation cover, and the cloud's parameters in text."""

from __future__ import annotations

from typing import TYPE_CHECKING

import moderngl
import numpy as np

from engine.audio.granular_kernels import V_ENVELOPE, V_LEVEL, V_PAN, V_POSITION, V_TABLE
from engine.audio.shared import VIEW_ROWS
from engine.primitives import Text

if TYPE_CHECKING:
    from scenes.grains.clouds import GrainClouds

COLUMNS = 480  # waveform columns
LANE_Y, LANE_HEIGHT = 0.22, 0.62  # the waveform's lane, in frame fractions from the bottom
OTHER_Y, OTHER_HEIGHT = 0.06, 0.1  # grains reading another table
GRAIN_WIDTH = 0.006
CAPACITY = COLUMNS + VIEW_ROWS + 4
LEFT, RIGHT = np.array([0.35, 0.6, 1.0], "f4"), np.array([1.0, 0.65, 0.25], "f4")


class Picture:
    def __init__(self, context) -> None:
        gl = self.gl = context.gl
        self.context = context
        self.program = context.shaders.program("grains")
        corners = np.array([0, 0, 1, 0, 0, 1, 1, 1], dtype="f4")
        self.instances = gl.buffer(reserve=CAPACITY * 8 * 4, dynamic=True)
        self.vao = self.program.vertex_array([
            (gl.buffer(corners.tobytes()), "2f", "in_corner"),
            (self.instances, "4f 4f/i", "in_rect", "in_color"),
        ])
        self.text = Text(gl, context.shaders, context.size)
        self._waveforms: dict[int, tuple[int, np.ndarray]] = {}

    def waveform(self, slot: int) -> np.ndarray:
        """(COLUMNS,) peak level per column of table ``slot`` (kept until its length changes)."""
        pool = self.context.audio.pool
        if pool is None or slot < 0:
            return np.zeros(COLUMNS, "f4")
        table = pool.table(slot)
        cached = self._waveforms.get(slot)
        if cached is not None and cached[0] == len(table):
            return cached[1]
        mono = np.abs(table).max(axis=1) if len(table) else np.zeros(COLUMNS)
        edges = np.linspace(0, len(mono), COLUMNS + 1).astype(int)
        peaks = np.array([mono[a:max(b, a + 1)].max() if a < len(mono) else 0.0
                          for a, b in zip(edges[:-1], edges[1:])], "f4")
        peaks /= max(float(peaks.max()), 1e-6)
        self._waveforms[slot] = (len(table), peaks)
        return peaks

    def draw(self, scene: GrainClouds) -> None:
        shown = scene.shown_table()
        peaks = self.waveform(shown)
        x = np.arange(COLUMNS, dtype="f4") / COLUMNS
        middle = LANE_Y + LANE_HEIGHT / 2
        height = np.maximum(peaks * LANE_HEIGHT, 0.002)
        rects = [np.stack([x, middle - height / 2, np.full_like(x, 1.0 / COLUMNS), height], 1)]
        colors = [np.tile(np.array([0.45, 0.45, 0.5, 0.55], "f4"), (COLUMNS, 1))]
        deviation = scene.sent.get("position_deviation", 0.0)
        band = max(2 * deviation, 0.002)
        rects.append(np.array([[scene.position - band / 2, LANE_Y, band, LANE_HEIGHT]], "f4"))
        colors.append(np.array([[1.0, 1.0, 1.0, 0.08]], "f4"))
        view = scene.view
        if len(view):
            ours = view[:, V_TABLE].astype(int) == shown
            level = np.clip(view[:, V_LEVEL], 0.0, 1.0).astype("f4")
            tall = np.where(ours, LANE_HEIGHT, OTHER_HEIGHT) * np.maximum(level, 0.05)
            base = np.where(ours, middle, OTHER_Y + OTHER_HEIGHT / 2)
            gx = view[:, V_POSITION].astype("f4") - GRAIN_WIDTH / 2
            rects.append(np.stack([gx, base - tall / 2, np.full_like(gx, GRAIN_WIDTH), tall], 1)
                         .astype("f4"))
            mix = ((np.clip(view[:, V_PAN], -1, 1) + 1) / 2).astype("f4")[:, None]
            rgb = LEFT * (1 - mix) + RIGHT * mix
            rgb[~ours] = 0.6
            alpha = np.clip(view[:, V_ENVELOPE], 0.0, 1.0).astype("f4")[:, None] * 0.9
            colors.append(np.hstack([rgb, alpha]).astype("f4"))
        data = np.hstack([np.vstack(rects), np.vstack(colors)]).astype("f4")
        gl = self.gl
        self.instances.write(data.tobytes())
        gl.enable(moderngl.BLEND)
        gl.blend_func = moderngl.SRC_ALPHA, moderngl.ONE
        self.program["softness"] = 0.8
        self.vao.render(moderngl.TRIANGLE_STRIP, instances=len(data))
        gl.disable(moderngl.BLEND)
        self._text(scene, shown)

    def _text(self, scene: GrainClouds, shown: int) -> None:
        sent = scene.sent
        width, height = self.context.size
        size = max(14, height // 30)
        pool = self.context.audio.pool
        name = next((n for n, s in pool.names().items() if s == shown), "") if pool is not None else ""
        frozen = "frozen" if scene.context.pedals.sustain_down else f"scan {sent.get('scan', 0):g}/s"
        self.text.draw(f"{name or 'no source'}   position {scene.position:.2f} "
                       f"± {sent.get('position_deviation', 0):.2f}   {frozen}",
                       0.03 * width, 0.04 * height, size, alpha=0.85)
        self.text.draw(f"{sent.get('density', 0):g} grains/s   {1000 * sent.get('duration', 0):.0f} ms "
                       f"± {100 * sent.get('duration_deviation', 0):.0f} %   pitch "
                       f"± {sent.get('pitch_deviation', 0):g} st   pan ± {sent.get('pan_deviation', 0):g}"
                       f"   {len(scene.view)} grains",
                       0.03 * width, 0.04 * height + 1.4 * size, size, alpha=0.85)
