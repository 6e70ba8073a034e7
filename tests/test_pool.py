"""Pooling: max, average, L2 and global average, forward and backward.

Native (float32) against the float64 reference on randomised geometries; ties
and NaNs routed to the same element by both backends; finite-difference checks
of the reference gradients; broadcast (strided) inputs. Pooling has no
SIMD-specific code, so only the thread count is varied (the `threads` fixture).
Bad arguments, to both backends and to _core: test_pool_bad_input.py."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from pool_cases import KINDS, _bwd, _fwd

import fastcnn
from fastcnn import ops, reference
from helpers import BACKENDS, as64, assert_close


def _random_cases(count, seed):
    """(N, C, H, W, size, stride) geometries; size/stride as int or (h, w)."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        n = int(rng.choice([1, 3, 5]))
        c = int(rng.choice([1, 2, 4]))
        kh, kw = (int(v) for v in rng.integers(1, 5, size=2))
        sh, sw = (int(v) for v in rng.integers(1, 4, size=2))
        h = int(rng.integers(kh, kh + 9))
        w = int(rng.integers(kw, kw + 9))
        size = kh if kh == kw and rng.random() < 0.5 else (kh, kw)
        stride = sh if sh == sw and rng.random() < 0.5 else (sh, sw)
        cases.append((n, c, h, w, size, stride))
    return cases


CASES = [
    (2, 3, 8, 6, 2, None),          # 2x2 stride 2 (fast path), even sizes
    (3, 2, 9, 7, 2, 2),             # fast path, odd sizes: last row/column left over
    (1, 1, 1, 1, 1, None),          # 1x1 image
    (1, 4, 5, 5, 5, None),          # window == image
    (5, 1, 7, 10, 3, 1),            # overlapping windows
    (1, 2, 6, 11, (2, 3), (1, 2)),  # rectangular window, overlap along W
    (3, 3, 10, 9, (4, 1), (3, 1)),  # remainder along H
    (1, 1, 2, 9, (1, 4), (2, 3)),   # stride larger than window along H
] + _random_cases(24, seed=20240601)


def _ids(case):
    n, c, h, w, size, stride = case
    return f"x{n}x{c}x{h}x{w}-k{size}-s{stride}".replace(" ", "")


# ------------------------------------------------- native vs reference ----


@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize("kind", KINDS)
def test_matches_reference(kind, case, threads):
    n, c, h, w, size, stride = case
    rng = np.random.default_rng(zlib.crc32(repr((kind, case)).encode()))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    out = _fwd(ops, kind)(x, size, stride)
    want = _fwd(reference, kind)(*as64(x), size, stride)
    assert out.dtype == np.float32
    assert_close(out, want, name=f"{kind} out")

    dout = rng.standard_normal(want.shape).astype(np.float32)
    dx = _bwd(ops, kind)(dout, x, size, stride)
    dx_want = _bwd(reference, kind)(*as64(dout, x), size, stride)
    assert dx.dtype == np.float32
    assert_close(dx, dx_want, name=f"{kind} dx")


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 2, 5, 7), (2, 5, 13, 1), (1, 3, 16, 16)])
def test_global_avgpool_matches_reference(shape, threads):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    out = ops.global_avgpool2d(x)
    assert_close(out, reference.global_avgpool2d(*as64(x)), name="out")
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx = ops.global_avgpool2d_backward(dout, x)
    assert_close(dx, reference.global_avgpool2d_backward(*as64(dout, x)), name="dx")


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), extra_h=st.integers(0, 6),
       extra_w=st.integers(0, 6), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**16))
def test_property_any_geometry(n, c, kh, kw, sh, sw, extra_h, extra_w, kind, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, kh + extra_h, kw + extra_w)).astype(np.float32)
    out = _fwd(ops, kind)(x, (kh, kw), (sh, sw))
    assert_close(out, _fwd(reference, kind)(*as64(x), (kh, kw), (sh, sw)), name="out")
    dout = rng.standard_normal(out.shape).astype(np.float32)
    assert_close(_bwd(ops, kind)(dout, x, (kh, kw), (sh, sw)),
                 _bwd(reference, kind)(*as64(dout, x), (kh, kw), (sh, sw)), name="dx")


