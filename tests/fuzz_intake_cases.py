"""The case table of the intake fuzz (test_fuzz_intake.py): for every public op,
a function drawing a valid call (random small sizes) through a
fuzz_intake_runner.Case, which spoils some of its arguments."""
from __future__ import annotations

import numpy as np
from fuzz_intake_runner import BAD_INTS, Case, noncontig
from hypothesis import strategies as st


# ------------------------------------------------------------- the ops --


def gemm_case(c: Case):
    m, n, k = c.dim(0, 5), c.dim(0, 5), c.dim(0, 5)
    ta, tb = c.draw(st.booleans()), c.draw(st.booleans())
    a = c.array((k, m) if ta else (m, k))
    b = c.array((n, k) if tb else (k, n))
    out = c.array((m, n), inplace=True) if c.draw(st.booleans()) else None
    kw = dict(alpha=hyper(c, -2.0, 2.0), beta=hyper(c, -2.0, 2.0),
              trans_a=ta, trans_b=tb)
    return (a, b, out), kw, (2,)


def window(c: Case, h, w, padded=True):
    """(kernel, stride, padding) valid for an h x w image, each maybe spoiled."""
    p = c.dim(0, 2) if padded else 0
    kh = c.dim(1, h + 2 * p)
    s = c.dim(1, 3)
    return kh, s, p


def out_size(h, k, s, p):
    return (h + 2 * p - k) // s + 1


def im2col_case(c: Case):
    n, ch, h, w = c.dim(), c.dim(1, 3), c.dim(1, 6), c.dim(1, 6)
    k, s, p = window(c, min(h, w), min(h, w))
    return (c.array((n, ch, h, w)), c.size(k), c.size(s), c.size(p, 0)), {}, ()


def col2im_case(c: Case):
    n, ch, h, w = c.dim(), c.dim(1, 3), c.dim(1, 6), c.dim(1, 6)
    k, s, p = window(c, min(h, w), min(h, w))
    cols = c.array((ch * k * k, n * out_size(h, k, s, p) * out_size(w, k, s, p)))
    x_shape = (n, ch, h, w)
    if c.spoil():
        x_shape = c.draw(st.sampled_from([None, (n, ch, h), (n, ch, h, 0), (n, ch, h, -w),
                                          [n, ch, h, w], (n, ch, h, 2 ** 40), (n, ch, h, 1.0),
                                          np.array(x_shape)]))
    return (cols, x_shape, c.size(k), c.size(s), c.size(p, 0)), {}, ()


def conv_geometry(c: Case):
    n, ch, h, w, kf = c.dim(), c.dim(1, 3), c.dim(1, 6), c.dim(1, 6), c.dim(1, 3)
    p = c.dim(0, 2)
    kh, kw = c.dim(1, h + 2 * p), c.dim(1, w + 2 * p)
    s = c.dim(1, 3)
    return n, ch, h, w, kf, kh, kw, s, p


def conv2d_case(c: Case):
    n, ch, h, w, kf, kh, kw, s, p = conv_geometry(c)
    b = c.array((kf,)) if c.draw(st.booleans()) else None
    kw_ = {"relu": c.draw(st.sampled_from([False, True, np.bool_(True), 1, None]))} \
        if c.draw(st.booleans()) else {}
    return (c.array((n, ch, h, w)), c.array((kf, ch, kh, kw)), b, c.size(s), c.size(p, 0)), kw_, ()


def conv2d_backward_case(c: Case):
    n, ch, h, w, kf, kh, kw, s, p = conv_geometry(c)
    dout = c.array((n, kf, out_size(h, kh, s, p), out_size(w, kw, s, p)))
    return (dout, c.array((n, ch, h, w)), c.array((kf, ch, kh, kw)), c.size(s), c.size(p, 0),
            c.draw(st.booleans())), {}, ()


