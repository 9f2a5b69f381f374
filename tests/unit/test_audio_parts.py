"""The overtone mixer's parts on their own: tunings, the soft limiter, the command ring, the shared
memory between the engine and the audio process, and the settings (MixerConfig and the setlist's
``[audio]`` table).

The malformed ``[audio]`` tables live in tests/data/setlists/audio/bad_*.toml (a folder of their
own, so test_setlist's table of bad files stays whole), each with a comment saying what is wrong.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.setlist_errors import check_one_line_error
from pydantic import ValidationError

from engine.audio import command_ring as cmd
from engine.audio.command_ring import CommandRing
from engine.audio.config import MixerConfig
from engine.audio.limiter import SoftLimiter
from engine.audio.rack import overtone_rack
from engine.audio.shared import HEALTH_FIELDS, RUNNING, TAP_FRAMES, SharedAudioState
from engine.audio.tuning import cent_offsets, note_frequencies
from engine.setlist import load_setlist
from scenes.ldd.sound.settings import OvertoneSettings

REPO = Path(__file__).resolve().parents[2]
AUDIO_DATA = REPO / "tests" / "data" / "setlists" / "audio"

JUST = [1, 16 / 15, 9 / 8, 6 / 5, 5 / 4, 4 / 3, 45 / 32, 3 / 2, 8 / 5, 5 / 3, 9 / 5, 15 / 8]
PYTHAGOREAN = [1, 256 / 243, 9 / 8, 32 / 27, 81 / 64, 4 / 3, 729 / 512, 3 / 2, 128 / 81, 27 / 16,
               16 / 9, 243 / 128]


# Tunings.
def test_equal_temperament_puts_a4_at_440_hz_and_every_semitone_at_the_twelfth_root_of_two() -> None:
    hz = note_frequencies()
    assert hz.shape == (128,)
    assert hz[69] == 440.0
    assert hz[81] == pytest.approx(880.0, rel=1e-12)
    assert hz[57] == pytest.approx(220.0, rel=1e-12)
    assert hz[60] == pytest.approx(261.6255653, rel=1e-9)
    np.testing.assert_allclose(hz[1:] / hz[:-1], 2 ** (1 / 12), rtol=1e-12)


@pytest.mark.parametrize(("name", "ratios"), [("just", JUST), ("pythagorean", PYTHAGOREAN)])
@pytest.mark.parametrize("root", [0, 2, 7])
def test_just_and_pythagorean_degrees_sit_at_their_ratios_above_the_root(name: str, ratios: list[float],
                                                                         root: int) -> None:
    hz = note_frequencies(name, root=root)
    tonic = 60 + root
    for degree, ratio in enumerate(ratios):
        assert hz[tonic + degree] / hz[tonic] == pytest.approx(ratio, rel=1e-12), f"degree {degree}"
    assert hz[tonic + 12] / hz[tonic] == pytest.approx(2.0, rel=1e-12)


def test_just_major_third_is_about_14_cents_flat_of_equal_whatever_the_root() -> None:
    assert cent_offsets("just", root=0)[4] == pytest.approx(-13.686, abs=1e-3)  # E over C
    assert cent_offsets("just", root=2)[6] == pytest.approx(-13.686, abs=1e-3)  # F# over D
    assert cent_offsets("just", root=2)[2] == 0.0  # the root itself


def test_a_table_of_twelve_cent_offsets_moves_each_pitch_class_relative_to_the_reference() -> None:
    offsets = [50.0, 0.0, -10.0, 0.0, 7.0, 0.0, 0.0, 0.0, 0.0, 20.0, 0.0, -3.0]
    hz = note_frequencies(offsets)
    equal = note_frequencies()
    assert hz[69] == 440.0  # A carries +20 cents, but A4 is the reference
    for note in range(128):
        cents = offsets[note % 12] - offsets[9]
        assert hz[note] == pytest.approx(equal[note] * 2 ** (cents / 1200), rel=1e-12), f"note {note}"


@pytest.mark.parametrize("tuning", ["equal", "just", "pythagorean",
                                    [13.0, -40.0, 0.0, 5.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
@pytest.mark.parametrize(("reference_note", "reference_hz"), [(69, 440.0), (69, 415.0), (60, 256.0),
                                                              (64, 330.0)])
def test_the_reference_note_keeps_reference_hz_in_every_tuning(tuning, reference_note: int,
                                                               reference_hz: float) -> None:
    hz = note_frequencies(tuning, root=2, reference_hz=reference_hz, reference_note=reference_note)
    assert hz[reference_note] == pytest.approx(reference_hz, rel=1e-12)
    assert hz[reference_note + 12] == pytest.approx(2 * reference_hz, rel=1e-12)


@pytest.mark.parametrize("tuning", ["meantone", [0.0] * 11, [0.0] * 13])
def test_an_unknown_tuning_name_or_a_table_not_of_twelve_is_a_value_error(tuning) -> None:
    with pytest.raises(ValueError, match="twelve|12 offsets"):
        note_frequencies(tuning)


# The soft limiter.
def _block(amplitude: float, frames: int = 256, hz: float = 440.0, rate: int = 48000,
           start: int = 0) -> np.ndarray:
    t = (start + np.arange(frames)) / rate
    tone = amplitude * np.sin(2 * np.pi * hz * t)
    return np.stack([tone, -tone])


def test_limiter_leaves_a_block_under_the_threshold_untouched() -> None:
    limiter = SoftLimiter(48000, 256)
    block = _block(0.7)  # just under -3 dBFS
    quiet = block.copy()
    limiter.process(block)
    assert np.array_equal(block, quiet)
    assert limiter.reduction_db == 0.0


@pytest.mark.parametrize("amplitude", [0.75, 1.0, 4.0, 64.0])
def test_limiter_keeps_any_block_under_its_ceiling_and_keeps_the_signs(amplitude: float) -> None:
    limiter = SoftLimiter(48000, 256)
    for index in range(40):
        block = _block(amplitude, start=256 * index)
        signs = np.sign(block)
        limiter.process(block)
        # tanh saturates to exactly 1.0 in floats far over the knee: the ceiling itself is reached.
        assert np.max(np.abs(block)) <= limiter.ceiling < 1.0
        assert np.array_equal(np.sign(block), signs)
    assert limiter.reduction_db > 0.0


def test_limiter_gain_comes_back_with_its_release_time_after_a_loud_passage() -> None:
    limiter = SoftLimiter(48000, 256, release=0.3)
    limiter.process(_block(7.08))  # 20 dB over the threshold: the gain drops to 0.1
    assert limiter.gain == pytest.approx(0.1, rel=1e-3)
    blocks = round(0.3 * 48000 / 256)  # one release time of quiet blocks
    for index in range(blocks):
        limiter.process(_block(0.01, start=256 * index))
    recovered = (limiter.gain - 0.1) / (1.0 - 0.1)
    assert recovered == pytest.approx(1 - math.exp(-1), abs=0.01)


# The command ring.
def _ring(capacity: int = 4) -> CommandRing:
    return CommandRing(np.zeros(2, np.int64), np.zeros((capacity, cmd.FIELDS)))


def test_ring_hands_out_commands_oldest_first_and_then_nothing() -> None:
    ring = _ring(8)
    assert ring.push(cmd.NOTE_ON, 60, 60, 100.0)
    assert ring.push(cmd.DETUNE, cmd.ALL_VOICES, -1, 0.25)
    assert ring.push(cmd.NOTE_OFF, 60, 60)
    assert len(ring) == 3
    taken = ring.take()
    assert taken[:, [0, 2, 3, 4]].tolist() == [[cmd.NOTE_ON, 60, 60, 100.0], [cmd.DETUNE, -1, -1, 0.25],
                              [cmd.NOTE_OFF, 60, 60, 0.0]]
    assert len(ring) == 0
    assert ring.take().shape == (0, cmd.FIELDS)


def test_ring_keeps_the_order_when_it_wraps_around() -> None:
    ring = _ring(4)
    for value in range(3):
        ring.push(cmd.DETUNE, 0, 0, float(value))
    ring.take()
    for value in range(3, 7):  # slots 3, 0, 1, 2
        assert ring.push(cmd.DETUNE, 0, 0, float(value))
    assert ring.take()[:, 4].tolist() == [3.0, 4.0, 5.0, 6.0]


def test_a_full_ring_drops_new_commands_and_counts_them() -> None:
    ring = _ring(4)
    accepted = [ring.push(cmd.NOTE_ON, note, note, 90.0) for note in range(60, 66)]
    assert accepted == [True, True, True, True, False, False]
    assert ring.dropped == 2
    assert ring.take()[:, 3].tolist() == [60, 61, 62, 63]  # the oldest are kept
    assert ring.push(cmd.NOTE_ON, 70, 70, 90.0)  # room again
    assert ring.dropped == 2


def test_taken_commands_are_not_changed_by_later_pushes() -> None:
    ring = _ring(2)
    ring.push(cmd.NOTE_ON, 60, 60, 100.0)
    taken = ring.take()
    ring.push(cmd.PANIC)
    ring.push(cmd.PANIC)
    assert taken[:, [0, 2, 3, 4]].tolist() == [[cmd.NOTE_ON, 60, 60, 100.0]]


def test_skip_pending_forgets_what_is_queued_but_not_what_comes_after() -> None:
    ring = _ring(8)
    for note in (60, 62, 64):
        ring.push(cmd.NOTE_ON, note, note, 100.0)
    ring.skip_pending()
    assert len(ring) == 0
    assert ring.take().shape == (0, cmd.FIELDS)
    ring.push(cmd.NOTE_OFF, 60, 60)
    assert ring.take()[:, 0].tolist() == [cmd.NOTE_OFF]


# The shared memory.
@pytest.fixture
def engine_side():
    state = SharedAudioState.create()
    yield state
    state.close()


def test_created_state_starts_empty_and_zeroed(engine_side: SharedAudioState) -> None:
    assert engine_side.path.exists()
    assert len(engine_side.ring) == 0
    assert all(engine_side.get(field) == 0.0 for field in HEALTH_FIELDS)
    assert engine_side.device == ""


def test_audio_side_attached_to_the_file_takes_what_the_engine_pushed(engine_side) -> None:
    audio_side = SharedAudioState.attach(engine_side.path)
    engine_side.ring.push(cmd.NOTE_ON, 130, 2, 64.0)
    engine_side.ring.push(cmd.SUSTAIN, 0, 0, 127.0)
    assert len(audio_side.ring) == 2
    assert audio_side.ring.take().tolist() == [[cmd.NOTE_ON, cmd.ROUTED, 130, 2, 64.0, 0, 0, 0],
                                               [cmd.SUSTAIN, cmd.ROUTED, 0, 0, 127.0, 0, 0, 0]]
    assert len(engine_side.ring) == 0  # the read counter is shared too
    audio_side.ring.push(cmd.PANIC)  # either side may produce
    assert engine_side.ring.take()[:, 0].tolist() == [cmd.PANIC]


def test_health_fields_and_device_name_are_seen_from_both_sides(engine_side) -> None:
    audio_side = SharedAudioState.attach(str(engine_side.path))
    audio_side.set("status", RUNNING)
    audio_side.set("underruns", 3)
    audio_side.set("load_peak", 0.25)
    audio_side.device = "Scarlett 2i2 USB (JACK Audio Connection Kit)"
    assert engine_side.get("status") == RUNNING
    assert engine_side.get("underruns") == 3.0
    assert engine_side.get("load_peak") == 0.25
    assert engine_side.device == "Scarlett 2i2 USB (JACK Audio Connection Kit)"
    engine_side.set("starts", 2)
    assert audio_side.get("starts") == 2.0


def test_a_device_name_keeps_its_accents_and_a_long_one_is_cut_to_255_bytes(engine_side) -> None:
    engine_side.device = "Mikrofon für den Flügel"
    assert engine_side.device == "Mikrofon für den Flügel"
    engine_side.device = "x" * 300
    assert engine_side.device == "x" * 255
    engine_side.device = "pulse"  # a shorter name leaves nothing of the longer one behind
    assert engine_side.device == "pulse"


def test_a_restarted_audio_process_can_skip_the_stale_commands(engine_side) -> None:
    engine_side.ring.push(cmd.NOTE_ON, 60, 60, 100.0)
    restarted = SharedAudioState.attach(engine_side.path)
    restarted.ring.skip_pending()
    engine_side.ring.push(cmd.NOTE_ON, 62, 62, 100.0)
    assert restarted.ring.take()[:, 2].tolist() == [62]


def test_the_tap_returns_what_was_played_since_a_frame_count(engine_side) -> None:
    audio_side = SharedAudioState.attach(engine_side.path)
    first = np.full((256, 2), 0.25, np.float32)
    second = np.full((256, 2), -0.5, np.float32)
    audio_side.write_tap(first, None)
    audio_side.write_tap(second, np.full((256, 1), 0.125, np.float32))
    everything, count = engine_side.read_tap(0)
    assert count == 512
    assert everything.shape == (512, 4)
    assert np.array_equal(everything[:256, :2], first)
    assert np.array_equal(everything[256:, :2], second)
    assert np.all(everything[:256, 2:] == 0.0)
    assert np.all(everything[256:, 2:] == 0.125)  # a mono input fills both input columns
    newer, count = engine_side.read_tap(256)
    assert count == 512 and np.array_equal(newer[:, :2], second)


def test_the_tap_keeps_only_the_latest_frames(engine_side) -> None:
    block = np.zeros((4096, 2), np.float32)
    for index in range(TAP_FRAMES // 4096 + 3):
        block[:, 0] = index
        engine_side.write_tap(block, None)
    kept, count = engine_side.read_tap(0)
    assert count == (TAP_FRAMES // 4096 + 3) * 4096
    assert len(kept) == TAP_FRAMES
    assert kept[0, 0] == 3 and kept[-1, 0] == TAP_FRAMES // 4096 + 2


def test_the_callbacks_bookkeeping_writes_the_tap_and_the_health_in_one_call(engine_side) -> None:
    from engine.audio.shared import finish_block

    state = SharedAudioState.attach(engine_side.path)
    period = 256 / 48000
    stereo_in = np.frombuffer(np.full((256, 2), 0.5, np.float32).tobytes(), np.float32).reshape(256, 2)
    for index, (seconds, heard) in enumerate([(0.001, np.zeros((0, 2), np.float32)),
                                              (0.004, stereo_in)]):
        played = np.full((256, 2), index + 1.0, np.float32)
        assert finish_block(state.memory, state.health, played, heard, 10.0 + index, seconds,
                            period) == index
    assert engine_side.get("blocks") == 2 and engine_side.get("tap_frames") == 512
    assert engine_side.get("load") == pytest.approx(0.004 / period)
    assert engine_side.get("load_peak") == pytest.approx(0.004 / period)
    assert engine_side.loads[:2].tolist() == [0.001, 0.004]
    assert engine_side.block_starts[:2].tolist() == [10.0, 11.0]
    tap, _count = engine_side.read_tap(0)
    assert np.all(tap[:256, :2] == 1.0) and np.all(tap[:256, 2:] == 0.0)  # no input: zeros
    assert np.all(tap[256:, :2] == 2.0) and np.all(tap[256:, 2:] == 0.5)


def test_a_view_is_written_only_while_a_reader_wants_it(engine_side) -> None:
    """The granulator's view (its sounding grains) costs the callback nothing while no scene reads
    it: written after each block for VIEW_WANTED blocks after a read, then emptied once and left."""
    from engine.audio.pool import SamplePool
    from engine.audio.rack import InstrumentSpec, RackConfig
    from engine.audio.server import AudioServer, ServerSettings
    from engine.audio.shared import VIEW_WANTED

    pool = SamplePool.create(2 * 48000, max_tables=1)
    try:
        slot = pool.allocate("sine", 48000, 1)
        pool.fill(slot, np.sin(np.arange(48000) * 0.05))
        rack = RackConfig(buses={"grains": 0.0}, pool=str(pool.path), notes=["grains"],
                          instruments=[InstrumentSpec(name="grains", kind="granulator", bus="grains",
                                                      settings={"table": slot, "density": 100.0})])
        server = AudioServer(ServerSettings(state=str(engine_side.path), rack=rack, realtime=False),
                             SharedAudioState.attach(engine_side.path))
        sequence = engine_side.views[0]

        def blocks(count: int) -> None:
            for _ in range(count):
                server.callback(None, 256, None, 0)

        engine_side.ring.push(cmd.NOTE_ON, 60, 60, 100.0)
        blocks(20)
        unread = sequence[0]
        blocks(20)
        assert sequence[0] == unread and sequence[1] == 0  # playing, unread: not written
        assert len(engine_side.read_view(0, 6)) == 0
        blocks(1)
        assert sequence[0] == unread + 2 and len(engine_side.read_view(0, 6)) > 0  # read: written
        blocks(VIEW_WANTED // 2)
        assert sequence[0] == unread + 2 * (1 + VIEW_WANTED // 2)  # every block while wanted
        blocks(VIEW_WANTED + 2)  # no read since: emptied once, then left alone
        left = sequence[0]
        blocks(10)
        assert sequence[0] == left and sequence[1] == 0 and len(engine_side.read_view(0, 6)) == 0
    finally:
        pool.close()


def test_the_callback_sleeps_through_silence_and_wakes_at_the_next_command(engine_side) -> None:
    """Silent with nothing moving, the callback skips the rack (zeros, still counted and tapped)
    until a command comes; then it plays at once, and sleeps again when the sound has ended."""
    from engine.audio.rack import legacy_rack_config
    from engine.audio.server import AudioServer, ServerSettings

    settings = ServerSettings(state=str(engine_side.path), rack=legacy_rack_config(MixerConfig(), False),
                              realtime=False)
    server = AudioServer(settings, SharedAudioState.attach(engine_side.path))
    rendered = []
    render = server.rack.render
    server.rack.render = lambda: rendered.append(1) or render()

    def block() -> np.ndarray:
        data, flag = server.callback(None, 256, None, 0)
        assert flag == 0 and len(data) == 256 * 2 * 4
        return np.frombuffer(data, np.float32)

    assert not block().any() and server._asleep and len(rendered) == 1
    assert not block().any() and len(rendered) == 1  # asleep: the rack is not called
    engine_side.ring.push(cmd.NOTE_ON, 60, 60, 100.0)
    assert block().any() and not server._asleep and len(rendered) == 2
    engine_side.ring.push(cmd.NOTE_OFF, 60, 60, 0.0)
    for _ in range(2000):  # the release rings out, the limiter recovers
        block()
        if server._asleep:
            break
    assert server._asleep and engine_side.get("voices") == 0 and engine_side.get("limiter_db") == 0
    count = len(rendered)
    assert not block().any() and len(rendered) == count
    blocks = int(engine_side.get("blocks"))
    assert engine_side.get("tap_frames") == 256 * blocks  # every block counted and tapped, asleep too
    assert not engine_side.read_tap(256 * (blocks - 1))[0].any()


def test_the_owner_removes_the_file_on_close_and_an_attached_side_does_not() -> None:
    owner = SharedAudioState.create()
    attached = SharedAudioState.attach(owner.path)
    attached.close()
    assert owner.path.exists()
    owner.close()
    assert not owner.path.exists()
    owner.close()  # twice is harmless


# MixerConfig (the rack-wide settings) and the overtone voice's own (the first piece's).
def test_the_default_sound_is_the_original_pieces() -> None:
    config, voice = MixerConfig(), OvertoneSettings()
    assert (voice.partials, voice.polyphony, voice.level) == (4, 64, 0.4)
    assert (voice.envelope, voice.attack, voice.release) == ("percussive", 0.1, 2.0)
    assert (voice.bass_release, voice.bass_below) == (8.0, 60)
    assert (config.sample_rate, config.block_size) == (48000, 256)
    assert (config.tuning, config.reference_hz, config.reference_note) == ("equal", 440.0, 69)


@pytest.mark.parametrize(("note", "seconds"), [(0, 8.0), (59, 8.0), (60, 2.0), (108, 2.0)])
def test_notes_below_bass_below_ring_for_bass_release(note: int, seconds: float) -> None:
    assert OvertoneSettings().release_for(note) == seconds


def test_mixer_config_is_frozen_and_its_other_keys_are_the_overtone_instrument_s_to_refuse() -> None:
    config = MixerConfig(partials=8)
    with pytest.raises(ValidationError):
        config.partials = 4
    with pytest.raises(ValidationError):
        config.sample_rate = 44100
    assert config.instrument_settings() == {"partials": 8}
    with pytest.raises(ValidationError, match="volume"):
        overtone_rack(MixerConfig(volume=0.5))


@pytest.mark.parametrize("tuning", ["equal", "just", "pythagorean", [0.0] * 12, [-1200.0] + [1200.0] * 11])
def test_mixer_config_accepts_named_tunings_and_tables_of_twelve(tuning) -> None:
    assert MixerConfig(tuning=tuning).tuning == tuning


@pytest.mark.parametrize(("model", "settings", "says"), [
    (OvertoneSettings, {"partials": 17}, "less than or equal to 16"),
    (OvertoneSettings, {"partials": 0}, "greater than or equal to 1"),
    (MixerConfig, {"tuning": [0.0] * 11}, "twelve cent offsets"),
    (MixerConfig, {"tuning": [0.0] * 13}, "twelve cent offsets"),
    (MixerConfig, {"tuning": [0.0] * 11 + [1201.0]}, "between -1200 and 1200"),
    (MixerConfig, {"tuning": [float("nan")] + [0.0] * 11}, "between -1200 and 1200"),
    (MixerConfig, {"tuning": [float("inf")] + [0.0] * 11}, "between -1200 and 1200"),
    (OvertoneSettings, {"envelope": "gate"}, "'percussive' or 'adsr'"),
    (OvertoneSettings, {"polyphony": 0}, "greater than or equal to 1"),
    (OvertoneSettings, {"detune_glide": -0.1}, "greater than or equal to 0"),
    (MixerConfig, {"master_gain_db": 13.0}, "less than or equal to 12"),
])
def test_sound_settings_reject_values_out_of_range(model, settings: dict, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        model(**settings)


def test_audio_settings_reject_an_unknown_piano_choice() -> None:
    from engine.setlist import AudioSettings

    with pytest.raises(ValidationError, match="'auto', 'on' or 'off'"):
        AudioSettings(piano="yes")


# The setlist's [audio] table.
AUDIO_BAD_SETLISTS = [
    ("bad_audio_partials_too_many.toml", ["field 'audio.partials'", "less than or equal to 16",
                                          "got 17"]),
    ("bad_audio_tuning_eleven_offsets.toml", ["field 'audio.tuning'", "twelve cent offsets",
                                              "got [0, 0, 0"]),
    ("bad_audio_tuning_offset_too_large.toml", ["field 'audio.tuning'", "between -1200 and 1200"]),
    ("bad_audio_envelope_gate.toml", ["field 'audio.envelope'", "'percussive' or 'adsr'",
                                      "got 'gate'"]),
    ("bad_audio_polyphony_zero.toml", ["field 'audio.polyphony'", "greater than or equal to 1",
                                       "got 0"]),
    ("bad_audio_piano_yes.toml", ["field 'audio.piano'", "'auto', 'on' or 'off'", "got 'yes'"]),
    ("bad_audio_tuning_unknown_name.toml", ["field 'audio.tuning':",
                                            "'equal', 'just', 'pythagorean' or twelve cent offsets",
                                            "got 'meantone'"]),
]


def _check(path: Path) -> subprocess.CompletedProcess:
    """`showrunner check PATH`, as the performer runs it."""
    env = {key: value for key, value in os.environ.items() if key != "SHOWRUNNER_DEBUG"}
    return subprocess.run([sys.executable, "-m", "engine.cli", "check", str(path)], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=60)



AUDIO_BAD_IDS = [name.removesuffix(".toml") for name, _ in AUDIO_BAD_SETLISTS]


def test_every_bad_audio_setlist_file_is_in_the_table_and_says_what_is_wrong() -> None:
    on_disk = {path.name for path in AUDIO_DATA.glob("bad_*.toml")}
    assert on_disk == {name for name, _ in AUDIO_BAD_SETLISTS}
    for name in on_disk:
        assert (AUDIO_DATA / name).read_bytes().splitlines()[0].startswith(b"# Malformed: ")


@pytest.mark.parametrize(("name", "expected"), AUDIO_BAD_SETLISTS, ids=AUDIO_BAD_IDS)
def test_malformed_audio_table_is_one_line_naming_the_file_and_the_field(name: str,
                                                                          expected: list[str]) -> None:
    message = check_one_line_error(AUDIO_DATA / name, expected)
    assert "more problem" not in message, message  # one mistake, one problem


@pytest.fixture(scope="module")
def audio_cli_results():
    """`showrunner check` on every bad [audio] table, in parallel (each start-up costs ~0.3 s)."""
    names = [name for name, _ in AUDIO_BAD_SETLISTS]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(names, pool.map(_check, [AUDIO_DATA / name for name in names])))


@pytest.mark.parametrize(("name", "expected"), AUDIO_BAD_SETLISTS, ids=AUDIO_BAD_IDS)
def test_check_command_exits_2_with_one_line_for_a_malformed_audio_table(audio_cli_results, name: str,
                                                                         expected: list[str]) -> None:
    result = audio_cli_results[name]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for part in expected:
        assert part in lines[0], f"{part!r} missing from: {lines[0]}"


def test_an_audio_table_with_the_mixer_settings_loads_into_a_mixer_config(tmp_path: Path) -> None:
    path = tmp_path / "show.toml"
    path.write_text('title = "t"\n'
                    "[audio]\n"
                    "partials = 8\n"
                    "rolloff = 1.5\n"
                    'envelope = "adsr"\n'
                    "sustain = 0.5\n"
                    "amplitude_coupling = true\n"
                    "detune_glide = 0.0\n"
                    "tuning = [0, 0, 0, 0, -14, 0, 0, 2, 0, 0, 0, 0]\n"
                    "tuning_root = 2\n"
                    "reference_hz = 442\n"
                    'piano = "on"\n'
                    "polyphony = 32\n"
                    '[[cues]]\nid = "intro"\nscene = "pulse"\n', encoding="utf-8")
    audio = load_setlist(path).settings.audio
    assert isinstance(audio, MixerConfig)
    assert (audio.partials, audio.rolloff, audio.envelope, audio.sustain) == (8, 1.5, "adsr", 0.5)
    assert audio.amplitude_coupling is True and audio.detune_glide == 0.0
    assert audio.tuning == [0, 0, 0, 0, -14, 0, 0, 2, 0, 0, 0, 0]
    assert (audio.tuning_root, audio.reference_hz, audio.piano, audio.polyphony) == (2, 442.0, "on", 32)
    # What the renderer hands the rack: the [audio] table less the device fields.
    mixer = audio.mixer_config()
    assert type(mixer) is MixerConfig and mixer.tuning == audio.tuning
    assert mixer.instrument_settings() == {"partials": 8, "rolloff": 1.5, "envelope": "adsr",
                                           "sustain": 0.5, "amplitude_coupling": True,
                                           "detune_glide": 0.0, "polyphony": 32}
