"""Argument checks of the ops, shared by both backends (fastcnn.reference and
fastcnn.ops).

Both backends call these functions first, so a bad argument raises the same
exception type with the same message whichever backend runs, before any
numerical work starts. Every message names the argument and its shape.
The kinds of mistake follow fastcnn.common.checks: TypeError for the wrong
kind of object or dtype (ints where floats are needed, a float where an
integer size is needed, a non-ndarray to write into), ValueError for the right
kind with a wrong value (ndim, shape mismatch, stride 0, negative padding,
empty batch, kernel larger than the input).
"""
from __future__ import annotations

import numpy as np

from ..common.checks import (decay_rate, epsilon, flag, integer, labels_in_range,
                             learning_rate, pair, real, shape_str, weight_decay)
from ..common.geometry import conv_output_size, pool_output_size
from ..common.limits import MAX_FUSED_POOL_WINDOW

# ----------------------------------------------------------------- arrays --


def floating(x, name: str) -> np.ndarray:
    """x as an ndarray of a real floating dtype (not copied when it already is)."""
    if not isinstance(x, np.ndarray):
        if isinstance(x, (str, bytes)) or x is None:
            raise TypeError(f"{name} must be a floating-point array, got {type(x).__name__}")
        x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    return x


def ndim(x: np.ndarray, name: str, n: int, layout: str = "") -> None:
    if x.ndim != n:
        what = f"{n}-D {layout}".rstrip()
        raise ValueError(f"{name} must be {what}, got shape {shape_str(x.shape)}")


def nonempty(x: np.ndarray, name: str) -> None:
    if x.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {shape_str(x.shape)}")


def same_shape(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{a_name} and {b_name} must have the same shape, got "
            f"{shape_str(a.shape)} and {shape_str(b.shape)}")


