"""The performance log: what a live show writes, read back exactly; bad logs are one-line errors."""

from __future__ import annotations

import json

import pytest

from engine.errors import UserError
from engine.keyboard import KeyAction
from engine.midi import ControlChange, NoteOff, NoteOn, PitchBend, ProgramChange
from engine.perflog import MACHINE_EVENTS, PerformanceLog, comparable, load

HEADER = {"setlist": {"path": "/x/show.toml", "text": "title = 'x'"}, "tick_rate": 60.0}


def write_log(path, ticks, end=None):
    log = PerformanceLog(path, HEADER)
    for tick, midi, actions, *cue in ticks:
        log.tick(tick, midi, actions, *cue)
    if end is not None:
        log.end(end)
    else:
        log.close()
    return path


def test_inputs_come_back_exactly_with_their_ticks(tmp_path):
    # Stamps such as a port gives them: long binary fractions that must survive the round trip.
    events = [NoteOn(60, 101, 2, 0.1 + 0.2), NoteOff(60, 64, 2, 1 / 3), ControlChange(67, 127, 0, 2.000000000000001),
              ProgramChange(5, 1, 7.25), PitchBend(-8192, 3, 9.999999999999998)]
    path = write_log(tmp_path / "p.jsonl", [(12, events[:2], []), (13, [], []), (40, events[2:], [KeyAction("go")]),
                                             (41, [], [KeyAction("jump", 3), KeyAction("gain", -1)])], end=99)
    replay = load(path)
    assert replay.complete and replay.end == 99
    assert replay.header["tick_rate"] == 60.0 and replay.header["format"] == "showrunner-performance"
    assert replay.due(12) == events[:2] and replay.due(40) == events[2:]
    assert [e.time for e in replay.due(12)] == [0.1 + 0.2, 1 / 3]  # bit for bit
    assert replay.due(13) == [] and 13 not in replay.midi  # empty ticks are not written
    assert replay.moves(40) == [KeyAction("go")]
    assert replay.moves(41) == [KeyAction("jump", 3), KeyAction("gain", -1)]
    assert len(path.read_text().splitlines()) == 1 + 3 + 1


def test_a_log_cut_by_a_crash_replays_up_to_its_last_input(tmp_path):
    path = write_log(tmp_path / "p.jsonl", [(5, [NoteOn(60, 90)], []), (80, [NoteOff(60)], [])])
    with path.open("a") as file:
        file.write('{"tick": 95, "midi": [{"type": "NoteOn", "no')  # the process died mid-line
    replay = load(path)
    assert not replay.complete and replay.end == 80
    assert replay.due(80) == [NoteOff(60)]


GOOD_HEADER = '{"format": "showrunner-performance", "version": 2, "setlist": {"path": "s.toml", "text": ""}, ' \
              '"tick_rate": 60'


def header_with(extra: str) -> str:
    return GOOD_HEADER + extra + "}\n"


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("not json\n", "line 1 is not JSON"),
    ('{"format": "something else"}\n', "not a showrunner performance log"),
    ('{"format": "showrunner-performance", "version": 7}\n', "version 7 is not supported"),
    ('{"format": "showrunner-performance", "version": 2}\n', "line 1 .the header.: setlist: Field required"),
    (header_with(', "tick_rate": "x"'), "line 1 .the header.: tick_rate: Input should be a valid number"),
    (header_with(', "fps": -5'), "line 1 .the header.: fps: Input should be greater than or equal to 1"),
    (header_with(', "fps": 0'), "fps: Input should be greater than or equal to 1"),
    (header_with(', "resolution": "big"'), "resolution: Input should be a valid tuple"),
    (header_with(', "resolution": [1, 720]'), "resolution: .*between 16 and 8192"),
    (header_with(', "camera": "webcam"'), "camera: Input should be a valid dictionary"),
    (header_with("") + '{"tick": 3, "midi": [{"type": "NoteOn"}]}\n{"end": 4}\n',
     "line 2: not a tick record .midi.0.NoteOn.note: Field required"),
    (header_with("") + '{"tick": 3, "midi": [{"type": "NoteOn", "note": "sixty", "velocity": 9}]}\n',
     "line 2: not a tick record .*note: Input should be a valid integer"),
    (header_with("") + '{"tick": 3, "midi": [{"type": "NoteOn", "note": 60, "velocity": 200}]}\n',
     "line 2: .*velocity: Input should be less than or equal to 127"),
    (header_with("") + '{"tick": 3, "midi": [{"type": "NoteOn", "note": 60, "velocity": 9, "time": NaN}]}\n',
     "line 2: .*time: Input should be a finite number"),
    (header_with("") + '{"tick": 3, "midi": [{"type": "Sysex"}]}\n', "line 2: .*does not match any of the expected"),
    (header_with("") + '{"tick": 3, "actions": [["fly", 1]]}\n', "line 2: .*actions.0.0: Input should be"),
    (header_with("") + '{"tick": -1, "actions": [["go", 0]]}\n', "line 2: .*tick: Input should be greater than"),
    (header_with("") + '{"end": -5}\n', "line 2: .*end: Input should be greater than or equal to 0"),
    (header_with("") + '[1, 2]\n', "line 2: not a tick record"),
    (header_with("") + '{"end": 4}\n{"tick": 9, "actions": [["go", 0]]}\n', "line 3: a line after the end line"),
    (header_with("") + '{"tick": 9, "actions": [["go", 0]]}\n{"end": 4}\n', "line 3: the show ends at tick 4, before"),
    (header_with(', "start_cue": "a\\nb"'), "start_cue: String should match pattern"),
    ('{"format": "showrunner-performance", "version": "1\\n2"}\n', "version '1.n2' is not supported"),
    (header_with("") + 'nope\n{"end": 4}\n', "line 2 is not JSON"),
    ("[" * 100_000 + "]" * 100_000 + "\n", "line 1 is not JSON"),  # nested past Python's recursion limit
    (header_with("") + '{"tick": 3, "trained": {"a/net": -1}}\n', "line 2: .*trained.a/net: Input should be greater"),
    (header_with("") + '{"tick": 3, "trained": {"a/net": "many"}}\n', "line 2: .*trained.a/net: Input should be a valid"),
])
def test_bad_logs_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as error:
        load(path)
    assert "\n" not in str(error.value)


