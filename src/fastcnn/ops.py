"""fastcnn.ops -- the native backend: the same names, signatures and return
structure as fastcnn.reference, computed by the compiled core (fastcnn._core).

Every function: checks its arguments with fastcnn._validate (same errors as the
reference), converts read-only inputs to float32 C-contiguous arrays, allocates
its outputs, and calls one _core function (which releases the GIL). Arrays
updated in place are never converted. See the README's "Ops" section.
"""
from __future__ import annotations

import numpy as np

from . import _core
from . import _validate as V


def _f32(x: np.ndarray) -> np.ndarray:
    """A read-only input as float32 C-contiguous (no copy when it already is)."""
    return np.ascontiguousarray(x, dtype=np.float32)


# =================================================================== GEMM ==


# ========================================== im2col, col2im, conv2d, dense ==


def im2col(x, kernel_size, stride=1, padding=0):
    """cols (C*KH*KW, N*OH*OW) of x (N, C, H, W); see fastcnn.reference.im2col."""
    x, (kh, kw), (sh, sw), (ph, pw), (oh, ow) = V.im2col_args(x, kernel_size, stride, padding)
    x = _f32(x)
    n, c = x.shape[:2]
    cols = np.empty((c * kh * kw, n * oh * ow), dtype=np.float32)
    _core.im2col(cols, x, kh, kw, sh, sw, ph, pw)
    return cols


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """dx (x_shape): the adjoint of im2col; see fastcnn.reference.col2im."""
    cols, x_shape, (kh, kw), (sh, sw), (ph, pw), _ = V.col2im_args(
        cols, x_shape, kernel_size, stride, padding)
    dx = np.empty(x_shape, dtype=np.float32)
    _core.col2im(dx, _f32(cols), kh, kw, sh, sw, ph, pw)
    return dx


def conv2d(x, w, b=None, stride=1, padding=0):
    """out (N, K, OH, OW) = cross-correlation of x with w, + b; large batches run in chunks."""
    x, w, b, (sh, sw), (ph, pw), (oh, ow) = V.conv_args(x, w, b, stride, padding)
    out = np.empty((x.shape[0], w.shape[0], oh, ow), dtype=np.float32)
    _core.conv2d_forward(out, _f32(x), _f32(w), None if b is None else _f32(b), sh, sw, ph, pw)
    return out


def conv2d_backward(dout, x, w, stride=1, padding=0, need_dx=True):
    """(dx, dw, db) of conv2d given dout; dx is None when need_dx is false."""
    x, w, _, (sh, sw), (ph, pw), out_hw = V.conv_args(x, w, None, stride, padding)
    dout = V.conv_dout(dout, x.shape, w.shape[0], out_hw)
    dx = np.empty(x.shape, dtype=np.float32) if need_dx else None
    dw = np.empty(w.shape, dtype=np.float32)
    db = np.empty(w.shape[0], dtype=np.float32)
    _core.conv2d_backward(dx, dw, db, _f32(dout), _f32(x), _f32(w), sh, sw, ph, pw)
    return dx, dw, db


def dense(x, w, b=None):
    """out (N, O) = x (N, I) @ w (I, O) + b (O)."""
    x, w, b = V.dense_args(x, w, b)
    out = np.empty((x.shape[0], w.shape[1]), dtype=np.float32)
    _core.dense_forward(out, _f32(x), _f32(w), None if b is None else _f32(b))
    return out


def dense_backward(dout, x, w, need_dx=True):
    """(dx, dw, db) of dense given dout (N, O); dx is None when need_dx is false."""
    x, w, _ = V.dense_args(x, w, None)
    dout = V.dense_dout(dout, x.shape[0], w.shape[1])
    dx = np.empty(x.shape, dtype=np.float32) if need_dx else None
    dw = np.empty(w.shape, dtype=np.float32)
    db = np.empty(w.shape[1], dtype=np.float32)
    _core.dense_backward(dx, dw, db, _f32(dout), _f32(x), _f32(w))
    return dx, dw, db


# ================================================================ pooling ==


def _pool_forward(kernel, x, size, stride):
    x, (kh, kw), (sh, sw), (oh, ow) = V.pool_args(x, size, stride)
    x = _f32(x)
    out = np.empty((x.shape[0], x.shape[1], oh, ow), np.float32)
    kernel(out, x, kh, kw, sh, sw)
    return out


def maxpool2d(x, size, stride=None):
    return _pool_forward(_core.maxpool2d_forward, x, size, stride)


def maxpool2d_backward(dout, x, size, stride=None):
    x, (kh, kw), (sh, sw), out_hw = V.pool_args(x, size, stride)
    dout = _f32(V.pool_dout(dout, x.shape, out_hw))
    dx = np.empty(x.shape, np.float32)
    _core.maxpool2d_backward(dx, dout, _f32(x), kh, kw, sh, sw)
    return dx


def avgpool2d(x, size, stride=None):
    return _pool_forward(_core.avgpool2d_forward, x, size, stride)


def avgpool2d_backward(dout, x, size, stride=None):
    x, (kh, kw), (sh, sw), out_hw = V.pool_args(x, size, stride)
    dout = _f32(V.pool_dout(dout, x.shape, out_hw))
    dx = np.empty(x.shape, np.float32)
    _core.avgpool2d_backward(dx, dout, kh, kw, sh, sw)
    return dx


def l2pool2d(x, size, stride=None):
    return _pool_forward(_core.l2pool2d_forward, x, size, stride)


def l2pool2d_backward(dout, x, size, stride=None):
    x, (kh, kw), (sh, sw), out_hw = V.pool_args(x, size, stride)
    dout = _f32(V.pool_dout(dout, x.shape, out_hw))
    dx = np.empty(x.shape, np.float32)
    _core.l2pool2d_backward(dx, dout, _f32(x), kh, kw, sh, sw)
    return dx


def global_avgpool2d(x):
    x = _f32(V.image_batch(x))
    out = np.empty(x.shape[:2], np.float32)
    _core.global_avgpool2d_forward(out, x)
    return out


def global_avgpool2d_backward(dout, x):
    x = V.image_batch(x)
    dout = _f32(V.global_pool_dout(dout, x.shape))
    dx = np.empty(x.shape, np.float32)
    _core.global_avgpool2d_backward(dx, dout)
    return dx


# ============================== activations, softmax, costs, dropout, optim ==
