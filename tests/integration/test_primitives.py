"""Drawing primitives on real OpenGL (Mesa EGL / llvmpipe), checked against what the geometry says."""

from __future__ import annotations

import moderngl
import numpy as np
import pytest

from engine.projection import OrbitCamera, orthographic
from engine.primitives import Points, Polylines, Text, TexturedRect
from engine.shaders import ShaderLibrary

SIZE = (320, 240)
PIXELS = orthographic(0, SIZE[0], SIZE[1], 0)  # show pixels, origin top-left


@pytest.fixture
def canvas(gl):
    fbo = gl.simple_framebuffer(SIZE)
    fbo.use()
    fbo.clear(0, 0, 0, 1)

    def read() -> np.ndarray:
        data = np.frombuffer(fbo.read(components=3, alignment=1), np.uint8)
        return data.reshape(SIZE[1], SIZE[0], 3)[::-1]

    return read


def test_a_thick_line_covers_its_width_with_anti_aliased_edges(gl, canvas):
    lines = Polylines(gl, ShaderLibrary(gl), SIZE)
    lines.draw([[40, 100.25], [280, 100.25]], (1, 1, 1, 1), width=6, mvp=PIXELS)
    image = canvas()
    column = image[:, 160, 0].astype(int)
    # Coverage of a pixel row = clamp(half width + 0.5 - distance of its centre, 0, 1): rows 98..102
    # are within 2.5 px (full), row 97's centre is 2.75 px away (0.75), row 103's 3.25 px (0.25).
    assert np.all(column[98:103] == 255)
    assert abs(column[97] - 0.75 * 255) <= 3 and abs(column[103] - 0.25 * 255) <= 3
    assert column[96] == 0 and column[104] == 0
    assert image[100, 20].tolist() == [0, 0, 0] and image[100, 300].tolist() == [0, 0, 0]
    assert image[100, 40:281, 0].min() > 0  # no gap anywhere along it


def test_colours_and_alpha_follow_the_vertices(gl, canvas):
    lines = Polylines(gl, ShaderLibrary(gl), SIZE)
    lines.draw([[20, 50], [300, 50]], [[1, 0, 0, 1], [0, 0, 1, 1]], width=8, mvp=PIXELS)
    lines.draw([[20, 150], [300, 150]], (0, 1, 0, 0.5), width=8, mvp=PIXELS)
    image = canvas().astype(int)
    left, middle, right = image[50, 30], image[50, 160], image[50, 290]
    assert left[0] > 240 and left[2] < 20 and right[2] > 240 and right[0] < 20
    assert abs(middle[0] - middle[2]) < 10
    assert abs(image[150, 160, 1] - 128) <= 2  # half alpha over black


def test_a_thousand_point_3d_knot_under_the_orbit_camera_stays_in_frame_and_moves(gl, canvas):
    t = np.linspace(0, 2 * np.pi, 1000)
    knot = np.column_stack([np.cos(3 * t + 0.2), np.cos(2 * t + 0.7), np.cos(5 * t + 0.3)])
    camera = OrbitCamera(aspect=SIZE[0] / SIZE[1])
    lines = Polylines(gl, ShaderLibrary(gl), SIZE)
    lines.draw(knot, (1, 1, 1, 1), width=2, mvp=camera.mvp(0.0))
    first = canvas()
    lit = first[:, :, 0] > 0
    assert 0.03 < lit.mean() < 0.6
    assert not lit[0].any() and not lit[-1].any() and not lit[:, 0].any() and not lit[:, -1].any()
    gl.clear(0, 0, 0, 1)
    lines.draw(knot, (1, 1, 1, 1), width=2, mvp=camera.mvp(10.0))  # 60 degrees further round
    assert (canvas()[:, :, 0] > 0).tolist() != lit.tolist()


def test_points_are_round_and_sized_in_pixels(gl, canvas):
    points = Points(gl, ShaderLibrary(gl))
    points.draw([[100, 100], [200, 120]], (1, 1, 0, 1), size=10, mvp=PIXELS)
    image = canvas()
    lit = np.argwhere(image[:, :, 0] > 128)
    near_first = lit[np.abs(lit[:, 1] - 100) < 10]
    height = near_first[:, 0].max() - near_first[:, 0].min() + 1
    assert 9 <= height <= 11
    assert image[100 - 5, 100 - 5, 0] < 128  # the corner of the square is cut: round


def test_a_textured_rectangle_lands_where_asked_top_row_first(gl, canvas):
    image = np.zeros((2, 2, 4), np.uint8)
    image[0, :] = (255, 0, 0, 255)  # top row red
    image[1, :] = (0, 0, 255, 255)  # bottom row blue
    texture = gl.texture((2, 2), 4, image.tobytes())
    texture.filter = moderngl.NEAREST, moderngl.NEAREST
    TexturedRect(gl, ShaderLibrary(gl), SIZE).draw(texture, (100, 50, 40, 40))
    out = canvas()
    assert out[55, 120].tolist() == [255, 0, 0]
    assert out[85, 120].tolist() == [0, 0, 255]
    assert out[45, 120].tolist() == [0, 0, 0] and out[95, 120].tolist() == [0, 0, 0]


def test_text_is_drawn_from_a_cached_texture(gl, canvas):
    text = Text(gl, ShaderLibrary(gl), SIZE)
    text.draw("cue 2 / 4", 10, 10, size=24)
    first = text.texture("cue 2 / 4", 24)
    text.draw("cue 2 / 4", 10, 40, size=24)
    assert text.texture("cue 2 / 4", 24) is first
    out = canvas()
    assert out[10:34, 10:120].max() > 200 and out[40:64, 10:120].max() > 200
    assert out[150:, :].max() == 0


def test_frozen_curves_grey_out_fade_and_go(gl, canvas):
    from engine.primitives import FadingCurves

    trail = FadingCurves(decay=0.9, floor=0.05)
    trail.freeze([[20, 60], [300, 60]])
    trail.tick()
    trail.freeze([[20, 120], [300, 120]])
    trail.draw(Polylines(gl, ShaderLibrary(gl), SIZE), width=6, mvp=PIXELS)
    image = canvas().astype(int)
    older, newer = image[60, 160], image[120, 160]
    assert older[0] == older[1] == older[2] and newer[0] == newer[1] == newer[2]  # grey
    assert abs(older[0] - 0.6 * 0.9 * 255) <= 2 and abs(newer[0] - 0.6 * 255) <= 2
    for _ in range(40):
        trail.tick()
    assert len(trail.curves) == 0  # 0.9 ** 41 is under the floor: gone
