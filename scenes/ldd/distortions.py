"""The two visual distortions driven by a learner's gradients, over a video texture.

- :class:`RGBSplit` (Distortion 1): R, G and B of the video each translated by an offset
  proportional to one gradient component (the same offset in x and y, as the original); with zero
  gradients the image is exactly the plain video. It is also the plain video background.
- :class:`BubbleLens` (Distortion 2): bubbles over the video (one per note played), each showing the
  video read at coordinates displaced by a function of two gradient components and time; they
  spawn, shrink, fade and vanish.

Both draw into the bound framebuffer at show resolution; sizes are in show pixels, and the
original's pixel figures (made at 720 lines) are scaled by show height / 720.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import moderngl
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from engine.shaders import ShaderLibrary

REFERENCE_LINES = 720.0
_QUAD = np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4")


def video_rect(video_size: tuple[int, int], frame_size: tuple[int, int], fit: str) -> tuple[float, ...]:
    """(x, y, width, height) in show pixels where the video image lies: ``cover`` fills the frame
    (cropping), ``fit`` shows it whole (letterboxed), both keeping its aspect ratio."""
    (vw, vh), (fw, fh) = video_size, frame_size
    scale = (max if fit == "cover" else min)(fw / vw, fh / vh)
    width, height = vw * scale, vh * scale
    return ((fw - width) / 2, (fh - height) / 2, width, height)


def gradient_components(grad, count: int) -> np.ndarray:
    """The first ``count`` components of ``grad`` (missing ones 0; NaN and Inf count as 0)."""
    g = np.zeros(count)
    values = np.nan_to_num(np.asarray(grad, float)[:count], nan=0.0, posinf=0.0, neginf=0.0)
    g[:len(values)] = values
    return g


def _bind_video(program, video: moderngl.Texture, frame_size: tuple[int, int], fit: str, level: float) -> None:
    """The uniforms of shaders/video.glsl, and the video on texture unit 0."""
    program["frame_size"] = frame_size
    program["video_rect"] = video_rect(video.size, frame_size, fit)
    program["level"] = float(level)
    program["video"] = 0
    video.use(0)


class SplitSettings(BaseModel):
    """Distortion 1's settings (a scene embeds these in its params)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    scale: float = Field(100.0, ge=0, description="show pixels (at 720 lines) per unit of gradient")
    max_offset: float = Field(200.0, ge=0, description="the offset is clamped to +-this (pixels at 720 lines)")
    flicker: bool = Field(False, description="the original: split only with a probability that grows "
                                             "with the loss, otherwise the plain image")
    flicker_gain: float = Field(1.0, ge=0, description="flicker: probability = min(1, gain x loss) per frame")
    fit: Literal["cover", "fit"] = "cover"


class RGBSplit:
    """Distortion 1 over a video texture. ``offsets(grad)`` gives the per-channel offsets in pixels."""

    def __init__(self, gl: moderngl.Context, shaders: ShaderLibrary, frame_size: tuple[int, int],
                 settings: SplitSettings | None = None, seed: int = 0) -> None:
        self.gl = gl
        self.frame_size = frame_size
        self.settings = settings or SplitSettings()
        self.program = shaders.program("rgb_split")
        self.vao = self.program.vertex_array([(gl.buffer(_QUAD.tobytes()), "2f", "in_pos")])
        self._rng = np.random.default_rng(seed)
        self.split_shown = True

    def offsets(self, grad: np.ndarray) -> np.ndarray:
        """(3, 2) pixel offsets for R, G, B from the first three gradient components (missing = 0)."""
        s = self.settings
        scale = self.frame_size[1] / REFERENCE_LINES
        g = gradient_components(grad, 3)
        offset = np.clip(g * s.scale * scale, -s.max_offset * scale, s.max_offset * scale)
        return np.repeat(offset[:, None], 2, axis=1)

    def draw(self, video: moderngl.Texture, grad: np.ndarray, loss: float = 0.0, level: float = 1.0) -> None:
        """Draw the video with its channels split by ``grad`` (flicker: maybe not, by ``loss``)."""
        offsets = self.offsets(grad)
        if self.settings.flicker:
            chance = min(1.0, self.settings.flicker_gain * max(0.0, float(np.nan_to_num(loss))))
            self.split_shown = bool(self._rng.random() < chance)
            if not self.split_shown:
                offsets = np.zeros((3, 2))
        _bind_video(self.program, video, self.frame_size, self.settings.fit, level)
        for name, offset in zip(("offset_r", "offset_g", "offset_b"), offsets):
            self.program[name] = tuple(float(v) for v in offset)
        self.vao.render(moderngl.TRIANGLE_STRIP)


