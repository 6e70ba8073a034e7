"""fastcnn.presets -- the models of the book's chapter-6 table and of the Keras
course notes, with the hyper-parameters they were published with, and one
function that trains any of them and reports the book's figure of merit.

Book rows (network3 semantics, fastcnn.network3; mini-batch 10, SGD, no
shuffling; the book's accuracies are the test accuracy at the epoch of best
validation accuracy):
  fc100                row 1  FC 100 sigmoid                           eta 0.1           60 ep  97.80
  conv                 row 2  conv 20 5x5 + pool, FC 100, sigmoid      eta 0.1           60 ep  98.78
  conv2                row 3  + conv 40 5x5 + pool                     eta 0.1           60 ep  99.06
  conv2-relu           row 4  as conv2, ReLU                           eta 0.03 lmbda 0.1 60 ep 99.23
  conv2-relu-expanded  row 5  as conv2-relu, on the 250k expanded set  eta 0.03 lmbda 0.1 60 ep 99.37
  dropout              row 8  conv2-relu + FC 1000 + FC 1000, dropout 0.5, no L2,
                              expanded, 40 ep                          eta 0.03          99.60
Keras models (Adam 1e-3, mini-batch 128, 15 epochs, shuffled, last 6000 training
images held out for validation as Keras' validation_split=0.1 does):
  keras-cnn   conv 32 3x3 relu, pool, conv 64 3x3 relu, pool, dropout 0.5, dense 10  (99.0)
  keras-fcn   conv 32 3x3, pool, conv 64 3x3, pool, conv 128 3x3, conv 10 1x1,
              global average pool, softmax                                         (99.1)
"""
from __future__ import annotations

import time

import numpy as np

from . import datasets, network3, optim
from . import layers as L
from .network import Sequential

BOOK = {
    "fc100": dict(row=1, book=97.80, epochs=60, lr=0.1, lmbda=0.0, expanded=False),
    "conv": dict(row=2, book=98.78, epochs=60, lr=0.1, lmbda=0.0, expanded=False),
    "conv2": dict(row=3, book=99.06, epochs=60, lr=0.1, lmbda=0.0, expanded=False),
    "conv2-relu": dict(row=4, book=99.23, epochs=60, lr=0.03, lmbda=0.1, expanded=False),
    "conv2-relu-expanded": dict(row=5, book=99.37, epochs=60, lr=0.03, lmbda=0.1,
                                expanded=True),
    # The book trains the dropout net without L2 (net.SGD(..., 0.03, validation_data, test_data)).
    "dropout": dict(row=8, book=99.60, epochs=40, lr=0.03, lmbda=0.0, expanded=True),
}
KERAS = {
    "keras-cnn": dict(row=None, book=99.0, epochs=15, lr=1e-3, batch_size=128),
    "keras-fcn": dict(row=None, book=99.1, epochs=15, lr=1e-3, batch_size=128),
}
PRESETS = {**BOOK, **KERAS}
BOOK_BATCH = 10
KERAS_VALIDATION = 6000


def _book_layers(name, mbs):
    """The network3 layers of a book row."""
    from .network3 import ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer
    act = network3.sigmoid if name in ("fc100", "conv", "conv2") else network3.ReLU
    if name == "fc100":
        return [FullyConnectedLayer(784, 100, act), SoftmaxLayer(100, 10)]
    stack = [ConvPoolLayer((20, 1, 5, 5), (mbs, 1, 28, 28), (2, 2), act)]
    if name == "conv":
        return stack + [FullyConnectedLayer(20 * 12 * 12, 100, act), SoftmaxLayer(100, 10)]
    stack.append(ConvPoolLayer((40, 20, 5, 5), (mbs, 20, 12, 12), (2, 2), act))
    if name == "dropout":
        return stack + [FullyConnectedLayer(40 * 4 * 4, 1000, act, p_dropout=0.5),
                        FullyConnectedLayer(1000, 1000, act, p_dropout=0.5),
                        SoftmaxLayer(1000, 10, p_dropout=0.5)]
    return stack + [FullyConnectedLayer(40 * 4 * 4, 100, act), SoftmaxLayer(100, 10)]


