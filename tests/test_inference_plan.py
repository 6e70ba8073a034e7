"""The native inference plan (nn/steps.Plans, _core.InferencePlan) against the
Python forward: bit for bit the same output on every layer type and every preset,
at batch 1 and odd batch sizes, on 1 and 2 threads and every SIMD path; the head
(evaluate's pre-activation output) too; the input never written.

The API around it (when a plan is rebuilt, fallbacks, errors, the fuzz) is
tests/test_inference_plan_api.py."""
from __future__ import annotations

import numpy as np
import pytest

import fastcnn
from fastcnn import Sequential, layers as L, presets

BATCHES = (1, 3, 8)


def _images(shape, n, seed=0, specials=True):
    """n inputs of shape, normal values; in a batch of several the first one also
    holds a NaN, an Inf and a -0 (which may make its whole output NaN)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n,) + tuple(shape)).astype(np.float32)
    if n > 1 and specials:
        x[0].reshape(-1)[[1, 4, 7]] = [np.nan, np.inf, -0.0]
    return x


def _randomize(model, seed=1):
    """Parameters of unit scale (the initial biases are zero), so every branch
    of every activation and pooling rule is taken."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for p in layer.params.values():
            p[...] = rng.normal(0.0, 1.0, p.shape) / np.sqrt(max(1, p[0].size))


