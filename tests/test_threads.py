"""The thread count: set and read in Python, taken from OMP_NUM_THREADS, the CPU
affinity and OMP_THREAD_LIMIT at import, read and set by threadpoolctl through the
controller fastcnn registers; and no OpenMP runtime linked into the extension."""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess

import pytest
from helpers import run_python

import fastcnn
from fastcnn import _core, threads

COUNT = "import fastcnn; print(fastcnn.get_num_threads())"
# The default is asked of the OS in the child itself: a taskset prefix changes it.
USABLE_CPUS = "import os; print(len(os.sched_getaffinity(0)))"
NO_THREAD_ENV = {"OMP_NUM_THREADS": None, "OMP_THREAD_LIMIT": None}


def _count(prefix=(), **env) -> int:
    return int(run_python(COUNT, prefix=prefix, **{**NO_THREAD_ENV, **env}))


def _usable_cpus(prefix=()) -> int:
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no sched_getaffinity on this OS")
    return int(run_python(USABLE_CPUS, prefix=prefix))


@pytest.fixture
def restore_threads():
    """Restore the count afterwards; skip where OMP_THREAD_LIMIT caps it below 3
    (the tests in this process set up to 3)."""
    before = fastcnn.get_num_threads()
    fastcnn.set_num_threads(3)
    capped = fastcnn.get_num_threads() != 3
    fastcnn.set_num_threads(before)
    if capped:
        pytest.skip(f"OMP_THREAD_LIMIT={os.environ.get('OMP_THREAD_LIMIT')} caps the count")
    yield before
    fastcnn.set_num_threads(before)


def test_thread_count_round_trip_and_errors(restore_threads):
    for n in (1, 2, 3, fastcnn.MAX_THREADS):
        fastcnn.set_num_threads(n)
        assert fastcnn.get_num_threads() == n
    with pytest.raises(ValueError, match="n"):
        fastcnn.set_num_threads(0)
    with pytest.raises(ValueError, match="n"):
        fastcnn.set_num_threads(fastcnn.MAX_THREADS + 1)
    with pytest.raises(TypeError, match="n"):
        fastcnn.set_num_threads(1.5)
    assert fastcnn.MAX_THREADS == _core.MAX_THREADS


@pytest.mark.parametrize("value,want", [("1", 1), ("2", 2), ("3", 3), (" 3 ", 3),
                                        ("3,2", 3), ("2, 1", 2), ("999999", "max")])
def test_omp_num_threads_is_honoured_at_import(value, want):
    """The first entry of OpenMP's list; a count beyond MAX_THREADS is capped."""
    assert _count(OMP_NUM_THREADS=value) == (fastcnn.MAX_THREADS if want == "max" else want)


def test_default_is_the_cpus_this_process_may_run_on():
    assert _count() == _usable_cpus()


@pytest.mark.parametrize("value", ["", "abc", "0", "-2", "2abc", "1.5", "2,", "2,x", "3,0"])
def test_invalid_omp_num_threads_is_ignored(value):
    """Not a list of positive integers: the default, as if unset."""
    assert _count(OMP_NUM_THREADS=value) == _usable_cpus()


def test_default_follows_the_cpu_affinity():
    """Under taskset -c 0 the process may run on one CPU: one thread."""
    taskset = shutil.which("taskset")
    if taskset is None:
        pytest.skip("taskset not found")
    prefix = (taskset, "-c", "0")
    assert _usable_cpus(prefix) == 1
    assert _count(prefix) == 1
    assert _count(prefix, OMP_NUM_THREADS="2") == 2   # the variable still wins


def test_omp_thread_limit_caps_the_count():
    code = (COUNT + "; fastcnn.set_num_threads(3); print(fastcnn.get_num_threads())"
            "; fastcnn.set_num_threads(1); print(fastcnn.get_num_threads())")
    out = run_python(code, OMP_NUM_THREADS="4", OMP_THREAD_LIMIT="2").split()
    assert out == ["2", "2", "1"]
    assert _count(OMP_NUM_THREADS="3", OMP_THREAD_LIMIT="x") == 3   # invalid: ignored


