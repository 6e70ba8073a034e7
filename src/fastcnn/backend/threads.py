"""fastcnn.threads -- how many threads the native ops use, and how idle ones wait.

Not ops: nothing here takes or returns an array, so fastcnn.ops and
fastcnn.reference stay two modules with exactly the same names.

  set_num_threads(n) / get_num_threads()   the count (OMP_NUM_THREADS at import;
                                           threadpoolctl changes it too)
  busy_wait()                              a context in which idle workers spin
                                           ~2 ms for the next op instead of ~20 us
"""
from __future__ import annotations

from contextlib import contextmanager

from .. import _core
from ..common.checks import integer

# Far beyond any CPU this runs on; a larger request would make the threading
# runtime try to allocate per-thread state for billions of threads.
MAX_THREADS = 1024


def set_num_threads(n: int) -> None:
    """Number of threads the native ops use, 1 to MAX_THREADS. The count is
    OpenMP's setting (omp_set_num_threads; OMP_NUM_THREADS and threadpoolctl
    change it too); the threads are fastcnn's own. Without OpenMP the core is
    single-threaded and this does nothing."""
    _core.set_num_threads(integer(n, "n", 1, MAX_THREADS))


def get_num_threads() -> int:
    """Number of threads the native ops use (OpenMP's omp_get_max_threads)."""
    return int(_core.get_num_threads())


@contextmanager
def busy_wait():
    """While inside: fastcnn's idle worker threads spin ~2 ms for the next op
    before they sleep, instead of ~20 us. Sequential.fit trains inside it (its
    ops follow each other within microseconds); outside it the short wait
    leaves the cores to other thread pools, such as NumPy's BLAS, between ops."""
    before = _core.busy_wait()
    _core.set_busy_wait(True)
    try:
        yield
    finally:
        _core.set_busy_wait(before)


__all__ = ["set_num_threads", "get_num_threads", "busy_wait", "MAX_THREADS"]
