"""A note source drives a scene as a piano would (engine/note_sources.py, the "dice" source of
scenes/composition; issue 23): a dice waltz thrown at the cue start drives LDD part 1 in a render,
each bass note starting a new target; the same seed, the same waltz; the soft pedal throws again."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine.clock import VirtualTime
from engine.midi import ControlChange
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions
from tests.integration.test_ldd import events


def waltz_setlist(tmp_path: Path, source: str = 'kind = "dice", tempo = 90') -> Path:
    path = tmp_path / "waltz.toml"
    path.write_text('title = "waltz"\nseed = 5\npieces = ["ldd", "composition"]\nresolution = "320x180"\n'
                    f'[[cues]]\nid = "waltz"\nscene = "ldd_cubic"\nsource = {{ {source} }}\n')
    return path


class Played:
    """A performer's events, each pushed when its time comes (as a port would)."""

    def __init__(self, events, queue) -> None:
        self.events, self.queue, self.origin = list(events), queue, 0.0

    def start(self, origin: float) -> None:
        self.origin = origin

    def poll(self, now: float) -> None:
        while self.events and self.origin + self.events[0][0] <= now + 1e-9:
            at, event = self.events.pop(0)
            self.queue.push(self.origin + at, event)

    def take_notices(self) -> list[str]:
        return []


def play(path: Path, seconds: float, pushed=()) -> tuple[list[dict], Show]:
    setlist = load_setlist(path)
    metrics = path.with_suffix(".jsonl")
    show = Show(setlist, ShowOptions(duration=seconds, metrics=metrics), VirtualTime(), None)
    show.add_source(Played(pushed, show.queue))
    assert show.load() == []
    summary = show.run()
    assert summary.scene_errors == 0
    return [json.loads(line) for line in metrics.read_text().splitlines()], show


def note_ons(lines):
    return [(line["tick"], int(text.split()[1])) for line in lines for text, _ in line.get("midi", [])
            if text.startswith("note_on")]


def test_a_dice_waltz_drives_ldd_part_1_as_a_piano_would(tmp_path):
    lines, show = play(waltz_setlist(tmp_path), 12.0)
    source = show.scenes[0].context.source
    seeds = [event for event in events(lines) if event.startswith("source:dice seed")]
    assert seeds == [f"source:dice seed {source.seed}"]
    notes = note_ons(lines)
    assert len(notes) > 50  # 18 bars at 90 a minute
    assert events(lines).count("new_target") == sum(1 for _, note in notes if note < 48) > 0
    # the notes are the waltz's, at its times (a tick's rounding)
    ticks = [(max(1, math.ceil(at * 60 - 1e-9)), event.note) for at, event in source.write(source.seed)
             if type(event).__name__ == "NoteOn"]
    written = [(tick, note) for tick, note in ticks if tick <= 720]
    assert sorted(notes) == sorted(written)
    again, _ = play(waltz_setlist(tmp_path), 12.0)
    assert note_ons(again) == notes


def test_the_soft_pedal_throws_a_new_waltz_from_then_on(tmp_path):
    pedal = [(4.0, ControlChange(67, 127)), (4.5, ControlChange(67, 0))]
    lines, show = play(waltz_setlist(tmp_path), 8.0, pedal)
    seeds = [event for event in events(lines) if event.startswith("source:dice seed")]
    assert len(seeds) == 2 and seeds[0] != seeds[1]
    thrown_at = next(line["tick"] for line in lines if seeds[1] in line["events"])
    assert thrown_at == pytest.approx(4.0 * 60, abs=2)
    source = show.scenes[0].context.source
    assert source.throws == 2
    # after the throw, the second waltz from its start: its first notes at the next tick
    later = [(tick, note) for tick, note in note_ons(lines) if tick > thrown_at]
    first_tick = later[0][0]
    assert first_tick == thrown_at + 1
    first_notes = [e.note for at, e in source.write(source.seed) if type(e).__name__ == "NoteOn" and at == 0]
    assert sorted(note for tick, note in later if tick == first_tick) == sorted(first_notes)


def test_an_unknown_source_kind_is_one_line(tmp_path):
    setlist = load_setlist(waltz_setlist(tmp_path, 'kind = "dies"'))
    show = Show(setlist, ShowOptions(duration=0.1), VirtualTime(), None)
    failures = show.load()
    assert len(failures) == 1 and "unknown note source kind 'dies'" in failures[0] and "\n" not in failures[0]


