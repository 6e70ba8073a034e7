"""fastcnn.ops -- the native backend: the same names, signatures and return
structure as fastcnn.reference, computed by the compiled core (fastcnn._core).

Every function: checks its arguments with fastcnn._validate (same errors as the
reference), converts read-only inputs to float32 C-contiguous arrays, allocates
its outputs, and calls one _core function (which releases the GIL). Arrays
updated in place are never converted. See the README's "Ops" section.
"""
from __future__ import annotations


from contextlib import contextmanager

import numpy as np

from . import _core
from . import _validate as V


_F32 = np.dtype(np.float32)


def _f32(x: np.ndarray) -> np.ndarray:
    """A read-only input as float32 C-contiguous (no copy when it already is).
    The shape is kept: np.ascontiguousarray alone turns a 0-d array into 1-d."""
    if type(x) is np.ndarray and x.dtype == _F32 and x.flags.c_contiguous:
        return x  # the usual case, checked in ~0.2 us instead of ~0.6
    out = np.ascontiguousarray(x, dtype=np.float32)
    return out if out.shape == x.shape else out.reshape(x.shape)


# =================================================================== GEMM ==


def _real(v, name: str) -> float:
    """V.real(v, name), with a shortcut for the usual finite Python float (the
    full check costs ~0.7 us, noticeable on small GEMMs called in a loop)."""
    if type(v) is float and (v == 0.0 or V.F32_TINY <= abs(v) <= V.F32_MAX):
        return v
    return V.real(v, name)


def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """c = alpha * op(a) @ op(b) + beta * c, in float32 (op(x) is x.T when asked).

    Without c a new (M, N) array is returned and beta is ignored. A given c
    must be float32 C-contiguous; it is updated in place and returned. beta == 0
    makes c write-only (NaN already in c does not survive).
    """
    a, b, m, n, _ = V.gemm_args(a, b, c, trans_a, trans_b, native=True)
    alpha = _real(alpha, "alpha")
    beta = _real(beta, "beta")
    a, b = _f32(a), _f32(b)
    if c is None:
        c, beta = np.empty((m, n), dtype=np.float32), 0.0
    else:
        # The kernel reads a and b while it writes c: never let them overlap.
        if np.may_share_memory(a, c):
            a = a.copy()
        if np.may_share_memory(b, c):
            b = b.copy()
    _core.gemm(a, b, c, alpha, beta, bool(trans_a), bool(trans_b))
    return c



# ========================================== im2col, col2im, conv2d, dense ==


def im2col(x, kernel_size, stride=1, padding=0):
    """cols (C*KH*KW, N*OH*OW) of x (N, C, H, W); see fastcnn.reference.im2col."""
    x, (kh, kw), (sh, sw), (ph, pw), (oh, ow) = V.im2col_args(x, kernel_size, stride, padding)
    x = _f32(x)
    n, c = x.shape[:2]
    cols = np.empty((c * kh * kw, n * oh * ow), dtype=np.float32)
    _core.im2col(cols, x, kh, kw, sh, sw, ph, pw)
    return cols


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """dx (x_shape): the adjoint of im2col; see fastcnn.reference.col2im."""
    cols, x_shape, (kh, kw), (sh, sw), (ph, pw), _ = V.col2im_args(
        cols, x_shape, kernel_size, stride, padding)
    dx = np.empty(x_shape, dtype=np.float32)
    _core.col2im(dx, _f32(cols), kh, kw, sh, sw, ph, pw)
    return dx


def conv2d(x, w, b=None, stride=1, padding=0, relu=False):
    """out (N, K, OH, OW) = cross-correlation of x with w, + b; large batches run in
    chunks. relu=True: relu(out), applied while each image's output is in cache."""
    x, w, b, (sh, sw), (ph, pw), (oh, ow) = V.conv_args(x, w, b, stride, padding)
    relu = V.flag(relu, "relu")
    out = np.empty((x.shape[0], w.shape[0], oh, ow), dtype=np.float32)
    _core.conv2d_forward(out, _f32(x), _f32(w), None if b is None else _f32(b), sh, sw, ph, pw,
                         relu)
    return out


