"""What a benchmark hands back: its figures, how they were measured, and the goal they answer to."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    """One measured number.

    Attributes:
        label: what was measured, e.g. "handler delay p99".
        value: the number, in ``unit``.
        unit: "us", "ms", "x" (a ratio) ...
        goal: the goal as text ("<= 1.5"), or "" when the figure is context only.
        met: whether the goal was met; None when there is no goal.
    """

    label: str
    value: float
    unit: str
    goal: str = ""
    met: bool | None = None

    def formatted(self) -> str:
        if self.unit == "x":
            return f"{self.value:.2f}x"
        if self.unit == "count":
            return f"{self.value:.0f}"
        digits = 2 if abs(self.value) < 100 else 1
        return f"{self.value:.{digits}f} {self.unit}"


@dataclass
class BenchResult:
    """A benchmark's outcome: ``figures`` when it ran, ``error`` (one line) when it could not."""

    key: str
    title: str
    method: str  # a paragraph: how it is measured
    goal: str  # a sentence: what it should achieve and why
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0  # wall time the benchmark took
