"""fastcnn.reference, GEMM-based ops in plain NumPy: gemm, im2col, col2im, conv2d
(and fused with a max-pool), dense -- the oracle, written to be read.

Dtype-generic: results come out in the floating dtype of the inputs (the tests
run it in float64). The same names, signatures and return structure as
fastcnn.ops; arguments are checked by backend.intake, so both backends raise
the same errors. Layouts: images (N, C, H, W); conv weights (C_out, C_in, KH,
KW); dense weights (in_features, out_features).
"""
from __future__ import annotations

import numpy as np

from .. import intake as V

from ...common.checks import real
from ...common.limits import CHOICE_NO_GRADIENT
from .pointwise import _relu_of
from .pool import _max_pool, _to_chosen


# =================================================================== GEMM ==


def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """c = alpha * op(a) @ op(b) + beta * c, where op(x) is x.T when asked.

    Without c a new (M, N) array is returned and beta is ignored. A given c is
    updated in place and returned; beta == 0 makes c write-only (NaN already in
    c does not survive, as in BLAS).
    """
    a, b, _, _, _ = V.gemm_args(a, b, c, trans_a, trans_b, native=False)
    alpha = real(alpha, "alpha")
    beta = real(beta, "beta")
    op_a = a.T if trans_a else a  # (M, K)
    op_b = b.T if trans_b else b  # (K, N)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf in, NaN/Inf out
        product = alpha * (op_a @ op_b)  # (M, N)
        if c is None:
            return product
        if beta == 0.0:
            c[...] = product
        else:
            c[...] = product + beta * c
    return c



# ========================================== im2col, col2im, conv2d, dense ==


def _common(*arrays) -> np.dtype:
    """The floating dtype the results come out in: that of the inputs together."""
    return np.result_type(*[a for a in arrays if a is not None])


