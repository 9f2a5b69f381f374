"""The granulator's grain tools as live generators, in a real rack with the compiled kernels: hold
(one step-long grain repeated back to back), pulse (a short grain once a step), salad (stereo,
random tables, lengths, silences and harmonic parts, counted), re-pitched grains, and the GRAIN
command; none of them clicks, and a seed repeats them."""

from __future__ import annotations

import numpy as np
import pytest

from engine.audio import command_ring as cmd
from engine.audio.instruments.granulator import GRAIN, GranulatorInstrument, GranulatorSettings
from engine.audio.pool import SamplePool
from engine.audio.rack import InstrumentSpec, Rack, RackConfig
from tests.pool_tables import mono_table
from tests.spectrum import Spectrum, max_step

RATE, BLOCK = 48000, 256
CENTRE = np.sqrt(0.5)  # a mono table at pan 0, equal power
GAIN_DB = -20.0
LEVEL = 10 ** (GAIN_DB / 20)  # a grain's top at full velocity, hard left or right
SLOT = 0


@pytest.fixture
def pool():
    pool = SamplePool.create(RATE * 40, max_tables=16)
    yield pool
    pool.close()




def _sine(pool, name: str, hz: float, seconds: float = 2.0) -> int:
    return mono_table(pool, name, np.sin(2 * np.pi * hz * np.arange(int(seconds * RATE)) / RATE))


def _dc(pool, seconds: float, name: str = "dc") -> int:
    """A table of ones: the output is the grains' windows, so a grain's start, end and length
    show directly."""
    return mono_table(pool, name, np.ones(int(seconds * RATE)))


def _rack(pool, **settings) -> Rack:
    settings.setdefault("gain_db", GAIN_DB)
    spec = InstrumentSpec(name="grains", kind="granulator", bus="grains", settings=settings)
    return Rack(RackConfig(buses={"grains": 0.0}, instruments=[spec], notes=["grains"]), pool)


def _render(rack: Rack, seconds: float) -> np.ndarray:
    """(frames, 2) float64: the rack's output for ``seconds`` (whole blocks)."""
    return np.concatenate([rack.render().astype(np.float64)
                           for _ in range(int(round(seconds * RATE / BLOCK)))])


def _play(rack: Rack, note: int = 60) -> None:
    rack.apply(cmd.NOTE_ON, note, note, 127.0, SLOT)


def _release(rack: Rack, note: int = 60) -> None:
    rack.apply(cmd.NOTE_OFF, note, note, 0.0, SLOT)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, end) of every run of True in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


# Hold.
@pytest.mark.parametrize("tempo,division", [(120.0, 4), (137.0, 1), (100.0, 3)])
def test_hold_repeats_one_step_long_grain_back_to_back(pool, tempo, division):
    # Under the flat "table" window a grain of ones is flat but for its 2 ms rise and fall: the
    # output dips to 0 only where one grain ends and the next begins, so the dips' spacing is
    # the grain's length and, the level being full between them, the grains' period too.
    step = 60.0 / (tempo * division) * RATE
    rack = _rack(pool, table=_dc(pool, 2.0), mode="hold", tempo=tempo, division=division,
                 window="table")
    _play(rack)
    left = _render(rack, 5 * step / RATE + 0.01)[:, 0]
    top = CENTRE * LEVEL
    dips = [(first + end) / 2 for first, end in _runs(left < 0.5 * top)][1:]  # after the start
    assert len(dips) >= 4
    assert np.diff(dips) == pytest.approx(step, abs=1.0)
    for a, b in zip(dips, dips[1:]):  # full level between the joins: nothing missing
        assert left[int(a) + 200:int(b) - 200].min() == pytest.approx(top, rel=1e-4)


def test_hold_repeats_the_whole_table_when_it_is_shorter_than_a_step(pool):
    # A click 200 frames into a 3,000-frame table, a step of 6,000 frames: the click comes back
    # every 3,000 frames, one grain of the whole table after the other.
    click = np.zeros(3000)
    click[200] = 1.0
    rack = _rack(pool, table=mono_table(pool, "click", click), mode="hold", tempo=120.0, division=4,
                 window="table")
    _play(rack)
    left = _render(rack, 0.5)[:, 0]
    clicks = np.flatnonzero(left > 0.5 * CENTRE * LEVEL)
    assert clicks[0] == 200 and len(clicks) == 8
    assert np.all(np.diff(clicks) == 3000)


