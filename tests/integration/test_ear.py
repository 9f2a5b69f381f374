"""The artificial ear on stage (scenes/ear/player.py, setlists/ear.toml; issue 22): renders that
listen and dream are identical, play each finished loop from the pool and light the neurons by
what the ear hears; the piano picks the band it dreams for; a missing checkpoint is one line."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

from engine.audio.sound_settings import build_sound
from engine.midi import NoteOff, NoteOn
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions
from scenes.ear import network
from tests.conftest import ROOT
from tests.integration.test_audio_jack import listens_again, live  # noqa: F401
from tests.integration.test_granolar import load_failures, show_of
from tests.integration.test_sound_jack import onset, recorder  # noqa: F401
from tests.spectrum import max_step

SETLIST = ROOT / "setlists" / "ear.toml"
CHECKPOINT = ROOT / "build" / "ear.ckpt"
RATE = 48000
SECONDS = 10.0  # the live run of the ear at work


def setlist_copy(tmp_path: Path, cues: tuple[str, ...] = ("silence",), extra: str = "") -> Path:
    """The setlist with only ``cues``, its paths absolute, ``extra`` added to each cue's params."""
    header, *parts = SETLIST.read_text().split("\n[[cues]]\n")
    kept = [part for part in parts if any(part.startswith(f'id = "{cue}"') for cue in cues)]
    assert len(kept) == len(cues), f"the setlist has no cue among {cues}"
    text = "\n[[cues]]\n".join([header, *kept])
    if extra:
        for key in re.findall(r"(\w+) = ", extra):  # the setlist's own value of a key given gives way
            text = re.sub(rf', {key} = ("[^"]*"|[^,}}]+)', "", text)
        text = text.replace('checkpoint = "../build/ear.ckpt"', f'checkpoint = "../build/ear.ckpt", {extra}')
    path = tmp_path / "ear.toml"
    path.write_text(text.replace('"../assets/', f'"{ROOT}/assets/').replace('"../build/', f'"{ROOT}/build/'))
    return path


NOTES = [(0.2, NoteOn(60, 100)), (0.9, NoteOff(60)), (1.0, NoteOn(43, 90)), (2.5, NoteOff(43))]
SHORT = 'bars = 0.5, steps_per_loop = 20, render_steps_per_tick = 2'  # 1-s loops


def test_renders_that_dream_are_identical_and_play_each_finished_loop(tmp_path):
    path = setlist_copy(tmp_path, extra=SHORT)
    runs = []
    for _ in range(2):
        with show_of(path, 3.0, NOTES) as (show, audio):
            assert show.run().scene_errors == 0
            scene = show.scenes[0]
            # 20 steps at 2 a tick: a loop in 10 ticks, each written once the one before it has
            # surely taken over (its loop, 44 frames: 1.02 s, and 50 ms after it was queued)
            assert scene.loops_played == 3 and scene.listens == 90
            assert [round(t * 60) for t, _, _ in scene.played] == [10, 75, 140]
            assert [table for _, table, _ in scene.played] == ["ear_a", "ear_b", "ear_a"]
            for _, table, data in scene.played:
                assert np.isfinite(data).all() and np.abs(data).max() <= 1.0
                assert np.abs(data).max() > 0.01, "a dreamed loop is silence"
                assert len(data) == int(np.ceil(44 * network.HOP * RATE / network.RATE))
            last = audio.pool.table(audio.pool.slot("ear_a"))[:len(scene.played[-1][2]), 0]
            np.testing.assert_array_equal(last, scene.played[-1][2])
            # the loops differ: each morphs on from the one before
            assert not np.array_equal(scene.played[0][2], scene.played[1][2])
            runs.append((audio.samples(), [d for _, _, d in scene.played], scene.heard[1].copy()))
    sound = runs[0][0]
    assert np.abs(sound[int(0.5 * RATE):]).max() > 0.01  # the loops and the piano sound
    assert np.array_equal(runs[0][0], runs[1][0])
    for a, b in zip(runs[0][1], runs[1][1]):
        assert np.array_equal(a, b)
    assert np.array_equal(runs[0][2], runs[1][2])


def test_listening_lights_the_neurons_by_what_it_hears(tmp_path):
    path = setlist_copy(tmp_path, ("listening",))
    with show_of(path, 2.0, NOTES) as (show, audio):
        scene = show.scenes[0]
        scene.enter()
        scene.tick(1 / 60)
        quiet = scene.heard[1].copy()
        assert quiet.shape == (sum(b * c for b, c in network.layer_shapes().values()),)
        show.run()
        loud = scene.heard[1]
        spectrum = scene.heard[0]
        assert np.isfinite(loud).all() and loud.min() >= 0
        assert np.abs(loud - quiet).max() > 0.5  # the piano lit up other neurons
        # the scaleogram of the last 4 s: the held G2 (note 43: bin 15) louder than the bins
        # an octave and a half under it
        steady = spectrum[-10]
        assert steady[43 - network.LOWEST_NOTE] > steady[:5].max() + 0.2


