"""Activations, softmax, costs, dropout: native (float32) against the float64
reference, extreme inputs, and the reference against finite differences. Bad
input on both backends and on _core: test_elementwise_bad_input.py."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import BACKENDS, as64, assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastcnn
from fastcnn import _core, ops, reference

BIG = 70001  # above every parallel-loop threshold of the elementwise kernels (2**15)


def _random_shapes(count: int, seed: int):
    """1-D to 4-D shapes with sizes that are not multiples of 8."""
    rng = np.random.default_rng(seed)
    sizes = [1, 2, 3, 5, 7, 9, 11, 13, 17, 23]
    return [tuple(int(rng.choice(sizes)) for _ in range(int(rng.integers(1, 5))))
            for _ in range(count)]


SHAPES = [(1,), (BIG,), (3, 1, 5, 7)] + _random_shapes(7, seed=7)


def _values(shape, seed, scale=3.0, extremes=()):
    """float32 normal values with the given extreme values sprinkled in."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    flat = x.reshape(-1)
    if extremes and flat.size >= 2:
        where = rng.choice(flat.size, size=min(flat.size // 2, 4 * len(extremes)), replace=False)
        flat[where] = np.resize(np.array(extremes, dtype=np.float32), where.size)
    return x


LARGE = (1e4, -1e4, 100.0, -100.0, 88.5, -88.5, 30.0, -30.0, 1e-30, -1e-30, 0.0, -0.0)
SPECIAL = (np.nan, np.inf, -np.inf)


def _ids(shapes):
    return ["x".join(map(str, s)) for s in shapes]


# ================================================================ activations ==

# sigmoid and tanh are accurate to a few ulp (vectorised exp, error <= 3 ulp);
# values below FLT_MIN may be flushed to 0.
TIGHT = dict(rtol=5e-7, atol=1e-30)


@pytest.mark.parametrize("shape", SHAPES, ids=_ids(SHAPES))
def test_relu_matches_reference(shape, threads):
    x = _values(shape, 1, extremes=LARGE + SPECIAL)
    dout = _values(shape, 2, extremes=SPECIAL)
    assert_close(ops.relu(x), reference.relu(*as64(x)), rtol=0, atol=0, name="relu")
    assert_close(ops.relu_backward(dout, x), reference.relu_backward(*as64(dout, x)),
                 rtol=0, atol=0, name="relu_backward")


def test_relu_nan_rule():
    x = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 2.0, -2.0], np.float32)
    dout = np.full_like(x, 5.0)
    for backend in BACKENDS:
        out = backend.relu(x)
        assert np.isnan(out[:2]).all(), backend.__name__
        assert out[2:].tolist() == [np.inf, 0.0, 0.0, 0.0, 2.0, 0.0]
        assert not np.signbit(out[3:6]).any()  # relu(-0.0) and relu(-inf) are +0
        # the gradient passes only where x > 0: not at NaN, not at 0
        assert backend.relu_backward(dout, x).tolist() == [0, 0, 5, 0, 0, 0, 5, 0]


@pytest.mark.parametrize("alpha", [0.01, 0.3, 0.0, 1.0])
@pytest.mark.parametrize("shape", SHAPES, ids=_ids(SHAPES))
def test_leaky_relu_matches_reference(shape, alpha, threads):
    """alpha * x is one float32 product in both: exact against the float64 oracle
    up to that rounding."""
    x = _values(shape, 21, extremes=LARGE + SPECIAL)
    dout = _values(shape, 22, extremes=SPECIAL)
    assert_close(ops.leaky_relu(x, alpha), reference.leaky_relu(*as64(x), alpha),
                 rtol=1e-7, atol=1e-38, name="leaky_relu")
    assert_close(ops.leaky_relu_backward(dout, x, alpha),
                 reference.leaky_relu_backward(*as64(dout, x), alpha), rtol=1e-7, atol=1e-38,
                 name="leaky_relu_backward")


