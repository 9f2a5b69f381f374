"""Part 1: the cubic. A bass note starts a new target polynomial and a new approximant; every note on
the upper half of the piano induces one gradient step, and that step's loss detunes the played
note's overtones. Target white, learned red, on black; earlier curves freeze, grey out and fade."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from scenes.ldd.learners import CubicConfig, LearnerGroup
from engine.midi import MidiEvent, NoteOff, NoteOn
from engine.projection import orthographic
from engine.primitives import FadingCurves, Points, Polylines
from engine.scene import Scene, SceneParams
from scenes.ldd.report import TickReport

WHITE, RED = (1.0, 1.0, 1.0, 1.0), (1.0, 0.22, 0.18, 1.0)


class CubicPartParams(SceneParams):
    split: int = Field(48, ge=1, le=127, description="notes under this are bass notes (new target)")
    steps: Literal["per_note", "while_held"] = Field(
        "per_note", description="per_note: one step per upper note (the paper); while_held: "
                                "steps_per_tick steps every tick while an upper note is held (the original)")
    steps_per_tick: int = Field(1, ge=1, le=1000)
    detune_scale: float = Field(1.0, ge=0, le=10, description="detune = scale x loss (the paper: 1; "
                                                              "the original sent 0.05 x its error)")
    start_on_any_note: bool = Field(False, description="the original: while no curve exists, any note starts one")
    learner: CubicConfig = CubicConfig()
    curve_points: int = Field(512, ge=16, le=20_000)
    line_width: float = Field(3.0, gt=0, le=50, description="pixels at 720 lines")
    y_range: float = Field(2.5, gt=0, description="the view shows y in [-y_range, y_range]")
    trail_decay: float = Field(0.999, gt=0, le=1, description="alpha factor per tick of earlier curves")
    trail_points: int = Field(128, ge=8, le=20_000, description="points kept per earlier curve")
    trail_spin: float = Field(0.02, ge=-10, le=10, description="degrees per tick earlier curves turn")
    sample_dots: bool = Field(True, description="dots on the sample points, with a segment to the learned value")


class CubicPart(Scene):
    name = "ldd_cubic"
    Params = CubicPartParams

    def load(self) -> None:
        p = self.params
        self.learner = LearnerGroup("cubic", p.learner, seed=self.context.seed_for("cubic"))
        self.learner.load()
        self.trail = FadingCurves(decay=p.trail_decay, spin=p.trail_spin)
        gl = self.context.gl
        if gl is not None:
            self.lines = Polylines(gl, self.context.shaders, self.context.size)
            self.points = Points(gl, self.context.shaders)
        # x in [-1, 1] across the frame (with a margin), y in [-y_range, y_range]
        self.mvp = orthographic(-1.08, 1.08, -p.y_range, p.y_range)

    def enter(self) -> None:
        self.learner.reset()
        self.trail.clear()
        self.has_curve = False
        self.held_upper: set[tuple[int, int]] = set()
        self.stepping: list[tuple[int, int, int]] = []  # this tick's upper notes not yet stepped
        self.report = TickReport()

    # Performance ----------------------------------------------------------------------------------
    def on_midi(self, event: MidiEvent) -> bool:
        if isinstance(event, NoteOn):
            self.note_on(event)
            return True
        if isinstance(event, NoteOff):
            self.held_upper.discard((event.note, event.channel))
            return True
        return False

    def note_on(self, event: NoteOn) -> None:
        if event.note < self.params.split or (not self.has_curve and self.params.start_on_any_note):
            self.new_curve()
            return
        self.held_upper.add((event.note, event.channel))
        if self.has_curve and self.params.steps == "per_note":
            # stepped with the tick's others, its detune sent at its place among the tick's sounds
            self.stepping.append((event.note, event.channel, self.context.audio.position))

    def step_notes(self) -> None:
        """One step per upper note of this tick, in order, in one learner call; each step's own
        loss detunes its note (as a call per note would, bit for bit, without its cost: a burst
        of notes costs about what one does)."""
        if not self.stepping:
            return
        notes, self.stepping = self.stepping, []
        with self.report.learning():
            losses = self.learner.step_each(len(notes))[:, 0]
        for (note, channel, at), loss in zip(notes, losses.tolist()):
            self.context.audio.detune(self.params.detune_scale * loss, note=note, channel=channel, at=at)
            self.report.stepped([note], loss, 1)

    def new_curve(self) -> None:
        self.step_notes()  # the notes played before this one step the curve they were played on
        if self.has_curve:
            self.trail.freeze(self.learner.curve(0, count=self.params.trail_points))
        with self.report.learning():
            self.learner.renew()
        self.has_curve = True
        self.report.events.append("new_target")

    def step(self, notes: list[tuple[int, int]], count: int) -> None:
        """``count`` gradient steps; their last loss detunes ``notes``."""
        with self.report.learning():
            self.learner.step(count)
            loss = float(self.learner.view.loss[0])
        detune = self.params.detune_scale * loss
        for note, channel in notes:
            self.context.audio.detune(detune, note=note, channel=channel)
        self.report.stepped([note for note, _ in notes], loss, count)

    def tick(self, dt: float) -> None:
        self.step_notes()
        self.trail.tick()
        if self.has_curve and self.params.steps == "while_held" and self.held_upper:
            self.step(sorted(self.held_upper), self.params.steps_per_tick)

    def status(self) -> dict:
        return self.report.status(self.learner, self.has_curve)

    # Picture --------------------------------------------------------------------------------------
    def draw(self, alpha: float) -> None:
        if self.context.gl is None:
            return
        self.draw_curves()

    def draw_curves(self) -> None:
        width = self.params.line_width * self.context.size[1] / 720
        self.trail.draw(self.lines, width * 0.7, self.mvp)
        if not self.has_curve:
            return
        count = self.params.curve_points
        target, learned = self.learner.curve(0, "target", count), self.learner.curve(0, count=count)
        if self.params.sample_dots:
            x = self.learner.points()[0]
            view = self.learner.view
            wanted = np.column_stack([x, np.polyval(view.target[0], x)])
            got = np.column_stack([x, np.polyval(view.params[0], x)])
            self.lines.draw_segments(wanted, got, (1.0, 1.0, 1.0, 0.35), max(1.0, width / 3), self.mvp)
            self.points.draw(wanted, WHITE, 2.2 * width, self.mvp)
        self.lines.draw(target, WHITE, width, self.mvp)
        self.lines.draw(learned, RED, width, self.mvp)
