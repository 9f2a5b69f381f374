"""Camera: the performer's video, full frame; for checking the camera before a show and as a
backdrop. With no video input it is black."""

from __future__ import annotations

from typing import Literal

import numpy as np

from scenes.ldd.distortions import RGBSplit, SplitSettings
from engine.scene import Scene, SceneParams


class CameraParams(SceneParams):
    fit: Literal["cover", "fit"] = "cover"


class Camera(Scene):
    name = "camera"
    Params = CameraParams

    def load(self) -> None:
        gl = self.context.gl
        if gl is None:
            return
        self.background = RGBSplit(gl, self.context.shaders, self.context.size, SplitSettings(fit=self.params.fit))

    def draw(self, alpha: float) -> None:
        video = self.context.video
        if self.context.gl is None or video is None or video.texture is None:
            return
        self.background.draw(video.texture, np.zeros(3), level=video.level)  # zero split: the plain video

    def status(self) -> dict:
        video = self.context.video
        return {"video_frames": video.uploads} if video is not None else {}
