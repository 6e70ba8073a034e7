"""The training stack (layers, losses, Sequential, optimizers, callbacks, Ensemble).

Gradients of whole networks are checked by central finite differences on the
float64 reference backend; the native backend is then checked against that
oracle for outputs, losses, gradients and a few epochs of training. Expected
values (shapes, parameter counts, learning-rate schedules) are worked out here
by hand, independently of the code under test."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers import assert_close

import fastcnn
from fastcnn import Ensemble, Sequential, optim
from fastcnn import layers as L
from fastcnn.callbacks import Callback, EarlyStopping, ReduceLROnPlateau, StepLR
from fastcnn.nn.steps import LayerStep


@pytest.fixture(autouse=True)
def one_thread():
    """Train on one thread: the machine is shared with other jobs, and two OpenMP
    threads competing for two busy cores are many times slower. Tests that take the
    `threads` fixture still run with 1 and 2 (it is set up after this one)."""
    before = fastcnn.get_num_threads()
    fastcnn.set_num_threads(1)
    yield
    fastcnn.set_num_threads(before)


def _data(shape, n, classes, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + shape), rng.integers(0, classes, n)


def _twin(model, dtype="float64", backend="reference"):
    """The same layers and parameters in another dtype / backend."""
    layers = [L.from_config(type(layer).__name__, layer.config()) for layer in model.layers]
    twin = Sequential(layers, input_shape=model.input_shape, backend=backend, dtype=dtype)
    for mine, theirs in zip(model.layers, twin.layers):
        for name, p in mine.params.items():
            theirs.params[name][...] = p
    return twin


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
    """(7,) -> dense 6 tanh -> dense 5 -> sigmoid -> dense 4 relu -> tanh -> dense."""
    return [L.Dense(6, activation="tanh"), L.Dense(5), L.Sigmoid(),
            L.Dense(4, activation="relu", init="he"), L.Tanh(), L.Dense(classes, activation=head)]


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


def test_shuffle_gives_a_new_order_each_epoch_from_the_seed():
    x = np.arange(10, dtype=np.float64).reshape(10, 1) * np.ones((1, 3))
    y = np.arange(10) % 2

    def orders(shuffle, seed):
        seen = []
        model = Sequential([L.Dense(2, activation="softmax")], input_shape=(3,),
                           backend="reference", dtype="float64")
        model.fit(x, y, epochs=3, batch_size=4, shuffle=shuffle, seed=seed, verbose=0,
                  augment=lambda xb, rng: seen.extend(xb[:, 0].astype(int)) or xb)
        return [seen[i:i + 10] for i in (0, 10, 20)]

    first, again, other = orders(True, 5), orders(True, 5), orders(True, 6)
    assert first == again and first != other
    assert all(sorted(o) == list(range(10)) for o in first + other)
    assert first[0] != first[1] != first[2]
    assert orders(False, 5) == [list(range(10))] * 3


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


OPTIMIZERS = [
    lambda: optim.SGD(0.1),
    lambda: optim.SGD(0.05, momentum=0.9, weight_decay=0.01),
    lambda: optim.SGD(0.05, momentum=0.5, nesterov=True),
    lambda: optim.Adam(0.01, weight_decay=0.001),
    lambda: optim.RMSprop(0.005),
    lambda: optim.Adagrad(0.05),
]


@pytest.mark.parametrize("make_opt", OPTIMIZERS, ids=["sgd", "momentum", "nesterov", "adam",
                                                      "rmsprop", "adagrad"])
def test_training_agrees_between_backends(make_opt):
    layers = [L.Conv2D(3, 3, stride=2, activation="tanh"), L.AvgPool2D(2),
              L.Dropout(0.2), L.Dense(4, activation="softmax")]
    native = Sequential(layers, input_shape=(1, 9, 10), seed=4)
    ref = _twin(native)
    x, y = _data((1, 9, 10), 23, 4, seed=1)       # 23 = 3 batches of 7 and one of 2
    kw = dict(epochs=3, batch_size=7, shuffle=True, seed=9, verbose=0)
    h_native = native.fit(x.astype(np.float32), y, optimizer=make_opt(), **kw)
    h_ref = ref.fit(x, y, optimizer=make_opt(), **kw)
    assert h_native.epochs == h_ref.epochs == 3
    assert native.optimizer.steps == ref.optimizer.steps == 12
    assert_close(h_native.history["loss"], h_ref.history["loss"], rtol=1e-4, name="loss")
    for (p, _), (q, _) in zip(native.parameters(), ref.parameters()):
        assert p.dtype == np.float32
        assert_close(p, q, rtol=1e-3, atol=1e-5, name="parameter after 3 epochs")
    for s, t in zip(native.optimizer.state, ref.optimizer.state):
        for k in s:
            assert_close(s[k], t[k], rtol=1e-3, atol=1e-6, name=f"optimizer {k}")


def _by_hand(opt, p, g, st, t, decayed):
    """One update of the README's rules, in NumPy; st holds the state arrays."""
    g = g + opt.weight_decay * p if decayed else g
    if isinstance(opt, optim.SGD):
        st["v"] = opt.momentum * st.get("v", 0) + g
        return p - opt.lr * ((g + opt.momentum * st["v"]) if opt.nesterov else st["v"])
    st["m"] = opt.beta1 * st.get("m", 0) + (1 - opt.beta1) * g
    st["s"] = opt.beta2 * st.get("s", 0) + (1 - opt.beta2) * g * g
    m_hat, s_hat = st["m"] / (1 - opt.beta1 ** t), st["s"] / (1 - opt.beta2 ** t)
    return p - opt.lr * m_hat / (np.sqrt(s_hat) + opt.eps)


