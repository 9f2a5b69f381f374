"""The grains piece (scenes/grains, setlists/grains.toml) offline: driven by real performances
through every cue; renders identical twice; the left hand, the pedals and the knobs playing the
granulator; the tape of the grain tools; the picture drawn where the grains read (issue 20)."""

from __future__ import annotations

import json
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from engine.audio import grain_schedulers as schedulers
from engine.audio.granular_kernels import V_ENVELOPE, V_LEVEL, V_POSITION, V_TABLE
from engine.audio.offline import OfflineAudio
from engine.audio.sound_settings import build_sound
from engine.clock import VirtualTime
from engine.midi import ControlChange, NoteOff, NoteOn
from engine.midi_file import MidiFilePerformer, load_performance
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions
from scenes.grains.clouds import GrainClouds
from tests.conftest import PERFORMANCES, ROOT, showrunner_command

SETLIST = ROOT / "setlists" / "grains.toml"
CUES = ["hold", "cloud", "salad", "tape"]
RATE = 48000
PERFORMED = [PERFORMANCES / "asap_Chopin_Ballades_1_Ali01.mid",
             PERFORMANCES / "asap_Bach_Prelude_bwv846_Shi05M.mid",
             PERFORMANCES / "prettymidi_example_type0_420tempos_sysex.mid"]


def setlist_copy(tmp_path: Path, seconds_per_cue: float, *, tape_seconds: float = 40.0,
                 extra: str = "") -> Path:
    """setlists/grains.toml as it is, but each cue handing over after ``seconds_per_cue`` (its
    files named from the project's root, so the copy loads from anywhere)."""
    text = (SETLIST.read_text().replace('"../assets/', f'"{ROOT}/assets/')
            .replace("advance = { after = 60 }", f"advance = {{ after = {seconds_per_cue} }}")
            .replace("seconds = 40, gain", f"seconds = {tape_seconds}, gain"))
    path = tmp_path / "grains.toml"
    path.write_text(text + extra)
    return path


@contextmanager
def show_of(path: Path, seconds: float, performance: Path | None = None, events=(), start_cue=None,
            metrics: Path | None = None, learn=None):
    """A loaded and run show of setlist ``path`` with its rack offline; yields (show, audio,
    summary); the pool is closed afterwards."""
    setlist = load_setlist(path)
    rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound,
                             False, setlist.resolve_path)
    try:
        audio = OfflineAudio(rack, pool=pool)
        show = Show(setlist, ShowOptions(duration=seconds, start_cue=start_cue, metrics=metrics),
                    VirtualTime(), None, audio=audio, learn=learn)
        if performance is not None:
            show.add_source(MidiFilePerformer(load_performance(performance), show.queue))
        for stamp, event in events:
            show.queue.push(stamp, event)
        assert show.load() == []
        summary = show.run()
        yield show, audio, summary
    finally:
        pool.close()


@pytest.mark.parametrize("performance", PERFORMED, ids=lambda path: path.stem[:24])
def test_real_performances_play_every_cue_and_every_note_starts_a_cloud(tmp_path, performance):
    metrics = tmp_path / "metrics.jsonl"
    with show_of(setlist_copy(tmp_path, 7.0, tape_seconds=10.0), 30.0, performance,
                 metrics=metrics) as (show, audio, summary):
        assert summary.scene_errors == 0
        assert summary.cues_played == CUES
        assert summary.notes > 20
        clouds = sum(audio.mixer.instrument(name).clouds_started for name in ("grains", "salad"))
        assert clouds == summary.notes
        assert audio.mixer.instrument("tools").clouds_started == 0  # only the tape's render plays it
        sound = audio.samples()
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    by_cue = {cue: [line for line in lines if line["cue"] == cue] for cue in CUES}
    for cue in CUES:
        assert max(line["grains"] for line in by_cue[cue]) > 0, f"no grain was ever seen in cue {cue}"
    # Every cue is heard: each second of it has sound, the tape's even before the first note.
    for index, cue in enumerate(CUES):
        start = int((index * 7.0 + 0.5) * RATE)
        assert np.abs(sound[start:start + 6 * RATE]).max() > 0.01, cue
    assert np.isfinite(sound).all() and np.abs(sound).max() <= 1.0


