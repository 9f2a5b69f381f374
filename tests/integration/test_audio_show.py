"""Shows with no sound device: the show goes on silently; a device named on the command line that
does not exist is bad input."""

from __future__ import annotations

import json
import os
import subprocess

from tests.conftest import BUNDLED_MIDI, DEMO_SETLIST, showrunner_command


def no_audio_devices() -> dict[str, str]:
    """An environment where PortAudio finds nothing: no sound card here, and no JACK server."""
    return dict(os.environ, JACK_DEFAULT_SERVER="showrunner-no-such-server")


def test_show_goes_on_silently_without_an_audio_device(tmp_path, egl):
    metrics = tmp_path / "metrics.jsonl"
    done = subprocess.run(
        showrunner_command("run", str(DEMO_SETLIST), "--midi-file", str(BUNDLED_MIDI), "--headless",
                           "--duration", "3", "--metrics", str(metrics),
                           "--log-dir", str(tmp_path / "logs")),
        env=no_audio_devices(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert records[-1]["time"] == 3.0
    assert "audio_no_device" in [e for r in records for e in r["events"]]
    assert records[-1]["audio_status"] == "no_device"
    assert any(r.get("audio") for r in records), "the show stopped sending notes to the mixer"
    assert "no audio output device" in done.stderr


def test_missing_audio_device_named_on_the_command_line_is_bad_input(tmp_path):
    done = subprocess.run(
        showrunner_command("run", str(DEMO_SETLIST), "--headless", "--duration", "1",
                           "--audio-device", "no-such-interface", "--log-dir", str(tmp_path / "logs")),
        env=no_audio_devices(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "no audio output matches 'no-such-interface'" in done.stderr
