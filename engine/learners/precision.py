"""Floating-point width chosen per learner, not for the whole process.

jax decides whether 64-bit types exist from its ``jax_enable_x64`` setting. The process keeps jax's
default (off: float32); a learner that needs float64 (the curve learners: the knot's 1e-6 stop
threshold is below float32 resolution at t up to 100) builds and calls its compiled code inside
:func:`scope`, which switches the setting for the current thread only (jax's ``jax.enable_x64``
context). A float32 learner and a float64 learner therefore live in one process, each with its own
dtypes, and code outside any learner sees jax's default.

The setting is per thread: a thread that starts inside ``scope`` does not inherit it, so a trainer's
background thread enters the scope itself.

A compiled function keeps the width it was compiled with; it must be called with arguments of that
width. jax arrays (a learner's state) pass as they are; numpy float64 arguments are narrowed to
float32 outside the scope, so a float64 learner's calls with host floats run inside ``scope`` too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import jax

Precision = Literal["float32", "float64"]
PRECISIONS: tuple[Precision, ...] = ("float32", "float64")


@contextmanager
def scope(precision: Precision) -> Iterator[None]:
    """jax with 64-bit types on (``"float64"``) or off (``"float32"``) in this thread, for the block."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision 'float32' or 'float64', not {precision!r}")
    with jax.enable_x64(precision == "float64"):
        yield


def float_dtype(precision: Precision) -> type:
    """The numpy float type of ``precision`` (np.float32 or np.float64)."""
    import numpy as np

    return np.float64 if precision == "float64" else np.float32
