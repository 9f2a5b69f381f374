"""The rehearsal HUD drawn over a real headless show (Mesa EGL)."""

from __future__ import annotations

import os
import re
import signal

import numpy as np

from engine.clock import VirtualTime
from engine.display import open_display
from engine.keyboard import KeyAction, KeyboardInstrument
from engine.midi import NoteOn
from engine.scene import Scene
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions

SETLIST = """
title = "hud"
resolution = "640x360"
[[cues]]
id = "learning"
scene = "test_hud_loss"
[[cues]]
id = "after"
scene = "blackout"
"""


class FallingLoss(Scene):
    """Reports a falling loss; its draw fails once, as a buggy scene would."""

    name = "test_hud_loss"

    def enter(self) -> None:
        self.ticks = 0

    def tick(self, dt: float) -> None:
        self.ticks += 1
        if self.ticks == 20:
            raise RuntimeError("a bug in the scene")

    def status(self) -> dict:
        return {"loss": 1.0 / (1 + self.ticks)}


def run(tmp_path, hud: bool, seconds: float = 1.0):
    path = tmp_path / "hud.toml"
    path.write_text(SETLIST)
    setlist = load_setlist(path)
    display = open_display(setlist.settings.resolution, headless=True)
    frames = []
    try:
        show = Show(setlist, ShowOptions(duration=seconds, hud=hud), VirtualTime(), display)
        show.load()
        show.queue.push(0.1, NoteOn(note=60, velocity=90))
        show.frame_sink = lambda: frames.append(display.read_pixels().copy())
        show.run()
        return show, frames
    finally:
        display.close()


def test_the_hud_shows_cue_loss_plot_held_notes_and_the_last_error(tmp_path, egl):
    show, frames = run(tmp_path, hud=True)
    state = show.hud.state
    assert state.cue == "learning" and state.next_cue == "after"
    assert state.held == {60}
    assert len(state.losses) > 30 and state.losses[-1] < state.losses[0]
    assert "scene hook failed" in state.last_error
    assert state.frame_ms is not None and state.frame_ms > 0
    lines = state.lines()
    assert lines[0] == "cue learning  next after" and "C4" in lines[3]
    assert lines[-1] == "not recording"
    panel = frames[-1][10:200, 10:350]
    assert panel.max() > 200  # text drawn
    # the loss plot, red, under the text rows: it starts high on the left and falls to the right
    frame = frames[-1].astype(int)
    curve = (frame[:, :, 0] > 200) & (frame[:, :, 1] < 150) & (frame[:, :, 2] < 150)
    curve[:130] = False  # the text rows (the error line is red too)
    ys, xs = np.nonzero(curve)
    assert xs.max() - xs.min() > 300
    assert ys[xs < xs.min() + 10].mean() < ys[xs > xs.max() - 10].mean() - 20
    assert frames[-1][300:, 400:].max() == 0  # the rest of the (black) stage untouched


def test_the_hud_is_off_by_default_and_f1_toggles_it(tmp_path, egl):
    show, frames = run(tmp_path, hud=False, seconds=0.2)
    assert np.max(frames[-1]) == 0
    assert KeyboardInstrument().key_down("f1") == KeyAction("hud")
    show.apply_key(KeyAction("hud"), 0.0)
    assert show.hud.visible


def test_the_hud_shows_the_recording_then_that_it_failed(tmp_path, egl):
    """A real recorder under the show: the HUD's last line is the recording's time and file, and
    once its encoder process dies mid-show, that the recording failed (the show goes on)."""
    from engine.recorder import Recorder

    path = tmp_path / "hud.toml"
    path.write_text(SETLIST)
    setlist = load_setlist(path)
    display = open_display(setlist.settings.resolution, headless=True)
    recorder = Recorder(tmp_path / "rehearsal.mkv", setlist.settings.resolution, 30, live=True)
    shown = []
    try:
        recorder.start()
        recorder.wait_ready()
        show = Show(setlist, ShowOptions(duration=2.0, hud=True), VirtualTime(), display, recorder=recorder)
        show.load()

        def sink() -> None:
            shown.append(show.hud.state.lines()[-1])
            if len(shown) == 60:
                os.kill(recorder.process.pid, signal.SIGKILL)
                recorder.process.wait()

        show.frame_sink = sink
        show.run()
    finally:
        recorder.close()
        display.close()
    assert shown[0] == "REC 00:00.0 rehearsal.mkv"  # nothing written yet
    assert re.fullmatch(r"REC 00:(00\.9|01\.0) rehearsal\.mkv( \(\d+ dropped\))?", shown[58]), shown[58]
    assert shown[-1] == "recording FAILED (see the log)"
    assert show.summary.ticks == 120  # the show ran to its end