def test_inputs_converted_and_not_modified():
    """float64, non-contiguous inputs are accepted by ops and left untouched."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 8))[:, :, ::-1, :]        # float64, negative strides
    x_before = x.copy()
    for kind in KINDS:
        out = _fwd(ops, kind)(x, 3, 2)
        assert_close(out, _fwd(reference, kind)(x, 3, 2), name=kind)
        dout = rng.standard_normal(out.shape).T.copy().T          # Fortran order
        assert_close(_bwd(ops, kind)(dout, x, 3, 2), _bwd(reference, kind)(dout, x, 3, 2),
                     name=kind)
    assert np.array_equal(x, x_before)


# ------------------------------------------------------- ties and NaNs ----

# 2x2 stride 2; several windows per row (row-tile path); fewer than four
# windows per row (the per-window plain twin), with and without overlap.
TIE_CASES = [(2, 3, 8, 6, 2, None), (3, 2, 9, 7, 2, 2), (2, 2, 7, 9, 3, 1),
             (1, 3, 6, 11, (2, 3), (1, 2)), (3, 1, 10, 9, (4, 2), (3, 1)),
             (2, 3, 9, 5, (3, 2), (2, 2)), (1, 2, 8, 4, 3, 1)]


@pytest.mark.parametrize("case", TIE_CASES, ids=_ids)
def test_max_ties_go_to_first_maximum(case, threads):
    """Inputs from a few integer values: both backends choose the same element.
    Integer dout keeps every sum exact, so dx must be identical."""
    n, c, h, w, size, stride = case
    rng = np.random.default_rng(7)
    x = rng.integers(-1, 2, size=(n, c, h, w)).astype(np.float32)
    out = ops.maxpool2d(x, size, stride)
    assert np.array_equal(out, reference.maxpool2d(x, size, stride))
    dout = rng.integers(-3, 4, size=out.shape).astype(np.float32)
    dx = ops.maxpool2d_backward(dout, x, size, stride)
    assert np.array_equal(dx, reference.maxpool2d_backward(dout, x, size, stride))


def test_max_tie_in_one_window():
    x = np.array([[[[1.0, 5.0], [5.0, 5.0]]]], np.float32)
    for mod in BACKENDS:
        dx = mod.maxpool2d_backward(np.ones((1, 1, 1, 1), np.float32), x, 2)
        assert dx.tolist() == [[[[0.0, 1.0], [0.0, 0.0]]]]


@pytest.mark.parametrize("case", TIE_CASES, ids=_ids)
def test_max_nan_rule(case, threads):
    """Windows hold ties, NaNs (several payloads), +/-0 and Infs: native and the
    float32 reference agree bit for bit, and route the gradient alike."""
    n, c, h, w, size, stride = case
    rng = np.random.default_rng(11)
    values = np.array([-np.inf, -1.0, -0.0, 0.0, 2.0, np.inf], np.float32)
    x = rng.choice(values, size=(n, c, h, w))
    nan_bits = rng.choice(np.array([0x7FC00000, 0x7FC00001, 0xFFC00002], np.uint32),
                          size=x.shape)
    nan_here = rng.random(x.shape) < 0.15
    x[nan_here] = nan_bits[nan_here].view(np.float32)
    assert np.isnan(x).any()

    out = ops.maxpool2d(x, size, stride)
    want = reference.maxpool2d(x, size, stride)
    assert np.array_equal(out.view(np.uint32), want.view(np.uint32))

    dout = rng.integers(-3, 4, size=out.shape).astype(np.float32)
    dx = ops.maxpool2d_backward(dout, x, size, stride)
    assert np.array_equal(dx, reference.maxpool2d_backward(dout, x, size, stride))
    # A window with a NaN sends its gradient to that NaN, nowhere else.
    assert_close(dx, reference.maxpool2d_backward(*as64(dout, x), size, stride))


def test_max_first_nan_wins():
    x = np.array([[[[1.0, np.nan], [9.0, np.nan]]]], np.float32)
    for mod in BACKENDS:
        assert np.isnan(mod.maxpool2d(x, 2)).all()
        dx = mod.maxpool2d_backward(np.full((1, 1, 1, 1), 3.0, np.float32), x, 2)
        assert dx.tolist() == [[[[0.0, 3.0], [0.0, 0.0]]]]


@pytest.mark.parametrize("kind", ["avgpool2d", "l2pool2d"])
def test_nan_and_inf_propagate_alike(kind, threads):
    """NaN and +Inf inputs (and a NaN in dout) give NaN/Inf in the same places."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    x[0, 0, 1, 1] = np.nan
    x[1, 2, 4, 5] = np.inf
    x[1, 1, 0:3, 0:3] = 0.0                      # an all-zero L2 window
    for size, stride in [(2, None), (3, 1), ((2, 3), (2, 1))]:
        out = _fwd(ops, kind)(x, size, stride)
        assert_close(out, _fwd(reference, kind)(*as64(x), size, stride), name="out")
        dout = rng.standard_normal(out.shape).astype(np.float32)
        dout[0, 1, 0, 0] = np.nan
        assert_close(_bwd(ops, kind)(dout, x, size, stride),
                     _bwd(reference, kind)(*as64(dout, x), size, stride), name="dx")


def test_l2_extreme_magnitudes():
    """Squares that under- or overflow float32 still give the float64 answer."""
    x = np.array([[[[1e-30, 0.0], [0.0, 0.0]], [[2e38, 2e38], [0.0, 0.0]]]], np.float32)
    out = ops.l2pool2d(x, 2)
    assert_close(out, reference.l2pool2d(*as64(x), 2), rtol=1e-6, atol=0)
    dout = np.ones(out.shape, np.float32)
    assert_close(ops.l2pool2d_backward(dout, x, 2), reference.l2pool2d_backward(*as64(dout, x), 2),
                 rtol=1e-6, atol=0)


