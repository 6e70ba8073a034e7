"""fastcnn.network3 against the semantics of the book's network3.py (chapter 6 of
Nielsen's "Neural Networks and Deep Learning").

The expected values are computed here in float64 NumPy, from the network's own
parameters (net.params, the book's list [w, b, w, b, ...]) but without fastcnn's
layers: convolution, max-pooling, dropout without rescaling, (1 - p) scaling at
inference, log-likelihood, L2 decay of lmbda / num_training_batches on weights only.
The training-time dropout masks are recovered by replaying the model's Generator
(Dropout draws `rng.random(shape, dtype=float32) < 1 - p`, layer by layer).
"""
from __future__ import annotations

import copy
import gzip
import hashlib
import pickle
import re
import runpy
import tracemalloc

import numpy as np
import pytest
from helpers import assert_close

import fastcnn
from fastcnn import network3
from fastcnn.network3 import (ConvPoolLayer, FullyConnectedLayer, Network, ReLU, SoftmaxLayer,
                              linear, load_data_shared, sigmoid, size, tanh)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Training tests are timed; one thread avoids contention with other jobs."""
    before = fastcnn.get_num_threads()
    fastcnn.set_num_threads(1)
    yield
    fastcnn.set_num_threads(before)


@pytest.fixture(scope="module")
def mnist():
    return load_data_shared()


def _head(data, n):
    return data[0][:n], data[1][:n]


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


# ---------------------------------------------------------------------------
# Order of mini-batches

def _train_copy(init, seed, data, epochs=2, backend="native"):
    net = Network([FullyConnectedLayer(784, 30), SoftmaxLayer(30, 10)], 10, seed=seed,
                  backend=backend)
    for p, q in zip(net.params, init.params):
        p[...] = q
    net.SGD(data, epochs, 10, 0.5, data, verbose=False)
    return net


def test_no_shuffling_training_follows_the_given_order(mnist):
    """Same initial weights, no dropout: the seed only could change the order (it
    picks nothing else in training), so different seeds give the same result; a
    permuted training set gives a different one."""
    data = _head(mnist[0], 300)
    init = Network([FullyConnectedLayer(784, 30), SoftmaxLayer(30, 10)], 10, seed=0)
    a = _train_copy(init, 1, data)
    b = _train_copy(init, 2, data)
    for pa, pb in zip(a.params, b.params):
        np.testing.assert_array_equal(pa, pb)
    perm = np.random.default_rng(0).permutation(300)
    c = _train_copy(init, 1, (data[0][perm], data[1][perm]))
    assert not np.allclose(a.params[0], c.params[0], rtol=0, atol=1e-6)


def test_partial_mini_batch_is_dropped(mnist):
    x, y = _head(mnist[0], 305)
    init = Network([FullyConnectedLayer(784, 30), SoftmaxLayer(30, 10)], 10, seed=0)
    a = _train_copy(init, 0, (x, y), epochs=1)
    b = _train_copy(init, 0, (x[:300], y[:300]), epochs=1)
    for pa, pb in zip(a.params, b.params):
        np.testing.assert_array_equal(pa, pb)
    # accuracy, too, counts whole mini-batches only
    assert a.accuracy((x[:19], y[:19])) == a.accuracy((x[:10], y[:10]))


# ---------------------------------------------------------------------------
# The printout of a chapter-6 script

SCRIPT = """\
from fastcnn import network3
from fastcnn.network3 import Network
from fastcnn.network3 import ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer

training_data, validation_data, test_data = network3.load_data_shared()
# the book trains on all of it for 60 epochs; a slice keeps the test short
training_data = (training_data[0][:1500], training_data[1][:1500])
validation_data = (validation_data[0][:500], validation_data[1][:500])
test_data = (test_data[0][:500], test_data[1][:500])
mini_batch_size = 10
net = Network([
        ConvPoolLayer(image_shape=(mini_batch_size, 1, 28, 28),
                      filter_shape=(20, 1, 5, 5),
                      poolsize=(2, 2)),
        FullyConnectedLayer(n_in=20*12*12, n_out=100),
        SoftmaxLayer(n_in=100, n_out=10)], mini_batch_size)