@pytest.mark.parametrize("make_opt", [
    lambda: optim.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.05),
    lambda: optim.SGD(0.2, momentum=0.5, weight_decay=0.01),
    lambda: optim.Adam(0.01, beta1=0.8, beta2=0.9, weight_decay=0.02),
], ids=["nesterov", "momentum", "adam"])
def test_fit_applies_the_update_rule(make_opt):
    """fit = loss_and_grads + the optimizer's rule (weight decay on weights only)."""
    model = Sequential([L.Dense(4, activation="tanh", init="book"),
                        L.Dense(3, activation="softmax", init="book")], input_shape=(5,),
                       backend="reference", dtype="float64", seed=6)
    twin = _twin(model)
    x, y = _data((5,), 6, 3)
    model.fit(x, y, epochs=3, batch_size=6, shuffle=False, optimizer=make_opt(), verbose=0)
    opt, states = make_opt(), {}
    for t in (1, 2, 3):
        grads = twin.loss_and_grads(x, y)[2]
        for i, layer in enumerate(twin.layers):
            for name, p in layer.params.items():
                st = states.setdefault((i, name), {})
                p[...] = _by_hand(opt, p, grads[i][name], st, t, name == "w")
    for (p, _), (q, _) in zip(model.parameters(), twin.parameters()):
        assert_close(p, q, rtol=1e-12, atol=1e-14, name="parameter after 3 steps")


def test_backend_is_one_word():
    x, _ = _data((2, 10, 10), 17, 5, seed=3)
    def make(backend):
        return Sequential([L.Conv2D(4, 3, activation="relu"), L.MaxPool2D(2),
                           L.Dense(5, activation="softmax")], input_shape=(2, 10, 10),
                          backend=backend, seed=12)
    native, ref = make("native"), make("reference")
    for (p, _), (q, _) in zip(native.parameters(), ref.parameters()):
        assert np.array_equal(p, q)                 # initial draws do not depend on it
    assert native.ops is fastcnn.ops and ref.ops is fastcnn.reference
    probs = native.predict_proba(x.astype(np.float32))
    assert_close(probs, ref.predict_proba(x.astype(np.float32)), rtol=1e-5, atol=1e-6)
    top2 = np.sort(probs, axis=1)[:, -2:]
    assert np.all(top2[:, 1] - top2[:, 0] > 1e-4)  # no near-ties, so argmax is stable
    assert np.array_equal(native.predict(x.astype(np.float32)), ref.predict(x.astype(np.float32)))
    ref.backend = "native"                          # switching an existing model
    assert np.array_equal(ref.predict_proba(x.astype(np.float32)), probs)


# ---------------------------------------------------------------------------
# Real data

def test_small_net_learns_mnist():
    (xt, yt), _, (xs, ys) = fastcnn.datasets.load_mnist(dtype="uint8")
    model = Sequential([L.Conv2D(8, 5, activation="relu"), L.MaxPool2D(2),
                        L.Dense(10, activation="softmax")], input_shape=(1, 28, 28), seed=1)
    history = model.fit(xt[:3000], yt[:3000], epochs=3, batch_size=10,
                        optimizer=optim.SGD(0.1), test_data=(xs[:1000], ys[:1000]),
                        seed=1, verbose=0)
    result = model.evaluate(xs[:1000], ys[:1000])
    assert result["accuracy"] > 0.90, result       # 0.94 when written; chance is 0.1
    assert history.history["test_accuracy"][-1] == result["accuracy"]
    assert history.history["loss"][-1] < history.history["loss"][0]


# ---------------------------------------------------------------------------
# Reporting

