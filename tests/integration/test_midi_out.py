"""A scene that emits notes (the built-in echo) in a live show under JACK: every note leaves through
MIDI out to a JACK MIDI receiver in the test, in order; the notes are in the performance log, and a
replay of that log emits them again at the same ticks."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from tests.conftest import BUNDLED_MIDI, ROOT, showrunner_command

pytestmark = pytest.mark.jack

SETLIST = """
title = "echo"
resolution = "160x90"
[[cues]]
id = "echo"
scene = "echo"
params = { delay = 0.25, interval = 7, channel = 2 }
"""


class Receiver:
    """A JACK client with one MIDI input, "synth:in", keeping every message it is sent."""

    def __init__(self) -> None:
        import jack

        self.client = jack.Client("synth", no_start_server=True)
        self.port = self.client.midi_inports.register("in")
        self.messages: list[bytes] = []
        self._lock = threading.Lock()

        @self.client.set_process_callback
        def process(frames):
            for _offset, data in self.port.incoming_midi_events():
                with self._lock:
                    self.messages.append(bytes(data))

        self.client.activate()

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def test_emitted_notes_leave_through_midi_out_in_order_and_replay_at_the_same_ticks(tmp_path, jack, egl):
    receiver = Receiver()
    setlist = tmp_path / "echo.toml"
    setlist.write_text(SETLIST)
    metrics, perf = tmp_path / "live.jsonl", tmp_path / "live.perf.jsonl"
    try:
        done = subprocess.run(
            showrunner_command("run", str(setlist), "--midi-file", str(BUNDLED_MIDI), "--midi-out", "synth",
                               "--midi-api", "jack", "--headless", "--no-audio", "--duration", "6",
                               "--metrics", str(metrics), "--perf-log", str(perf),
                               "--log-dir", str(tmp_path / "logs")),
            env=jack, cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        receiver.close()
    assert done.returncode == 0, done.stderr
    live = [json.loads(line) for line in metrics.read_text().splitlines()]
    emitted = [(line["tick"], text) for line in live for text in line.get("emitted", [])]
    assert len(emitted) > 20  # the file's notes, echoed a fifth up on channel 2
    assert all(text.endswith(" ch2") for _, text in emitted), emitted[:3]
    sent = []
    for data in receiver.messages:
        kind = "note_on" if data[0] & 0xF0 == 0x90 else "note_off"
        sent.append((kind, data[1], data[0] & 0x0F))
    expected = []
    for _, text in emitted:
        words = text.split()
        expected.append((words[0], int(words[1]), 1))
    assert sent == expected, f"{len(sent)} received, {len(expected)} emitted"
    logged = [json.loads(line) for line in perf.read_text().splitlines()[1:]]
    assert [(r["tick"], e) for r in logged for e in r.get("emitted", [])] == emitted

    replayed = tmp_path / "replay.jsonl"
    again = subprocess.run(showrunner_command("replay", str(perf), "--out", str(tmp_path / "r.mkv"),
                                              "--size", "64x36", "--metrics", str(replayed),
                                              "--log-dir", str(tmp_path / "logs")),
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    replay = [json.loads(line) for line in replayed.read_text().splitlines()]
    assert [(line["tick"], t) for line in replay for t in line.get("emitted", [])] == emitted
    assert "the replay differs" not in "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
