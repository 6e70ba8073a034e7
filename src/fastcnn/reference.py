"""fastcnn.reference -- every fastcnn op in plain NumPy: the oracle, written to be read.

Dtype-generic: results come out in the floating dtype of the inputs (the tests
run it in float64). The same names, signatures and return structure as
fastcnn.ops; arguments are checked by fastcnn._validate, so both backends raise
the same errors. See the README's "Ops" section for the contract of each op.

Layouts: images (N, C, H, W); conv weights (C_out, C_in, KH, KW); dense
weights (in_features, out_features).
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from . import _validate as V


# =================================================================== GEMM ==


def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """c = alpha * op(a) @ op(b) + beta * c, where op(x) is x.T when asked.

    Without c a new (M, N) array is returned and beta is ignored. A given c is
    updated in place and returned; beta == 0 makes c write-only (NaN already in
    c does not survive, as in BLAS).
    """
    a, b, _, _, _ = V.gemm_args(a, b, c, trans_a, trans_b, native=False)
    alpha = V.real(alpha, "alpha")
    beta = V.real(beta, "beta")
    op_a = a.T if trans_a else a  # (M, K)
    op_b = b.T if trans_b else b  # (K, N)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf in, NaN/Inf out
        product = alpha * (op_a @ op_b)  # (M, N)
        if c is None:
            return product
        if beta == 0.0:
            c[...] = product
        else:
            c[...] = product + beta * c
    return c



# ========================================== im2col, col2im, conv2d, dense ==


def _common(*arrays) -> np.dtype:
    """The floating dtype the results come out in: that of the inputs together."""
    return np.result_type(*[a for a in arrays if a is not None])


def _inside(n_out: int, size: int, offset: int, stride: int, pad: int):
    """Along one axis, kernel offset `offset` of output position o reads input
    position o*stride - pad + offset. Returns (outputs, inputs): the slice of
    output positions for which that lies inside [0, size), and the slice of the
    input positions they read -- or (None, None) if it never does. (Outside,
    the zero padding contributes nothing, so no padded copy of x is needed.)"""
    first = max(0, -((offset - pad) // stride))                # ceil((pad - offset) / stride)
    last = min(n_out - 1, (size - 1 + pad - offset) // stride)
    if first > last:
        return None, None
    start = first * stride - pad + offset
    return slice(first, last + 1), slice(start, start + (last - first) * stride + 1, stride)


def im2col(x, kernel_size, stride=1, padding=0):
    """cols (C*KH*KW, N*OH*OW): row (c*KH + i)*KW + j, column (n*OH + oh)*OW + ow
    holds x[n, c, oh*SH - PH + i, ow*SW - PW + j] (zero outside the image)."""
    x, (kh, kw), (sh, sw), (ph, pw), (oh, ow) = V.im2col_args(x, kernel_size, stride, padding)
    n, c, h, w = x.shape
    cols = np.zeros((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        out_rows, in_rows = _inside(oh, h, i, sh, ph)
        for j in range(kw):
            out_cols, in_cols = _inside(ow, w, j, sw, pw)
            if out_rows is None or out_cols is None:
                continue                                      # this offset sees only padding
            patch = x[:, :, in_rows, in_cols]                 # (N, C, rows, cols)
            cols[:, i, j, :, out_rows, out_cols] = patch.transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * oh * ow)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """The adjoint of im2col: dx (x_shape) where each entry is the sum of every
    cols entry that im2col would have copied from it."""
    cols, x_shape, (kh, kw), (sh, sw), (ph, pw), (oh, ow) = V.col2im_args(
        cols, x_shape, kernel_size, stride, padding)
    n, c, h, w = x_shape
    blocks = cols.reshape(c, kh, kw, n, oh, ow)
    dx = np.zeros((n, c, h, w), dtype=cols.dtype)
    for i in range(kh):
        out_rows, in_rows = _inside(oh, h, i, sh, ph)
        for j in range(kw):
            out_cols, in_cols = _inside(ow, w, j, sw, pw)
            if out_rows is None or out_cols is None:
                continue
            # Within one offset (i, j) the input positions are distinct: += is safe.
            dx[:, :, in_rows, in_cols] += blocks[:, i, j, :, out_rows, out_cols].transpose(1, 0, 2, 3)
    return dx


def conv2d(x, w, b=None, stride=1, padding=0, relu=False):
    """out (N, K, OH, OW) = cross-correlation of x (N, C, H, W) with w (K, C, KH, KW), + b;
    relu=True returns relu(out) instead (NaN stays NaN)."""
    x, w, b, s, p, (oh, ow) = V.conv_args(x, w, b, stride, padding)
    if V.flag(relu, "relu"):
        return _relu_of(conv2d(x, w, b, stride, padding))
    dtype = _common(x, w, b)
    n, k = x.shape[0], w.shape[0]
    cols = im2col(x.astype(dtype, copy=False), w.shape[2:], s, p)  # (C*KH*KW, N*OH*OW)
    out = w.reshape(k, -1).astype(dtype, copy=False) @ cols         # (K, N*OH*OW)
    out = out.reshape(k, n, oh, ow).transpose(1, 0, 2, 3)           # (N, K, OH, OW)
    if b is not None:
        out = out + b.reshape(1, k, 1, 1)
    return np.ascontiguousarray(out, dtype=dtype)


def conv2d_backward(dout, x, w, stride=1, padding=0, need_dx=True):
    """Gradients (dx, dw, db) of conv2d(x, w, b, stride, padding) given dout,
    the gradient of its output. dx is None when need_dx is false."""
    x, w, _, s, p, out_hw = V.conv_args(x, w, None, stride, padding)
    k = w.shape[0]
    dout = V.conv_dout(dout, x.shape, k, out_hw)
    dtype = _common(dout, x, w)
    dout, x, w = (a.astype(dtype, copy=False) for a in (dout, x, w))
    cols = im2col(x, w.shape[2:], s, p)                        # (C*KH*KW, N*OH*OW)
    dout_mat = dout.transpose(1, 0, 2, 3).reshape(k, -1)       # (K, N*OH*OW)
    dw = (dout_mat @ cols.T).reshape(w.shape)
    db = dout.sum(axis=(0, 2, 3))
    dx = None
    if need_dx:
        dcols = w.reshape(k, -1).T @ dout_mat                  # (C*KH*KW, N*OH*OW)
        dx = col2im(dcols, x.shape, w.shape[2:], s, p)
    return dx, dw, db


def conv2d_maxpool(x, w, b=None, stride=1, padding=0, size=2, pool_stride=None, relu=False):
    """(out, choice): out = maxpool2d(conv2d(x, w, b, stride, padding, relu), size,
    pool_stride) (N, K, POH, POW), and choice (uint8, the same shape): the row-major
    offset i*KW + j of each window's chosen element (the maxpool2d rule), or 255
    where relu is true and the pooled value is not > 0 (no gradient flows there).
    The native op never stores the conv's own output; this one composes the ops."""
    x, w, b, s, p, _, k, ps, _ = V.conv_pool_args(x, w, b, stride, padding, size, pool_stride)
    relu = V.flag(relu, "relu")
    out, chosen = _max_pool(conv2d(x, w, b, s, p, relu=relu), k, ps)  # (N, K, POH, POW)
    choice = chosen.astype(np.uint8)
    if relu:
        choice[~(out > 0)] = V.CHOICE_NO_GRADIENT
    return np.ascontiguousarray(out), choice


