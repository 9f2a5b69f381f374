"""Setlist loading: good setlists resolve; every malformed one is a single, specific line for people.

The malformed setlists live in tests/data/setlists/bad_*.toml, each with a comment saying what is
wrong. Each is checked twice: through load_setlist() (the message names the file, the cue, the field
and what was expected) and through `showrunner check` (exit 2, one line on stderr, no traceback).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.errors import UserError
from tests.setlist_errors import check_one_line_error
from engine.setlist import LoadedSetlist, load_setlist
from scenes.builtin.blackout import Blackout
from scenes.builtin.pulse import Pulse, PulseParams

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "setlists"
DEMO = REPO / "setlists" / "demo.toml"

# (file name under tests/data/setlists, substrings the one-line error must contain besides the path)
BAD_SETLISTS = [
    ("bad_toml_syntax.toml", ["invalid TOML", "line 2"]),
    ("bad_seed_type.toml", ["field 'seed'", "valid integer", "'seven'"]),
    ("bad_tick_rate_zero.toml", ["field 'tick_rate'", "greater than or equal to 1", "got 0"]),
    ("bad_tick_rate_negative.toml", ["field 'tick_rate'", "greater than or equal to 1", "got -60"]),
    ("bad_resolution_string.toml", ["field 'resolution'", "WIDTHxHEIGHT", "'1280 by 720'"]),
    ("bad_resolution_too_small.toml", ["field 'resolution'", "between 16 and 8192 pixels"]),
    ("bad_unknown_top_level_key.toml", ["unknown key 'colour'", "not allowed here"]),
    ("bad_unknown_cue_key.toml", ["cue 'intro' (#1)", "unknown key 'duration'", "not allowed here"]),
    ("bad_unknown_audio_key.toml", ["unknown key 'audio.volume'", "not allowed here"]),
    ("bad_missing_title.toml", ["field 'title'", "required but missing"]),
    ("bad_no_cues.toml", ["field 'cues'", "at least one cue"]),
    ("bad_cues_absent.toml", ["field 'cues'", "required but missing"]),
    ("bad_cue_missing_scene.toml", ["cue 'intro' (#1)", "field 'scene'", "required but missing"]),
    ("bad_cue_id_characters.toml", ["cue 'intro scene!' (#1)", "field 'id'",
                                    "letters, digits, '_', '-' or '.'"]),
    ("bad_cue_id_not_a_string.toml", ["cue #1", "field 'id'", "valid string", "got 5"]),
    ("bad_cue_not_a_table.toml", ["cue #1", "valid dictionary", "'intro'"]),
    ("bad_unknown_scene.toml", ["cue 'intro' (#2)", "field 'scene'", "unknown scene 'pulsar'",
                                "known scenes:", "pulse", "blackout"]),
    ("bad_duplicate_cue_ids.toml", ["cue 'intro' (#3)", "duplicate cue id", "first used by cue #1",
                                    "must be unique"]),
    ("bad_pulse_decay_type.toml", ["cue 'intro' (#1)", "field 'params.decay'", "scene 'pulse'",
                                   "valid number", "'slow'"]),
    ("bad_pulse_unknown_param.toml", ["cue 'intro' (#1)", "field 'params.colour'", "scene 'pulse'",
                                      "unknown key"]),
    ("bad_advance_after_negative.toml", ["cue 'intro' (#1)", "field 'advance.after'", "greater than 0",
                                         "got -5"]),
    ("bad_advance_cc_out_of_range.toml", ["cue 'intro' (#1)", "field 'advance.cc'",
                                          "less than or equal to 127", "got 200"]),
    ("bad_transition_kind.toml", ["cue 'intro' (#1)", "field 'transition.kind'", "'cut' or 'fade'",
                                  "got 'wipe'"]),
    ("bad_several_problems.toml", ["field 'seed'", "valid integer", "(and 2 more problems)"]),
    ("bad_not_utf8.toml", ["not a text file", "expected UTF-8"]),
    ("bad_directory.toml", ["is a folder", "expected a .toml file"]),
    ("bad_missing.toml", ["setlist not found"]),  # deliberately absent
]
BAD_IDS = [name.removesuffix(".toml") for name, _ in BAD_SETLISTS]


def _write(tmp_path: Path, text: str, name: str = "show.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = 'title = "t"\n{extra}\n[[cues]]\nid = "intro"\nscene = "pulse"\n'


# The data folder itself.
def test_every_bad_setlist_file_is_in_the_table() -> None:
    on_disk = {p.name for p in DATA.glob("bad_*")}
    in_table = {name for name, _ in BAD_SETLISTS}
    assert on_disk == in_table - {"bad_missing.toml"}
    assert not (DATA / "bad_missing.toml").exists()


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("bad_*.toml") if p.is_file()))
def test_each_bad_setlist_file_says_what_is_wrong_in_a_comment(name: str) -> None:
    first_line = (DATA / name).read_bytes().splitlines()[0]
    assert first_line.startswith(b"# Malformed: ")


# Malformed setlists through load_setlist().
@pytest.mark.parametrize(("name", "expected"), BAD_SETLISTS, ids=BAD_IDS)
def test_malformed_setlist_raises_one_line_user_error_naming_file_and_field(name: str, expected: list[str]) -> None:
    check_one_line_error(DATA / name, expected)


@pytest.mark.parametrize("name", ["bad_toml_syntax.toml", "bad_not_utf8.toml", "bad_missing.toml",
                                  "bad_directory.toml", "bad_seed_type.toml", "bad_unknown_scene.toml",
                                  "bad_pulse_decay_type.toml"])
def test_malformed_setlist_error_hides_the_underlying_exception_chain(name: str) -> None:
    with pytest.raises(UserError) as caught:
        load_setlist(DATA / name)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True


def test_unknown_scene_message_lists_the_registered_scenes_in_order(tmp_path: Path) -> None:
    path = _write(tmp_path, 'title = "t"\n[[cues]]\nid = "intro"\nscene = "nope"\n')
    # Sorted; scenes registered by other test modules (test_exploding ...) may be among them.
    with pytest.raises(UserError, match=r"known scenes: [\w, ]+$") as caught:
        load_setlist(path)
    names = str(caught.value).split("known scenes: ")[1].split(", ")
    assert names == sorted(names)
    assert {"blackout", "camera", "pulse", "ldd_cubic", "ldd_knot", "ldd_split", "ldd_bubbles"} <= set(names)


def test_unreadable_setlist_path_is_a_user_error(tmp_path: Path) -> None:
    too_long = tmp_path / ("a" * 300 + ".toml")  # NAME_MAX is 255 on Linux: open() fails with ENAMETOOLONG
    with pytest.raises(UserError, match="a.toml"):
        load_setlist(too_long)


# Malformed setlists through the CLI: `showrunner check FILE`.
def _cli() -> list[str]:
    script = Path(sys.executable).parent / "showrunner"
    return [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli"]


def _check(path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SHOWRUNNER_DEBUG"}
    return subprocess.run([*_cli(), "check", str(path)], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=60)


@pytest.fixture(scope="module")
def cli_results() -> dict[str, subprocess.CompletedProcess]:
    """`showrunner check` on every bad setlist, run in parallel (each start-up costs ~0.3 s)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = pool.map(_check, [DATA / name for name, _ in BAD_SETLISTS])
        return dict(zip((name for name, _ in BAD_SETLISTS), results))


