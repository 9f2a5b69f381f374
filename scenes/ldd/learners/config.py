"""Learner settings: the original piece's defaults, every one overridable from a cue's params.

Scenes embed these models in their own ``Params`` (for example ``learner: CubicConfig``); a setlist
then writes ``[cues.params.learner]`` with any of the fields below. Unknown keys are errors.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _LearnerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: float = Field(gt=0, description="gradient descent step size")
    learning_rate_halflife: float | None = Field(
        None, gt=0, description="steps after which the step size halves (counted from each new "
                                "approximant); unset keeps it constant, as the paper")
    stop_below: float = Field(ge=0, description="learning stops when a step's loss is under this; 0 never stops")
    epsilon: float = Field(1e-16, gt=0, le=1e-2,
                           description="added inside the loss's square root so its gradient is never NaN; "
                                       "the loss cannot fall under sqrt(epsilon)")
    divergence_limit: float = Field(1e3, gt=0, description="a parameter beyond +-this counts as diverged: "
                                                            "the learner is reset to a fresh approximant")

    @model_validator(mode="after")
    def _check(self) -> _LearnerConfig:
        if not math.isfinite(self.learning_rate):
            raise ValueError("learning_rate must be a finite number")
        for name in type(self).model_fields:
            if not name.endswith("_range"):
                continue
            low, high = getattr(self, name)
            if not (low <= high if name == "frequency_range" else low < high):
                raise ValueError(f"{name}: the low end must be under the high end, got [{low}, {high}]")
            if name != "x_range" and max(abs(low), abs(high)) >= self.divergence_limit:
                raise ValueError(f"{name} [{low}, {high}] reaches divergence_limit {self.divergence_limit}")
        if self.stop_below and self.stop_below <= math.sqrt(self.epsilon):
            raise ValueError(f"stop_below {self.stop_below} is at or under sqrt(epsilon) = "
                             f"{math.sqrt(self.epsilon):g}, the lowest loss possible: learning would never stop")
        return self


class CubicConfig(_LearnerConfig):
    """Fit f(x) = a x^3 + b x^2 + c x + d; the defaults are the original's."""

    samples: int = Field(100, ge=1, le=100_000, description="x values per target, drawn uniformly in x_range")
    x_range: tuple[float, float] = (-1.0, 1.0)
    coefficient_range: tuple[float, float] = Field((-1.0, 1.0), description="target a, b, c, d: uniform in this")
    init_range: tuple[float, float] = Field((-1.0, 1.0), description="a new approximant's theta: uniform in this")
    learning_rate: float = Field(0.01, gt=0)
    stop_below: float = Field(1e-3, ge=0)


class KnotConfig(_LearnerConfig):
    """Fit the phases of a Lissajous knot (cos(n_x t + a), cos(n_y t + b), cos(n_z t + c))."""

    frequency_range: tuple[int, int] = Field(
        (1, 8), description="target n_x, n_y, n_z: integers drawn uniformly, both ends included (0 flattens an axis)")
    phase_range: tuple[float, float] = Field((0.0, 1.0), description="target a, b, c (radians): uniform in this")
    init_range: tuple[float, float] = Field((0.0, 1.0), description="a new approximant's phases: uniform in this")
    t_max: float = Field(100.0, gt=0, le=10_000, description="the knot is sampled at t = 0, t_step, ... < t_max")
    t_step: float = Field(0.1, gt=0)
    minibatch: int = Field(64, ge=1, le=100_000, description="t values drawn (with replacement) per step")
    learning_rate: float = Field(0.025, gt=0)
    stop_below: float = Field(1e-6, ge=0)

    @model_validator(mode="after")
    def _check_grid(self) -> KnotConfig:
        if self.frequency_range[0] < 0:
            raise ValueError("frequency_range: frequencies are integers >= 0")
        if not 2 <= self.points <= 1_000_000:
            raise ValueError(f"t_max / t_step gives {self.points} points; between 2 and 1000000 expected")
        return self

    @property
    def points(self) -> int:
        """Number of t values on the knot's grid (1000 by default)."""
        return max(0, math.ceil(self.t_max / self.t_step - 1e-9))
