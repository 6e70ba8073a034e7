"""conv2d_maxpool (conv, relu or not, then max-pool, in one op) and its backward:
native against the float64 reference and against the separate native ops it
replaces, the reference against finite differences, bad input, and Sequential
with the fusion on and off."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import as64, assert_close, numeric_grad

import fastcnn
from fastcnn import layers as L
from fastcnn import ops, optim, reference
from fastcnn.network import Sequential

NO_GRADIENT = 255

# (N, C, H, W, K, kernel, stride, padding, pool, pool_stride)
CASES = [
    (10, 1, 28, 28, 20, 5, 1, 0, 2, None),       # book conv1: per-image GEMMs, 2x2
    (9, 20, 12, 12, 40, 5, 1, 0, 2, None),       # book conv2: batched GEMM, 2x2
    (3, 32, 13, 13, 8, 3, 1, 0, 2, None),        # 11x11 output: last row/column left out
    (2, 3, 17, 23, 5, 3, 1, 1, 2, None),         # per image, 17x23 -> 8x11: SIMD + tail
    (3, 2, 9, 11, 5, 3, 1, 1, 3, 2),             # overlapping 3x3 windows, stride 2
    (4, 3, 13, 13, 6, 3, 2, 0, 2, 1),            # overlapping 2x2, stride 1
    (5, 4, 7, 7, 3, 2, 1, 0, (2, 3), None),      # non-square window
    (2, 2, 10, 14, 3, (3, 2), (1, 2), (0, 1), 2, 3),  # stride larger than the window
    (1, 1, 4, 4, 2, 3, 1, 0, 2, None),           # 2x2 conv output: one window
    (3, 2, 21, 21, 4, 1, 1, 0, (5, 4), (2, 3)),  # 1x1 conv, larger windows
]


def _case_id(case):
    n, c, h, w, k, ks, s, p, ps, pst = case
    return f"x{n}x{c}x{h}x{w}-k{k}-ks{ks}-s{s}-p{p}-pool{ps}-{pst}".replace(" ", "")


def _data(case, seed=0, nan=False):
    n, c, h, w, k, ks, s, p, ps, pst = case
    kh, kw = (ks, ks) if isinstance(ks, int) else ks
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    if nan:
        x.flat[::29] = np.nan
    wt = rng.standard_normal((k, c, kh, kw)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    return x, wt, b


def _args(case):
    _, _, _, _, _, _, s, p, ps, pst = case
    return dict(stride=s, padding=p), dict(size=ps, pool_stride=pst)


def _expected_choice(z, size, stride, relu):
    """What choice must hold, from the conv output z alone: np.argmax over each
    window (first NaN, else first maximum), 255 where relu is on and the pooled
    value is not > 0."""
    size = (size, size) if isinstance(size, int) else size
    stride = size if stride is None else ((stride, stride) if isinstance(stride, int) else stride)
    win = np.lib.stride_tricks.sliding_window_view(z, size, axis=(2, 3))
    win = win[:, :, ::stride[0], ::stride[1]]
    flat = win.reshape(win.shape[:4] + (-1,))
    idx = np.argmax(flat, axis=-1)
    pooled = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    choice = idx.astype(np.uint8)
    if relu:
        choice[~(pooled > 0)] = NO_GRADIENT
    return pooled, choice


def _tol(case):
    n, c, h, w, k, ks, *_ = case
    kh, kw = (ks, ks) if isinstance(ks, int) else ks
    return dict(rtol=1e-4, atol=max(1e-5, 1e-6 * c * kh * kw * n))


# ---------------------------------------------------------------- forward --

@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_forward(case, relu, threads, isa):
    x, w, b = _data(case)
    conv, pool = _args(case)
    out, choice = ops.conv2d_maxpool(x, w, b, **conv, **pool, relu=relu)
    # against the float64 reference
    want, _ = reference.conv2d_maxpool(*as64(x, w, b), **conv, **pool, relu=relu)
    assert_close(out, want, **_tol(case), name="out")
    # against the native ops it replaces: bit for bit, and the choices
    z = ops.conv2d(x, w, b, **conv, relu=relu)
    np.testing.assert_array_equal(out, ops.maxpool2d(z, pool["size"], pool["pool_stride"]))
    pooled, want_choice = _expected_choice(z, pool["size"], pool["pool_stride"], relu)
    np.testing.assert_array_equal(out, pooled)
    np.testing.assert_array_equal(choice, want_choice)
    assert out.dtype == np.float32 and choice.dtype == np.uint8


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("case", CASES[:4], ids=_case_id)
def test_forward_no_bias(case, relu):
    """Without b: bit for bit the separate ops (-0 and +0 included)."""
    x, w, _ = _data(case)
    x[..., ::3] = 0.0
    x[..., 1::5] *= -0.0
    conv, pool = _args(case)
    out, choice = ops.conv2d_maxpool(x, w, None, **conv, **pool, relu=relu)
    z = ops.conv2d(x, w, None, **conv, relu=relu)
    want = ops.maxpool2d(z, pool["size"], pool["pool_stride"])
    np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))
    np.testing.assert_array_equal(choice, _expected_choice(z, pool["size"],
                                                           pool["pool_stride"], relu)[1])


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("case", CASES[:6], ids=_case_id)
def test_forward_nan(case, relu, isa):
    """NaN inputs: the pooled NaN comes from the first NaN of its window, and the
    reference agrees on where."""
    x, w, b = _data(case, nan=True)
    conv, pool = _args(case)
    out, choice = ops.conv2d_maxpool(x, w, b, **conv, **pool, relu=relu)
    z = ops.conv2d(x, w, b, **conv, relu=relu)
    pooled, want_choice = _expected_choice(z, pool["size"], pool["pool_stride"], relu)
    assert np.isnan(out).any()
    np.testing.assert_array_equal(out, pooled)
    np.testing.assert_array_equal(choice, want_choice)
    want, ref_choice = reference.conv2d_maxpool(x, w, b, **conv, **pool, relu=relu)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))


# --------------------------------------------------------------- backward --

@pytest.mark.parametrize("need_dx", [True, False], ids=["dx", "no-dx"])
@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_backward(case, relu, need_dx, threads, isa):
    x, w, b = _data(case)
    conv, pool = _args(case)
    out, choice = ops.conv2d_maxpool(x, w, b, **conv, **pool, relu=relu)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    dx, dw, db = ops.conv2d_maxpool_backward(dout, choice, x, w, **conv, **pool, need_dx=need_dx)
    # the float64 reference, routed by the same choices
    rdx, rdw, rdb = reference.conv2d_maxpool_backward(*as64(dout), choice, *as64(x, w), **conv,
                                                      **pool, need_dx=need_dx)
    tol = _tol(case)
    assert_close(dw, rdw, **tol, name="dw")
    assert_close(db, rdb, **tol, name="db")
    if need_dx:
        assert_close(dx, rdx, **tol, name="dx")
    else:
        assert dx is None and rdx is None
    # the separate native ops: relu_backward, maxpool2d_backward, conv2d_backward
    z = ops.conv2d(x, w, b, **conv, relu=relu)
    g = ops.relu_backward(dout, out) if relu else dout
    dz = ops.maxpool2d_backward(g, z, pool["size"], pool["pool_stride"])
    sdx, sdw, sdb = ops.conv2d_backward(dz, x, w, **conv, need_dx=need_dx)
    n, c, h, wd, k, ks, s, p, ps, pst = case
    ps2 = (ps, ps) if isinstance(ps, int) else ps
    pst2 = ps2 if pst is None else ((pst, pst) if isinstance(pst, int) else pst)
    overlapping = pst2[0] < ps2[0] or pst2[1] < ps2[1]
    if overlapping:  # the same values, summed in another order
        assert_close(dw, sdw, **tol, name="dw (separate ops)")
        if need_dx:
            assert_close(dx, sdx, **tol, name="dx (separate ops)")
    else:
        np.testing.assert_array_equal(dw, sdw)
        np.testing.assert_array_equal(db, sdb)
        if need_dx:
            np.testing.assert_array_equal(dx, sdx)


def test_backward_threads_agree():
    """dw/db/dx do not depend on the thread count, bit for bit."""
    case = (13, 6, 14, 14, 7, 3, 1, 1, 2, None)
    x, w, b = _data(case)
    conv, pool = _args(case)
    results = []
    before = fastcnn.get_num_threads()
    try:
        for t in (1, 2):
            fastcnn.set_num_threads(t)
            out, choice = ops.conv2d_maxpool(x, w, b, **conv, **pool, relu=True)
            dout = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
            results.append((out, choice) + ops.conv2d_maxpool_backward(dout, choice, x, w,
                                                                        **conv, **pool))
    finally:
        fastcnn.set_num_threads(before)
    for a, b2 in zip(*results):
        np.testing.assert_array_equal(a, b2)


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("pool, pool_stride", [(2, None), (3, 2), ((2, 3), (1, 2))])
def test_reference_backward_finite_differences(relu, pool, pool_stride):
    """Away from ties and kinks the pooled output is smooth in x, w, b: central
    differences of sum(out * dout) give the gradients."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 7, 8))
    w = rng.standard_normal((3, 2, 3, 2))
    b = rng.standard_normal(3) - 1.5  # some windows all <= 0: relu passes nothing
    s, p = (1, 2), (1, 1)
    out, choice = reference.conv2d_maxpool(x, w, b, s, p, pool, pool_stride, relu=relu)
    dout = rng.standard_normal(out.shape)

    def loss():
        return float(np.sum(reference.conv2d_maxpool(x, w, b, s, p, pool, pool_stride,
                                                     relu=relu)[0] * dout))

    dx, dw, db = reference.conv2d_maxpool_backward(dout, choice, x, w, s, p, pool, pool_stride)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dw, numeric_grad(loss, w), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(db, numeric_grad(loss, b), rtol=1e-5, atol=1e-6)
    if relu:
        assert (choice == NO_GRADIENT).any() and (choice != NO_GRADIENT).any()