net.SGD(training_data, EPOCHS, mini_batch_size, ETA,
            validation_data, test_data)
"""

PCT = r"(\d+\.\d\d)%"


def _expected_lines(history, n_batches, epochs):
    """network3's printout, built from the History's per-epoch figures."""
    lines, best, best_it, best_test = [], -1.0, None, None
    val = history.history["val_accuracy"]
    test = history.history["test_accuracy"]
    for e in range(epochs):
        for it in range(e * n_batches, (e + 1) * n_batches):
            if it % 1000 == 0:
                lines.append(f"Training mini-batch number {it}")
        lines.append(f"Epoch {e}: validation accuracy {val[e]:.2%}")
        if val[e] >= best:
            best, best_it, best_test = val[e], n_batches * (e + 1) - 1, test[e]
            lines.append("This is the best validation accuracy to date.")
            lines.append(f"The corresponding test accuracy is {best_test:.2%}")
    lines.append("Finished training network.")
    lines.append(f"Best validation accuracy of {best:.2%} obtained at iteration {best_it}")
    lines.append(f"Corresponding test accuracy of {best_test:.2%}")
    return lines


@pytest.mark.parametrize("eta", [0.1, 1e-30], ids=["eta0.1", "eta-tiny"])
def test_chapter6_script_printout(tmp_path, capsys, eta, mnist):
    """A book script with only its import changed prints network3's lines; the
    numbers are the History's. With eta=0.1 (seed 0) the second epoch is worse than
    the first, so it prints no "best" lines; eta=1e-30 leaves the weights as they
    were, so every epoch ties the best (ties count as best, as in network3)."""
    epochs = 2
    script = tmp_path / "conv.py"
    script.write_text(SCRIPT.replace("EPOCHS", str(epochs)).replace("ETA", repr(eta)))
    capsys.readouterr()
    net = runpy.run_path(str(script), run_name="__main__")["net"]
    lines = capsys.readouterr().out.splitlines()
    hist = net.history
    n_batches = 1500 // 10

    assert lines == _expected_lines(hist, n_batches, epochs)
    # the summary agrees with the History's own bookkeeping ...
    assert hist.epochs == epochs
    best_line = lines[-2]
    m = re.fullmatch(r"Best validation accuracy of " + PCT + r" obtained at iteration (\d+)",
                     best_line)
    assert m, best_line
    assert m.group(1) == f"{100 * hist.best_val_accuracy:.2f}"
    assert int(m.group(2)) == n_batches * hist.best_epoch - 1
    assert lines[-1] == f"Corresponding test accuracy of {hist.test_accuracy:.2%}"
    # ... and with accuracies measured afresh after training
    assert net.accuracy(_head(mnist[1], 500)) == hist.history["val_accuracy"][-1]
    if hist.best_epoch == epochs:
        assert net.accuracy(_head(mnist[2], 500)) == hist.test_accuracy
    if eta < 1e-20:
        assert len(set(hist.history["val_accuracy"])) == 1


def test_mini_batch_counter_every_1000(capsys, mnist):
    """With mini-batches of one image, 1100 per epoch: the counter lines at 0, 1000
    (epoch 0) and 2000 (epoch 1) come before each epoch's accuracy."""
    net = Network([SoftmaxLayer(784, 10)], 1)
    hist = net.SGD(_head(mnist[0], 1100), 2, 1, 0.05, _head(mnist[1], 200),
                   _head(mnist[2], 200))
    lines = capsys.readouterr().out.splitlines()
    assert lines == _expected_lines(hist, 1100, 2)
    counters = [ln for ln in lines if ln.startswith("Training mini-batch number")]
    assert counters == [f"Training mini-batch number {i}" for i in (0, 1000, 2000)]
    assert lines.index(counters[1]) < lines.index(next(ln for ln in lines
                                                        if ln.startswith("Epoch 0:")))


