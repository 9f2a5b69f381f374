"""Snapshots of a whole show (engine/snapshot.py; issue 24), for every scene kind of every piece:
a show ticked without drawing (the render farm's pass) saves its state in every cue, inside fades
and while its models train, and so does a show that draws (a live show's saved state for recovery,
engine/recovery_state.py: what drawing made comes along); a show restored from each, real OpenGL
and the offline sound, draws exactly the frames and plays exactly the sound of an uninterrupted
render from there on."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from engine import snapshot
from engine.audio.offline import OfflineAudio
from engine.audio.sound_settings import build_sound
from engine.clock import VirtualTime
from engine.display import open_display
from engine.midi_file import MidiFilePerformer, load_performance
from engine.scene import known_scenes
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions
from tests.conftest import ROOT

PERFORMANCE = ROOT / "assets" / "midi" / "performances" / "asap_Bach_Prelude_bwv846_Shi05M.mid"
FPS = 30
CUE_SECONDS = 2
WINDOW = 20  # frames compared after each restore
SIZE = (160, 90)
BUILTIN = f"""
[[cues]]
id = "pulse"
scene = "pulse"
params = {{ palette = "rainbow", decay = 1.5 }}
advance = {{ after = {CUE_SECONDS} }}
transition = {{ kind = "fade", seconds = 1.0 }}

[[cues]]
id = "echo"
scene = "echo"
advance = {{ after = {CUE_SECONDS} }}

[[cues]]
id = "camera"
scene = "camera"
advance = {{ after = {CUE_SECONDS} }}

[[cues]]
id = "blackout"
scene = "blackout"
advance = {{ after = {CUE_SECONDS} }}