def test_l2_zero_window_has_zero_gradient():
    x = np.zeros((1, 1, 2, 2), np.float32)
    for mod in BACKENDS:
        assert mod.l2pool2d(x, 2).tolist() == [[[[0.0]]]]
        assert not mod.l2pool2d_backward(np.ones((1, 1, 1, 1), np.float32), x, 2).any()


# -------------------------------------------------------------- threads ----


@pytest.mark.parametrize("kind", KINDS)
def test_thread_counts_agree(kind):
    """Each plane is computed by one thread, so results do not depend on the count."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 11, 10)).astype(np.float32)
    dout = rng.standard_normal((3, 5, 5, 4)).astype(np.float32)
    before = fastcnn.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            fastcnn.set_num_threads(n)
            results.append((_fwd(ops, kind)(x, 3, 2), _bwd(ops, kind)(dout, x, 3, 2)))
    finally:
        fastcnn.set_num_threads(before)
    for a, b in zip(results[0], results[1]):
        assert np.array_equal(a, b, equal_nan=True)


# --------------------------------------- reference gradients, numerically ----


def _numeric_grad(f, x, r, eps):
    """Central-difference gradient of sum(f(x) * r) with respect to x."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        up = np.sum(f(x) * r)
        x[idx] = old - eps
        down = np.sum(f(x) * r)
        x[idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


FD_CASES = [(2, 2, 5, 6, 2, None), (1, 2, 6, 5, 3, 1), (2, 1, 7, 6, (2, 3), (2, 1))]


@pytest.mark.parametrize("case", FD_CASES, ids=_ids)
@pytest.mark.parametrize("kind", KINDS)
def test_reference_gradients_finite_differences(kind, case):
    n, c, h, w, size, stride = case
    rng = np.random.default_rng(17)
    shape = (n, c, h, w)
    if kind == "maxpool2d":     # distinct values, far apart compared with eps
        x = rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape)
    elif kind == "l2pool2d":    # strictly positive: the norm is smooth there
        x = rng.uniform(0.5, 2.0, shape)
    else:
        x = rng.standard_normal(shape)
    f = _fwd(reference, kind)
    r = rng.standard_normal(f(x, size, stride).shape)
    want = _numeric_grad(lambda v: f(v, size, stride), x, r, eps=1e-6)
    got = _bwd(reference, kind)(r, x, size, stride)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_reference_global_avgpool_finite_differences():
    rng = np.random.default_rng(19)
    x = rng.standard_normal((2, 3, 4, 5))
    r = rng.standard_normal((2, 3))
    want = _numeric_grad(reference.global_avgpool2d, x, r, eps=1e-6)
    np.testing.assert_allclose(reference.global_avgpool2d_backward(r, x), want,
                               rtol=1e-6, atol=1e-7)


def test_reference_is_dtype_generic():
    x = np.random.default_rng(2).standard_normal((1, 2, 4, 4)).astype(np.float32)
    for kind in KINDS:
        out = _fwd(reference, kind)(x, 2)
        assert out.dtype == np.float32
        assert _bwd(reference, kind)(out, x, 2).dtype == np.float32
    assert reference.global_avgpool2d(x).dtype == np.float32


# ------------------------------------------- inputs that are views, not copies --

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("base, shape, size, stride", [
    ((1, 1, 1, 1), (3, 4, 9, 7), 2, None),        # every axis broadcast
    ((1, 3, 1, 7), (2, 3, 6, 7), (3, 2), (2, 3)),  # N and H broadcast
    ((2, 1, 5, 1), (2, 4, 5, 6), 2, 1),            # C and W broadcast
    ((1, 1, 1, 1), (2, 2, 9, 9), 4, 3),            # windows that skip the last rows
])
def test_broadcast_input_matches_its_copy_and_the_reference(kind, base, shape, size, stride):
    x = np.broadcast_to(np.random.default_rng(7).standard_normal(base), shape)
    got = getattr(ops, kind)(x, size, stride)
    want = getattr(reference, kind)(x, size, stride)
    assert got.flags.writeable and got.flags.c_contiguous
    assert np.array_equal(got, getattr(ops, kind)(np.ascontiguousarray(x, np.float32), size,
                                                  stride))
    assert_close(got, want)


@pytest.mark.parametrize("kind", KINDS)
def test_huge_broadcast_input_with_a_small_result_is_not_copied(kind):
    # 10^12 values viewed, a (1000, 1000, 2, 4) result: copying the input would need 4 TB.
    x = np.broadcast_to(np.float32(1.5), (1000, 1000, 1000, 1000))
    got = getattr(ops, kind)(x, (500, 250))
    want = getattr(reference, kind)(np.broadcast_to(1.5, (1, 1, 1000, 1000)), (500, 250))
    assert got.shape == (1000, 1000, 2, 4)
    assert_close(got, np.broadcast_to(want, got.shape))
