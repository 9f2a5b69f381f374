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


def _decoded_sound(path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_sound_alone_copied_beside_pictures_is_the_sound_encoded_with_them(suffix, tmp_path):
    """The render farm encodes the sound into a file of its own and copies its packets into the
    output beside the pictures: the result decodes to exactly the sound of a file that encoded both
    (the AAC encoder's priming handled as the container needs: Matroska marks it, MP4 leaves it out)."""
    import av

    from engine.encoder import MediaWriter

    rate, fps, size = 48000, 30, (32, 18)
    sound = (0.3 * np.sin(np.arange(rate * 2) * 2 * np.pi * 441 / rate)).astype(np.float32)
    sound = np.stack([sound, -sound], axis=1)
    picture = np.zeros((size[1], size[0], 3), np.uint8)
    both = MediaWriter(tmp_path / f"both{suffix}", size, fps, rate)
    alone = MediaWriter(tmp_path / f"alone{suffix}", None, fps, rate)
    pictures = MediaWriter(tmp_path / f"pictures{suffix}", size, fps, None)
    for frame in range(2 * fps):
        both.video(picture, frame)
        pictures.video(picture, frame)
    for start in range(0, len(sound), 256):
        both.audio(sound[start:start + 256])
        alone.audio(sound[start:start + 256])
    for writer in (both, alone, pictures):
        writer.close()
    with av.open(str(tmp_path / f"alone{suffix}")) as alone_in, av.open(str(tmp_path / f"pictures{suffix}")) as pictures_in:
        assert not alone_in.streams.video
        joined = MediaWriter(tmp_path / f"joined{suffix}", size, fps, None, video_template=pictures_in.streams.video[0],
                             audio_template=alone_in.streams.audio[0])
        for packet in alone_in.demux(alone_in.streams.audio[0]):
            if packet.dts is not None or packet.pts is not None:
                joined.audio_packet(packet)
        for packet in pictures_in.demux(pictures_in.streams.video[0]):
            if packet.dts is not None or packet.pts is not None:
                joined.packet(packet)
        joined.close()
    expected = _decoded_sound(tmp_path / f"both{suffix}")
    assert expected.shape[1] >= len(sound) - 1024
    assert np.array_equal(_decoded_sound(tmp_path / f"joined{suffix}"), expected)
