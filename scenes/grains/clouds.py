"""Grain clouds from the piano: every note plays a cloud of grains of a recording, and the picture
shows the recording's waveform with every sounding grain drawn where it reads.

The cue routes the piano to a granulator of the rack (``sound.notes``), so each note starts a cloud
at its pitch, its velocity giving the level (the granulator's own note handling, live from the
port in the audio process). The scene plays the rest of the instrument:

- the left hand (notes below ``split``, middle C by default): the octave under the split picks
  ``sources[0]``, the one under it ``sources[1]`` and so on (cycling); the key's place in its
  octave the position (the split's pitch class at the start, a semitone below it at 11/12);
- the sustain pedal freezes the position (scan 0; it also holds the clouds), up it moves at
  ``scan``; the soft pedal thins the cloud, from ``density`` (up) to ``soft_density`` (down),
  following the pedal's position on a log scale;
- the grain knobs (duration, deviations, level) are the scene's parameters: MIDI learn and OSC
  move them live, and the scene sends a change to the instrument at the tick it happens.

``tape``: fixed media. At load, a granulator of the rack (the grain tools: hold, pulse, salad) is
rendered offline into a table of the pool (:mod:`scenes.grains.tape`); a sampler plays it from the
cue's start, under the live clouds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field

from engine.audio import command_ring as cmd
from engine.audio.granular_kernels import V_ENVELOPE, V_LEVEL, V_PAN, V_POSITION, V_TABLE
from engine.midi import MidiEvent, NoteOn
from engine.scene import Scene, SceneParams
from scenes.grains.tape import render_tape

TAPE_VOICE = cmd.SCENE_VOICES + 4096  # the sampler voice the tape plays on
# The knobs the scene sends to the granulator when they change (scene parameter = its name).
KNOBS = ("duration", "duration_deviation", "position_deviation", "pitch_deviation",
         "pan_deviation", "gain_db")


class TapeParams(SceneParams):
    source: str = Field(description="the granulator of the rack whose output becomes the tape")
    table: str = Field(description="the pool table the tape is rendered into ([sound.tables])")
    player: str = Field("tape", description="the sampler of the rack that plays the tape")
    seconds: float = Field(30.0, gt=0, le=600, description="length of the tape")
    note: int = Field(60, ge=0, le=127, description="the note the render holds")
    settings: dict[str, float | str] = Field(default_factory=dict,
                                             description="the source's parameters for the render")
    gain: float = Field(0.7, ge=0, le=4, description="linear level of the tape")
    loop: bool = Field(False, description="loop the tape (else it plays once)")


class GrainCloudsParams(SceneParams):
    instrument: str = Field("grains", description="the granulator the piano plays")
    sources: list[str] = Field(default_factory=list, max_length=64,
                               description="tables the left hand picks from (empty: the instrument's table)")
    split: int = Field(60, ge=0, le=128, description="notes below it are the left hand (0: none)")
    density: float = Field(200.0, gt=0, le=20000, description="grains per second, soft pedal up")
    soft_density: float = Field(20.0, gt=0, le=20000, description="grains per second, soft pedal down")
    scan: float = Field(0.0, ge=-100, le=100, description="table lengths per second, sustain pedal up")
    duration: float = Field(0.08, ge=0.001, le=10, description="seconds")
    duration_deviation: float = Field(0.2, ge=0, le=1, description="fraction of the duration")
    position_deviation: float = Field(0.02, ge=0, le=1, description="fraction of the table")
    pitch_deviation: float = Field(0.1, ge=0, le=48, description="semitones")
    pan_deviation: float = Field(0.5, ge=0, le=1, description="pan units")
    gain_db: float = Field(0.0, ge=-60, le=12, description="the instrument's level, dB")
    tape: TapeParams | None = None


class GrainClouds(Scene):
    name = "grain_clouds"
    Params = GrainCloudsParams

    def load(self) -> None:
        audio = self.context.audio
        params = self.params
        spec = audio.rack.instruments[audio.instrument(params.instrument).slot]  # KeyError naming them
        if spec.kind != "granulator":
            raise ValueError(f"instrument '{params.instrument}' is a {spec.kind}, not a granulator")
        self.source_slots = [audio.table(name) for name in params.sources]  # KeyError naming the tables
        self.tape = None
        if params.tape is not None:
            self._load_tape(params.tape)
        from scenes.grains.picture import Picture

        self.picture = Picture(self.context) if self.context.gl is not None else None
        self._reset()

    def _load_tape(self, tape: TapeParams) -> None:
        audio = self.context.audio
        player = audio.rack.instruments[audio.instrument(tape.player).slot]
        if player.kind != "sampler":
            raise ValueError(f"tape player '{tape.player}' is a {player.kind}, not a sampler")
        slot = audio.table(tape.table)
        needed = int(round(tape.seconds * audio.rack.sample_rate))
        if audio.pool.capacity(slot) < needed:
            raise ValueError(f"table '{tape.table}' holds {audio.pool.capacity(slot)} frames; the "
                             f"tape needs {needed} ({tape.seconds:g} s): give it seconds = "
                             f"{tape.seconds:g} in [sound.tables]")
        self.tape = render_tape(audio, tape.source, tape.seconds, tape.note, tape.settings)
        audio.pool.fill(slot, self.tape)  # before the show: nothing plays the table yet

    def _reset(self) -> None:
        self.sent: dict[str, float | int] = {}
        self.source = 0
        self.position = 0.0
        self.notes = 0
        self.view = np.zeros((0, 6))

    def enter(self) -> None:
        self._reset()
        self._send_all()
        tape = self.params.tape
        if tape is not None:
            self.context.audio.instrument(tape.player).play(tape.table, TAPE_VOICE, gain=tape.gain,
                                                            loop=tape.loop)

    def exit(self) -> None:
        tape = self.params.tape
        if tape is not None:
            self.context.audio.instrument(tape.player).stop(TAPE_VOICE)

    def on_midi(self, event: MidiEvent) -> bool:
        if not isinstance(event, NoteOn):
            return False
        self.notes += 1
        split = self.params.split
        if event.note < split:
            self.position = ((event.note - split) % 12) / 12.0
            if self.source_slots:
                self.source = ((split - 1 - event.note) // 12) % len(self.source_slots)
            self._send_all()
        return True

    def _targets(self) -> dict[str, float | int]:
        """Every value the scene plays the instrument with, as of now."""
        params, pedals = self.params, self.context.pedals
        soft = pedals.soft / 127.0
        density = math.exp(math.log(params.density) * (1.0 - soft) + math.log(params.soft_density) * soft)
        targets: dict[str, float | int] = {knob: getattr(params, knob) for knob in KNOBS}
        targets["density"] = round(density, 3)
        targets["scan"] = 0.0 if pedals.sustain_down else params.scan
        targets["position"] = self.position
        if self.source_slots:
            targets["table"] = self.source_slots[self.source]
        return targets

    def _send_all(self) -> None:
        """Send what changed since it was last sent (through the audio the scene has now: a
        warm-up's goes nowhere)."""
        instrument = self.context.audio.instrument(self.params.instrument)
        for name, value in self._targets().items():
            if self.sent.get(name) != value:
                instrument.set(name, value)
                self.sent[name] = value

    def tick(self, dt: float) -> None:
        self._send_all()
        self.view = self.context.audio.view(self.params.instrument)

    def draw(self, alpha: float) -> None:
        if self.picture is not None:
            self.picture.draw(self)

    def shown_table(self) -> int:
        """The pool slot the picture shows: the source the left hand picked (or the table most of
        the sounding grains read)."""
        if self.source_slots:
            return self.source_slots[self.source]
        if "table" in self.sent:
            return int(self.sent["table"])
        tables = self.view[:, V_TABLE].astype(int)
        return int(np.bincount(tables).argmax()) if tables.size else -1

    def grains(self) -> dict[str, np.ndarray]:
        """The sounding grains of the shown table: where each reads, its window's value, level
        and balance (for the picture, and for tests)."""
        rows = self.view[self.view[:, V_TABLE].astype(int) == self.shown_table()]
        return {"position": rows[:, V_POSITION], "envelope": rows[:, V_ENVELOPE],
                "level": rows[:, V_LEVEL], "pan": rows[:, V_PAN]}

    def status(self) -> dict[str, Any]:
        return {"grains": int(len(self.view)), "position": round(self.position, 4),
                "source": self.params.sources[self.source] if self.params.sources else None,
                "density": self.sent.get("density"), "frozen": self.context.pedals.sustain_down}