def test_two_offline_renders_of_the_piece_are_identical(tmp_path):
    path = setlist_copy(tmp_path, 4.0, tape_seconds=5.0)
    renders = []
    for _ in range(2):
        with show_of(path, 17.0, PERFORMED[0]) as (_show, audio, summary):
            assert summary.cues_played == CUES
            renders.append(audio.samples())
    assert renders[0].shape[0] >= 17 * RATE - 256
    assert np.abs(renders[0]).max() > 0.05
    assert np.array_equal(renders[0], renders[1])


def values(audio: OfflineAudio, name: str = "grains") -> dict[str, float]:
    instrument = audio.mixer.instrument(name)
    return dict(zip(schedulers.PARAMETERS, instrument.values))


def test_the_left_hand_picks_the_source_by_octave_and_the_position_by_pitch_class(tmp_path):
    """Cue "cloud": sources voice, cello, ocean; the split at middle C. D#3 (51: in the octave
    under the split, a D# above C) picks sources[0] = voice at 3/12; then A2 (45: the octave under
    that) the cello at 9/12, while a right-hand note plays the cloud; the grains read there."""
    seen = {}

    class Watch(GrainClouds):
        name = "test_watch_grains"

        def tick(self, dt):
            super().tick(dt)
            seen[round(self.context.audio.show_time * 60)] = (self.view.copy(), self.shown_table())

    path = setlist_copy(tmp_path, 60.0)
    text = path.read_text().replace('id = "cloud"\ntitle = "Clouds"\nscene = "grain_clouds"',
                                    'id = "cloud"\ntitle = "Clouds"\nscene = "test_watch_grains"')
    path.write_text(text)
    events = [(0.5, NoteOn(51, 90)), (0.6, NoteOff(51)), (0.7, NoteOn(72, 100)),
              (1.5, NoteOn(45, 90)), (1.6, NoteOff(45)), (2.4, NoteOff(72))]
    with show_of(path, 1.45, events=events, start_cue="cloud") as (show, audio, _):
        pool = audio.pool
        first = values(audio)
        voice = pool.slot("voice")
        assert first["table"] == voice and first["position"] == pytest.approx(3 / 12)
        assert first["density"] == 300 and first["scan"] == pytest.approx(0.02)
        view, shown = seen[80]  # 1.33 s: the cloud of note 72 sounds
        assert shown == voice
        ours = view[view[:, V_TABLE] == voice]
        assert len(ours) >= 10
        # Where the grains read: 3/12 +- the deviation (0.02), scanned on by 0.02 table lengths
        # a second for at most 0.65 s, plus how far a grain of 80 ms +-20 % moves through the
        # 6.17 s table (under 0.02): nothing outside [0.23, 0.30].
        assert ours[:, V_POSITION].min() > 0.25 - 0.02 - 1e-6
        assert ours[:, V_POSITION].max() < 0.25 + 0.02 + 0.013 + 0.02
        assert (ours[:, V_ENVELOPE] >= 0).all() and (ours[:, V_ENVELOPE] <= 1).all()
        assert (ours[:, V_LEVEL] <= ours[:, V_ENVELOPE] + 1e-9).all()
    with show_of(path, 2.2, events=events, start_cue="cloud") as (show, audio, _):
        later = values(audio)
        assert later["table"] == audio.pool.slot("cello") and later["position"] == pytest.approx(9 / 12)
        view, shown = seen[130]  # 2.17 s: the grains of the cello
        assert shown == audio.pool.slot("cello")
        assert (view[:, V_TABLE] == shown).sum() >= 10


