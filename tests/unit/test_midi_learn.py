"""MIDI learn: the mapping of a controller onto a parameter's range, the learn file (loaded,
checked, saved atomically), what cannot be bound (pedals, parameters without bounds), the learn
mode's HUD lines, the keys, and binding changes in the performance log."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import Field

from engine.errors import UserError
from engine.keyboard import KeyAction, KeyboardInstrument
from engine.midi import ControlChange
from engine.midi_learn import (PROMPT, Binding, LearnChange, MidiLearn, Range, bindable, cc_value,
                               for_setlist, load_bindings, parameter_range, save_bindings)
from engine.perflog import PerformanceLog, load
from engine.scene import Scene, SceneParams
from engine.setlist import load_setlist
from scenes.builtin.pulse import PulseParams


class KnobParams(SceneParams):
    steps: int = Field(4, ge=1, le=8)
    open_steps: int = Field(4, gt=0, lt=10)
    flag: bool = False
    gain: float = Field(1.0, ge=0)  # no upper bound
    free: float = 0.5  # no bounds at all
    shape: Literal["a", "b"] = "a"
    maybe: float | None = Field(None, ge=0, le=1)


class Knobs(Scene):
    name = "test_midi_learn_knobs"
    Params = KnobParams


class UnboundParams(SceneParams):
    gain: float = Field(1.0, ge=0)
    shape: Literal["a", "b"] = "a"


class Unbound(Scene):
    name = "test_midi_learn_unbound"
    Params = UnboundParams


SETLIST = """
title = "learn"
[midi]
learn_file = "bindings.json"
[[cues]]
id = "one"
scene = "pulse"
params = { decay = 2.0 }
[[cues]]
id = "knobs"
scene = "test_midi_learn_knobs"
[[cues]]
id = "unbound"
scene = "test_midi_learn_unbound"
[[cues]]
id = "pedalled"
scene = "pulse"
advance = { cc = 20 }
"""


@pytest.fixture
def setlist(tmp_path):
    path = tmp_path / "show.toml"
    path.write_text(SETLIST)
    return load_setlist(path)


def write(path, bindings) -> None:
    path.write_text(json.dumps(bindings))


# The mapping.
def test_bounds_come_from_the_field_constraints_exclusive_ones_moved_inwards():
    assert parameter_range(PulseParams, "decay") == Range("float", pytest.approx(0.06), 60.0)
    assert parameter_range(PulseParams, "hue") == Range("float", 0.0, 1.0)
    assert parameter_range(KnobParams, "steps") == Range("int", 1, 8)
    assert parameter_range(KnobParams, "open_steps") == Range("int", 1, 9)
    assert parameter_range(KnobParams, "flag") == Range("bool", 0.0, 1.0)


@pytest.mark.parametrize(("name", "reason"), [
    ("gain", "gain has no upper bound"), ("free", "free has no bounds"),
    ("shape", "shape is not a number"), ("maybe", "maybe is not a number"),
    ("nothing", "no parameter 'nothing'")])
def test_parameters_without_a_range_cannot_be_bound_and_say_why(name, reason):
    found = parameter_range(KnobParams, name)
    assert isinstance(found, str) and found.startswith(reason)


def test_bindable_lists_the_parameters_in_order_and_the_reasons_for_the_rest():
    names, refused = bindable(PulseParams)
    assert names == ["decay", "hue", "bar_width"]
    assert refused == {"palette": "palette is not a number"}


def test_a_controller_maps_linearly_onto_low_high_exactly_at_the_ends():
    assert cc_value("float", 0.06, 60.0, 0) == 0.06
    assert cc_value("float", 0.06, 60.0, 127) == 60.0
    assert cc_value("float", 0.0, 127.0, 64) == pytest.approx(64.0)
    assert cc_value("float", 10.0, -10.0, 127) == -10.0  # a knob turned the other way
    assert cc_value("int", 1, 8, 0) == 1 and cc_value("int", 1, 8, 127) == 8
    assert cc_value("int", 1, 8, 64) == 5  # 4.528 rounds to 5
    assert [cc_value("bool", 0, 1, v) for v in (0, 63, 64, 127)] == [False, False, True, True]


# The learn file.
def test_bindings_round_trip_through_the_file_and_default_to_the_bounds(setlist, tmp_path):
    path = tmp_path / "bindings.json"
    write(path, [{"channel": 1, "control": 21, "cue": "one", "parameter": "decay"},
                 {"channel": 16, "control": 7, "cue": "knobs", "parameter": "steps", "low": 2, "high": 6}])
    bindings = load_bindings(path, setlist)
    assert bindings == [Binding(1, 21, "one", "decay", pytest.approx(0.06), 60.0),
                        Binding(16, 7, "knobs", "steps", 2.0, 6.0)]
    save_bindings(path, bindings)
    assert load_bindings(path, setlist) == bindings
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bindings.json", "show.toml"]  # no temporary left
    assert json.loads(path.read_text())[1] == {"channel": 16, "control": 7, "cue": "knobs",
                                               "parameter": "steps", "low": 2.0, "high": 6.0}


def test_a_missing_file_is_no_bindings_yet(setlist, tmp_path):
    learn = for_setlist(setlist)
    assert learn.bindings == {} and learn.path == tmp_path / "bindings.json"
    assert not (tmp_path / "bindings.json").exists()


def test_a_setlist_without_learn_file_has_no_bindings_and_nowhere_to_save(tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text('title = "x"\n[[cues]]\nid = "a"\nscene = "pulse"\n')
    learn = for_setlist(load_setlist(path))
    assert learn.path is None and learn.bindings == {}
    learn.toggle()
    assert "no [midi] learn_file" in learn.hud_lines(0)[1]


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not JSON (line 1"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"channel": 1}', "expected a list of MIDI learn bindings"),
    ('[{"channel": 0, "control": 21, "cue": "one", "parameter": "decay"}]',
     "binding #1: channel: Input should be greater than or equal to 1"),
    ('[{"channel": 1, "control": 21, "cue": "one", "parameter": "decay", "extra": 1}]',
     "binding #1: extra: Extra inputs are not permitted"),
    ('[{"channel": 1, "control": 21, "cue": "nope", "parameter": "decay"}]', "binding #1: no cue 'nope'"),
    ('[{"channel": 1, "control": 64, "cue": "one", "parameter": "decay"}]',
     "binding #1: CC 64 is the sustain pedal: it keeps its meaning"),
    ('[{"channel": 1, "control": 67, "cue": "one", "parameter": "hue"}]', "CC 67 is the soft pedal"),
    ('[{"channel": 1, "control": 20, "cue": "one", "parameter": "hue"}]',
     "CC 20 is cue 'pedalled''s advance trigger"),
    ('[{"channel": 1, "control": 21, "cue": "one", "parameter": "palette"}]', "palette is not a number"),
    ('[{"channel": 1, "control": 21, "cue": "knobs", "parameter": "gain"}]', "gain has no upper bound"),
    ('[{"channel": 1, "control": 21, "cue": "one", "parameter": "decay", "low": 0}]',
     "low 0 is not a value of decay: Input should be greater than 0"),
    ('[{"channel": 1, "control": 21, "cue": "one", "parameter": "hue"}, '
     '{"channel": 1, "control": 21, "cue": "one", "parameter": "decay"}]',
     "binding #2: CC 21 ch1 is already bound in cue 'one' by binding #1"),
])
def test_a_malformed_learn_file_is_a_one_line_error_naming_it(setlist, tmp_path, content, message):
    path = tmp_path / "bindings.json"
    path.write_text(content)
    with pytest.raises(UserError) as error:
        for_setlist(setlist)
    text = str(error.value)
    assert "\n" not in text and text.startswith(str(path)) and message in text, text


def test_saving_replaces_the_file_atomically(tmp_path, monkeypatch):
    path = tmp_path / "bindings.json"
    path.write_text("[]")
    import os

    def failing_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        save_bindings(path, [Binding(1, 21, "one", "decay", 0.1, 60.0)])
    monkeypatch.undo()
    assert path.read_text() == "[]"  # the old file is whole
    assert [p.name for p in tmp_path.iterdir()] == ["bindings.json"]  # and no temporary is left


# Learn mode.
def test_the_learn_flow_captures_a_knob_picks_a_parameter_binds_and_saves(setlist, tmp_path):
    learn = for_setlist(setlist)
    assert learn.hud_lines(0) == []
    learn.toggle()
    assert learn.hud_lines(0)[0] == PROMPT == "MIDI learn: move a knob or fader"
    learn.capture(ControlChange(64, 127), 0)  # the sustain pedal is not captured
    assert learn.captured is None and "CC 64 is the sustain pedal: it keeps its meaning" in learn.hud_lines(0)
    learn.capture(ControlChange(21, 40, channel=0), 0)
    assert learn.hud_lines(0)[0] == "CC 21 ch1 -> decay (0.06 .. 60)"
    learn.capture(ControlChange(22, 40), 0)  # the captured one stays until it is bound
    learn.choose(1, 0)
    assert learn.hud_lines(0)[0] == "CC 21 ch1 -> hue (0 .. 1)"
    learn.choose(1, 0)
    learn.choose(1, 0)  # round the list: bar_width, then decay again
    assert learn.hud_lines(0)[0].startswith("CC 21 ch1 -> decay")
    learn.choose(-1, 0)
    change = learn.request_bind(0)
    assert change == LearnChange("bind", Binding(1, 21, "one", "bar_width", pytest.approx(0.008), 8.0))
    assert learn.captured is None and learn.hud_lines(0)[0] == PROMPT  # ready for the next knob
    assert learn.apply(change) is None
    saved = json.loads((tmp_path / "bindings.json").read_text())
    assert [(b["control"], b["cue"], b["parameter"]) for b in saved] == [(21, "one", "bar_width")]
    assert learn.take(ControlChange(21, 127), 0) == (change.binding, 8.0)
    assert learn.take(ControlChange(21, 127), 1) is None  # bound in cue one only
    assert learn.take(ControlChange(21, 127, channel=1), 0) is None  # another channel

    learn.capture(ControlChange(21, 3), 0)  # the bound parameter is picked, and marked
    assert learn.hud_lines(0)[0] == "CC 21 ch1 -> bar_width (0.008 .. 8)  [bound]"
    unbind = learn.request_unbind(0)
    assert unbind == LearnChange("unbind", change.binding)
    learn.apply(unbind)
    assert json.loads((tmp_path / "bindings.json").read_text()) == []
    learn.capture(ControlChange(21, 3), 0)
    assert learn.request_unbind(0) is None and "CC 21 ch1 is not bound in cue one" in learn.hud_lines(0)
    learn.toggle()
    assert not learn.active and learn.hud_lines(0) == []


def test_a_scene_without_bindable_parameters_says_why_on_the_hud(setlist):
    learn = MidiLearn(setlist)
    learn.toggle()
    learn.capture(ControlChange(21, 0), 2)
    line = learn.hud_lines(2)[0]
    assert line.startswith("CC 21 ch1: scene test_midi_learn_unbound has no parameter that can be bound")
    assert "gain has no upper bound" in line and "shape is not a number" in line
    assert learn.request_bind(2) is None
    assert learn.bindings == {}


def test_an_advance_trigger_controller_is_not_captured(setlist):
    learn = MidiLearn(setlist)
    learn.toggle()
    learn.capture(ControlChange(20, 127), 3)
    assert learn.captured is None and "advance trigger: it keeps its meaning" in learn.hud_lines(3)[1]


def test_keys_of_learn_mode_and_escape_leaves_it_instead_of_quitting():
    keys = KeyboardInstrument()
    assert keys.key_down("f2") == KeyAction("learn")
    assert keys.key_down("up") is None and keys.key_down("return") is None
    assert keys.key_down("escape") == KeyAction("quit")
    keys.learning = True
    assert keys.key_down("escape") == KeyAction("learn_leave")
    assert keys.key_down("up") == KeyAction("learn_choose", -1)
    assert keys.key_down("down") == KeyAction("learn_choose", 1)
    assert keys.key_down("return") == KeyAction("learn_bind")
    assert keys.key_down("enter") == KeyAction("learn_bind")
    assert keys.key_down("delete") == KeyAction("learn_unbind")
    assert keys.key_down("f2") == KeyAction("learn")
    assert keys.key_down("space") == KeyAction("go")  # the rest of the keys keep their meaning
    assert keys.key_down("a") == KeyAction("note_on", 60)


# The performance log.
def test_binding_changes_and_the_starting_bindings_come_back_from_the_performance_log(tmp_path):
    start = Binding(1, 21, "one", "decay", 0.06, 60.0)
    header = {"setlist": {"path": "/x/show.toml", "text": ""}, "tick_rate": 60.0,
              "midi_learn": [start.record()]}
    changes = [LearnChange("bind", Binding(3, 7, "one", "hue", 0.0, 1.0)), LearnChange("unbind", start)]
    log = PerformanceLog(tmp_path / "p.jsonl", header)
    log.tick(30, [], [], learn=changes[:1])
    log.tick(31, [], [], learn=changes[1:])
    log.end(40)
    replay = load(tmp_path / "p.jsonl")
    assert replay.header["midi_learn"] == [start.record()]
    assert replay.learn_changes(30) == changes[:1] and replay.learn_changes(31) == changes[1:]
    assert replay.learn_changes(32) == []


@pytest.mark.parametrize(("line", "message"), [
    ({"tick": 3, "learn": [{"op": "bind", "channel": 17, "control": 7, "cue": "one", "parameter": "hue",
                            "low": 0, "high": 1}]}, "line 2: not a tick record (learn.0.channel"),
    ({"tick": 3, "learn": [{"op": "move", "channel": 1, "control": 7, "cue": "one", "parameter": "hue",
                            "low": 0, "high": 1}]}, "learn.0.op"),
    ({"tick": 3, "learn": [{"op": "bind", "channel": 1, "control": 7, "cue": "one", "parameter": "hue"}]},
     "learn.0.low: Field required"),
])
def test_a_bad_binding_change_in_a_log_is_a_one_line_error(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    PerformanceLog(path, {"setlist": {"path": "s.toml", "text": ""}, "tick_rate": 60.0}).close()
    with path.open("a") as file:
        file.write(json.dumps(line) + "\n")
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        load(path)