[[cues]]
id = "drill"
scene = "crash"
params = {{ after = 0.5 }}
advance = {{ after = {CUE_SECONDS} }}
"""
# The bundled setlists cover the pieces' scenes in their modes (grain clouds: hold, cloud, salad,
# tape; the VAE learning, rehearsed, on a trajectory; the ear listening, dreaming), the tour adds
# the dice game and Padberg; the builtin scenes come after the first piece.
SETLISTS = {"tour": "", "grains": "", "granolar": "", "ear": "", "builtin": BUILTIN}


def shortened(name: str, extra: str, tmp_path: Path) -> Path:
    """A bundled setlist with its cues shortened; "builtin": the tour's settings with the cues
    ``extra``."""
    if name == "builtin":
        text = (ROOT / "setlists" / "tour.toml").read_text()
        text = text[:text.index("[[cues]]")] + extra
        text = re.sub(r'^pieces = \[(.*)\]', r'pieces = [\1, "builtin"]', text, count=1, flags=re.M)
    else:
        text = (ROOT / "setlists" / f"{name}.toml").read_text() + extra
    text = re.sub(r"after = \d+(\.\d+)?", f"after = {CUE_SECONDS}", text)
    text = text.replace('"../assets/', f'"{ROOT}/assets/').replace('"../build/', f'"{ROOT}/build/')
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


class Run:
    """A show of ``path`` rendered offline at SIZE with real OpenGL, its frames hashed and its
    sound kept."""

    def __init__(self, path: Path, seconds: float) -> None:
        setlist = load_setlist(path)
        self.rack, self.pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound,
                                           False, setlist.resolve_path)
        self.blocks: list[np.ndarray] = []
        self.audio = OfflineAudio(self.rack, keep=False, sink=lambda block: self.blocks.append(block.copy()),
                                  pool=self.pool)
        self.display = open_display(SIZE, headless=True)
        self.show = Show(setlist, ShowOptions(duration=seconds, fps=FPS), VirtualTime(), self.display,
                         audio=self.audio)
        self.show.add_source(MidiFilePerformer(load_performance(PERFORMANCE), self.show.queue))
        assert self.show.load() == []
        self.frames: dict[int, str] = {}
        self.show.frame_sink = self._frame

    def _frame(self) -> None:
        if self.show.draw_frames:
            self.frames[self.show.frame_index] = hashlib.md5(self.display.read_pixels().tobytes()).hexdigest()

    def sound(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros((0, 2), np.float32)

    def close(self) -> None:
        self.display.close()
        if self.pool is not None:
            self.pool.close()


@pytest.mark.parametrize("name", list(SETLISTS))
def test_a_restored_show_goes_on_exactly_as_the_show_it_was_saved_from(name, tmp_path):
    path = shortened(name, SETLISTS[name], tmp_path)
    cues = load_setlist(path).cues
    seconds = CUE_SECONDS * len(cues) + 0.5
    # Every cue: just after it starts (inside its fade, when it has one) and in its middle, where
    # its learners or trainers are at work.
    frames = sorted({int((index * CUE_SECONDS + offset) * FPS) for index in range(len(cues))
                     for offset in (0.3, 1.2)} - {0})
    drawn_saves = {}
    serial = Run(path, seconds)
    try:
        def save_drawn(frame: int) -> None:  # (at the top of the frame, as a live show saves its state)
            if frame in frames:
                drawn_saves[frame] = (snapshot.save(serial.show, frame), serial.audio.rendered)
        serial.show.before_frame = save_drawn
        summary = serial.show.run()
        assert summary.scene_errors == 0 and len(summary.cues_played) == len(cues)
        reference, sound = serial.frames, serial.sound()
    finally:
        serial.close()
    saved, rendered = {}, {}
    fast = Run(path, seconds)
    try:
        fast.show.draw_frames = False

        def save(frame: int) -> None:
            if frame in frames:
                saved[frame] = snapshot.save(fast.show, frame)
                rendered[frame] = fast.audio.rendered
        fast.show.before_frame = save
        fast.show.run()
        assert np.array_equal(fast.sound(), sound)  # the pass plays what the render played
    finally:
        fast.close()
    assert sorted(saved) == frames
    # In each cue, one state from the pass, one from the drawing show.
    for frame in frames[1::2]:
        saved[frame], rendered[frame] = drawn_saves[frame]
    restored = Run(path, seconds)  # one show restored again and again, as a worker may be
    try:
        for frame in frames:
            restored.frames.clear()
            restored.blocks.clear()
            assert snapshot.restore(restored.show, saved[frame]) == frame
            # the state calls back into the restoring show, not into a copy of the saving one
            assert restored.show.stack._on_error.__self__ is restored.show
            restored.show.stop_at_frame = frame + WINDOW
            restored.show.run(resume=True)
            drawn = sorted(restored.frames)
            assert drawn == [f for f in range(frame, frame + WINDOW) if f in reference], frame
            differ = [f for f in drawn if restored.frames[f] != reference[f]]
            assert differ == [], f"{name}: restored at frame {frame}, frames {differ} differ"
            heard = restored.sound()
            assert len(heard) > 0
            start = rendered[frame]
            assert np.array_equal(heard, sound[start:start + len(heard)]), \
                f"{name}: restored at frame {frame}, the sound differs"
    finally:
        restored.close()


def test_the_setlists_above_cover_every_scene_kind(tmp_path):
    from engine.scene import _REGISTRY

    covered = {cue.cue.scene for name, extra in SETLISTS.items()
               for cue in load_setlist(shortened(name, extra, tmp_path)).cues}
    known_scenes()  # every installed piece loaded (scenes the tests define aside)
    assert covered == {name for name, cls in _REGISTRY.items() if cls.__module__.startswith("scenes.")}


def test_a_snapshot_of_another_show_is_refused_in_one_line(tmp_path):
    """A snapshot restored into a show of another setlist names what it lacks."""
    first = Run(shortened("builtin", BUILTIN, tmp_path), 1.0)
    try:
        first.show.stop_at_frame = 10
        state = {}
        first.show.before_frame = lambda frame: state.setdefault("data", snapshot.save(first.show, frame)) \
            if frame == 5 else None
        first.show.run()
    finally:
        first.close()
    other = Run(shortened("grains", "", tmp_path), 1.0)
    try:
        with pytest.raises(snapshot.SnapshotError, match="the restoring show has no"):
            snapshot.restore(other.show, state["data"])
    finally:
        other.close()


def test_line_and_point_buffers_grown_while_drawing_restore_as_the_restoring_shows_own():
    # A drawing show's saved state (recovery): the curves' line buffer grew past its first size
    # as the show drew (the cubic's 64 fading curves, 8,128 segments); the restored show draws
    # as many with its own buffer (a copy once brought the grown size without the buffer, and
    # every such frame failed).
    from types import SimpleNamespace

    from engine.primitives import Points, Polylines

    display = open_display(SIZE, headless=True)
    try:
        def show():
            gl, shaders = display.gl, display.shaders
            scene = SimpleNamespace(lines=Polylines(gl, shaders, SIZE), points=Points(gl, shaders))
            return SimpleNamespace(time=VirtualTime(), scene=scene)
        many = np.random.default_rng(1).uniform(-1, 1, (8128, 2))
        saving = show()
        saving.scene.lines.draw_segments(many, many[::-1], (1, 1, 1, 1), 2.0, np.eye(4))
        saving.scene.points.draw(many, (1, 1, 1, 1), 2.0, np.eye(4))
        restoring = show()
        own = restoring.scene.lines, restoring.scene.points
        snapshot.restore(restoring, snapshot.save(saving, 0))
        assert (restoring.scene.lines, restoring.scene.points) == own
        restoring.scene.lines.draw_segments(many, many[::-1], (1, 1, 1, 1), 2.0, np.eye(4))
        restoring.scene.points.draw(many, (1, 1, 1, 1), 2.0, np.eye(4))
        display.gl.finish()
    finally:
        display.close()