def conv_pool_geometry(c: Case):
    """conv_geometry plus a max-pool window that fits the conv output."""
    n, ch, h, w, kf, kh, kw, s, p = conv_geometry(c)
    oh, ow = out_size(h, kh, s, p), out_size(w, kw, s, p)
    pk = (c.dim(1, oh), c.dim(1, ow))
    ps = (c.dim(1, 3), c.dim(1, 3)) if c.draw(st.booleans()) else None
    return n, ch, h, w, kf, kh, kw, s, p, pk, ps


def conv2d_maxpool_case(c: Case):
    n, ch, h, w, kf, kh, kw, s, p, pk, ps = conv_pool_geometry(c)
    b = c.array((kf,)) if c.draw(st.booleans()) else None
    kw_ = {"relu": c.draw(st.sampled_from([False, True, np.bool_(True), 1, None]))} \
        if c.draw(st.booleans()) else {}
    return (c.array((n, ch, h, w)), c.array((kf, ch, kh, kw)), b, c.size(s), c.size(p, 0),
            c.size(pk[0]) if c.draw(st.booleans()) else pk,
            None if ps is None else c.size(ps[0])), kw_, ()


def conv2d_maxpool_backward_case(c: Case):
    n, ch, h, w, kf, kh, kw, s, p, pk, ps = conv_pool_geometry(c)
    ps2 = pk if ps is None else ps
    oh, ow = out_size(h, kh, s, p), out_size(w, kw, s, p)
    pooled = (n, kf, out_size(oh, pk[0], ps2[0], 0), out_size(ow, pk[1], ps2[1], 0))
    window = pk[0] * pk[1]
    choice = c.rng.integers(0, window, pooled).astype(np.uint8)
    choice[c.rng.random(pooled) < 0.3] = 255
    if c.spoil():
        how = c.draw(st.sampled_from(["int32", "list", "shape", "value", "none", "noncontig"]))
        if how == "int32":
            choice = choice.astype(np.int32)
        elif how == "list":
            choice = choice.tolist()
        elif how == "shape":
            choice = choice[..., :-1]
        elif how == "value" and choice.size:
            choice.flat[c.draw(st.integers(0, choice.size - 1))] = c.draw(
                st.integers(window, 254))
        elif how == "none":
            choice = None
        else:
            choice = noncontig(choice)
    return (c.array(pooled), choice, c.array((n, ch, h, w)), c.array((kf, ch, kh, kw)),
            c.size(s), c.size(p, 0), pk, ps, c.draw(st.booleans())), {}, ()


def pool_geometry(c: Case):
    n, ch, h, w = c.dim(), c.dim(1, 3), c.dim(1, 7), c.dim(1, 7)
    k = c.dim(1, min(h, w))
    s = c.dim(1, 3) if c.draw(st.booleans()) else None
    return n, ch, h, w, k, s


def pool_case(c: Case):
    n, ch, h, w, k, s = pool_geometry(c)
    return (c.array((n, ch, h, w)), c.size(k), None if s is None else c.size(s)), {}, ()


def pool_backward_case(c: Case):
    n, ch, h, w, k, s = pool_geometry(c)
    ss = k if s is None else s
    dout = c.array((n, ch, out_size(h, k, ss, 0), out_size(w, k, ss, 0)))
    return (dout, c.array((n, ch, h, w)), c.size(k), None if s is None else c.size(s)), {}, ()


def global_pool_case(c: Case):
    return (c.array((c.dim(), c.dim(1, 3), c.dim(1, 5), c.dim(1, 5))),), {}, ()


def global_pool_backward_case(c: Case):
    n, ch = c.dim(), c.dim(1, 3)
    return (c.array((n, ch)), c.array((n, ch, c.dim(1, 5), c.dim(1, 5)))), {}, ()


def dense_case(c: Case):
    n, i, o = c.dim(1, 5), c.dim(1, 6), c.dim(1, 6)
    b = c.array((o,)) if c.draw(st.booleans()) else None
    return (c.array((n, i)), c.array((i, o)), b), {}, ()


