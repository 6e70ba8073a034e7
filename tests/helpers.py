"""One comparison helper for every test: native (float32) against the NumPy
reference (float64), with NaN and Inf counted separately from the values; and
the two backends the op tests run side by side."""
from __future__ import annotations

import numpy as np

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
