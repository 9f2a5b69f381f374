"""The offline renderer and AudioOut, the interface the show and the scenes play through.

OfflineAudio stamps each command with the show time of the tick that sent it and applies it at the
first block starting at or after the stamp; the same commands with the same stamps give
bit-identical sound. AudioOut keeps what was sent for the metrics log, in the documented form.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.audio import command_ring as cmd
from engine.audio.config import MixerConfig
from engine.audio.control import NoAudio
from engine.audio.rack import overtone_rack
from engine.audio.offline import OfflineAudio, WavWriter
from engine.errors import UserError
from tests.spectrum import read_wav

RATE = 48000
BLOCK = 256
TICK = 1 / 60


def perform(audio: OfflineAudio, score: dict[int, list], ticks: int) -> None:
    """Run ``ticks`` ticks at 60 Hz as the show does: stamp the tick's end, send the tick's
    commands (``score[tick]``: (method, args) pairs), then render up to the tick's end."""
    for tick in range(1, ticks + 1):
        audio.show_time = tick * TICK
        for method, *args in score.get(tick, []):
            getattr(audio, method)(*args)
        audio.advance(tick * TICK)


SCORE = {
    1: [("note_on", 60, 100), ("note_on", 64, 80)],
    3: [("detune", 0.02)],
    5: [("sustain", 127), ("note_on", 67, 127)],
    8: [("note_off", 60), ("detune", -0.01, 64), ("set_gain", "master", -3.0)],
    11: [("note_on", 48, 60), ("sustain", 0)],
    14: [("all_notes_off",)],
    16: [("note_on", 72, 127), ("set_gain", "piano", -12.0)],
    19: [("panic",)],
    20: [("note_on", 76, 90)],
}


def rendered(score: dict[int, list], ticks: int = 24, **settings) -> np.ndarray:
    audio = OfflineAudio(MixerConfig(**settings), piano=True)
    perform(audio, score, ticks)
    return audio.samples()


# Determinism and timing.
@pytest.mark.parametrize("settings", [{}, {"envelope": "adsr", "partials": 8, "block_size": 64}])
def test_the_same_stamped_commands_render_bit_identical_sound(settings: dict) -> None:
    first, second = rendered(SCORE, **settings), rendered(SCORE, **settings)
    assert first.dtype == np.float32 and first.shape[1] == 2
    assert len(first) >= 24 * TICK * RATE
    assert np.max(np.abs(first)) > 0.1
    assert np.array_equal(first, second)


@pytest.mark.parametrize("moved", [1, 3, 8])
def test_sending_one_command_a_tick_later_changes_the_sound(moved: int) -> None:
    later = dict(SCORE)
    later[moved + 1] = SCORE[moved] + SCORE.get(moved + 1, [])
    later[moved] = []
    assert not np.array_equal(rendered(SCORE), rendered(later))


@pytest.mark.parametrize(("stamp", "block"), [
    (0.0, 0),
    (BLOCK / RATE, 1),  # exactly at a block's start: that block
    (BLOCK / RATE + 1e-6, 2),  # just after it: the next one
    (0.01, 2),  # 480 frames: the block starting at 512
    (2 * TICK, 7),  # 1600 frames: the block starting at 1792
])
def test_a_command_takes_effect_at_the_first_block_starting_at_or_after_its_stamp(stamp: float,
                                                                                  block: int) -> None:
    audio = OfflineAudio(MixerConfig())
    audio.show_time = stamp
    audio.note_on(69, 127)
    audio.advance(0.05)
    sound = audio.samples()
    assert np.all(sound[:block * BLOCK] == 0.0)
    assert np.any(sound[block * BLOCK:(block + 1) * BLOCK] != 0.0)


