"""Video input and the two distortions on real OpenGL (Mesa EGL) with the real webcam stand-in video."""

from __future__ import annotations

import time

import moderngl
import numpy as np
import pytest

from engine.video_in import FileCapture, FileFrames, LiveCapture, VideoTexture, open_source, resolve_source
from scenes.ldd.distortions import BubbleLens, BubbleSettings, RGBSplit, SplitSettings, video_rect
from engine.errors import UserError
from engine.shaders import ShaderLibrary

SIZE = (320, 240)


@pytest.fixture
def video_file(shared_data):
    return shared_data / "video" / "intel_asl_book.mkv"


def framebuffer(gl, size=SIZE):
    fbo = gl.simple_framebuffer(size)
    fbo.use()
    fbo.clear(0, 0, 0, 1)
    return fbo


def read(fbo, size=SIZE) -> np.ndarray:
    """(height, width, 3) uint8, top row first."""
    pixels = np.frombuffer(fbo.read(components=3, alignment=1), np.uint8).reshape(size[1], size[0], 3)
    return pixels[::-1]


def texture_of(gl, image: np.ndarray):
    texture = gl.texture((image.shape[1], image.shape[0]), 3, np.ascontiguousarray(image).data)
    texture.filter = moderngl.NEAREST, moderngl.NEAREST
    return texture


def test_the_video_file_source_delivers_frames_in_order_and_loops(video_file):
    frames = FileFrames(video_file)
    first = frames.latest()
    assert first.pixels.ndim == 3 and first.pixels.shape[2] == 3 and first.number == 1
    frames.seek(1.0)
    later = frames.latest()
    assert later.number == 2 and not np.array_equal(later.pixels, first.pixels)
    sequential = []
    for tick in range(1, 8):  # decoded in order, frame by frame
        frames.seek(1.0 + tick / frames.fps)
        sequential.append(frames.latest().pixels)
    loop = frames.frame_count / frames.fps
    frames.seek(loop * 3 + 1.0 + 3 / frames.fps)  # three loops later: the same frame as 1 s + 3 frames
    np.testing.assert_array_equal(frames.latest().pixels, sequential[2])
    frames.stop()


def test_the_live_capture_keeps_delivering_the_newest_frame_from_a_looping_file(video_file):
    capture = LiveCapture(str(video_file))
    capture.start()
    try:
        deadline = time.monotonic() + 10
        while (capture.latest() is None or capture.latest().number < 10) and time.monotonic() < deadline:
            time.sleep(0.05)
        frame = capture.latest()
        assert frame is not None and frame.number >= 10 and frame.level == 1.0
    finally:
        capture.stop()


