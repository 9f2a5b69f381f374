"""Fixed media from the grain tools: a granulator of the rack rendered offline, at load, into a
table of the sample pool, for a sampler to play under the live performer (the way the grain
tools' output became the fixed media of "approximations").

The render runs the granulator's own code on a rack of its own (the same settings, the same pool,
its own seed), so it sounds as the live instrument would and is identical in every run.
"""

from __future__ import annotations

import math

import numpy as np

from engine.audio import command_ring as cmd
from engine.audio.control import AudioOut
from engine.audio.rack import Rack, RackConfig

FADE = 0.05  # seconds: the tape fades out over its last 50 ms (it never ends on a click)


def render_tape(audio: AudioOut, source: str, seconds: float, note: int = 60,
                settings: dict[str, float | str] | None = None) -> np.ndarray:
    """``seconds`` of instrument ``source`` of ``audio``'s rack holding ``note`` at full
    velocity, with ``settings`` (parameter -> value or choice name; ``table`` by name) set first:
    a (frames, 2) float32 array at the show's rate. ValueError naming what is wrong."""
    config = audio.rack
    try:
        spec = config.instruments[config.slot(source)]
    except KeyError:
        known = ", ".join(spec.name for spec in config.instruments) or "none"
        raise ValueError(f"no instrument '{source}' in the rack (instruments: {known})") from None
    rack = Rack(RackConfig(sample_rate=config.sample_rate, block_size=config.block_size,
                           tuning=config.tuning, tuning_root=config.tuning_root,
                           reference_hz=config.reference_hz, reference_note=config.reference_note,
                           buses={"tape": 0.0}, instruments=[spec.model_copy(update={"bus": "tape"})],
                           modules=config.modules), audio.pool)
    instrument = rack.instruments[0]
    kind = type(instrument)
    for name, value in (settings or {}).items():
        if name not in kind.parameters:
            raise ValueError(f"instrument '{source}' ({kind.kind}) has no parameter '{name}'; "
                             f"parameters: {', '.join(kind.parameters)}")
        if name == "table" and isinstance(value, str):
            value = audio.table(value)
        rack.apply(cmd.SET, 0, kind.parameters.index(name), kind.parameter_number(name, value), 0)
    rack.apply(cmd.NOTE_ON, cmd.SCENE_VOICES, int(note), 127.0, 0)
    frames = int(round(seconds * config.sample_rate))
    block = config.block_size
    out = np.zeros((math.ceil(frames / block) * block, 2), np.float32)
    for start in range(0, len(out), block):
        out[start:start + block] = rack.render()
    out = out[:frames]
    fade = min(frames, int(FADE * config.sample_rate))
    if fade:
        out[frames - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)[:, None]
    return out
