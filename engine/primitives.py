"""Drawing primitives the pieces need, on moderngl: thick anti-aliased polylines (2D or 3D, colour
and alpha per vertex), round points, textured rectangles and text.

Coordinates go through a 4x4 ``mvp`` matrix (column vectors, numpy row-major; see
:mod:`engine.projection` for ``orthographic`` and the orbit camera). Line widths and point sizes
are in show pixels whatever the projection. Everything blends with straight alpha over what is
already in the framebuffer.
"""

from __future__ import annotations

import moderngl
import numpy as np

from engine.shaders import ShaderLibrary

_UNIT = np.array([0, -1, 1, -1, 0, 1, 1, 1], dtype="f4")  # segment quad corners (along, side)
_RECT = np.array([0, 0, 1, 0, 0, 1, 1, 1], dtype="f4")


def _colors(colors, count: int) -> np.ndarray:
    colors = np.asarray(colors, "f4")
    if colors.ndim == 1:
        colors = np.broadcast_to(colors, (count, colors.shape[0]))
    if colors.shape[1] == 3:
        colors = np.column_stack([colors, np.ones(count, "f4")])
    return colors


def _points3(points) -> np.ndarray:
    points = np.asarray(points, "f4")
    if points.shape[1] == 2:
        points = np.column_stack([points, np.zeros(len(points), "f4")])
    return points


class Polylines:
    """Thick anti-aliased polylines: one instanced quad per segment, a capsule per segment.

    ``capacity`` is the most points per draw call (grown when needed)."""

    # engine.snapshot: the restoring show's own (GL objects, and a capacity that grows with them
    # as the show draws: a drawing show's saved state would bring the number without the buffer).
    snapshot_by_reference = True

    def __init__(self, gl: moderngl.Context, shaders: ShaderLibrary, frame_size: tuple[int, int],
                 capacity: int = 4096) -> None:
        self.gl = gl
        self.frame_size = frame_size
        self.program = shaders.program("polyline")
        self._corners = gl.buffer(_UNIT.tobytes())
        self._capacity = 0
        self._reserve(capacity)

    def _reserve(self, segments: int) -> None:
        if segments <= self._capacity:
            return
        self._capacity = max(segments, 2 * self._capacity)
        self._segments = self.gl.buffer(reserve=self._capacity * 14 * 4, dynamic=True)
        self.vao = self.program.vertex_array([
            (self._corners, "2f", "in_corner"),
            (self._segments, "3f 4f 3f 4f/i", "in_p0", "in_c0", "in_p1", "in_c1"),
        ])

    def draw(self, points, colors, width: float, mvp: np.ndarray, closed: bool = False) -> None:
        """Draw the line through ``points`` (N, 2 or 3) with ``colors`` (N, 3 or 4, or one colour)."""
        points = _points3(points)
        if len(points) < 2:
            return
        colors = _colors(colors, len(points))
        if closed:
            points, colors = np.vstack([points, points[:1]]), np.vstack([colors, colors[:1]])
        vertices = np.hstack([points, colors])
        self._draw(np.hstack([vertices[:-1], vertices[1:]]), width, mvp)

    def draw_segments(self, starts, ends, colors, width: float, mvp: np.ndarray) -> None:
        """Separate segments from ``starts[i]`` to ``ends[i]`` (N, 2 or 3), one colour each or one for all."""
        starts, ends = _points3(starts), _points3(ends)
        if len(starts) == 0:
            return
        colors = _colors(colors, len(starts))
        self._draw(np.hstack([starts, colors, ends, colors]), width, mvp)

    def _draw(self, segments: np.ndarray, width: float, mvp: np.ndarray) -> None:
        segments = np.ascontiguousarray(segments, "f4")
        self._reserve(len(segments))
        self._segments.write(segments.tobytes())
        p = self.program
        p["mvp"] = tuple(np.asarray(mvp, "f4").T.ravel())
        p["frame_size"] = self.frame_size
        p["half_width"] = float(width) / 2
        self.gl.enable(moderngl.BLEND)
        self.gl.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        self.vao.render(moderngl.TRIANGLE_STRIP, instances=len(segments))
        self.gl.disable(moderngl.BLEND)


class FadingCurves:
    """Earlier curves, frozen: drawn grey, slowly turning and fading (the original: alpha x 0.999 per
    frame) until they are too faint to see, then dropped. ``freeze`` a curve when a new one replaces it.

    ``spin`` is degrees per tick about the origin of the curve's coordinates (0: still)."""

    def __init__(self, decay: float = 0.999, color=(0.6, 0.6, 0.6), floor: float = 0.02,
                 limit: int = 64, spin: float = 0.0) -> None:
        self.decay, self.color, self.floor, self.limit, self.spin = decay, color, floor, limit, spin
        self.curves: list[np.ndarray] = []
        self.alphas: list[float] = []
        self.ages: list[int] = []

    def freeze(self, points, alpha: float = 1.0) -> None:
        self.curves.append(np.array(points, "f4"))
        self.alphas.append(alpha)
        self.ages.append(0)
        if len(self.curves) > self.limit:  # the oldest gives way
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        self.curves.pop(0), self.alphas.pop(0), self.ages.pop(0)

    def tick(self) -> None:
        self.alphas = [alpha * self.decay for alpha in self.alphas]
        self.ages = [age + 1 for age in self.ages]
        while self.alphas and self.alphas[0] < self.floor:
            self._drop_oldest()

    def clear(self) -> None:
        self.curves.clear(), self.alphas.clear(), self.ages.clear()

    def draw(self, lines: Polylines, width: float, mvp: np.ndarray) -> None:
        """All the frozen curves in one draw call (a show may keep dozens)."""
        if not self.curves:
            return
        segments = []
        for points, alpha, age in zip(self.curves, self.alphas, self.ages):
            points = _points3(points)
            if self.spin:
                angle = np.radians(self.spin * age)
                cos, sin = np.cos(angle), np.sin(angle)
                points = points.copy()
                points[:, 0], points[:, 1] = (cos * points[:, 0] - sin * points[:, 1],
                                              sin * points[:, 0] + cos * points[:, 1])
            color = np.broadcast_to(np.array([*self.color, alpha], "f4"), (len(points) - 1, 4))
            segments.append(np.hstack([points[:-1], color, points[1:], color]))
        lines._draw(np.vstack(segments), width, mvp)