def keras_layers(name):
    if name == "keras-cnn":
        return [L.Conv2D(32, 3, activation="relu"), L.MaxPool2D(2),
                L.Conv2D(64, 3, activation="relu"), L.MaxPool2D(2),
                L.Flatten(), L.Dropout(0.5), L.Dense(10, activation="softmax")]
    # Keras' model (b) puts softmax on every position of the 1x1 conv and averages
    # the probabilities; here the 1x1 conv gives logits, they are averaged, and the
    # softmax comes last (the usual form, which the log-likelihood can fuse).
    return [L.Conv2D(32, 3, activation="relu"), L.MaxPool2D(2),
            L.Conv2D(64, 3, activation="relu"), L.MaxPool2D(2),
            L.Conv2D(128, 3, activation="relu"), L.Conv2D(10, 1),
            L.GlobalAvgPool2D(), L.Softmax()]


def build(name, seed=0, backend="native", batch_size=None):
    """(model, trainer kind): a network3.Network for a book row, else a Sequential."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    if name in BOOK:
        return network3.Network(_book_layers(name, batch_size or BOOK_BATCH),
                                batch_size or BOOK_BATCH, seed=seed, backend=backend)
    return Sequential(keras_layers(name), input_shape=(1, 28, 28), backend=backend, seed=seed)


def train(name, epochs=None, batch_size=None, lr=None, lmbda=None, seed=0,
          backend="native", data_path=None, verbose=1, save=None):
    """Train a preset on MNIST; returns a dict of results (accuracies in %)."""
    spec = PRESETS.get(name)
    if spec is None:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    epochs = spec["epochs"] if epochs is None else epochs
    lr = spec["lr"] if lr is None else lr
    start = time.perf_counter()
    if name in BOOK:
        batch_size = batch_size or BOOK_BATCH
        lmbda = spec["lmbda"] if lmbda is None else lmbda
        net = build(name, seed, backend, batch_size)
        tr, va, te = network3.load_data_shared(
            data_path, expanded=spec["expanded"],
            dtype="uint8" if spec["expanded"] else "float32")
        hist = net.SGD(tr, epochs, batch_size, lr, va, te, lmbda=lmbda,
                       verbose=2 if verbose else False)
        model = net.model
    else:
        batch_size = batch_size or spec["batch_size"]
        if lmbda:
            raise ValueError("lmbda applies to the book's presets; the Keras models use none")
        model = build(name, seed, backend)
        (xt, yt), va, te = datasets.load_mnist(data_path, validation=KERAS_VALIDATION)
        hist = model.fit(xt, yt, epochs=epochs, batch_size=batch_size,
                         optimizer=optim.Adam(lr=lr), validation_data=va, test_data=te,
                         verbose=1 if verbose else 0)
    seconds = time.perf_counter() - start
    final = model.evaluate(*te)["accuracy"] if hist.epochs else float("nan")
    if save:
        model.save(save)
    return {
        "preset": name, "row": spec["row"], "book": spec["book"], "epochs": epochs,
        "epochs_run": hist.epochs, "batch_size": batch_size, "lr": lr,
        "lmbda": lmbda if name in BOOK else None, "seed": seed, "backend": backend,
        "best_epoch": hist.best_epoch,
        "best_val_accuracy": _pct(hist.best_val_accuracy),
        "test_accuracy": _pct(hist.test_accuracy), "final_test_accuracy": _pct(final),
        "seconds": round(seconds, 1), "stop_reason": hist.stop_reason,
    }


def _pct(v):
    return None if v is None or not np.isfinite(v) else round(100.0 * v, 2)


__all__ = ["BOOK", "KERAS", "PRESETS", "build", "train", "keras_layers"]
