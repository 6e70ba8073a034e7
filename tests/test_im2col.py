"""im2col and col2im: values against the definition, native against the
reference, and col2im as the adjoint of im2col (also as a property)."""
from __future__ import annotations

import numpy as np
import pytest
from conv_cases import CONV_CASES, HAND_CASES, _case_id, _conv_data, _pair, _tol
from helpers import BACKENDS, as64, assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

from fastcnn import ops, reference


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