def dense_backward_case(c: Case):
    n, i, o = c.dim(1, 5), c.dim(1, 6), c.dim(1, 6)
    return (c.array((n, o)), c.array((n, i)), c.array((i, o)), c.draw(st.booleans())), {}, ()


def dense_backward_sgd_case(c: Case):
    n, i, o = c.dim(1, 5), c.dim(1, 6), c.dim(1, 6)
    b = c.array((o,), inplace=True) if c.draw(st.booleans()) else None
    kw = dict(lr=hyper(c, 0.0, 1.0), weight_decay=hyper(c, 0.0, 0.1),
              need_dx=c.draw(st.booleans()))
    return (c.array((n, o)), c.array((n, i)), c.array((i, o), inplace=True), b), kw, (2, 3)


def any_shape(c: Case, min_ndim=0):
    return tuple(c.dim(1, 4) for _ in range(c.dim(min_ndim, 3)))


def unary_case(c: Case):
    return (c.array(any_shape(c)),), {}, ()


def binary_case(c: Case):
    shape = any_shape(c)
    return (c.array(shape), c.array(shape)), {}, ()


def leaky_case(c: Case, backward=False):
    """leaky_relu(x, alpha) / leaky_relu_backward(dout, x, alpha): alpha in [0, 1]."""
    args, _, _ = binary_case(c) if backward else unary_case(c)
    return args, {"alpha": c.real(c.draw(st.sampled_from([0.0, 0.01, 0.3, 1.0])))}, ()


def rows_case(c: Case):
    return (c.array((c.dim(1, 5), c.dim(1, 6))),), {}, ()


def softmax_loglik_case(c: Case):
    n, k = c.dim(1, 5), c.dim(1, 6)
    labels = c.rng.integers(0, k, n)
    if c.spoil():
        labels = c.draw(st.sampled_from(["float", "neg", "big", "shape", "none", "list",
                                         "bool", "u8"]))
        labels = {"float": np.zeros(n), "neg": np.full(n, -1), "big": np.full(n, k),
                  "shape": np.zeros((n, 1), int), "none": None, "list": [0] * n,
                  "bool": np.zeros(n, bool), "u8": np.zeros(n, np.uint8)}[labels]
    return (c.array((n, k)), labels), {}, ()


def cost_case(c: Case, targets_01=False):
    n, d = c.dim(1, 5), c.dim(1, 6)
    values = (lambda s: c.rng.uniform(size=s)) if targets_01 else None
    return (c.array((n, d)), c.array((n, d), values=values)), {}, ()


def mask_for(c: Case, shape):
    m = c.rng.uniform(size=shape) < 0.6
    if c.spoil():
        how = c.draw(st.sampled_from(["float", "int", "two", "shape", "none", "list"]))
        m = {"float": m.astype(np.float64), "int": m.astype(np.int32),
             "two": m.astype(np.int32) * 2, "shape": np.ones(shape + (2,), bool),
             "none": None, "list": m.tolist()}[how]
    return m


def dropout_case(c: Case):
    shape = any_shape(c)
    return (c.array(shape), mask_for(c, shape), hyper(c, 0.05, 1.0)), {}, ()


def optimizer_arrays(c: Case, n_states):
    shape = any_shape(c, min_ndim=1)  # 0-d: see test_optimizer_0d_param in test_fuzz_intake.py
    param = c.array(shape, inplace=True)
    grad = c.array(shape)
    states = [c.array(shape, inplace=True, values=lambda s: c.rng.uniform(size=s))
              for _ in range(n_states)]
    if c.spoil():  # one buffer passed twice
        everything = [param, grad] + states
        pick = st.integers(0, len(everything) - 1)
        i, j = c.draw(pick), c.draw(pick)
        everything[j] = everything[i]
        param, grad, states = everything[0], everything[1], everything[2:]
    return param, grad, states


