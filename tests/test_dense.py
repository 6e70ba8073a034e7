"""dense, dense_backward and the fused dense_backward_sgd: native (float32)
against the float64 reference (and the fused pass against the two GEMMs it
replaces); the reference's dtypes and finite differences."""
from __future__ import annotations

import numpy as np
import pytest
from conv_cases import _conv_data, _tol
from helpers import as64, assert_close, numeric_grad

from fastcnn import ops, reference


# ----------------------------------------------------------------- dense --

DENSE_CASES = [(1, 1, 1), (3, 7, 5), (17, 33, 10), (2, 100, 1), (1, 5, 65), (9, 16, 24)]


@pytest.mark.parametrize("n,i,o", DENSE_CASES)
def test_dense(n, i, o, threads, isa):
    rng = np.random.default_rng(n * 100 + i + o)
    x = rng.standard_normal((n, i)).astype(np.float32)
    w = rng.standard_normal((i, o)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    dout = rng.standard_normal((n, o)).astype(np.float32)
    assert_close(ops.dense(x, w, b), reference.dense(*as64(x, w, b)), **_tol(i), name="out")
    assert_close(ops.dense(x, w), reference.dense(*as64(x, w)), **_tol(i), name="out (b=None)")
    dx, dw, db = ops.dense_backward(dout, x, w)
    rdx, rdw, rdb = reference.dense_backward(*as64(dout, x, w))
    assert_close(dx, rdx, **_tol(o), name="dx")
    assert_close(dw, rdw, **_tol(n), name="dw")
    assert_close(db, rdb, **_tol(n), name="db")
    no_dx = ops.dense_backward(dout, x, w, need_dx=False)
    assert no_dx[0] is None and reference.dense_backward(dout, x, w, need_dx=False)[0] is None
    assert_close(no_dx[1], rdw, **_tol(n), name="dw (need_dx=False)")
    assert_close(no_dx[2], rdb, **_tol(n), name="db (need_dx=False)")


# Fused backward + SGD step: the small-batch streaming GEMM shapes (batch <= 16,
# 64+ columns) and the tiled ones (batch 64), with and without bias, decay, dx.
DENSE_SGD_CASES = [(10, 640, 1000), (10, 1000, 10), (7, 33, 70), (1, 5, 65), (16, 100, 64),
                   (64, 130, 100), (3, 7, 5)]


@pytest.mark.parametrize("n,i,o", DENSE_SGD_CASES)
@pytest.mark.parametrize("bias, wd, need_dx", [(True, 0.0, True), (False, 0.05, True),
                                               (True, 0.01, False)])
def test_dense_backward_sgd(n, i, o, bias, wd, need_dx, threads, isa):
    rng = np.random.default_rng(n * 7 + i + o)
    x = rng.standard_normal((n, i)).astype(np.float32)
    w = rng.standard_normal((i, o)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) if bias else None
    dout = rng.standard_normal((n, o)).astype(np.float32)
    lr = 0.03
    # The oracle: float64 gradients by the reference, then the SGD step by hand.
    rdx, rdw, rdb = reference.dense_backward(*as64(dout, x, w))
    want_w = w.astype(np.float64) - lr * (rdw + wd * w.astype(np.float64))
    want_b = None if b is None else b.astype(np.float64) - lr * rdb
    w_got, b_got = w.copy(), None if b is None else b.copy()
    dx = ops.dense_backward_sgd(dout, x, w_got, b_got, lr=lr, weight_decay=wd, need_dx=need_dx)
    if need_dx:
        assert_close(dx, rdx, **_tol(o), name="dx")
    else:
        assert dx is None
    assert_close(w_got, want_w, rtol=1e-5, atol=lr * 1e-6 * max(n, 1) * 10, name="w")
    if b is not None:
        assert_close(b_got, want_b, rtol=1e-5, atol=lr * 1e-6 * n * 10, name="b")
    # The reference op itself, in float64, agrees with the hand-made step.
    w64, b64 = w.astype(np.float64), None if b is None else b.astype(np.float64)
    rdx2 = reference.dense_backward_sgd(*as64(dout, x), w64, b64, lr=lr, weight_decay=wd,
                                        need_dx=need_dx)
    np.testing.assert_allclose(w64, want_w, rtol=1e-12, atol=1e-12)
    if need_dx:
        np.testing.assert_allclose(rdx2, rdx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,i,o", [(10, 1000, 1000), (10, 640, 1000), (16, 65, 64), (1, 200, 33),
                                   (10, 1000, 10), (17, 100, 100), (3, 64, 40)])
