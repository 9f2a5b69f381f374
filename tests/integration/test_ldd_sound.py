"""The first piece sounds exactly as it did: the LDD render's sound, sample for sample at 16 bits,
against a reference rendered before the sound engine became a rack of instruments.

The reference (tests/data/reference/ldd_reference.flac, lossless 16-bit) is the four parts at 5 s
each, 160x90, from a real performance (Beethoven, op. 2 no. 1, from ../shared/data) whose program
changes are left out, so the playhead moves only by the setlist's timing. It exercises the overtones,
the synthesized piano, the sustain pedal and both kinds of detune (per note in the bubbles, every
sounding note in the knot). ``SHOWRUNNER_WRITE_REFERENCE=1`` writes it again: only ever on purpose.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import PERFORMANCES, ROOT, showrunner_command
from tests.spectrum import read_wav

REFERENCE = ROOT / "tests" / "data" / "reference"
SETLIST = REFERENCE / "ldd_reference.toml"
SOUND = REFERENCE / "ldd_reference.flac"
PERFORMANCE = PERFORMANCES / "asap_Beethoven_Piano_Sonatas_1-1_KimG01.mid"


def without_program_changes(source: Path, target: Path) -> Path:
    """The performance with its program changes left out (their time goes to the next message)."""
    import mido

    original = mido.MidiFile(source)
    stripped = mido.MidiFile(type=original.type, ticks_per_beat=original.ticks_per_beat)
    for track in original.tracks:
        kept, carried = mido.MidiTrack(), 0
        for message in track:
            if message.type == "program_change":
                carried += message.time
                continue
            kept.append(message.copy(time=message.time + carried))
            carried = 0
        stripped.tracks.append(kept)
    stripped.save(target)
    return target


def render_reference_input(tmp_path: Path) -> np.ndarray:
    performance = without_program_changes(PERFORMANCE, tmp_path / "performance.mid")
    wav = tmp_path / "ldd.wav"
    done = subprocess.run(
        showrunner_command("render", str(SETLIST), "--midi-file", str(performance), "--out",
                           str(tmp_path / "ldd.mkv"), "--duration", "20", "--fps", "30",
                           "--audio-out", str(wav), "--log-dir", str(tmp_path / "logs")),
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    pcm, params = read_wav(wav)
    assert params.framerate == 48000 and params.nchannels == 2
    return pcm.astype(np.int16)


def test_the_ldd_render_sounds_sample_for_sample_as_the_reference(tmp_path, egl, shared_data):
    import soundfile

    rendered = render_reference_input(tmp_path)
    if os.environ.get("SHOWRUNNER_WRITE_REFERENCE") == "1":
        soundfile.write(SOUND, rendered, 48000, subtype="PCM_16", format="FLAC")
    reference, rate = soundfile.read(SOUND, dtype="int16", always_2d=True)
    assert rate == 48000
    assert np.abs(reference).max() > 3000, "the reference is (nearly) silent: it proves nothing"
    assert rendered.shape == reference.shape
    differing = np.flatnonzero(np.any(rendered != reference, axis=1))
    assert differing.size == 0, (
        f"{differing.size} of {len(reference)} frames differ, the first at {differing[0] / rate:.4f} s "
        f"(largest difference {int(np.abs(rendered.astype(int) - reference).max())} of 32768)")


@pytest.mark.parametrize("part", [0, 1, 2, 3])
def test_the_reference_holds_sound_in_every_part(part):
    import soundfile

    reference, rate = soundfile.read(SOUND, dtype="int16", always_2d=True)
    span = reference[part * 5 * rate:(part + 1) * 5 * rate]
    assert np.abs(span).max() > 1000, f"part {part + 1} of the reference is silent"
