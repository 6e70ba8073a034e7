"""Pooling with bad arguments: rejected alike (same type, same message) by both
backends, and by direct _core calls, which also overwrite dx whatever it held."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import BACKENDS
from pool_cases import KINDS, _bwd, _fwd

from fastcnn import _core, ops


# ------------------------------------------------------------ bad input ----

X = np.zeros((2, 3, 6, 5), np.float32)
OK_DOUT = np.zeros((2, 3, 3, 2), np.float32)          # for size 2, stride 2

BAD_WINDOW_ARGS = [
    ("3-D x", np.zeros((3, 6, 5), np.float32), 2, None, ValueError),
    ("5-D x", np.zeros((1, 2, 3, 6, 5), np.float32), 2, None, ValueError),
    ("int x", np.zeros((2, 3, 6, 5), np.int32), 2, None, TypeError),
    ("bool x", np.zeros((2, 3, 6, 5), bool), 2, None, TypeError),
    ("string x", "x", 2, None, TypeError),
    ("empty batch", np.zeros((0, 3, 6, 5), np.float32), 2, None, ValueError),
    ("no channels", np.zeros((2, 0, 6, 5), np.float32), 2, None, ValueError),
    ("size 0", X, 0, None, ValueError),
    ("size (2, 0)", X, (2, 0), None, ValueError),
    ("size float", X, 2.0, None, TypeError),
    ("size triple", X, (2, 2, 2), None, ValueError),
    ("stride 0", X, 2, 0, ValueError),
    ("stride (1, 0)", X, 2, (1, 0), ValueError),
    ("stride negative", X, 2, -1, ValueError),
    ("stride float", X, 2, 1.5, TypeError),
    ("window taller than image", X, (7, 1), 1, ValueError),
    ("window wider than image", X, 6, None, ValueError),
]


def _error_of(call):
    try:
        call()
    except Exception as e:  # noqa: BLE001 -- the type and message are what is compared
        return type(e), str(e)
    return None


@pytest.mark.parametrize("label,x,size,stride,error", BAD_WINDOW_ARGS,
                         ids=[a[0] for a in BAD_WINDOW_ARGS])
@pytest.mark.parametrize("kind", KINDS)
def test_bad_window_args_rejected_alike(kind, label, x, size, stride, error):
    for direction in ("forward", "backward"):
        errors = []
        for mod in BACKENDS:
            if direction == "forward":
                errors.append(_error_of(lambda: _fwd(mod, kind)(x, size, stride)))
            else:
                errors.append(_error_of(lambda: _bwd(mod, kind)(OK_DOUT, x, size, stride)))
        assert errors[0] is not None and errors[0][0] is error, (direction, errors[0])
        assert errors[0] == errors[1], direction


BAD_DOUT = [
    ("dout wrong shape", np.zeros((2, 3, 3, 3), np.float32), ValueError),
    ("dout 3-D", np.zeros((3, 3, 2), np.float32), ValueError),
    ("dout wrong channels", np.zeros((2, 2, 3, 2), np.float32), ValueError),
    ("dout int", np.zeros((2, 3, 3, 2), np.int64), TypeError),
]


@pytest.mark.parametrize("label,dout,error", BAD_DOUT, ids=[a[0] for a in BAD_DOUT])
@pytest.mark.parametrize("kind", KINDS)
def test_bad_dout_rejected_alike(kind, label, dout, error):
    errors = [_error_of(lambda: _bwd(mod, kind)(dout, X, 2)) for mod in BACKENDS]
    assert errors[0] is not None and errors[0][0] is error, errors[0]
    assert errors[0] == errors[1]


BAD_GLOBAL = [
    ("3-D x", np.zeros((3, 6, 5), np.float32), np.zeros((2, 3), np.float32), ValueError),
    ("int x", np.zeros((2, 3, 6, 5), np.int16), np.zeros((2, 3), np.float32), TypeError),
    ("empty batch", np.zeros((0, 3, 6, 5), np.float32), np.zeros((0, 3), np.float32), ValueError),
    ("empty image", np.zeros((2, 3, 0, 5), np.float32), np.zeros((2, 3), np.float32), ValueError),
    ("dout wrong shape", X, np.zeros((2, 4), np.float32), ValueError),
    ("dout 4-D", X, np.zeros((2, 3, 1, 1), np.float32), ValueError),
    ("dout int", X, np.zeros((2, 3), np.int32), TypeError),
]


@pytest.mark.parametrize("label,x,dout,error", BAD_GLOBAL, ids=[a[0] for a in BAD_GLOBAL])
def test_bad_global_args_rejected_alike(label, x, dout, error):
    errors = [_error_of(lambda: mod.global_avgpool2d_backward(dout, x)) for mod in BACKENDS]
    assert errors[0] is not None and errors[0][0] is error, errors[0]
    assert errors[0] == errors[1]
    if not label.startswith("dout"):
        errors = [_error_of(lambda: mod.global_avgpool2d(x)) for mod in BACKENDS]
        assert errors[0] is not None and errors[0][0] is error, errors[0]
        assert errors[0] == errors[1]


# ------------------------------------------------ direct _core calls ----

f32 = np.float32


def _win(x_shape=(2, 3, 6, 5)):
    return np.ones(x_shape, f32)


def _read_only(a):
    a.flags.writeable = False
    return a


# (label, function name, args, error). Windowed calls take (.., kh, kw, sh, sw).
CORE_BAD = [
    ("out wrong shape", "maxpool2d_forward", lambda: (np.empty((2, 3, 3, 3), f32), _win(), 2, 2, 2, 2), ValueError),
    ("out wrong batch", "avgpool2d_forward", lambda: (np.empty((1, 3, 3, 2), f32), _win(), 2, 2, 2, 2), ValueError),
    ("out float64", "l2pool2d_forward", lambda: (np.empty((2, 3, 3, 2)), _win(), 2, 2, 2, 2), TypeError),
    ("out not contiguous", "maxpool2d_forward", lambda: (np.empty((2, 3, 3, 4), f32)[..., ::2], _win(), 2, 2, 2, 2), TypeError),
    ("out read-only", "maxpool2d_forward", lambda: (_read_only(np.empty((2, 3, 3, 2), f32)), _win(), 2, 2, 2, 2), ValueError),
    ("out broadcast", "maxpool2d_forward", lambda: (np.broadcast_to(f32(0), (2, 3, 3, 2)), _win(), 2, 2, 2, 2), TypeError),
    ("out is a list", "avgpool2d_forward", lambda: ([0.0] * 12, _win(), 2, 2, 2, 2), TypeError),
    ("x float64", "maxpool2d_forward", lambda: (np.empty((2, 3, 3, 2), f32), np.ones((2, 3, 6, 5)), 2, 2, 2, 2), TypeError),
    ("x 3-D", "maxpool2d_forward", lambda: (np.empty((2, 3, 3, 2), f32), np.ones((3, 6, 5), f32), 2, 2, 2, 2), ValueError),
    ("kh 0", "maxpool2d_forward", lambda: (np.empty((2, 3, 6, 2), f32), _win(), 0, 2, 1, 2), ValueError),
    ("sw 0", "avgpool2d_forward", lambda: (np.empty((2, 3, 3, 2), f32), _win(), 2, 2, 2, 0), ValueError),
    ("sh negative", "l2pool2d_forward", lambda: (np.empty((2, 3, 3, 2), f32), _win(), 2, 2, -2, 2), ValueError),
    ("kw > W", "maxpool2d_forward", lambda: (np.empty((2, 3, 3, 1), f32), _win(), 2, 6, 2, 2), ValueError),
    ("kh huge", "maxpool2d_forward", lambda: (np.empty((2, 3, 1, 2), f32), _win(), 2**62, 2, 2, 2), ValueError),
    ("empty image", "maxpool2d_forward", lambda: (np.empty((2, 3, 0, 2), f32), np.ones((2, 3, 0, 5), f32), 1, 2, 1, 2), ValueError),
    ("out aliases x", "maxpool2d_forward", lambda: (lambda x: (x, x, 1, 1, 1, 1))(_win()), ValueError),
    ("dx wrong shape", "maxpool2d_backward", lambda: (np.empty((2, 3, 6, 4), f32), np.ones((2, 3, 3, 2), f32), _win(), 2, 2, 2, 2), ValueError),
    ("dout wrong shape", "l2pool2d_backward", lambda: (np.empty((2, 3, 6, 5), f32), np.ones((2, 3, 3, 3), f32), _win(), 2, 2, 2, 2), ValueError),
    ("x None", "maxpool2d_backward", lambda: (np.empty((2, 3, 6, 5), f32), np.ones((2, 3, 3, 2), f32), None, 2, 2, 2, 2), TypeError),
    ("x int", "l2pool2d_backward", lambda: (np.empty((2, 3, 6, 5), f32), np.ones((2, 3, 3, 2), f32), np.ones((2, 3, 6, 5), np.int32), 2, 2, 2, 2), TypeError),
    ("dx float64", "avgpool2d_backward", lambda: (np.empty((2, 3, 6, 5)), np.ones((2, 3, 3, 2), f32), 2, 2, 2, 2), TypeError),
    ("avg dout wrong shape", "avgpool2d_backward", lambda: (np.empty((2, 3, 6, 5), f32), np.ones((2, 3, 2, 2), f32), 2, 2, 2, 2), ValueError),
    ("avg window too big", "avgpool2d_backward", lambda: (np.empty((2, 3, 6, 5), f32), np.ones((2, 3, 1, 1), f32), 7, 2, 2, 2), ValueError),
    ("dx aliases x", "maxpool2d_backward", lambda: (lambda x: (x, np.ones((2, 3, 3, 2), f32), x, 2, 2, 2, 2))(_win()), ValueError),
    ("dx aliases dout", "avgpool2d_backward", lambda: (lambda x: (x, x, 1, 1, 1, 1))(_win()), ValueError),
    ("global out wrong", "global_avgpool2d_forward", lambda: (np.empty((3, 2), f32), _win()), ValueError),
    ("global out 1-D", "global_avgpool2d_forward", lambda: (np.empty(6, f32), _win()), ValueError),
    ("global x empty", "global_avgpool2d_forward", lambda: (np.empty((2, 3), f32), np.ones((2, 3, 0, 5), f32)), ValueError),
    ("global dout wrong", "global_avgpool2d_backward", lambda: (np.empty((2, 3, 6, 5), f32), np.ones((2, 4), f32)), ValueError),
    ("global dx int", "global_avgpool2d_backward", lambda: (np.empty((2, 3, 6, 5), np.int32), np.ones((2, 3), f32)), TypeError),
]


@pytest.mark.parametrize("label,name,make_args,error", CORE_BAD, ids=[a[0] for a in CORE_BAD])
def test_core_rejects_bad_calls(label, name, make_args, error):
    with pytest.raises(error):
        getattr(_core, name)(*make_args())


@pytest.mark.parametrize("kind", KINDS)
def test_core_backward_overwrites_dx(kind):
    """dx is overwritten, whatever it held before (including NaN)."""
    rng = np.random.default_rng(23)
    x = rng.standard_normal((2, 3, 7, 9)).astype(np.float32)
    for size, stride in [((2, 2), (2, 2)), ((3, 2), (1, 2)), ((2, 3), (3, 3))]:
        dout = rng.standard_normal(ops.maxpool2d(x, size, stride).shape).astype(np.float32)
        dx = np.full(x.shape, np.nan, np.float32)
        args = (dx, dout) if kind == "avgpool2d" else (dx, dout, x)
        getattr(_core, kind + "_backward")(*args, *size, *stride)
        assert np.array_equal(dx, _bwd(ops, kind)(dout, x, size, stride))
    dx = np.full(x.shape, np.nan, np.float32)
    dout = rng.standard_normal((2, 3)).astype(np.float32)
    _core.global_avgpool2d_backward(dx, dout)
    assert np.array_equal(dx, ops.global_avgpool2d_backward(dout, x))
