"""The overtone mixer heard through numpy: partial k of a note sits at k*f*(1+d) (the fundamental
never moves), envelopes end when they should, nothing clicks, 64 voices stay under 0 dBFS, detune
glides, and the additive piano rings, damps and obeys the pedal.

The mixer is the legacy rack (:func:`engine.audio.rack.overtone_rack`, what a setlist without a
[sound] table plays): the first piece's overtone instrument (``scenes/ldd/sound``, found by kind)
with the settings written flat in ``[audio]`` (``MixerConfig(partials=4)``), and the piano.
Everything is rendered with :meth:`Rack.render`, block by block, exactly as the audio
process and the offline renderer do; only as much sound as a check needs is rendered.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.audio import command_ring as cmd
from engine.audio.config import MixerConfig
from engine.audio.rack import Rack, overtone_rack
from scenes.ldd.sound.settings import OvertoneSettings
from tests.spectrum import Spectrum, max_step

RATE = 48000
BLOCK = 256
STEADY = {"envelope": "adsr", "sustain": 1.0}  # a held note at a constant level: clean spectra


def equal_hz(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def render_blocks(mixer: Rack, blocks: int) -> np.ndarray:
    """The next ``blocks`` blocks, as (frames, 2) float64."""
    return np.concatenate([mixer.render().astype(np.float64) for _ in range(blocks)])


def render(mixer: Rack, seconds: float) -> np.ndarray:
    """The next whole blocks covering ``seconds``, as (frames, 2) float64."""
    return render_blocks(mixer, math.ceil(seconds * mixer.sample_rate / mixer.block_size - 1e-9))


def play(mixer: Rack, note: int, velocity: int = 127, channel: int = 0) -> None:
    mixer.apply(cmd.NOTE_ON, cmd.voice_id(note, channel), note, float(velocity))


def release(mixer: Rack, note: int, channel: int = 0) -> None:
    mixer.apply(cmd.NOTE_OFF, cmd.voice_id(note, channel), note)


def blocks_until_silent(mixer: Rack, most: int, piano: bool = False) -> int:
    """Blocks rendered until no overtone voice (or piano voice) sounds; ``most`` + 1 if that never
    happens."""
    for count in range(1, most + 1):
        mixer.render()
        if (mixer.instrument("piano").sounding() if piano else mixer.voices_sounding()) == 0:
            return count
    return most + 1


def sounding_voices(mixer: Rack) -> set[int]:
    bank = mixer.instrument("overtones").voices
    return {int(v) for v in bank.voice_id[bank.active & ~bank.fading]}


def steady_spectrum(mixer: Rack, start: float = 0.1, seconds: float = 0.5,
                    channel: int = 0) -> Spectrum:
    """Spectrum of ``seconds`` of sound starting ``start`` seconds from now (by default after the
    0.1 s attack of a note just struck)."""
    sound = render(mixer, start + seconds)[:, channel]
    return Spectrum(sound[int(start * RATE):int((start + seconds) * RATE)])


# Where the partials are.
@pytest.mark.parametrize("partials", [4, 8])
@pytest.mark.parametrize("note", [45, 60, 69, 81])
@pytest.mark.parametrize("detune", [0.0, 0.01, 0.05, -0.03])
def test_partial_k_sounds_at_k_f_one_plus_d_and_the_fundamental_at_f(partials: int, note: int,
                                                                     detune: float) -> None:
    mixer = overtone_rack(MixerConfig(partials=partials))  # the default, percussive sound
    mixer.apply(cmd.DETUNE, cmd.ALL_VOICES, -1, detune)
    play(mixer, note)
    spectrum = steady_spectrum(mixer)
    f = equal_hz(note)
    for k in range(1, partials + 1):
        expected = f if k == 1 else k * f * (1 + detune)
        heard, _amplitude = spectrum.peak(expected)
        assert heard == pytest.approx(expected, abs=0.5), f"partial {k}"


@pytest.mark.parametrize("rolloff", [0.0, 1.0, 2.0])
def test_partial_amplitudes_fall_as_k_to_the_minus_rolloff(rolloff: float) -> None:
    mixer = overtone_rack(MixerConfig(partials=6, rolloff=rolloff, **STEADY))
    play(mixer, 57)
    spectrum = steady_spectrum(mixer)
    amplitudes = np.array([spectrum.peak(k * 220.0)[1] for k in range(1, 7)])
    np.testing.assert_allclose(amplitudes / amplitudes[0], np.arange(1, 7) ** -rolloff, rtol=0.01)


def test_a_voice_at_full_velocity_peaks_at_level_split_equal_power_between_the_sides() -> None:
    mixer = overtone_rack(MixerConfig(partials=1, spread=0.0, **STEADY))
    play(mixer, 69)
    sound = render(mixer, 0.3)[int(0.15 * RATE):]
    assert np.max(np.abs(sound[:, 0])) == pytest.approx(0.4 / math.sqrt(2), rel=1e-3)
    assert np.array_equal(sound[:, 0], sound[:, 1])


def test_stereo_position_follows_pitch() -> None:
    mixer = overtone_rack(MixerConfig(spread=1.0, **STEADY))
    play(mixer, 24)
    low = render(mixer, 0.3)[int(0.15 * RATE):]
    assert np.max(np.abs(low[:, 0])) > 2 * np.max(np.abs(low[:, 1]))  # low notes to the left
    mixer = overtone_rack(MixerConfig(spread=1.0, **STEADY))
    play(mixer, 104)
    high = render(mixer, 0.3)[int(0.15 * RATE):]
    assert np.max(np.abs(high[:, 1])) > 2 * np.max(np.abs(high[:, 0]))


def test_partials_above_0_45_of_the_sample_rate_are_silent() -> None:
    # C8 = 4186 Hz: partial 5 (20930 Hz) is under 21600 Hz; 6, 7 and 8 are over it, and would fold
    # back (alias) to 48000 - k f if they were played.
    mixer = overtone_rack(MixerConfig(partials=8, **STEADY))
    play(mixer, 108)
    spectrum = steady_spectrum(mixer)
    f = equal_hz(108)
    fundamental = spectrum.peak(f)[1]
    assert spectrum.peak(5 * f)[1] == pytest.approx(fundamental / 5, rel=0.02)
    for k in (6, 7, 8):
        assert spectrum.level(RATE - k * f) < 1e-4 * fundamental, f"partial {k} aliased"


def test_a_detune_that_lifts_a_partial_past_0_45_of_the_sample_rate_silences_it() -> None:
    f = equal_hz(108)
    levels = {}
    for detune in (0.0, 0.05):  # partial 5: 20930 Hz, then 21977 Hz (over 21600 Hz)
        mixer = overtone_rack(MixerConfig(partials=5, **STEADY))
        mixer.apply(cmd.DETUNE, cmd.ALL_VOICES, -1, detune)
        play(mixer, 108)
        spectrum = steady_spectrum(mixer)
        levels[detune] = spectrum.level(5 * f * (1 + detune)) / spectrum.peak(f)[1]
    assert levels[0.0] == pytest.approx(1 / 5, rel=0.02)
    assert levels[0.05] < 1e-4


@pytest.mark.parametrize(("tuning", "note", "expected_hz"), [
    ([50.0] + [0.0] * 11, 72, 523.2511 * 2 ** (50 / 1200)),  # C raised by a quarter tone
    ([50.0] + [0.0] * 11, 69, 440.0),  # the reference keeps its pitch
    ("pythagorean", 66, 440.0 * 729 / 512 / (27 / 16)),  # F# over C, from A = 27/16
])
def test_the_mixer_plays_each_note_at_its_tuned_frequency(tuning, note: int, expected_hz: float) -> None:
    mixer = overtone_rack(MixerConfig(tuning=tuning, **STEADY))
    play(mixer, note)
    heard, _ = steady_spectrum(mixer).peak(expected_hz)
    assert heard == pytest.approx(expected_hz, abs=0.5)


def test_a_retuning_command_changes_later_notes_and_leaves_sounding_ones_alone() -> None:
    mixer = overtone_rack(MixerConfig(detune_glide=0.0, **STEADY))
    play(mixer, 60)
    mixer.apply(cmd.TUNE, 0, 0, 50.0)  # C up a quarter tone, from now on
    play(mixer, 72)
    spectrum = steady_spectrum(mixer)
    assert spectrum.peak(261.63, search_hz=5)[0] == pytest.approx(261.626, abs=0.5)
    assert spectrum.peak(538.6, search_hz=5)[0] == pytest.approx(523.251 * 2 ** (50 / 1200), abs=0.5)


# Clicks. A sum of sinusoids a_k sin(w_k n) never steps by more than sum a_k 2 sin(w_k / 2) from one
# sample to the next; the mixer may add to that only its ramps, the fastest of which is a 5 ms fade.
# A click (a jump of the waveform) shows as a step above that bound.
def step_bound(config: MixerConfig, notes: list[tuple[int, int]], detune: float = 0.0) -> float:
    """The steepest step, per channel, of these (note, velocity) pairs sounding together at spread 0
    (centre, 1/sqrt(2) a side) with overtones detuned by at most ``detune``, plus a 5 ms fade of each."""
    voice = OvertoneSettings(**config.instrument_settings())  # the overtone instrument's settings
    k = np.arange(1, voice.partials + 1)
    weights = k ** -voice.rolloff / np.sum(k ** -voice.rolloff)
    total = 0.0
    for note, velocity in notes:
        amplitude = voice.level * (velocity / 127) ** 2 / math.sqrt(2)
        hz = equal_hz(note) * np.where(k >= 2, k * (1 + detune), 1.0)
        slopes = np.where(hz < 0.45 * RATE, 2 * np.sin(np.pi * hz / RATE), 0.0)
        total += amplitude * (np.sum(weights * slopes) + 1 / (0.005 * RATE))
    return total


CLICK = {"spread": 0.0}  # every voice at the centre, as step_bound assumes


def around_event(setup, event, earliest: float, span: float = 0.1,
                 after: float = 0.2) -> tuple[np.ndarray, np.ndarray, Rack]:
    """The sound of a scenario before and after ``event(mixer)``: ``setup()`` makes the mixer and
    starts its notes; the event lands on the block boundary between ``earliest`` and ``earliest +
    span`` seconds where the waveform is largest, where a jump would be loudest (a cut at a zero
    crossing can hide). Returns (before, ``after`` seconds after, the mixer)."""
    first = math.ceil(earliest * RATE / BLOCK)
    candidates = np.arange(first, first + max(1, round(span * RATE / BLOCK)) + 1)
    probe = render_blocks(setup(), int(candidates[-1]))
    blocks = int(candidates[np.argmax(np.abs(probe[candidates * BLOCK - 1, 0]))])
    mixer = setup()
    before = render_blocks(mixer, blocks)
    event(mixer)
    return before, render(mixer, after), mixer


def chord(config: MixerConfig, notes: list[tuple[int, int]]):
    """A setup for :func:`around_event`: these (note, velocity) pairs struck at once."""
    def setup() -> Rack:
        mixer = overtone_rack(config)
        for note, velocity in notes:
            play(mixer, note, velocity)
        return mixer
    return setup


def test_the_click_check_catches_a_voice_cut_dead() -> None:
    config = MixerConfig(**CLICK)
    before, after, _ = around_event(chord(config, [(69, 127)]), lambda mixer: None, earliest=0.2)
    sound = np.concatenate([before, after])
    assert max_step(sound) <= step_bound(config, [(69, 127)])
    assert max_step(sound) > 0.8 * step_bound(config, [(69, 127)])  # the bound is a tight one
    sound[len(before):] = 0.0  # what a voice stopped without a fade would sound like
    assert max_step(sound) > 2 * step_bound(config, [(69, 127)])


def test_a_note_struck_over_a_sounding_note_does_not_click() -> None:
    config = MixerConfig(**CLICK)
    before, after, _ = around_event(chord(config, [(60, 127)]), lambda mixer: play(mixer, 69),
                                    earliest=0.2, after=0.3)
    assert np.all(before[0] == 0.0)  # the first note starts from silence
    assert max_step(np.concatenate([before, after])) <= step_bound(config, [(60, 127), (69, 127)])


@pytest.mark.parametrize(("earliest", "span"), [(0.01, 0.02), (0.45, 0.1)],
                         ids=["during_attack", "at_sustain"])
def test_adsr_note_off_releases_without_a_click(earliest: float, span: float) -> None:
    config = MixerConfig(envelope="adsr", **CLICK)
    before, after, _ = around_event(chord(config, [(69, 127)]), lambda mixer: release(mixer, 69),
                                    earliest, span)
    assert max_step(np.concatenate([before, after])) <= step_bound(config, [(69, 127)])
    assert np.max(np.abs(after[:512])) > 0.5 * np.max(np.abs(before[-512:]))  # fading, not gone


@pytest.mark.parametrize("glide", [0.05, 0.0], ids=["default_glide", "within_one_block"])
def test_a_large_detune_jump_does_not_click(glide: float) -> None:
    config = MixerConfig(detune_glide=glide, **CLICK, **STEADY)
    before, after, _ = around_event(chord(config, [(69, 127)]),
                                    lambda mixer: mixer.apply(cmd.DETUNE, cmd.ALL_VOICES, -1, 0.2),
                                    earliest=0.2, after=0.3)
    assert max_step(np.concatenate([before, after])) <= step_bound(config, [(69, 127)], detune=0.2)


def test_stealing_a_voice_fades_it_out_without_a_click() -> None:
    # The oldest voice is the loud one, so cutting it dead would stand far above the quiet others.
    config = MixerConfig(polyphony=4, **CLICK)
    notes = [(60, 127), (64, 40), (67, 40), (72, 40)]
    before, after, mixer = around_event(chord(config, notes), lambda mixer: play(mixer, 76, 40),
                                        earliest=0.25)
    assert sounding_voices(mixer) == {64, 67, 72, 76}
    assert max_step(np.concatenate([before, after])) <= step_bound(config, [*notes, (76, 40)])


def test_a_burst_of_more_notes_than_spare_slots_still_fades_every_stolen_voice() -> None:
    config = MixerConfig(polyphony=4, **CLICK)
    notes = [(60, 127), (64, 40), (67, 40), (72, 40)]
    burst = [(80 + index, 1) for index in range(9)]  # in one block; the ninth finds no free slot

    def strike(mixer: Rack) -> None:
        for note, velocity in burst:
            play(mixer, note, velocity)

    before, after, _ = around_event(chord(config, notes), strike, earliest=0.25)
    assert max_step(np.concatenate([before, after])) <= step_bound(config, notes + burst)


def test_panic_fades_every_voice_without_a_click_and_is_silent_a_block_later() -> None:
    config = MixerConfig(**CLICK)
    notes = [(60, 127), (67, 127)]
    before, after, mixer = around_event(chord(config, notes), lambda mixer: mixer.apply(cmd.PANIC),
                                        earliest=0.25, after=0.1)
    assert max_step(np.concatenate([before, after])) <= step_bound(config, notes)
    assert np.any(after[:BLOCK] != 0.0)  # a 5 ms fade, not a cut
    assert np.all(after[BLOCK:] == 0.0)
    assert mixer.voices_sounding() == 0


@pytest.mark.parametrize(("bus", "from_db", "to_db"), [("master", -12.0, 0.0), ("master", 0.0, -12.0),
                                                       ("master", 0.0, -120.0),
                                                       ("overtones", -12.0, 0.0)])
def test_a_gain_change_ramps_without_a_click(bus: str, from_db: float, to_db: float) -> None:
    config = MixerConfig(**{f"{'master' if bus == 'master' else 'overtone'}_gain_db": from_db},
                         **CLICK, **STEADY)
    bus_index = ("master", "overtones", "piano").index(bus)
    before, after, _ = around_event(chord(config, [(69, 127)]),
                                    lambda mixer: mixer.apply(cmd.GAIN, bus_index, 0, to_db),
                                    earliest=0.2)
    assert max_step(np.concatenate([before, after])) <= step_bound(config, [(69, 127)])
    ratio = np.max(np.abs(after[BLOCK:])) / np.max(np.abs(before[-BLOCK * 8:]))
    expected = 0.0 if to_db <= -120 else 10 ** ((to_db - from_db) / 20)
    assert ratio == pytest.approx(expected, rel=0.01, abs=1e-6)


# Polyphony and the limiter.
@pytest.mark.parametrize("how", ["struck_in_one_block", "one_a_block", "one_note_on_64_channels"])
def test_64_voices_at_full_velocity_never_reach_0_dbfs(how: str) -> None:
    mixer = overtone_rack(MixerConfig())
    loudest = 0.0
    for index in range(64):
        if how == "one_note_on_64_channels":  # 64 copies of one note, in phase: the worst case
            play(mixer, 60, channel=index)
        else:
            play(mixer, 30 + index)
        if how == "one_a_block":
            loudest = max(loudest, float(np.max(np.abs(mixer.render()))))
    assert mixer.voices_sounding() == 64
    sound = render(mixer, 3.0)
    loudest = max(loudest, float(np.max(np.abs(sound))))
    assert loudest < 1.0
    assert loudest > 0.7  # loud enough that the limiter had work to do
    assert np.all(np.isfinite(sound))


def test_129_notes_with_polyphony_64_keep_the_newest_64_sounding() -> None:
    mixer = overtone_rack(MixerConfig())
    for index in range(129):
        play(mixer, index % 128, channel=index // 128)
        assert mixer.voices_sounding() <= 64
        if index % 3 == 0:
            mixer.render()
    assert mixer.voices_sounding() == 64
    assert sounding_voices(mixer) == set(range(129 - 64, 129))
    assert np.max(np.abs(render(mixer, 0.5))) < 1.0


def test_a_full_bank_steals_the_oldest_released_voice_before_the_oldest_voice() -> None:
    mixer = overtone_rack(MixerConfig())
    for note in range(64):
        play(mixer, 30 + note)
    mixer.render()
    for note in range(50, 60):  # key up on ten of them: they ring on (percussive), but may go first
        release(mixer, note)
    for note in range(10):
        play(mixer, 100 + note)
    assert sounding_voices(mixer) == set(range(30, 94)) - set(range(50, 60)) | set(range(100, 110))
    play(mixer, 110)  # nothing released left: the oldest voice goes
    assert 30 not in sounding_voices(mixer) and 31 in sounding_voices(mixer)
    assert mixer.voices_sounding() == 64


def test_stealing_among_released_voices_takes_the_oldest_one() -> None:
    mixer = overtone_rack(MixerConfig(polyphony=4))
    for note in (60, 62, 64, 65):
        play(mixer, note)
    release(mixer, 62)
    release(mixer, 64)
    play(mixer, 67)
    assert sounding_voices(mixer) == {60, 64, 65, 67}
    play(mixer, 69)
    assert sounding_voices(mixer) == {60, 65, 67, 69}
    play(mixer, 71)
    assert sounding_voices(mixer) == {65, 67, 69, 71}


def test_a_repeated_note_replaces_its_own_voice() -> None:
    mixer = overtone_rack(MixerConfig())
    play(mixer, 60)
    render(mixer, 0.1)
    play(mixer, 60)
    assert mixer.voices_sounding() == 1


# Envelopes.
@pytest.mark.parametrize(("note", "seconds"), [(81, 2.1), (60, 2.1), (59, 8.1), (45, 8.1)])
@pytest.mark.parametrize("block_size", [256, 64])
def test_a_percussive_note_ends_after_attack_plus_release_within_one_block(note: int, seconds: float,
                                                                         block_size: int) -> None:
    mixer = overtone_rack(MixerConfig(block_size=block_size))
    play(mixer, note)
    expected = math.ceil(seconds * RATE / block_size - 1e-9)
    assert blocks_until_silent(mixer, expected + 10) == expected


def test_a_percussive_envelope_peaks_when_the_0_1_s_attack_ends_and_fades_to_nothing() -> None:
    mixer = overtone_rack(MixerConfig(partials=1, spread=0.0))
    play(mixer, 69)
    sound = render(mixer, 2.1)[:, 0]
    peaks = np.abs(sound).reshape(-1, BLOCK).max(axis=1)
    loudest_block = int(np.argmax(peaks))
    assert abs((loudest_block + 0.5) * BLOCK - 0.1 * RATE) <= 1.5 * BLOCK
    assert peaks[loudest_block] == pytest.approx(0.4 / math.sqrt(2), rel=0.01)
    assert sound[0] == 0.0 and peaks[0] < 0.25 * peaks[loudest_block]
    assert np.all(np.diff(peaks[:loudest_block]) > 0)  # only rises during the attack
    assert peaks[-1] < 1e-3 * peaks[loudest_block]
    assert np.all(np.diff(peaks[loudest_block + 1:]) <= 1e-6)  # only falls after the attack


def test_a_percussive_note_ignores_its_note_off() -> None:
    sounds = []
    for key_up in (False, True):
        mixer = overtone_rack(MixerConfig())
        play(mixer, 69)
        first = render(mixer, 0.3)
        if key_up:
            release(mixer, 69)
        sounds.append(np.concatenate([first, render(mixer, 1.0)]))
        assert mixer.voices_sounding() == 1
    assert np.array_equal(sounds[0], sounds[1])


def test_an_adsr_note_holds_its_sustain_level_until_note_off_then_ends_after_the_release() -> None:
    mixer = overtone_rack(MixerConfig(envelope="adsr", partials=1, spread=0.0))
    play(mixer, 69)
    held = render(mixer, 3.0)[:, 0]
    peak = 0.4 / math.sqrt(2)
    assert np.max(np.abs(held[int(0.09 * RATE):int(0.11 * RATE)])) == pytest.approx(peak, rel=0.01)
    assert np.max(np.abs(held[-BLOCK * 4:])) == pytest.approx(0.7 * peak, rel=0.01)  # sustain 0.7
    assert mixer.voices_sounding() == 1
    release(mixer, 69)
    assert blocks_until_silent(mixer, 400) == 375  # 2 s at 256 frames


def _pedal_down_note_released(envelope: str) -> Rack:
    """Pedal down, a note struck and released, then twice the release time rendered."""
    mixer = overtone_rack(MixerConfig(envelope=envelope, release=0.5))
    mixer.apply(cmd.SUSTAIN, value=127)
    play(mixer, 69)
    render(mixer, 0.2)
    release(mixer, 69)
    render(mixer, 1.0)
    return mixer


def test_the_sustain_pedal_does_not_hold_a_percussive_note() -> None:
    mixer = _pedal_down_note_released("percussive")  # rings its 0.6 s out whatever the pedal does
    assert mixer.voices_sounding() == 0


def test_the_sustain_pedal_holds_adsr_notes_until_it_lifts() -> None:
    mixer = _pedal_down_note_released("adsr")
    assert mixer.voices_sounding() == 1
    mixer.apply(cmd.SUSTAIN, value=0)
    assert blocks_until_silent(mixer, 200) == math.ceil(0.5 * RATE / BLOCK)


@pytest.mark.parametrize(("position", "holds"), [(63, False), (64, True), (127, True)])
def test_the_sustain_pedal_is_down_from_position_64(position: int, holds: bool) -> None:
    mixer = overtone_rack(MixerConfig(envelope="adsr", release=0.1))
    mixer.apply(cmd.SUSTAIN, value=position)
    play(mixer, 69)
    release(mixer, 69)
    render(mixer, 0.5)
    assert mixer.voices_sounding() == (1 if holds else 0)


def test_a_note_struck_again_under_the_pedal_is_held_by_its_key() -> None:
    mixer = overtone_rack(MixerConfig(envelope="adsr", release=0.1))
    mixer.apply(cmd.SUSTAIN, value=127)
    play(mixer, 69)
    release(mixer, 69)
    play(mixer, 69)  # key down again
    mixer.apply(cmd.SUSTAIN, value=0)  # the pedal lifts while the key is down
    render(mixer, 0.5)
    assert mixer.voices_sounding() == 1
    release(mixer, 69)
    assert blocks_until_silent(mixer, 40) == math.ceil(0.1 * RATE / BLOCK)


def test_all_notes_off_releases_every_adsr_note() -> None:
    mixer = overtone_rack(MixerConfig(envelope="adsr", release=0.1))
    for note in (60, 64, 67):
        play(mixer, note)
    render(mixer, 0.2)
    mixer.apply(cmd.ALL_NOTES_OFF)
    assert blocks_until_silent(mixer, 40) == math.ceil(0.1 * RATE / BLOCK)


def test_panic_lifts_the_sustain_pedal_of_the_overtones() -> None:
    mixer = overtone_rack(MixerConfig(envelope="adsr", release=0.1))
    mixer.apply(cmd.SUSTAIN, value=127)
    play(mixer, 60)
    render(mixer, 0.1)
    mixer.apply(cmd.PANIC)
    play(mixer, 69)
    render(mixer, 0.2)
    release(mixer, 69)
    assert blocks_until_silent(mixer, 100) == math.ceil(0.1 * RATE / BLOCK)


def test_panic_sets_the_detune_back_to_zero_for_later_notes() -> None:
    mixer = overtone_rack(MixerConfig(**STEADY))
    mixer.apply(cmd.DETUNE, cmd.ALL_VOICES, -1, 0.05)
    mixer.apply(cmd.PANIC)
    play(mixer, 69)
    assert steady_spectrum(mixer).peak(880.0)[0] == pytest.approx(880.0, abs=0.5)


@pytest.mark.parametrize("detune", [0.2, -0.2])
def test_amplitude_coupling_scales_the_detuned_partials_by_2_minus_1_plus_d(detune: float) -> None:
    amplitudes = {}
    for coupling in (False, True):
        mixer = overtone_rack(MixerConfig(amplitude_coupling=coupling, **STEADY))
        mixer.apply(cmd.DETUNE, cmd.ALL_VOICES, -1, detune)
        play(mixer, 57)
        spectrum = steady_spectrum(mixer)
        amplitudes[coupling] = np.array([spectrum.peak(220.0 * (k if k == 1 else k * (1 + detune)))[1]
                                         for k in range(1, 5)])
    ratio = amplitudes[True] / amplitudes[False]
    np.testing.assert_allclose(ratio, [1.0] + [2 - (1 + detune)] * 3, rtol=0.01)


@pytest.mark.parametrize("sensitivity", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("velocity", [64, 10])
def test_velocity_scales_a_voice_by_sensitivity_times_velocity_squared(sensitivity: float,
                                                                       velocity: int) -> None:
    sounds = {}
    for struck in (127, velocity):
        mixer = overtone_rack(MixerConfig(velocity_sensitivity=sensitivity))
        play(mixer, 69, struck)
        sounds[struck] = render(mixer, 0.3)
    scale = 1 - sensitivity + sensitivity * (velocity / 127) ** 2
    np.testing.assert_allclose(sounds[velocity], scale * sounds[127], rtol=0, atol=1e-6)
    assert np.max(np.abs(sounds[127])) > 0.1


def test_a_note_on_with_velocity_0_is_a_note_off() -> None:
    mixer = overtone_rack(MixerConfig(envelope="adsr", release=0.1))
    play(mixer, 69)
    render(mixer, 0.2)
    play(mixer, 69, velocity=0)
    assert blocks_until_silent(mixer, 40) == math.ceil(0.1 * RATE / BLOCK)


def test_a_bus_gain_command_scales_the_output() -> None:
    sounds = {}
    for db in (None, -6.0):
        mixer = overtone_rack(MixerConfig(**STEADY))
        if db is not None:
            mixer.apply(cmd.GAIN, 1, 0, db)  # the overtone bus
        play(mixer, 69)
        sounds[db] = render(mixer, 0.2)
    gain = 10 ** (-6 / 20)
    np.testing.assert_allclose(sounds[-6.0][BLOCK:], gain * sounds[None][BLOCK:], rtol=0, atol=1e-6)
    ramp = sounds[-6.0][:BLOCK] / np.where(sounds[None][:BLOCK] == 0, 1, sounds[None][:BLOCK])
    assert np.all((gain - 1e-6 <= ramp[1:]) & (ramp[1:] <= 1 + 1e-6))  # ramped down within a block


@pytest.mark.parametrize(("bus", "db"), [(3, -20.0), (-1, -20.0), (0, float("nan")),
                                         (0, float("inf"))])
def test_a_gain_command_for_no_bus_or_not_a_number_changes_nothing(bus: int, db: float) -> None:
    sounds = []
    for command in (False, True):
        mixer = overtone_rack(MixerConfig())
        play(mixer, 69)
        if command:
            mixer.apply(cmd.GAIN, bus, 0, db)
        sounds.append(render(mixer, 0.1))
    assert np.array_equal(sounds[0], sounds[1])


# Detune.
def test_detune_glides_to_its_new_value_within_a_few_glide_times() -> None:
    mixer = overtone_rack(MixerConfig(**STEADY))  # glide 0.05 s
    play(mixer, 69)
    render(mixer, 0.2)
    mixer.apply(cmd.DETUNE, cmd.ALL_VOICES, -1, 0.05)
    spectrum = steady_spectrum(mixer, start=8 * 0.05, seconds=0.4)
    assert spectrum.peak(440.0)[0] == pytest.approx(440.0, abs=0.5)
    for k in (2, 3, 4):
        assert spectrum.peak(k * 440 * 1.05)[0] == pytest.approx(k * 440 * 1.05, abs=0.5), f"partial {k}"


def test_detune_is_about_63_percent_there_after_one_glide_time() -> None:
    mixer = overtone_rack(MixerConfig(detune_glide=1.0, **STEADY))
    play(mixer, 69)
    render(mixer, 0.2)
    mixer.apply(cmd.DETUNE, cmd.ALL_VOICES, -1, 0.05)
    spectrum = steady_spectrum(mixer, start=0.9, seconds=0.2)  # centred on one glide time
    expected = 880 * (1 + 0.05 * (1 - math.exp(-1)))
    assert spectrum.peak(expected, search_hz=40)[0] == pytest.approx(expected, abs=1.0)


def test_detune_for_all_voices_moves_every_sounding_voice() -> None:
    mixer = overtone_rack(MixerConfig(detune_glide=0.0, **STEADY))
    play(mixer, 60)
    play(mixer, 69)
    render(mixer, 0.1)
    mixer.apply(cmd.DETUNE, cmd.ALL_VOICES, -1, 0.05)
    spectrum = steady_spectrum(mixer, start=0.05)
    for f in (equal_hz(60), 440.0):
        assert spectrum.peak(f)[0] == pytest.approx(f, abs=0.5)
        assert spectrum.peak(2 * f * 1.05)[0] == pytest.approx(2 * f * 1.05, abs=0.5)


def test_later_notes_start_at_the_last_detune_for_all_voices_without_gliding_there() -> None:
    mixer = overtone_rack(MixerConfig(detune_glide=5.0, **STEADY))  # a glide would take seconds
    play(mixer, 60)
    render(mixer, 0.1)
    mixer.apply(cmd.DETUNE, cmd.ALL_VOICES, -1, 0.05)
    play(mixer, 69)
    spectrum = steady_spectrum(mixer)
    assert spectrum.peak(880 * 1.05)[0] == pytest.approx(880 * 1.05, abs=0.5)
    gliding, _ = spectrum.peak(2 * equal_hz(60) * 1.0125, search_hz=20)
    assert 2 * equal_hz(60) + 0.5 < gliding < 2 * equal_hz(60) * 1.05 - 5  # the old note on its way


def test_detune_for_one_voice_leaves_the_other_voices_alone() -> None:
    mixer = overtone_rack(MixerConfig(detune_glide=0.0, **STEADY))
    play(mixer, 60)
    play(mixer, 69)
    render(mixer, 0.1)
    mixer.apply(cmd.DETUNE, cmd.voice_id(69), 69, 0.05)
    spectrum = steady_spectrum(mixer, start=0.05)
    c4 = equal_hz(60)
    for k in (2, 3, 4):
        assert spectrum.peak(k * 440 * 1.05)[0] == pytest.approx(k * 440 * 1.05, abs=0.5), f"A4 {k}"
        assert spectrum.peak(k * c4)[0] == pytest.approx(k * c4, abs=0.5), f"C4 {k}"


def test_a_later_note_starts_at_the_last_detune_sent_even_one_for_another_voice() -> None:
    # AudioOut.detune: "Later notes start from the last value sent" (docs/audio.md reads as if only
    # a detune for every voice did).
    mixer = overtone_rack(MixerConfig(detune_glide=5.0, **STEADY))
    play(mixer, 60)
    render(mixer, 0.05)
    mixer.apply(cmd.DETUNE, cmd.voice_id(60), 60, 0.3)
    play(mixer, 69)
    assert steady_spectrum(mixer).peak(880 * 1.3)[0] == pytest.approx(880 * 1.3, abs=0.5)


def test_detune_for_one_channel_leaves_the_same_note_on_another_channel_alone() -> None:
    mixer = overtone_rack(MixerConfig(detune_glide=0.0, spread=0.0, **STEADY))
    play(mixer, 69, channel=0)
    play(mixer, 69, channel=1)
    render(mixer, 0.1)
    mixer.apply(cmd.DETUNE, cmd.voice_id(69, 1), 69, 0.05)
    spectrum = steady_spectrum(mixer, start=0.05)
    assert spectrum.peak(880.0)[1] == pytest.approx(spectrum.peak(924.0)[1], rel=0.01)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("voice", [cmd.ALL_VOICES, cmd.voice_id(69)])
def test_a_detune_that_is_not_a_finite_number_is_ignored_by_the_mixer(value: float, voice: int) -> None:
    sounds = []
    for command in (False, True):
        mixer = overtone_rack(MixerConfig())
        play(mixer, 69)
        render(mixer, 0.05)
        if command:
            mixer.apply(cmd.DETUNE, voice, 69, value)
        play(mixer, 72)  # a later note starts where the last usable detune left it
        sounds.append(render(mixer, 0.2))
    assert np.all(np.isfinite(sounds[1]))
    assert np.array_equal(sounds[0], sounds[1])


# The piano.
PIANO_ONLY = {"overtone_gain_db": -120.0, "piano_gain_db": 0.0}


def piano_mixer(**settings) -> Rack:
    """A mixer whose overtone bus is muted: only the piano is heard."""
    return overtone_rack(MixerConfig(**{**PIANO_ONLY, **settings}), piano=True)


def rms(sound: np.ndarray) -> float:
    return float(np.sqrt(np.mean(sound ** 2)))


def test_the_piano_plays_only_when_asked_for() -> None:
    assert "piano" not in overtone_rack(MixerConfig()).names
    for wanted in (False, True):
        mixer = overtone_rack(MixerConfig(**PIANO_ONLY), piano=wanted)
        play(mixer, 69)
        heard = np.max(np.abs(render(mixer, 0.1)))
        assert (heard > 0.05) if wanted else (heard == 0.0)


def test_the_piano_sounds_at_the_fundamental_with_slightly_sharp_upper_partials() -> None:
    mixer = piano_mixer()
    play(mixer, 69)
    spectrum = steady_spectrum(mixer, start=0.02, seconds=0.5)
    assert spectrum.peak(440.0)[0] == pytest.approx(440.0, abs=0.5)
    sharpness = [spectrum.peak(p * 440.0 * 1.001)[0] / (p * 440.0) - 1 for p in range(2, 7)]
    assert all(0 < cents < 0.005 for cents in sharpness), sharpness  # under 9 cents sharp
    assert sharpness == sorted(sharpness)  # the higher the partial, the sharper
    assert sharpness[-1] * 6 * 440 > 2.0  # partial 6 audibly (> 2 Hz) off the harmonic


def test_a_held_piano_note_decays() -> None:
    mixer = piano_mixer()
    play(mixer, 69)
    sound = render(mixer, 2.0)[:, 0]
    levels = [rms(sound[int(t * RATE):int((t + 0.1) * RATE)]) for t in (0.05, 0.5, 1.0, 1.9)]
    assert levels == sorted(levels, reverse=True)
    assert levels[-1] < 0.7 * levels[0]
    assert mixer.instrument("piano").sounding() == 1


def test_releasing_a_piano_key_brings_the_damper_down() -> None:
    mixer = piano_mixer()
    play(mixer, 69)
    before = render(mixer, 0.3)[:, 0]
    release(mixer, 69)
    after = render(mixer, 0.5)[:, 0]
    assert rms(after[-int(0.1 * RATE):]) < 0.02 * rms(before[-int(0.1 * RATE):])
    assert max_step(np.concatenate([before, after])) < 2 * max_step(before)  # the damper does not click
    assert blocks_until_silent(mixer, int(1.0 * RATE / BLOCK), piano=True) <= int(1.0 * RATE / BLOCK)


def test_the_sustain_pedal_holds_a_released_piano_key_until_it_lifts() -> None:
    sounds = []
    for key_up in (False, True):
        mixer = piano_mixer()
        mixer.apply(cmd.SUSTAIN, value=127)
        play(mixer, 69)
        first = render(mixer, 0.2)
        if key_up:
            release(mixer, 69)
        sounds.append(np.concatenate([first, render(mixer, 0.8)]))
    assert np.array_equal(sounds[0], sounds[1])  # under the pedal the key does not matter
    mixer.apply(cmd.SUSTAIN, value=0)
    assert blocks_until_silent(mixer, int(1.5 * RATE / BLOCK), piano=True) <= int(1.5 * RATE / BLOCK)


def test_panic_lifts_the_pianos_pedal() -> None:
    mixer = piano_mixer()
    mixer.apply(cmd.SUSTAIN, value=127)
    mixer.apply(cmd.PANIC)
    play(mixer, 69)
    render(mixer, 0.1)
    release(mixer, 69)
    assert blocks_until_silent(mixer, int(1.5 * RATE / BLOCK), piano=True) <= int(1.5 * RATE / BLOCK)


def test_the_piano_plays_under_the_overtones_at_its_bus_gain() -> None:
    both = overtone_rack(MixerConfig(piano_gain_db=-6.0, **STEADY), piano=True)
    alone = overtone_rack(MixerConfig(**STEADY))
    for mixer in (both, alone):
        play(mixer, 69)
    with_piano, without = render(both, 0.3), render(alone, 0.3)
    piano = piano_mixer(piano_gain_db=-6.0)
    play(piano, 69)
    np.testing.assert_allclose(with_piano, without + render(piano, 0.3), rtol=0, atol=1e-6)


def _numpy_limiter(limiter, stereo: np.ndarray) -> None:
    """The limiter as it was written in numpy before it was compiled: the reference its compiled
    gain computer must match bit for bit (the first piece sounds exactly as it did)."""
    peak = float(np.max(np.abs(stereo)))
    target = min(1.0, limiter.threshold / peak) if peak > 0 else 1.0
    start = limiter.gain
    end = target if target < start else start + (target - start) * limiter.recovery
    if end > 0.9999:
        end = 1.0
    if start != 1.0 or end != 1.0:
        stereo *= start + (end - start) * limiter._ramp
    limiter.gain = end
    over = np.abs(stereo) > limiter.threshold
    if over.any():
        room = limiter.ceiling - limiter.threshold
        bent = limiter.threshold + room * np.tanh((np.abs(stereo) - limiter.threshold) / room)
        np.copyto(stereo, np.sign(stereo) * bent, where=over)


@pytest.mark.parametrize("through", ["process", "finish"])
def test_the_compiled_limiter_and_master_gain_match_the_numpy_ones_bit_for_bit(through: str) -> None:
    from engine.audio.limiter import SoftLimiter

    rng = np.random.default_rng(3)
    ours, reference = SoftLimiter(48000, 256), SoftLimiter(48000, 256)
    ramp = np.arange(1, 257, dtype=np.float64) / 256
    master = 1.0
    for block in range(900):
        # silence, quiet, loud, over, far over; then quiet long enough for the gain to recover
        level = [0.0, 0.3, 0.9, 4.0, 40.0][block // 20 % 5] if block < 300 else 0.02
        mix = rng.normal(0.0, level, (2, 256)) if level else np.zeros((2, 256))
        if block == 123:
            mix[0, 17] = np.nan  # a NaN: no gain change, as numpy's NaN peak gave
        target = [1.0, 1.0, 0.5, 2.0][block // 7 % 4]  # steady gains and ramps between them
        expected = mix.copy()
        if master == target:
            if master != 1.0:
                expected *= master
        else:
            expected *= master + (target - master) * ramp
        _numpy_limiter(reference, expected)
        if through == "process":
            got = mix.copy()
            got *= master if master == target else master + (target - master) * ramp
            ours.process(got)
        else:
            out = np.zeros((256, 2), np.float32)
            ours.finish(mix, out, master, target)
            got = mix
            np.testing.assert_array_equal(out, expected.T.astype(np.float32))
        master = target
        np.testing.assert_array_equal(got, expected)
        assert ours.gain == reference.gain