def conv2d_backward(dout, x, w, stride=1, padding=0, need_dx=True):
    """(dx, dw, db) of conv2d given dout; dx is None when need_dx is false."""
    x, w, _, (sh, sw), (ph, pw), out_hw = V.conv_args(x, w, None, stride, padding)
    dout = V.conv_dout(dout, x.shape, w.shape[0], out_hw)
    dx = np.empty(x.shape, dtype=np.float32) if need_dx else None
    dw = np.empty(w.shape, dtype=np.float32)
    db = np.empty(w.shape[0], dtype=np.float32)
    _core.conv2d_backward(dx, dw, db, _f32(dout), _f32(x), _f32(w), sh, sw, ph, pw)
    return dx, dw, db


def conv2d_maxpool(x, w, b=None, stride=1, padding=0, size=2, pool_stride=None, relu=False):
    """(out, choice) = maxpool2d(conv2d(x, w, b, stride, padding, relu), size, pool_stride)
    and each window's choice (uint8; 255: no gradient, relu only), in one pass: the
    conv's own output is pooled image by image from scratch and never stored."""
    x, w, b, (sh, sw), (ph, pw), _, (pkh, pkw), (psh, psw), (poh, pow_) = V.conv_pool_args(
        x, w, b, stride, padding, size, pool_stride)
    relu = V.flag(relu, "relu")
    shape = (x.shape[0], w.shape[0], poh, pow_)
    out = np.empty(shape, dtype=np.float32)
    choice = np.empty(shape, dtype=np.uint8)
    _core.conv2d_maxpool_forward(out, choice, _f32(x), _f32(w), None if b is None else _f32(b),
                                 sh, sw, ph, pw, pkh, pkw, psh, psw, relu)
    return out, choice


def conv2d_maxpool_backward(dout, choice, x, w, stride=1, padding=0, size=2, pool_stride=None,
                            need_dx=True):
    """(dx, dw, db) of conv2d_maxpool given dout (N, K, POH, POW) and its choice; dx is
    None when need_dx is false."""
    dout, choice, x, w, (sh, sw), (ph, pw), _, (pkh, pkw), (psh, psw) = V.conv_pool_grads_args(
        dout, choice, x, w, stride, padding, size, pool_stride)
    dx = np.empty(x.shape, dtype=np.float32) if need_dx else None
    dw = np.empty(w.shape, dtype=np.float32)
    db = np.empty(w.shape[0], dtype=np.float32)
    _core.conv2d_maxpool_backward(dx, dw, db, _f32(dout), np.ascontiguousarray(choice), _f32(x),
                                  _f32(w), sh, sw, ph, pw, pkh, pkw, psh, psw)
    return dx, dw, db


def dense(x, w, b=None):
    """out (N, O) = x (N, I) @ w (I, O) + b (O)."""
    x, w, b = V.dense_args(x, w, b)
    out = np.empty((x.shape[0], w.shape[1]), dtype=np.float32)
    _core.dense_forward(out, _f32(x), _f32(w), None if b is None else _f32(b))
    return out


def dense_backward(dout, x, w, need_dx=True):
    """(dx, dw, db) of dense given dout (N, O); dx is None when need_dx is false."""
    x, w, _ = V.dense_args(x, w, None)
    dout = V.dense_dout(dout, x.shape[0], w.shape[1])
    dx = np.empty(x.shape, dtype=np.float32) if need_dx else None
    dw = np.empty(w.shape, dtype=np.float32)
    db = np.empty(w.shape[1], dtype=np.float32)
    _core.dense_backward(dx, dw, db, _f32(dout), _f32(x), _f32(w))
    return dx, dw, db


def dense_backward_sgd(dout, x, w, b=None, *, lr, weight_decay=0.0, need_dx=True):
    """One plain-SGD step of dense fused with its backward pass: returns dx (None
    when need_dx is false), computed with w as it was; then, in place,
    w = (1 - lr * weight_decay) * w - lr * x.T @ dout and b -= lr * dout.sum(0).
    The weight gradient is never stored (see fastcnn.reference)."""
    dout, x, lr, weight_decay = V.dense_sgd_args(dout, x, w, b, lr, weight_decay, native=True)
    dx = np.empty(x.shape, dtype=np.float32) if need_dx else None
    _core.dense_backward_sgd(dx, w, b, _f32(dout), _f32(x), lr, weight_decay)
    return dx


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


@contextmanager
def busy_wait():
    """While inside: fastcnn's idle worker threads spin ~2 ms for the next op
    before they sleep, instead of ~20 us. Sequential.fit trains inside it (its
    ops follow each other within microseconds); outside it the short wait
    leaves the cores to other thread pools, such as NumPy's BLAS, between ops."""
    before = _core.busy_wait()
    _core.set_busy_wait(True)
    try:
        yield
    finally:
        _core.set_busy_wait(before)
