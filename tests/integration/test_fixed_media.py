"""Fixed-media cues (a cue's sound.media; issue 23): a recording cued at a known tick starts, in a
render, at the first sample of the first block after that tick (found by cross-correlation), fades
or stops as the setlist says when the cue ends, or carries over into the next cue."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from engine.audio.offline import OfflineAudio
from engine.audio.pool import load_audio_file
from engine.audio.sound_settings import build_sound
from engine.clock import VirtualTime
from engine.errors import UserError
from engine.setlist import load_setlist
from engine.show import Show, ShowOptions
from tests.conftest import ROOT
from tests.integration.test_audio_jack import live  # noqa: F401
from tests.integration.test_sound_jack import recorder  # noqa: F401

RATE, BLOCK = 48000, 256
CELLO = ROOT / "assets" / "audio" / "grains" / "smstools_cello-phrase.wav"


def setlist(tmp_path: Path, end: str, extra: str = "") -> Path:
    path = tmp_path / "media.toml"
    path.write_text(f"""title = "media"
pieces = ["builtin"]
[audio]
enabled = true
sample_rate = {RATE}
block_size = {BLOCK}
[sound]
notes = []
[sound.samples]
cello = "{CELLO}"
[sound.instruments.media]
kind = "sampler"
[[cues]]
id = "before"
scene = "blackout"
advance = {{ after = 0.507 }}
[[cues]]
id = "tape"
scene = "blackout"
sound = {{ media = [{{ table = "cello", end = "{end}", fade = 0.5{extra} }}] }}
advance = {{ after = 1.5 }}
[[cues]]
id = "after"
scene = "blackout"
""")
    return path


def render(path: Path, seconds: float) -> tuple[np.ndarray, list[dict]]:
    loaded = load_setlist(path)
    rack, pool = build_sound(path, loaded.settings.audio.mixer_config(), loaded.settings.sound, False,
                             loaded.resolve_path)
    metrics = path.with_suffix(".jsonl")
    try:
        audio = OfflineAudio(rack, pool=pool)
        show = Show(loaded, ShowOptions(duration=seconds, metrics=metrics), VirtualTime(), None, audio=audio)
        assert show.load() == []
        assert show.run().scene_errors == 0
        return audio.samples()[:, 0].astype(np.float64), [json.loads(l) for l in metrics.read_text().splitlines()]
    finally:
        pool.close()


@pytest.mark.parametrize("end", ["stop", "fade", "carry"])
def test_a_recording_cued_at_a_tick_starts_at_the_next_block_and_ends_as_the_setlist_says(tmp_path, end):
    sound, lines = render(setlist(tmp_path, end), 3.0)
    tick = next(line["tick"] for line in lines if line.get("cue") == "tape")
    stamp = tick / 60  # the tick's commands act from its end
    expected = int(np.ceil(stamp * RATE / BLOCK - 1e-9)) * BLOCK
    cello = load_audio_file(CELLO, RATE)
    cello = (cello.mean(axis=1) if cello.ndim == 2 else cello).astype(np.float64)
    probe = cello[RATE // 10:RATE // 10 + RATE // 4]  # a quarter second of it, from 0.1 s in
    window = sound[expected - 2 * BLOCK + RATE // 10:expected + 2 * BLOCK + RATE // 10 + len(probe)]
    scores = np.correlate(window, probe, mode="valid")
    energy = np.sqrt(np.convolve(window ** 2, np.ones(len(probe)), mode="valid"))
    found = expected - 2 * BLOCK + int(np.argmax(scores / np.maximum(energy, 1e-12)))  # normalised
    assert found == expected, f"the recording started {found - expected:+d} samples from the block"
    assert not np.any(sound[:expected - 1])  # silence before it
    gain = float(sound[expected + RATE // 10:expected + RATE // 10 + len(probe)] @ probe / (probe @ probe))
    assert gain == pytest.approx(np.cos(np.pi / 4), rel=0.01)  # centre pan, 0 dB
    ended = next(line["tick"] for line in lines if line.get("cue") == "after") / 60
    stop = int(np.ceil(ended * RATE / BLOCK - 1e-9)) * BLOCK
    tail = {"stop": 0.02, "fade": 0.55, "carry": None}[end]
    later = sound[stop + int(0.6 * RATE):stop + int(0.8 * RATE)]
    if tail is None:
        assert np.abs(later).max() > 0.01  # carried over into the next cue
    else:
        assert not np.any(later), f"still sounding after a {end}"
        if end == "fade":  # half way through the fade: quieter, not silent
            mid = sound[stop + int(0.2 * RATE):stop + int(0.3 * RATE)]
            full = sound[stop - int(0.1 * RATE):stop]
            assert 0.0 < np.sqrt(np.mean(mid ** 2)) < 0.8 * np.sqrt(np.mean(full ** 2))


def test_media_naming_no_sampler_or_no_table_is_one_line(tmp_path):
    path = setlist(tmp_path, "stop")
    path.write_text(path.read_text().replace('table = "cello"', 'table = "viola"'))
    with pytest.raises(UserError, match=r"sound.media.0.table': no table 'viola'"):
        load_setlist(path)
    path = setlist(tmp_path, "stop", ', instrument = "piano"')
    with pytest.raises(UserError, match=r"sound.media.0.instrument': no sampler 'piano'"):
        load_setlist(path)


@pytest.mark.jack
def test_live_a_cued_recording_sounds_within_a_block_of_its_command_through_jack(tmp_path, live, recorder):
    """A live show through PortAudio on the JACK dummy server, heard by a JACK client: the
    recording's first sample is heard within one block of the moment its cue's commands left the
    show (counted in the frames the JACK client captured)."""
    from engine.clock import RealTime
    from tests.integration.test_sound_jack import onset, unless_a_cycle_was_missed

    path = setlist(tmp_path, "stop")
    loaded = load_setlist(path)
    rack, pool = build_sound(path, loaded.settings.audio.mixer_config(), loaded.settings.sound, False,
                             loaded.resolve_path)
    try:
        audio = live(rack, pool)
        show = Show(loaded, ShowOptions(duration=1.2), RealTime(), None, audio=audio)
        assert show.load() == []
        sent: list[int] = []
        cue_media, flush = show._cue_media, audio.flush
        pending = []

        def media(items):  # noting that this tick's commands include the media
            pending.append(bool(items))
            cue_media(items)

        def flushed():
            flush()
            if pending and pending.pop():
                sent.append(recorder.mark())  # the moment the commands left
            pending.clear()

        show._cue_media, audio.flush = media, flushed
        mark, xruns = recorder.mark(), recorder.xruns
        assert show.run().scene_errors == 0
        time.sleep(0.2)
        heard = recorder.since(mark)[:, 0]
    finally:
        pool.close()
    with unless_a_cycle_was_missed(recorder, xruns):
        assert len(sent) == 1, sent
        delay = onset(heard) - (sent[0] - mark)
        # the block after the commands left (0 in three runs here), at most one later
        assert 0 <= delay <= BLOCK, f"heard {delay} frames after its cue's commands left"