def test_render_with_no_performance_plays_the_source_and_a_replay_of_a_live_run_plays_it_again(tmp_path):
    """`showrunner render` with only --duration: the cues play themselves. A live run (RealTime,
    a performance log), then its replay: the replay does not throw again, it plays the live
    waltz's notes from the log, at the same ticks (its own throw, the same dice, only shown)."""
    import subprocess

    from engine import perflog
    from engine.audio.control import NoAudio
    from engine.clock import RealTime
    from tests.conftest import ROOT, showrunner_command

    metrics = tmp_path / "render.jsonl"
    done = subprocess.run(showrunner_command("render", str(ROOT / "setlists" / "dice.toml"), "--duration", "2",
                                             "--size", "320x180", "--out", str(tmp_path / "dice.mkv"),
                                             "--metrics", str(metrics), "--log-dir", str(tmp_path / "logs")),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert any(event.startswith("source:dice seed") for event in events(lines)) and note_ons(lines)
    assert lines[-1]["bars"] and lines[-1]["bar"] >= 0  # the scene shows the waltz
    missing = subprocess.run(showrunner_command("render", str(ROOT / "setlists" / "dice.toml"), "--out",
                                                str(tmp_path / "x.mkv")), capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "--duration" in missing.stderr and "Traceback" not in missing.stderr

    path = waltz_setlist(tmp_path)

    def run(name, clock, replay=None):
        setlist = load_setlist(path)
        out = tmp_path / f"{name}.jsonl"
        log = None if replay else perflog.PerformanceLog(tmp_path / "perf.jsonl", {
            "setlist": {"path": str(path), "text": path.read_text()}, "tick_rate": 60.0})
        show = Show(setlist, ShowOptions(duration=3.0, metrics=out), clock, None, audio=NoAudio(),
                    perf_log=log, replay=replay)
        assert show.load() == []
        assert show.run().scene_errors == 0
        return [json.loads(line) for line in out.read_text().splitlines()]

    live = run("live", RealTime())
    replayed = run("replay", VirtualTime(), replay=perflog.load(tmp_path / "perf.jsonl"))
    assert note_ons(live) and note_ons(replayed) == note_ons(live)
    # the replay throws the same dice (the scenes show them) but plays the notes from the log once
    seeds = [event for event in events(live) if event.startswith("source:")]
    assert seeds and [event for event in events(replayed) if event.startswith("source:")] == seeds


def test_padberg_sounds_the_tables_frequencies_in_the_cycles_rhythm(tmp_path):
    """A render of setlists/padberg.toml's first cue (unit 0.25 s): each letter's tone peaks within
    0.5 Hz of the table's frequency (the scene retuned its keys), starting where the rhythm says;
    when the cue ends the keys are the tuning's again."""
    from engine.audio.offline import OfflineAudio
    from engine.audio.sound_settings import build_sound
    from tests.conftest import ROOT
    from tests.spectrum import peak_near

    text = (ROOT / "setlists" / "padberg.toml").read_text().replace("unit = 0.05", "unit = 0.25")
    path = tmp_path / "padberg.toml"
    path.write_text(text)
    setlist = load_setlist(path)
    rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound, False,
                             setlist.resolve_path)
    try:
        audio = OfflineAudio(rack, pool=pool)
        show = Show(setlist, ShowOptions(duration=9.0), VirtualTime(), None, audio=audio)
        assert show.load() == []
        assert show.run().scene_errors == 0
        sound = audio.samples()[:, 0].astype(np.float64)
        scene = show.scenes[0]
        letters = scene.context.source.letters
        assert [v for _, _, _, v in letters[:6]] == [1, 2, 4, 4, 8, 22]
        rate = 48000
        start = 1 / 60  # the cue's writing began at the first tick's start (show time 0)
        for at, letter, hz, value in letters[1:6]:  # a r r i e: 0.5 s and longer
            begin = int((at + 0.05) * rate)
            end = int(min(at + value * 0.25 - 0.03, 9.0 - 0.05) * rate)
            heard = peak_near(sound[begin:end], rate, hz, 8.0)
            assert heard == pytest.approx(hz, abs=0.5), (letter, hz, heard)
            onset = begin - int(0.05 * rate) + int(np.argmax(np.abs(sound[begin - int(0.05 * rate):begin]) > 1e-3))
            assert abs(onset / rate - at) < 1 / 60 + start, (letter, onset / rate, at)
        assert audio.mixer.host.frequencies[69 + 1] == pytest.approx(458.333, abs=0.01)  # B's key
        scene.exit()  # the cue ends: the keys are the tuning's again
        audio.advance(9.1)
        assert audio.mixer.host.frequencies[69 + 1] == pytest.approx(440 * 2 ** (1 / 12))
    finally:
        pool.close()


def test_f5_throws_a_new_waltz_from_the_next_tick(tmp_path):
    from engine.keyboard import KeyAction

    path = waltz_setlist(tmp_path)
    setlist = load_setlist(path)
    metrics = path.with_suffix(".jsonl")
    show = Show(setlist, ShowOptions(duration=5.0, metrics=metrics), VirtualTime(), None)

    class Performer(Played):  # presses F5 at 3 s, as the window's keyboard would
        def poll(self, now: float) -> None:
            if self.events and self.origin + 3.0 <= now:
                self.events = []
                show.apply_key(KeyAction("throw"), now)

    show.add_source(Performer([(3.0, None)], show.queue))
    assert show.load() == []
    show.run()
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    throws = [(line["tick"], e) for line in lines for e in line["events"] if e.startswith("source:dice")]
    assert len(throws) == 2 and throws[1][0] == pytest.approx(180, abs=2) and throws[0][1] != throws[1][1]


def test_text_typed_in_the_window_has_padberg_write_it_and_a_replay_does_the_same(tmp_path):
    """F6, keys, Enter (as the window's keyboard gives them) at 1 s: from the next tick the source
    writes the new text; the performance log keeps it as OSC /showrunner/text, so a replay writes
    it at the same tick."""
    from engine import perflog
    from engine.audio.control import NoAudio
    from engine.clock import RealTime

    path = tmp_path / "padberg.toml"
    path.write_text('title = "p"\npieces = ["composition"]\nresolution = "160x90"\n'
                    '[[cues]]\nid = "text"\nscene = "padberg_text"\n'
                    'source = { kind = "padberg", text = "harriet padberg", unit = 0.02 }\n')

    def run(name, clock, replay=None):
        setlist = load_setlist(path)
        metrics = tmp_path / f"{name}.jsonl"
        log = None if replay else perflog.PerformanceLog(tmp_path / "perf.jsonl", {
            "setlist": {"path": str(path), "text": path.read_text()}, "tick_rate": 60.0})
        show = Show(setlist, ShowOptions(duration=2.0, metrics=metrics), clock, None, audio=NoAudio(),
                    perf_log=log, replay=replay)

        class Typist(Played):
            def poll(self, now: float) -> None:
                if self.events and self.origin + 1.0 <= now:
                    self.events = []
                    for key in ["f6", "b", "a", "c", "h", "return"]:
                        show.apply_key(show.keyboard.key_down(key), now)

        if replay is None:
            show.add_source(Typist([(1.0, None)], show.queue))
        assert show.load() == []
        show.run()
        return show.scenes[0].context.source, [json.loads(line) for line in metrics.read_text().splitlines()]

    source, live = run("live", RealTime())
    assert source.text == "bach" and "".join(letter for _, letter, _, _ in source.letters) == "bach"
    written = [(line["tick"], e) for line in live for e in line["events"] if e.startswith("source:")]
    assert len(written) == 2 and 55 <= written[1][0] <= 75
    source, replayed = run("replay", VirtualTime(), replay=perflog.load(tmp_path / "perf.jsonl"))
    assert source.text == "bach"
    assert [(line["tick"], e) for line in replayed for e in line["events"] if e.startswith("source:")] == written


def test_the_dice_sources_own_key_throws_again(tmp_path):
    from engine.errors import UserError
    from engine.midi import NoteOn
    from engine.note_sources import make_source

    lines, show = play(waltz_setlist(tmp_path, 'kind = "dice", tempo = 90, throw_note = 21'), 4.0,
                       [(2.0, NoteOn(21, 90))])
    seeds = [(line["tick"], e) for line in lines for e in line["events"] if e.startswith("source:dice")]
    assert len(seeds) == 2 and seeds[1][0] == pytest.approx(120, abs=2)
    with pytest.raises(UserError, match="outside the waltz's range"):
        make_source({"kind": "dice", "throw_note": 60}, "cue 'x'")


def test_a_source_with_only_start_and_poll_plays_into_the_show(tmp_path):
    """``take_notices`` is optional in a note source (a plug-in's, a benchmark's): one without it
    plays its notes like any other (the show once raised AttributeError at its first frame)."""
    from engine.midi import NoteOn

    class Bare:
        def __init__(self, queue) -> None:
            self.queue, self.origin, self.sent = queue, 0.0, False

        def start(self, origin: float) -> None:
            self.origin = origin

        def poll(self, now: float) -> None:
            if not self.sent and now >= self.origin + 1.0:
                self.sent = True
                self.queue.push(self.origin + 1.0, NoteOn(channel=0, note=40, velocity=90))

    path = tmp_path / "bare.toml"
    path.write_text('title = "bare"\npieces = ["ldd"]\nresolution = "320x180"\n'
                    '[[cues]]\nid = "one"\nscene = "ldd_cubic"\n')
    metrics = path.with_suffix(".jsonl")
    show = Show(load_setlist(path), ShowOptions(duration=2.0, metrics=metrics), VirtualTime(), None)
    show.add_source(Bare(show.queue))
    assert show.load() == []
    assert show.run().scene_errors == 0
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [note for _, note in note_ons(lines)] == [40]