def test_summary_shapes_and_parameter_counts(capsys):
    layers = [L.Conv2D(6, (3, 5), stride=(2, 1), padding=(1, 2), activation="relu"),
              L.MaxPool2D((2, 3)), L.Conv2D(5, 2, use_bias=False), L.Flatten(),
              L.Dropout(0.5), L.Dense(7, activation="tanh"), L.Dense(4, activation="softmax")]
    model = Sequential(layers, input_shape=(3, 13, 10))
    # by hand: conv (13 + 2 - 3) // 2 + 1 = 7, (10 + 4 - 5) // 1 + 1 = 10; pool 7 // 2 = 3,
    # 10 // 3 = 3; conv 2x2 valid 2, 2; 5*2*2 = 20 features
    shapes = [(6, 7, 10), (6, 3, 3), (5, 2, 2), (20,), (20,), (7,), (4,)]
    counts = [6 * 3 * 3 * 5 + 6, 0, 5 * 6 * 2 * 2, 0, 0, 20 * 7 + 7, 7 * 4 + 4]
    assert [layer.output_shape for layer in model.layers] == shapes
    assert [layer.n_params() for layer in model.layers] == counts
    assert model.n_params() == sum(counts) == 575

    text = model.summary()
    assert capsys.readouterr().out.strip() == text.strip()
    assert model.summary(print_fn=None) == text and capsys.readouterr().out == ""
    lines = text.splitlines()
    assert "(None, 3, 13, 10)" in text                 # the input
    rows = [line for line in lines if line.startswith(tuple(type(x).__name__ for x in layers))]
    assert len(rows) == len(layers)
    for row, layer, shape, count in zip(rows, layers, shapes, counts):
        assert row.startswith(type(layer).__name__)
        assert str((None,) + shape) in row, row
        assert row.rstrip().endswith(f"{count:,}"), row
    assert re.search(r"Total params: 575\b", text)

    r = repr(model)
    for layer in layers:
        assert type(layer).__name__ in r
    assert "(3, 13, 10)" in r and "native" in r
    assert "object at 0x" not in r and "array(" not in r


def test_summary_of_unbuilt_model_says_so():
    with pytest.raises(ValueError, match="not built"):
        Sequential([L.Dense(3)]).summary(print_fn=None)


# ---------------------------------------------------------------------------
# Callbacks and History

def _tiny(seed=0, lr=0.1):
    model = Sequential([L.Dense(5, activation="tanh"), L.Dense(3, activation="softmax")],
                       input_shape=(4,), seed=seed)
    x, y = _data((4,), 30, 3, seed=seed)
    return model, x.astype(np.float32), y, optim.SGD(lr)


def test_early_stopping_stops():
    model, x, y, opt = _tiny()
    # an improvement must exceed 10 in loss: after the first epoch none does
    h = model.fit(x, y, epochs=20, optimizer=opt, verbose=0,
                  callbacks=[EarlyStopping(monitor="loss", patience=2, min_delta=10)])
    assert h.epochs == 3 < 20
    assert h.stop_reason and "early stopping" in h.stop_reason and "loss" in h.stop_reason
    # no stop while the figure keeps improving
    model, x, y, opt = _tiny()
    h = model.fit(x, y, epochs=4, optimizer=opt, verbose=0,
                  callbacks=[EarlyStopping(monitor="loss", patience=1)])
    assert h.epochs == 4 and h.stop_reason is None


def test_early_stopping_needs_the_figure_it_monitors():
    model, x, y, opt = _tiny()
    with pytest.raises(ValueError, match="val_accuracy"):
        model.fit(x, y, optimizer=opt, verbose=0, callbacks=[EarlyStopping()])
    with pytest.raises(ValueError, match="monitor"):
        EarlyStopping(monitor="accuracy_val")
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)


def test_step_lr():
    model, x, y, opt = _tiny(lr=0.2)
    h = model.fit(x, y, epochs=5, optimizer=opt, verbose=0, callbacks=[StepLR(2, gamma=0.5)])
    # the lr in force during each epoch; it halves after epochs 2 and 4
    assert h.history["lr"] == pytest.approx([0.2, 0.2, 0.1, 0.1, 0.05])
    assert model.optimizer.lr == pytest.approx(0.05)
    for bad in (dict(step_size=0), dict(step_size=1, gamma=0), dict(step_size=1, gamma=1.5)):
        with pytest.raises(ValueError):
            StepLR(**bad)


def test_reduce_lr_on_plateau():
    model, x, y, opt = _tiny(lr=0.2)
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_delta=10)
    h = model.fit(x, y, epochs=6, optimizer=opt, verbose=0, callbacks=[cb])
    # epoch 1 sets the best; 2, 3 do not improve -> halve; 4, 5 -> halve again
    assert h.history["lr"] == pytest.approx([0.2, 0.2, 0.2, 0.1, 0.1, 0.05])
    model, x, y, opt = _tiny(lr=0.2)
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10, min_lr=0.15)
    h = model.fit(x, y, epochs=4, optimizer=opt, verbose=0, callbacks=[cb])
    assert h.history["lr"] == pytest.approx([0.2, 0.2, 0.15, 0.15])   # floored at min_lr
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=1.0)