def writable(a, name: str, shape, native: bool) -> np.ndarray:
    """An array the op writes into: never converted. The native backend also
    needs float32 and C-contiguous memory."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray (it is updated in place), "
                        f"got {type(a).__name__}")
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {a.dtype}")
    if native and a.dtype != np.float32:
        raise TypeError(f"{name} must have dtype float32 for the native backend "
                        f"(it is updated in place, so it cannot be converted), got {a.dtype}")
    if native and not a.flags.c_contiguous:
        raise TypeError(f"{name} must be C-contiguous for the native backend "
                        f"(it is updated in place, so it cannot be copied)")
    if not a.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name} has shape {shape_str(a.shape)}, expected {shape_str(shape)}")
    return a


# ------------------------------------------------------------- op checks --


def gemm_args(a, b, c, trans_a, trans_b, native: bool):
    """Returns (a, b, M, N, K). c (if given) is checked as an output (M, N)."""
    a = floating(a, "a")
    b = floating(b, "b")
    ndim(a, "a", 2)
    ndim(b, "b", 2)
    m, ka = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if ka != kb:
        raise ValueError(
            f"inner dimensions differ: op(a) is {shape_str((m, ka))} (a has shape "
            f"{shape_str(a.shape)}, trans_a={bool(trans_a)}), op(b) is {shape_str((kb, n))} "
            f"(b has shape {shape_str(b.shape)}, trans_b={bool(trans_b)})")
    if c is not None:
        writable(c, "c", (m, n), native)
    return a, b, int(m), int(n), int(ka)


def bias(b, n: int, w: np.ndarray):
    """None, or b as a floating array of shape (n,): one bias per output of w."""
    if b is None:
        return None
    b = floating(b, "b")
    if b.shape != (n,):
        raise ValueError(f"b has shape {shape_str(b.shape)}, expected "
                         f"{shape_str((n,))} for w with shape {shape_str(w.shape)}")
    return b


def image_batch(x, name: str = "x") -> np.ndarray:
    x = floating(x, name)
    ndim(x, name, 4, "(N, C, H, W)")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has an empty batch: shape {shape_str(x.shape)}")
    nonempty(x, name)
    return x


def conv_args(x, w, b, stride, padding):
    """Returns (x, w, b, (sh, sw), (ph, pw), (oh, ow))."""
    x = image_batch(x)
    w = floating(w, "w")
    ndim(w, "w", 4, "(C_out, C_in, KH, KW)")
    nonempty(w, "w")
    if w.shape[1] != x.shape[1]:
        raise ValueError(
            f"channel mismatch: x has shape {shape_str(x.shape)} ({x.shape[1]} channels) but "
            f"w has shape {shape_str(w.shape)} (expects {w.shape[1]} input channels)")
    b = bias(b, w.shape[0], w)
    s = pair(stride, "stride", 1)
    p = pair(padding, "padding", 0)
    out_hw = conv_output_size(x.shape, w.shape[2:], s, p)
    return x, w, b, s, p, out_hw


def conv_dout(dout, x_shape, k: int, out_hw) -> np.ndarray:
    dout = floating(dout, "dout")
    want = (x_shape[0], k, out_hw[0], out_hw[1])
    if dout.shape != want:
        raise ValueError(f"dout has shape {shape_str(dout.shape)}, expected {shape_str(want)} "
                         f"(the forward output shape)")
    return dout


def conv_pool_args(x, w, b, stride, padding, size, pool_stride):
    """conv_args plus the max-pool over the conv output: returns (x, w, b, (sh, sw),
    (ph, pw), (oh, ow), (pkh, pkw), (psh, psw), (poh, pow))."""
    x, w, b, s, p, out_hw = conv_args(x, w, b, stride, padding)
    k = pair(size, "size", 1)
    ps = k if pool_stride is None else pair(pool_stride, "pool_stride", 1)
    if k[0] * k[1] > MAX_FUSED_POOL_WINDOW:
        raise ValueError(f"size {shape_str(k)} has {k[0] * k[1]} elements; the fused conv + "
                         f"max-pool handles windows of at most {MAX_FUSED_POOL_WINDOW}")
    conv_shape = (x.shape[0], w.shape[0]) + tuple(out_hw)
    pooled = pool_output_size(conv_shape, k, ps, "the conv output")
    return x, w, b, s, p, out_hw, k, ps, pooled


def conv_pool_grads_args(dout, choice, x, w, stride, padding, size, pool_stride):
    """conv2d_maxpool_backward: conv_pool_args, dout and choice checked against the
    pooled shape (and choice's values against the window)."""
    x, w, _, s, p, out_hw, k, ps, pooled = conv_pool_args(x, w, None, stride, padding, size,
                                                          pool_stride)
    want = (x.shape[0], w.shape[0]) + tuple(pooled)
    dout = floating(dout, "dout")
    if dout.shape != want:
        raise ValueError(f"dout has shape {shape_str(dout.shape)}, expected {shape_str(want)} "
                         f"(the pooled output shape)")
    if not isinstance(choice, np.ndarray):
        raise TypeError(f"choice must be a numpy array, got {type(choice).__name__}")
    if choice.dtype != np.uint8:
        raise TypeError(f"choice must have dtype uint8 (from conv2d_maxpool), got {choice.dtype}")
    if choice.shape != want:
        raise ValueError(f"choice has shape {shape_str(choice.shape)}, expected "
                         f"{shape_str(want)} (the pooled output shape)")
    return dout, choice, x, w, s, p, out_hw, k, ps


def im2col_args(x, kernel_size, stride, padding):
    """Returns (x, (kh, kw), (sh, sw), (ph, pw), (oh, ow))."""
    x = image_batch(x)
    k = pair(kernel_size, "kernel_size", 1)
    s = pair(stride, "stride", 1)
    p = pair(padding, "padding", 0)
    return x, k, s, p, conv_output_size(x.shape, k, s, p)


def col2im_args(cols, x_shape, kernel_size, stride, padding):
    """Returns (cols, x_shape, (kh, kw), (sh, sw), (ph, pw), (oh, ow))."""
    cols = floating(cols, "cols")
    ndim(cols, "cols", 2, "(C*KH*KW, N*OH*OW)")
    if not isinstance(x_shape, (tuple, list)):
        raise TypeError(f"x_shape must be a tuple (N, C, H, W), got {type(x_shape).__name__}")
    if len(x_shape) != 4:
        raise ValueError(f"x_shape must be a 4-tuple (N, C, H, W), got {x_shape!r}")
    x_shape = tuple(integer(s, "x_shape", 1) for s in x_shape)
    k = pair(kernel_size, "kernel_size", 1)
    s = pair(stride, "stride", 1)
    p = pair(padding, "padding", 0)
    oh, ow = conv_output_size(x_shape, k, s, p, "x_shape")
    n, c = x_shape[:2]
    want = (c * k[0] * k[1], n * oh * ow)
    if cols.shape != want:
        raise ValueError(f"cols has shape {shape_str(cols.shape)}, expected {shape_str(want)} "
                         f"for x_shape {shape_str(x_shape)}")
    return cols, x_shape, k, s, p, (oh, ow)


def pool_args(x, size, stride):
    """Returns (x, (kh, kw), (sh, sw), (oh, ow)); stride defaults to size."""
    x = image_batch(x)
    k = pair(size, "size", 1)
    s = k if stride is None else pair(stride, "stride", 1)
    return x, k, s, pool_output_size(x.shape, k, s)


def pool_dout(dout, x_shape, out_hw) -> np.ndarray:
    return conv_dout(dout, x_shape, x_shape[1], out_hw)


def global_pool_dout(dout, x_shape) -> np.ndarray:
    dout = floating(dout, "dout")
    if dout.shape != tuple(x_shape[:2]):
        raise ValueError(f"dout has shape {shape_str(dout.shape)}, expected "
                         f"{shape_str(x_shape[:2])} (the forward output shape)")
    return dout


def dense_args(x, w, b):
    """Returns (x, w, b) with x (N, I), w (I, O), b (O,) or None."""
    x = floating(x, "x")
    ndim(x, "x", 2, "(N, in_features)")
    if x.shape[0] == 0:
        raise ValueError(f"x has an empty batch: shape {shape_str(x.shape)}")
    nonempty(x, "x")
    w = floating(w, "w")
    ndim(w, "w", 2, "(in_features, out_features)")
    nonempty(w, "w")
    if w.shape[0] != x.shape[1]:
        raise ValueError(f"feature mismatch: x has shape {shape_str(x.shape)} but w has shape "
                         f"{shape_str(w.shape)} (expects {w.shape[0]} input features)")
    return x, w, bias(b, w.shape[1], w)


def dense_dout(dout, n: int, o: int) -> np.ndarray:
    dout = floating(dout, "dout")
    if dout.shape != (n, o):
        raise ValueError(f"dout has shape {shape_str(dout.shape)}, expected "
                         f"{shape_str((n, o))} (the forward output shape)")
    return dout


def dense_sgd_args(dout, x, w, b, lr, wd, native: bool):
    """dense_backward_sgd: returns (dout, x, lr, weight_decay); w and b are
    updated in place, so they are checked, never converted."""
    writable(w, "w", None, native)
    x, w, _ = dense_args(x, w, None)
    if b is not None:
        writable(b, "b", (w.shape[1],), native)
    dout = dense_dout(dout, x.shape[0], w.shape[1])
    for name, a in (("w", w), ("b", b)):
        for other_name, other in (("x", x), ("dout", dout)):
            if a is not None and np.may_share_memory(a, other):
                raise ValueError(f"{name} must not share memory with {other_name}")
    if b is not None and np.may_share_memory(w, b):
        raise ValueError("w and b must not share memory")
    return dout, x, learning_rate(lr), weight_decay(wd)


def elementwise(x, name: str = "x") -> np.ndarray:
    x = floating(x, name)
    nonempty(x, name)
    return x


def leaky_slope(alpha) -> float:
    """leaky_relu's slope for x <= 0: a number in [0, 1]."""
    return real(alpha, "alpha", 0.0, 1.0)


def rows(x, name: str = "x") -> np.ndarray:
    """A 2-D (N, K) batch of score rows."""
    x = floating(x, name)
    ndim(x, name, 2, "(N, classes)")
    nonempty(x, name)
    return x


def labels(y, n: int, k: int) -> np.ndarray:
    """Integer class labels (n,), each in [0, k), as int64."""
    if not isinstance(y, np.ndarray):
        y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise TypeError(f"labels must be an integer array, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"labels has shape {shape_str(y.shape)}, expected {shape_str((n,))} "
                         f"(one label per row of logits)")
    labels_in_range(y, k, "labels", "classes of logits")
    return y.astype(np.int64, copy=False)


def mask(m, like: np.ndarray, like_name: str = "x") -> np.ndarray:
    """A keep-mask of 0/1 values shaped like `like` (named like_name), as bool."""
    if not isinstance(m, np.ndarray):
        m = np.asarray(m)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"mask must be a boolean or numeric 0/1 array, got dtype {m.dtype}")
    same_shape(m, "mask", like, like_name)
    if m.dtype.kind == "b":
        return m
    if not np.all((m == 0) | (m == 1)):
        raise ValueError("mask must hold only 0 and 1")
    return m.astype(bool)