def test_the_sustain_pedal_freezes_and_the_soft_pedal_thins_the_cloud(tmp_path):
    path = setlist_copy(tmp_path, 60.0)
    events = [(0.2, ControlChange(64, 127)), (0.4, ControlChange(67, 127))]
    with show_of(path, 0.3, events=events, start_cue="cloud") as (_, audio, _):
        assert values(audio)["scan"] == 0.0 and values(audio)["density"] == 300
    with show_of(path, 0.5, events=events, start_cue="cloud") as (_, audio, _):
        assert values(audio)["density"] == pytest.approx(30)  # soft_density
    half = events + [(0.6, ControlChange(67, 64)), (0.8, ControlChange(64, 0))]
    with show_of(path, 0.7, events=half, start_cue="cloud") as (_, audio, _):
        density = 300 ** (1 - 64 / 127) * 30 ** (64 / 127)  # log scale between the two
        assert values(audio)["density"] == pytest.approx(density, rel=1e-3)
        assert values(audio)["scan"] == 0.0
    with show_of(path, 0.9, events=half, start_cue="cloud") as (_, audio, _):
        assert values(audio)["scan"] == pytest.approx(0.02)


def test_a_knob_moved_live_reaches_the_granulator_at_its_tick(tmp_path):
    """What MIDI learn and OSC do: set_param on the scene, sent to the instrument when it ticks."""
    path = setlist_copy(tmp_path, 60.0)
    setlist = load_setlist(path)
    rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound,
                             False, setlist.resolve_path)
    try:
        audio = OfflineAudio(rack, pool=pool)
        show = Show(setlist, ShowOptions(duration=1.0, start_cue="cloud"), VirtualTime(), None,
                    audio=audio)
        assert show.load() == []
        scene = show.scenes[1]
        assert scene.set_param("duration", 0.25) is None
        assert scene.set_param("duration", 99.0) is not None  # out of range: refused, said
        scene.tick(1 / 60)
        assert ["set", "grains", "duration", 0.25] in audio.take_sent()
        scene.tick(1 / 60)
        assert not [sent for sent in audio.take_sent() if sent[:3] == ["set", "grains", "duration"]]
    finally:
        pool.close()


def test_the_tape_is_the_tools_rendered_at_load_and_plays_from_the_cue_start(tmp_path):
    path = setlist_copy(tmp_path, 60.0, tape_seconds=6.0)
    tapes = []
    for _ in range(2):
        with show_of(path, 2.0, start_cue="tape") as (show, audio, _):
            tape = show.scenes[3].tape
            tapes.append(tape)
            table = audio.pool.table(audio.pool.slot("tape"))
            assert np.array_equal(table, tape)
            sound = audio.samples()
    assert np.array_equal(tapes[0], tapes[1])
    tape = tapes[0]
    assert tape.shape == (6 * RATE, 2)
    assert np.abs(tape).max() > 0.05 and np.abs(tape[-16:]).max() < 1e-3  # faded out at its end
    # Heard with no note played: the sampler's tape at gain 0.6, from the first block.
    assert np.abs(sound[:2 * RATE]).max() > 0.03


def test_a_tape_too_long_for_its_table_fails_the_cue_with_one_line(tmp_path):
    path = setlist_copy(tmp_path, 60.0, tape_seconds=50.0)
    setlist = load_setlist(path)
    rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound,
                             False, setlist.resolve_path)
    try:
        show = Show(setlist, ShowOptions(duration=1.0), VirtualTime(), None,
                    audio=OfflineAudio(rack, pool=pool))
        failures = show.load()
    finally:
        pool.close()
    assert failures == ["cue 'tape': scene 'grain_clouds' failed to load: table 'tape' holds 1920000 "
                        "frames; the tape needs 2400000 (50 s): give it seconds = 50 in [sound.tables]"]


