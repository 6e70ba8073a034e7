"""fastcnn ops next to NumPy's BLAS in one process: a NumPy matmul and a fastcnn op
alternating, from one and from two Python threads, each result checked against a
float64 oracle; and the OpenMP wait setting fastcnn makes at import (no timing here:
bench/bench_dropin.py measures the speed)."""
from __future__ import annotations

import json
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


def _import_report(env):
    code = ("import os, json, fastcnn; print(json.dumps([fastcnn.build_info()['openmp_wait'],"
            " os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY')]))")
    full = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    full.update(env, PYTHONPATH=SRC)
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout)


@pytest.mark.skipif(not fastcnn.build_info()["openmp"], reason="built without OpenMP")
def test_import_sets_a_short_spin_only_while_loading_openmp():
    wait, spin, policy = _import_report({})
    if wait.startswith("libgomp loaded before"):
        pytest.skip("libgomp is loaded before fastcnn in this interpreter")
    assert wait.startswith("short spin"), wait
    assert spin is None and policy is None  # the user's environment is left as it was


@pytest.mark.parametrize("env", [{"GOMP_SPINCOUNT": "123"}, {"OMP_WAIT_POLICY": "active"}])
def test_import_keeps_the_users_openmp_wait_setting(env):
    wait, spin, policy = _import_report(env)
    assert wait.startswith("user setting"), wait
    assert (spin, policy) == (env.get("GOMP_SPINCOUNT"), env.get("OMP_WAIT_POLICY"))
