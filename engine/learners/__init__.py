"""Learners trained live: jax-jitted cubic and Lissajous-knot models with a numpy oracle.

- :mod:`~engine.learners.config`: settings (the original's defaults), validated from setlists.
- :mod:`~engine.learners.kinds`: what each learner learns and its loss, in jax.
- :mod:`~engine.learners.core`: pure functions (new target, new approximant, step, fused steps).
- :mod:`~engine.learners.group`: :class:`LearnerGroup`, what scenes use: many learners stepped in
  one compiled call per tick, compiled at load, read back once per tick.
- :mod:`~engine.learners.oracle`: the same losses with hand-derived numpy gradients.
- :mod:`~engine.learners.compilation`: the persistent compilation cache and a compilation count.

jax computes on the CPU unless a GPU build of jaxlib is installed and finds a GPU.
"""

from engine.learners import compilation

compilation.configure()

from engine.learners.config import CubicConfig, KnotConfig  # noqa: E402
from engine.learners.group import LearnerGroup  # noqa: E402

__all__ = ["CubicConfig", "KnotConfig", "LearnerGroup"]
