"""MIDI learn in a show: the rehearsal keys (through the keyboard mapping and Show.apply_key) bind a
knob to a parameter, the binding is saved and moves the parameter at the tick its CC is delivered,
and a replay of the performance log binds at the same tick and sets the same values."""

from __future__ import annotations

import json

import pytest

from engine import midi_learn, perflog
from engine.clock import VirtualTime
from engine.midi import ControlChange
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions

SETLIST = """
title = "learn"
[midi]
learn_file = "bindings.json"
[[cues]]
id = "one"
scene = "pulse"
[[cues]]
id = "two"
scene = "pulse"
"""


class Script:
    """A performer as a MIDI source: at given show seconds, moves a controller or presses a key
    in the window (through the keyboard mapping, as the window's events are)."""

    def __init__(self, show: Show, steps: list[tuple[float, str, object]]) -> None:
        self.show, self.steps, self.origin = show, sorted(steps, key=lambda s: s[0]), 0.0

    def start(self, origin: float) -> None:
        self.origin = origin

    def take_notices(self) -> list[str]:
        return []

    def poll(self, now: float) -> None:
        while self.steps and self.steps[0][0] <= now - self.origin:
            _, kind, what = self.steps.pop(0)
            if kind == "cc":
                self.show.queue.push(now, what)
            else:
                self.show.apply_key(self.show.keyboard.key_down(what), now)


def run_show(tmp_path, steps, seconds=3.0, replay=None, learn=None):
    setlist = load_setlist(tmp_path / "show.toml")
    metrics = tmp_path / ("replay.jsonl" if replay else "metrics.jsonl")
    log = None if replay else perflog.PerformanceLog(tmp_path / "perf.jsonl", {
        "setlist": {"path": str(setlist.path), "text": setlist.path.read_text()}, "tick_rate": 60.0,
        "midi_learn": (learn or midi_learn.MidiLearn(setlist)).header()})
    show = Show(setlist, ShowOptions(duration=seconds, metrics=metrics), VirtualTime(), None,
                perf_log=log, replay=replay, learn=learn)
    show.load()
    if not replay:
        show.add_source(Script(show, steps))
    show.run()
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    return show, records


def learned(records):
    return [(r["tick"], *entry) for r in records for entry in r.get("learned", [])]


def test_keys_bind_a_knob_save_it_and_the_replay_binds_at_the_same_tick(tmp_path):
    (tmp_path / "show.toml").write_text(SETLIST)
    setlist = load_setlist(tmp_path / "show.toml")
    learn = midi_learn.for_setlist(setlist)
    steps = [(0.2, "key", "f2"),  # learn mode
             (0.3, "cc", ControlChange(64, 127)),  # the sustain pedal: not captured
             (0.4, "cc", ControlChange(21, 10)),  # captured: nothing bound yet, the scene has it
             (0.5, "key", "down"), (0.55, "key", "up"), (0.6, "key", "down"),  # decay, hue, decay, hue
             (0.7, "key", "return"),  # bind CC 21 -> hue, saved
             (0.8, "key", "escape"),  # leaves learn mode; does not end the show
             (1.0, "cc", ControlChange(21, 0)), (1.5, "cc", ControlChange(21, 127)),
             (1.6, "key", "space"),  # cue two: CC 21 is not bound there
             (2.0, "cc", ControlChange(21, 64)),
             (2.2, "key", "left"),  # back in cue one
             (2.5, "cc", ControlChange(21, 64))]
    show, records = run_show(tmp_path, steps, learn=learn)
    assert show.summary.ticks == 180  # Escape in learn mode did not end the show
    saved = json.loads((tmp_path / "bindings.json").read_text())
    assert saved == [{"channel": 1, "control": 21, "cue": "one", "parameter": "hue", "low": 0.0, "high": 1.0}]
    bound_at = [r["tick"] for r in records if "midi_bind" in r["events"]]
    assert bound_at == [42]  # Enter at 0.7 s (before that frame's ticks): it acts from the next tick run
    assert [(cue, name, value) for _, cue, name, value in learned(records)] == [
        ("one", "hue", 0.0), ("one", "hue", 1.0), ("one", "hue", pytest.approx(64 / 127))]
    assert show.scenes[0].params.hue == pytest.approx(64 / 127)
    assert show.scenes[1].params.hue == 0.0  # cue two's scene was never touched
    assert not show.keyboard.learning

    # The performance log holds the binding at its tick; the replay binds and sets the same.
    replay = perflog.load(tmp_path / "perf.jsonl")
    assert replay.header["midi_learn"] == []
    assert [c.op for c in replay.learn_changes(42)] == ["bind"]
    again, replayed = run_show(tmp_path, [], replay=replay)
    assert learned(replayed) == learned(records)
    assert again.scenes[0].params.hue == pytest.approx(64 / 127)
    assert json.loads((tmp_path / "bindings.json").read_text()) == saved  # a replay never saves