# Pulse.
@pytest.mark.parametrize("tempo,division,length", [(137.0, 2, 0.02), (90.0, 1, 0.1)])
def test_pulse_plays_a_pulse_length_grain_once_a_step_on_the_tempo(pool, tempo, division, length):
    step = 60.0 / (tempo * division) * RATE
    rack = _rack(pool, table=_dc(pool, 2.0), mode="pulse", tempo=tempo, division=division,
                 pulse_length=length, window="table")
    _play(rack)
    runs = _runs(_render(rack, 8 * step / RATE)[:, 0] > 0.0)
    assert len(runs) >= 7
    for k, (first, end) in enumerate(runs):
        assert abs(first - k * step) <= 2.0  # on the grid: fractions of a frame carried
        assert abs((end - first) - length * RATE) <= 2.0


# Salad.
def _salad_tables(pool) -> None:
    """Two short tables and their harmonic parts (10 and 6 ms: half of them is short, so the
    salad's steps are a few milliseconds and 10,000 of them render in seconds)."""
    for name, frames in (("drums", 480), ("voice", 288)):
        mono_table(pool, name, np.ones(frames))
        mono_table(pool, f"{name}.harmonic", np.full(frames, 0.5))


def _salad(pool, **settings) -> Rack:
    _salad_tables(pool)
    base = dict(mode="salad", tables=["drums", "voice"],
                harmonic_tables=["drums.harmonic", "voice.harmonic"], salad_shortest=0.0,
                salad_longest=0.01, window="table")
    return _rack(pool, **{**base, **settings})


def _binomial_bound(p: float, n: int) -> float:
    return 4.0 * np.sqrt(p * (1.0 - p) / n)


def test_salad_over_10000_steps_silences_and_plays_harmonic_parts_at_the_talks_rates(pool):
    rack = _salad(pool)
    salad = rack.instrument("grains")
    _play(rack)
    while salad.salad_stats["steps"] < 10_000:
        rack.render()
    stats = salad.salad_stats
    n = stats["steps"]
    assert salad.values[GranulatorInstrument.parameters.index("salad_silence")] == 0.05
    assert salad.values[GranulatorInstrument.parameters.index("salad_harmonic")] == 0.15
    for side in ("silenced_left", "silenced_right"):
        assert abs(stats[side] / n - 0.05) < _binomial_bound(0.05, n), stats
    assert abs(stats["harmonic"] / n - 0.15) < _binomial_bound(0.15, n), stats


def test_salad_is_stereo_and_silences_each_channel_on_its_own(pool):
    # Both grains of a step the same length (shortest = longest = the table, ratio 1): in the
    # middle of each step a channel is silent exactly when its grain was silenced, and the count
    # in the output is the count in salad_stats.
    mono_table(pool, "a", np.ones(2400))
    rack = _rack(pool, mode="salad", tables=["a"], salad_shortest=0.05, salad_longest=0.05,
                 salad_ratio_low=1.0, salad_ratio_high=1.0, salad_silence=0.5, window="table")
    salad = rack.instrument("grains")
    _play(rack)
    out = _render(rack, 100 * 0.05)
    middles = out[1200::2400][:100]
    sounding = middles > 0.5 * LEVEL
    assert np.all(middles[sounding] == pytest.approx(LEVEL, rel=1e-4))  # hard left, hard right
    left, right = sounding[:, 0], sounding[:, 1]
    for combination in ((True, True), (True, False), (False, True), (False, False)):
        assert np.any((left == combination[0]) & (right == combination[1])), combination
    stats = salad.salad_stats
    assert stats["steps"] >= 100
    # The last step may have started past the rendered middles: count the steps they saw.
    assert abs(int(np.sum(~left)) - stats["silenced_left"]) <= 1
    assert abs(int(np.sum(~right)) - stats["silenced_right"]) <= 1


