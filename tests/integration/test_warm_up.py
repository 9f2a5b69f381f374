"""Every registered scene warms up before the show (enter, notes, ticks, a draw, exit) without an
exception, so its pipelines compile before the audience sees it; `check` fails when one does not."""

from __future__ import annotations

import subprocess

from engine.scene import Scene, known_scenes
from tests.conftest import ROOT, showrunner_command

VIDEO = ROOT / "assets" / "video" / "intel_asl_book.mkv"


# The instruments the bundled pieces' scenes play: the first piece's overtones, the grains piece's
# granulator.
SOUND = f"""
[sound]
notes = ["overtones"]
[sound.samples]
flute = "{ROOT}/assets/audio/grains/smstools_flute-A4.wav"
[sound.tables]
vae = {{ seconds = 1 }}
ear_a = {{ seconds = 4.2 }}
ear_b = {{ seconds = 4.2 }}
[sound.instruments.overtones]
kind = "overtones"
[sound.instruments.grains]
kind = "granulator"
[sound.instruments.loops]
kind = "sampler"
"""
# Parameters (and note sources) a scene cannot do without.
PARAMS = {"vae_grains": 'params = { sources = ["flute"] }\n',
          "ear": f'params = {{ checkpoint = "{ROOT}/build/ear.ckpt" }}\n',
          "dice_waltz": 'source = { kind = "dice" }\n',
          "padberg_text": 'source = { kind = "padberg" }\n'}


def every_scene_setlist(path, scenes) -> None:
    cues = "".join(f'[[cues]]\nid = "c{i}"\nscene = "{name}"\n{PARAMS.get(name, "")}'
                   for i, name in enumerate(scenes))
    path.write_text(f'title = "every scene"\nresolution = "160x90"\n[camera]\nfallback = "{VIDEO}"\n'
                    + SOUND + cues)


def test_every_registered_scene_warms_up_without_an_exception(tmp_path, egl):
    from engine.scene import _REGISTRY

    known_scenes()  # every installed piece loaded
    scenes = [name for name, cls in _REGISTRY.items() if cls.__module__.startswith("scenes.")]
    assert {"pulse", "ldd_cubic", "ldd_knot", "ldd_split", "ldd_bubbles", "grain_clouds",
            "vae_grains", "ear", "dice_waltz", "padberg_text"} <= set(scenes)
    setlist = tmp_path / "all.toml"
    every_scene_setlist(setlist, scenes)
    done = subprocess.run(showrunner_command("check", str(setlist)), capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "warm up" not in done.stderr


class FailsToWarmUp(Scene):
    """Draws only what a note left behind, and that draw raises: as the LDD parts did before their
    warm-up played them notes."""

    name = "test_fails_to_warm_up"

    def on_midi(self, event):
        self.drawn = True
        return True

    def draw(self, alpha):
        if getattr(self, "drawn", False):
            raise RuntimeError("no pipeline for this")


def test_a_scene_whose_warm_up_raises_is_reported_by_the_show(tmp_path, gl):
    from engine.clock import VirtualTime
    from engine.setlist import load_setlist
    from engine.show import Show, ShowOptions

    setlist = tmp_path / "bad.toml"
    setlist.write_text('title = "bad"\n[[cues]]\nid = "a"\nscene = "test_fails_to_warm_up"\n')
    show = Show(load_setlist(setlist), ShowOptions(), VirtualTime(), None)
    assert show.load() == []
    assert show.warm_up_failures == []  # no display: nothing drawn, nothing fails
    from engine.display import open_display

    display = open_display((160, 90), headless=True)
    try:
        show = Show(load_setlist(setlist), ShowOptions(), VirtualTime(), display)
        assert show.load() == []
        assert len(show.warm_up_failures) == 1
        assert "cue 'a'" in show.warm_up_failures[0] and "no pipeline for this" in show.warm_up_failures[0]
    finally:
        display.close()