def test_a_piano_note_picks_the_band_the_ear_dreams_for(tmp_path):
    with show_of(setlist_copy(tmp_path, ("piano",)), 0.1) as (show, audio):
        scene = show.scenes[0]
        scene.enter()
        assert not scene.on_midi(NoteOn(69, 90))  # the note still sounds
        k = 69 - network.LOWEST_NOTE
        assert (scene.params.band_low, scene.params.band_high) == pytest.approx(((k - 1) / 96, (k + 2) / 96))
        assert scene.target().bins == pytest.approx(((k - 1) / 96, (k + 2) / 96))
        # the performer's mixer: a scene parameter, validated
        assert scene.set_param("layer", 5) is None and scene.target().layer == "a0"
        assert scene.set_param("layer", 9) is not None
        assert scene.set_param("rate", 0.01) is None and scene.regularisers().rate == 0.01
        scene.exit()


def test_a_missing_checkpoint_is_one_line(tmp_path):
    path = setlist_copy(tmp_path)
    path.write_text(path.read_text().replace(str(CHECKPOINT), "no-such.ckpt"))
    failures = load_failures(path)
    assert len(failures) == 1 and "\n" not in failures[0]
    assert str(tmp_path / "no-such.ckpt") in failures[0], failures[0]


@pytest.mark.jack
def test_a_live_show_dreams_each_loop_before_the_last_ends_and_keeps_60_hz(live, recorder, tmp_path):
    """Live (RealTime), sound through PortAudio on the realtime JACK dummy server, drawn at 1280x720
    on the headless EGL display: the ear listens (30 times a second asked) and dreams 4-s loops of
    40 steps beside the show; every frame is drawn, the ear listens in every second of the run,
    every loop is ready before the one playing ends, and the loops are played and heard.

    The ear's threads run below the show's (SCHED_IDLE), so on a busy or slow machine they yield
    to the frames by design: how often it listens and how fast it dreams depend on the machine
    (measured here from 11 to 30 listens a second, loops in 0.4 to 3.8 s, on the same code). The
    goals (30 listens a second, frame p99 within the period and its ratio to a show without the
    ear) are benchmark figures measured side by side: `python -m bench ear`. Here a frame late by
    more than a whole period at p99 fails."""
    import json

    from engine.clock import RealTime
    from engine.display import open_display

    path = setlist_copy(tmp_path)
    setlist = load_setlist(path)
    rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound,
                             False, setlist.resolve_path)
    display = open_display((1280, 720), headless=True)
    metrics = tmp_path / "m.jsonl"
    try:
        audio = live(rack, pool)
        show = Show(setlist, ShowOptions(duration=SECONDS, fps=60, metrics=metrics), RealTime(), display,
                    audio=audio)
        assert show.load() == []
        scene = show.scenes[0]
        mark = recorder.mark()
        summary = show.run()
        heard = recorder.since(mark)
        assert int(display.read_pixels().max()) > 0
    finally:
        display.close()
        pool.close()
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    frames = [r["frame_ms"] for r in records if "frame_ms" in r]
    assert summary.frames >= 0.95 * 60 * SECONDS and len(frames) >= 0.95 * 60 * SECONDS
    assert summary.scene_errors == 0 and summary.recompilations == 0
    # the ear listens all through the run: some listens in every whole second (a stalled listener
    # gives none; the rate itself is the benchmark's)
    counted, last = [0] * int(SECONDS), 0
    for record in records:
        second = int(record["time"])
        if second < len(counted):
            counted[second] += record["listens"] - last
        last = record["listens"]
    assert min(counted) >= 3, f"listens in each second of the run: {counted}"
    loop = 172 * network.HOP / network.RATE
    made = scene.loop_times
    assert len(made) >= 2 and scene.loops_played >= 2, (made, scene.loops_played)
    for began, finished in made:
        assert finished - began < loop, f"a loop took {finished - began:.2f} s to dream ({loop:.2f} s long)"
    assert np.abs(heard).max() > 0.01  # the loops were heard
    # and the ear heard them: silence is -1 in its scaleogram (power 1e-8), -0.5 is 100x the power
    assert scene.heard[0].max() > -0.5, scene.heard[0].max()
    p99 = float(np.percentile(frames, 99))
    assert p99 <= 2 * 1000 / 60, f"frame time p99 {p99:.1f} ms while the ear listens and dreams"


