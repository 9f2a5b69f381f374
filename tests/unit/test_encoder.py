"""The picture conversion the recordings use: RGB(A) to yuv420p, BT.601 at limited range."""

import numpy as np
import pytest

from engine.encoder import _plane, yuv420


def _planes(frame) -> list[np.ndarray]:
    return [_plane(frame, index).astype(float) for index in range(3)]


def _expected(rgb: np.ndarray) -> list[np.ndarray]:
    """BT.601 at limited range from the textbook formulas; chroma from each 2x2 block's mean."""
    r, g, b = (rgb[..., index].astype(float) for index in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b

    def block_mean(plane):
        return plane.reshape(plane.shape[0] // 2, 2, plane.shape[1] // 2, 2).mean(axis=(1, 3))

    return [y, block_mean(u), block_mean(v)]


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("bottom_up", [False, True])
def test_yuv420_matches_bt601_limited_range_upright(channels, bottom_up):
    """A picture 34 rows high (its chroma planes have an odd number of rows) with a gradient, a
    different colour in each corner and one-pixel stripes converts within 2 levels of the
    formulas, the right way up, U and V in their places, each 2x2 block's colour its average
    (not one of its pixels: a thin line's colour would come and go as it moves)."""
    height, width = 34, 48
    rows, cols = np.mgrid[0:height, 0:width]
    rgb = np.stack([cols * 255 // (width - 1), rows * 255 // (height - 1),
                    (rows + cols) * 255 // (height + width - 2)], axis=-1).astype(np.uint8)
    rgb[:8, :8] = (255, 0, 0)
    rgb[:8, -8:] = (0, 255, 0)
    rgb[-8:, :8] = (0, 0, 255)
    rgb[-8:, -8:] = (255, 128, 0)
    rgb[12:22:2, 10:20] = (255, 0, 0)  # one-pixel stripes, red and blue: their 2x2 blocks are purple
    rgb[13:22:2, 10:20] = (0, 0, 255)
    rgb[12:22, 26:36:2] = (0, 255, 0)
    rgb[12:22, 27:36:2] = (255, 0, 255)
    picture = rgb if channels == 3 else np.concatenate([rgb, np.full((height, width, 1), 255, np.uint8)], -1)
    given = np.ascontiguousarray(picture[::-1]) if bottom_up else picture
    frame = yuv420(given, bottom_up=bottom_up)
    assert (frame.width, frame.height, frame.format.name) == (width, height, "yuv420p")
    for name, got, want in zip("YUV", _planes(frame), _expected(rgb)):
        assert np.abs(got - want).max() <= 2, name