def _inside(n_out: int, size: int, offset: int, stride: int, pad: int):
    """Along one axis, kernel offset `offset` of output position o reads input
    position o*stride - pad + offset. Returns (outputs, inputs): the slice of
    output positions for which that lies inside [0, size), and the slice of the
    input positions they read -- or (None, None) if it never does. (Outside,
    the zero padding contributes nothing, so no padded copy of x is needed.)"""
    first = max(0, -((offset - pad) // stride))                # ceil((pad - offset) / stride)
    last = min(n_out - 1, (size - 1 + pad - offset) // stride)
    if first > last:
        return None, None
    start = first * stride - pad + offset
    return slice(first, last + 1), slice(start, start + (last - first) * stride + 1, stride)


def im2col(x, kernel_size, stride=1, padding=0):
    """cols (C*KH*KW, N*OH*OW): row (c*KH + i)*KW + j, column (n*OH + oh)*OW + ow
    holds x[n, c, oh*SH - PH + i, ow*SW - PW + j] (zero outside the image)."""
    x, (kh, kw), (sh, sw), (ph, pw), (oh, ow) = V.im2col_args(x, kernel_size, stride, padding)
    n, c, h, w = x.shape
    cols = np.zeros((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        out_rows, in_rows = _inside(oh, h, i, sh, ph)
        for j in range(kw):
            out_cols, in_cols = _inside(ow, w, j, sw, pw)
            if out_rows is None or out_cols is None:
                continue                                      # this offset sees only padding
            patch = x[:, :, in_rows, in_cols]                 # (N, C, rows, cols)
            cols[:, i, j, :, out_rows, out_cols] = patch.transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * oh * ow)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """The adjoint of im2col: dx (x_shape) where each entry is the sum of every
    cols entry that im2col would have copied from it."""
    cols, x_shape, (kh, kw), (sh, sw), (ph, pw), (oh, ow) = V.col2im_args(
        cols, x_shape, kernel_size, stride, padding)
    n, c, h, w = x_shape
    blocks = cols.reshape(c, kh, kw, n, oh, ow)
    dx = np.zeros((n, c, h, w), dtype=cols.dtype)
    for i in range(kh):
        out_rows, in_rows = _inside(oh, h, i, sh, ph)
        for j in range(kw):
            out_cols, in_cols = _inside(ow, w, j, sw, pw)
            if out_rows is None or out_cols is None:
                continue
            # Within one offset (i, j) the input positions are distinct: += is safe.
            dx[:, :, in_rows, in_cols] += blocks[:, i, j, :, out_rows, out_cols].transpose(1, 0, 2, 3)
    return dx


def conv2d(x, w, b=None, stride=1, padding=0, relu=False):
    """out (N, K, OH, OW) = cross-correlation of x (N, C, H, W) with w (K, C, KH, KW), + b;
    relu=True returns relu(out) instead (NaN stays NaN)."""
    x, w, b, s, p, (oh, ow) = V.conv_args(x, w, b, stride, padding)
    if V.flag(relu, "relu"):
        return _relu_of(conv2d(x, w, b, stride, padding))
    dtype = _common(x, w, b)
    n, k = x.shape[0], w.shape[0]
    cols = im2col(x.astype(dtype, copy=False), w.shape[2:], s, p)  # (C*KH*KW, N*OH*OW)
    out = w.reshape(k, -1).astype(dtype, copy=False) @ cols         # (K, N*OH*OW)
    out = out.reshape(k, n, oh, ow).transpose(1, 0, 2, 3)           # (N, K, OH, OW)
    if b is not None:
        out = out + b.reshape(1, k, 1, 1)
    return np.ascontiguousarray(out, dtype=dtype)


def conv2d_backward(dout, x, w, stride=1, padding=0, need_dx=True):
    """Gradients (dx, dw, db) of conv2d(x, w, b, stride, padding) given dout,
    the gradient of its output. dx is None when need_dx is false."""
    x, w, _, s, p, out_hw = V.conv_args(x, w, None, stride, padding)
    k = w.shape[0]
    dout = V.conv_dout(dout, x.shape, k, out_hw)
    dtype = _common(dout, x, w)
    dout, x, w = (a.astype(dtype, copy=False) for a in (dout, x, w))
    cols = im2col(x, w.shape[2:], s, p)                        # (C*KH*KW, N*OH*OW)
    dout_mat = dout.transpose(1, 0, 2, 3).reshape(k, -1)       # (K, N*OH*OW)
    dw = (dout_mat @ cols.T).reshape(w.shape)
    db = dout.sum(axis=(0, 2, 3))
    dx = None
    if need_dx:
        dcols = w.reshape(k, -1).T @ dout_mat                  # (C*KH*KW, N*OH*OW)
        dx = col2im(dcols, x.shape, w.shape[2:], s, p)
    return dx, dw, db


def conv2d_maxpool(x, w, b=None, stride=1, padding=0, size=2, pool_stride=None, relu=False):
    """(out, choice): out = maxpool2d(conv2d(x, w, b, stride, padding, relu), size,
    pool_stride) (N, K, POH, POW), and choice (uint8, the same shape): the row-major
    offset i*KW + j of each window's chosen element (the maxpool2d rule), or 255
    where relu is true and the pooled value is not > 0 (no gradient flows there).
    The native op never stores the conv's own output; this one composes the ops."""
    x, w, b, s, p, _, k, ps, _ = V.conv_pool_args(x, w, b, stride, padding, size, pool_stride)
    relu = V.flag(relu, "relu")
    out, chosen = _max_pool(conv2d(x, w, b, s, p, relu=relu), k, ps)  # (N, K, POH, POW)
    choice = chosen.astype(np.uint8)
    if relu:
        choice[~(out > 0)] = CHOICE_NO_GRADIENT
    return np.ascontiguousarray(out), choice


def conv2d_maxpool_backward(dout, choice, x, w, stride=1, padding=0, size=2, pool_stride=None,
                            need_dx=True):
    """(dx, dw, db) of conv2d_maxpool given dout of the pooled output and its choice:
    conv2d_backward of the conv output's gradient, which holds each pooled gradient
    at its window's chosen element (nothing where choice is 255), 0 elsewhere."""
    dout, choice, x, w, s, p, (oh, ow), (kh, kw), ps = V.conv_pool_grads_args(
        dout, choice, x, w, stride, padding, size, pool_stride)
    bad = (choice >= kh * kw) & (choice != CHOICE_NO_GRADIENT)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"choice holds {int(choice.flat[i])} at flat index {i}, but a "
                         f"{kh}x{kw} window has offsets 0..{kh * kw - 1} (or 255: no gradient); "
                         f"pass the choice that conv2d_maxpool returned")
    # 255 (no gradient) is outside every window: _to_chosen sends nothing there
    dz = _to_chosen(dout, choice, (x.shape[0], w.shape[0], oh, ow), (kh, kw), ps,
                    _common(dout, x, w))
    return conv2d_backward(dz, x, w, s, p, need_dx)


def dense(x, w, b=None):
    """out (N, O) = x (N, I) @ w (I, O) + b (O)."""
    x, w, b = V.dense_args(x, w, b)
    out = x @ w
    if b is not None:
        out = out + b
    return out.astype(_common(x, w, b), copy=False)


def dense_backward(dout, x, w, need_dx=True):
    """Gradients (dx, dw, db) of dense(x, w, b) given dout (N, O).
    dx is None when need_dx is false."""
    x, w, _ = V.dense_args(x, w, None)
    dout = V.dense_dout(dout, x.shape[0], w.shape[1])
    dtype = _common(dout, x, w)
    dout, x, w = (a.astype(dtype, copy=False) for a in (dout, x, w))
    dx = dout @ w.T if need_dx else None
    return dx, x.T @ dout, dout.sum(axis=0)


def dense_backward_sgd(dout, x, w, b=None, *, lr, weight_decay=0.0, need_dx=True):
    """dense_backward and one plain-SGD step in one op: returns dx (None when
    need_dx is false), computed with w as it was; then, in place,
    w = (1 - lr * weight_decay) * w - lr * (x.T @ dout) and b -= lr * dout.sum(axis=0).
    (The same step as sgd_update, written as the native op computes it: an Inf
    weight with lr * weight_decay == 0 stays Inf.) The native op never stores
    x.T @ dout: it adds it straight into w."""
    dout, x, lr, weight_decay = V.dense_sgd_args(dout, x, w, b, lr, weight_decay, native=False)
    dx, dw, db = dense_backward(dout, x, w, need_dx)
    w[...] = ((1.0 - lr * weight_decay) * w - lr * dw).astype(w.dtype, copy=False)
    if b is not None:
        b -= (lr * db).astype(b.dtype, copy=False)
    return dx


__all__ = ["gemm", "im2col", "col2im", "conv2d", "conv2d_backward", "conv2d_maxpool",
           "conv2d_maxpool_backward", "dense", "dense_backward", "dense_backward_sgd"]
