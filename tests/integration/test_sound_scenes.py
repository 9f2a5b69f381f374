"""What a scene of a new piece does with sound: play any instrument of the rack (one-shots and
loops from the pool), rewrite a table while it plays, read the show's own sound; and the bad input
of a [sound] table, found before anything opens."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.audio.offline import OfflineAudio
from engine.audio.sound_settings import build_sound
from engine.clock import VirtualTime
from engine.midi import NoteOn
from engine.scene import Scene
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions
from tests.conftest import SHARED_DATA, showrunner_command
from tests.spectrum import Spectrum

RATE = 48000
LOOP_VOICE, SHOT_VOICE = 70000, 70001


def sine(hz: float, seconds: float) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(seconds * RATE)) / RATE)).astype(np.float32)


class LoopAndShots(Scene):
    """Loops table "drone" from its start; every note plays table "shot" once."""

    name = "test_loop_and_shots"

    def enter(self):
        self.context.audio.instrument("sampler").play("drone", LOOP_VOICE, gain=0.5, loop=True)

    def on_midi(self, event):
        if isinstance(event, NoteOn):
            self.context.audio.instrument("sampler").play("shot", SHOT_VOICE, gain=0.8, ratio=2.0)
        return True


class Rewriter(Scene):
    """Loops table "live" and writes a new sine into it every half second (300 Hz, 400 Hz, ...);
    keeps what ``listen`` returned, for the test."""

    name = "test_rewriter"

    def enter(self):
        self.ticks, self.heard, self.writes = 0, [], []
        self.context.audio.instrument("sampler").play("live", LOOP_VOICE, gain=1.0, loop=True)

    def tick(self, dt):
        self.ticks += 1
        if self.ticks % 30 == 1:
            hz = 300.0 + 100 * len(self.writes)
            if self.context.audio.write_table("live", sine(hz, 0.25)):
                self.writes.append((self.ticks, hz))
        self.heard.append((self.ticks, self.context.audio.listen(0.05, "mix").copy(),
                           self.context.audio.listen(0.05, "input").copy()))


SETLIST = """
title = "scenes play the rack"
[sound]
notes = []
pool_seconds = 4
[sound.tables]
drone = {{ seconds = 0.5 }}
shot = {{ seconds = 0.5 }}
live = {{ seconds = 0.25 }}
[sound.instruments.sampler]
kind = "sampler"
[[cues]]
id = "scene"
scene = "{scene}"
"""


def show_with(tmp_path: Path, scene: str, seconds: float, notes=(), tables=None, input_sound=None):
    path = tmp_path / "scenes.toml"
    path.write_text(SETLIST.format(scene=scene))
    setlist = load_setlist(path)
    rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound,
                             False, setlist.resolve_path)
    for name, data in (tables or {}).items():
        pool.fill(pool.slot(name), data)
    audio = OfflineAudio(rack, pool=pool, input_sound=input_sound)
    show = Show(setlist, ShowOptions(duration=seconds), VirtualTime(), None, audio=audio)
    for stamp in notes:
        show.queue.push(stamp, NoteOn(60, 100))
    assert show.load() == []
    show.run()
    pool.close()
    return show, audio.samples()[:, 0]


def test_a_scene_loops_one_table_and_plays_another_once_per_note(tmp_path):
    tables = {"drone": sine(220.0, 0.5), "shot": sine(330.0, 0.2)}
    _, sound = show_with(tmp_path, "test_loop_and_shots", 2.0, notes=[1.0], tables=tables)

    def level(start, end, hz):
        return Spectrum(sound[int(start * RATE):int(end * RATE)], RATE).level(hz)

    assert level(0.1, 0.9, 220.0) > 0.1  # the loop, from the cue's start, past its 0.5 s
    assert level(1.4, 1.9, 220.0) > 0.1  # still looping
    assert level(0.1, 0.9, 660.0) < 0.01  # no shot before the note
    shot = level(1.02, 1.09, 660.0)  # the shot (0.2 s at ratio 2: 0.1 s) an octave up
    assert shot > 0.1
    assert level(1.3, 1.9, 660.0) < 0.01  # once


def test_a_table_rewritten_while_it_loops_is_heard_from_the_block_after_the_write(tmp_path):
    show, sound = show_with(tmp_path, "test_rewriter", 2.0)
    scene = show.scenes[0]
    assert [hz for _, hz in scene.writes] == [300.0, 400.0, 500.0, 600.0]
    for tick, hz in scene.writes:
        at = tick / 60  # the write's tick ends here: the new table plays from the next block on
        block = int(np.ceil(at * RATE / 256)) * 256
        window = sound[block + 256:block + 256 + 4800]
        assert Spectrum(window, RATE).peak(hz, 30)[0] == pytest.approx(hz, rel=0.005)
        if hz > 300:  # the block before still plays the previous table
            before = sound[block - 4800:block]
            assert Spectrum(before, RATE).level(hz - 100) > 5 * Spectrum(before, RATE).level(hz)
    _, again = show_with(tmp_path, "test_rewriter", 2.0)
    assert np.array_equal(sound, again), "two renders that rewrite tables differ"


def test_a_scene_hears_the_mix_and_the_input_file_of_a_render(tmp_path):
    heard_input = np.stack([sine(1000.0, 3.0), -sine(1000.0, 3.0)], axis=1)
    show, sound = show_with(tmp_path, "test_rewriter", 1.0, input_sound=heard_input)
    scene = show.scenes[0]
    ticks = {tick: (mix, heard) for tick, mix, heard in scene.heard}
    mix, heard = ticks[45]  # 0.75 s: rendered up to the end of tick 44, the block before it
    rendered = int(np.ceil(44 / 60 * RATE / 256)) * 256
    assert mix.shape == (2400, 2) and heard.shape == (2400, 2)
    assert np.array_equal(mix[:, 0], sound[rendered - 2400:rendered])
    assert np.array_equal(heard, heard_input[rendered - 2400:rendered])
    first = scene.heard[0]
    assert len(first[1]) == 0  # nothing played before the first tick's sound


# Bad input: one line, exit 2, before anything opens (no show log either).
BAD = """
title = "bad sound"
[sound]
pool_seconds = {pool}
[sound.samples]
{samples}
[sound.instruments.sampler]
kind = "sampler"
[[cues]]
id = "a"
scene = "pulse"
"""


@pytest.mark.parametrize(("samples", "pool", "expected"), [
    ('flute = "missing.wav"', 10, r"audio file not found: .*missing\.wav"),
    ('flute = "corrupt.wav"', 10, r"corrupt\.wav: not an audio file"),
    (f'flute = {{ file = "{SHARED_DATA}/audio/smstools_flute-A4.wav", rate = 48000 }}', 10,
     r"is 44100 Hz, not the 48000 Hz the setlist says"),
    (f'flute = "{SHARED_DATA}/audio/smstools_flute-A4.wav"', 0.5, r"pool_seconds"),
])
def test_bad_sound_input_is_one_line_and_exit_2_before_anything_opens(tmp_path, shared_data, samples,
                                                                       pool, expected):
    import re

    (tmp_path / "corrupt.wav").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    setlist = tmp_path / "bad.toml"
    setlist.write_text(BAD.format(samples=samples, pool=pool))
    for command in (["run", str(setlist), "--headless", "--duration", "1", "--no-audio"],
                    ["render", str(setlist), "--midi-file", str(SHARED_DATA.parent.parent / "main" /
                                                               "assets" / "midi" /
                                                               "partitura_mozart_k265_var1.mid"),
                     "--out", str(tmp_path / "out.mkv")],
                    ["check", str(setlist)]):
        done = subprocess.run(showrunner_command(*command, *(["--log-dir", str(tmp_path / "logs")]
                                                            if command[0] != "check" else [])),
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 2, (command[0], done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert re.search(expected, done.stderr), done.stderr
        assert not (tmp_path / "logs").exists(), command[0]
        assert not (tmp_path / "out.mkv").exists()
