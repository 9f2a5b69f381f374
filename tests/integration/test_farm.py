"""The render farm (engine/farm.py; issue 24): a live show's performance log replayed in chunks on a
local Ray (2 and 3 workers) decodes to exactly the frames and the sound of a serial replay, chunk
boundaries falling inside cues, fades and the grain VAE's training; a worker killed mid-chunk has its
chunk run again and the output is still complete and identical; nothing half-written is left."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest

from engine.farm import boundaries, frame_count, unreachable
from tests.conftest import ROOT, showrunner_command

PERFORMANCE = ROOT / "assets" / "midi" / "performances" / "asap_Bach_Prelude_bwv846_Shi05M.mid"
SECONDS = 7
FPS = 30


def decoded(path: Path) -> tuple[list[tuple[int, str]], np.ndarray]:
    """Every frame's timestamp and the hash of its planes, and the sound, as decoded."""
    with av.open(str(path)) as container:
        frames = [(frame.pts, hashlib.md5(b"".join(bytes(plane) for plane in frame.planes)).hexdigest())
                  for frame in container.decode(video=0)]
    with av.open(str(path)) as container:
        sound = np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)
    return frames, sound


@pytest.fixture(scope="module")
def performed(tmp_path_factory) -> Path:
    """A live run of the tour from its grain VAE on, each cue 3 s (the soft pedal does not
    advance): the VAE learning (0-3 s), the ear listening (3-6 s, faded in over 1 s), the ear
    dreaming; its performance log."""
    folder = tmp_path_factory.mktemp("farm")
    text = (ROOT / "setlists" / "tour.toml").read_text()
    text = re.sub(r"after = \d+, cc = 67", "after = 3", text)
    text = text.replace('"../assets/', f'"{ROOT}/assets/').replace('"../build/', f'"{ROOT}/build/')
    setlist = folder / "tour.toml"
    setlist.write_text(text)
    log = folder / "live.perf.jsonl"
    done = subprocess.run(showrunner_command(
        "run", str(setlist), "--cue", "vae", "--midi-file", str(PERFORMANCE), "--headless", "--no-audio",
        "--duration", str(SECONDS), "--perf-log", str(log), "--log-dir", str(folder / "logs")),
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "cues vae listening dreaming" in done.stderr + done.stdout
    return log


def replay(log: Path, out: Path, *extra: str, wait: bool = True):
    command = showrunner_command("replay", str(log), "--out", str(out), "--size", "160x90", "--fps", str(FPS),
                                 "--lossless", "--log-dir", str(out.parent / "logs"), *extra)
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def serial(performed, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "serial.mkv"
    replay(performed, out)
    return decoded(out)


@pytest.mark.parametrize("workers", [2, 3])
def test_a_chunked_replay_is_the_serial_replay_frame_for_frame(performed, serial, workers, tmp_path):
    # The chunks start inside the fade into the ear's cue (3.5 s: 2 workers), inside the VAE's
    # training and in the middle of a cue (2.4 s and 4.7 s: 3 workers).
    starts = boundaries(frame_count(SECONDS, FPS), workers)
    assert [round(start / FPS, 1) for start in starts] == ([3.5] if workers == 2 else [2.4, 4.7])
    out = tmp_path / "farm.mkv"
    done = replay(performed, out, "--workers", str(workers))
    assert f"in {workers} chunks on {workers} workers" in done.stderr
    frames, sound = decoded(out)
    assert len(frames) == len(serial[0]) == frame_count(SECONDS, FPS)
    assert frames == serial[0]
    assert np.array_equal(sound, serial[1])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "logs") == ["farm.mkv"]


def _chunk_workers() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "ray::render_chunk"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def test_a_worker_killed_mid_chunk_has_its_chunk_rendered_again(performed, serial, tmp_path):
    out = tmp_path / "farm.mkv"
    process = replay(performed, out, "--workers", "2", wait=False)
    killed = None
    try:
        deadline = time.monotonic() + 300
        while killed is None and time.monotonic() < deadline and process.poll() is None:
            workers = _chunk_workers()
            if workers:
                time.sleep(2.0)  # well into its chunk: loading, restoring, drawing
                if workers[0] in _chunk_workers():
                    os.kill(workers[0], signal.SIGKILL)
                    killed = workers[0]
            time.sleep(0.1)
        output, _ = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert killed is not None, "no chunk worker was seen to kill"
    assert process.returncode == 0, output[-3000:]
    frames, sound = decoded(out)
    assert frames == serial[0]
    assert np.array_equal(sound, serial[1])


def test_workers_must_be_a_positive_number(tmp_path):
    done = subprocess.run(showrunner_command("replay", str(tmp_path / "x.perf.jsonl"), "--out",
                                             str(tmp_path / "x.mkv"), "--workers", "0"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "expected 1 to 1024 workers" in done.stderr and "Traceback" not in done.stderr


def test_a_ray_address_that_takes_no_connection_is_one_line_at_once(tmp_path):
    started = time.monotonic()
    done = subprocess.run(showrunner_command("render", str(ROOT / "setlists" / "demo.toml"), "--duration", "1",
                                             "--out", str(tmp_path / "x.mkv"), "--ray-address", "127.0.0.1:1",
                                             "--log-dir", str(tmp_path / "logs")),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == ["showrunner: cannot reach the Ray cluster at 127.0.0.1:1: "
                                                "Connection refused"], done.stderr
    assert time.monotonic() - started < 30  # Ray's own connect retried for many minutes
    assert not (tmp_path / "x.mkv").exists()


def test_a_listening_address_is_reachable():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert unreachable(f"127.0.0.1:{port}") is None and unreachable(f"ray://127.0.0.1:{port}") is None
    assert unreachable("auto") is None  # Ray finds it itself


def test_chunks_cover_every_frame_once():
    for frames in (1, 2, 7, 210, 1801):
        for chunks in (1, 2, 3, 8):
            starts = boundaries(frames, chunks)
            assert starts == sorted(set(starts)) and all(1 < start <= frames for start in starts)
            assert len(starts) == min(chunks, frames) - 1 or frames < chunks


def test_a_farm_render_with_a_cue_that_failed_to_load_is_written_and_exits_1(tmp_path):
    from tests.integration.test_grains_piece import setlist_copy

    path = setlist_copy(tmp_path, 60.0, tape_seconds=50.0)  # the "tape" cue's table is too small
    out = tmp_path / "grains.mkv"
    done = subprocess.run(showrunner_command("render", str(path), "--out", str(out), "--duration", "1",
                                             "--size", "160x90", "--workers", "2", "--log-dir", str(tmp_path)),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    # said once, though the pass and both workers loaded the cue
    assert "the video is written, but 1 problem(s) loading cues" in done.stderr, done.stderr
    assert "in 2 chunks on 2 workers" in done.stderr and out.stat().st_size > 0