@pytest.mark.parametrize(("name", "expected"), BAD_SETLISTS, ids=BAD_IDS)
def test_check_command_exits_2_with_one_stderr_line_for_malformed_setlist(
        cli_results: dict[str, subprocess.CompletedProcess], name: str, expected: list[str]) -> None:
    result = cli_results[name]
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("showrunner: ")
    assert str(DATA / name) in lines[0]
    for part in expected:
        assert part in lines[0]


def test_check_command_exits_2_for_unopenable_setlist_path(tmp_path: Path) -> None:
    result = _check(tmp_path / ("a" * 300 + ".toml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


# Good setlists.
def test_demo_setlist_loads_with_three_pulse_cues_at_1280x720() -> None:
    setlist = load_setlist(DEMO)
    assert isinstance(setlist, LoadedSetlist)
    assert setlist.path == DEMO
    settings = setlist.settings
    assert settings.title == "showrunner demo"
    assert settings.seed == 7
    assert settings.resolution == (1280, 720)
    assert settings.tick_rate == 60.0
    assert settings.midi.input == "disklavier"
    assert [cue.id for cue in setlist.cues] == ["rainbow", "blue", "coda"]
    assert all(cue.scene_class is Pulse for cue in setlist.cues)


def test_demo_cue_params_are_validated_into_the_scene_params_model() -> None:
    rainbow, blue, coda = load_setlist(DEMO).cues
    assert blue.params == PulseParams(palette="mono", hue=0.6, decay=3.0, bar_width=2.0)
    assert rainbow.params.bar_width == 1.0  # default filled in
    assert rainbow.cue.advance.after == 15.0 and rainbow.cue.advance.cc == 67
    assert coda.cue.advance.after is None and coda.cue.advance.cc is None
    assert (coda.cue.transition.kind, coda.cue.transition.seconds) == ("fade", 2.0)
    assert rainbow.cue.transition.kind == "cut"


def test_resolution_array_form_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL.format(extra="resolution = [640, 360]"))
    assert load_setlist(path).settings.resolution == (640, 360)


def test_resolution_string_form_allows_spaces_and_capital_x(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL.format(extra='resolution = " 1920 X 1080 "'))
    assert load_setlist(path).settings.resolution == (1920, 1080)


def test_defaults_apply_when_settings_are_left_out(tmp_path: Path) -> None:
    setlist = load_setlist(_write(tmp_path, MINIMAL.format(extra="")))
    settings = setlist.settings
    assert (settings.seed, settings.tick_rate, settings.fps, settings.resolution) == (0, 60.0, 60.0, (1280, 720))
    assert settings.audio.sample_rate == 48000 and settings.audio.enabled is True
    assert setlist.cues[0].params == PulseParams()


def test_blackout_scene_takes_no_params(tmp_path: Path) -> None:
    path = _write(tmp_path, 'title = "t"\n[[cues]]\nid = "dark"\nscene = "blackout"\nparams = { decay = 1 }\n')
    with pytest.raises(UserError, match=r"cue 'dark' \(#1\): field 'params\.decay' of scene 'blackout': unknown key"):
        load_setlist(path)
    ok = _write(tmp_path, 'title = "t"\n[[cues]]\nid = "dark"\nscene = "blackout"\n', name="ok.toml")
    assert load_setlist(ok).cues[0].scene_class is Blackout


def test_index_of_finds_a_cue_and_names_the_choices_for_an_unknown_one() -> None:
    setlist = load_setlist(DEMO)
    assert setlist.index_of("coda") == 2
    with pytest.raises(UserError, match=r"no cue 'finale'; cues: rainbow, blue, coda"):
        setlist.index_of("finale")


def test_resolve_path_is_relative_to_the_setlist_folder(tmp_path: Path) -> None:
    setlist = load_setlist(_write(tmp_path, MINIMAL.format(extra="")))
    assert setlist.resolve_path("media/clip.mp4") == tmp_path / "media" / "clip.mp4"
    assert setlist.resolve_path("/abs/clip.mp4") == Path("/abs/clip.mp4")


def test_check_refuses_a_camera_fallback_that_run_and_render_would_refuse(tmp_path: Path) -> None:
    path = _write(tmp_path, 'title = "t"\n[camera]\nfallback = "no-such-video.mkv"\n'
                            '[[cues]]\nid = "intro"\nscene = "pulse"\n')
    result = _check(path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"showrunner: {path}: camera fallback video not found: {tmp_path / 'no-such-video.mkv'}"]


def test_a_setlist_nested_too_deeply_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")  # past Python's recursion limit
    with pytest.raises(UserError, match="invalid TOML: nested too deeply") as error:
        load_setlist(path)
    assert "\n" not in str(error.value)