def hyper(c: Case, lo, hi):
    # float32-representable: see test_hyperparameter_beyond_float32 for others
    return c.real(float(np.float32(c.draw(st.floats(lo, hi)))))  # as native sees it


def sgd_case(c: Case):
    param, grad, (vel,) = optimizer_arrays(c, 1)
    momentum = hyper(c, 0.0, 0.95)
    if c.draw(st.booleans()):
        vel, momentum = None, (0.0 if c.draw(st.booleans()) else momentum)
    nesterov = c.draw(st.sampled_from([False, True, np.bool_(True), 1, None]))
    kw = dict(lr=hyper(c, 0.0, 1.0), momentum=momentum, weight_decay=hyper(c, 0.0, 0.1),
              nesterov=nesterov)
    return (param, grad, vel), kw, (0, 2)


def adagrad_case(c: Case):
    param, grad, (s,) = optimizer_arrays(c, 1)
    kw = dict(lr=hyper(c, 0.0, 1.0), eps=hyper(c, 1e-8, 1e-2), weight_decay=hyper(c, 0.0, 0.1))
    return (param, grad, s), kw, (0, 2)


def rmsprop_case(c: Case):
    param, grad, (s,) = optimizer_arrays(c, 1)
    kw = dict(lr=hyper(c, 0.0, 1.0), alpha=hyper(c, 0.0, 0.999), eps=hyper(c, 1e-8, 1e-2),
              weight_decay=hyper(c, 0.0, 0.1))
    return (param, grad, s), kw, (0, 2)


def adam_case(c: Case):
    param, grad, (m, v) = optimizer_arrays(c, 2)
    step = c.size(c.dim(1, 1000)) if not c.spoil() else c.draw(st.sampled_from(BAD_INTS))
    if isinstance(step, tuple):
        step = step[0]
    kw = dict(step=step, lr=hyper(c, 0.0, 1.0), beta1=hyper(c, 0.0, 0.99),
              beta2=hyper(c, 0.0, 0.999), eps=hyper(c, 1e-8, 1e-2),
              weight_decay=hyper(c, 0.0, 0.1))
    return (param, grad, m, v), kw, (0, 2, 3)


CASES = {
    "gemm": gemm_case,
    "im2col": im2col_case,
    "col2im": col2im_case,
    "conv2d": conv2d_case,
    "conv2d_backward": conv2d_backward_case,
    "maxpool2d": pool_case,
    "avgpool2d": pool_case,
    "l2pool2d": pool_case,
    "maxpool2d_backward": pool_backward_case,
    "avgpool2d_backward": pool_backward_case,
    "l2pool2d_backward": pool_backward_case,
    "global_avgpool2d": global_pool_case,
    "global_avgpool2d_backward": global_pool_backward_case,
    "dense": dense_case,
    "dense_backward": dense_backward_case,
    "dense_backward_sgd": dense_backward_sgd_case,
    "conv2d_maxpool": conv2d_maxpool_case,
    "conv2d_maxpool_backward": conv2d_maxpool_backward_case,
    "relu": unary_case,
    "sigmoid": unary_case,
    "tanh": unary_case,
    "relu_backward": binary_case,
    "leaky_relu": leaky_case,
    "leaky_relu_backward": lambda c: leaky_case(c, backward=True),
    "sigmoid_backward": binary_case,
    "tanh_backward": binary_case,
    "softmax": rows_case,
    "log_softmax": rows_case,
    "softmax_loglik": softmax_loglik_case,
    "quadratic_cost": cost_case,
    "binary_cross_entropy": lambda c: cost_case(c, targets_01=True),
    "dropout": dropout_case,
    "dropout_backward": dropout_case,
    "sgd_update": sgd_case,
    "adagrad_update": adagrad_case,
    "rmsprop_update": rmsprop_case,
    "adam_update": adam_case,
}
