"""fastcnn.reference, pointwise ops in plain NumPy: activations, softmax, costs,
dropout and the optimizers' in-place updates (the oracle of
backend/native/pointwise.py).
"""
from __future__ import annotations

import numpy as np

from .. import intake as V


# ============================== activations, softmax, costs, dropout, optim ==
#
# Elementwise ops keep x's shape; softmax and the costs work on (N, K) rows.
# Costs return (loss as a Python float averaged over the N rows, gradient).
# Optimizer steps update param and their state arrays in place, return None.


def relu(x):
    """max(x, 0) elementwise, any non-empty shape; relu(NaN) is NaN."""
    x = V.elementwise(x)
    keep = (x > 0) | np.isnan(x)  # relu(NaN) is NaN
    return np.where(keep, x, x.dtype.type(0))


def _relu_of(z):
    return relu(z)  # for conv2d, whose relu argument hides this module's relu


def relu_backward(dout, x):
    """dx = dout where x > 0, else 0 (also 0 where x is NaN)."""
    dout = V.elementwise(dout, "dout")
    x = V.elementwise(x)
    V.same_shape(dout, "dout", x, "x")
    return np.where(x > 0, dout, dout.dtype.type(0))  # not where x is NaN


def leaky_relu(x, alpha=0.01):
    """x where x > 0, else alpha * x, elementwise; leaky_relu(NaN) is NaN."""
    x = V.elementwise(x)
    alpha = V.leaky_slope(alpha)
    with np.errstate(invalid="ignore"):   # -inf * 0 is NaN, as in the native kernel
        return np.where(x > 0, x, x * x.dtype.type(alpha))   # NaN * alpha is NaN


def leaky_relu_backward(dout, x, alpha=0.01):
    """dx = dout where x > 0, else alpha * dout (also where x is NaN)."""
    dout = V.elementwise(dout, "dout")
    x = V.elementwise(x)
    V.same_shape(dout, "dout", x, "x")
    alpha = V.leaky_slope(alpha)
    with np.errstate(invalid="ignore"):   # inf * 0 is NaN, as in the native kernel
        return np.where(x > 0, dout, dout * dout.dtype.type(alpha))


def _sigmoid(x):
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid(x):
    """1 / (1 + exp(-x)) elementwise, any non-empty shape."""
    return _sigmoid(V.elementwise(x))


def sigmoid_backward(dout, y):
    """y is the forward OUTPUT sigmoid(x)."""
    dout = V.elementwise(dout, "dout")
    y = V.elementwise(y, "y")
    V.same_shape(dout, "dout", y, "y")
    return dout * y * (1 - y)


def tanh(x):
    """tanh(x) elementwise, any non-empty shape."""
    return np.tanh(V.elementwise(x))


def tanh_backward(dout, y):
    """y is the forward OUTPUT tanh(x)."""
    dout = V.elementwise(dout, "dout")
    y = V.elementwise(y, "y")
    V.same_shape(dout, "dout", y, "y")
    return dout * (1 - y * y)


def _shifted(x):
    """x (N, K) minus its row max; a row holding NaN or +Inf becomes NaN."""
    with np.errstate(invalid="ignore"):  # inf - inf
        return x - x.max(axis=1, keepdims=True)


def softmax(x):
    """Row-wise softmax of x (N, K); a row holding NaN or +Inf comes out NaN."""
    e = np.exp(_shifted(V.rows(x)))
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(x):
    """Row-wise log-softmax of x (N, K); a row holding NaN or +Inf comes out NaN."""
    z = _shifted(V.rows(x))
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax_loglik(logits, labels):
    """Mean over rows of -log softmax(logits)[label]; dlogits = (softmax - onehot) / N."""
    logits = V.rows(logits, "logits")
    n, k = logits.shape
    labels = V.labels(labels, n, k)
    rows = np.arange(n)
    z = _shifted(logits)
    e = np.exp(z)
    total = e.sum(axis=1)
    loss = float(np.mean(np.log(total) - z[rows, labels]))
    dlogits = e / total[:, None]
    dlogits[rows, labels] -= 1
    return loss, dlogits / n


