"""A scene's model trains beside a show (``context.trainer``): live in a background thread (the real
conv-net regressor, ~50 ms a step, a real 60 Hz wall-clock show), the performance log keeps the
step count the scene saw in every tick where it changed, and a replay trains tick by tick up to
those counts, so the scene sees the same steps and the same losses in every tick; two renders
(paced: a fixed number of steps a tick) are identical."""

from __future__ import annotations

import json

from engine import perflog
from engine.clock import RealTime, VirtualTime
from engine.learners.regressor import Regressor, RegressorConfig
from engine.scene import Scene
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions

SETLIST = """
title = "training"
[[cues]]
id = "net"
scene = "trainee"
"""


class Trainee(Scene):
    """Trains the regressor from its cue's start; shows the step count and loss it sees."""

    name = "trainee"

    def load(self) -> None:
        self.trainer = self.context.trainer(Regressor(RegressorConfig(batch=8)), "regressor",
                                            steps_per_tick=2)
        self.trainer.load()

    def enter(self) -> None:
        self.trainer.reset()
        self.trainer.start()

    def exit(self) -> None:
        self.trainer.stop()

    def status(self) -> dict:
        seen = self.trainer.seen
        return {"trained": seen.steps, "loss": float(seen.summary["loss"])}


def run_show(tmp_path, name, time_source, seconds, replay=None, log=False):
    setlist = load_setlist(tmp_path / "show.toml")
    metrics = tmp_path / f"{name}.jsonl"
    perf_log = perflog.PerformanceLog(tmp_path / "perf.jsonl", {
        "setlist": {"path": str(setlist.path), "text": setlist.path.read_text()}, "tick_rate": 60.0}) \
        if log else None
    show = Show(setlist, ShowOptions(duration=seconds, metrics=metrics), time_source, None,
                perf_log=perf_log, replay=replay)
    show.load()
    show.run()
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    return show, [(r["tick"], r["trained"], r["loss"]) for r in records if "trained" in r]


def test_a_live_show_trains_in_the_background_and_its_replay_sees_the_same_steps_each_tick(tmp_path):
    (tmp_path / "show.toml").write_text(SETLIST)
    show, live = run_show(tmp_path, "live", RealTime(), 3.0, log=True)
    trainer = show.scenes[0].trainer
    assert not trainer.paced and trainer.error is None
    steps = [trained for _, trained, _ in live]
    assert len(live) == 180 and steps == sorted(steps)
    # It trained beside the show (about 60-90 ms a step here, at idle priority: on a busy machine
    # much slower)...
    assert steps[-1] >= 3
    assert len(set(steps)) >= 3  # ...and the scene saw it move on
    losses = [loss for _, _, loss in live]
    assert len(set(losses)) == len(set(steps))  # each new count came with its own state

    replay = perflog.load(tmp_path / "perf.jsonl")
    assert replay.header["version"] == perflog.VERSION
    logged = replay.trained["net/regressor"]
    assert [steps for _, steps in logged] == sorted(set(steps))
    again, replayed = run_show(tmp_path, "replay", VirtualTime(), 3.0, replay=replay)
    assert again.scenes[0].trainer.paced
    assert replayed == live  # the same steps, and bit for bit the same loss, in every tick
    assert again.summary.replay_differences == 0

    # A log whose counts the replay cannot reach (edited by hand: a count that falls without a
    # reset) makes the replay say it differs, not go on quietly.
    lines = (tmp_path / "perf.jsonl").read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if '"trained"' in line)
    record = json.loads(lines[last])
    record["trained"]["net/regressor"] = 1
    lines[last] = json.dumps(record)
    (tmp_path / "perf.jsonl").write_text("\n".join(lines) + "\n")
    edited, _ = run_show(tmp_path, "edited", VirtualTime(), 3.0, replay=perflog.load(tmp_path / "perf.jsonl"))
    assert edited.summary.replay_differences > 0


def test_two_renders_train_the_same_steps_per_tick_identically(tmp_path):
    (tmp_path / "show.toml").write_text(SETLIST)
    _, first = run_show(tmp_path, "first", VirtualTime(), 0.5)
    _, second = run_show(tmp_path, "second", VirtualTime(), 0.5)
    assert [trained for _, trained, _ in first] == [2 * (index + 1) for index in range(30)]
    assert first == second
