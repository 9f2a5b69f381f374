"""engine/recovery_state.py: what a restarted show does with a saved state it cannot use (the
round trip itself is tests/integration/test_recovery.py's, on JACK)."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest

from engine import recovery_state, snapshot
from engine.recovery_state import MAGIC, StateSaver, log_identity, read_tick, restore, state_path


def test_a_state_is_saved_beside_the_performance_log(tmp_path):
    assert state_path(tmp_path / "show.perf.jsonl") == tmp_path / "show.perf.jsonl.state"


def test_what_is_not_a_state_is_none(tmp_path):
    path = tmp_path / "show.perf.jsonl.state"
    assert read_tick(path, "abc") is None  # none
    path.write_bytes(b"\x80\x04 not a state")
    assert read_tick(path, "abc") is None
    path.write_bytes(MAGIC + b"12x abc\n" + b"data")
    assert read_tick(path, "abc") is None
    path.write_bytes(MAGIC + b"120 abc\n")  # cut short after its head
    assert read_tick(path, "abc") is None
    path.write_bytes(MAGIC + b"120 abc\n" + b"data")
    assert read_tick(path, "abc") == (120, b"data")
    assert read_tick(path, "abd") is None  # another show's: another log's header


def test_a_log_is_known_by_its_header(tmp_path):
    log = tmp_path / "show.perf.jsonl"
    log.write_text('{"format": "showrunner-performance", "started": 1}\n{"tick": 5}\n')
    first = log_identity(log)
    log.write_text('{"format": "showrunner-performance", "started": 1}\n{"tick": 5}\n{"tick": 9}\n')
    assert log_identity(log) == first  # the same show, further on
    log.write_text('{"format": "showrunner-performance", "started": 2}\n')
    assert log_identity(log) != first  # a show started again at the same path
    assert log_identity(tmp_path / "none.perf.jsonl") == "-"


def test_a_state_that_cannot_be_used_leaves_the_show_as_it_was(tmp_path):
    show = SimpleNamespace(scenes=[], clock=SimpleNamespace(tick_count=0))
    before = dict(vars(show))
    path = tmp_path / "show.perf.jsonl.state"
    path.write_bytes(b"garbage")
    assert restore(show, path, until=1000, identity="abc") is None
    path.write_bytes(MAGIC + b"900 abc\n" + pickle.dumps({"state": {}}))
    assert restore(show, path, until=600, identity="abc") is None  # from after where the dead show's log ends
    path.write_bytes(MAGIC + b"300 abc\n" + pickle.dumps({"state": {}})[:-5])  # cut short
    assert restore(show, path, until=600, identity="abc") is None
    path.write_bytes(MAGIC + b"300 xyz\n" + pickle.dumps({"state": {}}))  # another show's
    assert restore(show, path, until=600, identity="abc") is None
    assert vars(show) == before


def test_a_state_that_cannot_be_put_into_the_show_is_renamed_and_said(tmp_path, monkeypatch):
    show = SimpleNamespace(scenes=[], clock=SimpleNamespace(tick_count=0), learn=SimpleNamespace(path=None))
    path = tmp_path / "show.perf.jsonl.state"
    path.write_bytes(MAGIC + b"300 abc\n" + b"data")
    monkeypatch.setattr(snapshot, "read", lambda show, data: {"state": {}})

    def fails(show, saved, keep):
        raise ValueError("a scene refused it")
    monkeypatch.setattr(snapshot, "apply", fails)
    with pytest.raises(ValueError):
        restore(show, path, until=600, identity="abc")
    assert not path.exists() and (tmp_path / "show.perf.jsonl.state.bad").exists()  # the next show: from the start


def test_a_save_that_fails_once_is_tried_again_and_one_that_cannot_be_made_stops(tmp_path, monkeypatch):
    saver = StateSaver(tmp_path / "show.perf.jsonl.state", every=1.0, tick_rate=60, identity="abc")
    show = SimpleNamespace(clock=SimpleNamespace(tick_count=60), scenes=[], frame_index=30)
    failures = [RuntimeError("dictionary changed size during iteration")]

    def save(show, frame, leave):
        if failures:
            raise failures.pop()
        return b"state"
    monkeypatch.setattr(snapshot, "save", save)
    saver.maybe_save(show)
    assert not saver._off and saver.saved == []
    show.clock.tick_count = 120  # the next save
    saver.maybe_save(show)
    saver.join()
    assert read_tick(saver.path, "abc") == (120, b"state")
    failures.append(snapshot.SnapshotError("a socket in the scene"))
    show.clock.tick_count = 180
    saver.maybe_save(show)
    assert saver._off


def test_a_show_whose_models_train_in_threads_saves_no_state(tmp_path):
    saver = StateSaver(tmp_path / "show.perf.jsonl.state", every=1.0, tick_rate=60, identity="abc")
    scene = SimpleNamespace(context=SimpleNamespace(trainers={"vae": object()}))
    show = SimpleNamespace(clock=SimpleNamespace(tick_count=60), scenes=[scene], frame_index=30)
    saver.maybe_save(show)
    saver.join()
    assert not saver.path.exists() and saver.saved == []


def test_a_new_show_clears_the_state_an_earlier_one_left(tmp_path):
    log = tmp_path / "show.perf.jsonl"
    state_path(log).write_bytes(MAGIC + b"1 abc\nx")
    state_path(log).with_suffix(".state.tmp").write_bytes(MAGIC + b"2 abc\nx")
    state_path(log).with_suffix(".state.bad").write_bytes(MAGIC + b"3 abc\nx")
    recovery_state.clear(log)
    assert not list(tmp_path.iterdir())
