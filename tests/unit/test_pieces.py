"""Pieces as plug-ins: the engine never imports scenes/; a setlist names the pieces it uses and the
engine finds them by name (entry points) or module path."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap

import pytest

from engine.errors import UserError
from engine.setlist import load_setlist
from tests.conftest import ROOT


def test_the_engine_never_imports_a_piece():
    offenders = []
    for path in (ROOT / "engine").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n == "scenes" or n.startswith("scenes.")]
    assert offenders == []


def test_the_project_installs_its_pieces_by_name():
    from engine import pieces

    assert pieces.installed() == {"builtin": "scenes.builtin", "composition": "scenes.composition",
                                  "ear": "scenes.ear", "grains": "scenes.grains",
                                  "granolar": "scenes.granolar", "ldd": "scenes.ldd.piece"}
    assert pieces.installed_instruments() == {"overtones": "scenes.ldd.sound.instrument"}


def test_a_piece_written_from_nothing_is_found_by_module_path(tmp_path, monkeypatch):
    package = tmp_path / "mypieces" / "drone"
    package.mkdir(parents=True)
    (tmp_path / "mypieces" / "__init__.py").write_text("")
    (package / "__init__.py").write_text(textwrap.dedent('''
        from engine.scene import Scene

        class Drone(Scene):
            name = "test_piece_drone"
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    setlist = tmp_path / "drone.toml"
    setlist.write_text('title = "t"\npieces = ["mypieces.drone"]\n[[cues]]\nid = "a"\nscene = "test_piece_drone"\n')
    assert load_setlist(setlist).cues[0].scene_class.__name__ == "Drone"


def test_an_unknown_piece_is_a_one_line_error(tmp_path):
    setlist = tmp_path / "bad.toml"
    setlist.write_text('title = "t"\npieces = ["nosuchpiece"]\n[[cues]]\nid = "a"\nscene = "pulse"\n')
    with pytest.raises(UserError, match=r"no piece 'nosuchpiece' \(installed pieces: builtin, composition, ear, grains, granolar, ldd"):
        load_setlist(setlist)


@pytest.mark.parametrize("name", ["", ".x", "a..b", "1piece"])
def test_a_piece_name_that_is_no_module_path_is_a_one_line_error(tmp_path, name):
    setlist = tmp_path / "bad.toml"
    setlist.write_text(f'title = "t"\npieces = ["{name}"]\n[[cues]]\nid = "a"\nscene = "pulse"\n')
    with pytest.raises(UserError, match=f"no piece '{re.escape(name)}': a piece is an installed piece's name"):
        load_setlist(setlist)


def test_a_setlist_naming_only_the_builtin_piece_never_loads_the_first_piece_or_jax(tmp_path):
    """Without [sound] it plays the first piece's overtone instrument (found by kind), and that
    alone: none of the piece's scenes, no jax."""
    setlist = tmp_path / "b.toml"
    setlist.write_text('title = "t"\npieces = ["builtin"]\n[audio]\npartials = 6\n[[cues]]\nid = "a"\n'
                       'scene = "pulse"\n')
    code = ("import sys; from engine.setlist import load_setlist; load_setlist(sys.argv[1]); "
            "print('scenes.ldd.piece' in sys.modules, 'scenes.ldd.cubic' in sys.modules, "
            "'jax' in sys.modules, 'scenes.ldd.sound.instrument' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(setlist)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "False", "True"]
    named = tmp_path / "c.toml"
    named.write_text('title = "t"\npieces = ["builtin"]\n[[cues]]\nid = "a"\nscene = "ldd_knot"\n')
    check = ("import sys; from engine.setlist import load_setlist\ntry: load_setlist(sys.argv[1])\n"
             "except Exception as error: print(error)")  # a fresh process: no piece loaded yet
    done = subprocess.run([sys.executable, "-c", check, str(named)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert "unknown scene 'ldd_knot' (the setlist's pieces: builtin)" in done.stdout, done.stdout + done.stderr


def test_a_piece_s_own_instrument_is_built_in_a_fresh_audio_process(tmp_path):
    """The live audio process imports nothing of the show: the rack names the piece's instrument
    module, and a fresh process (as the audio process is) builds the rack from it."""
    package = tmp_path / "hummer"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent('''
        import numpy as np
        from engine.audio.instrument import Instrument

        class Hum(Instrument):
            kind = "test_hum"

            def render(self, left, right):
                left += 0.25
                right += 0.25

            def idle(self):
                return False
    '''))
    setlist = tmp_path / "hum.toml"
    setlist.write_text('title = "t"\npieces = ["builtin", "hummer"]\n[sound]\n[sound.instruments.hum]\n'
                       'kind = "test_hum"\n[[cues]]\nid = "a"\nscene = "pulse"\n')
    code = textwrap.dedent('''
        import sys
        sys.path.insert(0, sys.argv[2])
        from engine.setlist import load_setlist
        from engine.audio.sound_settings import build_sound
        setlist = load_setlist(sys.argv[1])
        rack, pool = build_sound(setlist.path, setlist.settings.audio.mixer_config(), setlist.settings.sound,
                                 False, setlist.resolve_path)
        print(rack.model_dump_json())
        pool.close()
    ''')
    made = subprocess.run([sys.executable, "-c", code, str(setlist), str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert '"modules":["hummer"]' in made.stdout
    build = ("import sys; sys.path.insert(0, sys.argv[2]); from engine.audio.rack import Rack, RackConfig; "
             "print(float(Rack(RackConfig.model_validate_json(sys.argv[1])).render()[0, 0]))")
    played = subprocess.run([sys.executable, "-c", build, made.stdout.strip(), str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert played.returncode == 0, played.stderr
    assert float(played.stdout) > 0.1


def test_the_overtone_instrument_imports_neither_jax_nor_the_piece_s_scenes():
    """The live audio process imports the first piece's instrument by name (the rack's modules):
    in a fresh process, that import stays light, and registers the kind."""
    code = ("import sys, scenes.ldd.sound.instrument; from engine.audio.instrument import _REGISTRY; "
            "print('jax' in sys.modules, 'scenes.ldd.piece' in sys.modules, "
            "[name for name in sys.modules if name.startswith('scenes.ldd.') and "
            "not name.startswith('scenes.ldd.sound')], 'overtones' in _REGISTRY)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "[]", "True"]


def test_the_legacy_rack_names_the_overtone_instrument_s_module_for_the_audio_process():
    from engine.audio.config import MixerConfig
    from engine.audio.rack import legacy_rack_config

    rack = legacy_rack_config(MixerConfig(partials=6), piano=True)
    assert rack.modules == ["scenes.ldd.sound.instrument"]
    assert [(spec.kind, spec.settings) for spec in rack.instruments] == [("overtones", {"partials": 6}),
                                                                         ("piano", {})]


def test_without_a_piece_bringing_the_overtones_a_setlist_without_sound_is_a_one_line_error(
        tmp_path, monkeypatch):
    from engine import pieces
    from engine.audio import instrument

    monkeypatch.setattr(pieces, "installed_instruments", lambda: {})
    monkeypatch.delitem(instrument._REGISTRY, "overtones", raising=False)
    setlist = tmp_path / "b.toml"
    setlist.write_text('title = "t"\npieces = ["builtin"]\n[[cues]]\nid = "a"\nscene = "pulse"\n')
    with pytest.raises(UserError, match=r"b\.toml: without a \[sound\] table the show plays an instrument "
                                        r"of kind 'overtones', which no installed piece brings "
                                        r"\(installed pieces: builtin, composition, ear, grains, granolar, ldd\)"):
        load_setlist(setlist)


def test_without_the_overtones_a_show_with_its_own_sound_or_none_still_starts(monkeypatch):
    from engine import pieces
    from engine.audio import control, instrument
    from engine.audio.control import NoAudio

    monkeypatch.setattr(pieces, "installed_instruments", lambda: {})
    monkeypatch.delitem(instrument._REGISTRY, "overtones", raising=False)
    monkeypatch.setattr(control, "_DEFAULT_RACK", None)
    audio = NoAudio()  # what `run` starts with before it builds the setlist's rack
    assert audio.rack.instruments == []
    audio.note_on(60, 90)  # sound is off: nothing to play, nothing raised


def test_an_instrument_entry_point_whose_module_is_gone_is_a_one_line_error(monkeypatch):
    from engine import pieces
    from engine.audio.instrument import instrument_class

    monkeypatch.setattr(pieces, "installed_instruments", lambda: {"hum": "scenes.gone.sound"})
    with pytest.raises(UserError, match=r"instrument kind 'hum': its module scenes\.gone\.sound .* cannot be "
                                        r"imported: No module named 'scenes\.gone'"):
        instrument_class("hum")