def quadratic_cost(a, y):
    """Mean over rows of 0.5 * ||a - y||^2; da = (a - y) / N."""
    a, y = V.cost_args(a, y, "a")
    n = a.shape[0]
    diff = a - y
    return float(0.5 * np.sum(diff * diff) / n), diff / n


def binary_cross_entropy(logits, y):
    """On logits z: mean over rows of sum(softplus(z) - y*z); dz = (sigmoid(z) - y) / N."""
    z, y = V.bce_args(logits, y)
    n = z.shape[0]
    softplus = np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))  # log(1 + e^z), stable
    return float(np.sum(softplus - y * z) / n), (_sigmoid(z) - y) / n


def dropout(x, mask, keep_prob):
    """x * mask / keep_prob (mask: bool or 0/1 of x's shape; 0 < keep_prob <= 1)."""
    x = V.elementwise(x)
    mask = V.mask(mask, x)
    keep_prob = V.keep_prob(keep_prob)
    return x * mask / keep_prob


def dropout_backward(dout, mask, keep_prob):
    """dout * mask / keep_prob: the same mask and scale as the forward pass."""
    dout = V.elementwise(dout, "dout")
    mask = V.mask(mask, dout, "dout")
    keep_prob = V.keep_prob(keep_prob)
    return dout * mask / keep_prob


def sgd_update(param, grad, velocity=None, *, lr, momentum=0.0, weight_decay=0.0,
               nesterov=False):
    """v = momentum*v + g; param -= lr*(g + momentum*v) with Nesterov, else lr*v."""
    grad, lr, momentum, weight_decay, nesterov = V.sgd_args(
        param, grad, velocity, lr, momentum, weight_decay, nesterov, native=False)
    g = grad + weight_decay * param
    if velocity is None:  # allowed only with momentum == 0
        param -= lr * g
        return None
    velocity *= momentum
    velocity += g
    param -= lr * (g + momentum * velocity if nesterov else velocity)
    return None


def adagrad_update(param, grad, sum_sq, *, lr, eps=1e-10, weight_decay=0.0):
    """s += g^2; param -= lr*g / (sqrt(s) + eps)."""
    grad, lr, eps, weight_decay = V.adagrad_args(
        param, grad, sum_sq, lr, eps, weight_decay, native=False)
    g = grad + weight_decay * param
    sum_sq += g * g
    param -= lr * g / (np.sqrt(sum_sq) + eps)
    return None


def rmsprop_update(param, grad, sq_avg, *, lr, alpha=0.99, eps=1e-8, weight_decay=0.0):
    """s = alpha*s + (1 - alpha)*g^2; param -= lr*g / (sqrt(s) + eps)."""
    grad, lr, alpha, eps, weight_decay = V.rmsprop_args(
        param, grad, sq_avg, lr, alpha, eps, weight_decay, native=False)
    g = grad + weight_decay * param
    sq_avg *= alpha
    sq_avg += (1 - alpha) * g * g
    param -= lr * g / (np.sqrt(sq_avg) + eps)
    return None


def adam_update(param, grad, m, v, *, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0):
    """m, v: moving averages of g and g^2; bias-corrected by 1 - beta^step."""
    grad, step, lr, beta1, beta2, eps, weight_decay = V.adam_args(
        param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, native=False)
    g = grad + weight_decay * param
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** step)
    v_hat = v / (1 - beta2 ** step)
    param -= lr * m_hat / (np.sqrt(v_hat) + eps)
    return None


__all__ = ["relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid",
           "sigmoid_backward", "tanh", "tanh_backward", "softmax", "log_softmax",
           "softmax_loglik", "quadratic_cost", "binary_cross_entropy", "dropout",
           "dropout_backward", "sgd_update", "adagrad_update", "rmsprop_update",
           "adam_update"]
