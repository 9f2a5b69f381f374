"""The shared sample pool: tables shared between processes, double buffered, and sound files read
into them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from engine.audio.pool import PoolFull, SamplePool, load_audio_file
from engine.errors import UserError

ROOT = Path(__file__).resolve().parents[2]

# What an audio process does when a SWAP arrives: attach, swap, report what it plays.
AUDIO_PROCESS = """
import json, sys
from engine.audio.pool import SamplePool
pool = SamplePool.attach(sys.argv[1])
slot = int(sys.argv[2])
before = pool.table(slot)[:, 0].tolist()
if sys.argv[3] == "swap":
    pool.swap(slot)
print(json.dumps({"before": before, "after": pool.table(slot).tolist(),
                  "pending": pool.swap_pending(slot), "names": pool.names()}))
"""


@pytest.fixture
def pool():
    pool = SamplePool.create(1000, max_tables=8)
    yield pool
    pool.close()


def _audio_process(pool: SamplePool, slot: int, action: str) -> dict:
    done = subprocess.run([sys.executable, "-c", AUDIO_PROCESS, str(pool.path), str(slot), action],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_a_second_process_plays_the_table_the_first_wrote_once_it_swaps(pool):
    slot = pool.allocate("loop", 4, 2)
    pool.fill(slot, np.full(4, 0.25))
    assert pool.write_back(slot, np.full((3, 2), 0.75))
    pool.request_swap(slot)

    seen = _audio_process(pool, slot, "swap")

    assert seen["before"] == [0.25] * 4
    assert seen["after"] == [[0.75, 0.75]] * 3
    assert seen["pending"] is False and seen["names"] == {"loop": slot}
    assert not pool.swap_pending(slot)  # the owner sees the swap applied
    assert pool.table(slot).tolist() == [[0.75, 0.75]] * 3
    # A restarted audio process attaches again and finds the table as it was.
    again = _audio_process(pool, slot, "look")
    assert again["after"] == [[0.75, 0.75]] * 3 and again["names"] == {"loop": slot}


def test_a_table_beyond_the_capacity_raises_pool_full_in_one_line(pool):
    pool.allocate("first", 200, 1)  # 400 of 1000 frames: two buffers

    with pytest.raises(PoolFull) as caught:
        pool.allocate("ear loop", 200, 2)  # needs 800

    message = str(caught.value)
    assert isinstance(caught.value, UserError) and "\n" not in message
    assert "'ear loop'" in message and "800" in message and "600" in message
    assert "pool_seconds" in message and "[sound]" in message
    assert pool.names() == {"first": 0}  # nothing reserved by the failed call


def test_the_same_table_name_twice_is_a_user_error(pool):
    pool.allocate("loop", 10, 1)
    with pytest.raises(UserError, match="'loop' is defined twice"):
        pool.allocate("loop", 10, 1)


def test_more_tables_than_slots_raises_pool_full():
    pool = SamplePool.create(100, max_tables=2)
    try:
        pool.allocate("a", 1, 1)
        pool.allocate("b", 1, 1)
        with pytest.raises(PoolFull, match="no slot left for table 'c'"):
            pool.allocate("c", 1, 1)
    finally:
        pool.close()


def test_write_back_is_refused_while_a_swap_is_pending(pool):
    slot = pool.allocate("loop", 8, 1)
    assert pool.write_back(slot, np.ones(8))
    pool.request_swap(slot)

    assert pool.swap_pending(slot)
    assert not pool.write_back(slot, np.full(8, 2.0))
    pool.swap(slot)
    assert not pool.swap_pending(slot)
    assert pool.table(slot)[:, 0].tolist() == [1.0] * 8  # the refused write left no trace
    assert pool.write_back(slot, np.full(5, 2.0))


def test_the_back_buffer_is_not_heard_until_the_swap(pool):
    slot = pool.allocate("loop", 8, 1)
    pool.fill(slot, np.ones(8))
    pool.write_back(slot, np.full(8, 2.0))
    pool.request_swap(slot)
    assert pool.table(slot)[:, 0].tolist() == [1.0] * 8
    pool.swap(slot)
    assert pool.table(slot)[:, 0].tolist() == [2.0] * 8


def test_a_swap_with_nothing_pending_does_not_bring_old_audio_back(pool):
    slot = pool.allocate("loop", 4, 1)
    pool.fill(slot, np.ones(4))
    pool.write_back(slot, np.full(4, 2.0))
    pool.request_swap(slot)
    pool.swap(slot)
    pool.swap(slot)  # a duplicated SWAP command
    assert pool.table(slot)[:, 0].tolist() == [2.0] * 4


def test_the_front_view_is_cached_until_a_swap(pool):
    slot = pool.allocate("loop", 8, 2)
    pool.fill(slot, np.zeros((8, 2)))
    first = pool.table(slot)
    assert pool.table(slot) is first  # no new array per block
    pool.write_back(slot, np.ones(6))
    pool.request_swap(slot)
    pool.swap(slot)
    assert pool.table(slot) is not first and pool.table(slot).shape == (6, 2)
    assert pool.frames(slot) == 6 and pool.channels(slot) == 2


def test_mono_into_stereo_is_duplicated_and_stereo_into_mono_averaged(pool):
    stereo, mono = pool.allocate("stereo", 3, 2), pool.allocate("mono", 3, 1)
    pool.fill(stereo, np.array([0.1, 0.2, 0.3]))
    pool.fill(mono, np.array([[0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]))
    np.testing.assert_allclose(pool.table(stereo), [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]], rtol=1e-6)
    np.testing.assert_allclose(pool.table(mono)[:, 0], [0.5, 1.0, -0.5])


def test_data_longer_than_the_table_is_refused(pool):
    slot = pool.allocate("loop", 4, 1)
    with pytest.raises(ValueError, match="do not fit"):
        pool.write_back(slot, np.zeros(5))


def test_an_empty_or_unknown_slot_reads_as_an_empty_table(pool):
    slot = pool.allocate("later", 4, 1)
    assert pool.table(slot).shape == (0, 1)
    assert pool.table(7).shape == (0, 1) and pool.table(-1).shape == (0, 1)
    assert pool.frames(99) == 0 and pool.channels(99) == 0


def test_close_removes_the_shared_file():
    pool = SamplePool.create(10)
    path = pool.path
    assert path.exists()
    pool.close()
    assert not path.exists()


def test_a_recording_is_read_and_resampled_to_the_show_rate(shared_data):
    path = shared_data / "audio" / "smstools_piano.wav"
    info = soundfile.info(str(path))

    audio = load_audio_file(path, 48000)

    assert info.samplerate == 44100
    assert audio.dtype == np.float32 and audio.ndim == 2 and audio.shape[1] == 1
    assert audio.shape[0] == pytest.approx(info.frames * 48000 / 44100, abs=1)
    assert audio.shape[0] / 48000 == pytest.approx(3.85, abs=0.01)
    assert 0.05 < np.abs(audio).max() <= 1.0


def test_a_file_at_the_show_rate_is_read_unchanged(tmp_path):
    path = tmp_path / "tone.flac"
    data = (0.5 * np.sin(np.arange(1000) * 0.05))[:, None].repeat(3, axis=1)
    data[:, 1] *= -1
    soundfile.write(str(path), data, 48000, subtype="PCM_24")

    audio = load_audio_file(path, 48000)

    assert audio.shape == (1000, 2)  # of three channels, the first two
    np.testing.assert_allclose(audio, data[:, :2], atol=1e-6)


def test_a_missing_audio_file_is_a_one_line_user_error(tmp_path):
    path = tmp_path / "nowhere.wav"
    with pytest.raises(UserError) as caught:
        load_audio_file(path, 48000)
    assert str(caught.value) == f"audio file not found: {path}"


def test_a_corrupt_audio_file_is_a_one_line_user_error(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(1).bytes(4000))
    with pytest.raises(UserError) as caught:
        load_audio_file(path, 48000)
    message = str(caught.value)
    assert message.startswith(f"{path}: not an audio file soundfile can read (")
    assert "\n" not in message


def test_an_empty_audio_file_is_a_one_line_user_error(tmp_path):
    path = tmp_path / "empty.wav"
    soundfile.write(str(path), np.zeros((0, 1)), 48000)
    with pytest.raises(UserError, match="the audio file is empty"):
        load_audio_file(path, 48000)
