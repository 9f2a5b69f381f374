"""The piece, "Losses, Dissonances, and Distortions", driven by real performances offline, checked
from the metrics log and the audio commands the show sent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.clock import VirtualTime
from engine.midi import ControlChange, NoteOn
from engine.midi_file import MidiFilePerformer, load_performance
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions
from tests.conftest import PERFORMANCES, ROOT, showrunner_command

EXAMPLE = PERFORMANCES / "prettymidi_example_type0_420tempos_sysex.mid"
BACH = PERFORMANCES / "asap_Bach_Prelude_bwv846_Shi05M.mid"


def one_cue(tmp_path: Path, scene: str, params: str = "", seconds: float = 60.0) -> Path:
    path = tmp_path / f"{scene}.toml"
    path.write_text(f'title = "{scene}"\nseed = 5\nresolution = "320x180"\n'
                    f'[[cues]]\nid = "part"\nscene = "{scene}"\n' + (f"params = {{ {params} }}\n" if params else ""))
    return path


def play(setlist_path: Path, performance_path: Path, seconds: float, display=None) -> list[dict]:
    setlist = load_setlist(setlist_path)
    metrics = setlist_path.with_suffix(".jsonl")
    show = Show(setlist, ShowOptions(duration=seconds, metrics=metrics), VirtualTime(), display)
    show.add_source(MidiFilePerformer(load_performance(performance_path), show.queue))
    assert show.load() == []
    summary = show.run()
    assert summary.scene_errors == 0 and summary.recompilations == 0
    return [json.loads(line) for line in metrics.read_text().splitlines()]


def onsets(performance_path: Path, seconds: float) -> list[tuple[float, int]]:
    return [(t, e.note) for t, e in load_performance(performance_path).events
            if isinstance(e, NoteOn) and t < seconds - 1 / 60]


def events(lines: list[dict]) -> list[str]:
    return [event for line in lines for event in line["events"]]


def detunes(lines: list[dict]) -> list[list]:
    return [command for line in lines for command in line.get("audio", []) if command[0] == "detune"]


@pytest.mark.parametrize("performance, seconds", [(EXAMPLE, 60.0), (BACH, 140.0)], ids=["example", "bach"])
def test_part1_bass_notes_start_polynomials_and_upper_notes_step_and_detune(tmp_path, performance, seconds):
    lines = play(one_cue(tmp_path, "ldd_cubic"), performance, seconds)
    notes = onsets(performance, seconds)
    first_bass = next(t for t, note in notes if note < 48)
    assert events(lines).count("new_target") == sum(1 for _, note in notes if note < 48)
    upper_after = sum(1 for t, note in notes if note >= 48 and t > first_bass)
    assert events(lines).count("step") == upper_after  # one step per upper note once a curve exists
    steps = [step for line in lines for step in line.get("steps", [])]
    assert len(steps) == upper_after
    # the detune sent for a note is the scale (1) times the loss of the step it triggered
    sent = detunes(lines)
    assert len(sent) == len(steps)
    for (stepped, loss), (_, note, value) in zip(steps, sent):
        assert stepped == [note] and value == pytest.approx(loss)


def losses_per_target(lines: list[dict]) -> list[list[float]]:
    """The losses of the steps taken on each target, one list per target."""
    segments: list[list[float]] = [[]]
    for line in lines:
        if "new_target" in line["events"]:
            segments.append([])
        segments[-1].extend(loss for _, loss in line.get("steps", []))
    return segments


def assert_loss_falls(lines: list[dict], min_steps: int = 15) -> None:
    long = [s for s in losses_per_target(lines) if len(s) >= min_steps]
    assert len(long) >= 5
    assert np.mean([s[-1] < s[0] for s in long]) >= 0.9


def test_part1_loss_falls_while_steps_happen(tmp_path):
    assert_loss_falls(play(one_cue(tmp_path, "ldd_cubic"), EXAMPLE, 120.0))


def test_part1_while_held_option_steps_every_tick_a_note_is_held(tmp_path):
    params = 'steps = "while_held", detune_scale = 0.05, start_on_any_note = true'  # Bach's first bass note is at 64 s
    lines = play(one_cue(tmp_path, "ldd_cubic", params), BACH, 40.0)
    assert events(lines).count("new_target") == 1
    stepping = [line for line in lines if "step" in line["events"]]
    assert len(stepping) > 300  # far more than the notes: every tick while held
    assert all(line["events"].count("step") == 1 for line in stepping)
    for line in stepping[:50]:
        for notes, loss in line["steps"]:
            for command in line["audio"]:
                if command[0] == "detune":
                    assert command[2] == pytest.approx(0.05 * loss)


def chords_in(performance_path: Path, seconds: float) -> int:
    return count_chords(onsets(performance_path, seconds))


def count_chords(note_onsets: list[tuple[float, int]], split=60, size=3, window=0.08) -> int:
    """Chords counted here, apart from the scene's code: ``size`` different notes under the split
    struck within ``window`` seconds; the notes struck within ``window`` after a chord belong to it."""
    count, chord_at, recent = 0, None, {}
    for t, note in note_onsets:
        if note >= split or (chord_at is not None and t - chord_at <= window):
            continue
        recent = {n: at for n, at in recent.items() if t - at <= window}
        recent[note] = t
        if len(recent) == size:
            count, chord_at, recent = count + 1, t, {}
    return count


def test_part2_chords_start_knots_and_steps_run_only_while_a_chord_is_held(tmp_path):
    seconds = 120.0
    lines = play(one_cue(tmp_path, "ldd_knot"), EXAMPLE, seconds)
    new_targets = events(lines).count("new_target")
    expected = chords_in(EXAMPLE, seconds)
    assert expected > 10
    assert new_targets == expected
    # steps: one per tick, and only in ticks where a note under the split (a chord note) is held
    held: set[int] = set()
    for line in lines:
        for description, _ in line.get("midi", []):
            kind, *values = description.split()
            if kind == "note_on" and int(values[0]) < 60:
                held.add(int(values[0]))
            elif kind == "note_off":
                held.discard(int(values[0]))
        stepped = line["events"].count("step")
        assert stepped in (0, 1)
        if stepped:
            assert held, f"a step at tick {line['tick']} with no chord note held"
    stepping = [line for line in lines if "step" in line["events"]]
    assert len(stepping) > 100
    # every step detunes the sounding notes by the loss (scale 1), all voices at once
    for line in stepping:
        (_, loss), = line["steps"]
        assert ["detune", None, pytest.approx(loss)] in line["audio"]
    assert_loss_falls(lines)


def test_the_soft_pedal_advances_the_concert_setlist(tmp_path):
    setlist = load_setlist(ROOT / "setlists" / "ldd.toml")
    metrics = tmp_path / "m.jsonl"
    show = Show(setlist, ShowOptions(duration=3.0, metrics=metrics), VirtualTime(), None)
    assert show.load() == []
    for at in (0.5, 1.0, 1.5):
        show.queue.push(at, ControlChange(control=67, value=100))
        show.queue.push(at + 0.2, ControlChange(control=67, value=0))
    show.run()
    cues = [json.loads(line)["cue"] for line in metrics.read_text().splitlines()]
    assert [cue for i, cue in enumerate(cues) if i == 0 or cues[i - 1] != cue] == ["cubic", "knot", "split", "bubbles"]


def test_the_demo_renders_all_four_parts_with_the_video(tmp_path, egl):
    import av

    text = (ROOT / "setlists" / "ldd-demo.toml").read_text().replace("after = 30", "after = 6")
    text = text.replace('resolution = "1280x720"', 'resolution = "320x180"')
    text = text.replace('"../assets/', f'"{ROOT}/assets/')
    setlist = tmp_path / "demo.toml"
    setlist.write_text(text)
    out, metrics = tmp_path / "demo.mkv", tmp_path / "demo.jsonl"
    result = subprocess.run(showrunner_command("render", str(setlist), "--midi-file", str(EXAMPLE), "--out", str(out),
                                               "--duration", "24", "--fps", "30", "--metrics", str(metrics)),
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [c for i, c in enumerate(line["cue"] for line in lines) if i == 0 or lines[i - 1]["cue"] != c] == \
        ["cubic", "knot", "split", "bubbles"]
    with av.open(str(out)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 720
    by_part = {0: frames[165], 1: frames[345], 2: frames[525], 3: frames[705]}  # late in each part
    assert by_part[0].max() > 200  # curves on black
    assert np.mean(by_part[2]) > 30 and np.mean(by_part[3]) > 30  # the video behind parts 3 and 4
    assert np.mean(by_part[0]) < 30  # part 1 is on black
