"""Harmonic and percussive tables: a sample with ``hpss = true`` gives the pool two more tables,
separated by librosa when the show loads.

The recording: a flute holding A4 (smstools_flute-A4.wav) with the first stroke of a mridangam
(smstools_mridangam.wav, its first 0.25 s) added at 1.0 s. Between 0.5 and 0.8 s only the flute
sounds; between 1.0 and 1.06 s the stroke holds two thirds of the energy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from engine.audio.hpss import separate
from engine.audio.pool import PoolFull, load_audio_file
from engine.audio.sound_settings import build_sound
from engine.errors import UserError
from engine.setlist import load_setlist
from tests.conftest import SHARED_DATA
from tests.setlist_errors import check_one_line_error

ROOT = Path(__file__).resolve().parents[2]
RATE = 44100  # the recordings' own
HIT_AT = 1.0  # seconds
SUSTAINED = (0.5, 0.8)  # seconds: the flute alone
AROUND_THE_HIT = (1.0, 1.06)


def _read(name: str) -> np.ndarray:
    data, rate = soundfile.read(str(SHARED_DATA / "audio" / name), dtype="float32")
    assert rate == RATE
    return data


@pytest.fixture(scope="module")
def recording() -> dict[str, np.ndarray]:
    """The tone, the hit (placed, same length) and their sum, mono at 44.1 kHz."""
    flute = _read("smstools_flute-A4.wav")
    stroke = _read("smstools_mridangam.wav")[:int(0.25 * RATE)]
    hit = np.zeros_like(flute)
    start = int(HIT_AT * RATE)
    hit[start:start + len(stroke)] = stroke
    return {"tone": flute, "hit": hit, "mix": flute + hit}


@pytest.fixture(scope="module")
def parts(recording) -> tuple[np.ndarray, np.ndarray]:
    harmonic, percussive = separate(recording["mix"][:, None])
    return harmonic[:, 0], percussive[:, 0]


def energy(signal: np.ndarray, window: tuple[float, float]) -> float:
    start, end = (int(t * RATE) for t in window)
    return float(np.sum(np.square(signal[start:end], dtype=np.float64)))


def test_the_harmonic_table_keeps_the_sustained_tone(recording, parts):
    harmonic, percussive = parts
    mix = energy(recording["mix"], SUSTAINED)
    assert energy(harmonic, SUSTAINED) > 0.95 * mix
    assert energy(percussive, SUSTAINED) < 0.01 * mix


def test_the_percussive_table_takes_the_hit_and_the_harmonic_one_little_of_it(recording, parts):
    harmonic, percussive = parts
    hit = energy(recording["hit"], AROUND_THE_HIT)
    # Around the hit the harmonic table is still (nearly) the flute alone, the percussive one the
    # stroke alone.
    assert energy(harmonic - recording["tone"], AROUND_THE_HIT) < 0.1 * hit
    assert energy(percussive - recording["hit"], AROUND_THE_HIT) < 0.1 * hit
    # The balance turns over: the harmonic table dominates where the tone is alone, the
    # percussive one around the hit.
    assert energy(percussive, AROUND_THE_HIT) > energy(harmonic, AROUND_THE_HIT)
    assert energy(harmonic, SUSTAINED) > 100 * energy(percussive, SUSTAINED)


def test_harmonic_plus_percussive_gives_the_recording_back_at_margin_1(recording, parts):
    harmonic, percussive = parts
    assert harmonic.shape == percussive.shape == recording["mix"].shape
    np.testing.assert_allclose(harmonic + percussive, recording["mix"], atol=1e-5)


def test_a_larger_margin_leaves_what_is_neither_out_of_both_tables(recording, parts):
    harmonic, percussive = parts
    strict_harmonic, strict_percussive = (part[:, 0] for part in separate(recording["mix"][:, None], 3.0))
    assert energy(strict_harmonic, AROUND_THE_HIT) < 0.8 * energy(harmonic, AROUND_THE_HIT)
    assert energy(strict_percussive, AROUND_THE_HIT) < 0.9 * energy(percussive, AROUND_THE_HIT)
    residual = recording["mix"] - strict_harmonic - strict_percussive
    assert energy(residual, AROUND_THE_HIT) > 0.05 * energy(recording["mix"], AROUND_THE_HIT)


def test_a_margin_below_1_is_refused():
    with pytest.raises(ValueError, match=">= 1"):
        separate(np.zeros((4096, 1), np.float32), 0.5)


# Through the setlist.
SETLIST = """title = "grains"
[sound]
pool_seconds = {pool_seconds}
[sound.samples]
mix = {{ file = "mix.wav"{hpss} }}
[sound.tables]
{tables}
[sound.instruments.sampler]
kind = "sampler"
table = "mix.harmonic"