def keep_prob(p) -> float:
    return real(p, "keep_prob", 0.0, 1.0, lo_open=True)


# ------------------------------------------------ costs and optimizer steps --


def cost_args(a, y, a_name: str):
    """Predictions or logits a (N, D) and targets y of the same shape."""
    a = floating(a, a_name)
    ndim(a, a_name, 2, "(N, features)")
    if a.shape[0] == 0:
        raise ValueError(f"{a_name} has an empty batch: shape {shape_str(a.shape)}")
    nonempty(a, a_name)
    y = floating(y, "y")
    same_shape(a, a_name, y, "y")
    return a, y


def bce_args(logits, y):
    """Logits z (N, D) and targets y of the same shape, each target in [0, 1]."""
    z, y = cost_args(logits, y, "logits")
    if not np.all((y >= 0) & (y <= 1)):
        raise ValueError("y must hold targets in [0, 1] for binary_cross_entropy, got values "
                         f"in [{np.min(y)}, {np.max(y)}]")
    return z, y


def update_arrays(param, grad, states: dict, native: bool) -> np.ndarray:
    """Arrays of an in-place optimizer step: param and each state (name -> array,
    None for an absent one) are written, never converted; grad is read. All have
    param's shape and none shares memory with another (a shared buffer would be
    updated twice, e.g. `m = v = np.zeros_like(p)`). Returns grad as an array."""
    writable(param, "param", None, native)
    grad = floating(grad, "grad")
    same_shape(grad, "grad", param, "param")
    named = [("param", param), ("grad", grad)]
    for name, s in states.items():
        if s is not None:
            writable(s, name, param.shape, native)
            named.append((name, s))
    for i, (a_name, a) in enumerate(named):
        for b_name, b in named[i + 1:]:
            if np.may_share_memory(a, b):
                raise ValueError(f"{a_name} and {b_name} must not share memory")
    return grad


