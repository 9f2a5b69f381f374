"""The piece through real MIDI: a sender process plays a real performance into a JACK MIDI port,
the show runs live (`showrunner run --midi-in`), and the metrics log must show the parts reacting
to exactly the notes that arrived."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import PERFORMANCES, ROOT, showrunner_command
from tests.integration.test_ldd import assert_loss_falls, count_chords, detunes, events
from tests.integration.test_midi_jack import SENDER

pytestmark = pytest.mark.jack

EXAMPLE = PERFORMANCES / "prettymidi_example_type0_420tempos_sysex.mid"


def run_live(tmp_path, jack, scene: str, seconds: float, start: float = 0.0) -> list[dict]:
    """The part live for the file's ``start`` .. ``seconds`` (file time)."""
    setlist = tmp_path / "part.toml"
    setlist.write_text(f'title = "part"\nseed = 3\nresolution = "320x180"\n[[cues]]\nid = "part"\nscene = "{scene}"\n')
    metrics = tmp_path / "metrics.jsonl"
    sender = subprocess.Popen([sys.executable, str(SENDER), "LDD Piano", "--file", str(EXAMPLE), "--seconds",
                               str(seconds), "--from", str(start), "--wait-for", str(metrics), "--hold", "0.5"],
                              env=jack, stderr=subprocess.PIPE)
    time.sleep(1.0)
    try:
        engine = subprocess.run(
            showrunner_command("run", str(setlist), "--midi-in", "ldd piano", "--midi-api", "jack", "--headless",
                               "--no-audio", "--duration", str(seconds - start + 3), "--metrics", str(metrics),
                               "--log-dir", str(tmp_path / "logs")),
            env=jack, cwd=ROOT, capture_output=True, text=True, timeout=seconds - start + 120)
    finally:
        sender.wait(timeout=seconds - start + 120)
    assert sender.returncode == 0, sender.stderr.read().decode()
    assert engine.returncode == 0, engine.stderr
    return [json.loads(line) for line in metrics.read_text().splitlines()]


def note_ons(lines: list[dict]) -> list[int]:
    return [note for _, note in stamped_note_ons(lines)]


def stamped_note_ons(lines: list[dict]) -> list[tuple[float, int]]:
    """(arrival stamp, note) of every note-on the show received, in order."""
    return [(stamp, int(text.split()[1])) for line in lines for text, stamp in line.get("midi", [])
            if text.startswith("note_on")]


@pytest.mark.parametrize("scene", ["ldd_cubic", "ldd_bubbles"])  # parts 1 and 4
def test_parts_1_and_4_live_through_jack(tmp_path, jack, scene):
    # The file's 36-51 s: 160 notes, 4 of them in the bass (the first at 44.8 s).
    lines = run_live(tmp_path, jack, scene, 51.0, start=36.0)
    notes = note_ons(lines)
    assert len(notes) > 150  # the performance arrived
    first_bass = next(i for i, note in enumerate(notes) if note < 48)
    assert events(lines).count("new_target") == sum(1 for note in notes if note < 48)
    assert events(lines).count("step") == sum(1 for note in notes[first_bass:] if note >= 48)
    steps = [step for line in lines for step in line.get("steps", [])]
    for (stepped, loss), (_, note, value) in zip(steps, detunes(lines), strict=True):
        assert stepped == [note] and value == pytest.approx(loss)


@pytest.mark.parametrize("scene", ["ldd_knot", "ldd_split"])  # parts 2 and 3
def test_parts_2_and_3_live_through_jack(tmp_path, jack, scene):
    # The file's chords are sparse in its first minute (7), denser from 72 s on (9 in 72-90 s).
    lines = run_live(tmp_path, jack, scene, 90.0, start=72.0)
    chords = count_chords(stamped_note_ons(lines))
    assert chords >= 5
    assert events(lines).count("new_target") == chords
    stepping = [line for line in lines if "step" in line["events"]]
    assert len(stepping) > 100
    for line in stepping:
        (_, loss), = line["steps"]
        assert ["detune", None, pytest.approx(loss)] in line["audio"]
    assert_loss_falls(lines, min_steps=15)
