"""The rack: instruments on buses, routing, and an instrument that fails while the others play on."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from engine.audio import command_ring as cmd
from engine.audio.instrument import Instrument, instrument_class, known_instruments
from engine.audio.rack import InstrumentSpec, Rack, RackConfig

RATE, BLOCK = 48000, 256


class Broken(Instrument):
    """Raises in whatever hook ``fail_in`` names (a stand-in for a bug in a piece's instrument)."""

    kind = "test_broken"
    fail_in = "render"

    def note_on(self, voice, note, velocity):
        self.sounding_notes = getattr(self, "sounding_notes", 0) + 1
        if self.fail_in == "note_on":
            raise RuntimeError("broken note_on")

    def render(self, left, right):
        left += 0.5  # a half-written block, then the fault
        if self.fail_in == "render":
            raise RuntimeError("broken render")

    def idle(self):
        return not getattr(self, "sounding_notes", 0)


def rack(*specs: tuple[str, str, str], notes=None, **settings) -> Rack:
    instruments = [InstrumentSpec(name=name, kind=kind, bus=bus,
                                  settings=settings.get(name, {})) for name, kind, bus in specs]
    buses = {}
    for _, _, bus in specs:
        buses.setdefault(bus, 0.0)
    return Rack(RackConfig(buses=buses, instruments=instruments,
                           notes=[s[0] for s in specs] if notes is None else notes))


def render(mixer: Rack, seconds: float) -> np.ndarray:
    return np.concatenate([mixer.render().copy() for _ in range(int(seconds * RATE / BLOCK))])


def tones(partials: int = 1) -> dict:
    return {"partials": partials, "envelope": "adsr", "attack": 0.005, "sustain": 1.0, "release": 0.05}


def test_the_built_in_instruments_are_registered_by_kind():
    assert {"overtones", "piano", "sampler"} <= set(known_instruments())
    assert instrument_class("sampler").kind == "sampler"
    with pytest.raises(KeyError):
        instrument_class("theremin")


@pytest.mark.parametrize("fail_in", ["render", "note_on"])
def test_an_instrument_that_raises_is_silenced_and_the_others_play_on(fail_in, monkeypatch, caplog):
    monkeypatch.setattr(Broken, "fail_in", fail_in)
    mixer = rack(("broken", "test_broken", "a"), ("tones", "overtones", "b"), tones=tones())
    with caplog.at_level(logging.ERROR, logger="showrunner.audio"):
        mixer.apply(cmd.NOTE_ON, 69, 69, 100.0)
        first = render(mixer, 0.1)
        mixer.apply(cmd.NOTE_ON, 72, 72, 100.0)
        later = render(mixer, 0.2)
    assert mixer.broken == [True, False]
    if fail_in == "render":  # only the fault's own block heard its half-written sound
        assert np.abs(first[BLOCK:, 0].mean()) < 0.05
    assert sum("instrument 'broken'" in r.message for r in caplog.records) == 1  # logged once
    tail = later[-int(0.1 * RATE):, 0]
    assert np.abs(tail).max() > 0.05, "the healthy instrument went quiet"
    # What is heard is the overtones alone: the broken instrument adds nothing after its fault.
    alone = rack(("tones", "overtones", "b"), tones=tones())
    alone.apply(cmd.NOTE_ON, 69, 69, 100.0)
    render(alone, 0.1)
    alone.apply(cmd.NOTE_ON, 72, 72, 100.0)
    assert np.array_equal(render(alone, 0.2)[-int(0.1 * RATE):, 0], tail)


def test_a_scene_addressed_note_reaches_only_its_instrument():
    mixer = rack(("a", "overtones", "one"), ("b", "overtones", "two"), notes=[],
                 a=tones(), b=tones())
    mixer.apply(cmd.NOTE_ON, cmd.SCENE_VOICES + 60, 60, 100.0, target=1)
    render(mixer, 0.05)
    assert (mixer.instruments[0].sounding(), mixer.instruments[1].sounding()) == (0, 1)
    mixer.apply(cmd.NOTE_ON, 60, 60, 100.0)  # a played note: routed to nothing
    assert (mixer.instruments[0].sounding(), mixer.instruments[1].sounding()) == (0, 1)


def test_route_commands_replace_the_routing():
    mixer = rack(("a", "overtones", "one"), ("b", "overtones", "two"), a=tones(), b=tones())
    assert mixer.routes == [0, 1]
    mixer.apply(cmd.ROUTE, cmd.ALL_VOICES, target=cmd.RACK)
    mixer.apply(cmd.ROUTE, 1, value=1.0, target=cmd.RACK)
    assert mixer.routes == [1]
    mixer.apply(cmd.NOTE_ON, 60, 60, 100.0)
    assert (mixer.instruments[0].sounding(), mixer.instruments[1].sounding()) == (0, 1)


def test_the_sustain_pedal_lifts_on_every_instrument_even_after_a_routing_change():
    mixer = rack(("a", "overtones", "one"), ("b", "overtones", "two"), a=tones(), b=tones())
    mixer.apply(cmd.SUSTAIN, value=127)
    mixer.apply(cmd.NOTE_ON, 60, 60, 100.0)
    mixer.apply(cmd.NOTE_OFF, 60, 60)  # held by the pedal
    mixer.apply(cmd.ROUTE, cmd.ALL_VOICES, target=cmd.RACK)  # routed to nothing now
    mixer.apply(cmd.SUSTAIN, value=0)
    render(mixer, 0.2)
    assert mixer.voices_sounding() == 0


def test_a_gain_on_a_bus_scales_only_its_instruments():
    mixer = rack(("a", "overtones", "one"), ("b", "overtones", "two"), notes=["a"], a=tones(), b=tones())
    mixer.apply(cmd.NOTE_ON, 69, 69, 100.0)
    before = render(mixer, 0.1)[-BLOCK:, 0]
    mixer.apply(cmd.GAIN, 2, value=-20.0)  # bus "two": nothing plays there
    mixer.apply(cmd.GAIN, 1, value=-6.0)  # bus "one"
    render(mixer, 0.02)
    after = render(mixer, 0.1)[-BLOCK:, 0]
    assert np.abs(after).max() == pytest.approx(np.abs(before).max() * 10 ** (-6 / 20), rel=0.05)


def test_a_command_whose_numbers_are_not_finite_is_dropped_and_the_next_ones_play():
    mixer = rack(("tones", "overtones", "b"), tones=tones())
    mixer.apply_record((cmd.NOTE_ON, cmd.ROUTED, float("nan"), 60, 100.0, 0, 0, 0))
    mixer.apply_record((cmd.NOTE_ON, cmd.ROUTED, 60, 60, 100.0, 0, 0, 0))
    assert mixer.voices_sounding() == 1


def test_a_note_beyond_the_keyboard_does_not_break_the_sampler():
    from engine.audio.pool import SamplePool

    pool = SamplePool.create(RATE * 4)
    try:
        slot = pool.allocate("tone", RATE, 1)
        pool.fill(slot, np.sin(np.arange(RATE) / 10.0).astype(np.float32))
        mixer = Rack(RackConfig(buses={"s": 0.0}, instruments=[InstrumentSpec(
            name="s", kind="sampler", bus="s", settings={"table": slot})], notes=["s"]), pool)
        mixer.apply(cmd.NOTE_ON, 200, 200, 100.0)  # a scene's bug: note 200
        render(mixer, 0.05)
        assert mixer.broken == [False] and mixer.voices_sounding() == 1
    finally:
        pool.close()
