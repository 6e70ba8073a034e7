"""Data-parallel training over MPI: `mpiexec -n 2` runs of tests/mpi_worker.py.

Slow-ish (each test starts an MPI job), so they run once in CI, explicitly:
FASTCNN_DIST_TESTS=1 python -m pytest tests/test_mpi.py. Skipped otherwise, and
when mpiexec or mpi4py is missing.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(os.environ.get("FASTCNN_DIST_TESTS") != "1",
                                reason="MPI tests run only with FASTCNN_DIST_TESTS=1")

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mpi_worker.py")
EPOCHS = 3


def _mpiexec():
    pytest.importorskip("mpi4py")
    exe = shutil.which("mpiexec") or os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(exe):
        pytest.skip("no mpiexec on PATH")
    return exe


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # the fastcnn these tests imported (installed, or the developer build in the tree)
    import fastcnn
    src = os.path.dirname(os.path.dirname(fastcnn.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    return env


def _run(cmd, timeout=120):
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)


def test_data_parallel_fit_matches_one_process(tmp_path):
    exe = _mpiexec()
    r = _run([exe, "-n", "2", sys.executable, WORKER, "fit", str(tmp_path)])
    assert r.returncode == 0, r.stderr
    r1 = _run([sys.executable, WORKER, "single", str(tmp_path)])
    assert r1.returncode == 0, r1.stderr
    for e in range(1, EPOCHS + 1):
        p0, p1, single = (np.load(tmp_path / f"{t}_e{e}.npy")
                          for t in ("rank0", "rank1", "single"))
        # every rank applied the same reduced update: identical bits
        assert p0.tobytes() == p1.tobytes(), f"ranks differ after epoch {e}"
        # the same global batches as one process, up to the order of float sums
        rel = np.abs(p0 - single).max() / np.abs(single).max()
        assert rel < 1e-5, f"epoch {e}: relative difference {rel:.2e} to one process"
        l0, l1, ls = (np.load(tmp_path / f"{t}_e{e}_logs.npy")
                      for t in ("rank0", "rank1", "single"))
        assert np.array_equal(l0, l1)   # training loss/accuracy and sharded evaluation
        np.testing.assert_allclose(l0, ls, rtol=1e-5)
    # the trained net learned something: not a run that never moved
    first = np.load(tmp_path / "single_e1.npy")
    assert np.abs(first - np.load(tmp_path / f"single_e{EPOCHS}.npy")).max() > 1e-3


def test_error_on_one_rank_ends_the_job(tmp_path):
    exe = _mpiexec()
    r = _run([exe, "-n", "2", sys.executable, WORKER, "bad", str(tmp_path)], timeout=60)
    assert r.returncode != 0
    assert "rank 1 failed" in r.stderr
    assert "must lie in [0, 5)" in r.stderr


def test_different_data_on_a_rank_is_refused(tmp_path):
    exe = _mpiexec()
    r = _run([exe, "-n", "2", sys.executable, WORKER, "short", str(tmp_path)], timeout=60)
    assert r.returncode != 0
    assert "must be the same on every MPI rank" in r.stderr


def test_train_cli_mpi(tmp_path):
    exe = _mpiexec()
    out = tmp_path / "m.npz"
    r = _run([exe, "-n", "2", sys.executable, "-m", "fastcnn", "train", "--mpi",
              "--epochs", "1", "--quiet", "--save", str(out)], timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("test accuracy") == 1   # only rank 0 reports
    assert out.exists()


def test_missing_mpi4py_message():
    from fastcnn import mpi
    import builtins
    real = builtins.__import__

    def no_mpi4py(name, *a, **k):
        if name.startswith("mpi4py"):
            raise ImportError("no mpi4py")
        return real(name, *a, **k)

    builtins.__import__ = no_mpi4py
    try:
        with pytest.raises(ImportError, match=r"fastcnn\[mpi\]"):
            mpi.import_mpi()
    finally:
        builtins.__import__ = real
