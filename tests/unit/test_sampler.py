"""The sampler instrument: pitch, one shots and loops, queued tables, release, panic, stealing,
table swaps at block boundaries, and its cost per block."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engine.audio import command_ring as commands
from engine.audio.instrument import Host, instrument_class
from engine.audio.instruments.sampler import SamplerInstrument, SamplerSettings
from engine.audio.pool import SamplePool

RATE, BLOCK = 48000, 256
CENTRE = np.sqrt(0.5)  # a mono table at pan 0, equal power
EQUAL = 440.0 * 2.0 ** ((np.arange(128) - 69) / 12.0)


@pytest.fixture
def pool():
    pool = SamplePool.create(RATE * 40, max_tables=16)
    yield pool
    pool.close()


def _sampler(pool, frequencies=EQUAL, **settings) -> SamplerInstrument:
    return SamplerInstrument(SamplerSettings(**settings), Host(RATE, BLOCK, frequencies, pool))


def _table(pool, name: str, data) -> int:
    data = np.asarray(data, np.float32)
    slot = pool.allocate(name, data.shape[0], 1 if data.ndim == 1 else data.shape[1])
    pool.fill(slot, data)
    return slot


def _sine(hz: float, seconds: float) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(int(seconds * RATE)) / RATE)


def _render(sampler, blocks: int) -> np.ndarray:
    """(blocks * BLOCK, 2): what the sampler adds into silent buses."""
    out = np.zeros((blocks * BLOCK, 2))
    for b in range(blocks):
        left, right = np.zeros(BLOCK), np.zeros(BLOCK)
        sampler.render(left, right)
        out[b * BLOCK:(b + 1) * BLOCK, 0], out[b * BLOCK:(b + 1) * BLOCK, 1] = left, right
    return out


def _peak_hz(signal: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size), 8 * signal.size))
    return float(np.argmax(spectrum) * RATE / (8 * signal.size))


def _play(sampler, voice, table, gain=1.0, ratio=1.0, pan=0.0, loop=False):
    sampler.command(commands.PLAY, voice, table, gain, ratio, pan, commands.LOOP if loop else 0)


def test_the_sampler_registers_as_kind_sampler():
    assert instrument_class("sampler") is SamplerInstrument


@pytest.mark.parametrize("note,hz", [(69, 440.0), (81, 880.0), (57, 220.0)])
def test_a_note_plays_the_table_at_its_pitch_relative_to_the_root(pool, note, hz):
    sampler = _sampler(pool, table=_table(pool, "a440", _sine(440, 2.0)), root=69)
    sampler.note_on(1, note, 1.0)
    out = _render(sampler, 150)
    assert _peak_hz(out[:, 0]) == pytest.approx(hz, rel=0.005)


def test_notes_follow_the_shows_tuning(pool):
    tuned = EQUAL.copy()
    tuned[70] = 470.0  # whatever the tuning says note 70 is
    sampler = _sampler(pool, tuned, table=_table(pool, "a440", _sine(440, 2.0)), root=69)
    sampler.note_on(1, 70, 1.0)
    assert _peak_hz(_render(sampler, 150)[:, 0]) == pytest.approx(470.0, rel=0.005)


def test_play_with_a_ratio_of_one_and_a_half_sounds_a_fifth_up(pool):
    sampler = _sampler(pool)
    _play(sampler, 1, _table(pool, "a440", _sine(440, 2.0)), ratio=1.5)
    assert _peak_hz(_render(sampler, 150)[:, 0]) == pytest.approx(660.0, rel=0.005)


def test_a_voice_starts_at_the_block_after_its_command_rising_without_a_click(pool):
    sampler = _sampler(pool, attack=0.002)
    _play(sampler, 1, _table(pool, "dc", np.ones(RATE)))
    out = _render(sampler, 2)[:, 0]
    attack = int(0.002 * RATE)
    assert 0.0 < out[0] < 0.01  # sounding from the block's first frame, from near silence
    assert np.all(np.diff(out[:attack]) > 0.0)
    np.testing.assert_allclose(out[attack:], CENTRE, rtol=1e-9)


def test_a_one_shot_ends_with_its_table_and_frees_the_voice(pool):
    sampler = _sampler(pool)
    assert sampler.idle() and sampler.sounding() == 0
    _play(sampler, 1, _table(pool, "short", np.full(1000, 0.5)))
    assert not sampler.idle() and sampler.sounding() == 1
    out = _render(sampler, 6)[:, 0]
    assert np.all(out[200:1000] != 0.0) and np.all(out[1000:] == 0.0)
    assert sampler.idle() and sampler.sounding() == 0


@pytest.mark.parametrize("pan,left_gain,right_gain", [(0.0, 1.0, 1.0), (1.0, 0.0, 1.0),
                                                      (-0.5, 1.0, np.sqrt(2) * np.sin(np.pi / 8))])
def test_a_stereo_table_keeps_its_channels_and_pan_balances_them(pool, pan, left_gain, right_gain):
    stereo = np.stack([_sine(300, 1.0), _sine(500, 1.0)], axis=1)
    sampler = _sampler(pool, attack=0.0)
    _play(sampler, 1, _table(pool, "stereo", stereo), pan=pan)
    out = _render(sampler, 10)
    np.testing.assert_allclose(out[:, 0], left_gain * stereo[:out.shape[0], 0], atol=1e-6)
    np.testing.assert_allclose(out[:, 1], right_gain * stereo[:out.shape[0], 1], atol=1e-6)


def _loop_seam_step(pool, crossfade: float) -> float:
    sine = _sine(440, 0.25 + 0.37 / 440)  # not a whole number of periods: the seam jumps
    sampler = _sampler(pool, crossfade=crossfade)
    _play(sampler, 1, _table(pool, f"loop {crossfade}", sine), loop=True)
    out = _render(sampler, 200)[:, 0]  # four times round the loop
    assert np.abs(out[-BLOCK:]).max() > 0.6  # still looping
    return float(np.abs(np.diff(out)).max())


def test_a_loop_cross_fades_so_its_seam_does_not_click(pool):
    sine_step = CENTRE * 2 * np.pi * 440 / RATE  # the largest step of the sine itself
    assert _loop_seam_step(pool, 0.01) < 1.5 * sine_step
    assert _loop_seam_step(pool, 0.0) > 10 * sine_step  # without the fade: the click


def test_queue_moves_a_loop_into_the_next_table_exactly_at_its_loop_end(pool):
    first = _table(pool, "first", _sine(440, 0.5))
    second_table = 0.8 * _sine(660, 0.4)
    second = _table(pool, "second", second_table)
    sampler = _sampler(pool, crossfade=0.01, attack=0.0)
    _play(sampler, 7, first, loop=True)
    head = _render(sampler, 10)
    sampler.command(commands.QUEUE, 7, second, 0.0, 0.0, 0.0, 0.0)
    out = np.concatenate([head, _render(sampler, 200)])[:, 0]

    end, fade = int(0.5 * RATE), int(0.01 * RATE)  # 24000: the middle of a block
    old = CENTRE * _sine(440, 0.5)
    np.testing.assert_allclose(out[:end - fade], old[:end - fade], atol=1e-6)
    after = out[end:end + 8000]  # the second table from its loop start + fade, at once
    np.testing.assert_allclose(after, CENTRE * second_table[fade:fade + 8000], atol=1e-6)
    step = np.abs(np.diff(out[:end + 8000])).max()
    assert step < 1.5 * CENTRE * 2 * np.pi * 660 / RATE
    # ... and loops there: its own seam, a loop later, is the second table again.
    seam = end + second_table.size - fade
    np.testing.assert_allclose(out[seam:seam + 1000], CENTRE * second_table[fade:fade + 1000],
                               atol=1e-6)


def test_stop_releases_the_voice_over_the_release_time(pool):
    sampler = _sampler(pool, release=0.05)
    _play(sampler, 3, _table(pool, "dc", np.ones(2 * RATE)), loop=True)
    _render(sampler, 4)
    sampler.command(commands.STOP, 3, 0, 0.0, 0.0, 0.0, 0.0)
    out = _render(sampler, 12)[:, 0]
    release = int(0.05 * RATE)
    assert out[0] == pytest.approx(CENTRE * (1 - 1 / release), rel=1e-6)  # from its level, down
    assert np.all(np.diff(out[:release - 1]) < 0.0)
    assert np.all(out[release:] == 0.0) and sampler.idle()


def test_stop_all_voices_releases_every_voice(pool):
    sampler = _sampler(pool)
    slot = _table(pool, "dc", np.ones(RATE))
    for voice in range(5):
        _play(sampler, voice, slot, loop=True)
    _render(sampler, 2)
    sampler.command(commands.STOP, commands.ALL_VOICES, 0, 0.0, 0.0, 0.0, 0.0)
    _render(sampler, 12)
    assert sampler.idle()


def test_panic_silences_everything_within_five_milliseconds(pool):
    sampler = _sampler(pool, release=5.0)
    slot = _table(pool, "a440", _sine(440, 1.0))
    for voice in range(4):
        _play(sampler, voice, slot, ratio=1.0 + voice / 10, loop=True)
    _render(sampler, 4)
    sampler.panic()
    out = _render(sampler, 2)[:, 0]
    assert np.abs(out[:24]).max() > 0.1  # a fade, not a cut
    assert np.all(out[int(0.005 * RATE):] == 0.0) and sampler.idle()


def test_the_sustain_pedal_holds_released_notes_until_it_comes_up(pool):
    sampler = _sampler(pool, table=_table(pool, "dc", np.ones(RATE)), loop=True)
    sampler.note_on(60, 60, 1.0)
    sampler.sustain(True)
    sampler.note_off(60, 60)
    assert np.all(_render(sampler, 20)[-BLOCK:, 0] > 0.5)
    sampler.sustain(False)
    _render(sampler, 12)
    assert sampler.idle()


def test_a_voice_beyond_the_polyphony_steals_the_oldest_which_fades_in_five_ms(pool):
    sampler = _sampler(pool, polyphony=2, attack=0.0)
    slot = _table(pool, "dc", np.ones(RATE))
    for voice in (1, 2, 3):
        _play(sampler, voice, slot, loop=True)
    assert sampler.sounding() == 2
    out = _render(sampler, 2)[:, 0]
    assert out[0] > 2.9 * CENTRE * (1 - 2 / RATE)  # the oldest still heard, fading
    np.testing.assert_allclose(out[int(0.005 * RATE):], 2 * CENTRE)
    assert sorted(sampler.voice_id[sampler.active].tolist()) == [2, 3]


def test_a_table_rewritten_and_swapped_is_heard_whole_from_the_next_block(pool):
    slot = _table(pool, "ear", np.full(RATE, 0.25))
    sampler = _sampler(pool, attack=0.0)
    _play(sampler, 1, slot, loop=True)
    before = _render(sampler, 2)
    assert pool.write_back(slot, np.full(RATE, 0.75))
    pool.request_swap(slot)
    still = _render(sampler, 1)  # the SWAP command has not arrived yet
    pool.swap(slot)  # it arrives between blocks
    after = _render(sampler, 2)
    np.testing.assert_allclose(np.concatenate([before, still]), 0.25 * CENTRE, rtol=1e-12)
    np.testing.assert_allclose(after, 0.75 * CENTRE, rtol=1e-12)


def test_a_table_rewritten_while_it_plays_never_tears_within_a_block(pool):
    """A writer thread rewrites the table as fast as it may while the callback renders and swaps:
    every block is one version of the table, never part of two."""
    slot = _table(pool, "ear", np.zeros(RATE))
    sampler = _sampler(pool, attack=0.0, crossfade=0.0)  # a constant loop is then seamless
    _play(sampler, 1, slot, loop=True)
    _render(sampler, 1)
    stop = threading.Event()

    def writer():
        version = 0
        while not stop.is_set():
            if pool.write_back(slot, np.full(RATE, float(version % 1000 + 1))):
                pool.request_swap(slot)
                version += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = set()
        deadline = time.monotonic() + 20.0  # however busy the machine, until a dozen versions played
        while len(seen) <= 12 and time.monotonic() < deadline:
            pool.swap(slot)
            block = _render(sampler, 1)[:, 0]
            assert np.all(block == block[0])
            seen.add(float(block[0]))
    finally:
        stop.set()
        thread.join()
    assert len(seen) > 10  # the table really changed under the voice


def test_an_empty_or_missing_table_is_silent_and_never_raises(pool):
    empty = pool.allocate("not yet", 1000, 1)
    sampler = _sampler(pool)
    _play(sampler, 1, empty, loop=True)
    _play(sampler, 2, empty)
    _play(sampler, 3, 15)  # a slot no table was allocated in
    _play(sampler, 4, 999)
    sampler.command(commands.QUEUE, 1, 999, 0.0, 0.0, 0.0, 0.0)
    assert np.all(_render(sampler, 3) == 0.0)
    assert sampler.sounding() == 1  # the loop waits, silent, for its table to be filled
    pool.write_back(empty, np.ones(1000))
    pool.request_swap(empty)
    pool.swap(empty)
    assert np.abs(_render(sampler, 2)).max() > 0.5


def test_set_gain_db_ramps_the_level_over_one_block(pool):
    sampler = _sampler(pool, attack=0.0)
    _play(sampler, 1, _table(pool, "dc", np.ones(RATE)), loop=True)
    _render(sampler, 1)
    sampler.set(SamplerInstrument.parameters.index("gain_db"), -6.0)
    out = _render(sampler, 2)[:, 0]
    assert np.all(np.diff(out[:BLOCK]) < 0.0)
    np.testing.assert_allclose(out[BLOCK - 1:], CENTRE * 10 ** (-6 / 20))


def test_settings_reject_unknown_keys():
    with pytest.raises(ValueError):
        SamplerSettings(polyphny=4)


def test_warm_up_leaves_the_instrument_idle_and_its_pool_in_place(pool):
    sampler = _sampler(pool)
    sampler.warm_up()
    assert sampler.idle() and sampler.host.pool is pool


def test_sixty_four_looped_voices_cost_well_under_a_tenth_of_a_block(pool):
    slot = _table(pool, "loop", np.stack([_sine(220, 4.0), _sine(330, 4.0)], axis=1))
    sampler = _sampler(pool, polyphony=64)
    for voice in range(64):
        _play(sampler, voice, slot, gain=0.02, ratio=0.5 + voice / 40, pan=voice / 32 - 1,
              loop=True)
    left, right = np.zeros(BLOCK), np.zeros(BLOCK)
    for _ in range(20):
        sampler.render(left, right)
    times = []
    for _ in range(1000):
        start = time.perf_counter()
        sampler.render(left, right)
        times.append(time.perf_counter() - start)
    assert sampler.sounding() == 64
    block = BLOCK / RATE
    median = float(np.median(times))
    print(f"\n64 looped voices: {median * 1e6:.0f} us per {BLOCK}-frame block, "
          f"{100 * median / block:.1f} % of the block "
          f"(p99 {np.percentile(times, 99) * 1e6:.0f} us)")
    assert median < 0.2 * block  # generous: a loaded machine; measured about 3 %
