"""Tables for the sample-pool tests: a mono table of given samples, in a pool the test made."""

from __future__ import annotations

import numpy as np


def mono_table(pool, name: str, data) -> int:
    """Allocate table ``name`` in ``pool``, fill it with ``data`` (mono) and return its slot."""
    data = np.asarray(data, np.float32)
    slot = pool.allocate(name, data.shape[0], 1)
    pool.fill(slot, data)
    return slot
