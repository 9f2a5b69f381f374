"""Golden images: every primitive and both distortions drawn at fixed inputs on Mesa llvmpipe,
compared with the PNGs in tests/data/golden with a tolerance (another GL driver rasterises edges a
little differently). ``SHOWRUNNER_UPDATE_GOLDEN=1`` rewrites them (look at them before committing)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import moderngl
import numpy as np
import pytest

from engine.video_in import FileFrames
from scenes.ldd.distortions import BubbleLens, RGBSplit
from engine.projection import OrbitCamera, orthographic
from engine.primitives import FadingCurves, Points, Polylines, Text, TexturedRect
from engine.shaders import ShaderLibrary

SIZE = (320, 180)
GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden"
UPDATE = os.environ.get("SHOWRUNNER_UPDATE_GOLDEN") == "1"


def video_frame(shared_data) -> np.ndarray:
    frames = FileFrames(shared_data / "video" / "intel_asl_book.mkv")
    frames.seek(1.0)
    pixels = frames.latest().pixels
    frames.stop()
    return pixels


def video_texture(gl, pixels):
    texture = gl.texture((pixels.shape[1], pixels.shape[0]), 3, np.ascontiguousarray(pixels).data)
    texture.filter = moderngl.LINEAR, moderngl.LINEAR
    return texture


def draw_curves(gl, library, shared_data):
    lines, points = Polylines(gl, library, SIZE), Points(gl, library)
    mvp = orthographic(-1.1, 1.1, -1.3, 1.3)
    x = np.linspace(-1, 1, 400)
    trail = FadingCurves()
    trail.freeze(np.column_stack([x, 0.3 * x ** 3 - 0.5 * x]), alpha=0.5)
    trail.draw(lines, 2, mvp)
    lines.draw(np.column_stack([x, 0.8 * x ** 3 - 0.2 * x ** 2 + 0.1]), (1, 1, 1, 1), 3, mvp)
    learned = np.column_stack([x, 0.5 * x ** 3 + 0.3 * x ** 2 - 0.4 * x])
    lines.draw(learned, np.column_stack([np.ones(400), 0.2 * np.ones(400), 0.2 * np.ones(400),
                                         np.linspace(0.3, 1, 400)]), 3, mvp)
    samples = np.linspace(-0.95, 0.95, 12)
    points.draw(np.column_stack([samples, 0.8 * samples ** 3 - 0.2 * samples ** 2 + 0.1]), (1, 1, 1, 1), 6, mvp)


def draw_knot(gl, library, shared_data):
    t = np.linspace(0, 2 * np.pi, 1000, endpoint=False)
    lines = Polylines(gl, library, SIZE)
    mvp = OrbitCamera(aspect=SIZE[0] / SIZE[1]).mvp(2.0)
    lines.draw(np.column_stack([np.cos(3 * t + 0.1), np.cos(2 * t + 0.6), np.cos(5 * t + 0.3)]),
               (1, 1, 1, 1), 2, mvp, closed=True)
    lines.draw(np.column_stack([np.cos(3 * t + 0.5), np.cos(2 * t + 0.9), np.cos(5 * t + 0.2)]),
               (1, 0.2, 0.2, 0.9), 2, mvp, closed=True)


def draw_text_and_image(gl, library, shared_data):
    TexturedRect(gl, library, SIZE).draw(video_texture(gl, video_frame(shared_data)), (170, 20, 128, 96),
                                         tint=(1, 1, 1, 0.8))
    text = Text(gl, library, SIZE)
    text.draw("cue 2 / 4  knot", 10, 10, size=24)
    text.draw("loss 0.0123", 10, 40, size=18, color=(255, 80, 80))


def draw_rgb_split(gl, library, shared_data):
    RGBSplit(gl, library, SIZE).draw(video_texture(gl, video_frame(shared_data)), np.array([0.05, -0.03, 0.02]))


def draw_bubbles(gl, library, shared_data):
    texture = video_texture(gl, video_frame(shared_data))
    RGBSplit(gl, library, SIZE).draw(texture, np.zeros(3))
    lens = BubbleLens(gl, library, SIZE, seed=4)
    for _ in range(5):
        lens.spawn()
    for _ in range(30):
        lens.tick()
    lens.spawn(160, 90)
    lens.draw(texture, np.array([0.05, 0.08]), time=1.5)


CASES = {"curves": draw_curves, "knot": draw_knot, "text_and_image": draw_text_and_image,
         "rgb_split": draw_rgb_split, "bubbles": draw_bubbles}


@pytest.mark.parametrize("name", list(CASES))
def test_frame_matches_its_golden_image(gl, shared_data, name):
    fbo = gl.simple_framebuffer(SIZE)
    fbo.use()
    fbo.clear(0, 0, 0, 1)
    CASES[name](gl, ShaderLibrary(gl), shared_data)
    frame = np.frombuffer(fbo.read(components=3, alignment=1), np.uint8).reshape(SIZE[1], SIZE[0], 3)[::-1]
    path = GOLDEN / f"{name}.png"
    if UPDATE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    golden = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert golden is not None, f"golden image missing: {path} (SHOWRUNNER_UPDATE_GOLDEN=1 writes it)"
    golden = cv2.cvtColor(golden, cv2.COLOR_BGR2RGB)
    difference = np.abs(frame.astype(int) - golden.astype(int))
    assert frame.max() > 0, "nothing was drawn"
    assert difference.mean() < 1.5
    assert (difference.max(axis=2) > 24).mean() < 0.005
