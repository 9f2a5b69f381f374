"""Learners inside a whole show: compiled at load, never during the show, deterministic in metrics."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from engine.clock import VirtualTime
from scenes.ldd.learners import CubicConfig, KnotConfig, LearnerGroup
from engine.midi import MidiEvent, NoteOff, NoteOn
from engine.midi_file import MidiFilePerformer, load_performance
from engine.scene import Scene, SceneParams
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions
from tests.conftest import PERFORMANCES
from tests.setlist_errors import check_one_line_error

BACH = PERFORMANCES / "asap_Bach_Prelude_bwv846_Shi05M.mid"
SPLIT = 60
KNOT_SLOTS = 4


class TrainingParams(SceneParams):
    cubic: CubicConfig = CubicConfig()
    knot: KnotConfig = KnotConfig()
    detune_scale: float = 0.05
    recompile_at_tick: int = -1  # a deliberate bug for the test that the counter sees it


class Training(Scene):
    """A stand-in for the piece's parts: a bass note renews the cubic, an upper note steps it and
    detunes by its loss; each held bass note trains a knot of its own every tick."""

    name = "test_training"
    Params = TrainingParams

    def load(self) -> None:
        self.cubic = LearnerGroup("cubic", self.params.cubic, seed=self.context.seed_for("cubic"))
        self.knots = LearnerGroup("knot", self.params.knot, size=KNOT_SLOTS,
                                  seed=self.context.seed_for("knots"))
        self.cubic.load()
        self.knots.load()

    def enter(self) -> None:
        self.cubic.reset()
        self.knots.reset()
        self.slot_of: dict[int, int] = {}
        self.events: list[str] = []
        self.ticks = 0

    def on_midi(self, event: MidiEvent) -> bool:
        if isinstance(event, NoteOn) and event.note < SPLIT:
            self.cubic.renew()
            self.events.append("new_target")
            free = [slot for slot in range(KNOT_SLOTS) if slot not in self.slot_of.values()]
            if free:
                self.slot_of[event.note] = free[0]
                self.knots.renew(which=free[0])
        elif isinstance(event, NoteOn):
            self.cubic.step(1)
            self.events.append("step")
            self.context.audio.detune(self.params.detune_scale * float(self.cubic.view.loss[0]))
        elif isinstance(event, NoteOff):
            self.slot_of.pop(event.note, None)
        return True

    def tick(self, dt: float) -> None:
        self.ticks += 1
        if self.ticks == self.params.recompile_at_tick:
            jax.jit(lambda x: x * 2.0)(np.ones(3))  # a function nobody compiled at load
        if self.slot_of:
            self.knots.step(1, which=list(self.slot_of.values()))

    def status(self) -> dict:
        events, self.events = self.events + self.cubic.take_events() + self.knots.take_events(), []
        view = self.cubic.view
        return {"events": events, "loss": round(float(view.loss[0]), 12),
                "grad": [round(float(g), 12) for g in view.grad[0]],
                "knot_loss": [round(float(x), 12) for x in self.knots.view.loss]}


SETLIST = """
title = "training"
seed = 7
[[cues]]
id = "first"
scene = "test_training"
advance = {{ after = {half} }}
[[cues]]
id = "second"
scene = "test_training"
params = {{ knot = {{ learning_rate = 0.05 }}{extra} }}
"""


def run_show(tmp_path: Path, name: str, seconds: float, extra: str = ""):
    setlist_path = tmp_path / f"{name}.toml"
    setlist_path.write_text(SETLIST.format(half=seconds / 2, extra=extra))
    setlist = load_setlist(setlist_path)
    metrics = tmp_path / f"{name}.jsonl"
    show = Show(setlist, ShowOptions(duration=seconds, metrics=metrics), VirtualTime(), display=None)
    performance = load_performance(BACH)
    show.add_source(MidiFilePerformer(performance, show.queue, speed=performance.length / seconds))
    assert show.load() == []
    summary = show.run()
    return summary, [json.loads(line) for line in metrics.read_text().splitlines()]


def test_a_five_minute_show_with_learners_never_compiles(tmp_path):
    summary, lines = run_show(tmp_path, "five-minutes", 300.0)
    assert summary.ticks == 300 * 60
    assert summary.recompilations == 0
    assert not any("recompile" in line["events"] for line in lines)
    events = [event for line in lines for event in line["events"]]
    assert events.count("new_target") > 50 and events.count("step") > 200
    assert {line["cue"] for line in lines} == {"first", "second"}
    knot_losses = np.array([line["knot_loss"] for line in lines])
    assert np.all(np.isfinite(knot_losses)) and knot_losses.min() < 0.05
    detunes = [command for line in lines for command in line.get("audio", []) if "detune" in str(command)]
    assert len(detunes) == events.count("step")


def test_a_compilation_during_the_show_is_reported(tmp_path):
    summary, lines = run_show(tmp_path, "recompiling", 4.0, extra=", recompile_at_tick = 30")
    assert summary.recompilations == 1
    flagged = [line["tick"] for line in lines if "recompile" in line["events"]]
    assert len(flagged) == 1 and lines[flagged[0]]["cue"] == "second"


def test_the_same_show_gives_the_same_learner_metrics(tmp_path):
    _, first = run_show(tmp_path, "a", 20.0)
    _, second = run_show(tmp_path, "b", 20.0)
    keys = ("tick", "events", "loss", "grad", "knot_loss")
    assert [[line[k] for k in keys] for line in first] == [[line[k] for k in keys] for line in second]
    assert len({line["loss"] for line in first}) > 10


@pytest.mark.parametrize("params, expected", [
    ("{ knot = { learning_rate = -1 } }", ["second", "knot.learning_rate", "greater than 0"]),
    ("{ cubic = { x_range = [1, -1] } }", ["second", "cubic", "x_range"]),
    ("{ knot = { minibatch = 64, speed = 3 } }", ["second", "knot.speed"]),
])
def test_bad_learner_params_in_a_setlist_are_one_line_errors(tmp_path, params, expected):
    path = tmp_path / "bad.toml"
    path.write_text(SETLIST.format(half=1.0, extra="").replace(
        "params = { knot = { learning_rate = 0.05 } }", f"params = {params}"))
    check_one_line_error(path, expected)
