"""Parts 3 and 4: the knot and the cubic over the performer's video, distorted by the gradients.

Part 3: part 2 with the video behind it, its R, G and B translated by the first three gradient
components (Distortion 1). Part 4: part 1 with the video behind it and a bubble per note played,
the video inside each displaced by the first two gradient components (Distortion 2)."""

from __future__ import annotations

import numpy as np

from scenes.ldd.distortions import BubbleLens, BubbleSettings, RGBSplit, SplitSettings
from engine.midi import NoteOn
from scenes.ldd.cubic import CubicPart, CubicPartParams
from scenes.ldd.knot import KnotPart, KnotPartParams


class SplitPartParams(KnotPartParams):
    rgb_split: SplitSettings = SplitSettings()


class SplitPart(KnotPart):
    name = "ldd_split"
    Params = SplitPartParams

    def load(self) -> None:
        super().load()
        if self.context.gl is not None:
            self.split = RGBSplit(self.context.gl, self.context.shaders, self.context.size,
                                  self.params.rgb_split, seed=self.context.seed_for("flicker"))

    def draw(self, alpha: float) -> None:
        if self.context.gl is None:
            return
        video = self.context.video
        if video is not None and video.texture is not None:
            loss = float(self.learner.view.loss[0]) if self.has_knot else 0.0
            grad = self.learner.view.grad[0] if self.has_knot else ()  # the split takes the first three
            self.split.draw(video.texture, grad, loss=loss, level=video.level)
        self.draw_knots(alpha)


class BubblesPartParams(CubicPartParams):
    bubbles: BubbleSettings = BubbleSettings()


class BubblesPart(CubicPart):
    name = "ldd_bubbles"
    Params = BubblesPartParams

    def load(self) -> None:
        super().load()
        if self.context.gl is not None:
            gl, shaders, size = self.context.gl, self.context.shaders, self.context.size
            self.backdrop = RGBSplit(gl, shaders, size, SplitSettings(fit=self.params.bubbles.fit))
            self.lens = BubbleLens(gl, shaders, size, self.params.bubbles, seed=self.context.seed_for("bubbles"))
        self.time = 0.0

    def enter(self) -> None:
        super().enter()
        self.time = 0.0
        if self.context.gl is not None:
            self.lens.reset(seed=self.context.seed_for("bubbles"))

    def note_on(self, event: NoteOn) -> None:
        super().note_on(event)
        if self.context.gl is not None:
            self.lens.spawn()

    def tick(self, dt: float) -> None:
        super().tick(dt)
        self.time += dt
        if self.context.gl is not None:
            self.lens.tick()

    def draw(self, alpha: float) -> None:
        if self.context.gl is None:
            return
        video = self.context.video
        if video is not None and video.texture is not None:
            self.backdrop.draw(video.texture, np.zeros(3), level=video.level)
            grad = self.learner.view.grad[0] if self.has_curve else ()  # the lens takes the first two
            self.lens.draw(video.texture, grad, self.time, level=video.level)
        self.draw_curves()
