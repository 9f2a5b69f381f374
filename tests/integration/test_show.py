"""Whole shows on the real stack: Mesa EGL headless, the pygame window path (offscreen), PyAV files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import mido
import numpy as np
import pytest

from engine.clock import RealTime, VirtualTime
from engine.display import open_display
from engine.midi import NoteOn
from engine.scene import Scene
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions
from tests.conftest import BUNDLED_MIDI, DEMO_SETLIST, ROOT, showrunner_command

FOUR_CUES = """
title = "four cues"
resolution = "320x180"
[[cues]]
id = "one"
scene = "pulse"
advance = { cc = 67 }
[[cues]]
id = "two"
scene = "pulse"
advance = { cc = 67 }
[[cues]]
id = "three"
scene = "pulse"
advance = { after = 1.0 }
[[cues]]
id = "four"
scene = "blackout"
"""


class Exploding(Scene):
    """A scene with a bug: its tick raises after a few ticks, its draw always."""

    name = "test_exploding"

    def enter(self) -> None:
        self.ticks = 0

    def tick(self, dt: float) -> None:
        self.ticks += 1
        if self.ticks > 3:
            raise RuntimeError("division by zero in the performer's patch")

    def draw(self, alpha: float) -> None:
        raise RuntimeError("shader uniform missing")


def write(tmp_path: Path, text: str, name: str = "show.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def cues_in(metrics: Path) -> list[str]:
    order = []
    for line in metrics.read_text().splitlines():
        cue = json.loads(line)["cue"]
        if not order or order[-1] != cue:
            order.append(cue)
    return order


def test_headless_show_lights_a_bar_over_the_played_key(tmp_path, egl):
    setlist = load_setlist(write(tmp_path, FOUR_CUES))
    display = open_display((320, 180), headless=True)
    frames = []
    try:
        show = Show(setlist, ShowOptions(duration=0.2), VirtualTime(), display)
        show.frame_sink = lambda: frames.append(display.read_pixels().copy())
        show.load()
        show.queue.push(0.05, NoteOn(60, 127))
        show.run()
    finally:
        display.close()
    frame = frames[-1]
    x = int((60 - 21 + 0.5) / 88 * 320)
    assert frame[100, x].max() > 100          # the bar over middle C is lit
    assert frame[100, 20].max() == 0          # far from it, black
    assert frame[5, x].max() == 0             # above the bar's top, black


def test_window_path_shows_exactly_the_show_framebuffer(tmp_path, egl, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")
    setlist = load_setlist(write(tmp_path, FOUR_CUES))
    display = open_display((320, 180), headless=False)
    shots = []
    try:
        assert display.windowed
        show = Show(setlist, ShowOptions(duration=0.3), VirtualTime(), display)
        show.frame_sink = lambda: shots.append((display.read_pixels().copy(), display.read_window().copy()))
        show.load()
        for note in (40, 60, 80):
            show.queue.push(0.1, NoteOn(note, 100))
        show.run()
    finally:
        display.close()
    fbo, window = shots[-1]
    assert fbo.max() > 100
    assert np.array_equal(fbo, window)


def key_presser(keys: list[int], every: int):
    """A frame sink that presses the next key in the window every ``every`` frames."""
    import pygame

    pending = iter(keys)
    frames = {"n": 0}

    def press() -> None:
        frames["n"] += 1
        if frames["n"] % every == 0:
            key = next(pending, None)
            if key is not None:
                pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0))
    return press


def test_keys_in_the_window_jump_between_cues(tmp_path, egl, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")
    import pygame

    setlist = load_setlist(write(tmp_path, FOUR_CUES))
    display = open_display((320, 180), headless=False)
    metrics = tmp_path / "metrics.jsonl"
    try:
        show = Show(setlist, ShowOptions(duration=0.5, metrics=metrics), VirtualTime(), display)
        show.load()
        show.frame_sink = key_presser([pygame.K_3, pygame.K_LEFT, pygame.K_BACKSPACE, pygame.K_SPACE], every=5)
        show.run()
    finally:
        display.close()
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    starts = [(r["tick"], r["cue"]) for r in records if "cue" in r["events"]]
    # 3 jumps to cue 3, Left goes back to cue 2, Backspace restarts cue 2, Space goes on to cue 3.
    assert [cue for _, cue in starts] == ["one", "three", "two", "two", "three"]


def make_midi(path: Path, script: list[tuple[float, mido.Message]]) -> Path:
    """A type 0 file at 120 bpm (480 ticks per beat: 1 s = 960 ticks) with the given messages."""
    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    last = 0
    for at, msg in script:
        tick = round(at * 960)
        track.append(msg.copy(time=tick - last))
        last = tick
    midi.save(path)
    return path


def test_soft_pedal_program_change_and_timer_move_the_playhead(tmp_path, egl):
    midi = make_midi(tmp_path / "moves.mid", [
        (0.5, mido.Message("note_on", note=60, velocity=90)),
        (1.0, mido.Message("control_change", control=67, value=127)),   # pedal down: one -> two
        (1.2, mido.Message("control_change", control=67, value=100)),   # still held: no move
        (1.5, mido.Message("control_change", control=67, value=0)),     # released
        (2.0, mido.Message("program_change", program=2)),               # program 3 -> cue three
        (4.0, mido.Message("note_off", note=60, velocity=0)),
    ])
    metrics = tmp_path / "metrics.jsonl"
    jumping = FOUR_CUES.replace('resolution = "320x180"', 'resolution = "320x180"\n[midi]\nprogram_change_jumps = true')
    result = subprocess.run(showrunner_command("render", str(write(tmp_path, jumping)), "--midi-file", str(midi),
                                               "--out", str(tmp_path / "moves.mkv"), "--metrics", str(metrics),
                                               "--log-dir", str(tmp_path / "logs")),
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert cues_in(metrics) == ["one", "two", "three", "four"]
    start = {r["cue"]: r["time"] for r in reversed(records)}
    # A cue starts in the tick after the one that delivered its trigger (tick times are their ends).
    assert start["two"] == pytest.approx(1.0 + 1 / 60, abs=1e-6)
    assert start["three"] == pytest.approx(2.0 + 1 / 60, abs=1e-6)
    assert start["four"] == pytest.approx(3.0 + 1 / 60, abs=1e-6)  # 1 s after cue three began


def decoded_frame_hashes(path: Path) -> list[str]:
    import av

    with av.open(str(path)) as container:
        return [hashlib.sha1(frame.to_ndarray(format="rgb24").tobytes()).hexdigest()
                for frame in container.decode(video=0)]


def test_render_is_deterministic_and_writes_a_real_video(tmp_path, egl):
    outputs = []
    for run in ("a", "b"):
        out, metrics = tmp_path / f"{run}.mkv", tmp_path / f"{run}.jsonl"
        result = subprocess.run(showrunner_command("render", str(DEMO_SETLIST), "--midi-file", str(BUNDLED_MIDI),
                                                   "--out", str(out), "--duration", "4", "--size", "320x180",
                                                   "--fps", "30", "--metrics", str(metrics),
                                                   "--log-dir", str(tmp_path / "logs")),
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        outputs.append((metrics.read_bytes(), decoded_frame_hashes(out)))
    # Everything but the measured wall-clock times (the frame's, the capture's) is identical.
    show_state = [[{k: v for k, v in json.loads(line).items() if k not in ("frame_ms", "capture_ms")}
                   for line in metrics.splitlines()] for metrics, _ in outputs]
    assert show_state[0] == show_state[1]
    assert sum(len(r.get("midi", [])) for r in show_state[0]) > 20
    assert outputs[0][1] == outputs[1][1]
    assert len(outputs[0][1]) == 4 * 30
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=codec_name,width,height", "-of", "csv=p=0", str(tmp_path / "a.mkv")],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "h264,320,180"
    lines = outputs[0][0].decode().splitlines()
    assert len(lines) == 4 * 60
    first = json.loads(lines[0])
    assert {"tick", "time", "cue", "scene", "events"} <= set(first)


def test_a_failing_scene_does_not_stop_the_show(tmp_path, egl):
    text = FOUR_CUES.replace('id = "one"\nscene = "pulse"', 'id = "one"\nscene = "test_exploding"')
    setlist = load_setlist(write(tmp_path, text))
    display = open_display((320, 180), headless=True)
    metrics = tmp_path / "metrics.jsonl"
    try:
        show = Show(setlist, ShowOptions(duration=1.0, metrics=metrics), VirtualTime(), display)
        show.load()
        show.playhead.jump_to_index(0)
        summary = show.run()
    finally:
        display.close()
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert records[-1]["time"] == pytest.approx(1.0)
    assert summary.scene_errors > 50
    assert sum("scene_error" in r["events"] for r in records) > 50


def test_run_starts_at_the_cue_asked_for_and_rejects_an_unknown_one(tmp_path, egl):
    metrics = tmp_path / "m.jsonl"
    common = ["--midi-file", str(BUNDLED_MIDI), "--headless", "--duration", "1", "--log-dir", str(tmp_path / "logs")]
    ok = subprocess.run(showrunner_command("run", str(DEMO_SETLIST), "--cue", "blue", "--metrics", str(metrics), *common),
                        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert cues_in(metrics) == ["blue"]
    bad = subprocess.run(showrunner_command("run", str(DEMO_SETLIST), "--cue", "encore", *common),
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"showrunner: {DEMO_SETLIST}: no cue 'encore'; cues: rainbow, blue, coda"]


def test_run_opens_a_window_when_a_display_exists(tmp_path, egl):
    env = dict(os.environ, SDL_VIDEODRIVER="offscreen")
    env.pop("DISPLAY", None)
    result = subprocess.run(showrunner_command("run", str(DEMO_SETLIST), "--midi-file", str(BUNDLED_MIDI),
                                               "--duration", "2", "--log-dir", str(tmp_path / "logs")),
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    log = next((tmp_path / "logs").glob("show-*.log")).read_text()
    assert "window 1280x720 on display 0" in log
    assert "cue rainbow (#1)" in log


def test_bad_arguments_exit_2_with_one_line(tmp_path):
    for args in (["run"], ["run", str(DEMO_SETLIST), "--duration", "-3"],
                 ["render", str(DEMO_SETLIST), "--midi-file", str(BUNDLED_MIDI), "--out", "x.mkv", "--size", "big"],
                 ["run", str(DEMO_SETLIST), "--midi-file", str(tmp_path / "none.mid")], ["dance"]):
        result = subprocess.run(showrunner_command(*args), cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, args
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_render_at_a_low_frame_rate_keeps_every_tick(tmp_path, egl):
    metrics = tmp_path / "m.jsonl"
    result = subprocess.run(showrunner_command("render", str(DEMO_SETLIST), "--midi-file", str(BUNDLED_MIDI),
                                               "--out", str(tmp_path / "slow.mkv"), "--fps", "5", "--duration", "3",
                                               "--size", "160x90", "--metrics", str(metrics),
                                               "--log-dir", str(tmp_path / "logs")),
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ticks = [json.loads(line)["tick"] for line in metrics.read_text().splitlines()]
    assert ticks == list(range(1, 3 * 60 + 1))  # 12 ticks a frame offline: none dropped
    assert len(decoded_frame_hashes(tmp_path / "slow.mkv")) == 15


def stopped_render(tmp_path, out, metrics, stop, after_bytes: int) -> str:
    """Render the demo into ``out`` and send ``stop`` once ``after_bytes`` of metrics are written;
    its stderr, once it ended with status 0."""
    import time

    render = subprocess.Popen(showrunner_command("render", str(DEMO_SETLIST), "--midi-file", str(BUNDLED_MIDI),
                                                 "--out", str(out), "--fps", "30", "--metrics", str(metrics),
                                                 "--log-dir", str(tmp_path / "logs")),
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not metrics.exists() or metrics.stat().st_size < after_bytes:
        assert render.poll() is None, render.stderr.read()
        time.sleep(0.1)
    render.send_signal(stop)
    _, stderr = render.communicate(timeout=60)
    assert render.returncode == 0, stderr
    return stderr


def test_sigterm_ends_a_render_cleanly_with_a_playable_video(tmp_path, egl):
    import signal

    out, metrics = tmp_path / "stopped.mp4", tmp_path / "m.jsonl"
    stderr = stopped_render(tmp_path, out, metrics, signal.SIGTERM, 10_000)
    assert "SIGTERM: ending the show" in stderr
    frames = decoded_frame_hashes(out)
    lines = metrics.read_text().splitlines()
    assert 0 < len(frames) < 46 * 30
    assert json.loads(lines[-1])["tick"] == len(lines)  # every line complete, none lost


def test_a_render_stopped_over_an_earlier_file_leaves_that_file_and_keeps_its_part_beside(tmp_path, egl):
    import signal

    out, metrics = tmp_path / "show.mp4", tmp_path / "m.jsonl"
    out.write_bytes(b"an earlier render")
    stderr = stopped_render(tmp_path, out, metrics, signal.SIGINT, 5_000)
    assert out.read_bytes() == b"an earlier render" and "did not finish" in stderr
    assert len(decoded_frame_hashes(tmp_path / "show.partial.mp4")) > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing hidden left
    whole = subprocess.run(showrunner_command("render", str(DEMO_SETLIST), "--duration", "1", "--out", str(out),
                                              "--fps", "30", "--log-dir", str(tmp_path / "logs")),
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert whole.returncode == 0, whole.stderr
    assert len(decoded_frame_hashes(out)) == 30  # a whole render replaces it


@pytest.mark.parametrize("out, reason", [("/proc/no/such.mkv", "cannot write video"), (".", "it is a folder")])
def test_unwritable_video_output_is_bad_input_found_before_rendering(tmp_path, out, reason):
    result = subprocess.run(showrunner_command("render", str(DEMO_SETLIST), "--midi-file", str(BUNDLED_MIDI),
                                               "--out", out, "--log-dir", str(tmp_path / "logs")),
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and reason in result.stderr


def test_fullscreen_without_a_display_is_bad_input(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    result = subprocess.run(showrunner_command("run", str(DEMO_SETLIST), "--fullscreen", "--display", "1",
                                               "--log-dir", str(tmp_path / "logs")),
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "need a display and none was found" in result.stderr


def test_metrics_carry_cpu_and_gpu_frame_times(tmp_path, egl):
    setlist = load_setlist(write(tmp_path, FOUR_CUES))
    metrics = tmp_path / "metrics.jsonl"
    display = open_display(setlist.settings.resolution, headless=True)
    try:
        show = Show(setlist, ShowOptions(duration=0.5, metrics=metrics), VirtualTime(), display)
        show.load()
        show.run()
    finally:
        display.close()
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    gpu = [line["gpu_ms"] for line in lines if "gpu_ms" in line]
    cpu = [line["frame_ms"] for line in lines if "frame_ms" in line]
    assert len(cpu) >= 20 and all(0 < value < 1000 for value in cpu)
    if "llvmpipe" in display.renderer:  # software GL: its timer queries are meaningless, none reported
        assert not display.gpu_timing and gpu == []
    else:  # every frame after the first (a timer query's result is read one frame later)
        assert len(gpu) >= len(cpu) - 1 and all(0 < value < 1000 for value in gpu)


class _BusyWatch:
    """Stands in for the recorder in the show loop: notes whether the show said it was busy at
    each capture and at each of its sleeps."""

    frames = dropped = 0
    capture_ms = None

    def __init__(self) -> None:
        self.busy = False
        self.seen: list[tuple[str, bool]] = []

    def begin(self, anchor) -> None:
        pass

    def show_busy(self, busy: bool) -> None:
        self.busy = busy

    def capture(self, display, show_time, tap_now=None) -> None:
        self.seen.append(("capture", self.busy))

    def take_events(self) -> list[str]:
        return []

    def status(self) -> str:
        return "REC"


class _WatchedSleep(RealTime):
    def __init__(self, watch: _BusyWatch) -> None:
        self.watch = watch

    def sleep(self, seconds: float) -> None:
        self.watch.seen.append(("sleep", self.watch.busy))
        super().sleep(seconds)


@pytest.mark.parametrize("windowed, software", [(False, None), (True, True), (True, False)],
                         ids=["headless", "window-software", "window-gpu"])
def test_a_live_show_tells_the_recorder_when_it_rests_between_frames(tmp_path, egl, monkeypatch, windowed,
                                                                      software):
    """The show is busy (the recorder's encoder keeps off the cores) from the start of each loop
    turn to its sleep, so every capture falls in a busy stretch and every sleep in a rest, and it
    rests once the show is over. With a GPU (stood in for by marking the display as not software)
    the window's buffer swap, which may wait for the screen's vertical blank, is rest too; on a
    software rasteriser the swap is CPU work and stays busy."""
    watch = _BusyWatch()
    if windowed:
        import pygame

        monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")
        flip = pygame.display.flip

        def watched_flip():
            watch.seen.append(("swap", watch.busy))
            flip()

        monkeypatch.setattr(pygame.display, "flip", watched_flip)
    setlist = load_setlist(write(tmp_path, FOUR_CUES))
    display = open_display((320, 180), headless=not windowed)
    try:
        assert display.windowed == windowed
        if software is not None:
            display.software = software
        show = Show(setlist, ShowOptions(duration=0.3), _WatchedSleep(watch), display, recorder=watch)
        show.load()
        watch.seen.clear()  # the warm-up's swap, before the show
        show.run()
        assert display.on_swap_wait is None  # the display no longer reports to this show
    finally:
        display.close()
    seen = {what: [busy for kind, busy in watch.seen if kind == what] for what in ("capture", "sleep", "swap")}
    assert len(seen["capture"]) >= 3 and all(seen["capture"])
    assert len(seen["sleep"]) >= 3 and not any(seen["sleep"])
    if windowed:  # every frame is swapped
        assert len(seen["swap"]) == len(seen["capture"])
        assert all(seen["swap"]) if software else not any(seen["swap"])
    assert watch.busy is False