def test_leaky_relu_nan_and_signs():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 2.0, -2.0], np.float32)
    dout = np.full_like(x, 5.0)
    for backend in BACKENDS:
        out = backend.leaky_relu(x, 0.25)
        assert np.isnan(out[0]), backend.__name__
        assert out[1:].tolist() == [np.inf, -np.inf, 0.0, -0.0, 2.0, -0.5]
        # the full gradient only where x > 0; alpha times it elsewhere, NaN included
        assert backend.leaky_relu_backward(dout, x, 0.25).tolist() == \
            [1.25, 5, 1.25, 1.25, 1.25, 5, 1.25]


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("shape", SHAPES, ids=_ids(SHAPES))
def test_sigmoid_tanh_match_reference(name, shape, threads):
    x = _values(shape, 3, extremes=LARGE + SPECIAL)
    want = getattr(reference, name)(*as64(x))
    assert_close(getattr(ops, name)(x), want, **TIGHT, name=name)
    # backward takes the forward output y
    y = getattr(ops, name)(x)
    dout = _values(shape, 4)
    assert_close(getattr(ops, name + "_backward")(dout, y),
                 getattr(reference, name + "_backward")(*as64(dout, y)),
                 rtol=1e-6, atol=1e-30, name=name + "_backward")


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_vectorised_exp_sweep(name):
    """Dense sweep of the inputs that matter, fast kernel and its plain twin
    against the float64 reference."""
    x = np.concatenate([np.arange(-100, 100, 1e-3), np.linspace(-1e-3, 1e-3, 20001),
                        np.linspace(-1, 1, 2001) * 1e-30, np.linspace(0.62, 0.63, 1001),
                        -np.linspace(0.62, 0.63, 1001),
                        [88.72, -88.72, 87.3, -87.3, 87.34, -87.34, 3e38, -3e38]]
                       ).astype(np.float32)
    want = getattr(reference, name)(*as64(x))
    fast = getattr(ops, name)(x)
    plain = np.empty_like(x)
    getattr(_core, f"_{name}_forward_plain")(plain, x)
    assert_close(fast, want, **TIGHT, name=name)
    assert_close(plain, want, **TIGHT, name=name + " (plain twin)")
    assert np.all(np.abs(fast) <= 1)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 40),
                  elements=st.floats(width=32, allow_nan=True, allow_infinity=True)))
def test_sigmoid_tanh_any_float32(x):
    """Any float32 at all (subnormals, huge, NaN, Inf) against the reference."""
    for name in ("sigmoid", "tanh"):
        assert_close(getattr(ops, name)(x), getattr(reference, name)(*as64(x)), **TIGHT,
                     name=name)


def test_sigmoid_tanh_limits():
    x = np.array([np.nan, np.inf, -np.inf, 1e4, -1e4, 0.0, -0.0], np.float32)
    for backend in BACKENDS:
        s = backend.sigmoid(x)
        assert np.isnan(s[0]) and s[1:].tolist() == [1, 0, 1, 0, 0.5, 0.5]
        t = backend.tanh(x)
        assert np.isnan(t[0]) and t[1:].tolist() == [1, -1, 1, -1, 0, 0]
        assert np.signbit(t[-1])  # tanh(-0.0) = -0.0


def test_zero_dim_input_keeps_shape():
    x = np.float32(-1.5)
    for backend in BACKENDS:
        for name in ("relu", "sigmoid", "tanh"):
            assert getattr(backend, name)(x).shape == (), (backend.__name__, name)
        assert backend.dropout(np.array(2.0, np.float32), np.array(True), 0.5).shape == ()


def test_float64_input_is_converted():
    x = np.linspace(-3, 3, 11)  # float64, read-only input: converted to float32
    assert ops.sigmoid(x).dtype == np.float32
    assert reference.sigmoid(x).dtype == np.float64
    assert_close(ops.tanh(x[::2]), reference.tanh(x[::2]), **TIGHT)  # strided too


# ==================================================================== softmax ==

ROW_SHAPES = [(1, 1), (1, 7), (5, 3), (3, 10), (33, 17), (700, 13)]  # last above 2**12


def _logits(shape, seed, scale=5.0):
    x = _values(shape, seed, scale=scale)
    x[0, 0] = 1e4  # a large row max
    if shape[0] > 1:
        x[1, :] -= 1e4  # a row of large negative logits
    return x


