"""Performance parts as scene classes, one package per piece. Importing this registers them all."""

from scenes import builtin  # noqa: F401
from scenes import ldd  # noqa: F401
