"""One BLAS thread for a show's own numbers, so they do not depend on the machine's cores.

OpenBLAS splits some products (and LAPACK's decompositions) differently by thread count, and the
last bits of the result move with it. A show whose sound or pictures come from such numbers (the
grain VAE's numpy decoder, its principal axes) would then render differently on a machine with
another core count, or in a process that was given another one: a Ray worker started with one CPU
gets ``OMP_NUM_THREADS=1``, and its chunk of a replay drifted from the serial replay's (issue 24).
The show's products are small (a few ms at most, off the audio process); one thread costs nothing
measurable, and every show, live, rendered or replayed, computes alike.

OpenBLAS reads its thread count once, when it is loaded, so the limit is set through
threadpoolctl (the maintained library for this, from scikit-learn) on every BLAS loaded so far;
:func:`one_blas_thread` is called when a show is made and again when its scenes are loaded (scipy
brings its own OpenBLAS, loaded when first used).
"""

from __future__ import annotations


def one_blas_thread() -> None:
    """Limit every BLAS library loaded in this process to one thread (about 0.5 ms when done)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    if any(info.get("user_api") == "blas" and info.get("num_threads") != 1 for info in threadpool_info()):
        threadpool_limits(limits=1, user_api="blas")
