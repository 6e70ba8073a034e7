"""fastcnn.reference, pooling in plain NumPy: max, average, L2 and global average,
forward and backward (the oracle of backend/native/pool.py).
"""
from __future__ import annotations

import numpy as np

from .. import intake as V


# ================================================================ pooling ==
#
# A pooling window of size (KH, KW) sits at every (oh*SH, ow*SW), no padding,
# floor output size. Windows overlap when the stride is smaller than the size;
# the backward passes then add up the gradients an element gets from each window.


def _pool_windows(x, size, stride):
    """View (N, C, OH, OW, KH, KW) of the pooling windows of x (N, C, H, W)."""
    all_positions = np.lib.stride_tricks.sliding_window_view(x, size, axis=(2, 3))
    return all_positions[:, :, ::stride[0], ::stride[1]]


def _scatter_windows(dx, dwin, stride):
    """dx (N, C, H, W) += each window's gradient dwin (N, C, OH, OW, KH, KW) at its place.

    One strided slice of dx per offset (i, j) inside the window: within one offset
    the windows touch distinct elements, so overlapping windows add up correctly.
    """
    sh, sw = stride
    oh, ow, kh, kw = dwin.shape[2:]
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += dwin[..., i, j]
    return dx


def _max_choice(windows):
    """Flat index (N, C, OH, OW) of the chosen element of each window: the first NaN
    in row-major order, else the first maximum -- exactly what np.argmax does."""
    n, c, oh, ow, kh, kw = windows.shape
    return np.argmax(windows.reshape(n, c, oh, ow, kh * kw), axis=-1)


def _max_pool(x, size, stride):
    """(out, chosen) of the max-pool of x (N, C, H, W): the chosen element of each
    window and its flat offset in the window, both (N, C, OH, OW)."""
    windows = _pool_windows(x, size, stride)
    chosen = _max_choice(windows)
    flat = windows.reshape(windows.shape[:4] + (size[0] * size[1],))
    return np.take_along_axis(flat, chosen[..., None], axis=-1)[..., 0], chosen


def _to_chosen(dout, chosen, shape, size, stride, dtype):
    """An array of `shape` (N, C, H, W) holding each window's dout at its chosen
    offset (a chosen value outside the window sends nothing), 0 elsewhere."""
    onehot = chosen[..., None] == np.arange(size[0] * size[1])        # (N, C, OH, OW, KH*KW)
    dwin = np.where(onehot, dout[..., None].astype(dtype, copy=False), 0)
    dx = np.zeros(shape, dtype)
    return _scatter_windows(dx, dwin.reshape(chosen.shape + tuple(size)), stride)


def maxpool2d(x, size, stride=None):
    """out (N, C, OH, OW): the chosen element of each window of x (N, C, H, W); see the NaN rule."""
    x, k, s, _ = V.pool_args(x, size, stride)
    return _max_pool(x, k, s)[0]


def maxpool2d_backward(dout, x, size, stride=None):
    """dx (N, C, H, W): each window's dout sent to its chosen element of x."""
    x, k, s, out_hw = V.pool_args(x, size, stride)
    dout = V.pool_dout(dout, x.shape, out_hw)
    chosen = _max_choice(_pool_windows(x, k, s))                       # (N, C, OH, OW)
    return _to_chosen(dout, chosen, x.shape, k, s, np.result_type(x, dout))


def avgpool2d(x, size, stride=None):
    """out (N, C, OH, OW): the mean over each window of x (N, C, H, W)."""
    x, k, s, _ = V.pool_args(x, size, stride)
    return _pool_windows(x, k, s).mean(axis=(-2, -1))


def avgpool2d_backward(dout, x, size, stride=None):
    """dx (N, C, H, W): each window's dout spread evenly over the window."""
    x, (kh, kw), s, out_hw = V.pool_args(x, size, stride)
    dout = V.pool_dout(dout, x.shape, out_hw)
    dx = np.zeros(x.shape, np.result_type(x, dout))
    dwin = np.broadcast_to((dout / (kh * kw))[..., None, None], dout.shape + (kh, kw))
    return _scatter_windows(dx, dwin, s)


def l2pool2d(x, size, stride=None):
    """out (N, C, OH, OW): sqrt(sum of x**2) over each window of x (N, C, H, W)."""
    x, k, s, _ = V.pool_args(x, size, stride)
    return np.sqrt((_pool_windows(x, k, s) ** 2).sum(axis=(-2, -1)))


def l2pool2d_backward(dout, x, size, stride=None):
    """dx (N, C, H, W): dout * x / out per window, 0 where out == 0."""
    x, k, s, out_hw = V.pool_args(x, size, stride)
    dout = V.pool_dout(dout, x.shape, out_hw)
    windows = _pool_windows(x, k, s)
    out = np.sqrt((windows ** 2).sum(axis=(-2, -1)))[..., None, None]  # (N, C, OH, OW, 1, 1)
    # d out / d x = x / out, defined as 0 where out == 0 (all-zero window).
    # Inf inputs give inf/inf = NaN, as in the native kernel: no warning for that.
    with np.errstate(invalid="ignore"):
        ratio = np.divide(windows, out, out=np.zeros(windows.shape, out.dtype), where=out != 0)
    dx = np.zeros(x.shape, np.result_type(x, dout))
    return _scatter_windows(dx, dout[..., None, None] * ratio, s)


def global_avgpool2d(x):
    """out (N, C): the mean of x (N, C, H, W) over H*W."""
    x = V.image_batch(x)
    return x.mean(axis=(2, 3))


def global_avgpool2d_backward(dout, x):
    """dx (N, C, H, W): dout (N, C) / (H*W) at every pixel."""
    x = V.image_batch(x)
    dout = V.global_pool_dout(dout, x.shape)
    h, w = x.shape[2:]
    dx = np.empty(x.shape, np.result_type(x, dout))
    dx[...] = (dout / (h * w))[:, :, None, None]
    return dx


__all__ = ["maxpool2d", "maxpool2d_backward", "avgpool2d", "avgpool2d_backward", "l2pool2d",
           "l2pool2d_backward", "global_avgpool2d", "global_avgpool2d_backward"]