@pytest.mark.parametrize("harmonic,hz", [(0.0, 440.0), (1.0, 1000.0)])
def test_salad_plays_the_harmonic_part_when_drawn_and_re_pitches_it(pool, harmonic, hz):
    # The "harmonic part" here is a sine of another pitch, so which table played shows.
    _sine(pool, "tone", 440.0)
    _sine(pool, "tone.harmonic", 1000.0)
    rack = _rack(pool, mode="salad", tables=["tone"], harmonic_tables=["tone.harmonic"],
                 salad_harmonic=harmonic, salad_ratio_low=1.5, salad_ratio_high=1.5)
    _play(rack)
    out = _render(rack, 3.0)
    spectrum = Spectrum(out[:, 0] + out[:, 1], RATE)
    assert int(np.argmax(spectrum.magnitude)) * spectrum.bin_hz == pytest.approx(1.5 * hz,
                                                                                 rel=0.005)


def test_salad_with_a_seed_repeats_itself_and_another_seed_differs(pool):
    _salad_tables(pool)

    def run(seed: int) -> np.ndarray:
        rack = _rack(pool, mode="salad", tables=["drums", "voice"], seed=seed,
                     harmonic_tables=["drums.harmonic"], salad_shortest=0.0,
                     salad_longest=0.02, salad_silence=0.2, salad_harmonic=0.3)
        _play(rack)
        return _render(rack, 0.5)

    one = run(3)
    assert np.abs(one).max() > 0.0
    assert np.array_equal(one, run(3))
    assert not np.array_equal(one, run(4))


# Re-pitched grains.
@pytest.mark.parametrize("mode,note,pitch,ratio", [("hold", 67, 0.0, 2 ** (7 / 12)),
                                                   ("hold", 60, -12.0, 0.5),
                                                   ("pulse", 60, 12.0, 2.0),
                                                   ("pulse", 55, 3.0, 2 ** (-2 / 12))])
def test_hold_and_pulse_grains_sound_at_the_pitch_ratio(pool, mode, note, pitch, ratio):
    rack = _rack(pool, table=_sine(pool, "sine", 440.0, 4.0), mode=mode, tempo=60.0,
                 pulse_length=0.4, pitch=pitch, position=0.25)
    _play(rack, note)
    spectrum = Spectrum(_render(rack, 3.0)[:, 0], RATE)
    assert int(np.argmax(spectrum.magnitude)) * spectrum.bin_hz == pytest.approx(440.0 * ratio,
                                                                                 rel=0.005)


# GRAIN.
def _grain(rack: Rack, delay: int, table: int, gain: float, start: float, duration: float,
           ratio: float) -> None:
    rack.apply(GRAIN, delay, table, gain, SLOT, start, duration, ratio)


def test_grain_fires_one_grain_at_the_asked_delay_start_duration_ratio_and_gain(pool):
    # A ramp table (its value is its frame / frames): under the flat window the grain's samples
    # are a line whose slope is the ratio and whose start is the table position.
    frames = RATE
    ramp = mono_table(pool, "ramp", np.arange(frames) / frames)
    rack = _rack(pool, window="table", gain_db=0.0)
    delay, start, duration, ratio, gain = 1000, 0.25, 0.1, 1.5, 0.5
    _grain(rack, delay, ramp, gain, start, duration, ratio)
    left = _render(rack, 0.2)[:, 0]
    [(first, end)] = _runs(left > 0.0)
    assert first == delay + 1  # the window is 0 on the grain's first frame
    assert end == delay + int(duration * RATE)
    flat = np.arange(first + 150, end - 150)
    slope, intercept = np.polyfit(flat - delay, left[flat] * frames / (gain * CENTRE), 1)
    assert slope == pytest.approx(ratio, rel=1e-4)
    assert intercept == pytest.approx(start * RATE, abs=1.0)


