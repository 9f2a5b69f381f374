"""The grain VAE played (scenes/granolar/player.py, setlists/granolar.toml; issue 21): offline
renders that train are identical twice and decode what the model has learned into the table the
granulator plays; the latent point from OSC, a bad one dropped and counted."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from engine.audio.offline import OfflineAudio
from engine.audio.sound_settings import build_sound
from engine.clock import VirtualTime
from engine.events import OscMessage
from engine.midi import NoteOff, NoteOn
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions
from scenes.granolar.vae import LATENT
from tests.conftest import ROOT

SETLIST = ROOT / "setlists" / "granolar.toml"
RATE = 48000


def setlist_copy(tmp_path: Path) -> Path:
    path = tmp_path / "granolar.toml"
    path.write_text(SETLIST.read_text().replace('"../assets/', f'"{ROOT}/assets/'))
    return path


@contextmanager
def show_of(path: Path, seconds: float, events=()):
    setlist = load_setlist(path)
    rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound,
                             False, setlist.resolve_path)
    try:
        audio = OfflineAudio(rack, pool=pool)
        show = Show(setlist, ShowOptions(duration=seconds), VirtualTime(), None, audio=audio)
        for stamp, event in events:
            show.queue.push(stamp, event)
        assert show.load() == []
        yield show, audio
    finally:
        pool.close()


NOTES = [(0.2, NoteOn(60, 100)), (1.4, NoteOff(60)), (1.5, NoteOn(67, 90)), (2.9, NoteOff(67))]


def test_renders_that_train_are_identical_and_play_what_the_model_decodes(tmp_path):
    path = setlist_copy(tmp_path)
    renders, tables = [], []
    for _ in range(2):
        with show_of(path, 3.0, NOTES) as (show, audio):
            summary = show.run()
            assert summary.scene_errors == 0
            scene = show.scenes[0]
            # 0.1 steps a tick: 18 steps in 180 ticks; a decode every half second, and the first
            assert scene.trainer.latest.steps == 18
            assert scene.requests == 6
            assert scene.losses[-1][1] < scene.losses[1][1]  # it learns: the error falls
            table = audio.pool.table(audio.pool.slot("decoded"))[:, 0].copy()
            np.testing.assert_array_equal(table, scene.shown.table)
            renders.append(audio.samples())
            tables.append(table)
    sound = renders[0]
    assert np.isfinite(sound).all() and np.abs(sound[int(0.3 * RATE):int(1.3 * RATE)]).max() > 0.01
    assert np.array_equal(renders[0], renders[1])
    assert np.array_equal(tables[0], tables[1])
    assert np.abs(tables[0]).max() <= 1.0 and np.abs(tables[0]).max() > 0.01


def test_osc_latent_moves_the_point_and_a_bad_one_is_dropped_and_counted(tmp_path):
    with show_of(setlist_copy(tmp_path), 0.1) as (show, audio):
        scene = show.scenes[0]
        scene.enter()
        scene.tick(1 / 60)
        first = scene.shown.table.copy()
        for bad in [(float("nan"),) * LATENT, (1.0,) * (LATENT - 1), ("a",) * LATENT,
                    (float("inf"),) + (0.0,) * (LATENT - 1)]:
            assert scene.on_event(OscMessage("/latent", bad))
        assert scene.dropped == 4 and scene.osc_point is None
        assert not scene.on_event(OscMessage("/other", (1.0,)))  # not the scene's
        assert scene.on_event(OscMessage("/latent", (2.5,) + (0.0,) * (LATENT - 1)))
        scene.tick(1 / 60)
        assert scene.requested_point[0] == pytest.approx(2.5)
        moved = scene.shown.table
        assert np.isfinite(moved).all() and not np.array_equal(moved, first)
        assert scene.status()["dropped"] == 4
        # the knobs (MIDI learn, /showrunner/param) move it while OSC has not
        assert scene.set_param("z1", 9.0) is not None  # out of range: refused
        scene.exit()
