"""fastcnn.threads -- how many threads the native ops use, and how idle ones wait.

Not ops: nothing here takes or returns an array, so fastcnn.ops and
fastcnn.reference stay two modules with exactly the same names.

  set_num_threads(n) / get_num_threads()   the count: at import OMP_NUM_THREADS
                                           (its first entry) if set and valid,
                                           else the CPUs this process may run on;
                                           never above OMP_THREAD_LIMIT
  busy_wait()                              a context in which idle workers spin
                                           ~2 ms for the next op instead of ~20 us

The threads are fastcnn's own; no OpenMP runtime is loaded. threadpoolctl (3.5 or
later, when installed) still sees and limits them: importing this module registers
a controller with it (user_api "openmp", internal_api "fastcnn"), so
threadpool_info() lists fastcnn and threadpool_limits(n, user_api="openmp") sets
its count.
"""
from __future__ import annotations

import ctypes
import re
from contextlib import contextmanager

from .. import _core
from ..common.checks import integer
from ..common.limits import MAX_THREADS
from ..common.version import VERSION


def set_num_threads(n: int) -> None:
    """Number of threads the native ops use, 1 to MAX_THREADS (at most
    OMP_THREAD_LIMIT when that is set: a larger n gives that limit). Results
    are bit-identical on any count."""
    _core.set_num_threads(integer(n, "n", 1, MAX_THREADS))


def get_num_threads() -> int:
    """Number of threads the native ops use."""
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


# ------------------------------------------------------------- threadpoolctl --
# threadpoolctl finds the thread pools of the libraries loaded in the process by
# their file names and talks to each through ctypes. fastcnn's pool lives in its
# extension module, _core.<abi tag>.so, which exports the count as two C functions
# (src/cpp/bindings/module.cpp); the name prefix finds the candidates, and the
# symbol, which only fastcnn's module has, picks fastcnn's among other "_core"s.
GET_SYMBOL = "fastcnn_get_num_threads"
SET_SYMBOL = "fastcnn_set_num_threads"
# threadpoolctl.register exists from 3.2; from 3.3 a controller's check_symbols
# are honoured (before, any library named _core.* would be taken for fastcnn's);
# 3.5 is the oldest release the docs promise.
THREADPOOLCTL_MIN = (3, 5)


def _threadpoolctl_controller(base):
    """The threadpoolctl controller class of fastcnn's pool (base: LibController)."""

    class FastcnnController(base):
        user_api = "openmp"   # what OMP_NUM_THREADS and threadpool_limits(user_api="openmp") set
        internal_api = "fastcnn"
        filename_prefixes = ("_core.",)
        check_symbols = (GET_SYMBOL, SET_SYMBOL)

        def get_num_threads(self):
            get = getattr(self.dynlib, GET_SYMBOL, None)
            if get is None:
                return None
            get.restype, get.argtypes = ctypes.c_int, []
            return int(get())

        def set_num_threads(self, num_threads):
            set_ = getattr(self.dynlib, SET_SYMBOL, None)
            if set_ is not None:
                set_.restype, set_.argtypes = None, [ctypes.c_int]
                # (the C side clamps into [1, MAX_THREADS]; min keeps n a C int)
                set_(min(int(num_threads), MAX_THREADS))

        def get_version(self):
            return VERSION

    return FastcnnController


def _register_with_threadpoolctl() -> bool:
    """Register fastcnn's controller with threadpoolctl if it is installed and new
    enough; True if registered. Never raises for want of threadpoolctl."""
    try:
        import threadpoolctl
    except ImportError:
        return False
    found = re.match(r"(\d+)\.(\d+)", getattr(threadpoolctl, "__version__", ""))
    if (not found or tuple(map(int, found.groups())) < THREADPOOLCTL_MIN
            or not hasattr(threadpoolctl, "register")):
        return False
    threadpoolctl.register(_threadpoolctl_controller(threadpoolctl.LibController))
    return True


THREADPOOLCTL_REGISTERED = _register_with_threadpoolctl()

__all__ = ["set_num_threads", "get_num_threads", "busy_wait", "MAX_THREADS"]