def _same_bits(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    assert a.tobytes() == b.tobytes(), \
        f"max |difference| {np.nanmax(np.abs(a.astype(np.float64) - b))}"


def check_plan(model, x, head=False):
    """model._infer (the plan) equals model.forward bit for bit; x is not written."""
    xb = model.batch(x)
    before = xb.copy()
    got = model._infer(xb, head)
    assert model._plans.get(model, head) is not None, "the plan was not used"
    want = model.forward(xb, head=head)[0]
    _same_bits(got, np.ascontiguousarray(want))
    _same_bits(xb, before)


# Every layer type, alone and in the combinations the planner treats apart
# (fused or unfused conv + max-pool, activations in place, flat inputs), on
# (C, H, W) = (3, 13, 11) unless the name says flat.
ACTS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh", "softmax")
NETS = {
    **{f"conv-{a}": lambda a=a: [L.Conv2D(4, 3, activation=a)] for a in ACTS},
    "conv-stride-pad-nobias": lambda: [L.Conv2D(5, (3, 2), stride=(2, 1), padding=(1, 2),
                                                activation="relu", use_bias=False)],
    "conv-same-big": lambda: [L.Conv2D(24, 3, padding="same", activation="relu"),
                              L.Conv2D(8, 5, padding=2)],
    "conv-pool-fused-relu": lambda: [L.Conv2D(6, 3, activation="relu"), L.MaxPool2D(2)],
    "conv-pool-fused-linear": lambda: [L.Conv2D(6, 3), L.MaxPool2D(2)],
    "conv-pool-fused-overlap": lambda: [L.Conv2D(6, 2, activation="relu"),
                                        L.MaxPool2D(3, stride=2)],
    "conv-pool-sigmoid": lambda: [L.Conv2D(6, 3, activation="sigmoid"), L.MaxPool2D(2)],
    "conv-pool-window-too-big": lambda: [L.Conv2D(3, 1, activation="relu"),
                                         L.MaxPool2D((13, 11))],
    "maxpool": lambda: [L.MaxPool2D(3, stride=2)],
    "avgpool": lambda: [L.AvgPool2D(2)],
    "l2pool": lambda: [L.L2Pool2D((3, 2), stride=1)],
    "global-avgpool": lambda: [L.Conv2D(4, 3), L.GlobalAvgPool2D(), L.Dense(5)],
    **{f"dense-{a}": lambda a=a: [L.Dense(7, activation=a)] for a in ACTS},
    "dense-nobias": lambda: [L.Flatten(), L.Dense(6, activation="tanh", use_bias=False)],
    "activation-layers": lambda: [L.ReLU(), L.LeakyReLU(), L.Sigmoid(), L.Tanh(),
                                  L.Activation("linear"), L.Softmax()],
    "flatten-last": lambda: [L.Conv2D(2, 3), L.Flatten()],
    "identity-only": lambda: [L.Flatten(), L.Dropout(0.5)],
    "dropout-inverted": lambda: [L.Conv2D(3, 3, activation="relu"), L.Dropout(0.3),
                                 L.Dense(4)],
    "dropout-network3": lambda: [L.Dropout(0.25, inverted=False), L.Conv2D(3, 3),
                                 L.Dropout(0.5, inverted=False), L.Flatten(),
                                 L.Dropout(0.0, inverted=False), L.Dense(4, "softmax")],
    "flat-dense-stack": lambda: [L.Dense(9, "relu"), L.Dropout(0.2, inverted=False),
                                 L.Dense(9, "leaky_relu"), L.Dense(3, "sigmoid")],
}
FLAT = {"flat-dense-stack": (12,)}


def _net(name, fuse=True):
    model = Sequential(NETS[name](), input_shape=FLAT.get(name, (3, 13, 11)), seed=2)
    model.fuse = fuse
    _randomize(model)
    return model


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name", sorted(NETS))
def test_every_layer_type(name, batch, threads, isa):
    model = _net(name)
    check_plan(model, _images(model.input_shape, batch, seed=batch))


@pytest.mark.parametrize("name", ["conv-pool-fused-relu", "conv-pool-fused-linear",
                                  "conv-pool-fused-overlap"])
def test_unfused_pairs(name, threads):
    """fuse=False: a ReLU conv + max-pool is an unfused pair step, a linear one two
    layer steps; the plan follows the steps either way."""
    check_plan(_net(name, fuse=False), _images((3, 13, 11), 5))


@pytest.mark.parametrize("relu", [True, False])
def test_conv_pool_in_chunks(relu, threads, isa):
    """A conv + max-pool step whose conv output (277 KB an image) the plan runs a
    few images at a time (src/cpp/inference.cpp): chunks of 3, 3, 3 and 1 here."""
    model = Sequential([L.Conv2D(48, 3, activation="relu" if relu else "linear"),
                        L.MaxPool2D(2), L.Dense(3)], input_shape=(2, 40, 40), seed=2)
    _randomize(model)
    check_plan(model, _images(model.input_shape, 10))


@pytest.mark.parametrize("specials", [True, False], ids=["nan", "finite"])
@pytest.mark.parametrize("algorithm", ["auto", "winograd", "im2col"])
@pytest.mark.parametrize("batch", [1, 3, 40])
def test_winograd_layers(algorithm, batch, specials, threads):
    """3x3 convs of 16 channels and more, which take Winograd where the batch has
    tiles enough (auto: 40 images of 17x17 and 15x15 outputs) or always (winograd);
    with specials the first image of a batch holds a NaN, which sends a whole
    Winograd call to im2col. The plan runs such a conv + pool over the whole batch, as the
    forward does."""
    model = Sequential([L.Conv2D(16, 3, activation="relu"), L.Conv2D(16, 3, activation="tanh"),
                        L.Conv2D(24, 3, activation="relu"), L.MaxPool2D(2), L.Dense(3)],
                       input_shape=(2, 21, 21), seed=2)
    s = model.layers[2].input_shape
    wino = fastcnn._core._conv_path(40, s[0], s[1], s[2], 24, 3, 3, 1, 1, 0, 0)
    assert wino == "winograd" or algorithm != "auto", "the test's shapes no longer take Winograd"
    _randomize(model)
    before = fastcnn.conv_algorithm()
    fastcnn.set_conv_algorithm(algorithm)
    try:
        check_plan(model, _images(model.input_shape, batch, specials=specials))
    finally:
        fastcnn.set_conv_algorithm(before)


@pytest.mark.parametrize("name", ["conv-softmax", "dense-softmax", "dense-sigmoid",
                                  "conv-relu", "activation-layers", "dropout-network3"])
def test_head_leaves_the_last_activation_out(name, threads):
    model = _net(name)
    check_plan(model, _images(model.input_shape, 3), head=True)


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_every_preset(name, batch, threads, isa):
    net = presets.build(name, seed=3)
    model = getattr(net, "model", net)
    _randomize(model, seed=4)
    check_plan(model, _images(model.input_shape, batch, seed=7))


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_predict_proba_and_evaluate_agree_with_the_python_forward(batch, threads):
    """The public calls: predict_proba over several batches (the last one short),
    predict, and evaluate's loss and accuracy (with the head, log-likelihood)."""
    net = presets.build("keras-cnn", seed=0)
    x = (np.random.default_rng(5).random((2 * batch + 3,) + net.input_shape) * 255).astype(
        np.uint8)
    y = np.random.default_rng(6).integers(0, 10, len(x))
    want = np.concatenate([net.forward(net.batch(x[i:i + batch]))[0]
                           for i in range(0, len(x), batch)])
    _same_bits(net.predict_proba(x, batch_size=batch), want)
    np.testing.assert_array_equal(net.predict(x, batch_size=batch), want.argmax(1))
    total = correct = 0.0
    for i in range(0, len(x), batch):
        logits = net.forward(net.batch(x[i:i + batch]), head=True)[0]
        total += net.loss(net.ops, logits, y[i:i + batch])[0] * len(logits)
        correct += int(np.sum(logits.argmax(1) == y[i:i + batch]))
    assert net.evaluate(x, y, batch_size=batch) == {"loss": total / len(x),
                                                     "accuracy": correct / len(x)}
