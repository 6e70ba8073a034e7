"""One comparison helper for every test: native (float32) against the NumPy
reference (float64), with NaN and Inf counted separately from the values; the
two backends the op tests run side by side; and Python code run in a fresh
interpreter (for what happens at import)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

import fastcnn
from fastcnn import ops, reference

BACKENDS = [reference, ops]


def assert_close(got, want, rtol=1e-4, atol=1e-5, name="result"):
    """got (any float dtype) must match want (float64 oracle) elementwise.

    NaN and +/-Inf must sit in exactly the same places in both; the finite
    values must satisfy |got - want| <= atol + rtol * |want|.
    """
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != expected {want.shape}"
    for label, test in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
        g, w = test(got), test(want)
        if not np.array_equal(g, w):
            raise AssertionError(f"{name}: {label} count {int(g.sum())} vs expected "
                                 f"{int(w.sum())}, first mismatch at "
                                 f"{np.argwhere(g != w)[0].tolist()}")
    fin = np.isfinite(want)
    err = np.abs(got[fin] - want[fin])
    tol = atol + rtol * np.abs(want[fin])
    bad = err > tol
    if bad.any():
        idx = np.argwhere(fin)[np.argmax(err - tol)].tolist()
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {fin.sum()} values out of tolerance; worst at "
            f"{idx}: got {got[tuple(idx)]!r}, expected {want[tuple(idx)]!r} "
            f"(rtol={rtol}, atol={atol})")


def as64(*arrays):
    """The float64 copies of float32 test inputs, for the reference."""
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


def numeric_grad(f, a, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of a (in place)."""
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + eps
        up = f()
        a[idx] = old - eps
        down = f()
        a[idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


def run_python(code: str, *, prefix=(), **env) -> str:
    """Run code in a fresh interpreter, so import-time choices happen anew, and
    return its stripped stdout (its failure fails the test). env: variables to
    set, or to remove when None (FASTCNN_ISA is removed unless given); prefix: a
    command to run python under (e.g. taskset). This fastcnn comes first on
    PYTHONPATH."""
    src = os.path.dirname(os.path.dirname(fastcnn.__file__))
    full_env = {k: v for k, v in os.environ.items() if k != "FASTCNN_ISA"}
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (src, os.environ.get("PYTHONPATH")) if p)
    for k, v in env.items():
        if v is None:
            full_env.pop(k, None)
        else:
            full_env[k] = v
    out = subprocess.run([*prefix, sys.executable, "-c", code], env=full_env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
