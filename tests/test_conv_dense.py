"""im2col, col2im, conv2d, dense: native (float32) against the float64 reference,
the reference against finite differences, and bad input on both backends and on _core."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import as64, assert_close, numeric_grad
from hypothesis import given, settings
from hypothesis import strategies as st

import fastcnn
from fastcnn import _core, ops, reference

BACKENDS = [reference, ops]

# ------------------------------------------------------------------ cases --
# (N, C, H, W, K, kernel, stride, padding); kernel/stride/padding as int or (h, w).
HAND_CASES = [
    (1, 1, 1, 1, 1, 1, 1, 0),                    # smallest possible
    (1, 1, 5, 5, 1, 5, 1, 0),                    # kernel == image: 1x1 output
    (3, 1, 9, 7, 4, (3, 2), (2, 1), (1, 0)),     # non-square everything
    (1, 3, 11, 13, 1, 7, 3, 3),
    (5, 2, 6, 17, 3, (5, 7), (1, 3), (2, 3)),
    (2, 4, 4, 4, 6, 3, 1, 1),
    (1, 2, 3, 3, 2, (7, 5), 2, (2, 1)),          # kernel only fits the padded image
    (3, 3, 10, 10, 5, 1, 2, 0),                  # 1x1 kernel, stride skips pixels
    (2, 1, 8, 2, 3, (2, 7), (3, 2), (0, 3)),     # padding wider than the image
]


def _random_cases(count: int, seed: int):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        n = int(rng.choice([1, 2, 3, 5]))
        c, k = int(rng.integers(1, 5)), int(rng.integers(1, 6))
        kh, kw = (int(v) for v in rng.integers(1, 8, size=2))
        sh, sw = (int(v) for v in rng.integers(1, 4, size=2))
        ph, pw = (int(v) for v in rng.integers(0, 4, size=2))
        h = max(1, kh - 2 * ph) + int(rng.integers(0, 12))
        w = max(1, kw - 2 * pw) + int(rng.integers(0, 12))
        cases.append((n, c, h, w, k, (kh, kw), (sh, sw), ph if ph == pw else (ph, pw)))
    return cases


# Shapes for the strategies of conv.cpp: per-image GEMMs when OH*OW >= 256
# (with 2 threads the images of a chunk are shared out among the threads),
# else one GEMM per chunk through a K-row matrix; chunks of about 1 MiB of
# scratch (at least one image), the last one short.
PATH_CASES = [
    (2, 3, 16, 16, 5, 3, 1, 1),                  # OH*OW = 256: per image, one chunk
    (1, 2, 17, 19, 3, 2, 1, 0),                  # per image, one image: one thread only
    (3, 1, 29, 31, 6, (5, 3), 1, 0),             # per image, 3 images over 2 threads
    (3, 3, 17, 15, 5, 1, 1, 0),                  # OH*OW = 255: batched, one chunk
    (5, 3, 30, 26, 4, 7, 1, 3),                  # per image, chunks of 2 images: 2+2+1
    (3, 2, 40, 37, 3, 3, 2, 1),                  # per image, stride 2
    (2, 16, 20, 20, 3, 7, 1, 3),                 # per image, one image > 1 MiB: NB = 1
    (9, 20, 12, 12, 40, 5, 1, 0),                # batched (book conv2), chunks 7+2
    (2, 64, 15, 15, 3, 7, 1, 3),                 # batched, one image > 1 MiB: NB = 1
]

CONV_CASES = HAND_CASES + PATH_CASES + _random_cases(12, seed=20240611)


def _case_id(case):
    n, c, h, w, k, ks, s, p = case
    return f"x{n}x{c}x{h}x{w}-k{k}-ks{ks}-s{s}-p{p}".replace(" ", "")


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _tol(terms: int) -> dict:
    """Tolerances for float32 sums of `terms` products of O(1) numbers."""
    return dict(rtol=1e-4, atol=max(1e-5, 1e-6 * terms))


def _conv_data(case, seed=0):
    n, c, h, w, k, ks, s, p = case
    kh, kw = _pair(ks)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c, kh, kw)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    oh = (h + 2 * _pair(p)[0] - kh) // _pair(s)[0] + 1
    ow = (w + 2 * _pair(p)[1] - kw) // _pair(s)[1] + 1
    dout = rng.standard_normal((n, k, oh, ow)).astype(np.float32)
    return x, wt, b, dout


# ---------------------------------------------------------------- conv2d --


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv2d_forward(case, threads, isa):
    x, w, b, _ = _conv_data(case)
    s, p = case[6], case[7]
    ckk = w[0].size
    want = reference.conv2d(*as64(x, w, b), stride=s, padding=p)
    assert_close(ops.conv2d(x, w, b, stride=s, padding=p), want, **_tol(ckk), name="out")
    want = reference.conv2d(*as64(x, w), stride=s, padding=p)
    assert_close(ops.conv2d(x, w, None, s, p), want, **_tol(ckk), name="out (b=None)")


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv2d_forward_relu(case, threads, isa):
    """relu=True is relu of the plain output (both paths: per image and batched),
    NaN kept, and about half the values clipped to exactly 0."""
    x, w, b, _ = _conv_data(case)
    s, p = case[6], case[7]
    x.flat[len(x.flat) // 3] = np.nan
    want = reference.relu(reference.conv2d(*as64(x, w, b), stride=s, padding=p))
    got = ops.conv2d(x, w, b, stride=s, padding=p, relu=True)
    assert_close(got, want, **_tol(w[0].size), name="relu(out)")
    assert np.array_equal(got == 0, want == 0)
    assert_close(reference.conv2d(*as64(x, w, b), stride=s, padding=p, relu=True), want,
                 rtol=0, atol=0, name="reference relu=True")
    for backend in (ops, reference):
        with pytest.raises(TypeError, match="relu must be a bool"):
            backend.conv2d(x, w, b, stride=s, padding=p, relu=1)


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv2d_backward(case, threads, isa):
    x, w, _, dout = _conv_data(case)
    s, p = case[6], case[7]
    dx, dw, db = ops.conv2d_backward(dout, x, w, stride=s, padding=p)
    rdx, rdw, rdb = reference.conv2d_backward(*as64(dout, x, w), stride=s, padding=p)
    per_image = dout[0, 0].size * x.shape[0]
    assert_close(dx, rdx, **_tol(w.shape[0] * w[0, 0].size), name="dx")
    assert_close(dw, rdw, **_tol(per_image), name="dw")
    assert_close(db, rdb, **_tol(per_image), name="db")
    for got in (dx, dw, db):
        assert got.dtype == np.float32 and got.flags.c_contiguous

    no_dx = ops.conv2d_backward(dout, x, w, stride=s, padding=p, need_dx=False)
    assert no_dx[0] is None
    assert_close(no_dx[1], rdw, **_tol(per_image), name="dw (need_dx=False)")
    assert_close(no_dx[2], rdb, **_tol(per_image), name="db (need_dx=False)")
    assert reference.conv2d_backward(dout, x, w, s, p, need_dx=False)[0] is None


def test_conv2d_many_chunks(threads):
    """A large batch (column scratch 67 MiB, per-image GEMMs), so forward and
    backward run in many chunks (the last one short) and dw, db sum over 401
    images. The oracle runs the float64 reference on slices of the batch and
    sums the weight gradients."""
    n, c, h, w, k, ks, pad = 401, 2, 23, 19, 3, 7, 3
    ohw, ckk = h * w, c * ks * ks                 # 7x7 kernel, padding 3, stride 1: OH, OW = H, W
    scratch_bytes = ckk * ohw * n * 4             # conv.cpp: CKK * OHW floats per image
    assert ohw >= 256 and scratch_bytes > 64 * (1 << 20)
    x, wt, b, dout = _conv_data((n, c, h, w, k, ks, 1, pad), seed=3)

    out = ops.conv2d(x, wt, b, padding=pad)
    dx, dw, db = ops.conv2d_backward(dout, x, wt, padding=pad)
    rdw = np.zeros(wt.shape)
    rdb = np.zeros(k)
    step = 64
    for n0 in range(0, n, step):
        sl = slice(n0, n0 + step)
        xs, ws, bs, ds = as64(x[sl], wt, b, dout[sl])
        assert_close(out[sl], reference.conv2d(xs, ws, bs, padding=pad), **_tol(ckk),
                     name=f"out[{n0}:]")
        sdx, sdw, sdb = reference.conv2d_backward(ds, xs, ws, padding=pad)
        assert_close(dx[sl], sdx, **_tol(k * ks * ks), name=f"dx[{n0}:]")
        rdw += sdw
        rdb += sdb
    assert_close(dw, rdw, **_tol(n * ohw), name="dw")
    assert_close(db, rdb, **_tol(n * ohw), name="db")


def test_conv2d_threads_agree():
    x, w, b, dout = _conv_data((5, 3, 13, 11, 4, (3, 5), (1, 2), (1, 2)), seed=7)
    before = fastcnn.get_num_threads()
    results = []
    try:
        for t in (1, 2):
            fastcnn.set_num_threads(t)
            results.append((ops.conv2d(x, w, b, (1, 2), (1, 2)),
                            *ops.conv2d_backward(dout, x, w, (1, 2), (1, 2)),
                            ops.im2col(x, (3, 5), (1, 2), (1, 2))))
    finally:
        fastcnn.set_num_threads(before)
    for one, two in zip(*results):
        assert_close(two, one, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(results[0][-1], results[1][-1])  # im2col copies exactly


def test_conv2d_per_image_path_threads_agree(isa):
    """On the per-image path (OH*OW >= 256) with 2 threads the images are shared
    out among the threads and each image's dw is summed in image order; the
    groups' GEMMs run on one thread each (sgemm_serial), however many threads
    there are: 1 and 2 threads give the same bits, on every call."""
    x, w, b, dout = _conv_data((5, 3, 30, 26, 4, 7, 1, 3), seed=11)
    before = fastcnn.get_num_threads()
    results = {}
    try:
        for t in (1, 2, 2, 1):
            fastcnn.set_num_threads(t)
            got = (ops.conv2d(x, w, b, 1, 3), *ops.conv2d_backward(dout, x, w, 1, 3))
            if t in results:
                for first, again in zip(results[t], got):
                    np.testing.assert_array_equal(again, first)
            results[t] = got
    finally:
        fastcnn.set_num_threads(before)
    for one, two in zip(results[1], results[2]):
        np.testing.assert_array_equal(two, one)


def test_conv2d_inputs_any_float_dtype_and_layout():
    """ops converts read-only inputs (float64, non-contiguous) to float32 copies."""
    x, w, b, dout = _conv_data((2, 3, 9, 8, 2, 3, 1, 1), seed=5)
    x64 = np.asfortranarray(x.astype(np.float64))
    w_strided = np.repeat(w, 2, axis=3)[..., ::2]          # a non-contiguous view of w
    np.testing.assert_array_equal(w_strided, w)
    assert not w_strided.flags.c_contiguous
    got = ops.conv2d(x64, w_strided, b.astype(np.float64), padding=1)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, ops.conv2d(x, w, b, padding=1))
    got = ops.conv2d_backward(np.asfortranarray(dout), x64, w_strided, padding=1)
    for g, want in zip(got, ops.conv2d_backward(dout, x, w, padding=1)):
        np.testing.assert_array_equal(g, want)


def test_reference_conv2d_by_definition():
    """The reference against the sum in the README's definition, written out."""
    x, w, b, _ = _conv_data((2, 3, 6, 7, 4, (3, 2), (2, 3), (1, 2)), seed=11)
    x, w, b = as64(x, w, b)
    (sh, sw), (ph, pw) = (2, 3), (1, 2)
    out = reference.conv2d(x, w, b, (sh, sw), (ph, pw))
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    for oh in range(out.shape[2]):
        for ow in range(out.shape[3]):
            win = xp[:, :, oh * sh:oh * sh + 3, ow * sw:ow * sw + 2]   # (N, C, KH, KW)
            want = np.einsum("nchw,kchw->nk", win, w) + b
            np.testing.assert_allclose(out[:, :, oh, ow], want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------- im2col/col2im --


def _im2col_by_definition(x, kh, kw, sh, sw, ph, pw):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    cols = np.zeros((c * kh * kw, n * oh * ow), x.dtype)
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                for ni in range(n):
                    for a in range(oh):
                        for q in range(ow):
                            y, z = a * sh - ph + i, q * sw - pw + j
                            if 0 <= y < h and 0 <= z < w:
                                cols[(ci * kh + i) * kw + j, (ni * oh + a) * ow + q] = x[ni, ci, y, z]
    return cols


@pytest.mark.parametrize("case", HAND_CASES[:7], ids=_case_id)
def test_im2col_values(case):
    x, w, _, _ = _conv_data(case)
    kh, kw = w.shape[2:]
    (sh, sw), (ph, pw) = _pair(case[6]), _pair(case[7])
    want = _im2col_by_definition(x.astype(np.float64), kh, kw, sh, sw, ph, pw)
    np.testing.assert_array_equal(reference.im2col(x.astype(np.float64), (kh, kw), case[6],
                                                   case[7]), want)
    np.testing.assert_array_equal(ops.im2col(x, (kh, kw), case[6], case[7]), want)


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_im2col_col2im_native(case, threads):
    x, w, _, _ = _conv_data(case)
    ks, s, p = w.shape[2:], case[6], case[7]
    cols = ops.im2col(x, ks, s, p)
    np.testing.assert_array_equal(cols, reference.im2col(x, ks, s, p))
    c = np.random.default_rng(1).standard_normal(cols.shape).astype(np.float32)
    overlap = -(-ks[0] // _pair(s)[0]) * -(-ks[1] // _pair(s)[1])   # entries summed per pixel
    assert_close(ops.col2im(c, x.shape, ks, s, p), reference.col2im(as64(c)[0], x.shape, ks, s, p),
                 **_tol(overlap), name="col2im")


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("case", HAND_CASES[2:] + CONV_CASES[-4:], ids=_case_id)
def test_im2col_col2im_adjoint(case, backend):
    """<im2col(x), c> == <x, col2im(c)>."""
    x, w, _, _ = _conv_data(case)
    ks, s, p = w.shape[2:], case[6], case[7]
    dtype = np.float64 if backend is reference else np.float32
    x = x.astype(dtype)
    cols = backend.im2col(x, ks, s, p)
    c = np.random.default_rng(2).standard_normal(cols.shape).astype(dtype)
    dx = backend.col2im(c, x.shape, ks, s, p)
    assert cols.dtype == dtype and dx.dtype == dtype and dx.shape == x.shape
    lhs = np.dot(cols.ravel().astype(np.float64), c.ravel())
    rhs = np.dot(x.ravel().astype(np.float64), dx.ravel())
    scale = np.abs(cols).sum() * 4 + 1.0
    assert abs(lhs - rhs) <= (1e-12 if backend is reference else 1e-6) * scale


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       kh=st.integers(1, 7), kw=st.integers(1, 7), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 3), pw=st.integers(0, 3))
def test_im2col_property(n, c, h, w, kh, kw, sh, sw, ph, pw):
    """Native im2col copies exactly what the reference does, for any geometry
    that fits; col2im of ones counts how many windows cover each pixel."""
    if kh > h + 2 * ph or kw > w + 2 * pw:
        return
    x = np.random.default_rng(n * 1000 + h * 10 + w).standard_normal((n, c, h, w))
    x32 = x.astype(np.float32)
    args = ((kh, kw), (sh, sw), (ph, pw))
    np.testing.assert_array_equal(ops.im2col(x32, *args), reference.im2col(x32, *args))
    ones = np.ones_like(ops.im2col(x32, *args))
    np.testing.assert_array_equal(ops.col2im(ones, x.shape, *args),
                                  reference.col2im(ones.astype(np.float64), x.shape, *args))


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