@pytest.mark.parametrize("shape", ROW_SHAPES, ids=_ids(ROW_SHAPES))
def test_softmax_matches_reference(shape, threads):
    x = _logits(shape, 5)
    p = ops.softmax(x)
    assert_close(p, reference.softmax(*as64(x)), rtol=1e-5, atol=1e-7, name="softmax")
    assert_close(p.sum(axis=1), np.ones(shape[0]), rtol=1e-5, atol=0)
    assert_close(ops.log_softmax(x), reference.log_softmax(*as64(x)), rtol=1e-5, atol=1e-5,
                 name="log_softmax")


def test_softmax_nan_and_inf_rows():
    x = np.array([[1.0, np.nan, 2.0], [np.inf, 0.0, 1.0], [-np.inf, 0.0, 0.0]], np.float32)
    for backend in BACKENDS:
        for fn in (backend.softmax, backend.log_softmax):
            out = fn(x)
            assert np.isnan(out[:2]).all()  # a NaN or +Inf makes the row NaN
        assert backend.softmax(x)[2].tolist() == [0.0, 0.5, 0.5]
        assert backend.log_softmax(x)[2, 0] == -np.inf


# ====================================================================== costs ==

COST_SHAPES = [(1, 1), (1, 9), (3, 5), (7, 3), (31, 11), (1000, 70)]  # last above 2**15


@pytest.mark.parametrize("shape", COST_SHAPES, ids=_ids(COST_SHAPES))
def test_softmax_loglik_matches_reference(shape, threads):
    x = _logits(shape, 6)
    labels = np.random.default_rng(6).integers(0, shape[1], size=shape[0])
    loss, d = ops.softmax_loglik(x, labels)
    want_loss, want_d = reference.softmax_loglik(*as64(x), labels)
    assert isinstance(loss, float) and isinstance(want_loss, float)
    assert loss == pytest.approx(want_loss, rel=1e-5, abs=1e-6)
    assert_close(d, want_d, rtol=1e-4, atol=1e-7 / shape[0], name="dlogits")


@pytest.mark.parametrize("shape", COST_SHAPES, ids=_ids(COST_SHAPES))
def test_quadratic_cost_matches_reference(shape, threads):
    a, y = _values(shape, 7), _values(shape, 8)
    loss, da = ops.quadratic_cost(a, y)
    want_loss, want_da = reference.quadratic_cost(*as64(a, y))
    assert isinstance(loss, float)
    assert loss == pytest.approx(want_loss, rel=1e-6)
    assert_close(da, want_da, rtol=1e-6, atol=0, name="da")


@pytest.mark.parametrize("shape", COST_SHAPES, ids=_ids(COST_SHAPES))
def test_binary_cross_entropy_matches_reference(shape, threads):
    z = _values(shape, 9, scale=4.0, extremes=(1e4, -1e4, 90.0, -90.0, 20.0, -20.0))
    rng = np.random.default_rng(9)
    y = rng.random(shape).astype(np.float32)
    y[rng.random(shape) < 0.3] = 1.0
    y[rng.random(shape) < 0.3] = 0.0
    loss, dz = ops.binary_cross_entropy(z, y)
    want_loss, want_dz = reference.binary_cross_entropy(*as64(z, y))
    assert np.isfinite(loss) and isinstance(loss, float)
    assert loss == pytest.approx(want_loss, rel=1e-5)
    assert_close(dz, want_dz, rtol=1e-5, atol=1e-7 / shape[0], name="dz")


def test_binary_cross_entropy_is_stable():
    """Saturated logits with matching targets cost ~0; with wrong targets |z|."""
    z = np.array([[1e4, -1e4, 50.0, -50.0]], np.float32)
    for backend in BACKENDS:
        loss, dz = backend.binary_cross_entropy(z, np.array([[1, 0, 1, 0]], np.float32))
        assert 0 <= loss < 1e-20 and np.all(np.abs(dz) < 1e-20)
        loss, dz = backend.binary_cross_entropy(z, np.array([[0, 1, 0, 1]], np.float32))
        assert loss == pytest.approx(2e4 + 100, rel=1e-12)
        assert dz.tolist() == [[1, -1, 1, -1]]