def test_the_bindings_a_show_starts_with_go_into_its_log_and_its_replay(tmp_path):
    (tmp_path / "show.toml").write_text(SETLIST)
    (tmp_path / "bindings.json").write_text(json.dumps(
        [{"channel": 2, "control": 30, "cue": "one", "parameter": "decay", "low": 0.5, "high": 10}]))
    setlist = load_setlist(tmp_path / "show.toml")
    learn = midi_learn.for_setlist(setlist)
    steps = [(0.5, "cc", ControlChange(30, 127, channel=1)), (0.6, "cc", ControlChange(30, 127)),  # ch1: unbound
             (1.0, "key", "f2"), (1.1, "cc", ControlChange(30, 0, channel=1)),  # captured, and still moves it
             (1.2, "key", "delete"), (1.5, "cc", ControlChange(30, 127, channel=1))]  # unbound: nothing
    show, records = run_show(tmp_path, steps, seconds=2.0, learn=learn)
    assert [(cue, name, value) for _, cue, name, value in learned(records)] == [
        ("one", "decay", 10.0), ("one", "decay", 0.5)]
    assert json.loads((tmp_path / "bindings.json").read_text()) == []
    replay = perflog.load(tmp_path / "perf.jsonl")
    assert replay.header["midi_learn"][0]["parameter"] == "decay"
    _, replayed = run_show(tmp_path, [], seconds=2.0, replay=replay)
    assert learned(replayed) == learned(records)


@pytest.mark.parametrize("from_state", [False, True], ids=["from_the_log", "from_a_saved_state"])
def test_a_show_back_after_a_death_has_its_bindings_and_saves_new_ones(tmp_path, from_state):
    # (engine.recovery_state, Show.catch_up) The show that died was in learn mode with a knob
    # bound; the show back has the binding, is out of learn mode either way (the log holds the
    # bindings, not the mode; a saved state once brought the mode back with the keys out of it),
    # and what it binds from here is saved in its learn file (a catch-up from the log once left
    # it saving nothing).
    from engine.recovery_state import KEPT, MAGIC, log_identity
    from engine import snapshot

    (tmp_path / "show.toml").write_text(SETLIST)
    setlist = load_setlist(tmp_path / "show.toml")
    steps = [(0.2, "key", "f2"), (0.4, "cc", ControlChange(21, 10)), (0.5, "key", "down"),
             (0.7, "key", "return")]  # bound and saved; still in learn mode at the end
    died, _ = run_show(tmp_path, steps, seconds=1.0, learn=midi_learn.for_setlist(setlist))
    assert died.learn.active and died.keyboard.learning
    state = None
    if from_state:
        state = tmp_path / "perf.jsonl.state"
        state.write_bytes(MAGIC + f"60 {log_identity(tmp_path / 'perf.jsonl')}\n".encode()
                          + snapshot.save(died, died.frame_index, leave=KEPT))
    (tmp_path / "bindings.json").unlink()
    back = Show(setlist, ShowOptions(duration=2.0), VirtualTime(), None, learn=midi_learn.for_setlist(setlist))
    back.load()
    back.catch_up(perflog.load(tmp_path / "perf.jsonl"), 60, state=state)
    assert back.restored_at == (60 if from_state else 0)
    assert not back.learn.active and not back.keyboard.learning
    assert [(b.control, b.parameter) for b in back.learn.bindings.values()] == [(21, "hue")]
    assert back.learn.path == tmp_path / "bindings.json"
    back.learn.apply(next(iter(perflog.load(tmp_path / "perf.jsonl").learn.values()))[0])  # a binding made live
    assert json.loads((tmp_path / "bindings.json").read_text())[0]["parameter"] == "hue"
