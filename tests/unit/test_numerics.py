"""engine/numerics.py: a show computes with one BLAS thread, whatever the process was given."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from engine.numerics import one_blas_thread


def _blas_threads() -> list[int]:
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_every_loaded_blas_is_limited_to_one_thread_even_after_it_was_given_more():
    import scipy.linalg  # noqa: F401  (scipy's own OpenBLAS, loaded too)

    threadpool_limits(limits=2, user_api="blas")  # as a process started with OMP_NUM_THREADS=2
    assert _blas_threads() and max(_blas_threads()) == 2
    one_blas_thread()
    assert set(_blas_threads()) == {1}
    a = np.random.default_rng(0).standard_normal((64, 300))
    np.testing.assert_allclose(a @ a.T, np.einsum("ik,jk->ij", a, a), rtol=1e-12)  # and numpy still multiplies
