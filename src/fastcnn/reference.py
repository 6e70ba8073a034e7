"""fastcnn.reference -- every fastcnn op in plain NumPy: the oracle, written to be read.

Dtype-generic: results come out in the floating dtype of the inputs (the tests
run it in float64). The same names, signatures and return structure as
fastcnn.ops; arguments are checked by fastcnn._validate, so both backends raise
the same errors. See the README's "Ops" section for the contract of each op.

Layouts: images (N, C, H, W); conv weights (C_out, C_in, KH, KW); dense
weights (in_features, out_features).
"""
from __future__ import annotations

import numpy as np

from . import _validate as V


# =================================================================== GEMM ==


# ========================================== im2col, col2im, conv2d, dense ==


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


def maxpool2d(x, size, stride=None):
    x, (kh, kw), s, _ = V.pool_args(x, size, stride)
    windows = _pool_windows(x, (kh, kw), s)
    flat = windows.reshape(windows.shape[:4] + (kh * kw,))
    return np.take_along_axis(flat, _max_choice(windows)[..., None], axis=-1)[..., 0]


def maxpool2d_backward(dout, x, size, stride=None):
    x, (kh, kw), s, out_hw = V.pool_args(x, size, stride)
    dout = V.pool_dout(dout, x.shape, out_hw)
    windows = _pool_windows(x, (kh, kw), s)
    chosen = _max_choice(windows)                                      # (N, C, OH, OW)
    onehot = chosen[..., None] == np.arange(kh * kw)                   # (N, C, OH, OW, KH*KW)
    dwin = np.where(onehot, dout[..., None], 0).reshape(windows.shape)
    dx = np.zeros(x.shape, np.result_type(x, dout))
    return _scatter_windows(dx, dwin, s)


def avgpool2d(x, size, stride=None):
    x, k, s, _ = V.pool_args(x, size, stride)
    return _pool_windows(x, k, s).mean(axis=(-2, -1))


def avgpool2d_backward(dout, x, size, stride=None):
    x, (kh, kw), s, out_hw = V.pool_args(x, size, stride)
    dout = V.pool_dout(dout, x.shape, out_hw)
    dx = np.zeros(x.shape, np.result_type(x, dout))
    dwin = np.broadcast_to((dout / (kh * kw))[..., None, None], dout.shape + (kh, kw))
    return _scatter_windows(dx, dwin, s)


def l2pool2d(x, size, stride=None):
    x, k, s, _ = V.pool_args(x, size, stride)
    return np.sqrt((_pool_windows(x, k, s) ** 2).sum(axis=(-2, -1)))


def l2pool2d_backward(dout, x, size, stride=None):
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
    x = V.image_batch(x)
    return x.mean(axis=(2, 3))


def global_avgpool2d_backward(dout, x):
    x = V.image_batch(x)
    dout = V.global_pool_dout(dout, x.shape)
    h, w = x.shape[2:]
    dx = np.empty(x.shape, np.result_type(x, dout))
    dx[...] = (dout / (h * w))[:, :, None, None]
    return dx


# ============================== activations, softmax, costs, dropout, optim ==
