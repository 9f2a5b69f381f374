"""engine.midi_file reads a file's times itself (mido's own iteration copies every message three
times): they must be mido's, to the last bit, or a restarted or re-rendered show would place its
notes on other ticks."""

from __future__ import annotations

import random

import mido
import pytest

from engine.midi_file import _timed


def _file(seed: int, kind: int) -> mido.MidiFile:
    """A type ``kind`` file of random notes, tempo changes in the first track (and, in type 1, an
    odd one in another), end-of-track markers late or early, and many messages on one tick."""
    chance = random.Random(seed)
    midi = mido.MidiFile(type=kind, ticks_per_beat=chance.choice([96, 384, 480, 960]))
    for number in range(1 if kind == 0 else chance.randint(2, 4)):
        track = mido.MidiTrack()
        for _ in range(chance.randint(0, 200)):
            delta = chance.choice([0, 0, 1, 7, 120, 481, 5000])
            roll = chance.random()
            if roll < 0.1 and (number == 0 or roll < 0.02):
                track.append(mido.MetaMessage("set_tempo", tempo=chance.randint(200_000, 1_500_000), time=delta))
            elif roll < 0.15:
                track.append(mido.Message("control_change", control=64, value=chance.randint(0, 127), time=delta))
            else:
                track.append(mido.Message("note_on", note=chance.randint(21, 108), velocity=chance.randint(0, 127),
                                          channel=chance.randint(0, 15), time=delta))
        track.append(mido.MetaMessage("end_of_track", time=chance.choice([0, 3, 10_000])))
        midi.tracks.append(track)
    return midi


@pytest.mark.parametrize("seed", range(40))
def test_times_are_midos_to_the_last_bit(seed: int) -> None:
    midi = _file(seed, 0 if seed % 4 == 0 else 1)
    expected, now = [], 0.0
    for message in midi:
        now += message.time
        expected.append((now, message.copy(time=0)))
    got = [(at, message.copy(time=0)) for at, message in _timed(midi)]
    assert [at for at, _ in got] == [at for at, _ in expected]  # exact floats, not approx
    assert [m for _, m in got] == [m for _, m in expected]


def test_an_empty_file_has_its_end_only() -> None:
    midi = mido.MidiFile(type=1)
    assert [(at, m.type) for at, m in _timed(midi)] == [(0.0, "end_of_track")] \
        == [(message.time, message.type) for message in midi]