def _scripted_evaluate(model, val_x, accuracies, tests):
    """Replace model.evaluate: validation and test accuracies from the lists."""
    calls = {"val": 0, "test": 0}

    def evaluate(x, y, batch_size=1000, loss=None):
        kind = "val" if x is val_x else "test"
        seq = accuracies if kind == "val" else tests
        value = seq[calls[kind]] if kind == "val" else seq[calls["val"] - 1]
        calls[kind] += 1
        return {"loss": 1.0 - value, "accuracy": value}
    model.evaluate = evaluate
    return calls


def test_history_best_epoch_ties_go_to_the_later_epoch():
    model, x, y, opt = _tiny()
    xv, xt = x[:10].copy(), x[10:20].copy()
    val = [0.5, 0.7, 0.6, 0.7, 0.65]
    test = [0.11, 0.22, 0.33, 0.44, 0.55]           # the test figure of each epoch
    calls = _scripted_evaluate(model, xv, val, test)
    h = model.fit(x, y, epochs=5, optimizer=opt, verbose=0, validation_data=(xv, y[:10]),
                  test_data=(xt, y[10:20]))
    assert h.best_epoch == 4 and h.best_val_accuracy == 0.7
    assert h.test_accuracy == 0.44                  # measured at the best epoch, not the last
    assert h.history["val_accuracy"] == val
    assert h.history["test_accuracy"] == [0.11, 0.22, None, 0.44, None]
    assert calls == {"val": 5, "test": 3}           # test evaluated only at new bests
    assert "best_epoch=4" in repr(h)


def test_history_with_test_data_only():
    model, x, y, opt = _tiny()
    h = model.fit(x, y, epochs=2, optimizer=opt, verbose=0, test_data=(x[:10], y[:10]))
    assert h.best_epoch == 2 and h.best_val_accuracy is None
    assert h.test_accuracy == model.evaluate(x[:10], y[:10])["accuracy"]
    assert "epochs=2" in repr(h)


# ---------------------------------------------------------------------------
# Continuing a run: initial_epoch, history, model.history

def _dropout_net(seed=4):
    """Shuffling and dropout: both draw from the model's Generator."""
    return Sequential([L.Conv2D(3, 3, activation="relu"), L.MaxPool2D(2), L.Dropout(0.4),
                       L.Dense(6, activation="tanh"), L.Dropout(0.3),
                       L.Dense(3, activation="softmax")], input_shape=(1, 8, 8), seed=seed)


def _same_history(h, ref):
    for k in ref.history:
        if k != "seconds":
            assert h.history[k] == ref.history[k], k
    assert (h.best_epoch, h.best_val_accuracy, h.test_accuracy) == \
        (ref.best_epoch, ref.best_val_accuracy, ref.test_accuracy)


def test_fit_continues_from_initial_epoch_exactly():
    x, y = _data((1, 8, 8), 50, 3)
    x = x.astype(np.float32)
    kw = dict(batch_size=8, verbose=0, validation_data=(x[:20], y[:20]),
              test_data=(x[20:40], y[20:40]))
    ref = _dropout_net()
    ref_iters = []

    class Iterations(Callback):
        def __init__(self, seen):
            self.seen = seen

        def on_batch_begin(self, model, iteration):
            self.seen.append(iteration)
    h_ref = ref.fit(x, y, epochs=5, optimizer=optim.Adam(0.01), callbacks=[Iterations(ref_iters)],
                    **kw)

    model, iters = _dropout_net(), []
    h = model.fit(x, y, epochs=2, optimizer=optim.Adam(0.01), callbacks=[Iterations(iters)],
                  **kw)
    h2 = model.fit(x, y, epochs=5, initial_epoch=2, history=h,
                   callbacks=[Iterations(iters)], **kw)   # optimizer=None: continue Adam
    assert h2 is h and h.epochs == 5
    _same_history(h, h_ref)
    assert iters == ref_iters == list(range(5 * 7))       # mini-batches numbered on
    for (p, _), (q, _) in zip(model.parameters(), ref.parameters()):
        np.testing.assert_array_equal(p, q)

    # a History through JSON (what a checkpoint stores) continues just as well
    model = _dropout_net()
    h = model.fit(x, y, epochs=3, optimizer=optim.Adam(0.01), **kw)
    h = fastcnn.callbacks.History.from_dict(json.loads(json.dumps(h.to_dict())))
    model.fit(x, y, epochs=5, initial_epoch=3, history=h, **kw)
    _same_history(h, h_ref)
    np.testing.assert_array_equal(model.layers[-1].params["w"], ref.layers[-1].params["w"])


def test_fit_with_nothing_left_to_do():
    model, x, y, opt = _tiny()
    h = model.fit(x, y, epochs=2, optimizer=opt, verbose=0)
    before = [p.copy() for p, _ in model.parameters()]
    assert model.fit(x, y, epochs=2, initial_epoch=2, history=h, verbose=0) is h
    assert h.epochs == 2 and h.stop_reason is None
    assert all(np.array_equal(p, q) for (p, _), q in zip(model.parameters(), before))


