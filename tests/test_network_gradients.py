"""Gradients of whole Sequential networks (odd sizes, every layer type, every
activation, every loss): central finite differences on the float64 reference
backend, then the native backend against that oracle for outputs, losses and
gradients; loss values against their definitions; dropout masks; the ReLU mask
moved from a conv to the max-pool after it."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close
from training_cases import _data, _twin

from fastcnn import Sequential
from fastcnn import layers as L
from fastcnn.nn.steps import LayerStep

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# ---------------------------------------------------------------------------
# Nets used below: odd sizes, every layer type, every activation.

def _conv_net(head="softmax", classes=3):
    """(2, 11, 9) -> conv 3x3 s2 p1 tanh (3, 6, 5) -> max 2 (3, 3, 2) -> conv 2x1 relu
    (4, 2, 2) -> avg (2, 1) s1 (4, 1, 2) -> flatten 8 -> dense 5 sigmoid -> dense."""
    return [L.Conv2D(3, 3, stride=2, padding=1, activation="tanh"), L.MaxPool2D(2),
            L.Conv2D(4, (2, 1), activation="relu", init="he"), L.AvgPool2D((2, 1), stride=1),
            L.Flatten(), L.Dense(5, activation="sigmoid"), L.Dense(classes, activation=head)]


def _l2_net(head="softmax", classes=4):
    """(3, 7, 8) -> conv same 3x3 tanh (2, 7, 8) -> l2 pool (2,3) s(1,2) (2, 6, 3)
    -> conv 3x2 no bias, book init (5, 4, 2) -> relu -> global avg 5 -> dense."""
    return [L.Conv2D(2, 3, padding="same", activation="tanh"), L.L2Pool2D((2, 3), stride=(1, 2)),
            L.Conv2D(5, (3, 2), init="book", use_bias=False), L.ReLU(), L.GlobalAvgPool2D(),
            L.Dense(classes, activation=head)]


def _dense_net(head="softmax", classes=3):
    """(7,) -> dense 6 tanh -> dense 5 -> sigmoid -> dense 4 relu -> tanh -> dense 5
    leaky relu -> leaky relu -> dense."""
    return [L.Dense(6, activation="tanh"), L.Dense(5), L.Sigmoid(),
            L.Dense(4, activation="relu", init="he"), L.Tanh(),
            L.Dense(5, activation="leaky_relu"), L.LeakyReLU(), L.Dense(classes, activation=head)]


NETS = {"conv": (_conv_net, (2, 11, 9)), "l2": (_l2_net, (3, 7, 8)), "dense": (_dense_net, (7,))}


def _targets(loss, n, classes, rng):
    if loss == "log_likelihood":
        return rng.integers(0, classes, n)
    if loss == "binary_cross_entropy":
        return rng.random((n, classes))            # soft targets in [0, 1]
    return rng.standard_normal((n, classes))       # quadratic


# (net, loss, last activation)
FD_CASES = [
    ("conv", "log_likelihood", "softmax"),
    ("conv", "binary_cross_entropy", "sigmoid"),
    ("conv", "quadratic", "sigmoid"),
    ("l2", "log_likelihood", "linear"),
    ("l2", "quadratic", "linear"),
    ("dense", "log_likelihood", "softmax"),
    ("dense", "binary_cross_entropy", "linear"),
    ("dense", "quadratic", "tanh"),
    ("dense", "quadratic", "relu"),
]


@pytest.mark.parametrize("net, loss, head", FD_CASES, ids=["-".join(c) for c in FD_CASES])
def test_gradients_match_finite_differences(net, loss, head):
    build, shape = NETS[net]
    rng = np.random.default_rng(len(net) * 7 + len(loss))
    model = Sequential(build(head, 4 if net == "l2" else 3), input_shape=shape,
                       backend="reference", dtype="float64", seed=3)
    x = rng.standard_normal((5,) + shape)
    y = _targets(loss, 5, model.output_shape[0], rng)
    _, _, grads = model.loss_and_grads(x, y, loss)
    eps = 1e-6
    for i, layer in enumerate(model.layers):
        assert set(grads[i]) == set(layer.params), f"layer {i} {layer!r}"
        for name, p in layer.params.items():
            g = grads[i][name]
            assert g.shape == p.shape and g.dtype == np.float64
            picks = rng.choice(p.size, size=min(p.size, 8), replace=False)
            numeric = []
            for k in picks:
                old = p.flat[k]
                p.flat[k] = old + eps
                up = model.loss_and_grads(x, y, loss)[0]
                p.flat[k] = old - eps
                down = model.loss_and_grads(x, y, loss)[0]
                p.flat[k] = old
                numeric.append((up - down) / (2 * eps))
            assert_close(g.flat[picks], np.array(numeric), rtol=1e-5, atol=1e-8,
                         name=f"d loss / d layer {i} ({layer!r}) {name}")


def _loss_by_hand(loss, probs, y):
    """The costs from their definitions, on the network's activated output."""
    n = probs.shape[0]
    if loss == "log_likelihood":
        return -np.mean(np.log(probs[np.arange(n), y]))
    t = np.eye(probs.shape[1])[y] if y.ndim == 1 else y
    if loss == "binary_cross_entropy":
        return -np.mean(np.sum(t * np.log(probs) + (1 - t) * np.log(1 - probs), axis=1))
    return np.mean(0.5 * np.sum((probs - t) ** 2, axis=1))


