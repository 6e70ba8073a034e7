"""fastcnn.ops, pooling on the native core: max, average, L2 and global average,
forward and backward; the twins of backend/reference/pool.py."""
from __future__ import annotations

import numpy as np

from ... import _core
from .. import intake as V
from .arrays import F32 as _F32
from .arrays import f32 as _f32


# ================================================================ pooling ==


def _pool_forward(kernel, x, size, stride):
    x, (kh, kw), (sh, sw), (oh, ow) = V.pool_args(x, size, stride)
    full = shape = (x.shape[0], x.shape[1], oh, ow)
    if not (x.dtype == _F32 and x.flags.c_contiguous):
        x, shape = _pool_source(x, (kh, kw), (sh, sw), full)
    x = _f32(x)
    out = np.empty(shape, np.float32)
    kernel(out, x, kh, kw, sh, sw)
    if shape != full:  # the same window values everywhere along the collapsed axes
        out = np.array(np.broadcast_to(out, full), order="C")
    return out


def _pool_source(x, size, stride, out_shape):
    """(x', out_shape') for an input that must be copied anyway: only the rows
    and columns some window reads, and along an axis of stride 0 (a broadcast
    input: every index holds the same values) one image, channel or window
    standing for all. The copy is then no larger than the distinct values the
    windows read; the caller broadcasts the smaller result back to out_shape."""
    (kh, kw), (sh, sw), (n, c, oh, ow) = size, stride, out_shape
    x = x[:, :, :(oh - 1) * sh + kh, :(ow - 1) * sw + kw]
    keep = [n, c, oh, ow]
    index = [slice(None)] * 4
    for axis, window in ((0, 1), (1, 1), (2, kh), (3, kw)):
        if x.strides[axis] == 0 and x.shape[axis] > window:
            index[axis] = slice(0, window)
            keep[axis] = 1
    return x[tuple(index)], tuple(keep)


def _pool_backward(kernel, dout, x, size, stride, reads_x=True):
    x, (kh, kw), (sh, sw), out_hw = V.pool_args(x, size, stride)
    dout = _f32(V.pool_dout(dout, x.shape, out_hw))
    dx = np.empty(x.shape, np.float32)
    if reads_x:
        kernel(dx, dout, _f32(x), kh, kw, sh, sw)
    else:  # average pooling needs only the shapes
        kernel(dx, dout, kh, kw, sh, sw)
    return dx


def maxpool2d(x, size, stride=None):
    """out (N, C, OH, OW): the chosen element of each window of x (N, C, H, W); see the NaN rule."""
    return _pool_forward(_core.maxpool2d_forward, x, size, stride)


def maxpool2d_backward(dout, x, size, stride=None):
    """dx (N, C, H, W): each window's dout sent to its chosen element of x."""
    return _pool_backward(_core.maxpool2d_backward, dout, x, size, stride)


def avgpool2d(x, size, stride=None):
    """out (N, C, OH, OW): the mean over each window of x (N, C, H, W)."""
    return _pool_forward(_core.avgpool2d_forward, x, size, stride)


def avgpool2d_backward(dout, x, size, stride=None):
    """dx (N, C, H, W): each window's dout spread evenly over the window."""
    return _pool_backward(_core.avgpool2d_backward, dout, x, size, stride, reads_x=False)


def l2pool2d(x, size, stride=None):
    """out (N, C, OH, OW): sqrt(sum of x**2) over each window of x (N, C, H, W)."""
    return _pool_forward(_core.l2pool2d_forward, x, size, stride)


def l2pool2d_backward(dout, x, size, stride=None):
    """dx (N, C, H, W): dout * x / out per window, 0 where out == 0."""
    return _pool_backward(_core.l2pool2d_backward, dout, x, size, stride)


def global_avgpool2d(x):
    """out (N, C): the mean of x (N, C, H, W) over H*W."""
    x = _f32(V.image_batch(x))
    out = np.empty(x.shape[:2], np.float32)
    _core.global_avgpool2d_forward(out, x)
    return out


def global_avgpool2d_backward(dout, x):
    """dx (N, C, H, W): dout (N, C) / (H*W) at every pixel."""
    x = V.image_batch(x)
    dout = _f32(V.global_pool_dout(dout, x.shape))
    dx = np.empty(x.shape, np.float32)
    _core.global_avgpool2d_backward(dx, dout)
    return dx


__all__ = ["maxpool2d", "maxpool2d_backward", "avgpool2d", "avgpool2d_backward", "l2pool2d",
           "l2pool2d_backward", "global_avgpool2d", "global_avgpool2d_backward"]