def test_a_grain_fired_with_a_pitch_ratio_peaks_at_ratio_times_the_tables_pitch(pool):
    rack = _rack(pool)
    _grain(rack, 10, _sine(pool, "sine", 440.0), 1.0, 0.1, 1.0, 1.25)
    spectrum = Spectrum(_render(rack, 1.1)[:, 0], RATE)
    assert int(np.argmax(spectrum.magnitude)) * spectrum.bin_hz == pytest.approx(550.0, rel=0.005)


# No clicks.
@pytest.mark.parametrize("mode,window,level", [
    ("hold", "hann", CENTRE * LEVEL), ("hold", "table", CENTRE * LEVEL),
    ("pulse", "hann", CENTRE * LEVEL), ("pulse", "expodec", CENTRE * LEVEL),
    ("salad", "hann", LEVEL), ("salad", "tukey", LEVEL)])
def test_no_tool_clicks_at_its_start_or_stop(pool, mode, window, level):
    # A table of ones: an abrupt grain edge would step by the grain's level.
    rack = _rack(pool, table=_dc(pool, 0.5), tables=["dc"], mode=mode, window=window,
                 tempo=120.0, division=4, pulse_length=0.05, salad_longest=0.4)
    silence = _render(rack, 0.05)
    _play(rack)
    playing = _render(rack, 1.0)
    _release(rack)
    out = np.concatenate([silence, playing, _render(rack, 0.6)])
    assert np.abs(playing).max() > 0.5 * level  # it sounded
    assert np.abs(out[-BLOCK:]).max() == 0.0  # and stopped
    assert max_step(out) < 0.25 * level


# Names, not numbers.
def test_salad_tables_are_named_and_resolved_to_slots_when_the_rack_is_built(pool):
    mono_table(pool, "filler", np.zeros(100))  # so no name is at slot 0 by chance
    _salad_tables(pool)
    rack = _rack(pool, mode="salad", tables=["voice", "drums"],
                 harmonic_tables=["voice.harmonic", ""])
    salad = rack.instrument("grains")
    names = pool.names()
    assert salad.salad_count == 2
    assert list(salad.salad_tables[:2]) == [names["voice"], names["drums"]]
    assert list(salad.salad_harmonics[:2]) == [names["voice.harmonic"], -1]


def test_a_table_name_the_pool_lacks_is_silent_on_the_audio_side_not_a_crash(pool):
    rack = _rack(pool, mode="salad", tables=["nowhere"])
    _play(rack)
    assert np.abs(_render(rack, 0.3)).max() == 0.0


@pytest.mark.parametrize("parameter,name,index", [("mode", "salad", 3), ("mode", "cloud", 0),
                                                  ("timing", "sync", 1), ("window", "hann", 0),
                                                  ("window", "table", 3)])
def test_choice_parameters_are_set_by_name_and_numbers_still_work(parameter, name, index):
    assert GranulatorInstrument.parameter_number(parameter, name) == index
    assert GranulatorInstrument.parameter_number(parameter, index) == index
    assert GranulatorInstrument.choices[parameter][index] == name
    settings = GranulatorSettings(**{parameter: index})  # a setlist may give the index too
    assert getattr(settings, parameter) == name


def test_a_wrong_choice_name_says_what_is_expected():
    with pytest.raises(ValueError, match=r"one of 'hann', 'tukey', 'expodec', 'table'.*'square'"):
        GranulatorInstrument.parameter_number("window", "square")
    with pytest.raises(ValueError, match="a number, not 'fast'"):
        GranulatorInstrument.parameter_number("density", "fast")


def test_a_mode_set_by_name_switches_a_playing_cloud_to_pulses(pool):
    rack = _rack(pool, table=_dc(pool, 2.0), window="table", tempo=120.0, division=4,
                 pulse_length=0.02, density=200.0, timing="sync", duration=0.01)
    _play(rack)
    rack.apply(cmd.SET, 0, GranulatorInstrument.parameters.index("mode"),
               GranulatorInstrument.parameter_number("mode", "pulse"), SLOT)
    _render(rack, 0.05)  # the cloud's last grains ring out
    runs = _runs(_render(rack, 0.5)[:, 0] > 0.0)
    assert len(runs) == 4 and all(abs((end - first) - 960) <= 2 for first, end in runs)
