"""Recovery with sound (issue 25): a live show on JACK, played through a JACK MIDI port, is
SIGKILLed while a note is held. Its audio process does not die with it: the tone goes on through
the gap (what a JACK client hears is never silent while the key is down), a note played and
released in the gap sounds too, and the show that comes back plays on through the same audio
process and takes in what the port brought in the gap, once, at the tick it came back at."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DEMO_SETLIST, showrunner_command
from tests.integration.test_audio_jack import listens_again
from tests.integration.test_sound_jack import unless_a_cycle_was_missed

pytestmark = pytest.mark.jack
RATE = 48000
HELD, GAP_NOTE = 45, 64


def children(pid: int, pattern: str | None = None) -> list[int]:
    command = ["pgrep", "-P", str(pid)] + (["-f", pattern] if pattern else [])
    return [int(p) for p in subprocess.run(command, capture_output=True, text=True).stdout.split()]


def wait_for(what, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(interval)
    return None


def records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


class Tail:
    """A metrics log's lines read as it grows, each byte once: the waits below poll it every 50 ms
    in the process whose Python JACK client plays the piano, so they take as little of the
    interpreter from its callback as they can."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.lines, self._rest = path, 0, [], b""

    def __call__(self) -> list[dict]:
        if self.path.exists():
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                data = self._rest + file.read()
                self.offset = file.tell()
            *whole, self._rest = data.split(b"\n")
            self.lines += [json.loads(line) for line in whole if line.strip()]
        return self.lines


def the_show(supervisor: int) -> list[int]:
    """The show the supervisor runs (not its standby, which waits with --standby-fd)."""
    return [pid for pid in children(supervisor)
            if b"--standby-fd" not in Path(f"/proc/{pid}/cmdline").read_bytes()]


