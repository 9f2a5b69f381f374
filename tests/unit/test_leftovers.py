"""The shared files of killed shows: removed by a later show once no process maps or holds them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from engine.leftovers import sweep


def _file(path, age: float = 120.0, size: int = 4096):
    path.write_bytes(bytes(size))
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_old_files_no_process_uses_go_and_everything_else_stays(tmp_path):
    shm = tmp_path / "shm"
    shm.mkdir()
    dead_pool = _file(shm / "showrunner-pool-dead")
    dead_state = _file(shm / "showrunner-audio-dead")
    young = _file(shm / "showrunner-pool-young", age=5.0)  # may be between creation and mapping
    other = _file(shm / "someone-elses-file")
    mapped = _file(shm / "showrunner-audio-mapped")
    opened = _file(shm / "showrunner-pool-open")
    orphan = tmp_path / "showrunner-audio-orphan.json"
    orphan.write_text(json.dumps({"state": str(dead_state)}))
    live = tmp_path / "showrunner-audio-live.json"
    live.write_text(json.dumps({"state": str(mapped)}))
    garbled = tmp_path / "showrunner-audio-garbled.json"
    garbled.write_text("{not json")
    for path in (orphan, live, garbled):
        os.utime(path, (time.time() - 120, time.time() - 120))
    view = np.memmap(mapped, np.uint8, mode="r+")
    with open(opened, "rb"):
        removed = sweep([shm], tmp_path)
    assert sorted(removed) == sorted([dead_pool, dead_state, orphan])
    assert all(path.exists() for path in (young, other, mapped, opened, live, garbled))
    assert not any(path.exists() for path in removed)
    del view


def test_a_file_another_process_maps_stays_until_that_process_is_gone(tmp_path):
    shm = tmp_path / "shm"
    shm.mkdir()
    state = _file(shm / "showrunner-audio-playing")
    keeper = subprocess.Popen(  # an audio process that plays on: the file mapped, not open
        [sys.executable, "-c", "import mmap, sys, time\n"
         "with open(sys.argv[1], 'r+b') as f: m = mmap.mmap(f.fileno(), 0)\n"
         "print('mapped', flush=True)\ntime.sleep(60)", str(state)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert keeper.stdout.readline().strip() == "mapped"
        assert sweep([shm], tmp_path) == []
    finally:
        keeper.kill()
        keeper.wait()
    assert sweep([shm], tmp_path) == [state]
    assert not state.exists()


def test_a_folder_that_cannot_be_read_sweeps_nothing(tmp_path):
    assert sweep([tmp_path / "missing"], tmp_path / "missing too") == []


def test_a_new_pool_or_audio_state_first_removes_what_killed_shows_left(monkeypatch):
    from engine import leftovers
    from engine.audio.pool import SamplePool
    from engine.audio.shared import SharedAudioState

    folder = leftovers.shared_folders()[0]
    for make in (lambda: SamplePool.create(1024, 1), SharedAudioState.create):
        monkeypatch.setattr(leftovers, "_swept_at", float("-inf"))  # as in a new show's process
        orphan = _file(folder / f"showrunner-pool-orphan-{os.getpid()}")
        made = make()
        try:
            assert not orphan.exists()
            assert made.path.exists()
        finally:
            made.close()
            orphan.unlink(missing_ok=True)


def test_a_show_sweeps_the_usual_folders_once_for_its_state_and_its_pool(monkeypatch, tmp_path):
    from engine import leftovers

    looked: list[int] = []
    monkeypatch.setattr(leftovers, "_swept_at", float("-inf"))
    monkeypatch.setattr(leftovers, "shared_folders", lambda: looked.append(1) or [tmp_path])
    monkeypatch.setattr(leftovers.tempfile, "gettempdir", lambda: str(tmp_path))
    leftovers.sweep()  # the audio state's
    leftovers.sweep()  # the pool's, a moment later: nothing to do again
    assert looked == [1]
    monkeypatch.setattr(leftovers, "_swept_at", leftovers._swept_at - leftovers.AGAIN)
    leftovers.sweep()  # a show that makes another pool later sweeps again
    assert looked == [1, 1]
