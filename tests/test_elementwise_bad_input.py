"""Bad input to the activations, softmax, costs and dropout: the same error from
both backends; _core called directly refuses bad calls and allows in place."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import BACKENDS, assert_close

from fastcnn import _core, reference


# ================================================================== bad input ==

F = np.ones((3, 4), np.float32)
F1 = np.ones(4, np.float32)
I = np.ones((3, 4), np.int32)
LAB = np.array([0, 1, 3])

BAD_CASES = [
    ("relu", (I,), TypeError),
    ("relu", ("abc",), TypeError),
    ("relu", (np.ones((0, 3), np.float32),), ValueError),
    ("relu_backward", (F, I), TypeError),
    ("relu_backward", (F, F.T), ValueError),
    ("leaky_relu", (F, -0.1), ValueError),
    ("leaky_relu", (F, 1.5), ValueError),
    ("leaky_relu", (F, "0.1"), TypeError),
    ("leaky_relu_backward", (F, F, float("nan")), ValueError),
    ("leaky_relu_backward", (F, F.T), ValueError),
    ("sigmoid", (I,), TypeError),
    ("sigmoid_backward", (F, F1), ValueError),
    ("tanh", (np.ones(3, np.complex64),), TypeError),
    ("tanh_backward", (I, F), TypeError),
    ("softmax", (I,), TypeError),
    ("softmax", (F1,), ValueError),
    ("softmax", (np.ones((3, 0), np.float32),), ValueError),
    ("log_softmax", (np.ones((2, 3, 4), np.float32),), ValueError),
    ("softmax_loglik", (F, np.array([0, 1, 4])), ValueError),
    ("softmax_loglik", (F, np.array([0, -1, 2])), ValueError),
    ("softmax_loglik", (F, np.array([0.0, 1.0, 2.0])), TypeError),
    ("softmax_loglik", (F, np.array([0, 1])), ValueError),
    ("softmax_loglik", (F, LAB[:, None]), ValueError),
    ("softmax_loglik", (I, LAB), TypeError),
    ("quadratic_cost", (F, F.T), ValueError),
    ("quadratic_cost", (F, I), TypeError),
    ("quadratic_cost", (F1, F1), ValueError),
    ("quadratic_cost", (np.ones((0, 4), np.float32),) * 2, ValueError),
    ("binary_cross_entropy", (F, np.ones((3, 5), np.float32)), ValueError),
    ("binary_cross_entropy", (I, F), TypeError),
    ("binary_cross_entropy", (F, np.full((3, 4), 1.5, np.float32)), ValueError),
    ("binary_cross_entropy", (F, np.full((3, 4), -0.1, np.float32)), ValueError),
    ("binary_cross_entropy", (F, np.full((3, 4), np.nan, np.float32)), ValueError),
    ("dropout", (F, np.ones((4, 3), bool), 0.5), ValueError),
    ("dropout", (F, np.full((3, 4), 2), 0.5), ValueError),
    ("dropout", (F, np.full((3, 4), 0.5), 0.5), ValueError),
    ("dropout", (F, np.array([["a"] * 4] * 3), 0.5), TypeError),
    ("dropout", (F, np.ones((3, 4), bool), 0.0), ValueError),
    ("dropout", (F, np.ones((3, 4), bool), 1.5), ValueError),
    ("dropout", (F, np.ones((3, 4), bool), float("nan")), ValueError),
    ("dropout", (F, np.ones((3, 4), bool), "0.5"), TypeError),
    ("dropout", (I, np.ones((3, 4), bool), 0.5), TypeError),
    ("dropout_backward", (F, np.ones((3, 5), bool), 0.5), ValueError),
    ("dropout_backward", (F, np.ones((3, 4), bool), -1), ValueError),
]


def _same_error(name, args, kwargs=None):
    """Both backends raise; returns the two exceptions."""
    errors = []
    for backend in BACKENDS:
        with pytest.raises(Exception) as info:
            getattr(backend, name)(*args, **(kwargs or {}))
        errors.append(info.value)
    return errors


@pytest.mark.parametrize("name,args,error", BAD_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CASES)])
def test_bad_input_same_error(name, args, error):
    ref_err, ops_err = _same_error(name, args)
    assert type(ref_err) is error and type(ops_err) is error
    assert str(ref_err) == str(ops_err)


def test_core_direct_bad_calls_raise():
    x = np.ones((3, 4), np.float32)
    out = np.empty_like(x)
    with pytest.raises(ValueError):
        _core.relu_forward(np.empty((4, 3), np.float32), x)  # wrong shape
    with pytest.raises(ValueError):
        _core.relu_forward(np.empty(13, np.float32), x)  # bigger: still wrong
    with pytest.raises(TypeError):
        _core.sigmoid_forward(np.empty((3, 4)), x)  # float64 out
    with pytest.raises(TypeError):
        _core.sigmoid_forward(out, x.astype(np.float64))
    with pytest.raises(TypeError):
        _core.tanh_forward(np.empty((3, 8), np.float32)[:, ::2], x)  # strided out
    with pytest.raises(TypeError):
        _core.tanh_forward(out, [[1.0] * 4] * 3)  # a list
    readonly = np.empty_like(x)
    readonly.flags.writeable = False
    with pytest.raises(ValueError):
        _core.relu_forward(readonly, x)
    with pytest.raises(ValueError):
        _core.relu_backward(out, x, np.ones((3, 5), np.float32))
    buf = np.zeros(20, np.float32)
    with pytest.raises(ValueError):
        _core.relu_forward(buf[1:13].reshape(3, 4), buf[:12].reshape(3, 4))  # partial overlap
    with pytest.raises(ValueError):
        _core.softmax_forward(np.empty((3, 0), np.float32), np.empty((3, 0), np.float32))
    with pytest.raises(ValueError):
        _core.softmax_forward(np.empty(4, np.float32), np.ones(4, np.float32))
    with pytest.raises(ValueError):
        _core.softmax_loglik(out, x, np.array([0, 1, 4]))
    with pytest.raises(ValueError):
        _core.softmax_loglik(out, x, np.array([0, 1, -1]))
    with pytest.raises(TypeError):
        _core.softmax_loglik(out, x, np.array([0, 1, 2], np.int32))
    with pytest.raises(ValueError):
        _core.softmax_loglik(out, x, np.array([0, 1]))
    with pytest.raises(ValueError):
        _core.quadratic_cost(out, x, np.ones((3, 5), np.float32))
    with pytest.raises(ValueError):
        _core.binary_cross_entropy(np.empty((1, 4), np.float32), np.ones((1, 4), np.float32)[:0],
                                   np.ones((0, 4), np.float32))
    with pytest.raises(TypeError):
        _core.dropout_apply(out, x, np.ones((3, 4), np.float32), 2.0)  # float mask
    with pytest.raises(ValueError):
        _core.dropout_apply(out, x, np.ones((4, 3), np.uint8), 2.0)
    with pytest.raises(TypeError):
        _core.dropout_apply(out, x, np.ones((3, 8), np.uint8)[:, ::2], 2.0)


def test_core_in_place_is_allowed():
    x = np.array([-1.0, 2.0, np.nan], np.float32)
    _core.relu_forward(x, x)
    assert x[:2].tolist() == [0.0, 2.0] and np.isnan(x[2])
    z = np.array([[1.0, 2.0, 3.0]], np.float32)
    want = reference.softmax_loglik(z.astype(np.float64), [2])
    loss = _core.softmax_loglik(z, z, np.array([2]))  # dlogits written over the logits
    assert loss == pytest.approx(want[0], rel=1e-6)
    assert_close(z, want[1], rtol=1e-5, atol=1e-7)
