"""fastcnn.network3 on MNIST (load_data_shared, the book's loader): the order of
mini-batches, the printout of a chapter-6 script, continuing an interrupted SGD,
load_data_shared and size (the expanded set unchanged since first published),
and bad input naming the layer or argument. The book's semantics computed by
hand: test_network3.py."""
from __future__ import annotations

import gzip
import hashlib
import pickle
import re
import runpy
import tracemalloc

import numpy as np
import pytest

import fastcnn
from fastcnn import network3
from fastcnn.network3 import (ConvPoolLayer, FullyConnectedLayer, Network, SoftmaxLayer,
                              load_data_shared, size)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def mnist():
    return load_data_shared()


def _head(data, n):
    return data[0][:n], data[1][:n]


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