def test_verbose_false_prints_nothing_and_returns_history(capsys, mnist):
    net = Network([SoftmaxLayer(784, 10)], 10)
    hist = net.SGD(_head(mnist[0], 200), 1, 10, 0.1, _head(mnist[1], 100), verbose=False)
    assert capsys.readouterr().out == ""
    assert hist.epochs == 1 and hist.best_epoch == 1 and hist.test_accuracy is None


def test_without_test_data_no_test_lines(capsys, mnist):
    net = Network([SoftmaxLayer(784, 10)], 10)
    net.SGD(_head(mnist[0], 200), 1, 10, 0.1, _head(mnist[1], 100))
    out = capsys.readouterr().out
    assert "test accuracy" not in out
    assert out.splitlines()[-2] == "Finished training network."


def test_sgd_continues_an_interrupted_run(capsys, mnist):
    """SGD(..., initial_epoch=1, history=h) after one epoch: the same weights, History
    and printout (epochs 1 and 2, then the summary of all three) as one call for
    three epochs; the dropout masks continue from the model's Generator."""
    def net():
        return Network([FullyConnectedLayer(784, 30, p_dropout=0.5),
                        SoftmaxLayer(30, 10, p_dropout=0.5)], 10, seed=3)
    data, val, test = _head(mnist[0], 300), _head(mnist[1], 100), _head(mnist[2], 100)
    ref = net()
    h_ref = ref.SGD(data, 3, 10, 0.2, val, test, lmbda=0.5)
    ref_lines = capsys.readouterr().out.splitlines()

    cont = net()
    h = cont.SGD(data, 3, 10, 0.2, val, test, lmbda=0.5, verbose=False,
                 callbacks=[_StopAfter(1)])
    assert h.epochs == 1 and capsys.readouterr().out == ""
    opt = cont.model.optimizer
    h2 = cont.SGD(data, 3, 10, 0.2, val, test, lmbda=0.5, initial_epoch=1, history=h)
    lines = capsys.readouterr().out.splitlines()
    assert h2 is h and cont.model.optimizer is opt and opt.steps == 3 * 30
    assert lines == ref_lines[ref_lines.index(next(ln for ln in ref_lines
                                                   if ln.startswith("Epoch 1:"))):]
    for k in h_ref.history:
        if k != "seconds":
            assert h.history[k] == h_ref.history[k]
    assert (h.best_epoch, h.test_accuracy) == (h_ref.best_epoch, h_ref.test_accuracy)
    for p, q in zip(cont.params, ref.params):
        np.testing.assert_array_equal(p, q)


class _StopAfter(fastcnn.callbacks.Callback):
    def __init__(self, epochs):
        self.epochs = epochs

    def on_epoch_end(self, model, epoch, logs):
        if epoch == self.epochs:
            model.stop_training = True


# ---------------------------------------------------------------------------
# load_data_shared and size

def test_load_data_shared_shapes(mnist):
    want = [50000, 10000, 10000]
    for (x, y), n in zip(mnist, want):
        assert x.shape == (n, 784) and x.dtype == np.float32
        assert y.shape == (n,) and y.dtype.kind == "i"
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.99
        assert set(np.unique(y)) == set(range(10))
        assert size((x, y)) == n


def test_load_data_shared_expanded_uint8(mnist):
    (xs, ys), va, te = load_data_shared(expanded=True, dtype="uint8")
    assert xs.shape == (250000, 784) and xs.dtype == np.uint8 and size((xs, ys)) == 250000
    # shuffled once, as the book's expand_mnist.py does; undo the fixed permutation
    assert not np.array_equal(ys, np.repeat(mnist[0][1], 5))
    order = np.random.default_rng(network3.EXPANDED_SHUFFLE_SEED).permutation(250000)
    x, y = np.empty_like(xs), np.empty_like(ys)
    x[order], y[order] = xs, ys
    np.testing.assert_array_equal(y, np.repeat(mnist[0][1], 5))
    # row 5 i is image i itself; rows 5 i + 1..4 are its shifts (same ink, moved)
    np.testing.assert_array_equal(x[0::5][:100] / np.float32(255), mnist[0][0][:100])
    up = x[1].reshape(28, 28)
    np.testing.assert_array_equal(up[:-1], x[0].reshape(28, 28)[1:])
    assert va[0].shape == (10000, 784) and te[0].shape == (10000, 784)
    assert va[0].dtype == np.uint8


