"""Program changes jump to cues only when the setlist says so, and a MIDI file's instrument
selections (its program changes before the first note) never move the playhead: `--cue` holds."""

from __future__ import annotations

import json
import subprocess

import pytest

from engine.clock import VirtualTime
from engine.midi import NoteOn, ProgramChange
from engine.midi_file import MidiFilePerformer, load_performance
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions
from tests.conftest import PERFORMANCES, ROOT, SHARED_DATA, showrunner_command

CONCERT = ROOT / "setlists" / "ldd.toml"  # program changes jump there (a live Disklavier's)


def concert_without_pedal_advances(tmp_path):
    """The concert setlist whose parts do not hand over on the soft pedal (performances use it)."""
    path = tmp_path / "ldd.toml"
    path.write_text(CONCERT.read_text().replace("advance = { cc = 67 }\n", ""))
    return load_setlist(path)
FILES = sorted(PERFORMANCES.glob("*.mid")) if PERFORMANCES.is_dir() else []


def cues_played(setlist, performance, seconds: float, tmp_path, start_cue="knot") -> set[str]:
    metrics = tmp_path / "metrics.jsonl"
    show = Show(setlist, ShowOptions(start_cue=start_cue, duration=seconds, metrics=metrics),
                VirtualTime(), None)
    show.add_source(MidiFilePerformer(performance, show.queue))
    assert show.load() == []
    show.run()
    return {json.loads(line)["cue"] for line in metrics.read_text().splitlines()}


@pytest.mark.usefixtures("shared_data")
@pytest.mark.parametrize("path", FILES, ids=lambda path: path.stem[:40])
def test_a_real_performance_started_at_part_2_plays_part_2(path, tmp_path):
    performance = load_performance(path)
    assert performance.note_count > 0
    assert cues_played(concert_without_pedal_advances(tmp_path), performance, 4.0, tmp_path) == {"knot"}


def test_the_performances_hold_instrument_selections_that_used_to_jump(shared_data):
    # What made the test above fail before: most files select instruments first.
    import mido

    selecting = [path for path in FILES
                 if any(m.type == "program_change" for m in mido.MidiFile(path))]
    assert len(selecting) >= 10
    assert all(load_performance(path).instrument_selections > 0 for path in selecting)


def test_a_program_change_from_the_performer_jumps_only_when_the_setlist_says_so(tmp_path):
    from engine.midi_file import Performance

    played = Performance(path=tmp_path / "live.mid", length=3.0,
                         events=((0.2, NoteOn(60, 90)), (1.0, ProgramChange(2, channel=3))))
    assert cues_played(load_setlist(CONCERT), played, 2.0, tmp_path, start_cue=None) == {"cubic", "split"}
    text = CONCERT.read_text()
    elsewhere = tmp_path / "channel.toml"
    elsewhere.write_text(text.replace("program_change_jumps = true",
                                      "program_change_jumps = true\nprogram_change_channel = 1"))
    assert cues_played(load_setlist(elsewhere), played, 2.0, tmp_path, start_cue=None) == {"cubic"}
    its_own = tmp_path / "its_own.toml"  # channel 4 (1-16) is index 3, the program change's
    its_own.write_text(text.replace("program_change_jumps = true",
                                    "program_change_jumps = true\nprogram_change_channel = 4"))
    assert cues_played(load_setlist(its_own), played, 2.0, tmp_path, start_cue=None) == {"cubic", "split"}
    off = tmp_path / "off.toml"
    off.write_text(text.replace("program_change_jumps = true", ""))
    assert cues_played(load_setlist(off), played, 2.0, tmp_path, start_cue=None) == {"cubic"}


def test_render_with_cue_plays_that_part_from_a_file_that_selects_instruments(tmp_path, egl):
    example = SHARED_DATA / "midi" / "performances" / "prettymidi_example_type0_420tempos_sysex.mid"
    setlist = tmp_path / "ldd.toml"
    setlist.write_text(CONCERT.read_text().replace('"../assets/', f'"{ROOT}/assets/')
                       .replace("advance = { cc = 67 }\n", ""))
    metrics = tmp_path / "m.jsonl"
    done = subprocess.run(showrunner_command("render", str(setlist), "--midi-file", str(example),
                                             "--cue", "knot", "--out", str(tmp_path / "k.mkv"),
                                             "--size", "64x36", "--duration", "3", "--metrics",
                                             str(metrics), "--log-dir", str(tmp_path / "logs")),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert {json.loads(line)["cue"] for line in metrics.read_text().splitlines()} == {"knot"}