def test_dense_backward_sgd_one_pass_equals_two_gemms(n, i, o, threads, isa):
    """The fused pass over w (small batch: dx's columns, then the same rows of w
    updated while in cache) gives the bits of the two GEMMs it replaces."""
    rng = np.random.default_rng(n + i + o)
    x = rng.standard_normal((n, i)).astype(np.float32)
    w = rng.standard_normal((i, o)).astype(np.float32)
    dout = rng.standard_normal((n, o)).astype(np.float32)
    lr, wd = 0.03, 0.01
    want_dx = ops.gemm(dout, w, trans_b=True)
    want_w = ops.gemm(x, dout, w.copy(), alpha=-lr, beta=1.0 - np.float32(lr) * np.float32(wd),
                      trans_a=True)
    w_got = w.copy()
    dx = ops.dense_backward_sgd(dout, x, w_got, None, lr=lr, weight_decay=wd)
    np.testing.assert_array_equal(dx, want_dx)
    np.testing.assert_array_equal(w_got, want_w)


@pytest.mark.parametrize("backend", [ops, reference], ids=["ops", "reference"])
def test_dense_backward_sgd_bad_input(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    w = rng.standard_normal((6, 3)).astype(np.float32)
    b = np.zeros(3, np.float32)
    dout = rng.standard_normal((4, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="dout has shape"):
        backend.dense_backward_sgd(dout[:, :2], x, w, b, lr=0.1)
    with pytest.raises(ValueError, match="b has shape"):
        backend.dense_backward_sgd(dout, x, w, np.zeros(4, np.float32), lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        backend.dense_backward_sgd(dout, x, w, b, lr=-1.0)
    with pytest.raises(TypeError, match="w must be a numpy.ndarray"):
        backend.dense_backward_sgd(dout, x, w.tolist(), b, lr=0.1)
    ro = w.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="w must be writeable"):
        backend.dense_backward_sgd(dout, x, ro, b, lr=0.1)
    with pytest.raises(ValueError, match="must not share memory"):
        backend.dense_backward_sgd(dout, x, w, dout[0], lr=0.1)  # b is a row of dout
    if backend is ops:
        with pytest.raises(TypeError, match="float32"):
            backend.dense_backward_sgd(dout, x, w.astype(np.float64), b, lr=0.1)


def test_reference_dtype_follows_inputs():
    x, w, b, dout = _conv_data((2, 2, 5, 5, 3, 3, 1, 1))
    for dtype in (np.float32, np.float64):
        xs, ws, bs, ds = (a.astype(dtype) for a in (x, w, b, dout))
        assert reference.conv2d(xs, ws, bs, 1, 1).dtype == dtype
        assert all(g.dtype == dtype for g in reference.conv2d_backward(ds, xs, ws, 1, 1))
        assert reference.im2col(xs, 3).dtype == dtype
        xd, wd, dd = xs[:, :, 0, 0], ws[:, :, 0, 0].T, ds[:, :, 0, 0]   # (2,2), (2,3), (2,3)
        assert reference.dense(xd, wd, bs).dtype == dtype
        assert all(g.dtype == dtype for g in reference.dense_backward(dd, xd, wd))


def test_reference_dense_backward_finite_differences():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4))
    w = rng.standard_normal((4, 5))
    b = rng.standard_normal(5)
    dout = rng.standard_normal((3, 5))

    def loss():
        return float(np.sum(reference.dense(x, w, b) * dout))

    dx, dw, db = reference.dense_backward(dout, x, w)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, numeric_grad(loss, w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, numeric_grad(loss, b), rtol=1e-6, atol=1e-7)