def test_model_history_is_the_history_being_filled():
    model, x, y, opt = _tiny()
    seen = []

    class Look(Callback):
        def on_epoch_end(self, model, epoch, logs):
            seen.append((model.history.epochs, model.history.history["loss"][-1] == logs["loss"]))
    assert model.history is None
    h = model.fit(x, y, epochs=3, optimizer=opt, verbose=0, callbacks=[Look()])
    assert model.history is h and seen == [(1, True), (2, True), (3, True)]


def test_bad_initial_epoch_or_history():
    model, x, y, opt = _tiny()
    h = model.fit(x, y, epochs=2, optimizer=opt, verbose=0)
    for bad, error in ((-1, ValueError), (4, ValueError), (1.0, TypeError), (True, TypeError),
                       ("1", TypeError)):   # a wrong value, or not an integer at all
        with pytest.raises(error, match=re.escape("initial_epoch must be an integer in "
                                                  "[0, epochs] = [0, 3]")):
            model.fit(x, y, epochs=3, initial_epoch=bad, verbose=0)
    with pytest.raises(ValueError, match="history holds 2 epochs, but initial_epoch is 1"):
        model.fit(x, y, epochs=3, initial_epoch=1, history=h, verbose=0)
    with pytest.raises(TypeError, match="history must be a fastcnn History"):
        model.fit(x, y, epochs=3, initial_epoch=2, history=h.history, verbose=0)