def conv2d_maxpool_backward(dout, choice, x, w, stride=1, padding=0, size=2, pool_stride=None,
                            need_dx=True):
    """(dx, dw, db) of conv2d_maxpool given dout of the pooled output and its choice:
    conv2d_backward of the conv output's gradient, which holds each pooled gradient
    at its window's chosen element (nothing where choice is 255), 0 elsewhere."""
    dout, choice, x, w, s, p, (oh, ow), (kh, kw), ps = V.conv_pool_grads_args(
        dout, choice, x, w, stride, padding, size, pool_stride)
    bad = (choice >= kh * kw) & (choice != V.CHOICE_NO_GRADIENT)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"choice holds {int(choice.flat[i])} at flat index {i}, but a "
                         f"{kh}x{kw} window has offsets 0..{kh * kw - 1} (or 255: no gradient); "
                         f"pass the choice that conv2d_maxpool returned")
    # 255 (no gradient) is outside every window: _to_chosen sends nothing there
    dz = _to_chosen(dout, choice, (x.shape[0], w.shape[0], oh, ow), (kh, kw), ps,
                    _common(dout, x, w))
    return conv2d_backward(dz, x, w, s, p, need_dx)


def dense(x, w, b=None):
    """out (N, O) = x (N, I) @ w (I, O) + b (O)."""
    x, w, b = V.dense_args(x, w, b)
    out = x @ w
    if b is not None:
        out = out + b
    return out.astype(_common(x, w, b), copy=False)


def dense_backward(dout, x, w, need_dx=True):
    """Gradients (dx, dw, db) of dense(x, w, b) given dout (N, O).
    dx is None when need_dx is false."""
    x, w, _ = V.dense_args(x, w, None)
    dout = V.dense_dout(dout, x.shape[0], w.shape[1])
    dtype = _common(dout, x, w)
    dout, x, w = (a.astype(dtype, copy=False) for a in (dout, x, w))
    dx = dout @ w.T if need_dx else None
    return dx, x.T @ dout, dout.sum(axis=0)


def dense_backward_sgd(dout, x, w, b=None, *, lr, weight_decay=0.0, need_dx=True):
    """dense_backward and one plain-SGD step in one op: returns dx (None when
    need_dx is false), computed with w as it was; then, in place,
    w = (1 - lr * weight_decay) * w - lr * (x.T @ dout) and b -= lr * dout.sum(axis=0).
    (The same step as sgd_update, written as the native op computes it: an Inf
    weight with lr * weight_decay == 0 stays Inf.) The native op never stores
    x.T @ dout: it adds it straight into w."""
    dout, x, lr, weight_decay = V.dense_sgd_args(dout, x, w, b, lr, weight_decay, native=False)
    dx, dw, db = dense_backward(dout, x, w, need_dx)
    w[...] = ((1.0 - lr * weight_decay) * w - lr * dw).astype(w.dtype, copy=False)
    if b is not None:
        b -= (lr * db).astype(b.dtype, copy=False)
    return dx


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


# ops.busy_wait's twin (Sequential.fit trains inside it): the reference has no
# threads, so there is nothing to change. Not an op: no array goes in or out.
busy_wait = nullcontext