def test_the_picture_draws_each_sounding_grain_where_it_reads(tmp_path):
    """A real render (EGL, the encoder, decoded with PyAV): the left hand puts the position at 3/12
    of the voice, a held note plays the cloud; in the frame at 1.2 s the lit grains stand over that
    part of the waveform and nowhere else, and before the first note none is lit."""
    import subprocess

    import av
    import mido

    from tests.conftest import showrunner_command

    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    ticks = lambda seconds: int(mido.second2tick(seconds, 480, 500000))  # noqa: E731
    for delta, message in [(0.3, mido.Message("note_on", note=51, velocity=90)),
                           (0.1, mido.Message("note_off", note=51)),
                           (0.1, mido.Message("note_on", note=72, velocity=110)),
                           (1.6, mido.Message("note_off", note=72))]:
        track.append(message.copy(time=ticks(delta)))
    midi.save(tmp_path / "left-right.mid")
    out = tmp_path / "grains.mkv"
    done = subprocess.run(showrunner_command(
        "render", str(setlist_copy(tmp_path, 60.0)), "--midi-file", str(tmp_path / "left-right.mid"),
        "--cue", "cloud", "--duration", "1.5", "--size", "640x360", "--out", str(out),
        "--log-dir", str(tmp_path / "logs")), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with av.open(str(out)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 90

    def lit_columns(frame: np.ndarray) -> np.ndarray:
        lane = frame[int((1 - 0.84) * 360):int((1 - 0.22) * 360)]  # the waveform's lane
        return np.flatnonzero(lane.max(axis=(0, 2)) > 160) / 640

    assert lit_columns(frames[12]).size == 0  # 0.2 s: the waveform and the band alone
    lit = lit_columns(frames[72])
    assert lit.size >= 3
    # 3/12 +- 0.02, the scan's 0.02 a second for 0.8 s, a grain's own travel and its bar's width
    assert lit.min() > 0.25 - 0.02 - 0.01 and lit.max() < 0.25 + 0.02 + 0.016 + 0.013 + 0.01


def test_midi_learn_binds_a_controller_to_a_grain_knob(tmp_path):
    """Every knob can be bound (MIDI learn offers it); a bound controller moved on stage sets the
    granulator's value at its tick, mapped onto the binding's range."""
    from engine import midi_learn
    from scenes.grains.clouds import KNOBS, GrainCloudsParams

    offered, _ = midi_learn.bindable(GrainCloudsParams)
    assert set(KNOBS) | {"density", "soft_density", "scan", "split"} <= set(offered)
    path = setlist_copy(tmp_path, 60.0)
    binding = midi_learn.Binding(1, 20, "cloud", "duration", 0.01, 0.5)
    events = [(0.2, ControlChange(20, 127)), (0.3, ControlChange(20, 0))]
    for seconds, duration in [(0.15, 0.08), (0.25, 0.5), (0.35, 0.01)]:
        learn = midi_learn.MidiLearn(load_setlist(path), [binding])
        with show_of(path, seconds, events=events, start_cue="cloud", learn=learn) as (_, audio, _):
            assert values(audio)["duration"] == pytest.approx(duration)


def test_check_says_a_scene_that_fails_to_load_in_one_line_without_a_traceback(tmp_path):
    path = setlist_copy(tmp_path, 60.0, tape_seconds=50.0)
    result = subprocess.run(showrunner_command("check", str(path)), cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "scene 'grain_clouds' failed to load: table 'tape'" in lines[0], result.stderr


def test_a_render_with_a_cue_that_failed_to_load_is_written_and_exits_1(tmp_path):
    path = setlist_copy(tmp_path, 60.0, tape_seconds=50.0)
    out = tmp_path / "grains.mkv"
    result = subprocess.run(showrunner_command("render", str(path), "--out", str(out), "--duration", "0.5",
                                               "--size", "160x90", "--log-dir", str(tmp_path)),
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "the video is written, but 1 problem(s) loading cues" in result.stderr
    assert "cue 'tape': scene 'grain_clouds' failed to load" in result.stderr
    assert "Traceback" not in result.stderr
    assert out.stat().st_size > 0  # written whole all the same
