"""fastcnn.network3 against the semantics of the book's network3.py (chapter 6 of
Nielsen's "Neural Networks and Deep Learning").

The expected values are computed here in float64 NumPy, from the network's own
parameters (net.params, the book's list [w, b, w, b, ...]) but without fastcnn's
layers: convolution, max-pooling, dropout without rescaling, (1 - p) scaling at
inference, log-likelihood, L2 decay of lmbda / num_training_batches on weights only.
The training-time dropout masks are recovered by replaying the model's Generator
(Dropout draws `rng.random(shape, dtype=float32) < 1 - p`, layer by layer).
Initial weights and ConvPoolLayer are checked here too; training on MNIST, the
printout, load_data_shared and bad input are in test_network3_mnist.py."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import assert_close

from fastcnn.network3 import (ConvPoolLayer, FullyConnectedLayer, Network, ReLU, SoftmaxLayer,
                              linear, sigmoid, tanh)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# ---------------------------------------------------------------------------
# The book's forward and backward pass, by hand, in float64

# network3's activation functions, by identity (not by the name fastcnn gives them)
_NAMES = {sigmoid: "sigmoid", tanh: "tanh", ReLU: "relu", linear: "linear"}


def _act(name, z):
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    return z


def _act_grad(name, z, y):
    """d act / d z, given the input z and output y."""
    if name == "sigmoid":
        return y * (1.0 - y)
    if name == "tanh":
        return 1.0 - y * y
    if name == "relu":
        return (z > 0).astype(np.float64)
    return np.ones_like(z)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _conv(x, w):
    """Valid cross-correlation, stride 1: x (N, C, H, W), w (K, C, KH, KW)."""
    _, _, h, wd = x.shape
    _, _, kh, kw = w.shape
    oh, ow = h - kh + 1, wd - kw + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,kc->nkhw", x[:, :, i:i + oh, j:j + ow], w[:, :, i, j])
    return out


def _conv_grad_w(dout, x, kshape):
    _, _, kh, kw = kshape
    oh, ow = dout.shape[2:]
    dw = np.zeros(kshape)
    for i in range(kh):
        for j in range(kw):
            dw[:, :, i, j] = np.einsum("nkhw,nchw->kc", dout, x[:, :, i:i + oh, j:j + ow])
    return dw


def _pool_windows(shape, pool):
    """(row slice, col slice, out row, out col) of every pooling window; a border
    that does not fill a window is ignored (Theano's ignore_border=True)."""
    ph, pw = pool
    for a in range(shape[2] // ph):
        for b in range(shape[3] // pw):
            yield slice(a * ph, (a + 1) * ph), slice(b * pw, (b + 1) * pw), a, b


def _maxpool(x, pool):
    out = np.empty(x.shape[:2] + (x.shape[2] // pool[0], x.shape[3] // pool[1]))
    for rs, cs, a, b in _pool_windows(x.shape, pool):
        out[:, :, a, b] = x[:, :, rs, cs].max(axis=(2, 3))
    return out


def _maxpool_grad(dout, x, pool):
    dx = np.zeros_like(x)
    n, c = x.shape[:2]
    for rs, cs, a, b in _pool_windows(x.shape, pool):
        win = x[:, :, rs, cs].reshape(n, c, -1)
        k = win.argmax(axis=2)  # random inputs: no ties
        d = np.zeros_like(win)
        np.put_along_axis(d, k[:, :, None], dout[:, :, a, b][:, :, None], axis=2)
        dx[:, :, rs, cs] += d.reshape(n, c, pool[0], pool[1])
    return dx


def _params64(net):
    """[(w, b)] per network3 layer, float64 copies."""
    ps = [np.array(p, dtype=np.float64) for p in net.params]
    return list(zip(ps[0::2], ps[1::2]))


def _hand_forward(layers, params, x, masks=None):
    """Probabilities and caches. masks=None: inference, a dropout layer's input is
    scaled by (1 - p); else masks[i] (bool, or None) multiplies layer i's input."""
    a = np.asarray(x, dtype=np.float64)
    caches = []
    for i, (layer, (w, b)) in enumerate(zip(layers, params)):
        if isinstance(layer, ConvPoolLayer):
            a = a.reshape((a.shape[0],) + layer.image_shape[1:])
            pooled = _maxpool(_conv(a, w), layer.poolsize)
            z = pooled + b[None, :, None, None]
            y = _act(_NAMES[layer.activation_fn], z)
            caches.append((a, z, y))
        else:
            inp = a.reshape(a.shape[0], -1)
            if masks is None:
                inp = (1.0 - layer.p_dropout) * inp
            elif masks[i] is not None:
                inp = inp * masks[i]
            z = inp @ w + b
            if isinstance(layer, SoftmaxLayer):
                y = _softmax(z)
            else:
                y = _act(_NAMES[layer.activation_fn], z)
            caches.append((inp, z, y))
        a = y
    return a, caches


def _hand_grads(layers, params, caches, masks, probs, labels):
    """Gradients [(dw, db)] of the mean log-likelihood (no L2 term)."""
    n = probs.shape[0]
    dz = probs.copy()
    dz[np.arange(n), labels] -= 1.0
    dz /= n
    grads = [None] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        layer, (w, _) = layers[i], params[i]
        inp, z, y = caches[i]
        if i < len(layers) - 1:
            dz = dy * _act_grad(_NAMES[layer.activation_fn], z, y)
        if isinstance(layer, ConvPoolLayer):
            db = dz.sum(axis=(0, 2, 3))
            conv_out = _conv(inp, w)
            dpool = _maxpool_grad(dz, conv_out, layer.poolsize)
            grads[i] = (_conv_grad_w(dpool, inp, w.shape), db)
            dy = None  # a ConvPoolLayer is only used first here
        else:
            grads[i] = (inp.T @ dz, dz.sum(axis=0))
            dinp = dz @ w.T
            if masks[i] is not None:
                dinp = dinp * masks[i]
            prev = caches[i - 1][2] if i > 0 else None
            dy = None if prev is None else dinp.reshape(prev.shape)
    return grads


def _draw_masks(rng, layers, mbs):
    """The dropout masks the model draws for one mini-batch, in layer order."""
    return [rng.random((mbs, layer.n_in), dtype=np.float32) < 1.0 - layer.p_dropout
            if getattr(layer, "p_dropout", 0.0) else None for layer in layers]


def _hand_sgd(net, x, y, mbs, eta, lmbda, rng):
    """The parameters after one epoch of the book's SGD over (x, y), in order."""
    params = _params64(net)
    n_batches = len(x) // mbs
    for k in range(n_batches):
        xb = np.asarray(x[k * mbs:(k + 1) * mbs], dtype=np.float64)
        yb = y[k * mbs:(k + 1) * mbs]
        masks = _draw_masks(rng, net.layers, mbs)
        probs, caches = _hand_forward(net.layers, params, xb, masks)
        grads = _hand_grads(net.layers, params, caches, masks, probs, yb)
        params = [(w - eta * (gw + (lmbda / n_batches) * w), b - eta * gb)
                  for (w, b), (gw, gb) in zip(params, grads)]
    return params


# ---------------------------------------------------------------------------
# Small networks for the semantics tests

MBS = 4


def _fc_net(seed=0, backend="reference"):
    return Network([FullyConnectedLayer(12, 6, sigmoid, p_dropout=0.5),
                    SoftmaxLayer(6, 10, p_dropout=0.5)], MBS, seed=seed, backend=backend)


def _conv_net(act=sigmoid, seed=0, backend="reference"):
    # non-square kernel and pool, a border the pool ignores: 7x8 -conv 3x2-> 5x7 -pool 2x3-> 2x2
    return Network([ConvPoolLayer((3, 2, 3, 2), (MBS, 2, 7, 8), (2, 3), act),
                    FullyConnectedLayer(3 * 2 * 2, 5, act, p_dropout=0.5),
                    SoftmaxLayer(5, 10, p_dropout=0.5)], MBS, seed=seed, backend=backend)


def _randomise_softmax(net, seed=1):
    """The SoftmaxLayer starts at zero, which would zero every earlier layer's weight
    gradient; random values make every gradient non-trivial."""
    r = np.random.default_rng(seed)
    w, b = net.params[-2], net.params[-1]
    w[...] = r.normal(0.0, 0.5, w.shape)
    b[...] = r.normal(0.0, 0.5, b.shape)


def _data(n, n_in, seed=2):
    r = np.random.default_rng(seed)
    x = r.random((n,) + tuple(np.atleast_1d(n_in))).astype(np.float32)
    return x, r.integers(0, 10, n)


NETS = {"fc": (_fc_net, 12), "conv": (_conv_net, (2, 7, 8)),
        "conv-relu": (lambda backend: _conv_net(ReLU, backend=backend), (2, 7, 8)),
        "conv-tanh": (lambda backend: _conv_net(tanh, backend=backend), (2, 7, 8))}
BACKENDS = ["reference", "native"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", NETS)
def test_inference_scales_inputs_by_keep_probability(kind, backend):
    make, n_in = NETS[kind]
    net = make(backend=backend)
    _randomise_softmax(net)
    x, _ = _data(9, n_in)
    want, _ = _hand_forward(net.layers, _params64(net), x)
    assert_close(net.model.predict_proba(x), want, rtol=1e-5, atol=1e-6, name="output")


def test_inference_softmax_of_scaled_hidden_layer():
    """The formula of the brief, written out: softmax(((1 - p) h) @ w + b)."""
    net = _fc_net()
    _randomise_softmax(net)
    x, _ = _data(5, 12)
    (w1, b1), (w2, b2) = _params64(net)
    h = 1.0 / (1.0 + np.exp(-((0.5 * x.astype(np.float64)) @ w1 + b1)))
    want = _softmax((0.5 * h) @ w2 + b2)
    assert_close(net.model.predict_proba(x), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_batches", [1, 3])
@pytest.mark.parametrize("kind", NETS)
def test_sgd_matches_hand_computation(kind, n_batches, backend):
    """One epoch of SGD with lmbda > 0: w -= eta (grad + lmbda / n_batches w),
    b -= eta grad_b, mini-batches in the given order, dropout masks unscaled.
    The reference backend is the one the semantics are defined on; the native one
    (which trains the book's presets) must agree."""
    make, n_in = NETS[kind]
    net = make(backend=backend)
    _randomise_softmax(net)
    x, y = _data(MBS * n_batches, n_in)
    eta, lmbda = 0.5, 2.0
    replay = copy.deepcopy(net.model.rng)
    want = _hand_sgd(net, x, y, MBS, eta, lmbda, replay)
    net.SGD((x, y), 1, MBS, eta, (x, y), lmbda=lmbda, verbose=False)
    got = _params64(net)
    for i, ((gw, gb), (ww, wb)) in enumerate(zip(got, want)):
        assert_close(gw, ww, rtol=1e-4, atol=1e-6, name=f"layer {i} w")
        assert_close(gb, wb, rtol=1e-4, atol=1e-6, name=f"layer {i} b")


@pytest.mark.parametrize("n_batches", [1, 3])
def test_decay_alone_is_lmbda_over_number_of_batches(n_batches):
    """Zero inputs give the first layer a zero weight gradient, so its weights only
    decay: by (1 - eta lmbda / n_batches) per step. With one batch the zero
    softmax layer also stops any gradient reaching the first layer's biases, which
    (drawn from N(0, 1)) must then stay exactly as they were: no decay."""
    net = _fc_net()
    (w0, b0), _ = _params64(net)
    x = np.zeros((MBS * n_batches, 12), dtype=np.float32)
    y = np.zeros(MBS * n_batches, dtype=np.int64)
    eta, lmbda = 0.1, 3.0
    net.SGD((x, y), 1, MBS, eta, (x, y), lmbda=lmbda, verbose=False)
    (w1, b1), _ = _params64(net)
    assert_close(w1, w0 * (1.0 - eta * lmbda / n_batches) ** n_batches, rtol=1e-6, atol=0,
                 name="decayed w")
    if n_batches == 1:
        np.testing.assert_array_equal(b1, b0)


def test_dropout_masks_are_drawn_without_rescaling():
    """The training output for one batch is the hand forward pass with the replayed
    masks and no 1/(1-p) factor."""
    net = _fc_net()
    _randomise_softmax(net)
    x, y = _data(MBS, 12)
    replay = copy.deepcopy(net.model.rng)
    masks = _draw_masks(replay, net.layers, MBS)
    assert 0 < masks[0].mean() < 1
    want, _ = _hand_forward(net.layers, _params64(net), x, masks)
    _, out, _ = net.model.loss_and_grads(x, y, rng=net.model.rng)
    assert_close(_softmax(np.asarray(out, dtype=np.float64)), want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# Initial weights

def test_initial_fully_connected_and_softmax_weights():
    net = Network([FullyConnectedLayer(50, 4000), SoftmaxLayer(4000, 10)], 10, seed=3)
    (w, b), (sw, sb) = _params64(net)
    assert w.shape == (50, 4000) and b.shape == (4000,)
    assert abs(w.mean()) < 0.05 * np.sqrt(1 / 4000)
    assert w.std() == pytest.approx(np.sqrt(1 / 4000), rel=0.03)
    assert abs(b.mean()) < 0.1
    assert b.std() == pytest.approx(1.0, rel=0.05)
    assert not sw.any() and not sb.any()


@pytest.mark.parametrize("pool", [(2, 2), (2, 3)])
def test_initial_conv_weights(pool):
    k, kh, kw = 400, 5, 5
    conv = ConvPoolLayer((k, 1, kh, kw), (10, 1, 12, 12), pool)
    out = (8 // pool[0]) * (8 // pool[1]) * k
    net = Network([conv, SoftmaxLayer(out, 10)], 10, seed=4)
    (w, b), (sw, sb) = _params64(net)
    assert w.shape == (k, 1, kh, kw) and b.shape == (k,)
    want_std = np.sqrt(pool[0] * pool[1] / (k * kh * kw))
    assert w.std() == pytest.approx(want_std, rel=0.04)
    assert abs(w.mean()) < 0.1 * want_std
    assert abs(b.mean()) < 0.2
    assert b.std() == pytest.approx(1.0, rel=0.15)
    assert not sw.any() and not sb.any()


def test_seed_chooses_the_initial_weights():
    a, b, c = _fc_net(seed=5), _fc_net(seed=5), _fc_net(seed=6)
    for pa, pb in zip(a.params, b.params):
        np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(a.params[0], c.params[0])


# ---------------------------------------------------------------------------
# ConvPoolLayer: act(maxpool(conv(x)) + b)

@pytest.mark.parametrize("act", [sigmoid, tanh, ReLU, linear], ids=lambda f: f.__name__)
def test_conv_pool_layer_forward(act):
    net = _conv_net(act)
    x, _ = _data(MBS, (2, 7, 8))
    (w, b) = _params64(net)[0]
    want = _act(_NAMES[act],
                _maxpool(_conv(x.astype(np.float64), w), (2, 3)) + b[None, :, None, None])
    # the fastcnn layers network3 built for layer 0 are the first three of the model
    out = x
    for layer in net.model.layers[:3]:
        out, _ = layer.forward(net.model.ops, out)
    assert out.shape == (MBS, 3, 2, 2)
    assert_close(out, want, rtol=1e-5, atol=1e-6)


def test_activation_functions_work_on_arrays():
    z = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(sigmoid(z), 1 / (1 + np.exp(-z)))
    np.testing.assert_allclose(tanh(z), np.tanh(z))
    np.testing.assert_array_equal(ReLU(z), [0.0, 0.0, 3.0])
    np.testing.assert_array_equal(linear(z), z)
