"""The offline renderer through the CLI: ``showrunner render ... --audio-out``."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from tests.conftest import BUNDLED_MIDI, DEMO_SETLIST, showrunner_command
from tests.spectrum import peak_near, read_wav


def render(tmp_path, name: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        showrunner_command("render", str(DEMO_SETLIST), "--midi-file", str(BUNDLED_MIDI),
                           "--out", str(tmp_path / f"{name}.mkv"), "--size", "160x90",
                           "--duration", "4", "--audio-out", str(tmp_path / f"{name}.wav"),
                           "--log-dir", str(tmp_path / "logs"), *extra),
        capture_output=True, text=True, timeout=300)


def read_sound(path) -> tuple[np.ndarray, int]:
    pcm, params = read_wav(path)
    return pcm / 32768.0, params.framerate


def test_render_writes_the_mixer_sound_deterministically(tmp_path, egl):
    first, second = render(tmp_path, "a"), render(tmp_path, "b")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    a, rate = read_sound(tmp_path / "a.wav")
    assert rate == 48000
    assert len(a) == pytest.approx(4 * rate, abs=256)  # to the block
    assert np.abs(a).max() > 0.05, "the render is silent"
    assert np.abs(a).max() < 1.0
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


def test_first_note_of_the_render_sounds_at_its_pitch(tmp_path, egl):
    import mido

    done = render(tmp_path, "a")
    assert done.returncode == 0, done.stderr
    audio, rate = read_sound(tmp_path / "a.wav")
    first = next(m for m in mido.MidiFile(BUNDLED_MIDI) if m.type == "note_on" and m.velocity > 0)
    fundamental = 440.0 * 2 ** ((first.note - 69) / 12)
    onset = int(np.argmax(np.abs(audio[:, 0]) > 1e-3))
    window = audio[onset + int(0.12 * rate):onset + int(0.5 * rate), 0]
    assert peak_near(window, rate, fundamental, search=8) == pytest.approx(fundamental, abs=1.5)


def test_unwritable_audio_out_is_bad_input(tmp_path):
    (tmp_path / "file").write_text("")  # a file where the folder should be: nothing can go there
    done = subprocess.run(
        showrunner_command("render", str(DEMO_SETLIST), "--midi-file", str(BUNDLED_MIDI),
                           "--out", str(tmp_path / "a.mkv"), "--audio-out",
                           str(tmp_path / "file" / "a.wav"), "--log-dir", str(tmp_path / "logs")),
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "cannot write sound" in done.stderr and "a.wav" in done.stderr
    assert not (tmp_path / "logs").exists()  # found before the render started