def test_history_to_dict_round_trip():
    h = fastcnn.callbacks.History()
    h.history["loss"] = [np.float32(0.5), float("nan")]
    h.history["test_accuracy"] = [0.25, None]
    for k in ("accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        h.history[k] = [np.float64(0.1) / 3, 1 / 7]
    h.best_epoch, h.best_val_accuracy, h.test_accuracy = 2, 1 / 7, np.float64(0.3) / 7
    h.stop_reason = "early stopping"
    back = fastcnn.callbacks.History.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back.history["loss"][0] == 0.5 and np.isnan(back.history["loss"][1])
    assert back.history["test_accuracy"] == [0.25, None]
    assert back.history["val_loss"] == h.history["val_loss"]        # every bit
    assert (back.best_epoch, back.best_val_accuracy, back.test_accuracy, back.stop_reason) == \
        (2, 1 / 7, np.float64(0.3) / 7, "early stopping")
    assert back.epochs == 2
    for bad in ({}, {"history": []}, {"history": {"loss": [1]}},
                dict(h.to_dict(), history=dict(h.to_dict()["history"], loss=[1.0]))):
        with pytest.raises(ValueError, match="not a History"):
            fastcnn.callbacks.History.from_dict(bad)


def test_fit_evaluates_in_small_batches():
    """fit's per-epoch evaluations run FIT_EVAL_BATCH images at a time (less memory
    than evaluate's 1000); the accuracies are those of evaluate(batch_size=1000)."""
    from fastcnn.network import FIT_EVAL_BATCH
    model = _dropout_net()
    x, y = _data((1, 8, 8), 1100, 3)
    x = x.astype(np.float32)
    sizes, real = [], model.evaluate

    def evaluate(xx, yy, batch_size=1000, loss=None):
        sizes.append(batch_size)
        return real(xx, yy, batch_size=batch_size, loss=loss)
    model.evaluate = evaluate
    h = model.fit(x[:100], y[:100], epochs=1, batch_size=10, verbose=0,
                  validation_data=(x[100:], y[100:]), test_data=(x[:600], y[:600]))
    assert FIT_EVAL_BATCH < 1000 and sizes == [FIT_EVAL_BATCH, FIT_EVAL_BATCH]
    assert h.history["val_accuracy"] == [real(x[100:], y[100:])["accuracy"]]
    assert h.test_accuracy == real(x[:600], y[:600])["accuracy"]


# ---------------------------------------------------------------------------
# Divergence

def test_non_finite_loss_stops_training():
    model = Sequential([L.Dense(8, activation="relu"), L.Dense(3, activation="softmax")],
                       input_shape=(6,), seed=0)
    x, y = _data((6,), 40, 3)
    h = model.fit((x * 100).astype(np.float32), y, epochs=5, batch_size=5,
                  optimizer=optim.SGD(1e30), verbose=0)
    assert h.epochs < 5
    assert h.stop_reason is not None and re.search("loss became (nan|-?inf)", h.stop_reason)
    assert all(np.isfinite(v) for v in h.history["loss"])  # only finite batches averaged


def test_non_finite_parameters_are_not_reported_as_success():
    """The last update of the last epoch overflows: the loss that fit saw was
    finite, yet the model it hands back holds Inf/NaN."""
    model = Sequential([L.Dense(5), L.Dense(3, activation="softmax")], input_shape=(7,), seed=0)
    x, y = _data((7,), 20, 3)
    h = model.fit((x * 1e10).astype(np.float32), y, epochs=1, batch_size=20,
                  optimizer=optim.SGD(3e38), verbose=0)
    finite = all(np.isfinite(p).all() for p, _ in model.parameters())
    assert not finite                               # the scenario really overflows
    assert h.stop_reason and "non-finite" in h.stop_reason


def test_divergence_reason_survives_callbacks():
    model = Sequential([L.Dense(8, activation="relu"), L.Dense(3, activation="softmax")],
                       input_shape=(6,), seed=0)
    x, y = _data((6,), 40, 3)
    x = (x * 100).astype(np.float32)
    # the first epoch is fine (tiny lr); the schedule then jumps the lr so that the
    # second epoch diverges; EarlyStopping would also like to stop there
    class Jump(Callback):
        def on_epoch_end(self, model, epoch, logs):
            model.optimizer.lr = 1e30
    h = model.fit(x, y, epochs=4, batch_size=5, optimizer=optim.SGD(1e-30), verbose=0,
                  callbacks=[Jump(), EarlyStopping(monitor="loss", patience=0, min_delta=10)])
    assert h.epochs == 2
    assert "nan" in h.stop_reason.lower() and "early stopping" not in h.stop_reason


# ---------------------------------------------------------------------------
# Inputs

@pytest.mark.parametrize("backend, dtype", [("native", "float32"), ("reference", "float64")])
def test_uint8_pixels_are_scaled(backend, dtype):
    model = Sequential([L.Conv2D(3, 3, activation="sigmoid"), L.MaxPool2D(2),
                        L.Dense(4, activation="softmax")], input_shape=(2, 9, 7),
                       backend=backend, dtype=dtype, seed=2)
    pixels = np.random.default_rng(0).integers(0, 256, (11, 2, 9, 7), dtype=np.uint8)
    scaled = pixels.astype(dtype) / 255
    assert_close(model.predict_proba(pixels, batch_size=4), model.predict_proba(scaled),
                 rtol=1e-6, atol=1e-7)
    flat = pixels.reshape(11, -1)                   # flat rows are reshaped
    assert_close(model.predict_proba(flat), model.predict_proba(scaled), rtol=1e-6, atol=1e-7)
    y = np.arange(11) % 4
    a = _twin(model, dtype, backend)
    model.fit(pixels, y, epochs=1, batch_size=4, seed=1, verbose=0)
    a.fit(scaled, y, epochs=1, batch_size=4, seed=1, verbose=0)
    for (p, _), (q, _) in zip(model.parameters(), a.parameters()):
        assert_close(p, q, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# Ensemble

def _constant_model(probs):
    """A model whose output is `probs` for every input: zero weights, log-probability
    biases, softmax."""
    m = Sequential([L.Dense(len(probs), activation="softmax")], input_shape=(3,),
                   backend="reference", dtype="float64")
    m.layers[0].params["w"][...] = 0
    m.layers[0].params["b"][...] = np.log(probs)
    return m


def test_ensemble_vote_mean_and_ties():
    x = np.zeros((4, 3))
    a = _constant_model([0.05, 0.50, 0.45])
    b = _constant_model([0.05, 0.50, 0.45])
    c = _constant_model([0.02, 0.03, 0.95])
    d = _constant_model([0.60, 0.10, 0.30])
    # a, b vote 1 and c votes 2: the vote says 1; the mean probability of 2 is highest
    assert np.array_equal(Ensemble([a, b, c]).predict(x), [1] * 4)
    assert np.array_equal(Ensemble([a, b, c], method="mean").predict(x), [2] * 4)
    assert_close(Ensemble([a, c]).predict_proba(x)[0], [0.035, 0.265, 0.7])
    assert np.array_equal(Ensemble([a, b, c, d]).votes(x)[0], [1, 2, 1])
    # ties go to the lowest class index, whatever the order of the members
    assert np.array_equal(Ensemble([c, a]).predict(x), [1] * 4)
    assert np.array_equal(Ensemble([c, d]).predict(x), [0] * 4)
    assert np.array_equal(Ensemble([c, a, d]).predict(x), [0] * 4)
    e = Ensemble([a, b, c])
    assert e.evaluate(x, [1, 1, 2, 0]) == {"accuracy": 0.5}
    assert Ensemble([a, b, c], method="mean").evaluate(x, [1, 1, 2, 0]) == {"accuracy": 0.25}
    assert "3" in repr(e) and "vote" in repr(e)


def test_ensemble_bad_input():
    a = _constant_model([0.2, 0.8])
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])
    with pytest.raises(ValueError, match="method"):
        Ensemble([a], method="median")
    with pytest.raises(ValueError, match="y"):
        Ensemble([a]).evaluate(np.zeros((4, 3)), [0, 1, 1])
    other = _constant_model([0.2, 0.3, 0.5])
    for method in ("vote", "mean"):
        with pytest.raises(ValueError, match="output"):
            Ensemble([a, other], method=method).predict(np.zeros((4, 3)))


