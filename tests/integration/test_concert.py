"""The concert (setlists/concert.toml, the tour of `make demo`; issue 23): every piece the project
performs in one show. `check` passes; a render of the tour (its cues shortened to 3 s) with a real
performance has every cue on stage, no scene error, the same sound twice; a replay of a live run
plays it again."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np

from engine.audio.offline import OfflineAudio
from engine.audio.sound_settings import build_sound
from engine.clock import VirtualTime
from engine.midi_file import MidiFilePerformer, load_performance
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions
from tests.conftest import ROOT, showrunner_command

PERFORMANCE = ROOT / "assets" / "midi" / "performances" / "asap_Bach_Prelude_bwv846_Shi05M.mid"
CUE_SECONDS = 3


def short_tour(tmp_path: Path) -> Path:
    text = (ROOT / "setlists" / "tour.toml").read_text()
    text = re.sub(r"after = \d+", f"after = {CUE_SECONDS}", text)
    text = text.replace('"../assets/', f'"{ROOT}/assets/').replace('"../build/', f'"{ROOT}/build/')
    path = tmp_path / "tour.toml"
    path.write_text(text)
    return path


def test_the_concert_checks():
    for name in ("concert", "tour"):
        done = subprocess.run(showrunner_command("check", str(ROOT / "setlists" / f"{name}.toml")),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert "every scene loaded" in done.stdout + done.stderr


def render(path: Path, seconds: float, metrics: Path) -> tuple[np.ndarray, list[dict], list[str]]:
    setlist = load_setlist(path)
    rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound, False,
                             setlist.resolve_path)
    try:
        audio = OfflineAudio(rack, pool=pool)
        show = Show(setlist, ShowOptions(duration=seconds, metrics=metrics), VirtualTime(), None, audio=audio)
        show.add_source(MidiFilePerformer(load_performance(PERFORMANCE), show.queue))
        assert show.load() == []
        summary = show.run()
        assert summary.scene_errors == 0 and summary.recompilations == 0
        return audio.samples(), [json.loads(l) for l in metrics.read_text().splitlines()], summary.cues_played
    finally:
        pool.close()


def test_a_render_of_the_whole_tour_plays_every_cue_the_same_twice(tmp_path):
    path = short_tour(tmp_path)
    cues = [cue.id for cue in load_setlist(path).cues]
    seconds = CUE_SECONDS * len(cues) + 1.0
    first = render(path, seconds, tmp_path / "one.jsonl")
    second = render(path, seconds, tmp_path / "two.jsonl")
    assert first[2] == cues  # every cue on stage, in order
    sound = first[0]
    assert np.isfinite(sound).all()
    for index, cue in enumerate(cues):  # every piece sounds
        part = sound[int((index * CUE_SECONDS + 0.5) * 48000):int((index + 1) * CUE_SECONDS * 48000)]
        assert np.abs(part).max() > 0.005, f"cue {cue} is silent"
    assert np.array_equal(first[0], second[0])
    drop = ("frame_ms", "capture_ms", "wall", "late_ms", "cpu", "rss_mb", "audio_load")
    strip = lambda lines: [{k: v for k, v in line.items() if k not in drop} for line in lines]  # noqa: E731
    assert strip(first[1]) == strip(second[1])


def test_a_replay_of_a_live_run_of_the_tour_plays_it_again(tmp_path):
    """Live (RealTime, the sound process off, the performance from a MIDI file), each cue 1.5 s,
    with a performance log; its replay takes the same cues and notes at the same ticks, the note
    sources' and learners' steps included, with no difference reported."""
    from engine import perflog
    from engine.audio.control import NoAudio
    from engine.clock import RealTime

    path = short_tour(tmp_path)
    path.write_text(re.sub(r"after = \d+", "after = 1.5", path.read_text()))
    cues = len(load_setlist(path).cues)
    seconds = 1.5 * cues + 0.5

    def run(name, clock, replay=None):
        setlist = load_setlist(path)
        rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound, False,
                                 setlist.resolve_path)
        metrics = tmp_path / f"{name}.jsonl"
        log = None if replay else perflog.PerformanceLog(tmp_path / "perf.jsonl", {
            "setlist": {"path": str(path), "text": path.read_text()}, "tick_rate": 60.0})
        try:
            show = Show(setlist, ShowOptions(duration=seconds, metrics=metrics), clock, None,
                        audio=NoAudio(rack, pool), perf_log=log, replay=replay)
            if replay is None:
                show.add_source(MidiFilePerformer(load_performance(PERFORMANCE), show.queue))
            assert show.load() == []
            summary = show.run()
            assert summary.scene_errors == 0
            if replay is not None:
                assert summary.replay_differences == 0
        finally:
            pool.close()
        lines = [json.loads(line) for line in metrics.read_text().splitlines()]
        return [(line["tick"], line.get("cue"), line.get("midi", []), line["events"]) for line in lines], summary

    live, live_summary = run("live", RealTime())
    replayed, replay_summary = run("replay", VirtualTime(), replay=perflog.load(tmp_path / "perf.jsonl"))
    assert len(live_summary.cues_played) == cues and replay_summary.cues_played == live_summary.cues_played
    strip = lambda rows: [(t, c, m, [e for e in ev if e not in ("overload",)]) for t, c, m, ev in rows]  # noqa: E731
    assert strip(replayed) == strip(live)


def test_approximations_plays_five_timed_movements_over_their_tapes(tmp_path):
    """setlists/approximations.toml with its movements shortened to 2 s: five cues in order, no
    scene error, each movement over generated material (a grain-tools tape, or the VAE's
    decoded trajectory), identical twice."""
    text = (ROOT / "setlists" / "approximations.toml").read_text()
    assert re.findall(r"after = (\d+)", text) == ["202", "115", "74", "180", "65"]  # 3:22 1:55 1:14 3:00 1:05
    text = re.sub(r"after = \d+", "after = 2", text)
    text = text.replace('"../assets/', f'"{ROOT}/assets/').replace('"../build/', f'"{ROOT}/build/')
    path = tmp_path / "approximations.toml"
    path.write_text(text)
    first = render(path, 10.5, tmp_path / "one.jsonl")
    assert first[2] == ["one", "two", "three", "four", "five"]
    for index in range(5):
        part = first[0][int((index * 2 + 0.3) * 48000):int((index + 1) * 2 * 48000)]
        assert np.abs(part).max() > 0.01, f"movement {index + 1} is silent"
    second = render(path, 10.5, tmp_path / "two.jsonl")
    assert np.array_equal(first[0], second[0])
