"""How a benchmark reads its settings from the environment (``SHOWRUNNER_*_SECONDS`` and the like)."""

from __future__ import annotations

import os


def number(variable: str, default: float) -> float:
    """The positive number in environment variable ``variable``, or ``default`` when it is unset or
    empty; ValueError naming the variable for anything else."""
    text = os.environ.get(variable, "")
    try:
        value = float(text) if text else default
    except ValueError:
        raise ValueError(f"{variable} must be a number, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"{variable} must be positive, got {text!r}")
    return value