# SHA-256 of the expanded uint8 training set (images, int64 labels) as first
# published: the same permutation and order of shifts keep earlier results valid.
EXPANDED_SHA256 = ("de1d5291b929b6acc55fe44ce039750f1357a95172d9f30f2149301cdbec368a",
                   "25967c0cd42bb156642860cde3176983c1d6aae05d20879e7de677c5e0d9d617")


def test_load_data_shared_expanded_is_unchanged_and_holds_one_copy():
    tracemalloc.start()
    try:
        (xs, ys), _, _ = load_data_shared(expanded=True, dtype="uint8")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (hashlib.sha256(xs.tobytes()).hexdigest(),
            hashlib.sha256(ys.tobytes()).hexdigest()) == EXPANDED_SHA256
    # The set itself is 196 MB; the 50000 source images, validation and test sets
    # add 55 MB. Building it unshuffled and then indexing would need 196 MB more.
    assert xs.nbytes == 196_000_000
    assert peak < 300e6, f"load_data_shared(expanded=True) peaked at {peak / 1e6:.0f} MB"
    assert xs.base is not None and xs.base.nbytes == xs.nbytes  # a view, not a copy


def test_load_data_shared_from_book_pickle(tmp_path):
    r = np.random.default_rng(0)
    sets = tuple((r.random((n, 784)).astype(np.float32), r.integers(0, 10, n))
                 for n in (6, 3, 4))
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(sets, f)
    got = load_data_shared(str(path))
    for (gx, gy), (x, y) in zip(got, sets):
        np.testing.assert_array_equal(gx, x)
        np.testing.assert_array_equal(gy, y)
        assert gx.dtype == np.float32 and size((gx, gy)) == len(x)
    (exs, eys), _, _ = load_data_shared(str(path), expanded=True)
    assert exs.shape == (30, 784)
    order = np.random.default_rng(network3.EXPANDED_SHUFFLE_SEED).permutation(30)
    ex, ey = np.empty_like(exs), np.empty_like(eys)
    ex[order], ey[order] = exs, eys
    np.testing.assert_array_equal(ex[0::5], sets[0][0])
    np.testing.assert_array_equal(ey, np.repeat(sets[0][1], 5))


def test_load_data_shared_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_data_shared(str(tmp_path / "nowhere"))


# ---------------------------------------------------------------------------
# Bad input

def test_n_in_mismatch_names_the_layer():
    with pytest.raises(ValueError, match=r"layer 1 \(SoftmaxLayer\(n_in=99.*\(100,\)"):
        Network([FullyConnectedLayer(784, 100), SoftmaxLayer(99, 10)], 10)
    with pytest.raises(ValueError, match=r"layer 1 \(FullyConnectedLayer.*\(2880,\)"):
        Network([ConvPoolLayer((20, 1, 5, 5), (10, 1, 28, 28)),
                 FullyConnectedLayer(20 * 12 * 11, 100), SoftmaxLayer(100, 10)], 10)


def test_conv_image_shape_mismatch_names_the_layer():
    with pytest.raises(ValueError, match=r"layer 1 .*expects input \(20, 13, 13\)"):
        Network([ConvPoolLayer((20, 1, 5, 5), (10, 1, 28, 28)),
                 ConvPoolLayer((40, 20, 5, 5), (10, 20, 13, 13)),
                 SoftmaxLayer(40 * 4 * 4, 10)], 10)
    with pytest.raises(ValueError, match=r"expects 20 input feature maps.* has 1"):
        ConvPoolLayer((40, 20, 5, 5), (10, 1, 12, 12))