def test_a_missing_log_is_bad_input(tmp_path):
    with pytest.raises(UserError, match="performance log not found"):
        load(tmp_path / "nothing.jsonl")


def test_an_unwritable_log_is_bad_input(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write performance log"):
        PerformanceLog(tmp_path / "file" / "p.jsonl", HEADER)


def test_comparable_keeps_the_show_and_drops_the_machine():
    line = {"tick": 3, "time": 0.05, "cue": "a", "scene": "s", "events": ["cue", "recompile", "step", "midi_lost"],
            "loss": 0.5, "grad": [1.0], "frame_ms": 3.2, "gpu_ms": 1.0, "capture_ms": 0.3, "learn_ms": 0.4, "xruns": 2,
            "audio_load": 0.1, "rec_frames": 9, "rec_dropped": 0, "audio": [["note_on", 60, 90.0]]}
    kept = comparable(line)
    assert kept == {"tick": 3, "time": 0.05, "cue": "a", "scene": "s", "events": ["cue", "step"], "loss": 0.5,
                    "grad": [1.0], "audio": [["note_on", 60, 90.0]]}
    assert "step" not in MACHINE_EVENTS and "new_target" not in MACHINE_EVENTS
    json.dumps(kept)


def test_the_cue_taken_in_a_tick_comes_back_and_version_1_logs_still_load(tmp_path):
    path = write_log(tmp_path / "p.jsonl", [(1, [], [], "intro"), (30, [NoteOn(60, 90)], [KeyAction("go")], "verse"),
                                             (31, [NoteOff(60)], [])], end=40)
    replay = load(path)
    assert replay.cues == {1: "intro", 30: "verse"} and replay.end == 40
    assert replay.due(30) == [NoteOn(60, 90)] and replay.moves(30) == [KeyAction("go")]
    old = tmp_path / "v1.jsonl"
    old.write_text('{"format": "showrunner-performance", "version": 1, "setlist": {"path": "s.toml", "text": ""}, '
                   '"tick_rate": 60}\n{"tick": 5, "midi": [{"type": "NoteOn", "note": 60, "velocity": 90}]}\n')
    replay = load(old)
    assert replay.cues is None  # written before cues were logged: a replay does not check them
    assert replay.due(5) == [NoteOn(60, 90)] and not replay.complete


def test_trainer_step_counts_come_back_as_the_count_at_every_tick(tmp_path):
    path = tmp_path / "p.jsonl"
    log = PerformanceLog(path, HEADER)
    log.tick(2, [], [], trained={"one/net": 3})
    log.tick(5, [], [], trained={"one/net": 9, "two/net": 1})
    log.tick(8, [], [], trained={"one/net": 0})  # the scene was entered again: reset
    log.end(10)
    replay = load(path)
    steps = replay.trained_steps("one/net")
    assert [steps(tick) for tick in range(10)] == [0, 0, 3, 3, 3, 9, 9, 9, 0, 0]
    assert replay.trained_steps("two/net")(4) == 0 and replay.trained_steps("two/net")(5) == 1
    assert replay.trained_steps("three/net")(9) == 0  # never trained in the live show
    old = tmp_path / "v4.jsonl"
    old.write_text(path.read_text().replace('"version":5', '"version":4', 1))
    assert load(old).trained_steps("one/net") is None  # no counts kept: a replay paces it itself