# ---------------------------------------------------------------------------
# Bad input to the public API

def _small():
    return Sequential([L.Conv2D(2, 3, activation="relu"), L.Dense(3, activation="softmax")],
                      input_shape=(1, 6, 5))


def _x(n=4, shape=(1, 6, 5)):
    return np.zeros((n,) + shape, np.float32)


def _fit_error(match, *args, error=ValueError, **kwargs):
    with pytest.raises(error, match=match):
        _small().fit(*args, verbose=0, **kwargs)


def test_bad_data():
    _fit_error(re.escape("(N, 1, 6, 5)") + ".*" + re.escape("(4, 1, 6, 4)"),
               _x(shape=(1, 6, 4)), np.zeros(4, int))
    _fit_error(re.escape("[0, 3)"), _x(), np.array([0, 1, 3, 2]))
    _fit_error("labels", _x(), np.array([0, -1, 1, 2]))
    _fit_error(r"same number of examples.*4 and 5", _x(), np.zeros(5, int))
    _fit_error("at least one", _x(0), np.zeros(0, int))
    _fit_error("x must be a numpy array", [[0.0]], [0], error=TypeError)
    _fit_error("dtype int64", _x().astype(np.int64), np.zeros(4, int), error=TypeError)
    _fit_error(re.escape("(N, 3)"), _x(), np.zeros((4, 2)))
    _fit_error("validation_data", _x(), np.zeros(4, int), validation_data=_x())
    _fit_error(re.escape("validation_data[0]"), _x(), np.zeros(4, int),
               validation_data=(_x(shape=(1, 5, 5)), np.zeros(4, int)))
    with pytest.raises(ValueError, match=re.escape("(4, 2, 6, 5)")):
        _small().predict(_x(shape=(2, 6, 5)))


def test_flat_rows_and_images_are_reshaped_when_the_sizes_agree():
    image_model = _small()
    x = np.random.default_rng(0).random((4, 1, 6, 5), dtype=np.float32)
    np.testing.assert_array_equal(image_model.predict_proba(x.reshape(4, 30)),
                                  image_model.predict_proba(x))
    row_model = Sequential([L.Dense(3, activation="softmax")], input_shape=(30,))
    np.testing.assert_array_equal(row_model.predict_proba(x), row_model.predict_proba(
        x.reshape(4, 30)))
    with pytest.raises(ValueError, match=re.escape("(N, 30)") + ".*" + re.escape("(4, 1, 6, 4)")):
        row_model.predict(x[..., :4])


def test_bad_training_arguments():
    x, y = _x(), np.zeros(4, int)
    _fit_error("batch_size", x, y, batch_size=0)
    _fit_error("epochs", x, y, epochs=0)
    with pytest.raises(TypeError, match="epochs"):
        Sequential([L.Dense(2)], input_shape=(4,)).fit(x.reshape(4, -1)[:, :4], y, epochs=1.5,
                                                      verbose=0)
    _fit_error("unknown optimizer 'adamw'", x, y, optimizer="adamw")
    _fit_error("unknown loss 'hinge'", x, y, loss="hinge")
    _fit_error("drop_last", x, y, batch_size=5, drop_last=True)
    with pytest.raises(ValueError, match="batch_size"):
        _small().predict(x, batch_size=0)


@pytest.mark.parametrize("loss, last", [("quadratic", "softmax"), ("log_likelihood", "relu"),
                                        ("binary_cross_entropy", "tanh"),
                                        ("log_likelihood", "sigmoid")])
def test_loss_must_fit_the_last_activation(loss, last):
    model = Sequential([L.Dense(3, activation=last)], input_shape=(4,))
    x, y = np.zeros((2, 4), np.float32), np.array([0, 1])
    with pytest.raises(ValueError, match=f"{loss}.*{last}"):
        model.fit(x, y, loss=loss, verbose=0)
    with pytest.raises(ValueError, match=f"{loss}.*{last}"):
        model.loss_and_grads(x, y, loss)


@pytest.mark.parametrize("make, match", [
    (lambda: L.Dense(2.5), "units"),
    (lambda: L.Conv2D("3", 3), "filters"),
    (lambda: L.Conv2D(2, 3, stride=1.0), "stride"),
    (lambda: L.Dense(3, activation=None and 1 or 7), "activation"),
    (lambda: L.Dropout("0.5"), "rate"),
    (lambda: L.Dropout(0.5, inverted="yes"), "inverted"),
    (lambda: optim.SGD("0.1"), "lr"),
    (lambda: optim.SGD(0.1, nesterov=1), "nesterov"),
])
def test_wrong_kinds_of_argument_are_type_errors(make, match):
    """The kind of mistake decides the exception, in every module: the wrong kind of
    object is a TypeError, a wrong value (below) a ValueError."""
    with pytest.raises(TypeError, match=match):
        make()