[[cues]]
id = "drums"
scene = "pulse"
sound = {{ settings = {{ sampler = {{ table = "mix.percussive" }} }} }}
"""


def _setlist(tmp_path: Path, recording, hpss: str = ", hpss = true", tables: str = "",
             pool_seconds: float = 30) -> Path:
    """The recording as a stereo file (the mix left, the flute alone right) and a setlist."""
    soundfile.write(str(tmp_path / "mix.wav"), np.stack([recording["mix"], recording["tone"]], 1),
                    RATE, subtype="FLOAT")
    path = tmp_path / "grains.toml"
    path.write_text(SETLIST.format(hpss=hpss, tables=tables, pool_seconds=pool_seconds))
    return path


def _build(path: Path):
    setlist = load_setlist(path)
    return build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound, False,
                       setlist.resolve_path)


def test_a_sample_with_hpss_loads_its_harmonic_and_percussive_tables_by_name(tmp_path, recording):
    path = _setlist(tmp_path, recording)
    rack, pool = _build(path)
    try:
        names = pool.names()
        assert set(names) == {"mix", "mix.harmonic", "mix.percussive"}
        original = pool.table(names["mix"])
        expected = load_audio_file(tmp_path / "mix.wav", 48000)  # resampled to the show's rate
        assert original.shape == expected.shape and original.shape[1] == 2
        harmonic, percussive = separate(expected)
        for name, part in (("mix.harmonic", harmonic), ("mix.percussive", percussive)):
            table = pool.table(names[name])
            assert table.shape == original.shape
            np.testing.assert_allclose(table, part, atol=1e-6)
        np.testing.assert_allclose(pool.table(names["mix.harmonic"]) + pool.table(names["mix.percussive"]),
                                   original, atol=1e-5)
        sampler = next(spec for spec in rack.instruments if spec.name == "sampler")
        assert sampler.settings["table"] == names["mix.harmonic"]
    finally:
        pool.close()


def test_without_hpss_the_parts_are_not_tables(tmp_path, recording):
    path = _setlist(tmp_path, recording, hpss="")
    check_one_line_error(path, ["field 'sound.instruments.sampler.table'", "no table 'mix.harmonic'"])


def test_a_pool_with_no_room_for_the_parts_is_a_one_line_error_before_any_separation(
        tmp_path, recording, monkeypatch):
    def never(*_args, **_kwargs):
        raise AssertionError("separated before the pool was known to be large enough")

    monkeypatch.setattr("engine.audio.hpss.separate", never)
    # 2.15 s of stereo at 48 kHz fits in 2.5 s of pool; its two parts do not.
    path = _setlist(tmp_path, recording, pool_seconds=2.5)
    with pytest.raises(PoolFull) as caught:
        _build(path)
    message = str(caught.value)
    assert "\n" not in message
    assert "'mix.harmonic'" in message and "pool_seconds" in message


@pytest.mark.parametrize(("sample", "tables", "expected"), [
    (", hpss = true, hpss_margin = 0.5", "",
     ["field 'sound.samples.mix.hpss_margin'", "greater than or equal to 1", "0.5"]),
    (", hpss = true, hpss_margin = \"wide\"", "",
     ["field 'sound.samples.mix.hpss_margin'", "valid number", "'wide'"]),
    (", hpss_margin = 2", "",
     ["field 'sound.samples.mix.hpss_margin'", "needs hpss = true"]),
    (", hpss = true, hpss_margin = inf", "",
     ["field 'sound.samples.mix.hpss_margin'", "finite number"]),
    (", hpss = true, hpss_margin = 1e300", "",
     ["field 'sound.samples.mix.hpss_margin'", "less than or equal to 100"]),
    (", hpss = true", "\"mix.harmonic\" = { seconds = 1 }",
     ["field 'sound.samples.mix'", "table 'mix.harmonic' is defined twice", "NAME.harmonic"]),
], ids=["margin-below-1", "margin-not-a-number", "margin-without-hpss", "margin-infinite", "margin-huge",
        "part-name-taken"])
def test_bad_hpss_settings_are_setlist_errors(tmp_path, recording, sample, tables, expected):
    check_one_line_error(_setlist(tmp_path, recording, hpss=sample, tables=tables), expected)


def test_a_show_without_hpss_never_imports_librosa(tmp_path, recording):
    path = _setlist(tmp_path, recording, hpss="")
    path.write_text(path.read_text().replace('"mix.harmonic"', '"mix"').replace('"mix.percussive"', '"mix"'))
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from engine.audio.sound_settings import build_sound\n"
        "from engine.setlist import load_setlist\n"
        f"path = Path({str(path)!r})\n"
        "setlist = load_setlist(path)\n"
        "rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound,"
        " False, setlist.resolve_path)\n"
        "pool.close()\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'librosa'))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_separation_that_gives_samples_that_are_not_finite_is_refused():
    tone = np.sin(np.arange(8192) / 10.0).astype(np.float32)[:, None]
    with pytest.raises(ValueError, match="not finite"):
        separate(tone, 1e300)  # librosa's masks overflow: NaN, which must never reach the pool
