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
