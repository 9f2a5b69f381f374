"""The rack from a setlist's [sound] table, routed per cue, through the show (offline, in virtual
time: the same rack code the audio process runs).

A flute recording (A4) is the sampler's table with root = 57 (A3), so the sampler plays MIDI note
69 an octave up, at 880 Hz, while the overtone instrument plays it at 440 Hz: which instrument a
note reached shows in the spectrum.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.audio.offline import OfflineAudio
from engine.audio.sound_settings import build_sound
from engine.clock import VirtualTime
from engine.midi import NoteOff, NoteOn
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions
from tests.conftest import SHARED_DATA
from tests.spectrum import Spectrum

RATE = 48000
FLUTE = SHARED_DATA / "audio" / "smstools_flute-A4.wav"

# The rack: a one-partial overtone voice and a sampler playing the flute an octave up (shared with
# tests/integration/test_sound_jack.py, which plays it live).
RACK = f"""
[sound]
notes = ["overtones"]
[sound.samples]
flute = "{FLUTE}"
[sound.instruments.overtones]
kind = "overtones"
partials = 1
envelope = "adsr"
release = 0.05
[sound.instruments.sampler]
kind = "sampler"
table = "flute"
root = 57
release = 0.02
"""

SETLIST = 'title = "routing"\n' + RACK + """
[[cues]]
id = "flute"
scene = "pulse"
advance = { after = 2 }
sound = { notes = ["sampler"] }

[[cues]]
id = "tones"
scene = "pulse"
advance = { after = 2 }

[[cues]]
id = "nothing"
scene = "pulse"
advance = { after = 2 }
sound = { notes = [] }
"""


def perform(tmp_path: Path, notes: list[tuple[float, float]], seconds: float, text: str = SETLIST):
    """Render the setlist with note 69 held over each (start, end) in show seconds; returns the
    sound and the metrics lines."""
    path = tmp_path / "routing.toml"
    path.write_text(text)
    setlist = load_setlist(path)
    rack, pool = build_sound(path, setlist.settings.audio.mixer_config(), setlist.settings.sound,
                             False, setlist.resolve_path)
    audio = OfflineAudio(rack, pool=pool)
    metrics = tmp_path / "routing.jsonl"
    show = Show(setlist, ShowOptions(duration=seconds, metrics=metrics), VirtualTime(), None,
                audio=audio)
    events = [(start, NoteOn(69, 100)) for start, _ in notes] + [(end, NoteOff(69, 0)) for _, end in notes]
    for stamp, event in sorted(events, key=lambda item: item[0]):  # they arrive in time order
        show.queue.push(stamp, event)
    assert show.load() == []
    show.run()
    pool.close()
    return audio.samples()[:, 0], [json.loads(line) for line in metrics.read_text().splitlines()]


def levels(sound: np.ndarray, start: float, end: float) -> tuple[float, float]:
    """Amplitude at 440 Hz (the overtones) and 880 Hz (the sampler) over [start, end) seconds."""
    spectrum = Spectrum(sound[int(start * RATE):int(end * RATE)], RATE)
    return spectrum.level(440.0), spectrum.level(880.0)


@pytest.mark.usefixtures("shared_data")
def test_each_cue_routes_the_notes_to_its_instruments(tmp_path):
    sound, lines = perform(tmp_path, [(0.3, 1.0), (2.3, 3.0), (4.3, 5.0)], 6.0)
    flute = levels(sound, 0.45, 0.95)
    tones = levels(sound, 2.45, 2.95)
    assert flute[1] > 0.01, "the sampler's note is missing"
    assert flute[0] < 0.02 * flute[1], "a cue routed to the sampler sounds overtones"
    assert tones[0] > 0.01, "the overtones' note is missing"
    assert tones[1] < 0.02 * tones[0], "the overtones' cue sounds the sampler"
    assert np.abs(sound[int(4.2 * RATE):]).max() == 0.0, "a cue routed to nothing sounds"
    routes = [(line["cue"], command) for line in lines for command in line.get("audio", [])
              if command[0] == "route"]
    assert routes == [("flute", ["route", "sampler"]), ("tones", ["route", "overtones"]),
                      ("nothing", ["route"])]


@pytest.mark.usefixtures("shared_data")
def test_routing_changes_at_the_cue_change_and_a_held_note_is_released_where_it_sounds(tmp_path):
    tick = 1 / 60
    # One note held across the change (struck in the flute cue, released as the tones cue
    # starts), then one struck in the first tick of the tones cue.
    sound, lines = perform(tmp_path, [(1.5, 2.0 + tick / 3), (2.0 + tick / 2, 2.6)], 3.0)
    change = next(line["time"] for line in lines if line["cue"] == "tones")
    assert change == pytest.approx(2.0 + tick)
    first_tick = [line for line in lines if line["time"] == change][0]
    assert [c[0] for c in first_tick["audio"]] == ["route", "note_off", "note_on"]  # routed first
    after = levels(sound, 2.1, 2.55)
    assert after[0] > 0.01, "the note struck as the cue changed did not reach the overtones"
    # The flute note released in the new cue stops (release 0.02 s): it was released where it
    # sounded, not sent to the overtones only.
    tail = levels(sound, 2.2, 2.55)
    assert tail[1] < 0.02 * after[0]


def test_a_setlist_with_sound_rejects_overtone_settings_left_in_audio(tmp_path):
    from engine.errors import UserError

    path = tmp_path / "bad.toml"
    path.write_text(SETLIST.replace('title = "routing"', 'title = "routing"\n[audio]\npartials = 4'))
    with pytest.raises(UserError, match=r"field 'audio.partials'.*\[sound.instruments.NAME\]"):
        load_setlist(path)


@pytest.mark.parametrize(("settings", "expected"), [
    ('{ sampler = { table = "flue" } }', r"field 'sound.settings.sampler.table': no table 'flue'"),
    ('{ sampler = { gain_db = "loud" } }', r"field 'sound.settings.sampler.gain_db': a number, not 'loud'"),
])
def test_a_cue_setting_a_table_that_is_not_there_is_found_when_the_setlist_loads(tmp_path, settings, expected):
    from engine.errors import UserError

    path = tmp_path / "bad.toml"
    path.write_text(SETLIST.replace('sound = { notes = ["sampler"] }',
                                    f'sound = {{ notes = ["sampler"], settings = {settings} }}'))
    with pytest.raises(UserError, match=expected):
        load_setlist(path)
