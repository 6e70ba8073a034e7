"""fastcnn: train small convolutional networks on the CPU, fast.

Two backends with the same op names and signatures:
  fastcnn.reference -- pure NumPy, dtype-generic: the oracle, and a usable backend;
  fastcnn.ops       -- the compiled core (float32, NCHW), tested against the reference.
"""
from __future__ import annotations

from . import _core
from . import ops, reference
from . import callbacks, datasets, layers, losses, optim
from ._files import FileFormatError
from .ensemble import Ensemble
from .network import Sequential
from .saving import load_model as load

__version__ = "0.1.0"

# Far beyond any CPU this runs on; a larger request would make the OpenMP
# runtime try to allocate per-thread state for billions of threads.
MAX_THREADS = 1024


def build_info() -> dict:
    """How the native core was built and what it runs: SIMD path in use
    ("simd"), the paths this CPU, OS and build can run ("isas_supported", best
    last) and the build has ("isas_compiled"), OpenMP on/off, thread count,
    compiler and flags, and how its idle worker threads wait ("thread_wait":
    see fastcnn.ops.busy_wait)."""
    info = dict(_core.build_info())
    info["thread_wait"] = ("fastcnn's own workers: ~20 us spin then sleep; ~2 ms spin "
                           "inside Sequential.fit (ops.busy_wait)")
    return info


def set_isa(name: str) -> None:
    """Use SIMD path `name` ("generic", "avx2" or "avx512") from now on, in this
    process. ValueError (changing nothing) if the name is unknown or the path
    cannot run here; the message names the CPU feature missing, or says that
    this build lacks the path. The environment variable FASTCNN_ISA does the
    same at import (and "auto" there means the best path). Results are
    bit-identical across thread counts on each path, not across paths."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    _core._set_isa(name)


def set_num_threads(n: int) -> None:
    """Number of threads the native ops use, 1 to MAX_THREADS. The count is
    OpenMP's setting (omp_set_num_threads; OMP_NUM_THREADS and threadpoolctl
    change it too); the threads are fastcnn's own. Without OpenMP the core is
    single-threaded and this does nothing."""
    from ._validate import integer

    _core.set_num_threads(integer(n, "n", 1, MAX_THREADS))


def get_num_threads() -> int:
    """Number of threads the native ops use (OpenMP's omp_get_max_threads)."""
    return int(_core.get_num_threads())


__all__ = ["ops", "reference", "layers", "losses", "optim", "callbacks", "Sequential",
           "Ensemble", "load", "FileFormatError", "datasets", "build_info", "set_isa",
           "set_num_threads", "get_num_threads",
           "__version__"]
