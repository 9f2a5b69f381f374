"""What a part of the piece reports in each tick's metrics line: its events, each step's notes and
loss, the learner's loss and gradient, and the time spent in learner calls."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from scenes.ldd.learners import LearnerGroup


@dataclass
class TickReport:
    events: list[str] = field(default_factory=list)
    steps: list[list] = field(default_factory=list)  # [notes detuned, loss] per step call
    learn_seconds: float = 0.0

    @contextmanager
    def learning(self) -> Iterator[None]:
        """Time a learner call (counted in ``learn_ms``)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.learn_seconds += time.perf_counter() - started

    def stepped(self, notes: list[int], loss: float, count: int) -> None:
        self.events.extend(["step"] * count)
        self.steps.append([notes, loss])

    def status(self, learner: LearnerGroup, active: bool) -> dict:
        """This tick's fields, then start the next tick afresh."""
        status: dict = {"events": self.events + learner.take_events()}
        if active:
            view = learner.view
            status.update(loss=float(view.loss[0]), grad=[float(g) for g in view.grad[0]])
        if self.steps:
            status["steps"] = self.steps
        if self.learn_seconds:
            status["learn_ms"] = round(self.learn_seconds * 1000, 4)
        self.events, self.steps, self.learn_seconds = [], [], 0.0
        return status
