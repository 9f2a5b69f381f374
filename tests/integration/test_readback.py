"""The readback thread on Mesa's software rasteriser (real EGL): frames read while the show goes on."""

from __future__ import annotations

import threading

import numpy as np
import pytest

SIZE = (1280, 720)


def colour_of(index: int) -> tuple[int, int, int]:
    return (index * 53) % 256, (index * 101) % 256, (255 - index * 29) % 256


def draw(display, index: int) -> None:
    """A frame of one colour with a white square in the bottom-left corner (GL's origin)."""
    display.begin_frame()
    display.gl.clear(*(c / 255 for c in colour_of(index)), 1.0)
    display.gl.scissor = (0, 0, 32, 32)
    display.gl.clear(1.0, 1.0, 1.0, 1.0)
    display.gl.scissor = None


def test_a_frame_read_in_the_background_is_the_frame_drawn_though_the_next_follows_at_once(egl):
    """Each frame is handed to the readback thread and the next is drawn and finished straight
    away: drawing waits for the read, so every read holds its own frame, never a later one."""
    from engine.display import open_display

    display = open_display(SIZE, headless=True)
    assert display.software  # llvmpipe: the path under test
    reads = [np.zeros((SIZE[1], SIZE[0], 4), np.uint8) for _ in range(12)]
    try:
        for index, out in enumerate(reads):
            draw(display, index)
            assert display.read_frame_async(out)
        draw(display, len(reads))
        display.gl.finish()
        assert display.take_read_error() is None
        assert display.reads_in_background
    finally:
        display.close()
    for index, out in enumerate(reads):
        assert (out[0, 0] == 255).all()  # the first row read is the bottom one: the square's
        assert tuple(out[SIZE[1] // 2, SIZE[0] // 2, :3]) == colour_of(index), index


def test_a_read_that_fails_is_reported_and_the_next_one_works(egl):
    """A texture that cannot be read (no such name) is an error the waiter gets, once; the thread
    goes on reading."""
    import moderngl

    from engine.readback import BackgroundReader

    gl = moderngl.create_standalone_context(backend="egl", require=330)
    try:
        texture = gl.texture((64, 32), 4, data=bytes([10, 20, 30, 255]) * (64 * 32))
        reader = BackgroundReader.for_current_context()
        assert reader is not None
        out = np.zeros((32, 64, 4), np.uint8)
        reader.start(texture.glo + 1000, (64, 32), out)
        assert "cannot be read" in reader.wait()
        assert reader.wait() is None
        reader.start(texture.glo, (64, 32), out)
        assert reader.wait() is None
        assert (out == [10, 20, 30, 255]).all()
        with pytest.raises(ValueError):
            reader.start(texture.glo, (64, 32), np.zeros((32, 64, 3), np.uint8))
        reader.close()
    finally:
        gl.release()


def test_with_no_egl_context_current_there_is_no_background_reader(egl):
    """A thread with no current context (a GLX window's would not be EGL either) gets no reader:
    the recorder then reads on the show's thread."""
    from engine.readback import BackgroundReader

    found = []
    thread = threading.Thread(target=lambda: found.append(BackgroundReader.for_current_context()))
    thread.start()
    thread.join()
    assert found == [None]


def test_a_failed_background_read_stops_the_recording_not_the_show(tmp_path, egl, caplog):
    """When the readback thread cannot read the frame, the recorder stops recording (with a
    reason in the log) and the show draws on."""
    import types

    from engine.display import open_display
    from engine.recorder import Recorder

    display = open_display((160, 96), headless=True)
    recorder = Recorder(tmp_path / "failed.mkv", (160, 96), 30, live=True)
    try:
        recorder.start()
        draw(display, 0)
        recorder.capture(display, 1 / 30)
        assert display.reads_in_background and not recorder.failed
        colour = display.color
        display.color = types.SimpleNamespace(glo=colour.glo + 1000)  # a texture that is not there
        draw(display, 1)
        recorder.capture(display, 2 / 30)
        display.color = colour
        for index in range(2, 5):  # the show goes on
            draw(display, index)
            recorder.capture(display, (index + 1) / 30)
        assert tuple(display.read_pixels()[48, 80]) == colour_of(4)
        recorder.close()
    finally:
        display.close()
    assert recorder.failed
    assert "reading the frame back failed: texture" in caplog.text
    assert recorder.frames == 1  # the first frame, read before the failure
