"""fastcnn.ops, pointwise ops on the native core: activations, softmax, costs,
dropout and the optimizers' in-place updates; the twins of
backend/reference/pointwise.py.
"""
from __future__ import annotations

import numpy as np

from ... import _core
from .. import intake as V
from .arrays import f32 as _f32


# ============================== activations, softmax, costs, dropout, optim ==
#
# Elementwise ops keep x's shape (0-d included); arrays updated in place by the
# optimizer steps are never converted (float32 C-contiguous or TypeError).


def _unary(kernel, x):
    x = _f32(x)
    out = np.empty_like(x)
    kernel(out, x)
    return out


def _binary(kernel, dout, t, t_name):
    """dx = kernel(dout, t) for an activation's backward; t is its forward
    input or output (named t_name), of dout's shape."""
    dout = V.elementwise(dout, "dout")
    t = V.elementwise(t, t_name)
    V.same_shape(dout, "dout", t, t_name)
    dout, t = _f32(dout), _f32(t)
    dx = np.empty_like(dout)
    kernel(dx, dout, t)
    return dx


def relu(x):
    """max(x, 0) elementwise, any non-empty shape; relu(NaN) is NaN."""
    return _unary(_core.relu_forward, V.elementwise(x))


def relu_backward(dout, x):
    """dx = dout where x > 0, else 0 (also 0 where x is NaN)."""
    return _binary(_core.relu_backward, dout, x, "x")


def leaky_relu(x, alpha=0.01):
    """x where x > 0, else alpha * x, elementwise; leaky_relu(NaN) is NaN."""
    x = _f32(V.elementwise(x))
    alpha = V.leaky_slope(alpha)
    out = np.empty_like(x)
    _core.leaky_relu_forward(out, x, alpha)
    return out


def leaky_relu_backward(dout, x, alpha=0.01):
    """dx = dout where x > 0, else alpha * dout (also where x is NaN)."""
    dout = V.elementwise(dout, "dout")
    x = V.elementwise(x)
    V.same_shape(dout, "dout", x, "x")
    alpha = V.leaky_slope(alpha)
    dout, x = _f32(dout), _f32(x)
    dx = np.empty_like(dout)
    _core.leaky_relu_backward(dx, dout, x, alpha)
    return dx


def sigmoid(x):
    """1 / (1 + exp(-x)) elementwise, any non-empty shape."""
    return _unary(_core.sigmoid_forward, V.elementwise(x))


def sigmoid_backward(dout, y):
    """dx = dout * y * (1 - y), where y is the forward OUTPUT sigmoid(x)."""
    return _binary(_core.sigmoid_backward, dout, y, "y")


def tanh(x):
    """tanh(x) elementwise, any non-empty shape."""
    return _unary(_core.tanh_forward, V.elementwise(x))


def tanh_backward(dout, y):
    """dx = dout * (1 - y**2), where y is the forward OUTPUT tanh(x)."""
    return _binary(_core.tanh_backward, dout, y, "y")


def softmax(x):
    """Row-wise softmax of x (N, K); a row holding NaN or +Inf comes out NaN."""
    return _unary(_core.softmax_forward, V.rows(x))


def log_softmax(x):
    """Row-wise log-softmax of x (N, K); a row holding NaN or +Inf comes out NaN."""
    return _unary(_core.log_softmax_forward, V.rows(x))


def softmax_loglik(logits, labels):
    """(loss, dlogits): mean of -log softmax(logits)[label]; (softmax - onehot) / N."""
    logits = V.rows(logits, "logits")
    labels = V.labels(labels, *logits.shape)
    logits = _f32(logits)
    dlogits = np.empty_like(logits)
    loss = _core.softmax_loglik(dlogits, logits, np.ascontiguousarray(labels))
    return float(loss), dlogits


def _cost(kernel, a, y):
    a, y = _f32(a), _f32(y)
    grad = np.empty_like(a)
    loss = kernel(grad, a, y)
    return float(loss), grad


def quadratic_cost(a, y):
    """(loss, da): mean over rows of 0.5 * ||a - y||^2; da = (a - y) / N."""
    return _cost(_core.quadratic_cost, *V.cost_args(a, y, "a"))


def binary_cross_entropy(logits, y):
    """(loss, dlogits) on logits z (N, D), targets y in [0, 1]; dz = (sigmoid(z) - y) / N."""
    return _cost(_core.binary_cross_entropy, *V.bce_args(logits, y))


def _dropout(x, mask, keep_prob):
    x = _f32(x)
    mask = np.ascontiguousarray(mask).reshape(x.shape).view(np.uint8)  # bool -> 0/1 bytes
    out = np.empty_like(x)
    _core.dropout_apply(out, x, mask, 1.0 / keep_prob)
    return out


def dropout(x, mask, keep_prob):
    """x * mask / keep_prob (mask: bool or 0/1 of x's shape; 0 < keep_prob <= 1)."""
    x = V.elementwise(x)
    mask = V.mask(mask, x)
    return _dropout(x, mask, V.keep_prob(keep_prob))


def dropout_backward(dout, mask, keep_prob):
    """dout * mask / keep_prob: the same mask and scale as the forward pass."""
    dout = V.elementwise(dout, "dout")
    mask = V.mask(mask, dout, "dout")
    return _dropout(dout, mask, V.keep_prob(keep_prob))


def sgd_update(param, grad, velocity=None, *, lr, momentum=0.0, weight_decay=0.0,
               nesterov=False):
    """In place: v = momentum*v + g; param -= lr*(g + momentum*v) with Nesterov, else lr*v."""
    grad, lr, momentum, weight_decay, nesterov = V.sgd_args(
        param, grad, velocity, lr, momentum, weight_decay, nesterov, native=True)
    _core.sgd_update(param, _f32(grad), velocity, lr, momentum, weight_decay, nesterov)


def adagrad_update(param, grad, sum_sq, *, lr, eps=1e-10, weight_decay=0.0):
    """In place: s += g^2; param -= lr*g / (sqrt(s) + eps)."""
    grad, lr, eps, weight_decay = V.adagrad_args(
        param, grad, sum_sq, lr, eps, weight_decay, native=True)
    _core.adagrad_update(param, _f32(grad), sum_sq, lr, eps, weight_decay)


def rmsprop_update(param, grad, sq_avg, *, lr, alpha=0.99, eps=1e-8, weight_decay=0.0):
    """In place: s = alpha*s + (1 - alpha)*g^2; param -= lr*g / (sqrt(s) + eps)."""
    grad, lr, alpha, eps, weight_decay = V.rmsprop_args(
        param, grad, sq_avg, lr, alpha, eps, weight_decay, native=True)
    _core.rmsprop_update(param, _f32(grad), sq_avg, lr, alpha, eps, weight_decay)


def adam_update(param, grad, m, v, *, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0):
    """In place: Adam step on param, m, v, bias-corrected by 1 - beta^step."""
    grad, step, lr, beta1, beta2, eps, weight_decay = V.adam_args(
        param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, native=True)
    _core.adam_update(param, _f32(grad), m, v, step, lr, beta1, beta2, eps, weight_decay)


__all__ = ["relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid",
           "sigmoid_backward", "tanh", "tanh_backward", "softmax", "log_softmax",
           "softmax_loglik", "quadratic_cost", "binary_cross_entropy", "dropout",
           "dropout_backward", "sgd_update", "adagrad_update", "rmsprop_update",
           "adam_update"]