def test_the_offline_renderer_sounds_like_the_mixer_driven_block_by_block() -> None:
    audio = OfflineAudio(MixerConfig(), piano=True)
    perform(audio, SCORE, 24)
    mixer = overtone_rack(MixerConfig(), piano=True)
    by_hand = []
    for block in range(len(audio.samples()) // BLOCK):
        start = block * BLOCK / RATE
        # Commands of tick t are stamped t / 60 s: due at the first block starting then or later.
        for tick, commands in SCORE.items():
            if start - BLOCK / RATE + 1e-9 < tick * TICK <= start + 1e-9:
                for method, *args in commands:
                    for command in sent_by(method, *args):
                        mixer.apply(*command)
        by_hand.append(mixer.render().copy())
    assert np.array_equal(audio.samples(), np.concatenate(by_hand))


def sent_by(method: str, *args) -> list[tuple]:
    """The (kind, voice, note, value) commands an AudioOut method sends (to their usual target,
    with no further fields: checked here)."""
    audio, sent = NoAudio(), []

    def send(kind, voice, note, value, target, a, b, c, at):
        assert target == cmd.DEFAULT_TARGET[kind] and a == b == c == 0.0
        sent.append((kind, voice, note, value))
    audio._send = send
    getattr(audio, method)(*args)
    return sent


@pytest.mark.parametrize(("show_time", "frames"), [(0.0, 0), (BLOCK / RATE, BLOCK), (0.01, 2 * BLOCK),
                                                   (1 / 60, 4 * BLOCK), (1.0, 188 * BLOCK)])
def test_advance_renders_every_whole_block_that_starts_before_show_time(show_time: float,
                                                                        frames: int) -> None:
    audio = OfflineAudio(MixerConfig())
    audio.advance(show_time)
    assert audio.rendered == frames
    assert audio.samples().shape == (frames, 2)
    audio.advance(show_time)  # the same time again renders nothing more
    audio.advance(show_time / 2)  # nor does an earlier one
    assert audio.rendered == frames


def test_nothing_rendered_is_an_empty_stereo_float32_array() -> None:
    samples = OfflineAudio(MixerConfig()).samples()
    assert samples.shape == (0, 2) and samples.dtype == np.float32


def test_a_sink_gets_every_block_as_it_is_rendered_when_blocks_are_not_kept() -> None:
    blocks = []
    streaming = OfflineAudio(MixerConfig(), piano=True, keep=False, sink=lambda b: blocks.append(b.copy()))
    perform(streaming, SCORE, 24)
    assert streaming.samples().shape == (0, 2)
    assert all(block.shape == (BLOCK, 2) for block in blocks)
    assert np.array_equal(np.concatenate(blocks), rendered(SCORE))


def test_close_closes_the_sink(tmp_path: Path) -> None:
    writer = WavWriter(tmp_path / "show.wav", RATE)
    audio = OfflineAudio(MixerConfig(), keep=False, sink=writer)
    audio.note_on(69, 127)
    audio.advance(0.1)
    audio.close()
    _pcm, params = read_wav(tmp_path / "show.wav")  # complete: its header counts every frame
    assert params.nframes == audio.rendered
    OfflineAudio(MixerConfig(), keep=False, sink=[].append).close()  # a plain callable: no close


# WAV files.
def test_write_wav_writes_what_was_rendered_as_16_bit_stereo_at_the_sample_rate(tmp_path: Path) -> None:
    audio = OfflineAudio(MixerConfig(sample_rate=44100), piano=True)
    perform(audio, SCORE, 12)
    audio.write_wav(tmp_path / "show.wav")
    pcm, params = read_wav(tmp_path / "show.wav")
    assert (params.nchannels, params.sampwidth, params.framerate) == (2, 2, 44100)
    assert params.nframes == audio.rendered
    expected = audio.samples().astype(np.float64) * 32767
    assert np.max(np.abs(pcm - expected)) <= 0.5 + 1e-3  # rounded to the nearest step


def test_wav_writer_streams_blocks_and_clips_what_is_over_full_scale(tmp_path: Path) -> None:
    writer = WavWriter(tmp_path / "clip.wav", 48000)
    writer(np.array([[0.5, -0.5], [1.5, -1.5]], np.float32))
    writer(np.array([[0.0, 1.0]], np.float32))
    writer.close()
    writer.close()  # twice is harmless
    pcm, params = read_wav(tmp_path / "clip.wav")
    assert params.nframes == 3
    assert pcm.tolist() == [[16384, -16384], [32767, -32768], [0, 32767]]


def test_wav_writer_on_an_unwritable_path_is_a_user_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "no such folder" / "show.wav"
    with pytest.raises(UserError, match="no such folder"):
        WavWriter(path, 48000)


# AudioOut: what is sent, and what the metrics log shows.
def test_take_sent_lists_every_command_in_the_form_the_metrics_log_shows() -> None:
    audio = NoAudio()
    audio.note_on(60, 96)
    audio.detune(0.012, note=60)
    audio.detune(-0.5)
    audio.note_off(60)
    audio.note_on(62, 70, channel=2)
    audio.sustain(127)
    audio.set_gain("piano", -6)
    audio.all_notes_off()
    audio.panic()
    assert audio.take_sent() == [["note_on", 60, 96.0], ["detune", 60, 0.012], ["detune", None, -0.5],
                                 ["note_off", 60], ["note_on", 62, 70.0], ["sustain", 127.0],
                                 ["gain", "piano", -6.0], ["all_notes_off"], ["panic"]]
    assert audio.take_sent() == []  # each command is reported once


def test_set_tuning_sends_one_retune_per_pitch_class() -> None:
    audio = NoAudio()
    audio.set_tuning([10.0] + [0.0] * 11)
    sent = audio.take_sent()
    assert sent[0] == ["tune", 0, 10.0]
    assert sent[1:] == [["tune", pitch_class, 0.0] for pitch_class in range(1, 12)]


@pytest.mark.parametrize("tuning", ["meantone", [0.0] * 11])
def test_set_tuning_with_an_unknown_tuning_raises_value_error_and_sends_nothing(tuning) -> None:
    audio = NoAudio()
    with pytest.raises(ValueError):
        audio.set_tuning(tuning)
    assert audio.take_sent() == []


def test_audio_out_sends_voice_ids_that_keep_channels_apart() -> None:
    sent = [*sent_by("note_on", 60, 100, 1), *sent_by("note_off", 60),
            *sent_by("detune", 0.1, 60, 1), *sent_by("detune", 0.2)]
    assert sent == [(cmd.NOTE_ON, 128 + 60, 60, 100.0), (cmd.NOTE_OFF, 60, 60, 0.0),
                    (cmd.DETUNE, 128 + 60, 60, 0.1), (cmd.DETUNE, cmd.ALL_VOICES, -1, 0.2)]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_detune_that_is_not_a_finite_number_is_dropped_before_it_is_sent(value: float) -> None:
    sounds = []
    for send_it in (False, True):
        audio = OfflineAudio(MixerConfig())
        audio.note_on(69, 127)
        if send_it:
            audio.detune(value)
            audio.detune(value, note=69)
        assert audio.take_sent() == [["note_on", 69, 127.0]]
        audio.advance(0.1)
        sounds.append(audio.samples())
    assert np.array_equal(sounds[0], sounds[1])


def test_set_gain_for_an_unknown_bus_raises_value_error_and_sends_nothing() -> None:
    audio = OfflineAudio(MixerConfig())
    with pytest.raises(ValueError):
        audio.set_gain("reverb", -6.0)
    assert audio.take_sent() == []
    audio.advance(0.01)
    assert audio.mixer.bus_target == [1.0, 1.0, pytest.approx(10 ** (-6 / 20))]  # the defaults:
    # master, overtones, piano


def test_set_gain_for_an_unknown_bus_says_which_buses_there_are() -> None:
    with pytest.raises(ValueError, match=r"reverb.*master.*overtones.*piano"):
        NoAudio().set_gain("reverb", -6.0)


def test_show_time_stamps_commands_and_advance_renders_up_to_it() -> None:
    audio = OfflineAudio(MixerConfig())
    audio.show_time = 0.5
    audio.note_on(69, 127)
    audio.advance(0.5)
    assert audio.rendered == math.ceil(0.5 * RATE / BLOCK) * BLOCK
    assert np.all(audio.samples() == 0.0)  # the note is due at 0.5 s, not before
    audio.advance(0.6)
    assert np.any(audio.samples()[int(0.5 * RATE) + BLOCK:] != 0.0)


def test_a_command_sent_at_an_earlier_position_takes_its_place_after_that_events_commands() -> None:
    """A scene that handles a tick's notes together sends each note's detune ``at`` the note's
    position: it acts (and is listed) as if sent while the note was delivered, before the next
    note starts from the last detune."""
    def performed(later: bool) -> tuple[np.ndarray, list]:
        audio = OfflineAudio(MixerConfig(), piano=False)
        audio.show_time = 0.0
        positions = []
        for note, detune in ((60, 0.3), (64, 0.1)):
            audio.next_position()
            audio.note_on(note, 90)
            positions.append(audio.position)
            if not later:
                audio.detune(detune, note=note)
        audio.next_position()
        if later:
            for position, (note, detune) in zip(positions, ((60, 0.3), (64, 0.1))):
                audio.detune(detune, note=note, at=position)
        sent = audio.take_sent()
        audio.advance(0.2)
        return audio.samples(), sent

    at_once, sent_at_once = performed(later=False)
    later, sent_later = performed(later=True)
    assert sent_later == sent_at_once == [["note_on", 60, 90.0], ["detune", 60, 0.3],
                                         ["note_on", 64, 90.0], ["detune", 64, 0.1]]
    np.testing.assert_array_equal(later, at_once)
    # Without the position the second note would start from the first's detune: another sound.
    audio = OfflineAudio(MixerConfig(), piano=False)
    for note in (60, 64):
        audio.note_on(note, 90)
    audio.detune(0.3, note=60)
    audio.detune(0.1, note=64)
    audio.advance(0.2)
    assert not np.array_equal(audio.samples(), at_once)


def test_live_the_commands_of_a_tick_leave_after_its_scenes_in_the_order_of_its_input() -> None:
    """Live (the audio process not started: its command ring read here), a tick's commands are
    held from its first delivered event until the show flushes them after the scenes ticked, and
    leave in position order: a detune sent ``at`` its note's position follows that note, before
    the next note, as offline. Outside a tick a command leaves at once."""
    from engine.audio.live import LiveAudio

    audio = LiveAudio(MixerConfig(), piano=False)
    try:
        ring = audio.state.ring
        audio.panic()  # between ticks: at once
        assert [int(record[0]) for record in ring.take()] == [cmd.PANIC]
        positions = []
        for note in (60, 64):
            audio.next_position()
            audio.note_on(note, 90)
            positions.append(audio.position)
        audio.next_position()
        for position, (note, detune) in zip(positions, ((60, 0.3), (64, 0.1))):
            audio.detune(detune, note=note, at=position)
        assert len(ring) == 0  # held while the tick runs
        audio.flush()
        taken = ring.take()
        assert [(int(r[0]), int(r[3]), float(r[4])) for r in taken] == [
            (cmd.NOTE_ON, 60, 90.0), (cmd.DETUNE, 60, 0.3), (cmd.NOTE_ON, 64, 90.0), (cmd.DETUNE, 64, 0.1)]
        # A restarted audio process is told the last detune in that order too.
        assert audio._standing[cmd.DETUNE, int(taken[-1][1]), cmd.ALL_VOICES][3] == 0.1
        audio.sustain(127)  # after the flush, between ticks: at once again
        assert len(ring) == 1
    finally:
        audio.close()


def test_heard_since_gives_every_frame_of_the_mix_once_in_order() -> None:
    """AudioOut.heard_since, read at uneven times, joins into exactly what was rendered; a reader
    that falls behind gets the tap's latest frames; the input is silence without an input file."""
    from engine.audio.shared import TAP_FRAMES, tap_rows

    audio = OfflineAudio(MixerConfig(), piano=True)
    audio.note_on(60, 100)
    position, pieces = 0, []
    for show_time in (0.013, 0.05, 0.0501, 0.2, 0.37, 0.6):
        audio.advance(show_time)
        piece, position = audio.heard_since(position)
        pieces.append(piece)
    joined = np.concatenate(pieces)
    np.testing.assert_array_equal(joined, audio.samples())
    assert position == len(audio.samples()) and np.abs(joined).max() > 0.01
    quiet, _ = audio.heard_since(0, "input")
    assert quiet.shape == (len(joined), 2) and not quiet.any()
    # the ring's arithmetic across its wrap
    tap = np.arange(2 * 10, dtype=np.float32).reshape(10, 2)
    for start, stop in ((0, 3), (8, 12), (5, 15), (3, 30)):
        expected = np.array([tap[i % 10] for i in range(max(start, stop - 10), stop)])
        np.testing.assert_array_equal(tap_rows(tap, start, stop, slice(0, 2)), expected)
    assert TAP_FRAMES > 4 * 48000  # the ear's 4 s fit
    with pytest.raises(ValueError):
        audio.heard_since(0, "elsewhere")