# -------------------------------------------------------------- bad input --

_X = np.zeros((2, 3, 8, 8), np.float32)
_W = np.zeros((4, 3, 3, 3), np.float32)
_OUT = np.zeros((2, 4, 3, 3), np.float32)     # 6x6 conv output, 2x2 pool
_CH = np.zeros((2, 4, 3, 3), np.uint8)

BAD = {
    "x 3-D": (ValueError, lambda m: m.conv2d_maxpool(_X[0], _W)),
    "channels": (ValueError, lambda m: m.conv2d_maxpool(_X, _W[:, :2])),
    "pool 0": (ValueError, lambda m: m.conv2d_maxpool(_X, _W, size=0)),
    "pool stride 0": (ValueError, lambda m: m.conv2d_maxpool(_X, _W, pool_stride=(1, 0))),
    "pool float": (TypeError, lambda m: m.conv2d_maxpool(_X, _W, size=2.0)),
    "pool larger than conv output": (ValueError, lambda m: m.conv2d_maxpool(_X, _W, size=7)),
    "window of 256": (ValueError, lambda m: m.conv2d_maxpool(np.zeros((1, 1, 18, 18),
                                                                      np.float32),
                                                             np.zeros((1, 1, 3, 3), np.float32),
                                                             size=16)),
    "relu not bool": (TypeError, lambda m: m.conv2d_maxpool(_X, _W, relu=1)),
    "bw dout shape": (ValueError, lambda m: m.conv2d_maxpool_backward(_OUT[:, :, :2], _CH, _X,
                                                                      _W)),
    "bw dout int": (TypeError, lambda m: m.conv2d_maxpool_backward(_OUT.astype(int), _CH, _X,
                                                                   _W)),
    "bw choice dtype": (TypeError, lambda m: m.conv2d_maxpool_backward(_OUT, _CH.astype(np.int32),
                                                                       _X, _W)),
    "bw choice list": (TypeError, lambda m: m.conv2d_maxpool_backward(_OUT, _CH.tolist(), _X,
                                                                      _W)),
    "bw choice shape": (ValueError, lambda m: m.conv2d_maxpool_backward(_OUT, _CH[:1], _X, _W)),
    "bw choice out of window": (ValueError,
                                lambda m: m.conv2d_maxpool_backward(_OUT, _CH + 4, _X, _W)),
    "bw choice 254": (ValueError, lambda m: m.conv2d_maxpool_backward(_OUT, _CH + 254, _X, _W)),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_same_error(name):
    """Both backends raise the same exception type and message, naming the argument."""
    exc, call = BAD[name]
    messages = []
    for backend in (reference, ops):
        with pytest.raises(exc) as info:
            call(backend)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_core_checks_choice_values():
    """_core itself refuses a choice that would route a gradient outside its window
    (no out-of-bounds write), and a too-large window."""
    from fastcnn import _core
    dx, dw, db = np.empty_like(_X), np.empty_like(_W), np.empty(4, np.float32)
    bad = _CH.copy()
    bad[1, 2, 0, 1] = 4
    with pytest.raises(ValueError, match="choice holds 4"):
        _core.conv2d_maxpool_backward(dx, dw, db, _OUT, bad, _X, _W, 1, 1, 0, 0, 2, 2, 2, 2)
    with pytest.raises(TypeError, match="choice must have dtype uint8"):
        _core.conv2d_maxpool_backward(dx, dw, db, _OUT, bad.astype(np.int8), _X, _W,
                                      1, 1, 0, 0, 2, 2, 2, 2)
    out = np.empty((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match="at most 254"):
        _core.conv2d_maxpool_forward(out, np.empty((1, 1, 1, 1), np.uint8),
                                     np.zeros((1, 1, 18, 18), np.float32),
                                     np.zeros((1, 1, 3, 3), np.float32), None,
                                     1, 1, 0, 0, 16, 16, 16, 16, False)
    # the good call, for contrast
    _core.conv2d_maxpool_backward(dx, dw, db, _OUT, _CH, _X, _W, 1, 1, 0, 0, 2, 2, 2, 2)


# ------------------------------------------------------------- Sequential --

def _net(kind):
    if kind == "book-relu":
        return [L.Conv2D(6, 5, activation="relu"), L.MaxPool2D(2),
                L.Conv2D(8, 3, activation="relu"), L.MaxPool2D(2),
                L.Dense(10, activation="softmax")]
    if kind == "network3":  # linear conv, pool, then the activation as a layer
        return [L.Conv2D(5, 3, activation="linear"), L.MaxPool2D(2), L.Activation("tanh"),
                L.Dense(10, activation="softmax")]
    if kind == "overlap":
        return [L.Conv2D(4, 3, padding="same", activation="relu"), L.MaxPool2D(3, stride=2),
                L.Dropout(0.3), L.Dense(10, activation="softmax")]
    raise ValueError(kind)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("kind", ["book-relu", "network3", "overlap"])
def test_sequential_fused_equals_separate(kind, backend):
    """The fused pairs change no number: loss, gradients and a few SGD steps are
    the same with fuse on and off (bit for bit on the native backend for
    non-overlapping windows)."""
    dtype = "float32" if backend == "native" else "float64"
    rng = np.random.default_rng(3)
    x = rng.random((12, 1, 16, 16)).astype(dtype)
    y = rng.integers(0, 10, 12)
    models = []
    for fuse in (True, False):
        m = Sequential(_net(kind), input_shape=(1, 16, 16), backend=backend, dtype=dtype, seed=7)
        m.fuse = fuse
        models.append(m)
    assert _fused(models[0]) and not _fused(models[1])
    exact = backend == "native" and kind != "overlap"
    results = []
    for m in models:
        loss, _, grads = m.loss_and_grads(x, y, training=True, rng=np.random.default_rng(0))
        results.append((loss, grads))
    (l1, g1), (l2, g2) = results
    assert l1 == l2 if exact else np.isclose(l1, l2, rtol=1e-12)
    for a, b in zip(g1, g2):
        assert a.keys() == b.keys()
        for name in a:
            if exact:
                np.testing.assert_array_equal(a[name], b[name])
            else:
                np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6)
    for m in models:  # plain SGD: the fused backward + update path of fit
        m.fit(x, y, epochs=2, batch_size=4, optimizer=optim.SGD(0.1), verbose=0, seed=1)
    for p1, p2 in zip(models[0].parameters(), models[1].parameters()):
        if exact:
            np.testing.assert_array_equal(p1[0], p2[0])
        else:
            np.testing.assert_allclose(p1[0], p2[0], rtol=1e-5, atol=1e-6)


def _fused(model):
    """Indices of the conv layers that run fused with the max-pool after them."""
    return [model.layers.index(s.layers[0]) for s in model.steps if getattr(s, "fused", False)]


def test_which_pairs_fuse():
    m = Sequential([L.Conv2D(4, 3, activation="relu"), L.MaxPool2D(2),      # fused
                    L.Conv2D(4, 3, activation="sigmoid"), L.MaxPool2D(2),   # sigmoid: no
                    L.Conv2D(4, 1), L.AvgPool2D(1),                        # not a max-pool
                    L.Dense(3)], input_shape=(1, 26, 26))
    assert _fused(m) == [0]
    m.fuse = False
    assert _fused(m) == []
    m.fuse = True
    assert _fused(m) == [0]
    with pytest.raises(TypeError, match="fuse must be a bool"):
        m.fuse = "yes"
    big = Sequential([L.Conv2D(2, 3), L.MaxPool2D(16)], input_shape=(1, 18, 18))
    assert _fused(big) == []  # 256-element window: the separate layers run
    assert big.forward(np.zeros((1, 1, 18, 18), np.float32))[0].shape == (1, 2, 1, 1)


def test_backward_reads_a_read_only_choice():
    # choice is only read: a read-only array (e.g. a loaded or shared one) is accepted.
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 2, 7, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 2, 3)).astype(np.float32)
    out, choice = ops.conv2d_maxpool(x, w, None, 1, 0, 2, 2)
    choice.setflags(write=False)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    got = ops.conv2d_maxpool_backward(dout, choice, x, w, 1, 0, 2, 2)
    want = reference.conv2d_maxpool_backward(*as64(dout), choice, *as64(x, w), 1, 0, 2, 2)
    for g, r, name in zip(got, want, ("dx", "dw", "db")):
        assert_close(g, r, name=name)
