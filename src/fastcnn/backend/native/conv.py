"""fastcnn.ops, GEMM-based ops on the native core: gemm, im2col, col2im, conv2d
(and fused with a max-pool), dense. The same names, signatures and results as
fastcnn.reference's twins (backend/reference/conv.py).

Every function: checks its arguments with backend.intake (the reference's
errors), converts read-only inputs to float32 C-contiguous arrays, allocates
its outputs, and calls one _core function (which releases the GIL). Arrays
updated in place are never converted.
"""
from __future__ import annotations

import numpy as np

from ... import _core
from .. import intake as V
from .arrays import f32 as _f32
from .arrays import scalar as _scalar


# =================================================================== GEMM ==


def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """c = alpha * op(a) @ op(b) + beta * c, in float32 (op(x) is x.T when asked).

    Without c a new (M, N) array is returned and beta is ignored. A given c
    must be float32 C-contiguous; it is updated in place and returned. beta == 0
    makes c write-only (NaN already in c does not survive).
    """
    a, b, m, n, _ = V.gemm_args(a, b, c, trans_a, trans_b, native=True)
    alpha = _scalar(alpha, "alpha")
    beta = _scalar(beta, "beta")
    a, b = _f32(a), _f32(b)
    if c is None:
        c, beta = np.empty((m, n), dtype=np.float32), 0.0
    else:
        # The kernel reads a and b while it writes c: never let them overlap.
        if np.may_share_memory(a, c):
            a = a.copy()
        if np.may_share_memory(b, c):
            b = b.copy()
    _core.gemm(a, b, c, alpha, beta, bool(trans_a), bool(trans_b))
    return c



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


def conv2d(x, w, b=None, stride=1, padding=0, relu=False):
    """out (N, K, OH, OW) = cross-correlation of x with w, + b; large batches run in
    chunks. relu=True: relu(out), applied while each image's output is in cache."""
    x, w, b, (sh, sw), (ph, pw), (oh, ow) = V.conv_args(x, w, b, stride, padding)
    relu = V.flag(relu, "relu")
    out = np.empty((x.shape[0], w.shape[0], oh, ow), dtype=np.float32)
    _core.conv2d_forward(out, _f32(x), _f32(w), None if b is None else _f32(b), sh, sw, ph, pw,
                         relu)
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


def conv2d_maxpool(x, w, b=None, stride=1, padding=0, size=2, pool_stride=None, relu=False):
    """(out, choice) = maxpool2d(conv2d(x, w, b, stride, padding, relu), size, pool_stride)
    and each window's choice (uint8; 255: no gradient, relu only), in one pass: the
    conv's own output is pooled image by image from scratch and never stored."""
    x, w, b, (sh, sw), (ph, pw), _, (pkh, pkw), (psh, psw), (poh, pow_) = V.conv_pool_args(
        x, w, b, stride, padding, size, pool_stride)
    relu = V.flag(relu, "relu")
    shape = (x.shape[0], w.shape[0], poh, pow_)
    out = np.empty(shape, dtype=np.float32)
    choice = np.empty(shape, dtype=np.uint8)
    _core.conv2d_maxpool_forward(out, choice, _f32(x), _f32(w), None if b is None else _f32(b),
                                 sh, sw, ph, pw, pkh, pkw, psh, psw, relu)
    return out, choice


def conv2d_maxpool_backward(dout, choice, x, w, stride=1, padding=0, size=2, pool_stride=None,
                            need_dx=True):
    """(dx, dw, db) of conv2d_maxpool given dout (N, K, POH, POW) and its choice; dx is
    None when need_dx is false."""
    dout, choice, x, w, (sh, sw), (ph, pw), _, (pkh, pkw), (psh, psw) = V.conv_pool_grads_args(
        dout, choice, x, w, stride, padding, size, pool_stride)
    dx = np.empty(x.shape, dtype=np.float32) if need_dx else None
    dw = np.empty(w.shape, dtype=np.float32)
    db = np.empty(w.shape[0], dtype=np.float32)
    _core.conv2d_maxpool_backward(dx, dw, db, _f32(dout), np.ascontiguousarray(choice), _f32(x),
                                  _f32(w), sh, sw, ph, pw, pkh, pkw, psh, psw)
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


def dense_backward_sgd(dout, x, w, b=None, *, lr, weight_decay=0.0, need_dx=True):
    """One plain-SGD step of dense fused with its backward pass: returns dx (None
    when need_dx is false), computed with w as it was; then, in place,
    w = (1 - lr * weight_decay) * w - lr * x.T @ dout and b -= lr * dout.sum(0).
    The weight gradient is never stored (see fastcnn.reference)."""
    dout, x, lr, weight_decay = V.dense_sgd_args(dout, x, w, b, lr, weight_decay, native=True)
    dx = np.empty(x.shape, dtype=np.float32) if need_dx else None
    _core.dense_backward_sgd(dx, w, b, _f32(dout), _f32(x), lr, weight_decay)
    return dx


__all__ = ["gemm", "im2col", "col2im", "conv2d", "conv2d_backward", "conv2d_maxpool",
           "conv2d_maxpool_backward", "dense", "dense_backward", "dense_backward_sgd"]
