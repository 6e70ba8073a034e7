"""conv2d forward and backward: native (float32) against the float64 reference
on every shape of conv_cases, on 1 and 2 threads and every SIMD path; the
reference against the definition and against finite differences."""
from __future__ import annotations

import numpy as np
import pytest
from conv_cases import CONV_CASES, _case_id, _conv_data, _tol
from helpers import as64, assert_close, numeric_grad

import fastcnn
from fastcnn import ops, reference


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


# ----------------------------------------------------- a batch of one --

# One image on 1 and 2 threads, (C, H, W, K, kernel, stride, padding): the
# per-image and the batched GEMM paths and a stride, large enough that
# splitting the image between threads could be tempting.
BATCH_OF_ONE_CASES = [
    (17, 30, 31, 64, 3, 1, 1),   # one GEMM per image, 930 columns
    (64, 15, 15, 97, 3, 1, 0),   # the batched GEMM, 169 columns
    (16, 40, 37, 64, 5, 2, 2),   # stride 2, 380 columns
]


@pytest.mark.parametrize("case", BATCH_OF_ONE_CASES, ids=lambda c: "x1x{}x{}x{}-k{}-{}x{}-s{}-p{}".format(
    c[0], c[1], c[2], c[3], c[4], c[4], c[5], c[6]))
def test_batch_of_one_same_bits_on_1_and_2_threads(case, isa, keep_threads):
    """conv2d and the fused conv + max-pool on one image: 1, 2, 1 threads give the
    same bits, and they match the float64 reference."""
    c, h, w_, k, ks, s, p = case
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, c, h, w_)).astype(np.float32)
    w = rng.standard_normal((k, c, ks, ks)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    other = rng.standard_normal(x.shape).astype(np.float32)
    before = fastcnn.conv_algorithm()
    fastcnn.set_conv_algorithm("im2col")
    try:
        runs = []
        for t in (1, 2, 1):
            run = []
            for op in (lambda a: ops.conv2d(a, w, b, s, p),
                       lambda a: ops.conv2d(a, w, b, s, p, relu=True),
                       lambda a: ops.conv2d_maxpool(a, w, b, s, p, 2, relu=True)[0]):
                # First on other data and one thread, so scratch memory the
                # next call reuses holds wrong values wherever it would fail
                # to write.
                fastcnn.set_num_threads(1)
                op(other)
                fastcnn.set_num_threads(t)
                run.append(op(x))
            runs.append(run)
    finally:
        fastcnn.set_conv_algorithm(before)
    for run in runs[1:]:
        for got, first in zip(run, runs[0]):
            np.testing.assert_array_equal(got, first)
    want = reference.conv2d(*as64(x, w, b), stride=s, padding=p)
    assert_close(runs[0][0], want, **_tol(c * ks * ks), name="out")
    assert_close(runs[0][1], reference.relu(want), **_tol(c * ks * ks), name="relu(out)")
    pooled = reference.maxpool2d(reference.relu(want), 2)
    assert_close(runs[0][2], pooled, **_tol(c * ks * ks), name="pooled")


# (C, H, W, K, kernel, padding): a batch of one whose GEMMs have few columns in
# all (weights read in place, not packed: conv_passes.h, kRowsAMaxColumns) --
# the batched GEMM (64, 121, 30, 255, 147 columns; K not a multiple of the
# tile's rows) and one GEMM per image with the bias in it (256 columns).
FEW_COLUMN_CASES = [
    (20, 12, 12, 40, 5, 0),
    (32, 13, 13, 64, 3, 0),
    (5, 6, 7, 13, 2, 0),
    (3, 15, 17, 7, 3, 1),
    (2, 5, 51, 25, 3, 0),
    (4, 16, 16, 9, 3, 1),
]


@pytest.mark.parametrize("case", FEW_COLUMN_CASES, ids=lambda c: "x1x{}x{}x{}-k{}-{}x{}-p{}".format(
    c[0], c[1], c[2], c[3], c[4], c[4], c[5]))
def test_batch_of_one_same_bits_as_in_a_batch(case, isa):
    """An image alone (weights read in place) gives the bits it gives inside a
    batch of 6 (weights packed), with and without bias, and the reference's values."""
    c, h, w_, k, ks, p = case
    rng = np.random.default_rng(12)
    x = rng.standard_normal((6, c, h, w_)).astype(np.float32)
    w = rng.standard_normal((k, c, ks, ks)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    before = fastcnn.conv_algorithm()
    fastcnn.set_conv_algorithm("im2col")
    try:
        for bias in (b, None):
            batch = ops.conv2d(x, w, bias, 1, p)
            for i in (0, 4):
                np.testing.assert_array_equal(ops.conv2d(x[i:i + 1], w, bias, 1, p), batch[i:i + 1])
        want = reference.conv2d(x[:1].astype(np.float64), w.astype(np.float64),
                                b.astype(np.float64), 1, p)
        assert_close(ops.conv2d(x[:1], w, b, 1, p), want, rtol=1e-4, atol=1e-4, name="out")
    finally:
        fastcnn.set_conv_algorithm(before)