def test_image_shape_batch_must_equal_mini_batch_size():
    with pytest.raises(ValueError, match=r"layer 0: image_shape \(20, 1, 28, 28\).*10"):
        Network([ConvPoolLayer((20, 1, 5, 5), (20, 1, 28, 28)),
                 SoftmaxLayer(20 * 12 * 12, 10)], 10)


@pytest.mark.parametrize("fn", [np.tanh, lambda z: z, "sigmoid"], ids=["np.tanh", "lambda", "str"])
def test_unknown_activation_fn(fn):
    with pytest.raises(ValueError, match="activation_fn must be one of network3's"):
        FullyConnectedLayer(10, 10, fn)
    with pytest.raises(ValueError, match="ConvPoolLayer: activation_fn"):
        ConvPoolLayer((2, 1, 3, 3), (10, 1, 8, 8), activation_fn=fn)


@pytest.mark.parametrize("p", [1, 1.0, -0.1, 1.5, True, "0.5", None])
def test_bad_p_dropout(p):
    with pytest.raises(ValueError, match=r"p_dropout must be a number in \[0, 1\)"):
        FullyConnectedLayer(10, 10, p_dropout=p)
    with pytest.raises(ValueError, match=r"p_dropout"):
        SoftmaxLayer(10, 10, p_dropout=p)


def test_last_layer_must_be_softmax():
    with pytest.raises(ValueError, match="last layer must be a SoftmaxLayer"):
        Network([FullyConnectedLayer(784, 10)], 10)
    with pytest.raises(TypeError, match=r"layers\[0\] must be a network3 layer"):
        Network([fastcnn.layers.Dense(10), SoftmaxLayer(10, 10)], 10)
    with pytest.raises(ValueError, match="at least one layer"):
        Network([], 10)


@pytest.mark.parametrize("mbs", [0, -1, 2.0, True])
def test_bad_mini_batch_size(mbs):
    with pytest.raises(ValueError, match="mini_batch_size must be a positive integer"):
        Network([SoftmaxLayer(784, 10)], mbs)


def test_sgd_with_other_mini_batch_size(mnist):
    net = Network([SoftmaxLayer(784, 10)], 10)
    with pytest.raises(ValueError, match="mini_batch_size 20 differs from the network's 10"):
        net.SGD(_head(mnist[0], 100), 1, 20, 0.1, _head(mnist[1], 100))


def test_sgd_bad_arguments(mnist):
    net = Network([SoftmaxLayer(784, 10)], 10)
    tr, va = _head(mnist[0], 100), _head(mnist[1], 100)
    with pytest.raises(ValueError, match="lmbda must be a number >= 0"):
        net.SGD(tr, 1, 10, 0.1, va, lmbda=-1.0)
    with pytest.raises(ValueError, match="training_data holds 5 examples, fewer than one"):
        net.SGD(_head(tr, 5), 1, 10, 0.1, va)
    with pytest.raises(ValueError, match="validation_data must be a pair"):
        net.SGD(tr, 1, 10, 0.1, None)
    with pytest.raises(ValueError, match="epochs"):
        net.SGD(tr, 0, 10, 0.1, va)
    with pytest.raises(ValueError, match="lr"):
        net.SGD(tr, 1, 10, 0.0, va)


def test_bad_shapes_and_sizes():
    with pytest.raises(ValueError, match="filter_shape must be a tuple of 4 positive"):
        ConvPoolLayer((20, 1, 5), (10, 1, 28, 28))
    with pytest.raises(ValueError, match="poolsize must be a tuple of 2 positive"):
        ConvPoolLayer((20, 1, 5, 5), (10, 1, 28, 28), (0, 2))
    with pytest.raises(ValueError, match=r"\(n_in, n_out\) must be a tuple of 2 positive"):
        FullyConnectedLayer(0, 10)