def test_limited_count_still_gives_every_result():
    """OMP_THREAD_LIMIT=1 grants one thread where two are asked for; under taskset
    -c 0, two threads share one CPU, so a worker is often not running when its
    part is due (the caller then takes that part). Either way all the work is
    done: GEMMs of every strategy against float64."""
    code = ("import numpy as np, fastcnn; from fastcnn import ops\n"
            "fastcnn.set_num_threads(2)\n"
            "print(fastcnn.get_num_threads())\n"
            "rng = np.random.default_rng(0)\n"
            "for m, n, k in [(40, 640, 500), (20, 5760, 25), (301, 37, 257), (1024, 64, 64),\n"
            "                (20, 25, 5760)]:\n"
            "    a = rng.standard_normal((m, k)).astype(np.float32)\n"
            "    b = rng.standard_normal((k, n)).astype(np.float32)\n"
            "    want = a.astype(np.float64) @ b\n"
            "    assert np.allclose(ops.gemm(a, b), want, rtol=1e-4, atol=1e-3), (m, n, k)\n")
    assert run_python(code, OMP_THREAD_LIMIT="1") == "1"
    taskset = shutil.which("taskset")
    if taskset:
        assert run_python(code, prefix=(taskset, "-c", "0"), OMP_THREAD_LIMIT=None) == "2"


def _needed_libraries(path):
    """The NEEDED entries of an ELF file's dynamic section (readelf -d)."""
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf not found")
    out = subprocess.run([readelf, "-d", path], capture_output=True, text=True, check=True)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout)


def test_extension_links_no_openmp_runtime():
    needed = _needed_libraries(_core.__file__)
    assert needed, "readelf found no NEEDED entries: not the ELF file expected"
    assert not [lib for lib in needed if re.match(r"lib(g|i)?omp", lib)], needed


def test_c_entry_points_for_threadpoolctl(restore_threads):
    """The two plain C functions _core exports for threadpoolctl, called as it does."""
    lib = ctypes.CDLL(_core.__file__)
    lib.fastcnn_get_num_threads.restype = ctypes.c_int
    lib.fastcnn_set_num_threads.argtypes = [ctypes.c_int]
    lib.fastcnn_set_num_threads(3)
    assert fastcnn.get_num_threads() == 3 == lib.fastcnn_get_num_threads()
    lib.fastcnn_set_num_threads(0)                   # clamped, as set_num_threads' range
    assert lib.fastcnn_get_num_threads() == 1


def _fastcnn_pools(threadpoolctl):
    return [d for d in threadpoolctl.threadpool_info() if d["internal_api"] == "fastcnn"]


def test_threadpoolctl_lists_fastcnn(restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl", minversion="3.5")
    assert threads.THREADPOOLCTL_REGISTERED
    fastcnn.set_num_threads(3)
    (pool,) = _fastcnn_pools(threadpoolctl)
    assert pool["user_api"] == "openmp" and pool["num_threads"] == 3
    assert os.path.samefile(pool["filepath"], _core.__file__)
    assert pool["version"] == fastcnn.__version__
    fastcnn.set_num_threads(1)
    assert _fastcnn_pools(threadpoolctl)[0]["num_threads"] == 1


@pytest.mark.parametrize("user_api", ["openmp", None])
def test_threadpoolctl_limits_fastcnn_and_restores(restore_threads, user_api):
    threadpoolctl = pytest.importorskip("threadpoolctl", minversion="3.5")
    fastcnn.set_num_threads(2)
    with threadpoolctl.threadpool_limits(limits=1, user_api=user_api):
        assert fastcnn.get_num_threads() == 1
    assert fastcnn.get_num_threads() == 2
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        assert fastcnn.get_num_threads() == 2    # not a BLAS


def test_without_threadpoolctl_nothing_is_registered_and_all_works():
    code = ("import sys; sys.modules['threadpoolctl'] = None\n"   # import fails
            "import numpy as np, fastcnn; from fastcnn import ops, threads\n"
            "fastcnn.set_num_threads(2)\n"
            "assert (ops.gemm(np.ones((40, 50), np.float32), np.ones((50, 60), np.float32))"
            " == 50).all()\n"
            "print(threads.THREADPOOLCTL_REGISTERED, fastcnn.get_num_threads())")
    assert run_python(code, **NO_THREAD_ENV) == "False 2"