class BubbleSettings(BaseModel):
    """Distortion 2's settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    formula: Literal["original", "paper"] = "original"
    amplitude: float = Field(100.0, ge=0, description="displacement in pixels at 720 lines")
    radius: float = Field(90.0, gt=0, description="a new bubble's radius, pixels at 720 lines "
                                                  "(the original: video height / 8)")
    shrink: float = Field(0.2, ge=0, description="radius lost per tick, pixels at 720 lines")
    fade: float = Field(0.2 / 255, ge=0, description="opacity lost per tick (the original: 0.2 of 255)")
    capacity: int = Field(256, ge=1, le=4096, description="bubbles at once; the oldest gives way")
    fit: Literal["cover", "fit"] = "cover"


@dataclass
class Bubbles:
    """Bubble state in fixed arrays: centre (x, y), radius (show pixels) and alpha; alive if radius > 0."""

    x: np.ndarray
    y: np.ndarray
    radius: np.ndarray
    alpha: np.ndarray

    @classmethod
    def empty(cls, capacity: int) -> Bubbles:
        return cls(*(np.zeros(capacity, "f4") for _ in range(4)))

    @property
    def alive(self) -> np.ndarray:
        return (self.radius > 0) & (self.alpha > 0)


class BubbleLens:
    """Distortion 2: bubbles spawned per note, shrinking and fading each tick, drawn over the video."""

    def __init__(self, gl: moderngl.Context, shaders: ShaderLibrary, frame_size: tuple[int, int],
                 settings: BubbleSettings | None = None, seed: int = 0) -> None:
        self.gl = gl
        self.frame_size = frame_size
        self.settings = settings or BubbleSettings()
        self.scale = frame_size[1] / REFERENCE_LINES
        self.bubbles = Bubbles.empty(self.settings.capacity)
        self._rng = np.random.default_rng(seed)
        self._next = 0
        self.program = shaders.program("bubble")
        corners = np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4")
        self._instances = gl.buffer(reserve=self.settings.capacity * 4 * 4, dynamic=True)
        self.vao = self.program.vertex_array([
            (gl.buffer(corners.tobytes()), "2f", "in_corner"),
            (self._instances, "3f 1f/i", "in_bubble", "in_alpha"),
        ])

    def reset(self, seed: int | None = None) -> None:
        self.bubbles = Bubbles.empty(self.settings.capacity)
        self._next = 0
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def spawn(self, x: float | None = None, y: float | None = None) -> None:
        """A new bubble at (x, y) show pixels, or at a random place (the original's way)."""
        width, height = self.frame_size
        b, i = self.bubbles, self._next
        b.x[i] = self._rng.uniform(0, width) if x is None else x
        b.y[i] = self._rng.uniform(0, height) if y is None else y
        b.radius[i] = self.settings.radius * self.scale
        b.alpha[i] = 1.0
        self._next = (i + 1) % self.settings.capacity

    def tick(self) -> None:
        """One tick: every bubble shrinks and fades; those at 0 are gone."""
        b = self.bubbles
        b.radius -= self.settings.shrink * self.scale
        b.alpha -= self.settings.fade
        dead = ~b.alive
        b.radius[dead] = 0
        b.alpha[dead] = 0

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self.bubbles.alive))

    def draw(self, video: moderngl.Texture, grad: np.ndarray, time: float, level: float = 1.0) -> None:
        """Draw the living bubbles, displaced by the first two components of ``grad`` at ``time`` (s)."""
        b = self.bubbles
        alive = np.flatnonzero(b.alive)
        if alive.size == 0:
            return
        data = np.column_stack([b.x[alive], b.y[alive], b.radius[alive], b.alpha[alive]]).astype("f4")
        self._instances.write(data.tobytes())
        p = self.program
        _bind_video(p, video, self.frame_size, self.settings.fit, level)
        p["gradient"] = tuple(gradient_components(grad, 2))
        p["time"] = float(time)
        p["amplitude"] = self.settings.amplitude * self.scale
        p["scale"] = self.scale
        p["formula"] = 0 if self.settings.formula == "original" else 1
        self.gl.enable(moderngl.BLEND)
        self.gl.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        self.vao.render(moderngl.TRIANGLE_STRIP, instances=len(alive))
        self.gl.disable(moderngl.BLEND)