def test_costs_do_not_depend_on_thread_count():
    """Losses are summed in a fixed order: bit-identical with 1 and 2 threads."""
    shape = (1000, 70)
    z, y = _values(shape, 10), np.random.default_rng(10).random(shape).astype(np.float32)
    labels = np.random.default_rng(11).integers(0, 70, size=1000)
    before = fastcnn.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            fastcnn.set_num_threads(n)
            results.append((ops.quadratic_cost(z, y), ops.binary_cross_entropy(z, y),
                            ops.softmax_loglik(z, labels), ops.tanh(z)))
    finally:
        fastcnn.set_num_threads(before)
    for (l1, g1), (l2, g2) in zip(results[0][:3], results[1][:3]):
        assert l1 == l2 and np.array_equal(g1, g2)
    assert np.array_equal(results[0][3], results[1][3])


# ==================================================================== dropout ==


@pytest.mark.parametrize("shape", SHAPES, ids=_ids(SHAPES))
@pytest.mark.parametrize("keep_prob", [1.0, 0.3])
def test_dropout_matches_reference(shape, keep_prob, threads):
    x, dout = _values(shape, 12), _values(shape, 13)
    mask = np.random.default_rng(12).random(shape) < keep_prob
    for m in (mask, mask.astype(np.uint8), mask.astype(np.float64)):
        assert_close(ops.dropout(x, m, keep_prob), reference.dropout(*as64(x), m, keep_prob),
                     rtol=1e-6, atol=0, name="dropout")
        assert_close(ops.dropout_backward(dout, m, keep_prob),
                     reference.dropout_backward(*as64(dout), m, keep_prob),
                     rtol=1e-6, atol=0, name="dropout_backward")


def test_dropout_mask_layouts():
    x = _values((4, 9), 14)
    mask = np.random.default_rng(14).random((4, 18)) < 0.5
    strided = mask[:, ::2]  # not contiguous
    for backend in BACKENDS:
        assert_close(backend.dropout(x, strided, 0.5), x * strided / 0.5, rtol=1e-6, atol=0)
    nan = np.array([np.nan, np.nan, 1.0], np.float32)
    for backend in BACKENDS:  # x * mask / keep_prob: a dropped NaN stays NaN
        assert np.isnan(backend.dropout(nan, [0, 1, 0], 0.5)[:2]).all()


# ========================================================= finite differences ==


def _numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar function f at x (float64)."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f(x)
        flat[i] = old - eps
        down = f(x)
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g


def test_finite_differences_costs():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((4, 5)) * 2
    labels = np.array([0, 4, 2, 2])
    _, d = reference.softmax_loglik(x, labels)
    assert_close(d, _numeric_grad(lambda v: reference.softmax_loglik(v, labels)[0], x),
                 rtol=1e-6, atol=1e-8)
    y = rng.standard_normal((4, 5))
    _, d = reference.quadratic_cost(x, y)
    assert_close(d, _numeric_grad(lambda v: reference.quadratic_cost(v, y)[0], x),
                 rtol=1e-6, atol=1e-8)
    t = rng.random((4, 5))
    _, d = reference.binary_cross_entropy(x, t)
    assert_close(d, _numeric_grad(lambda v: reference.binary_cross_entropy(v, t)[0], x),
                 rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh"])
def test_finite_differences_activations(name):
    rng = np.random.default_rng(16)
    x = rng.standard_normal((3, 7)) * 2
    x[np.abs(x) < 1e-3] = 0.5  # keep relu away from its kink
    dout = rng.standard_normal(x.shape)
    fwd = getattr(reference, name)
    bwd = getattr(reference, name + "_backward")
    # relu's backward takes the input, sigmoid's and tanh's the output
    dx = bwd(dout, x if "relu" in name else fwd(x))
    assert_close(dx, _numeric_grad(lambda v: np.sum(dout * fwd(v)), x), rtol=1e-6, atol=1e-8)


def test_finite_differences_dropout():
    rng = np.random.default_rng(17)
    x, dout = rng.standard_normal((3, 7)), rng.standard_normal((3, 7))
    mask = rng.random((3, 7)) < 0.6
    dx = reference.dropout_backward(dout, mask, 0.6)
    assert_close(dx, _numeric_grad(lambda v: np.sum(dout * reference.dropout(v, mask, 0.6)), x),
                 rtol=1e-6, atol=1e-8)
