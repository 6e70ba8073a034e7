"""fastcnn ops next to NumPy's BLAS in one process: a NumPy matmul and a fastcnn op
alternating, from one and from two Python threads, each result checked against a
float64 oracle; how fastcnn's worker threads wait (fastcnn.threads.busy_wait, inside fit only)
and that a forked child gets workers of its own (no timing here:
bench/bench_dropin.py measures the speed)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import fastcnn
from fastcnn import ops, reference

from helpers import as64, assert_close

SRC = str(Path(fastcnn.__file__).parents[1])


def _alternate(seed, steps, errors):
    """NumPy matmul, then conv2d + maxpool2d + dense from fastcnn, `steps` times."""
    try:
        rng = np.random.default_rng(seed)
        for step in range(steps):
            n = 1 + (seed + step) % 5
            a = rng.standard_normal((64 + step, 96)).astype(np.float32)
            b = rng.standard_normal((96, 48)).astype(np.float32)
            assert_close(a @ b, a.astype(np.float64) @ b.astype(np.float64), name="numpy matmul")
            x = rng.standard_normal((n, 3, 13, 11)).astype(np.float32)
            w = rng.standard_normal((7, 3, 3, 3)).astype(np.float32)
            bias = rng.standard_normal(7).astype(np.float32)
            conv = ops.conv2d(x, w, bias, padding=1)
            assert_close(conv, reference.conv2d(*as64(x, w, bias), padding=1), name="conv2d")
            pooled = ops.maxpool2d(conv, 2)
            assert_close(pooled, reference.maxpool2d(as64(conv)[0], 2), name="maxpool2d")
            flat = pooled.reshape(n, -1)
            wd = rng.standard_normal((flat.shape[1], 10)).astype(np.float32)
            assert_close(ops.dense(flat, wd), reference.dense(*as64(flat, wd)), name="dense")
            # and BLAS again on what fastcnn wrote
            assert_close(flat @ wd, as64(flat)[0] @ as64(wd)[0], name="numpy after fastcnn")
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)


@pytest.mark.parametrize("python_threads", [1, 2])
def test_numpy_matmul_and_fastcnn_ops_alternate(python_threads, threads):
    errors: list = []
    workers = [threading.Thread(target=_alternate, args=(seed, 12, errors))
               for seed in range(python_threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in workers), "a thread did not finish"
    if errors:
        raise errors[0]


def test_busy_wait_is_scoped_and_changes_no_result():
    """threads.busy_wait only changes how long idle workers spin: the same op gives
    the same bits inside and outside it, and the previous setting comes back after."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 3, 17, 15)).astype(np.float32)
    w = rng.standard_normal((9, 3, 5, 5)).astype(np.float32)
    outside = ops.conv2d(x, w, padding=2)
    assert not fastcnn._core.busy_wait()
    with fastcnn.threads.busy_wait():
        assert fastcnn._core.busy_wait()
        with fastcnn.threads.busy_wait():
            inside = ops.conv2d(x, w, padding=2)
        assert fastcnn._core.busy_wait()   # the inner block restored the outer's setting
    assert not fastcnn._core.busy_wait()
    np.testing.assert_array_equal(inside, outside)
    assert_close(inside, reference.conv2d(*as64(x, w), padding=2), name="conv2d")


def test_fit_waits_hot_only_while_it_trains():
    seen = []

    class Spy(fastcnn.callbacks.Callback):
        def on_epoch_end(self, model, epoch, logs):
            seen.append(fastcnn._core.busy_wait())

    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model = fastcnn.Sequential([fastcnn.layers.Conv2D(4, 3), fastcnn.layers.Flatten(),
                                fastcnn.layers.Dense(3)], input_shape=(1, 8, 8))
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[Spy()])
    assert seen == [True, True]
    assert not fastcnn._core.busy_wait()

    class Stop(fastcnn.callbacks.Callback):
        def on_epoch_end(self, model, epoch, logs):
            raise RuntimeError("from a callback")

    with pytest.raises(RuntimeError, match="from a callback"):   # and after a fit that raises
        model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[Stop()])
    assert not fastcnn._core.busy_wait()


_FORK_CHILD = """
import multiprocessing as mp, numpy as np, fastcnn
from fastcnn import ops
fastcnn.set_num_threads(2)
a = np.arange(240 * 200, dtype=np.float32).reshape(240, 200) / 1e4
want = ops.gemm(a, a.T)              # the workers exist in the parent now

def child(q):
    q.put(bool(np.array_equal(ops.gemm(a, a.T), want)))

if __name__ == "__main__":
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    print(q.get(timeout=60))
    p.join(60)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_runs_parallel_ops(tmp_path):
    """A forked child (multiprocessing's default on Linux, Dask's nanny) has none of
    the parent's worker threads: its first parallel op must start its own, not wait
    for threads that do not exist."""
    script = tmp_path / "fork_child.py"
    script.write_text(_FORK_CHILD)
    env = dict(os.environ, PYTHONPATH=SRC)
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True", out.stdout + out.stderr