@pytest.mark.parametrize("make, match", [
    (lambda: L.Dense(0), "units"),
    (lambda: L.Dense(-3), "units"),
    (lambda: L.Conv2D(0, 3), "filters"),
    (lambda: L.Conv2D(2, 0), "kernel_size"),
    (lambda: L.Conv2D(2, (3, -1)), "kernel_size"),
    (lambda: L.Conv2D(2, 3, stride=0), "stride"),
    (lambda: L.Conv2D(2, 3, padding=-1), "padding"),
    (lambda: L.Conv2D(2, 4, padding="same"), "same"),
    (lambda: L.MaxPool2D(0), "size"),
    (lambda: L.AvgPool2D(2, stride=(1, 0)), "stride"),
    (lambda: L.Dense(3, activation="gelu"), "activation.*gelu"),
    (lambda: L.Conv2D(3, 3, init="xavier"), "init.*xavier"),
    (lambda: L.Activation("swish"), "activation"),
    (lambda: L.Dropout(1), "rate"),
    (lambda: L.Dropout(-0.1), "rate"),
    (lambda: L.from_config("Conv3D", {}), "unknown layer type 'Conv3D'"),
    (lambda: L.from_config("Dense", {"units": 3, "bias": True}), "Dense"),
    (lambda: optim.SGD(-0.1), "lr"),
    (lambda: optim.SGD(0.0), "lr"),
    (lambda: optim.Adam(float("nan")), "lr"),
    (lambda: optim.SGD(0.1, momentum=1.0), "momentum"),
    (lambda: optim.SGD(0.1, nesterov=True), "nesterov"),
    (lambda: optim.Adam(beta1=1.0), "beta1"),
    (lambda: optim.Adam(eps=0), "eps"),
    (lambda: optim.RMSprop(alpha=-0.5), "alpha"),
    (lambda: optim.SGD(0.1, weight_decay=-1), "weight_decay"),
    (lambda: optim.get("nadam"), "unknown optimizer"),
    (lambda: fastcnn.losses.get("hinge"), "unknown loss"),
    (lambda: Sequential([]), "at least one layer"),
    (lambda: Sequential([L.Dense(3)], backend="cuda"), "backend"),
    (lambda: Sequential([L.Dense(3)], dtype="float16"), "dtype"),
    (lambda: Sequential([L.Dense(3)], dtype="float64"), "float32"),
    (lambda: Sequential([L.Dense(3)], input_shape=(0,)), "input_shape"),
    (lambda: Sequential([L.Dense(3)], input_shape=(2, 3)), "input_shape"),
    (lambda: Sequential([L.Conv2D(2, 5)], input_shape=(1, 4, 6)), r"larger than.*\(4, 6\)"),
    (lambda: Sequential([L.Conv2D(2, (3, 7), padding=1)], input_shape=(1, 6, 4)),
     r"larger than.*\(8, 6\)"),
    (lambda: Sequential([L.MaxPool2D(3)], input_shape=(1, 2, 9)), "larger than"),
    (lambda: Sequential([L.Conv2D(2, 3)], input_shape=(12,)), "Conv2D needs"),
])
def test_bad_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_native_refuses_float64_also_when_switched():
    model = Sequential([L.Dense(3)], input_shape=(4,), backend="reference", dtype="float64")
    with pytest.raises(ValueError, match="float32"):
        model.backend = "native"
    assert model.backend == "reference"
    with pytest.raises(TypeError, match=r"layers\[1\]"):
        Sequential([L.Dense(3), "relu"])


def test_dropout_without_rng_in_training_is_refused():
    model = Sequential([L.Dropout(0.5), L.Dense(2)], input_shape=(3,))
    with pytest.raises(ValueError, match="rng"):
        model.loss_and_grads(np.zeros((2, 3), np.float32), np.array([0, 1]))


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


def test_training_does_not_depend_on_the_thread_count():
    """Every native op gives the same bits on 1 and 2 threads (the dot-path GEMMs
    sum K in ranges fixed by K, conv groups by the batch size), so a whole fit
    does: a conv net with dropout and Adam, whose dense GEMMs (batch 32 x 10 x 648)
    take the dot path with K over two blocks, and whose last mini-batch is a single
    image."""
    x, y = _data((1, 20, 20), 65, 10, seed=4)
    got = []
    for t in (1, 2):
        fastcnn.set_num_threads(t)
        model = Sequential([L.Conv2D(8, 3, activation="relu"), L.MaxPool2D(2), L.Flatten(),
                            L.Dropout(0.3), L.Dense(10, activation="softmax")],
                           input_shape=(1, 20, 20), seed=0)
        hist = model.fit(x, y, epochs=2, batch_size=32, optimizer=optim.Adam(1e-2),
                         shuffle=True, verbose=0)
        got.append(([p.copy() for p, _ in model.parameters()], hist.history["loss"]))
    (p1, loss1), (p2, loss2) = got
    assert loss1 == loss2
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)
