"""Learners trained live: jax-jitted cubic and Lissajous-knot models with a numpy oracle.

- :mod:`~engine.learners.config`: settings (the original's defaults), validated from setlists.
- :mod:`~engine.learners.kinds`: what each learner learns and its loss, in jax.
- :mod:`~engine.learners.core`: pure functions (new target, new approximant, step, fused steps).
- :mod:`~engine.learners.group`: :class:`LearnerGroup`, what scenes use: many learners stepped in
  one compiled call per tick, compiled at load, read back once per tick.
- :mod:`~engine.learners.oracle`: the same losses with hand-derived numpy gradients.
- :mod:`~engine.learners.compilation`: the persistent compilation cache and a compilation count.
- :mod:`~engine.learners.protocol`: :class:`Learner`, what any learner is (init, step, summary on a
  state pytree); :mod:`~engine.learners.curves`: the curve learners as one.
- :mod:`~engine.learners.trainer`: :class:`Trainer`, a learner trained beside the show (a background
  thread, live) or paced by show time (renders, replays).
- :mod:`~engine.learners.checkpoint`: a learner's state to a file and back.
- :mod:`~engine.learners.precision`: float32 or float64 per learner.
- :mod:`~engine.learners.regressor`: a small conv net regressor (optax adam), the demonstration
  learner that needs the background trainer.

jax computes on the CPU unless a GPU build of jaxlib is installed and finds a GPU.
"""

from engine.learners import compilation

compilation.configure()

from engine.learners.config import CubicConfig, KnotConfig  # noqa: E402
from engine.learners.curves import CurveLearners  # noqa: E402
from engine.learners.group import LearnerGroup  # noqa: E402
from engine.learners.protocol import Learner  # noqa: E402
from engine.learners.trainer import Snapshot, Trainer  # noqa: E402

__all__ = ["CubicConfig", "CurveLearners", "KnotConfig", "Learner", "LearnerGroup", "Snapshot", "Trainer"]
