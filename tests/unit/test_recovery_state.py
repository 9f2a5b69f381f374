"""engine/recovery_state.py: what a restarted show does with a saved state it cannot use (the
round trip itself is tests/integration/test_recovery.py's, on JACK)."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

from engine import recovery_state
from engine.recovery_state import MAGIC, StateSaver, read_tick, restore, state_path


def test_a_state_is_saved_beside_the_performance_log(tmp_path):
    assert state_path(tmp_path / "show.perf.jsonl") == tmp_path / "show.perf.jsonl.state"


def test_what_is_not_a_state_is_none(tmp_path):
    path = tmp_path / "show.perf.jsonl.state"
    assert read_tick(path) is None  # none
    path.write_bytes(b"\x80\x04 not a state")
    assert read_tick(path) is None
    path.write_bytes(MAGIC + b"12x\n" + b"data")
    assert read_tick(path) is None
    path.write_bytes(MAGIC + b"120\n")  # cut short after its head
    assert read_tick(path) is None
    path.write_bytes(MAGIC + b"120\n" + b"data")
    assert read_tick(path) == (120, b"data")


def test_a_state_that_cannot_be_used_leaves_the_show_as_it_was(tmp_path):
    show = SimpleNamespace(scenes=[], clock=SimpleNamespace(tick_count=0))
    before = dict(vars(show))
    path = tmp_path / "show.perf.jsonl.state"
    path.write_bytes(b"garbage")
    assert restore(show, path, until=1000) is None
    path.write_bytes(MAGIC + b"900\n" + pickle.dumps({"state": {}}))
    assert restore(show, path, until=600) is None  # from after where the dead show's log ends
    path.write_bytes(MAGIC + b"300\n" + pickle.dumps({"state": {}})[:-5])  # cut short
    assert restore(show, path, until=600) is None
    assert vars(show) == before


def test_a_show_whose_models_train_in_threads_saves_no_state(tmp_path):
    saver = StateSaver(tmp_path / "show.perf.jsonl.state", every=1.0, tick_rate=60)
    scene = SimpleNamespace(context=SimpleNamespace(trainers={"vae": object()}))
    show = SimpleNamespace(clock=SimpleNamespace(tick_count=60), scenes=[scene], frame_index=30)
    saver.maybe_save(show)
    saver.join()
    assert not saver.path.exists() and saver.saved == []


def test_a_new_show_clears_the_state_an_earlier_one_left(tmp_path):
    log = tmp_path / "show.perf.jsonl"
    state_path(log).write_bytes(MAGIC + b"1\nx")
    recovery_state.clear(log)
    assert not state_path(log).exists()