@pytest.mark.parametrize("loss, head, labels", [
    ("log_likelihood", "softmax", True), ("binary_cross_entropy", "sigmoid", False),
    ("binary_cross_entropy", "sigmoid", True), ("quadratic", "sigmoid", False),
    ("quadratic", "tanh", True)])
def test_loss_values(loss, head, labels):
    model = Sequential(_conv_net(head), input_shape=(2, 11, 9), backend="reference",
                       dtype="float64", seed=8)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 2, 11, 9))
    y = rng.integers(0, 3, 7) if labels else _targets(loss, 7, 3, rng)
    want = _loss_by_hand(loss, model.predict_proba(x), y)
    assert_close(model.loss_and_grads(x, y, loss)[0], want, rtol=1e-12, name=loss)
    assert_close(model.evaluate(x, y, batch_size=3, loss=loss)["loss"], want, rtol=1e-12)


def test_dropout_gradient_with_a_fixed_mask():
    """Dropout in training: the same seed gives the same mask every evaluation."""
    model = Sequential([L.Dense(6, activation="tanh"), L.Dropout(0.4),
                        L.Dense(3, activation="softmax")],
                       input_shape=(5,), backend="reference", dtype="float64")
    x, y = _data((5,), 9, 3)

    def loss_value():
        return model.loss_and_grads(x, y, rng=np.random.default_rng(11))[0]

    _, _, grads = model.loss_and_grads(x, y, rng=np.random.default_rng(11))
    w = model.layers[0].params["w"]
    numeric = np.zeros_like(w)
    for k in range(w.size):
        old = w.flat[k]
        w.flat[k] = old + 1e-6
        up = loss_value()
        w.flat[k] = old - 1e-6
        numeric.flat[k] = (up - loss_value()) / 2e-6
        w.flat[k] = old
    assert_close(grads[0]["w"], numeric, rtol=1e-5, atol=1e-9, name="dropout net dw")
    # the mask matters: another seed drops other units and gives another gradient
    other = model.loss_and_grads(x, y, rng=np.random.default_rng(12))[2][0]["w"]
    assert not np.allclose(other, grads[0]["w"])


# ---------------------------------------------------------------------------
# Native (float32) against the reference (float64)

NATIVE_CASES = [
    ("conv", "log_likelihood", "softmax"),
    ("conv", "binary_cross_entropy", "sigmoid"),
    ("l2", "quadratic", "sigmoid"),
    ("dense", "log_likelihood", "softmax"),
]


@pytest.mark.parametrize("net, loss, head", NATIVE_CASES, ids=["-".join(c) for c in NATIVE_CASES])
def test_native_matches_reference(net, loss, head, threads):
    build, shape = NETS[net]
    layers = build(head, 3)
    layers.insert(-1, L.Dropout(0.25))              # masks come from numpy: same on both
    native = Sequential(layers, input_shape=shape, seed=5)
    ref = _twin(native)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((13,) + shape).astype(np.float32)
    y = _targets(loss, 13, 3, rng)
    got = native.loss_and_grads(x, y, loss, rng=np.random.default_rng(8))
    want = ref.loss_and_grads(x, y, loss, rng=np.random.default_rng(8))
    assert got[1].dtype == np.float32 and want[1].dtype == np.float64
    assert_close(got[0], want[0], rtol=1e-5, name="loss")
    assert_close(got[1], want[1], rtol=1e-4, atol=1e-5, name="training output")
    for i, (g, w) in enumerate(zip(got[2], want[2])):
        assert set(g) == set(w)
        for name in g:
            assert_close(g[name], w[name], rtol=1e-4, atol=1e-5, name=f"layer {i} d{name}")
    # inference: dropout off, the last activation applied
    assert_close(native.predict_proba(x, batch_size=4), ref.predict_proba(x), rtol=1e-4,
                 atol=1e-5, name="predict_proba")


# ---------------------------------------------------------------------------
# ReLU conv + max-pool, unfused: the pool applies the ReLU mask (nn/steps.py)


@pytest.mark.parametrize("backend, dtype", [("native", "float32"), ("reference", "float64")])
@pytest.mark.parametrize("size, stride", [(2, None), (3, 2), (2, 1), (3, 3)])
def test_relu_mask_moved_to_the_pool_changes_no_bit(backend, dtype, size, stride):
    """The pool masking its (smaller) output gradient gives exactly the gradients
    of the conv masking its own: overlapping windows, floor sizes, ties at 0."""
    layers = [L.Conv2D(4, 3, activation="relu"), L.MaxPool2D(size, stride),
              L.Conv2D(3, 2, activation="relu"), L.MaxPool2D(size, stride),
              L.Dense(5, activation="softmax")]
    model = Sequential(layers, input_shape=(2, 15, 14), backend=backend, dtype=dtype, seed=3)
    model.fuse = False
    assert [(type(s).__name__, getattr(s, "fused", None)) for s in model.steps] == \
        [("ConvPoolStep", False), ("ConvPoolStep", False), ("LayerStep", None)]
    x, y = _data((2, 15, 14), 6, 5, seed=4)
    x[0, :, :8] = -5.0  # whole windows at relu 0: pooled 0, gradient stops
    moved = model.loss_and_grads(x, y)[2]
    model.steps = [LayerStep(layer) for layer in model.layers]   # each conv masks its own
    plain = model.loss_and_grads(x, y)[2]
    assert any(np.count_nonzero(g["w"]) for g in moved if g)
    for g_moved, g_plain in zip(moved, plain):
        assert g_moved.keys() == g_plain.keys()
        for k in g_moved:
            np.testing.assert_array_equal(g_moved[k], g_plain[k])