# --------------------------------------------------- finite differences --


def test_reference_conv2d_backward_finite_differences():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, 5, 4))
    w = rng.standard_normal((3, 2, 3, 2))
    b = rng.standard_normal(3)
    s, p = (2, 1), (1, 2)
    dout = rng.standard_normal(reference.conv2d(x, w, b, s, p).shape)

    def loss():
        return float(np.sum(reference.conv2d(x, w, b, s, p) * dout))

    dx, dw, db = reference.conv2d_backward(dout, x, w, s, p)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, numeric_grad(loss, w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, numeric_grad(loss, b), rtol=1e-6, atol=1e-7)


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


# ------------------------------------------------------------- bad input --

_X = np.zeros((2, 3, 6, 5), np.float32)
_W = np.zeros((4, 3, 3, 3), np.float32)
_B = np.zeros(4, np.float32)
_DOUT = np.zeros((2, 4, 4, 3), np.float32)      # conv2d(_X, _W) with stride 1, padding 0
_COLS = np.zeros((27, 24), np.float32)          # im2col(_X, 3)
_XD = np.zeros((3, 7), np.float32)
_WD = np.zeros((7, 5), np.float32)
_DD = np.zeros((3, 5), np.float32)

BAD = {
    "conv x 3-D": (ValueError, lambda m: m.conv2d(_X[0], _W)),
    "conv x int": (TypeError, lambda m: m.conv2d(_X.astype(np.int32), _W)),
    "conv x str": (TypeError, lambda m: m.conv2d("not an array", _W)),
    "conv w 3-D": (ValueError, lambda m: m.conv2d(_X, _W[0])),
    "conv w int": (TypeError, lambda m: m.conv2d(_X, _W.astype(np.int64))),
    "conv channels": (ValueError, lambda m: m.conv2d(_X, _W[:, :2])),
    "conv stride 0": (ValueError, lambda m: m.conv2d(_X, _W, stride=0)),
    "conv stride (1, 0)": (ValueError, lambda m: m.conv2d(_X, _W, stride=(1, 0))),
    "conv stride float": (TypeError, lambda m: m.conv2d(_X, _W, stride=1.0)),
    "conv padding -1": (ValueError, lambda m: m.conv2d(_X, _W, padding=-1)),
    "conv padding (0, -2)": (ValueError, lambda m: m.conv2d(_X, _W, padding=(0, -2))),
    "conv padding triple": (ValueError, lambda m: m.conv2d(_X, _W, padding=(1, 1, 1))),
    "conv empty batch": (ValueError, lambda m: m.conv2d(_X[:0], _W)),
    "conv empty image": (ValueError, lambda m: m.conv2d(_X[:, :, :0], _W)),
    "conv kernel too big": (ValueError, lambda m: m.conv2d(_X[:, :, :2], _W)),
    "conv kernel too big padded": (ValueError, lambda m: m.conv2d(_X, np.zeros((1, 3, 9, 1)),
                                                                  padding=1)),
    "conv bias shape": (ValueError, lambda m: m.conv2d(_X, _W, _B[:3])),
    "conv bias 2-D": (ValueError, lambda m: m.conv2d(_X, _W, _B[None])),
    "conv bias int": (TypeError, lambda m: m.conv2d(_X, _W, _B.astype(int))),
    "conv_bw dout shape": (ValueError, lambda m: m.conv2d_backward(_DOUT[:, :, :3], _X, _W)),
    "conv_bw dout stride": (ValueError, lambda m: m.conv2d_backward(_DOUT, _X, _W, stride=2)),
    "conv_bw dout int": (TypeError, lambda m: m.conv2d_backward(_DOUT.astype(int), _X, _W)),
    "conv_bw channels": (ValueError, lambda m: m.conv2d_backward(_DOUT, _X, _W[:, :1])),
    "conv_bw empty batch": (ValueError, lambda m: m.conv2d_backward(_DOUT[:0], _X[:0], _W)),
    "im2col x 2-D": (ValueError, lambda m: m.im2col(_X[0, 0], 3)),
    "im2col x int": (TypeError, lambda m: m.im2col(_X.astype(np.int8), 3)),
    "im2col kernel 0": (ValueError, lambda m: m.im2col(_X, 0)),
    "im2col kernel too big": (ValueError, lambda m: m.im2col(_X, (3, 6))),
    "im2col stride 0": (ValueError, lambda m: m.im2col(_X, 3, stride=(0, 1))),
    "im2col padding -1": (ValueError, lambda m: m.im2col(_X, 3, padding=-1)),
    "col2im cols shape": (ValueError, lambda m: m.col2im(_COLS[:, 1:], _X.shape, 3)),
    "col2im cols 1-D": (ValueError, lambda m: m.col2im(_COLS.ravel(), _X.shape, 3)),
    "col2im cols int": (TypeError, lambda m: m.col2im(_COLS.astype(int), _X.shape, 3)),
    "col2im x_shape 3": (ValueError, lambda m: m.col2im(_COLS, _X.shape[1:], 3)),
    "col2im x_shape float": (TypeError, lambda m: m.col2im(_COLS, (2, 3, 6.0, 5), 3)),
    "col2im empty batch": (ValueError, lambda m: m.col2im(_COLS[:, :0], (0, 3, 6, 5), 3)),
    "col2im kernel too big": (ValueError, lambda m: m.col2im(_COLS, _X.shape, 7)),
    "dense x 1-D": (ValueError, lambda m: m.dense(_XD[0], _WD)),
    "dense x int": (TypeError, lambda m: m.dense(_XD.astype(int), _WD)),
    "dense w 3-D": (ValueError, lambda m: m.dense(_XD, _WD[None])),
    "dense features": (ValueError, lambda m: m.dense(_XD, _WD[1:])),
    "dense empty batch": (ValueError, lambda m: m.dense(_XD[:0], _WD)),
    "dense bias shape": (ValueError, lambda m: m.dense(_XD, _WD, np.zeros(4, np.float32))),
    "dense_bw dout shape": (ValueError, lambda m: m.dense_backward(_DD[:, 1:], _XD, _WD)),
    "dense_bw dout int": (TypeError, lambda m: m.dense_backward(_DD.astype(int), _XD, _WD)),
    "dense_bw features": (ValueError, lambda m: m.dense_backward(_DD, _XD[:, 1:], _WD)),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_same_error(name):
    """Both backends raise the same exception type with the same message."""
    exc, call = BAD[name]
    messages = []
    for backend in BACKENDS:
        with pytest.raises(exc) as info:
            call(backend)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


_F = np.float32


def _e(*shape):
    return np.empty(shape, _F)


_X4 = np.ones((2, 3, 6, 5), _F)
_W4 = np.ones((4, 3, 3, 3), _F)


def _aliased(which: str):
    """Direct _core calls whose output shares memory with another argument."""
    buf = _e(27 * 24)
    if which == "im2col":         # cols overlaps x
        _core.im2col(buf.reshape(27, 24), buf[:180].reshape(2, 3, 6, 5), 3, 3, 1, 1, 0, 0)
    elif which == "out is x":     # a 1x1 conv from 3 to 3 channels, written over its input
        x = buf[:180].reshape(2, 3, 6, 5)
        _core.conv2d_forward(x, x, np.ones((3, 3, 1, 1), _F), None, 1, 1, 0, 0)
    elif which == "dx overlaps dw":
        _core.conv2d_backward(buf[:180].reshape(2, 3, 6, 5), buf[:27].reshape(1, 3, 3, 3), None,
                              _e(2, 1, 4, 3), _X4, _W4[:1].copy(), 1, 1, 0, 0)
    elif which == "dw overlaps dout":
        _core.conv2d_backward(None, buf[:108].reshape(4, 3, 3, 3), None,
                              buf[:96].reshape(2, 4, 4, 3), _X4, _W4, 1, 1, 0, 0)
    elif which == "dense out is x":
        _core.dense_forward(buf[:21].reshape(3, 7), buf[:21].reshape(3, 7), _e(7, 7), None)


CORE_BAD = {
    # im2col(cols, x, kh, kw, sh, sw, ph, pw)
    "im2col cols shape": (ValueError, lambda: _core.im2col(_e(27, 23), _X4, 3, 3, 1, 1, 0, 0)),
    "im2col cols 1-D": (ValueError, lambda: _core.im2col(_e(27 * 24), _X4, 3, 3, 1, 1, 0, 0)),
    "im2col cols f64": (TypeError, lambda: _core.im2col(np.empty((27, 24)), _X4, 3, 3, 1, 1, 0, 0)),
    "im2col cols strided": (TypeError, lambda: _core.im2col(_e(27, 48)[:, ::2], _X4,
                                                            3, 3, 1, 1, 0, 0)),
    "im2col cols readonly": (ValueError, lambda: _core.im2col(
        np.lib.stride_tricks.as_strided(_e(27, 24), writeable=False), _X4, 3, 3, 1, 1, 0, 0)),
    "im2col cols list": (TypeError, lambda: _core.im2col([[0.0]], _X4, 3, 3, 1, 1, 0, 0)),
    "im2col x 3-D": (ValueError, lambda: _core.im2col(_e(27, 24), _X4[0], 3, 3, 1, 1, 0, 0)),
    "im2col x f64": (TypeError, lambda: _core.im2col(_e(27, 24), _X4.astype(np.float64),
                                                     3, 3, 1, 1, 0, 0)),
    "im2col stride 0": (ValueError, lambda: _core.im2col(_e(27, 24), _X4, 3, 3, 0, 1, 0, 0)),
    "im2col padding -1": (ValueError, lambda: _core.im2col(_e(27, 24), _X4, 3, 3, 1, 1, -1, 0)),
    "im2col kernel 0": (ValueError, lambda: _core.im2col(_e(0, 24), _X4, 0, 3, 1, 1, 0, 0)),
    "im2col kernel huge": (ValueError, lambda: _core.im2col(_e(27, 24), _X4, 2**62, 3, 1, 1, 0, 0)),
    "im2col padding huge": (ValueError, lambda: _core.im2col(_e(27, 24), _X4, 3, 3, 1, 1,
                                                             2**62, 0)),
    "im2col kernel too big": (ValueError, lambda: _core.im2col(_e(27, 24), _X4, 7, 3, 1, 1, 0, 0)),
    "im2col empty batch": (ValueError, lambda: _core.im2col(_e(27, 0), _X4[:0], 3, 3, 1, 1, 0, 0)),
    "im2col aliased": (ValueError, lambda: _aliased("im2col")),
    # col2im(dx, cols, kh, kw, sh, sw, ph, pw)
    "col2im cols shape": (ValueError, lambda: _core.col2im(_e(2, 3, 6, 5), _e(27, 25),
                                                           3, 3, 1, 1, 0, 0)),
    "col2im dx shape": (ValueError, lambda: _core.col2im(_e(2, 3, 6, 6), _e(27, 24),
                                                         3, 3, 1, 1, 0, 0)),
    "col2im dx 2-D": (ValueError, lambda: _core.col2im(_e(6, 5), _e(9, 12), 3, 3, 1, 1, 0, 0)),
    "col2im dx f64": (TypeError, lambda: _core.col2im(np.empty((2, 3, 6, 5)), _e(27, 24),
                                                      3, 3, 1, 1, 0, 0)),
    # conv2d_forward(out, x, w, b, sh, sw, ph, pw)
    "conv out shape": (ValueError, lambda: _core.conv2d_forward(_e(2, 4, 4, 4), _X4, _W4, None,
                                                                1, 1, 0, 0)),
    "conv out f64": (TypeError, lambda: _core.conv2d_forward(np.empty((2, 4, 4, 3)), _X4, _W4,
                                                             None, 1, 1, 0, 0)),
    "conv channels": (ValueError, lambda: _core.conv2d_forward(_e(2, 4, 4, 3), _X4, _W4[:, :2].copy(),
                                                               None, 1, 1, 0, 0)),
    "conv bias shape": (ValueError, lambda: _core.conv2d_forward(_e(2, 4, 4, 3), _X4, _W4,
                                                                 _e(5), 1, 1, 0, 0)),
    "conv bias 2-D": (ValueError, lambda: _core.conv2d_forward(_e(2, 4, 4, 3), _X4, _W4,
                                                               _e(1, 4), 1, 1, 0, 0)),
    "conv w 2-D": (ValueError, lambda: _core.conv2d_forward(_e(2, 4, 4, 3), _X4, _e(4, 27),
                                                            None, 1, 1, 0, 0)),
    "conv w empty": (ValueError, lambda: _core.conv2d_forward(_e(2, 0, 4, 3), _X4, _e(0, 3, 3, 3),
                                                              None, 1, 1, 0, 0)),
    "conv stride 0": (ValueError, lambda: _core.conv2d_forward(_e(2, 4, 4, 3), _X4, _W4, None,
                                                               1, 0, 0, 0)),
    "conv kernel too big": (ValueError, lambda: _core.conv2d_forward(
        _e(2, 1, 1, 1), _X4, _e(1, 3, 7, 3), None, 1, 1, 0, 0)),
    "conv out is x": (ValueError, lambda: _aliased("out is x")),
    "conv stride not int": (TypeError, lambda: _core.conv2d_forward(_e(2, 4, 4, 3), _X4, _W4,
                                                                    None, 1.5, 1, 0, 0)),
    # conv2d_backward(dx, dw, db, dout, x, w, sh, sw, ph, pw)
    "conv_bw dout shape": (ValueError, lambda: _core.conv2d_backward(
        _e(2, 3, 6, 5), _e(4, 3, 3, 3), _e(4), _e(2, 4, 4, 4), _X4, _W4, 1, 1, 0, 0)),
    "conv_bw dx shape": (ValueError, lambda: _core.conv2d_backward(
        _e(2, 3, 6, 4), _e(4, 3, 3, 3), _e(4), _e(2, 4, 4, 3), _X4, _W4, 1, 1, 0, 0)),
    "conv_bw dw shape": (ValueError, lambda: _core.conv2d_backward(
        None, _e(4, 3, 3, 2), _e(4), _e(2, 4, 4, 3), _X4, _W4, 1, 1, 0, 0)),
    "conv_bw dw None": (TypeError, lambda: _core.conv2d_backward(
        None, None, _e(4), _e(2, 4, 4, 3), _X4, _W4, 1, 1, 0, 0)),
    "conv_bw db shape": (ValueError, lambda: _core.conv2d_backward(
        None, _e(4, 3, 3, 3), _e(3), _e(2, 4, 4, 3), _X4, _W4, 1, 1, 0, 0)),
    "conv_bw dx overlaps dw": (ValueError, lambda: _aliased("dx overlaps dw")),
    "conv_bw dw overlaps dout": (ValueError, lambda: _aliased("dw overlaps dout")),
    # dense_forward(out, x, w, b), dense_backward(dx, dw, db, dout, x, w)
    "dense out shape": (ValueError, lambda: _core.dense_forward(_e(3, 4), _e(3, 7), _e(7, 5), None)),
    "dense features": (ValueError, lambda: _core.dense_forward(_e(3, 5), _e(3, 7), _e(6, 5), None)),
    "dense bias": (ValueError, lambda: _core.dense_forward(_e(3, 5), _e(3, 7), _e(7, 5), _e(4))),
    "dense x 3-D": (ValueError, lambda: _core.dense_forward(_e(3, 5), _e(3, 7, 1), _e(7, 5), None)),
    "dense x f64": (TypeError, lambda: _core.dense_forward(_e(3, 5), np.empty((3, 7)), _e(7, 5),
                                                           None)),
    "dense out is x": (ValueError, lambda: _aliased("dense out is x")),
    "dense empty": (ValueError, lambda: _core.dense_forward(_e(0, 5), _e(0, 7), _e(7, 5), None)),
    "dense_bw dout": (ValueError, lambda: _core.dense_backward(None, _e(7, 5), None, _e(3, 4),
                                                               _e(3, 7), _e(7, 5))),
    "dense_bw dx": (ValueError, lambda: _core.dense_backward(_e(3, 6), _e(7, 5), None, _e(3, 5),
                                                             _e(3, 7), _e(7, 5))),
    "dense_bw dw": (ValueError, lambda: _core.dense_backward(None, _e(5, 7), None, _e(3, 5),
                                                             _e(3, 7), _e(7, 5))),
    "dense_bw db": (ValueError, lambda: _core.dense_backward(None, _e(7, 5), _e(7), _e(3, 5),
                                                             _e(3, 7), _e(7, 5))),
}


@pytest.mark.parametrize("name", list(CORE_BAD))
def test_core_rejects_bad_shapes(name):
    exc, call = CORE_BAD[name]
    with pytest.raises(exc):
        call()


def test_core_good_call_direct():
    """The same direct calls with consistent arguments work (the bad ones above differ in one place)."""
    cols = _e(27, 24)
    _core.im2col(cols, _X4, 3, 3, 1, 1, 0, 0)
    np.testing.assert_array_equal(cols, reference.im2col(_X4, 3))
    out = _e(2, 4, 4, 3)
    _core.conv2d_forward(out, _X4, _W4, None, 1, 1, 0, 0)
    np.testing.assert_array_equal(out, np.full(out.shape, 27, _F))
    dw = _e(4, 3, 3, 3)
    _core.conv2d_backward(None, dw, None, np.ones((2, 4, 4, 3), _F), _X4, _W4, 1, 1, 0, 0)
    np.testing.assert_array_equal(dw, np.full(dw.shape, 24, _F))
