"""What ``ear`` shows: its neurons at their laid-out places, each lit by what it hears now (a colour
per layer, brighter the further above its usual level it fires), the target region ringed in
white, and the scaleogram of the last 4 s scrolling on the right (low notes at the bottom), with
the layers' names and what is being dreamed."""

from __future__ import annotations

import colorsys
from typing import TYPE_CHECKING

import moderngl
import numpy as np

from engine.primitives import Points, Polylines, Text, TexturedRect
from engine.projection import orthographic
from scenes.ear import network

if TYPE_CHECKING:
    from scenes.ear.player import Ear

GRAPH = (0.02, 0.04, 0.62, 0.92)  # x, y, width, height in frame fractions (y up)
SPECTRUM = (0.68, 0.30, 0.30, 0.55)
LIT = 3.0  # normalised activation drawn at full brightness


def _place(panel, xy):
    left, bottom, width, height = panel
    return np.column_stack([left + width * (0.5 + 0.5 * xy[:, 0]), bottom + height * (0.5 + 0.5 * xy[:, 1])])


class Picture:
    def __init__(self, context, scene: Ear) -> None:
        gl = context.gl
        self.gl = gl
        self.size = context.size
        self.points = Points(gl, context.shaders, capacity=2 * len(scene.graph) + 16)
        self.lines = Polylines(gl, context.shaders, context.size)
        self.text = Text(gl, context.shaders, context.size)
        self.rect = TexturedRect(gl, context.shaders, context.size)
        self.mvp = orthographic(0.0, 1.0, 0.0, 1.0)
        hues = np.linspace(0.0, 0.8, len(network.LAYERS))
        self.palette = np.array([colorsys.hsv_to_rgb(h, 0.75, 1.0) for h in hues], "f4")
        self.places = _place(GRAPH, scene.positions).astype("f4")
        self.base = self.palette[scene.graph.layer]
        from matplotlib import colormaps

        self.lut = (colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
        self.texture = gl.texture((network.CLIP_FRAMES, network.BINS), 3, dtype="f1")
        self.texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.shown_listen = -1
        self.region_key = None
        self.region = np.zeros(len(scene.graph), bool)

    def _region(self, scene: Ear) -> np.ndarray:
        target = scene.target()
        key = (target.layer, target.channels, target.bins)
        if key != self.region_key:
            _frames, bins, channels = target.weights(network.CLIP_FRAMES)
            layer = network.LAYERS.index(target.layer)
            graph = scene.graph
            self.region = (graph.layer == layer) & (bins[np.minimum(graph.bin, len(bins) - 1)] > 0) \
                & (channels[np.minimum(graph.channel, len(channels) - 1)] > 0)
            self.region_key = key
        return self.region

    def scaleogram_image(self, spectrum: np.ndarray) -> bytes:
        """The texture's bytes for a (T, 96) scaleogram (silence 0, loud 1): made by the listen
        (0.27 ms), not in a frame."""
        values = np.clip((spectrum + 1.0) / 2.0, 0.0, 1.0)
        image = self.lut[(values * 255).astype(np.uint8)]  # (T, 96, 3)
        return np.ascontiguousarray(image.transpose(1, 0, 2)[::-1]).tobytes()

    def draw(self, scene: Ear) -> None:
        width, height = self.size
        heard = scene.heard
        lit = np.zeros(len(self.places), "f4") if heard is None else np.clip(heard[1] / LIT, 0.0, 1.0)
        level = 0.12 + 0.88 * lit[:, None]
        colors = np.hstack([self.base * level, (0.35 + 0.65 * lit)[:, None]]).astype("f4")
        region = self._region(scene)
        if region.any():
            self.points.draw(self.places[region], (1.0, 1.0, 1.0, 0.9), max(6.0, height / 110), self.mvp)
        self.points.draw(self.places, colors, max(3.0, height / 200), self.mvp)
        image = scene.heard_image
        if image is not None and scene.listens != self.shown_listen:
            self.shown_listen = scene.listens
            self.texture.write(image)
        left, bottom, w, h = SPECTRUM
        self.rect.draw(self.texture, (left * width, (1 - bottom - h) * height, w * width, h * height))
        corners = np.array([[left, bottom], [left + w, bottom], [left + w, bottom + h], [left, bottom + h]])
        self.lines.draw(corners, (0.4, 0.4, 0.45, 0.8), 1.0, self.mvp, closed=True)
        size = max(14, height // 36)
        x = left * width
        self.text.draw("what it hears: the last 4 s, E1 .. D#9", x, (1 - bottom - h) * height - 1.4 * size,
                       size, alpha=0.8)
        for index, name in enumerate(network.LAYERS):
            r, g, b = (self.palette[index] * 255).astype(int)
            self.text.draw(name, x + (index % 3) * 4.6 * size, (1 - bottom) * height + (0.4 + index // 3) * 1.3 * size,
                           size, color=(int(r), int(g), int(b)), alpha=0.9)
        status = scene.status()
        lines = [f"dreaming {status['layer']}  band {status['band'][0]:.2f}-{status['band'][1]:.2f}  "
                 f"step {status['dream_step']}/{scene.params.steps_per_loop}",
                 f"target {status['target']:.2f}  loops {status['loops']}"] if scene.params.dream else ["listening"]
        for row, line in enumerate(lines):
            self.text.draw(line, x, (1 - bottom) * height + (4.5 + 1.3 * row) * size, size, alpha=0.85)
