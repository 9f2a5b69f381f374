"""Projection matrices (numpy, 4x4, column vectors) and the slowly orbiting camera of the 3D knots."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def orthographic(left: float, right: float, bottom: float, top: float) -> np.ndarray:
    """Maps the rectangle [left, right] x [bottom, top] of the plane onto the whole frame."""
    m = np.eye(4)
    m[0, 0], m[1, 1] = 2 / (right - left), 2 / (top - bottom)
    m[0, 3], m[1, 3] = -(right + left) / (right - left), -(top + bottom) / (top - bottom)
    return m


def perspective(fov_y_degrees: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1 / math.tan(math.radians(fov_y_degrees) / 2)
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = f / aspect, f
    m[2, 2], m[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    m[3, 2] = -1
    return m


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    eye, target, up = (np.asarray(v, float) for v in (eye, target, up))
    forward = target - eye
    forward /= np.linalg.norm(forward)
    side = np.cross(forward, up)
    side /= np.linalg.norm(side)
    true_up = np.cross(side, forward)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = side, true_up, -forward
    m[:3, 3] = -m[:3, :3] @ eye
    return m


@dataclass
class OrbitCamera:
    """A camera circling the origin: ``degrees_per_second`` around the vertical axis, at
    ``distance`` and ``elevation`` (degrees), looking at the origin."""

    aspect: float = 16 / 9
    distance: float = 4.5
    elevation: float = 20.0
    degrees_per_second: float = 6.0
    fov: float = 45.0

    def mvp(self, time: float) -> np.ndarray:
        """The model-view-projection matrix at ``time`` seconds (interpolated times give smooth motion)."""
        azimuth = math.radians(self.degrees_per_second * time)
        elevation = math.radians(self.elevation)
        eye = self.distance * np.array([math.cos(elevation) * math.sin(azimuth), math.sin(elevation),
                                        math.cos(elevation) * math.cos(azimuth)])
        return perspective(self.fov, self.aspect, 0.1, 100.0) @ look_at(eye, (0, 0, 0))