@pytest.mark.jack
@listens_again
def test_a_dreamed_loop_takes_over_at_the_loop_end_without_a_click_through_jack(live, recorder, tmp_path):
    """A live show through PortAudio on the JACK dummy server, heard by a JACK client: 1-s loops
    dreamed from noise (each from its own, so they differ), each queued while the one before it
    plays. Every change falls exactly on a loop end of the voice (the first pass whole, later ones
    a cross-fade shorter), the old loop sounding up to its cross-fade and the new one after it, and
    no step at a change is steeper than the loops' own steepest."""
    from engine.clock import RealTime
    from tests.integration.test_sound_jack import unless_a_cycle_was_missed

    path = setlist_copy(tmp_path, extra='bars = 0.5, steps_per_loop = 10, listen = "off", start = "noise", '
                                         'morph = false')
    setlist = load_setlist(path)
    rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound,
                             False, setlist.resolve_path)
    try:
        audio = live(rack, pool)
        show = Show(setlist, ShowOptions(duration=4.6), RealTime(), None, audio=audio)
        assert show.load() == []
        mark, xruns = recorder.mark(), recorder.xruns
        assert show.run().scene_errors == 0
        time.sleep(0.3)
        heard = recorder.since(mark)[:, 0].astype(np.float64)
        loops = [data.astype(np.float64) for _, _, data in show.scenes[0].played]
    finally:
        pool.close()
    with unless_a_cycle_was_missed(recorder, xruns):
        assert len(loops) >= 4, "fewer than four loops were played"
        length, fade, window = len(loops[0]), int(0.02 * RATE), 4096

        def fit(segment, reference):
            """(correlation, gain) of a captured segment against a loop's samples."""
            gain = float(segment @ reference / (reference @ reference))
            return float(np.corrcoef(segment, reference)[0, 1]), gain

        # The first loop from its first frame (its attack, 2 ms, left out of the comparison; its
        # first sample, at level 0, is silent, so the onset is found by fitting).
        skip = 512
        start = max(range(onset(heard) - 4, onset(heard) + 4),
                    key=lambda s: fit(heard[s + skip:s + skip + window], loops[0][skip:skip + window])[0])
        assert fit(heard[start + skip:start + skip + window], loops[0][skip:skip + window])[0] > 0.999
        ends = [start + length + j * (length - fade) for j in range(8)]
        switches = []
        for k in range(1, len(loops)):
            # the loop end at which loop k's own samples (past its cross-fade) begin
            found = [end for end in ends if end + fade + window < len(heard)
                     and fit(heard[end:end + window], loops[k][fade:fade + window])[0] > 0.999]
            if not found:
                break
            end = found[0]
            switches.append(end)
            before, gain = fit(heard[end - fade - window:end - fade], loops[k - 1][length - fade - window:length - fade])
            assert before > 0.999, f"loop {k - 1} was not what sounded up to the cross-fade before loop {k}"
            # No click: no step steeper than the loops' own (at the gain heard), the seam included.
            around = heard[end - 2 * fade:end + 2 * fade]
            own = max(max_step(np.concatenate([loops[k - 1], loops[k - 1][:1]])), max_step(loops[k]))
            assert max_step(around) <= 1.3 * abs(gain) * own, f"a click at the change to loop {k}"
        assert len(switches) >= 3, f"only {len(switches)} changes heard at loop ends"
        assert switches == sorted(set(switches))


def test_the_ear_learns_from_what_it_hears_the_same_in_every_render(tmp_path):
    """train = true: every 4 s the frames heard since go into the ear's ring; from the first on it
    learns from them alone (from the setup checkpoint), and listens and dreams with the model as it
    learns."""
    import jax

    path = setlist_copy(tmp_path, ("piano",), extra='train = true, render_train_steps_per_tick = 0.05, '
                                                   'steps_per_loop = 20, render_steps_per_tick = 2, '
                                                   'detune_scale = 0.01, distort_scale = 0.3, train_duty = 0.5')
    notes = [(0.1 + 0.5 * i, NoteOn(48 + 5 * (i % 6), 100)) for i in range(16)]
    runs = []
    for _ in range(2):
        with show_of(path, 8.5, notes) as (show, audio):
            detunes: list[float] = []
            detune = audio.detune
            audio.detune = lambda value, *a, **k: (detunes.append(value), detune(value, *a, **k))
            assert show.run().scene_errors == 0
            scene = show.scenes[0]
            state = scene.trainer.latest.state
            # its loss detunes the overtones, once a step (from the first clip heard on)
            assert len(detunes) == 13 and detunes[-1] == pytest.approx(
                0.01 * float(scene.trainer.latest.summary["loss"]))
            assert scene.trainer.fed == 2 and scene.fed == 2 * 172
            # and distorts the loops dreamed since: drive 0.3 x the loss when each was finished
            assert scene.drives[0] == 0.0 and max(scene.drives) > 0.3  # the loss is over 1
            assert all(d == 0.0 or d > 0.3 for d in scene.drives)
            # it starts learning with the first clip (at 4 s): 0.05 steps a tick from then on
            assert int(state.live_count) == 2 * 172 and scene.trainer.latest.steps == 13
            live = np.asarray(state.live[:2 * 172])
            assert live.max() > -0.3  # the piano was heard
            assert scene.model[0] is state.params  # it listens and dreams with the model learning
            assert np.isfinite(float(scene.trainer.latest.summary["loss"]))
            runs.append((audio.samples(), live, np.asarray(state.params["e0_w"])))
            status = scene.status()
            assert status["steps"] == 13 and status["heard"] == 2 * 172
            assert scene.trainer.duty == 0.5  # live it would rest; a render trains by the ticks all the same
    start = np.asarray(jax.tree_util.tree_leaves(
        __import__("scenes.ear.learner", fromlist=["load_ear"]).load_ear(CHECKPOINT).params["e0_w"]))
    assert not np.array_equal(runs[0][2], start)  # it learned
    for first, second in zip(runs[0], runs[1]):
        assert np.array_equal(first, second)
