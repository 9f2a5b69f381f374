"""The learners of "Losses, Dissonances, and Distortions": cubic polynomials and trefoil knots fitted
by plain gradient descent on stage, one implementation of the engine's learner protocol
(:class:`engine.learners.Learner`), at float64 (docs/learners.md)."""

from engine.learners import compilation  # noqa: F401  (jax's persistent cache, the compile count)
from scenes.ldd.learners.config import CubicConfig, KnotConfig  # noqa: F401
from scenes.ldd.learners.curves import CurveLearners  # noqa: F401
from scenes.ldd.learners.group import LearnerGroup  # noqa: F401
