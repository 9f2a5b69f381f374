"""Part 2: the knot. A left-hand chord starts a new target Lissajous knot and a new approximant;
gradient steps run continuously while the chord is held, and the loss detunes the overtones of the
notes sounding. White target and red learned knot as thick 3D lines under a slowly orbiting camera."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from scenes.ldd.learners import KnotConfig, LearnerGroup
from engine.midi import MidiEvent, NoteOff, NoteOn
from engine.projection import OrbitCamera
from engine.primitives import Polylines
from engine.scene import Scene, SceneParams
from scenes.ldd.chords import ChordDetector
from scenes.ldd.report import TickReport

WHITE, RED = (1.0, 1.0, 1.0, 1.0), (1.0, 0.22, 0.18, 1.0)


class KnotPartParams(SceneParams):
    split: int = Field(60, ge=1, le=127, description="chord notes are under this")
    trigger: Literal["chord", "any_bass"] = Field(
        "chord", description="chord: chord_notes notes under the split within chord_window (the paper); "
                             "any_bass: any note under the split, min_interval apart (the original)")
    chord_notes: int = Field(3, ge=1, le=10)
    chord_window: float = Field(0.08, gt=0, le=2, description="seconds")
    min_interval: float = Field(2.0, ge=0, le=60, description="seconds between knots (any_bass)")
    steps_per_tick: int = Field(1, ge=1, le=1000, description="steps per tick while the chord is held")
    detune_scale: float = Field(1.0, ge=0, le=10, description="detune = scale x loss (the paper and the original: 1)")
    learner: KnotConfig = KnotConfig()
    curve_points: int = Field(1000, ge=16, le=20_000)
    line_width: float = Field(3.0, gt=0, le=50, description="pixels at 720 lines")
    orbit_speed: float = Field(6.0, ge=-360, le=360, description="camera degrees per second")
    orbit_distance: float = Field(4.5, gt=1, le=100)
    orbit_elevation: float = Field(20.0, ge=-89, le=89, description="degrees")


class KnotPart(Scene):
    name = "ldd_knot"
    Params = KnotPartParams

    def load(self) -> None:
        p = self.params
        self.learner = LearnerGroup("knot", p.learner, seed=self.context.seed_for("knot"))
        self.learner.load()
        self.chords = ChordDetector(split=p.split, notes=p.chord_notes, window=p.chord_window,
                                    any_bass=p.trigger == "any_bass", min_interval=p.min_interval)
        width, height = self.context.size
        self.camera = OrbitCamera(aspect=width / height, distance=p.orbit_distance,
                                  elevation=p.orbit_elevation, degrees_per_second=p.orbit_speed)
        if self.context.gl is not None:
            self.lines = Polylines(self.context.gl, self.context.shaders, self.context.size)

    def enter(self) -> None:
        self.learner.reset()
        self.chords.reset()
        self.has_knot = False
        self.time = 0.0
        self.dt = 1 / 60
        self.report = TickReport()

    def on_midi(self, event: MidiEvent) -> bool:
        if isinstance(event, NoteOn):
            if self.chords.note_on(event.note, event.time):
                with self.report.learning():
                    self.learner.renew()
                self.has_knot = True
                self.report.events.append("new_target")
            return True
        if isinstance(event, NoteOff):
            self.chords.note_off(event.note)
            return True
        return False

    def tick(self, dt: float) -> None:
        self.time += dt
        self.dt = dt
        if self.has_knot and self.chords.held:
            count = self.params.steps_per_tick
            with self.report.learning():
                self.learner.step(count)
                loss = float(self.learner.view.loss[0])
            self.context.audio.detune(self.params.detune_scale * loss)  # every sounding note
            self.report.stepped([], loss, count)

    def status(self) -> dict:
        return self.report.status(self.learner, self.has_knot)

    def draw(self, alpha: float) -> None:
        if self.context.gl is None:
            return
        self.draw_knots(alpha)

    def draw_knots(self, alpha: float) -> None:
        if not self.has_knot:
            return
        mvp = self.camera.mvp(self.time + alpha * self.dt)
        width = self.params.line_width * self.context.size[1] / 720
        count = self.params.curve_points
        self.lines.draw(self.learner.curve(0, "target", count), WHITE, width, mvp, closed=True)
        self.lines.draw(self.learner.curve(0, count=count), RED, width, mvp, closed=True)