def short_clip(path, frames: int = 12, fps: int = 30):
    """A small video whose frame i is a flat grey of 10 + 20 i (each frame unlike the others)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for number in range(frames):
            image = np.full((48, 64, 3), 10 + 20 * number, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_a_video_file_camera_shows_live_the_frames_a_replay_shows(tmp_path):
    clip = short_clip(tmp_path / "clip.mkv")  # 0.4 s: the show below runs through it 3 times
    offline = FileFrames(clip)
    capture = open_source(str(clip), None, offline=False)
    assert isinstance(capture, FileCapture)
    try:
        late = []
        for show_time in np.arange(0.0, 1.2, 1 / 60):
            capture.seek(show_time)
            offline.seek(show_time)
            want = offline.latest().pixels
            first = capture.latest()
            if first is None or not np.array_equal(first.pixels, want):
                late.append(round(show_time, 3))
            deadline = time.monotonic() + 5
            while (frame := capture.latest()) is None or not np.array_equal(frame.pixels, want):
                assert time.monotonic() < deadline, f"no frame for show time {show_time:.3f}"
                time.sleep(0.001)
            time.sleep(0.02)  # a show frame later, the next frame is decoded already
        assert set(late) <= {0.0}  # only the very first frame may come after it is due
    finally:
        capture.stop()


def test_a_recording_of_the_camera_holds_its_last_picture_where_a_stand_in_video_loops(tmp_path):
    clip = short_clip(tmp_path / "clip.mkv")
    held, looped = FileFrames(clip, loop=False), FileFrames(clip)
    held.seek(11 / 30)
    last = held.latest().pixels.copy()
    looped.seek(0.0)
    first = looped.latest().pixels.copy()
    assert not np.array_equal(first, last)
    for show_time in (12 / 30, 0.5, 3.0, 100.0):
        held.seek(show_time)
        np.testing.assert_array_equal(held.latest().pixels, last)
    looped.seek(12 / 30)
    np.testing.assert_array_equal(looped.latest().pixels, first)
    held.frame_count = 40  # a container that overstates its length: the real end still holds
    held.seek(1.0)
    np.testing.assert_array_equal(held.latest().pixels, last)


def test_a_lost_camera_keeps_its_last_frame_fading_to_black(video_file):
    now = [0.0]
    capture = LiveCapture(str(video_file), lost_after=1.0, fade=2.0, clock=lambda: now[0])
    capture._deliver(np.full((4, 4, 3), 200, np.uint8))
    assert capture.latest().level == 1.0
    now[0] = 2.0  # silent for 2 s: 1 s past lost_after, half way through the fade
    assert capture.latest().level == pytest.approx(0.5)
    now[0] = 10.0
    assert capture.latest().level == 0.0 and capture.latest().pixels[0, 0, 0] == 200


def test_a_missing_camera_is_retried_without_stopping_anything():
    capture = LiveCapture(99, retry=0.1)  # no such device here
    capture.start()
    time.sleep(0.3)
    assert capture.latest() is None
    capture.stop()


def test_camera_sources_resolve_to_index_file_or_name(video_file, tmp_path):
    assert resolve_source("2", None) == 2
    assert resolve_source(str(video_file), None) == str(video_file)
    assert resolve_source(None, video_file) == str(video_file)
    assert resolve_source(None, None) is None
    assert resolve_source("logitech", None, cameras=lambda: [("/dev/video0", "HD Pro Webcam"),
                                                             ("/dev/video2", "Logitech C920")]) == "/dev/video2"
    with pytest.raises(UserError, match="camera 'Elgato' not found"):
        resolve_source("Elgato", None, cameras=lambda: [])
    with pytest.raises(UserError, match="fallback video not found"):
        resolve_source(None, tmp_path / "none.mkv")


def test_offline_a_camera_by_name_or_index_is_its_fallback_file_on_any_machine(video_file):
    # No camera is looked for offline: "Logitech" matches none here, and a replay of a show filmed
    # with one renders on a machine without it.
    for source in ("Logitech", "/dev/video0", 0, "3"):
        frames = open_source(source, video_file, offline=True)
        assert isinstance(frames, FileFrames) and frames.latest() is not None
        frames.stop()
    assert open_source("Logitech", None, offline=True) is None  # said in the log: no video
    assert isinstance(open_source(str(video_file), None, offline=True), FileFrames)


def test_the_texture_uploads_once_per_new_frame(gl, video_file):
    frames = FileFrames(video_file)
    texture = VideoTexture(gl, frames)
    assert texture.update() and texture.uploads == 1
    assert not texture.update() and texture.uploads == 1  # same frame: no upload
    assert texture.update(0.5) and texture.uploads == 2
    assert not texture.update(0.5) and texture.uploads == 2
    assert texture.texture.size == (frames.latest().pixels.shape[1], frames.latest().pixels.shape[0])


def test_zero_gradients_leave_the_video_frame_unchanged(gl, video_file):
    frame = FileFrames(video_file).latest().pixels
    image = np.ascontiguousarray(frame[:SIZE[1], :SIZE[0]])
    split = RGBSplit(gl, ShaderLibrary(gl), SIZE)
    fbo = framebuffer(gl)
    split.draw(texture_of(gl, image), np.zeros(4))
    np.testing.assert_array_equal(read(fbo), image)


@pytest.mark.parametrize("grad", [(0.05, -0.03, 0.1), (-0.2, 0.0, 0.07)])
def test_non_zero_gradients_shift_each_channel_by_the_expected_pixels(gl, grad):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    # 300 px per unit at 720 lines = 100 px per unit at these 240 lines: whole-pixel shifts, exact
    split = RGBSplit(gl, ShaderLibrary(gl), SIZE, SplitSettings(scale=300.0))
    fbo = framebuffer(gl)
    split.draw(texture_of(gl, image), np.array(grad))
    out = read(fbo)
    for channel, g in enumerate(grad):
        shift = int(round(g * 100))
        assert split.offsets(np.array(grad))[channel, 0] == pytest.approx(g * 100)
        expected = np.zeros((SIZE[1], SIZE[0]), np.uint8)  # moved right and down by shift; black where it left
        src = image[:, :, channel]
        ys, xs = slice(max(0, shift), SIZE[1] + min(0, shift)), slice(max(0, shift), SIZE[0] + min(0, shift))
        ys_src = slice(max(0, -shift), SIZE[1] - max(0, shift))
        xs_src = slice(max(0, -shift), SIZE[0] - max(0, shift))
        expected[ys, xs] = src[ys_src, xs_src]
        np.testing.assert_array_equal(out[:, :, channel], expected)


def test_offsets_are_clamped_and_never_nan(gl):
    split = RGBSplit(gl, ShaderLibrary(gl), SIZE, SplitSettings(max_offset=10))
    offsets = split.offsets(np.array([1e9, np.nan, -np.inf]))
    assert np.all(np.isfinite(offsets)) and offsets[0, 0] == pytest.approx(10 * SIZE[1] / 720)


def test_flicker_shows_the_split_more_often_as_the_loss_grows(gl):
    split = RGBSplit(gl, ShaderLibrary(gl), SIZE, SplitSettings(flicker=True), seed=3)
    image = np.zeros((8, 8, 3), np.uint8)
    framebuffer(gl)
    shown = {}
    for loss in (0.0, 0.2, 1.0):
        count = 0
        for _ in range(300):
            split.draw(texture_of(gl, image), np.ones(3), loss=loss)
            count += split.split_shown
        shown[loss] = count / 300
    assert shown[0.0] == 0.0 and 0.1 < shown[0.2] < 0.3 and shown[1.0] == 1.0


def test_bubbles_spawn_shrink_fade_and_vanish(gl):
    lens = BubbleLens(gl, ShaderLibrary(gl), SIZE, BubbleSettings(radius=90, shrink=0.2), seed=1)
    lens.spawn()
    lens.spawn(100, 100)
    assert lens.count == 2
    first_radius = lens.bubbles.radius[1]
    assert first_radius == pytest.approx(90 * SIZE[1] / 720)
    lens.tick()
    assert lens.bubbles.radius[1] == pytest.approx(first_radius - 0.2 * SIZE[1] / 720)
    ticks = 1
    while lens.count:
        lens.tick()
        ticks += 1
    assert ticks == pytest.approx(90 / 0.2, abs=2)


def test_a_bubble_shows_the_video_displaced_inside_it_and_nothing_outside(gl):
    x = np.arange(SIZE[0])
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    image[:, :, 0] = (x * 255 // SIZE[0]).astype(np.uint8)[None, :]  # a horizontal ramp in red
    texture = texture_of(gl, image)
    for formula, grad in (("paper", (0.0, np.pi / 2)), ("original", (0.0, 0.0))):
        lens = BubbleLens(gl, ShaderLibrary(gl), SIZE, BubbleSettings(formula=formula, amplitude=60), seed=1)
        lens.spawn(160, 120)
        fbo = framebuffer(gl)
        lens.draw(texture, np.array(grad), time=0.0)
        out = read(fbo)
        # paper: offset = amplitude * (cos 0, cos pi/2) = (20 px at 240 lines, 0); original at t = 0:
        # (cos(u / 300), sin(u / 300)) * amplitude, u = x at 720 lines.
        amplitude = 60 * SIZE[1] / 720
        if formula == "paper":
            dx = amplitude
        else:
            dx = amplitude * np.cos(160 / (SIZE[1] / 720) / 300)
        expected_red = int((160 + dx) * 255 // SIZE[0])
        assert abs(int(out[120, 160, 0]) - expected_red) <= 2, formula
        assert out[5, 5].tolist() == [0, 0, 0]  # outside the bubble: untouched


def test_video_placement_covers_or_fits_keeping_the_aspect():
    assert video_rect((640, 480), (1280, 720), "fit") == (160.0, 0.0, 960.0, 720.0)
    assert video_rect((640, 480), (1280, 720), "cover") == (0.0, -120.0, 1280.0, 960.0)


CAMERA_SETLIST = """
title = "camera check"
resolution = "320x180"
fps = 30
[camera]
fallback = "{fallback}"
[[cues]]
id = "look"
scene = "camera"
"""


def test_a_render_shows_the_fallback_video_deterministically(tmp_path, egl, video_file):
    import json
    import subprocess

    import av

    from tests.conftest import BUNDLED_MIDI, ROOT, showrunner_command

    setlist = tmp_path / "camera.toml"
    setlist.write_text(CAMERA_SETLIST.format(fallback=video_file))
    hashes = []
    for name in ("a", "b"):
        out, metrics = tmp_path / f"{name}.mkv", tmp_path / f"{name}.jsonl"
        result = subprocess.run(showrunner_command("render", str(setlist), "--midi-file", str(BUNDLED_MIDI),
                                                   "--out", str(out), "--duration", "2", "--metrics", str(metrics)),
                                cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        with av.open(str(out)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        assert len(frames) == 60
        assert np.mean(frames[30]) > 20  # the video, not a black stage
        assert not np.array_equal(frames[0], frames[45])  # it moves
        hashes.append([hash(frame.tobytes()) for frame in frames])
        uploads = [json.loads(line).get("video_frames", 0) for line in metrics.read_text().splitlines()]
        assert max(uploads) >= 45  # about one upload per video frame (the file runs at its own rate)
    assert hashes[0] == hashes[1]


def test_a_camera_named_but_missing_is_bad_input(tmp_path):
    import subprocess

    from tests.conftest import ROOT, showrunner_command

    setlist = tmp_path / "camera.toml"
    setlist.write_text(CAMERA_SETLIST.replace('fallback = "{fallback}"', 'source = "No Such Cam"'))
    result = subprocess.run(showrunner_command("run", str(setlist), "--headless", "--duration", "1", "--no-audio"),
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "camera 'No Such Cam' not found" in lines[0]


def test_a_camera_that_appears_later_is_picked_up(tmp_path, video_file):
    import shutil

    late = tmp_path / "late_camera.mkv"  # not there yet: like a webcam plugged in after the show began
    capture = LiveCapture(str(late), retry=0.1)
    capture.start()
    try:
        time.sleep(0.3)
        assert capture.latest() is None
        shutil.copy(video_file, late)
        deadline = time.monotonic() + 10
        while capture.latest() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert capture.latest() is not None and capture.reconnects == 1
        assert capture.is_file  # paced at the file's own frame rate, not read as fast as it decodes
    finally:
        capture.stop()
