"""What ``vae_grains`` shows: the latent space (encoded training grains as points in the first two
principal directions, coloured by recording, the point being played and where it was), the decoded
grain beside its nearest training grain, and the loss (reconstruction and KL) as it falls."""

from __future__ import annotations

import colorsys
from typing import TYPE_CHECKING

import numpy as np

from engine.primitives import Points, Polylines, Text
from engine.projection import orthographic

if TYPE_CHECKING:
    from scenes.granolar.player import VaeGrains

LATENT_PANEL = (0.04, 0.08, 0.48, 0.78)  # x, y, width, height in frame fractions (y up)
GRAIN_PANEL = (0.56, 0.52, 0.40, 0.30)
LOSS_PANEL = (0.56, 0.08, 0.40, 0.34)
REACH = 4.0  # standard deviations across half the latent panel
TRAIL = 120  # points played, remembered


def _place(panel, x, y):
    """Panel coordinates 0..1 to frame fractions."""
    left, bottom, width, height = panel
    return np.column_stack([left + width * np.asarray(x), bottom + height * np.asarray(y)])


class Picture:
    def __init__(self, context, sources: int) -> None:
        gl = context.gl
        self.size = context.size
        self.lines = Polylines(gl, context.shaders, context.size)
        self.points = Points(gl, context.shaders)
        self.text = Text(gl, context.shaders, context.size)
        self.mvp = orthographic(0.0, 1.0, 0.0, 1.0)
        hues = np.arange(sources) / max(sources, 1)
        self.palette = np.array([colorsys.hsv_to_rgb(h, 0.6, 1.0) for h in hues], "f4")
        self.trail: list[np.ndarray] = []

    def draw(self, scene: VaeGrains) -> None:
        width, height = self.size
        size = max(14, height // 32)
        grey = (0.5, 0.5, 0.55, 0.6)
        for panel in (LATENT_PANEL, GRAIN_PANEL, LOSS_PANEL):  # frames
            corners = _place(panel, [0, 1, 1, 0], [0, 0, 1, 1])
            self.lines.draw(corners, (0.3, 0.3, 0.35, 0.8), 1.0, self.mvp, closed=True)
        shown = scene.shown
        if shown is not None:
            spread = np.clip(shown.grains_2d / REACH, -1, 1) * 0.5 + 0.5
            colors = np.column_stack([self.palette[scene.pca_sources % len(self.palette)],
                                      np.full(len(spread), 0.7, "f4")])
            self.points.draw(_place(LATENT_PANEL, spread[:, 0], spread[:, 1]), colors,
                             max(3.0, height / 180), self.mvp)
            here = np.clip(shown.point_2d / REACH, -1, 1) * 0.5 + 0.5
            if not self.trail or not np.array_equal(self.trail[-1], here):
                self.trail.append(here)
                del self.trail[:-TRAIL]
            if len(self.trail) > 1:
                trail = np.array(self.trail)
                self.lines.draw(_place(LATENT_PANEL, trail[:, 0], trail[:, 1]), (1, 1, 1, 0.35), 2.0,
                                self.mvp)
            self.points.draw(_place(LATENT_PANEL, [here[0]], [here[1]]), (1, 1, 1, 1), height / 40,
                             self.mvp)
            x = np.linspace(0.0, 1.0, len(shown.grain))
            for grain, color in ((shown.nearest, grey), (shown.grain, (1.0, 0.7, 0.3, 0.95))):
                self.lines.draw(_place(GRAIN_PANEL, x, 0.5 + 0.5 * np.clip(grain, -1, 1)), color, 1.5,
                                self.mvp)
        losses = np.array(scene.losses[1:], np.float64)  # the first is before any step
        if len(losses) > 1:
            steps = (losses[:, 0] - losses[0, 0]) / max(losses[-1, 0] - losses[0, 0], 1)
            for column, color in ((1, (0.4, 0.7, 1.0, 0.95)), (2, (1.0, 0.45, 0.7, 0.95))):
                values = np.log10(np.maximum(losses[:, column], 1e-6))
                low, high = values.min(), values.max()
                y = (values - low) / max(high - low, 1e-6)
                self.lines.draw(_place(LOSS_PANEL, steps, 0.05 + 0.9 * y), color, 2.0, self.mvp)
        status = scene.status()
        top = lambda panel: (1 - panel[1] - panel[3]) * height - 1.3 * size  # noqa: E731
        self.text.draw("latent space: the first two principal directions", LATENT_PANEL[0] * width,
                       top(LATENT_PANEL), size, alpha=0.8)
        self.text.draw("decoded grain (amber), nearest training grain (grey)", GRAIN_PANEL[0] * width,
                       top(GRAIN_PANEL), size, alpha=0.8)
        self.text.draw(f"step {status['steps']}  error {status['reconstruction']:.1f} (blue)  "
                       f"KL {status['kl']:.1f} (pink)  held-out {status['held_out_error']:.2f}",
                       LOSS_PANEL[0] * width, top(LOSS_PANEL), size, alpha=0.8)