# The piano here is a Python JACK client: on a loaded machine it is late now and then, and a MIDI
# event it sent in a cycle JACK missed can reach one client and not another (measured: with both
# cores busy, 29-71 missed cycles a run, and the standby's reader lost the gap's note-off while the
# audio process got it, in 2 runs of 4). A check that fails after a missed cycle runs afresh.
@listens_again
@pytest.mark.parametrize("standby", [False, True], ids=["restarted", "standby"])
def test_the_sound_and_the_port_go_on_through_a_dead_show(jack, tmp_path, standby):
    from bench.jack_recorder import JackRecorder

    metrics = tmp_path / "metrics.jsonl"
    tail = Tail(metrics)
    switching = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # the piano's JACK callback gets the interpreter within 0.5 ms
    piano = JackRecorder(seconds=40, midi=True)  # plays the notes and hears the result
    show = subprocess.Popen(
        showrunner_command("run", str(DEMO_SETLIST), "--midi-in", "recorder:midi_out", "--midi-api", "jack",
                           "--headless", "--duration", "12", "--metrics", str(metrics),
                           "--perf-log", str(tmp_path / "show.perf.jsonl"), "--log-dir", str(tmp_path / "logs"),
                           # restarted: from the state it saved each second (a live port's show)
                           *(["--standby"] if standby else ["--save-state-every", "1"])),
        env=jack, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert piano.wait_connected(30), "the show's audio process never appeared"
        shows = wait_for(lambda: the_show(show.pid), 10)
        assert shows and len(shows) == 1, shows
        sound = children(shows[0], "engine.audio.server")
        assert len(sound) == 1, sound
        assert wait_for(lambda: len(tail()) > 60, 30), "the show never ticked"
        if standby:  # loaded and waiting when the show dies
            assert wait_for(lambda: len(children(show.pid)) == 2, 10), "no standby"
            time.sleep(3.0)
        mark, xruns = piano.mark(), piano.xruns
        piano.send_midi(0x90, HELD, 100)
        held_at = time.monotonic()
        time.sleep(1.0)
        subprocess.run(["kill", "-KILL", str(shows[0])], check=True)
        killed_at = time.monotonic()
        # The show is gone; the piano plays on. A restarted show can be back in 0.7 s (it was on
        # this machine, its files cached), so the gap's note is played and released at once.
        time.sleep(0.15)
        piano.send_midi(0x90, GAP_NOTE, 90)
        time.sleep(0.1)
        piano.send_midi(0x80, GAP_NOTE, 0)
        gap_played = time.monotonic() - killed_at
        back = wait_for(lambda: any("recovered" in r["events"] for r in tail()), 60)
        assert back, "the show did not come back"
        assert children(show.pid, "engine.audio.server") == sound, "the audio process is not the one it was"
        time.sleep(1.0)
        piano.send_midi(0x80, HELD, 0)
        released_at = time.monotonic()
        time.sleep(0.3)
        heard = piano.since(mark)
        _, err = show.communicate(timeout=120)
    finally:
        if show.poll() is None:
            show.kill()
            show.wait()
        piano.close()
        sys.setswitchinterval(switching)
    assert show.returncode == 0, err[-3000:]
    assert "the show died (signal SIGKILL)" in err
    back = re.search(r"back after the show died: .*, ([\d.]+) s without a show", err)
    assert back, err[-3000:]
    print(f"picture back after {back.group(1)} s")
    assert standby or re.search(r"caught up \d+ ticks in [\d.]+ s from its state at", err), err[-3000:]
    log = "\n".join(path.read_text() for path in (tmp_path / "logs").glob("*.log"))
    assert f"playing on through audio process {sound[0]}" in log

    with unless_a_cycle_was_missed(piano, xruns):
        # Never silent while the key was down: 50 ms windows from 0.1 s after the onset to 0.1 s
        # before the release.
        onset = int(np.argmax(np.abs(heard[:, 0]) > 1e-4))
        end = onset + int((released_at - held_at - 0.1) * RATE)
        assert end - onset > 2.5 * RATE, "the note was not held through the gap"
        window = int(0.05 * RATE)
        levels = [float(np.sqrt(np.mean(heard[start:start + window] ** 2)))
                  for start in range(onset + int(0.1 * RATE), end - window, window)]
        print(f"held tone through the gap: quietest 50 ms window {min(levels):.4f} RMS, loudest {max(levels):.4f}")
        assert min(levels) > 1e-3, "the tone fell silent"
        # It decays as a struck note does (a few per cent a window): no window falls to half the last.
        drops = [(k, later / earlier) for k, (earlier, later) in enumerate(zip(levels, levels[1:])) if later < 0.5 * earlier]
        assert drops == [], f"the tone dropped out (window, ratio): {drops}"

        # The show that came back took in the gap's note (once) at the tick it came back at, and the
        # held note's release after it; the audio process had played them itself.
        lines = records(metrics)
        first = next(r for r in lines if "recovered" in r["events"])
        taken = [m[0] for m in first.get("midi", [])]
        if not standby:  # (a standby is back before the gap's note is played: it takes it live)
            assert float(back.group(1)) > gap_played, \
                f"the show was back {back.group(1)} s after its death, before the gap's note was released " \
                f"({gap_played:.2f} s): the check below needs both played while the show was away"
            assert taken[:2] == [f"note_on {GAP_NOTE} 90", f"note_off {GAP_NOTE} 0"], taken
        # The performance log (which a replay plays; the metrics lines the dead show had not written
        # out are lost with it): each note once.
        logged = [(event["type"], event["note"]) for line in records(tmp_path / "show.perf.jsonl")
                  for event in line.get("midi", [])]
        assert sorted(logged) == sorted([("NoteOn", HELD), ("NoteOn", GAP_NOTE), ("NoteOff", GAP_NOTE),
                                         ("NoteOff", HELD)]), logged
    assert [c for r in lines for c in r.get("audio", []) if c[0] == "note_on"] == [], \
        "the engine sent a note the audio process played itself"
    assert not Path(f"/proc/{sound[0]}").exists(), "the audio process outlived the show"
    assert not (tmp_path / "show.perf.jsonl.sound").exists()