class Points:
    """Round anti-aliased points of a size in pixels."""

    # engine.snapshot: the restoring show's own (GL objects, and a capacity that grows with them
    # as the show draws: a drawing show's saved state would bring the number without the buffer).
    snapshot_by_reference = True

    def __init__(self, gl: moderngl.Context, shaders: ShaderLibrary, capacity: int = 4096) -> None:
        self.gl = gl
        self.program = shaders.program("points")
        self._capacity = 0
        self._reserve(capacity)

    def _reserve(self, count: int) -> None:
        if count <= self._capacity:
            return
        self._capacity = max(count, 2 * self._capacity)
        self._buffer = self.gl.buffer(reserve=self._capacity * 7 * 4, dynamic=True)
        self.vao = self.program.vertex_array([(self._buffer, "3f 4f", "in_position", "in_color")])

    def draw(self, points, colors, size: float, mvp: np.ndarray) -> None:
        points = _points3(points)
        if len(points) == 0:
            return
        data = np.ascontiguousarray(np.hstack([points, _colors(colors, len(points))]), "f4")
        self._reserve(len(data))
        self._buffer.write(data.tobytes())
        self.program["mvp"] = tuple(np.asarray(mvp, "f4").T.ravel())
        self.program["point_size"] = float(size)
        self.gl.enable(moderngl.BLEND | moderngl.PROGRAM_POINT_SIZE)
        self.gl.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        self.vao.render(moderngl.POINTS, vertices=len(data))
        self.gl.disable(moderngl.BLEND | moderngl.PROGRAM_POINT_SIZE)


class TexturedRect:
    """A texture drawn into a rectangle of the frame (show pixels, origin top-left), tinted."""

    # engine.snapshot: the restoring show's own (GL objects only).
    snapshot_by_reference = True

    def __init__(self, gl: moderngl.Context, shaders: ShaderLibrary, frame_size: tuple[int, int]) -> None:
        self.gl = gl
        self.frame_size = frame_size
        self.program = shaders.program("textured")
        self.vao = self.program.vertex_array([(gl.buffer(_RECT.tobytes()), "2f", "in_pos")])

    def draw(self, texture: moderngl.Texture, rect: tuple[float, float, float, float] | None = None,
             tint: tuple[float, float, float, float] = (1, 1, 1, 1)) -> None:
        """Draw ``texture`` into ``rect`` (x, y, width, height); the whole frame when None."""
        p = self.program
        p["frame_size"] = self.frame_size
        p["rect"] = rect if rect is not None else (0.0, 0.0, *map(float, self.frame_size))
        p["tint"] = tuple(map(float, tint))
        p["image"] = 0
        texture.use(0)
        self.gl.enable(moderngl.BLEND)
        self.gl.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        self.vao.render(moderngl.TRIANGLE_STRIP)
        self.gl.disable(moderngl.BLEND)


class Text:
    """Text rendered with pygame.font into textures, cached per (text, size, colour)."""

    # engine.snapshot: the restoring show's own (its caches fill again as it draws); a show that
    # has drawn holds fonts and textures loading does not make (a live show's saved state).
    snapshot_by_reference = True

    def __init__(self, gl: moderngl.Context, shaders: ShaderLibrary, frame_size: tuple[int, int],
                 cache_size: int = 256) -> None:
        import os

        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame.font
        import pygame.image

        pygame.font.init()
        self._pygame_font, self._pygame_image = pygame.font, pygame.image
        self.gl = gl
        self.rect = TexturedRect(gl, shaders, frame_size)
        self._fonts: dict[int, object] = {}
        self._cache: dict[tuple, moderngl.Texture] = {}
        self.cache_size = cache_size

    def texture(self, text: str, size: int = 24, color=(255, 255, 255)) -> moderngl.Texture:
        key = (text, size, tuple(color))
        texture = self._cache.get(key)
        if texture is None:
            font = self._fonts.get(size)
            if font is None:
                font = self._fonts[size] = self._pygame_font.Font(None, size)
            surface = font.render(text, True, tuple(color))
            rgba = self._pygame_image.tobytes(surface, "RGBA")
            texture = self.gl.texture(surface.get_size(), 4, rgba)
            if len(self._cache) >= self.cache_size:  # drop the oldest entry
                self._cache.pop(next(iter(self._cache))).release()
            self._cache[key] = texture
        return texture

    def draw(self, text: str, x: float, y: float, size: int = 24, color=(255, 255, 255), alpha: float = 1.0) -> None:
        """Draw ``text`` with its top-left corner at (x, y) show pixels."""
        if not text:
            return
        texture = self.texture(text, size, color)
        self.rect.draw(texture, (x, y, *texture.size), tint=(1, 1, 1, alpha))
