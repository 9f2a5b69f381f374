"""Grain tools in a setlist: salad tables by name (checked at load, resolved with the pool) and
choice parameters by name in a cue's sound.settings and a scene's set()."""

from __future__ import annotations

import numpy as np
import pytest

from engine.audio import command_ring as cmd
from engine.audio.config import MixerConfig
from engine.audio.control import NoAudio
from engine.audio.pool import SamplePool
from engine.audio.sound_settings import CueSound, SoundSettings, _rack, check_sound
from engine.errors import UserError

SALAD = {"kind": "granulator", "mode": "salad", "tables": ["drums", "voice"],
         "harmonic_tables": ["drums.harmonic", ""]}


def _sound(**instrument) -> SoundSettings:
    return SoundSettings(instruments={"grains": {**SALAD, **instrument}},
                         tables={"drums": {"seconds": 1}, "voice": {"seconds": 1},
                                 "drums.harmonic": {"seconds": 1}})


def test_salad_tables_named_in_the_setlist_are_checked_when_it_loads():
    check_sound("show.toml", MixerConfig(), _sound(), [])
    with pytest.raises(UserError, match=r"^show.toml: field 'sound.instruments.grains.tables': "
                                        r"no table 'bells' in \[sound.samples\] or \[sound.tables\]$"):
        check_sound("show.toml", MixerConfig(), _sound(tables=["drums", "bells"]), [])
    with pytest.raises(UserError, match=r"field 'sound.instruments.grains.harmonic_tables': "
                                        r"no table 'voice.harmonic'"):
        check_sound("show.toml", MixerConfig(), _sound(harmonic_tables=["", "voice.harmonic"]), [])


def test_salad_table_names_become_pool_slots_when_the_rack_is_built():
    pool = SamplePool.create(48000 * 8, max_tables=8)
    try:
        for name in ("filler", "drums", "voice", "drums.harmonic"):
            pool.allocate(name, 4800, 1)
        rack = _rack("show.toml", MixerConfig(), _sound(), pool)
        [spec] = rack.instruments
        names = pool.names()
        assert spec.settings["tables"] == [names["drums"], names["voice"]]
        assert spec.settings["harmonic_tables"] == [names["drums.harmonic"], -1]
    finally:
        pool.close()


def test_a_cue_sets_choices_by_name_or_number_and_a_wrong_name_is_a_setlist_error():
    good = CueSound(settings={"grains": {"window": "hann", "mode": "salad", "timing": "sync",
                                         "density": 40, "pitch": 2.0}})
    check_sound("show.toml", MixerConfig(), _sound(), [("cue 'a' (#1)", good)])
    check_sound("show.toml", MixerConfig(), _sound(),
                [("cue 'a' (#1)", CueSound(settings={"grains": {"window": 2}}))])
    bad = CueSound(settings={"grains": {"window": "square"}})
    with pytest.raises(UserError, match=r"^show.toml: cue 'a' \(#1\): field "
                                        r"'sound.settings.grains.window': one of 'hann', 'tukey', "
                                        r"'expodec', 'table' \(or its index 0..3\), not 'square'$"):
        check_sound("show.toml", MixerConfig(), _sound(), [("cue 'a' (#1)", bad)])
    with pytest.raises(UserError, match=r"'sound.settings.grains.density': a number, not 'fast'"):
        check_sound("show.toml", MixerConfig(), _sound(),
                    [("cue 'a' (#1)", CueSound(settings={"grains": {"density": "fast"}}))])


def test_a_scene_sets_a_choice_by_name_and_it_is_sent_as_its_index():
    from engine.audio.sound_settings import instrument_specs
    from engine.audio.rack import RackConfig

    specs = instrument_specs("show.toml", SoundSettings(instruments={"grains": {"kind": "granulator"}}))
    audio = NoAudio(RackConfig(buses={"grains": 0.0}, instruments=specs, notes=["grains"]))
    grains = audio.instrument("grains")
    grains.set("window", "expodec")
    grains.set("mode", 1)
    assert audio.take_sent()[-2:] == [["set", "grains", "window", 2.0], ["set", "grains", "mode", 1.0]]
    with pytest.raises(ValueError, match="parameter 'window': one of"):
        grains.set("window", "square")
