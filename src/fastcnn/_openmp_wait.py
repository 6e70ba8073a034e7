"""How long fastcnn's idle OpenMP threads spin before they sleep.

libgomp's threads spin for a while (GOMP_SPINCOUNT, by default 300,000 turns:
milliseconds) after each parallel region before they sleep. In a process that
also runs NumPy's threaded BLAS, that spinning takes the cores OpenBLAS's own
threads need for the next matmul, and theirs take the cores fastcnn needs: a
NumPy net with its conv/pool swapped for fastcnn.ops then runs slower than pure
NumPy. A spin of 1,000 turns lets the threads sleep before the next matmul
(measured by bench/bench_dropin.py; figures and the cost to Sequential.fit in
docs/numpy-dropin.md).

libgomp reads GOMP_SPINCOUNT once, when it is loaded, which is when fastcnn's
_core is imported. So fastcnn sets it for that moment only, and only where the
user has set neither GOMP_SPINCOUNT nor OMP_WAIT_POLICY, and removes it again
so child processes inherit the user's environment unchanged. Where libgomp is
already in the process (another library loaded it first), its settings stand.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

SPIN_COUNT = "1000"

# What happened at import, for build_info()["openmp_wait"].
state = "unknown"


def _libgomp_loaded() -> bool:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any(line.rstrip().endswith("/libgomp.so.1") for line in maps)
    except OSError:
        return False


@contextmanager
def short_spin_while_loading():
    """Around the import of _core: a short libgomp spin unless the user chose one."""
    global state
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        state = "user setting (GOMP_SPINCOUNT / OMP_WAIT_POLICY)"
        yield
        return
    if _libgomp_loaded():
        state = "libgomp loaded before fastcnn: its settings"
        yield
        return
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    try:
        yield
    finally:
        del os.environ["GOMP_SPINCOUNT"]
    state = f"short spin (GOMP_SPINCOUNT={SPIN_COUNT} when libgomp loaded)"