def sgd_args(param, grad, velocity, lr, momentum, wd, nesterov, native: bool):
    """Returns (grad, lr, momentum, weight_decay, nesterov)."""
    nesterov = flag(nesterov, "nesterov")
    lr, momentum, wd = learning_rate(lr), decay_rate(momentum, "momentum"), weight_decay(wd)
    if velocity is None and momentum != 0.0:
        raise ValueError(f"velocity is required when momentum != 0 (momentum={momentum})")
    grad = update_arrays(param, grad, {"velocity": velocity}, native)
    return grad, lr, momentum, wd, nesterov


def adagrad_args(param, grad, sum_sq, lr, eps, wd, native: bool):
    """Returns (grad, lr, eps, weight_decay)."""
    lr, eps, wd = learning_rate(lr), epsilon(eps), weight_decay(wd)
    writable(sum_sq, "sum_sq", None, native)
    grad = update_arrays(param, grad, {"sum_sq": sum_sq}, native)
    return grad, lr, eps, wd


def rmsprop_args(param, grad, sq_avg, lr, alpha, eps, wd, native: bool):
    """Returns (grad, lr, alpha, eps, weight_decay)."""
    lr, alpha = learning_rate(lr), decay_rate(alpha, "alpha")
    eps, wd = epsilon(eps), weight_decay(wd)
    writable(sq_avg, "sq_avg", None, native)
    grad = update_arrays(param, grad, {"sq_avg": sq_avg}, native)
    return grad, lr, alpha, eps, wd


def adam_args(param, grad, m, v, step, lr, beta1, beta2, eps, wd, native: bool):
    """Returns (grad, step, lr, beta1, beta2, eps, weight_decay)."""
    step = integer(step, "step", 1)
    lr, beta1, beta2 = learning_rate(lr), decay_rate(beta1, "beta1"), decay_rate(beta2, "beta2")
    eps, wd = epsilon(eps), weight_decay(wd)
    writable(m, "m", None, native)
    writable(v, "v", None, native)
    grad = update_arrays(param, grad, {"m": m, "v": v}, native)
    return grad, step, lr, beta1, beta2, eps, wd
