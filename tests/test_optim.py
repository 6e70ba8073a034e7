"""Optimizer steps: several consecutive steps native (float32) against the
float64 reference, the reference against hand-written update rules, and bad
input (hyper-parameters, arrays updated in place) on both backends and _core."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close

from fastcnn import _core, ops, reference

BACKENDS = [reference, ops]
SHAPES = [(1,), (7,), (3, 5), (2, 3, 5, 7), (70001,)]  # last above the parallel threshold

# (name, state names, hyper-parameters)
CONFIGS = [
    ("sgd_update", [], dict(lr=0.1)),
    ("sgd_update", [], dict(lr=0.05, weight_decay=0.01)),
    ("sgd_update", ["velocity"], dict(lr=0.1, momentum=0.9)),
    ("sgd_update", ["velocity"], dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("sgd_update", ["velocity"], dict(lr=0.05, momentum=0.5, weight_decay=0.1, nesterov=True)),
    ("sgd_update", ["velocity"], dict(lr=0.1, momentum=0.0)),
    ("adagrad_update", ["sum_sq"], dict(lr=0.1)),
    ("adagrad_update", ["sum_sq"], dict(lr=0.1, eps=1e-3, weight_decay=0.01)),
    ("rmsprop_update", ["sq_avg"], dict(lr=0.01)),
    ("rmsprop_update", ["sq_avg"], dict(lr=0.01, alpha=0.5, eps=1e-4, weight_decay=0.1)),
    ("adam_update", ["m", "v"], dict(lr=0.01)),
    ("adam_update", ["m", "v"], dict(lr=0.01, beta1=0.5, beta2=0.8, eps=1e-6,
                                     weight_decay=0.01)),
    ("adam_update", ["m", "v"], dict(lr=0.001, beta1=0.0, beta2=0.0)),
]


def _config_id(c):
    return c[0].replace("_update", "") + "-" + "-".join(f"{k}{v}" for k, v in c[2].items())


def _run_steps(backend, name, states, hyper, param, grads):
    """Applies one step per gradient to copies of param/states; returns them."""
    dtype = np.float64 if backend is reference else np.float32
    p = param.astype(dtype)
    state = {s: np.zeros_like(p) for s in states}
    for step, g in enumerate(grads, start=1):
        extra = dict(step=step) if name == "adam_update" else {}
        assert getattr(backend, name)(p, g, *state.values(), **hyper, **extra) is None
    return p, state


@pytest.mark.parametrize("config", CONFIGS, ids=[_config_id(c) for c in CONFIGS])
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_steps_match_reference(config, shape, threads):
    name, states, hyper = config
    rng = np.random.default_rng(hash(shape) % 1000)
    param = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(5)]
    grads[0].reshape(-1)[0] = 0.0  # a zero gradient: Adagrad/RMSprop/Adam divide by eps
    got_p, got_s = _run_steps(ops, name, states, hyper, param, grads)
    want_p, want_s = _run_steps(reference, name, states, hyper, param,
                                [g.astype(np.float64) for g in grads])
    assert_close(got_p, want_p, rtol=1e-5, atol=1e-6, name="param")
    for s in states:
        assert_close(got_s[s], want_s[s], rtol=1e-5, atol=1e-6, name=s)


def test_reference_rules_by_hand():
    """The reference against the README rules written out for one value."""
    p0, g0, lr, mu, wd = 0.5, 0.2, 0.1, 0.9, 0.01
    g = g0 + wd * p0
    # SGD with Nesterov, two steps
    p, v = np.array([p0]), np.zeros(1)
    reference.sgd_update(p, np.array([g0]), v, lr=lr, momentum=mu, weight_decay=wd, nesterov=True)
    assert v[0] == pytest.approx(g) and p[0] == pytest.approx(p0 - lr * (g + mu * g))
    # Adam: steps 1..5 with a constant gradient; bias correction makes
    # m_hat = g and v_hat = g^2 at every step, so param moves by lr*g/(|g|+eps).
    p, m, v = np.array([p0]), np.zeros(1), np.zeros(1)
    want = p0
    for step in range(1, 6):
        reference.adam_update(p, np.array([g0]), m, v, step=step, lr=lr, eps=1e-8)
        want -= lr * g0 / (abs(g0) + 1e-8)
        assert m[0] == pytest.approx(g0 * (1 - 0.9 ** step))
        assert v[0] == pytest.approx(g0 ** 2 * (1 - 0.999 ** step))
        assert p[0] == pytest.approx(want, rel=1e-12)
    # RMSprop and Adagrad, one step from zero state
    p, s = np.array([p0]), np.zeros(1)
    reference.rmsprop_update(p, np.array([g0]), s, lr=lr, alpha=0.9, eps=0.0 + 1e-8)
    assert s[0] == pytest.approx(0.1 * g0 ** 2)
    assert p[0] == pytest.approx(p0 - lr * g0 / (np.sqrt(0.1) * g0 + 1e-8))
    p, s = np.array([p0]), np.zeros(1)
    reference.adagrad_update(p, np.array([g0]), s, lr=lr)
    assert s[0] == pytest.approx(g0 ** 2) and p[0] == pytest.approx(p0 - lr)


def test_plain_sgd_without_velocity_and_float64_grad():
    p = np.linspace(-1, 1, 9, dtype=np.float32)
    g = np.linspace(1, 2, 9)  # float64 gradient: read-only, converted by ops
    want = p.astype(np.float64) - 0.5 * g
    for backend in BACKENDS:
        q = p.copy()
        backend.sgd_update(q, g, lr=0.5)
        assert_close(q, want, rtol=1e-6, atol=1e-7)


def test_reference_accepts_float64_and_strided_params():
    p = np.ones((4, 6))
    view = p[:, ::2]
    reference.adam_update(view, np.ones((4, 3)), np.zeros((4, 3)), np.zeros((4, 3)),
                          step=1, lr=0.1)
    assert np.allclose(p[:, ::2], 0.9) and np.all(p[:, 1::2] == 1)


# ================================================================== bad input ==


def _arrays(*shapes, dtype=np.float32):
    return [np.zeros(s, dtype) for s in shapes]


def _call(backend, name, args, kwargs):
    """Calls with fresh copies so each backend sees the same arrays."""
    args = [a.copy() if isinstance(a, np.ndarray) and a.flags.owndata else a for a in args]
    return getattr(backend, name)(*args, **kwargs)


P, G = np.ones((3, 4), np.float32), np.ones((3, 4), np.float32)
Z = np.zeros((3, 4), np.float32)

BAD_HYPER = [
    ("sgd_update", (P, G), dict(lr=-0.1), ValueError),
    ("sgd_update", (P, G), dict(lr=float("nan")), ValueError),
    ("sgd_update", (P, G), dict(lr=float("inf")), ValueError),
    ("sgd_update", (P, G), dict(lr="0.1"), TypeError),
    ("sgd_update", (P, G), dict(lr=True), TypeError),
    ("sgd_update", (P, G), dict(lr=0.1, momentum=0.9), ValueError),  # no velocity
    ("sgd_update", (P, G, Z), dict(lr=0.1, momentum=1.0), ValueError),
    ("sgd_update", (P, G, Z), dict(lr=0.1, momentum=-0.5), ValueError),
    ("sgd_update", (P, G, Z), dict(lr=0.1, weight_decay=-1.0), ValueError),
    ("sgd_update", (P, G, Z), dict(lr=0.1, momentum=0.9, nesterov="yes"), TypeError),
    ("sgd_update", (P, G.T), dict(lr=0.1), ValueError),
    ("sgd_update", (P, G.astype(np.int32)), dict(lr=0.1), TypeError),
    ("sgd_update", (P.tolist(), G), dict(lr=0.1), TypeError),
    ("sgd_update", (P.astype(np.int64), G), dict(lr=0.1), TypeError),
    ("sgd_update", (P, G, np.zeros((4, 3), np.float32)), dict(lr=0.1, momentum=0.9), ValueError),
    ("adagrad_update", (P, G, Z), dict(lr=0.1, eps=0.0), ValueError),
    ("adagrad_update", (P, G, None), dict(lr=0.1), TypeError),
    ("rmsprop_update", (P, G, Z), dict(lr=0.1, alpha=1.0), ValueError),
    ("rmsprop_update", (P, G, Z), dict(lr=0.1, eps=-1e-8), ValueError),
    ("adam_update", (P, G, Z, Z.copy()), dict(step=0, lr=0.1), ValueError),
    ("adam_update", (P, G, Z, Z.copy()), dict(step=1.0, lr=0.1), TypeError),
    ("adam_update", (P, G, Z, Z.copy()), dict(step=1, lr=0.1, beta1=1.0), ValueError),
    ("adam_update", (P, G, Z, Z.copy()), dict(step=1, lr=0.1, beta2=1.5), ValueError),
    ("adam_update", (P, G, Z, np.zeros(12, np.float32)), dict(step=1, lr=0.1), ValueError),
]


@pytest.mark.parametrize("name,args,kwargs,error", BAD_HYPER,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_HYPER)])
def test_bad_input_same_error(name, args, kwargs, error):
    messages = []
    for backend in BACKENDS:
        with pytest.raises(error) as info:
            _call(backend, name, args, kwargs)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_shared_buffers_are_rejected():
    """m = v = np.zeros_like(p) is one array: it would be updated twice."""
    for backend in BACKENDS:
        p, g = np.ones(5, np.float32), np.ones(5, np.float32)
        m = v = np.zeros_like(p)
        with pytest.raises(ValueError, match="m and v must not share memory"):
            backend.adam_update(p, g, m, v, step=1, lr=0.1)
        with pytest.raises(ValueError, match="param and velocity"):
            backend.sgd_update(p, g, p, lr=0.1, momentum=0.9)
        with pytest.raises(ValueError, match="param and grad"):
            backend.adagrad_update(p, p, m, lr=0.1)
        flat = np.zeros(10, np.float32)  # disjoint halves of one buffer are fine
        backend.sgd_update(flat[:5], g, flat[5:], lr=0.1, momentum=0.9)
        assert np.allclose(flat[:5], -0.1) and np.all(flat[5:] == 1)


def test_native_needs_float32_contiguous_params():
    g = np.ones((4, 3), np.float32)
    bad = [np.zeros((4, 3)),                          # float64
           np.zeros((4, 6), np.float32)[:, ::2],      # not contiguous
           np.zeros((3, 4), np.float32).T]            # Fortran order
    for p in bad:
        with pytest.raises(TypeError):
            ops.sgd_update(p, g, lr=0.1)
        with pytest.raises(TypeError):
            ops.adam_update(np.zeros((4, 3), np.float32), g, p, np.zeros((4, 3), np.float32),
                            step=1, lr=0.1)
        reference.sgd_update(p, g, lr=0.1)  # the reference accepts them
    readonly = np.zeros((4, 3), np.float32)
    readonly.flags.writeable = False
    for backend in BACKENDS:
        with pytest.raises(ValueError, match="writeable"):
            backend.sgd_update(readonly, g, lr=0.1)


def test_core_direct_bad_calls_raise():
    p, g = np.ones(6, np.float32), np.ones(6, np.float32)
    s = np.zeros(6, np.float32)
    with pytest.raises(ValueError):
        _core.sgd_update(p, np.ones(5, np.float32), None, 0.1, 0.0, 0.0, False)
    with pytest.raises(ValueError):
        _core.sgd_update(p, g, None, 0.1, 0.9, 0.0, False)  # momentum without velocity
    with pytest.raises(TypeError):
        _core.sgd_update(p.astype(np.float64), g, None, 0.1, 0.0, 0.0, False)
    with pytest.raises(ValueError):
        _core.sgd_update(p, g, np.zeros(7, np.float32), 0.1, 0.9, 0.0, False)
    with pytest.raises(ValueError):
        _core.sgd_update(p, g, p, 0.1, 0.9, 0.0, False)  # velocity is param
    with pytest.raises(TypeError):
        _core.adagrad_update(p, g, None, 0.1, 1e-10, 0.0)
    with pytest.raises(TypeError):
        _core.rmsprop_update(p, g, s.astype(np.float64), 0.1, 0.9, 1e-8, 0.0)
    with pytest.raises(ValueError):
        _core.adam_update(p, g, s, s, 1, 0.1, 0.9, 0.999, 1e-8, 0.0)  # m is v
    with pytest.raises(ValueError):
        _core.adam_update(p, g, s, np.zeros(6, np.float32), 0, 0.1, 0.9, 0.999, 1e-8, 0.0)
    readonly = np.zeros(6, np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError):
        _core.adagrad_update(p, g, readonly, 0.1, 1e-10, 0.0)
    assert np.all(p == 1)  # nothing was written by the failed calls
