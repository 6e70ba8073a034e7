"""Bad input to im2col, col2im, conv2d and dense: the same error from both
backends, and from _core called directly."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import BACKENDS

from fastcnn import _core, reference


# ------------------------------------------------------------- bad input --

_X = np.zeros((2, 3, 6, 5), np.float32)
_W = np.zeros((4, 3, 3, 3), np.float32)
_B = np.zeros(4, np.float32)
_DOUT = np.zeros((2, 4, 4, 3), np.float32)      # conv2d(_X, _W) with stride 1, padding 0
_COLS = np.zeros((27, 24), np.float32)          # im2col(_X, 3)
_XD = np.zeros((3, 7), np.float32)
_WD = np.zeros((7, 5), np.float32)
_DD = np.zeros((3, 5), np.float32)

BAD = {
    "conv x 3-D": (ValueError, lambda m: m.conv2d(_X[0], _W)),
    "conv x int": (TypeError, lambda m: m.conv2d(_X.astype(np.int32), _W)),
    "conv x str": (TypeError, lambda m: m.conv2d("not an array", _W)),
    "conv w 3-D": (ValueError, lambda m: m.conv2d(_X, _W[0])),
    "conv w int": (TypeError, lambda m: m.conv2d(_X, _W.astype(np.int64))),
    "conv channels": (ValueError, lambda m: m.conv2d(_X, _W[:, :2])),
    "conv stride 0": (ValueError, lambda m: m.conv2d(_X, _W, stride=0)),
    "conv stride (1, 0)": (ValueError, lambda m: m.conv2d(_X, _W, stride=(1, 0))),
    "conv stride float": (TypeError, lambda m: m.conv2d(_X, _W, stride=1.0)),
    "conv padding -1": (ValueError, lambda m: m.conv2d(_X, _W, padding=-1)),
    "conv padding (0, -2)": (ValueError, lambda m: m.conv2d(_X, _W, padding=(0, -2))),
    "conv padding triple": (ValueError, lambda m: m.conv2d(_X, _W, padding=(1, 1, 1))),
    "conv empty batch": (ValueError, lambda m: m.conv2d(_X[:0], _W)),
    "conv empty image": (ValueError, lambda m: m.conv2d(_X[:, :, :0], _W)),
    "conv kernel too big": (ValueError, lambda m: m.conv2d(_X[:, :, :2], _W)),
    "conv kernel too big padded": (ValueError, lambda m: m.conv2d(_X, np.zeros((1, 3, 9, 1)),
                                                                  padding=1)),
    "conv bias shape": (ValueError, lambda m: m.conv2d(_X, _W, _B[:3])),
    "conv bias 2-D": (ValueError, lambda m: m.conv2d(_X, _W, _B[None])),
    "conv bias int": (TypeError, lambda m: m.conv2d(_X, _W, _B.astype(int))),
    "conv_bw dout shape": (ValueError, lambda m: m.conv2d_backward(_DOUT[:, :, :3], _X, _W)),
    "conv_bw dout stride": (ValueError, lambda m: m.conv2d_backward(_DOUT, _X, _W, stride=2)),
    "conv_bw dout int": (TypeError, lambda m: m.conv2d_backward(_DOUT.astype(int), _X, _W)),
    "conv_bw channels": (ValueError, lambda m: m.conv2d_backward(_DOUT, _X, _W[:, :1])),
    "conv_bw empty batch": (ValueError, lambda m: m.conv2d_backward(_DOUT[:0], _X[:0], _W)),
    "im2col x 2-D": (ValueError, lambda m: m.im2col(_X[0, 0], 3)),
    "im2col x int": (TypeError, lambda m: m.im2col(_X.astype(np.int8), 3)),
    "im2col kernel 0": (ValueError, lambda m: m.im2col(_X, 0)),
    "im2col kernel too big": (ValueError, lambda m: m.im2col(_X, (3, 6))),
    "im2col stride 0": (ValueError, lambda m: m.im2col(_X, 3, stride=(0, 1))),
    "im2col padding -1": (ValueError, lambda m: m.im2col(_X, 3, padding=-1)),
    "col2im cols shape": (ValueError, lambda m: m.col2im(_COLS[:, 1:], _X.shape, 3)),
    "col2im cols 1-D": (ValueError, lambda m: m.col2im(_COLS.ravel(), _X.shape, 3)),
    "col2im cols int": (TypeError, lambda m: m.col2im(_COLS.astype(int), _X.shape, 3)),
    "col2im x_shape 3": (ValueError, lambda m: m.col2im(_COLS, _X.shape[1:], 3)),
    "col2im x_shape float": (TypeError, lambda m: m.col2im(_COLS, (2, 3, 6.0, 5), 3)),
    "col2im empty batch": (ValueError, lambda m: m.col2im(_COLS[:, :0], (0, 3, 6, 5), 3)),
    "col2im kernel too big": (ValueError, lambda m: m.col2im(_COLS, _X.shape, 7)),
    "dense x 1-D": (ValueError, lambda m: m.dense(_XD[0], _WD)),
    "dense x int": (TypeError, lambda m: m.dense(_XD.astype(int), _WD)),
    "dense w 3-D": (ValueError, lambda m: m.dense(_XD, _WD[None])),
    "dense features": (ValueError, lambda m: m.dense(_XD, _WD[1:])),
    "dense empty batch": (ValueError, lambda m: m.dense(_XD[:0], _WD)),
    "dense bias shape": (ValueError, lambda m: m.dense(_XD, _WD, np.zeros(4, np.float32))),
    "dense_bw dout shape": (ValueError, lambda m: m.dense_backward(_DD[:, 1:], _XD, _WD)),
    "dense_bw dout int": (TypeError, lambda m: m.dense_backward(_DD.astype(int), _XD, _WD)),
    "dense_bw features": (ValueError, lambda m: m.dense_backward(_DD, _XD[:, 1:], _WD)),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_same_error(name):
    """Both backends raise the same exception type with the same message."""
    exc, call = BAD[name]
    messages = []
    for backend in BACKENDS:
        with pytest.raises(exc) as info:
            call(backend)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


_F = np.float32


def _e(*shape):
    return np.empty(shape, _F)


_X4 = np.ones((2, 3, 6, 5), _F)
_W4 = np.ones((4, 3, 3, 3), _F)


def _aliased(which: str):
    """Direct _core calls whose output shares memory with another argument."""
    buf = _e(27 * 24)
    if which == "im2col":         # cols overlaps x
        _core.im2col(buf.reshape(27, 24), buf[:180].reshape(2, 3, 6, 5), 3, 3, 1, 1, 0, 0)
    elif which == "out is x":     # a 1x1 conv from 3 to 3 channels, written over its input
        x = buf[:180].reshape(2, 3, 6, 5)
        _core.conv2d_forward(x, x, np.ones((3, 3, 1, 1), _F), None, 1, 1, 0, 0)
    elif which == "dx overlaps dw":
        _core.conv2d_backward(buf[:180].reshape(2, 3, 6, 5), buf[:27].reshape(1, 3, 3, 3), None,
                              _e(2, 1, 4, 3), _X4, _W4[:1].copy(), 1, 1, 0, 0)
    elif which == "dw overlaps dout":
        _core.conv2d_backward(None, buf[:108].reshape(4, 3, 3, 3), None,
                              buf[:96].reshape(2, 4, 4, 3), _X4, _W4, 1, 1, 0, 0)
    elif which == "dense out is x":
        _core.dense_forward(buf[:21].reshape(3, 7), buf[:21].reshape(3, 7), _e(7, 7), None)


CORE_BAD = {
    # im2col(cols, x, kh, kw, sh, sw, ph, pw)
    "im2col cols shape": (ValueError, lambda: _core.im2col(_e(27, 23), _X4, 3, 3, 1, 1, 0, 0)),
    "im2col cols 1-D": (ValueError, lambda: _core.im2col(_e(27 * 24), _X4, 3, 3, 1, 1, 0, 0)),
    "im2col cols f64": (TypeError, lambda: _core.im2col(np.empty((27, 24)), _X4, 3, 3, 1, 1, 0, 0)),
    "im2col cols strided": (TypeError, lambda: _core.im2col(_e(27, 48)[:, ::2], _X4,
                                                            3, 3, 1, 1, 0, 0)),
    "im2col cols readonly": (ValueError, lambda: _core.im2col(
        np.lib.stride_tricks.as_strided(_e(27, 24), writeable=False), _X4, 3, 3, 1, 1, 0, 0)),
    "im2col cols list": (TypeError, lambda: _core.im2col([[0.0]], _X4, 3, 3, 1, 1, 0, 0)),
    "im2col x 3-D": (ValueError, lambda: _core.im2col(_e(27, 24), _X4[0], 3, 3, 1, 1, 0, 0)),
    "im2col x f64": (TypeError, lambda: _core.im2col(_e(27, 24), _X4.astype(np.float64),
                                                     3, 3, 1, 1, 0, 0)),
    "im2col stride 0": (ValueError, lambda: _core.im2col(_e(27, 24), _X4, 3, 3, 0, 1, 0, 0)),
    "im2col padding -1": (ValueError, lambda: _core.im2col(_e(27, 24), _X4, 3, 3, 1, 1, -1, 0)),
    "im2col kernel 0": (ValueError, lambda: _core.im2col(_e(0, 24), _X4, 0, 3, 1, 1, 0, 0)),
    "im2col kernel huge": (ValueError, lambda: _core.im2col(_e(27, 24), _X4, 2**62, 3, 1, 1, 0, 0)),
    "im2col padding huge": (ValueError, lambda: _core.im2col(_e(27, 24), _X4, 3, 3, 1, 1,
                                                             2**62, 0)),
    "im2col kernel too big": (ValueError, lambda: _core.im2col(_e(27, 24), _X4, 7, 3, 1, 1, 0, 0)),
    "im2col empty batch": (ValueError, lambda: _core.im2col(_e(27, 0), _X4[:0], 3, 3, 1, 1, 0, 0)),
    "im2col aliased": (ValueError, lambda: _aliased("im2col")),
    # col2im(dx, cols, kh, kw, sh, sw, ph, pw)
    "col2im cols shape": (ValueError, lambda: _core.col2im(_e(2, 3, 6, 5), _e(27, 25),
                                                           3, 3, 1, 1, 0, 0)),
    "col2im dx shape": (ValueError, lambda: _core.col2im(_e(2, 3, 6, 6), _e(27, 24),
                                                         3, 3, 1, 1, 0, 0)),
    "col2im dx 2-D": (ValueError, lambda: _core.col2im(_e(6, 5), _e(9, 12), 3, 3, 1, 1, 0, 0)),
    "col2im dx f64": (TypeError, lambda: _core.col2im(np.empty((2, 3, 6, 5)), _e(27, 24),
                                                      3, 3, 1, 1, 0, 0)),
    # conv2d_forward(out, x, w, b, sh, sw, ph, pw)
    "conv out shape": (ValueError, lambda: _core.conv2d_forward(_e(2, 4, 4, 4), _X4, _W4, None,
                                                                1, 1, 0, 0)),
    "conv out f64": (TypeError, lambda: _core.conv2d_forward(np.empty((2, 4, 4, 3)), _X4, _W4,
                                                             None, 1, 1, 0, 0)),
    "conv channels": (ValueError, lambda: _core.conv2d_forward(_e(2, 4, 4, 3), _X4, _W4[:, :2].copy(),
                                                               None, 1, 1, 0, 0)),
    "conv bias shape": (ValueError, lambda: _core.conv2d_forward(_e(2, 4, 4, 3), _X4, _W4,
                                                                 _e(5), 1, 1, 0, 0)),
    "conv bias 2-D": (ValueError, lambda: _core.conv2d_forward(_e(2, 4, 4, 3), _X4, _W4,
                                                               _e(1, 4), 1, 1, 0, 0)),
    "conv w 2-D": (ValueError, lambda: _core.conv2d_forward(_e(2, 4, 4, 3), _X4, _e(4, 27),
                                                            None, 1, 1, 0, 0)),
    "conv w empty": (ValueError, lambda: _core.conv2d_forward(_e(2, 0, 4, 3), _X4, _e(0, 3, 3, 3),
                                                              None, 1, 1, 0, 0)),
    "conv stride 0": (ValueError, lambda: _core.conv2d_forward(_e(2, 4, 4, 3), _X4, _W4, None,
                                                               1, 0, 0, 0)),
    "conv kernel too big": (ValueError, lambda: _core.conv2d_forward(
        _e(2, 1, 1, 1), _X4, _e(1, 3, 7, 3), None, 1, 1, 0, 0)),
    "conv out is x": (ValueError, lambda: _aliased("out is x")),
    "conv stride not int": (TypeError, lambda: _core.conv2d_forward(_e(2, 4, 4, 3), _X4, _W4,
                                                                    None, 1.5, 1, 0, 0)),
    # conv2d_backward(dx, dw, db, dout, x, w, sh, sw, ph, pw)
    "conv_bw dout shape": (ValueError, lambda: _core.conv2d_backward(
        _e(2, 3, 6, 5), _e(4, 3, 3, 3), _e(4), _e(2, 4, 4, 4), _X4, _W4, 1, 1, 0, 0)),
    "conv_bw dx shape": (ValueError, lambda: _core.conv2d_backward(
        _e(2, 3, 6, 4), _e(4, 3, 3, 3), _e(4), _e(2, 4, 4, 3), _X4, _W4, 1, 1, 0, 0)),
    "conv_bw dw shape": (ValueError, lambda: _core.conv2d_backward(
        None, _e(4, 3, 3, 2), _e(4), _e(2, 4, 4, 3), _X4, _W4, 1, 1, 0, 0)),
    "conv_bw dw None": (TypeError, lambda: _core.conv2d_backward(
        None, None, _e(4), _e(2, 4, 4, 3), _X4, _W4, 1, 1, 0, 0)),
    "conv_bw db shape": (ValueError, lambda: _core.conv2d_backward(
        None, _e(4, 3, 3, 3), _e(3), _e(2, 4, 4, 3), _X4, _W4, 1, 1, 0, 0)),
    "conv_bw dx overlaps dw": (ValueError, lambda: _aliased("dx overlaps dw")),
    "conv_bw dw overlaps dout": (ValueError, lambda: _aliased("dw overlaps dout")),
    # dense_forward(out, x, w, b), dense_backward(dx, dw, db, dout, x, w)
    "dense out shape": (ValueError, lambda: _core.dense_forward(_e(3, 4), _e(3, 7), _e(7, 5), None)),
    "dense features": (ValueError, lambda: _core.dense_forward(_e(3, 5), _e(3, 7), _e(6, 5), None)),
    "dense bias": (ValueError, lambda: _core.dense_forward(_e(3, 5), _e(3, 7), _e(7, 5), _e(4))),
    "dense x 3-D": (ValueError, lambda: _core.dense_forward(_e(3, 5), _e(3, 7, 1), _e(7, 5), None)),
    "dense x f64": (TypeError, lambda: _core.dense_forward(_e(3, 5), np.empty((3, 7)), _e(7, 5),
                                                           None)),
    "dense out is x": (ValueError, lambda: _aliased("dense out is x")),
    "dense empty": (ValueError, lambda: _core.dense_forward(_e(0, 5), _e(0, 7), _e(7, 5), None)),
    "dense_bw dout": (ValueError, lambda: _core.dense_backward(None, _e(7, 5), None, _e(3, 4),
                                                               _e(3, 7), _e(7, 5))),
    "dense_bw dx": (ValueError, lambda: _core.dense_backward(_e(3, 6), _e(7, 5), None, _e(3, 5),
                                                             _e(3, 7), _e(7, 5))),
    "dense_bw dw": (ValueError, lambda: _core.dense_backward(None, _e(5, 7), None, _e(3, 5),
                                                             _e(3, 7), _e(7, 5))),
    "dense_bw db": (ValueError, lambda: _core.dense_backward(None, _e(7, 5), _e(7), _e(3, 5),
                                                             _e(3, 7), _e(7, 5))),
}


@pytest.mark.parametrize("name", list(CORE_BAD))
def test_core_rejects_bad_shapes(name):
    exc, call = CORE_BAD[name]
    with pytest.raises(exc):
        call()


def test_core_good_call_direct():
    """The same direct calls with consistent arguments work (the bad ones above differ in one place)."""
    cols = _e(27, 24)
    _core.im2col(cols, _X4, 3, 3, 1, 1, 0, 0)
    np.testing.assert_array_equal(cols, reference.im2col(_X4, 3))
    out = _e(2, 4, 4, 3)
    _core.conv2d_forward(out, _X4, _W4, None, 1, 1, 0, 0)
    np.testing.assert_array_equal(out, np.full(out.shape, 27, _F))
    dw = _e(4, 3, 3, 3)
    _core.conv2d_backward(None, dw, None, np.ones((2, 4, 4, 3), _F), _X4, _W4, 1, 1, 0, 0)
    np.testing.assert_array_equal(dw, np.full(dw.shape, 24, _F))
