"""Models that train on stage, beside the show (docs/learners.md).

- :mod:`~engine.learners.protocol`: :class:`Learner`, what any learner is (init, step, summary on a
  state pytree of parameters and optimizer state).
- :mod:`~engine.learners.trainer`: :class:`Trainer`, a learner trained beside the show (a background
  thread, live) or paced by show time (renders, replays).
- :mod:`~engine.learners.checkpoint`: a learner's state to a file and back.
- :mod:`~engine.learners.precision`: float32 or float64 per learner.
- :mod:`~engine.learners.compilation`: the persistent compilation cache and a compilation count.
- :mod:`~engine.learners.regressor`: a small conv net regressor (optax adam), the demonstration
  learner that needs the background trainer.

A piece brings its own learners (the first piece's curve learners: :mod:`scenes.ldd.learners`).
jax computes on the CPU unless a GPU build of jaxlib is installed and finds a GPU.
"""

from engine.learners import compilation

compilation.configure()

from engine.learners.protocol import Learner  # noqa: E402
from engine.learners.trainer import Snapshot, Trainer  # noqa: E402

__all__ = ["Learner", "Snapshot", "Trainer"]
