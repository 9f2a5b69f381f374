"""Real MIDI files: performances play with their own tempo maps; malformed files fail fast and clearly."""

from __future__ import annotations

import subprocess
import time

import mido
import pytest

from engine.errors import UserError
from engine.midi import EventQueue, NoteOn
from engine.midi_file import MidiFilePerformer, load_performance
from tests.conftest import MALFORMED, PERFORMANCES, ROOT, showrunner_command

MALFORMED_FILES = {
    "jazzsoft_test-corrupt-file-missing-byte.mid": "data ends in the middle of a track",
    "jazzsoft_test-running-status-sysex.mid": "data ends in the middle of a track",
    "jazzsoft_test-2-tracks-type-0.mid": "type 0 must have exactly one track, this one has 2",
    "midly_PiDamaged.mid": "data ends in the middle of a track",
}


@pytest.mark.parametrize("name, reason", sorted(MALFORMED_FILES.items()))
def test_malformed_midi_file_gives_a_clear_error_within_a_second(shared_data, name, reason):
    started = time.perf_counter()
    with pytest.raises(UserError) as error:
        load_performance(MALFORMED / name)
    assert time.perf_counter() - started < 1.0
    message = str(error.value)
    assert name in message and reason in message
    assert "\n" not in message


def _header_file(path, kind: int, division: int):
    """A MIDI file of one track with one note (a second long at 120 bpm, were its division 480),
    its header's type and division as given."""
    track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90, time=0),
                            mido.Message("note_off", note=60, time=960)])
    body = mido.MidiFile(type=0, ticks_per_beat=480, tracks=[track])
    body.save(path)
    data = bytearray(path.read_bytes())
    data[8:10], data[12:14] = kind.to_bytes(2, "big"), division.to_bytes(2, "big")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("kind, division, reason", [
    (0, 0, "zero ticks a beat"),
    (0, 0xE728, "SMPTE frames"),  # 25 frames a second, 40 ticks a frame: mido reads -6360 ticks a beat
    (7, 480, "type 7"),
], ids=["division-0", "smpte", "type-7"])
def test_a_midi_header_we_cannot_time_is_one_line(tmp_path, kind, division, reason):
    path = _header_file(tmp_path / "odd.mid", kind, division)
    with pytest.raises(UserError) as error:
        load_performance(path)
    assert reason in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("name", sorted(MALFORMED_FILES))
def test_malformed_midi_file_on_the_command_line_exits_2_with_one_line(shared_data, tmp_path, name):
    result = subprocess.run(showrunner_command("render", str(ROOT / "setlists" / "demo.toml"),
                                               "--midi-file", str(MALFORMED / name),
                                               "--out", str(tmp_path / "x.mkv"),
                                               "--log-dir", str(tmp_path / "logs")),
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert MALFORMED_FILES[name] in result.stderr
    assert not (tmp_path / "x.mkv").exists()  # refused before anything was opened


@pytest.mark.parametrize("name, notes, seconds", [
    # Figures from the data's own README (notes, and length in seconds).
    ("partitura_mozart_k265_var1.mid", 219, 46.0),
    ("asap_Bach_Prelude_bwv846_Shi05M.mid", 548, 139.1),
    ("prettymidi_example_type0_420tempos_sysex.mid", 4956, 361.3),
])
def test_performances_have_their_published_note_count_and_length(shared_data, name, notes, seconds):
    performance = load_performance(PERFORMANCES / name)
    assert performance.note_count == notes
    assert performance.length == pytest.approx(seconds, abs=0.1)


def tempo_map_note_times(path) -> list[float]:
    """Note-on times computed by hand from raw ticks and every tempo change (independent oracle)."""
    midi = mido.MidiFile(path)
    events = []
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            events.append((tick, msg))
    events.sort(key=lambda item: item[0])  # stable: same-tick order by track
    tempo, seconds, last_tick, times = 500000, 0.0, 0, []
    for tick, msg in events:
        seconds += (tick - last_tick) * tempo / (midi.ticks_per_beat * 1_000_000)
        last_tick = tick
        if msg.type == "set_tempo":
            tempo = msg.tempo
        elif msg.type == "note_on" and msg.velocity > 0:
            times.append(seconds)
    return times


@pytest.mark.parametrize("name", ["prettymidi_example_type0_420tempos_sysex.mid",
                                  "asap_Bach_Prelude_bwv846_Shi05M.mid"])
def test_note_times_follow_the_files_tempo_map(shared_data, name):
    performance = load_performance(PERFORMANCES / name)
    ours = [at for at, event in performance.events if isinstance(event, NoteOn)]
    oracle = tempo_map_note_times(PERFORMANCES / name)
    assert len(ours) == len(oracle)
    assert max(abs(a - b) for a, b in zip(ours, oracle)) < 1e-6


def test_performer_releases_events_as_time_passes_with_exact_stamps(shared_data):
    performance = load_performance(PERFORMANCES / "partitura_mozart_k265_var1.mid")
    queue = EventQueue()
    performer = MidiFilePerformer(performance, queue)
    performer.start(origin=100.0)
    performer.poll(100.0 + 5.0)
    due = queue.pop_due(float("inf"))
    expected = [(100.0 + at, e) for at, e in performance.events if at <= 5.0]
    assert expected, "the performance has no events in its first 5 s: nothing would be checked"
    assert due == expected
    performer.poll(100.0 + performance.length)
    assert performer.finished
    assert len(queue) == len(performance.events) - len(expected)
