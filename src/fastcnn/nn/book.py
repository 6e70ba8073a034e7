"""The conventions of network3.py (chapter 6 of Nielsen's "Neural Networks and
Deep Learning") on fastcnn's layers: one place for the book's semantics, used by
the book's API (fastcnn.network3) and by the book's rows (fastcnn.runs.presets).

  * A conv-pool layer: convolution (stride 1, no padding), max-pooling, + bias,
    then the activation. The bias is one number per feature map, so adding it
    before or after the max is the same; fastcnn adds it in the convolution.
  * Dropout acts on a layer's *input*: in training each input is zeroed with
    probability p and the rest are not rescaled; at inference the layer sees its
    input multiplied by (1 - p) (Dropout(p, inverted=False)).
  * Initial weights N(0, 1/n_out) -- for a conv-pool layer n_out is filters *
    kernel area / pool area -- and biases N(0, 1); the softmax layer starts at
    zero. The layers are first built with init="book" and then drawn again in
    network3's order from the same Generator (so runs match those of earlier
    fastcnn versions draw for draw).
  * The cost is the mean log-likelihood plus 0.5 * lmbda * (sum of squared
    weights) / (number of mini-batches): plain SGD with weight decay
    lmbda / n_batches; biases are not penalised.
  * Mini-batches in order, no shuffling; a remainder smaller than a mini-batch is
    dropped, in training, validation and test alike.
  * network3's printout, line for line (Printout).
"""
from __future__ import annotations

import numpy as np

from ..common.checks import real
from . import layers as L
from .callbacks import Callback
from .optim import SGD


def conv_pool(filter_shape, poolsize, activation):
    """The fastcnn layers of a ConvPoolLayer: filter_shape (K, C, KH, KW)."""
    k, _, kh, kw = filter_shape
    return [L.Conv2D(k, (kh, kw), activation="linear", init="book"),
            L.MaxPool2D(poolsize), L.Activation(activation)]


def fully_connected(n_out, activation, p_dropout=0.0):
    """The fastcnn layers of a FullyConnectedLayer (or SoftmaxLayer: activation
    'softmax'): dropout on its input, then the dense layer."""
    drop = [L.Dropout(p_dropout, inverted=False)] if p_dropout else []
    return drop + [L.Dense(n_out, activation=activation, init="book")]


def init_conv_pool(conv, filter_shape, poolsize, rng):
    k, _, kh, kw = filter_shape
    n_out = k * kh * kw / (poolsize[0] * poolsize[1])
    conv.params["w"][...] = rng.normal(0.0, np.sqrt(1.0 / n_out), size=tuple(filter_shape))
    conv.params["b"][...] = rng.normal(0.0, 1.0, size=k)


def init_fully_connected(dense, n_in, n_out, rng):
    dense.params["w"][...] = rng.normal(0.0, np.sqrt(1.0 / n_out), size=(n_in, n_out))
    dense.params["b"][...] = rng.normal(0.0, 1.0, size=n_out)


def init_softmax(dense):
    for p in dense.params.values():
        p[...] = 0.0


def whole_batches(data, mbs, name):
    """(x, y) cut to whole mini-batches. Slicing keeps x's dtype, so uint8 pixels stay
    bytes until fastcnn scales each mini-batch."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{name} must be a pair (x, y) as load_data_shared returns")
    x, y = data
    n = (len(x) // mbs) * mbs
    if n == 0:
        raise ValueError(f"{name} holds {len(x)} examples, fewer than one mini-batch of {mbs}")
    return x[:n], np.asarray(y)[:n]


def sgd(model, training_data, epochs, mbs, eta, validation_data, test_data=None, lmbda=0.0,
        verbose=True, initial_epoch=0, history=None, callbacks=(), comm=None):
    """Train `model` (a Sequential ending in softmax) as network3's SGD does;
    returns the History. verbose: True prints network3's lines; False nothing; 2
    fastcnn's progress bar and one line per epoch instead. With initial_epoch > 0
    the model's optimizer is continued when it is an SGD with these
    hyper-parameters (as restored from a checkpoint), else a new one starts."""
    train = whole_batches(training_data, mbs, "training_data")
    val = whole_batches(validation_data, mbs, "validation_data")
    test = None if test_data is None else whole_batches(test_data, mbs, "test_data")
    n_batches = train[0].shape[0] // mbs
    try:
        lmbda = real(lmbda, "lmbda", 0.0)
    except (TypeError, ValueError):
        raise ValueError(f"lmbda must be a number >= 0, got {lmbda!r}") from None
    # 0.5 * lmbda * sum(w^2) / n_batches in the cost = weight decay lmbda / n_batches.
    opt = SGD(lr=eta, weight_decay=lmbda / n_batches)
    current = model.optimizer
    if initial_epoch and type(current) is SGD and current.config() == opt.config():
        opt = current  # a restored optimizer: keep its state and step count
    fastcnn_style = verbose == 2 and verbose is not True
    if comm is not None and comm.Get_rank():
        verbose = False
    printer = Printout(n_batches, bool(verbose) and not fastcnn_style)
    return model.fit(
        train[0], train[1], epochs=epochs, batch_size=mbs, optimizer=opt,
        loss="log_likelihood", validation_data=val, test_data=test, shuffle=False,
        callbacks=[printer, *callbacks], verbose=1 if fastcnn_style else 0,
        drop_last=True, initial_epoch=initial_epoch, history=history, comm=comm)


class Printout(Callback):
    """network3's printout, line for line."""

    def __init__(self, n_batches, verbose):
        self.n_batches, self.verbose = n_batches, verbose
        self.best_val, self.best_iteration, self.test_accuracy = 0.0, 0, None

    def _print(self, *a):
        if self.verbose:
            print(*a, flush=True)

    def on_train_begin(self, model):
        h = model.history   # a continued run: what the epochs already done found
        if h is not None and h.best_epoch is not None:
            self.best_val = h.best_val_accuracy
            self.best_iteration = self.n_batches * h.best_epoch - 1
            self.test_accuracy = h.test_accuracy

    def on_batch_begin(self, model, iteration):
        if iteration % 1000 == 0:
            self._print(f"Training mini-batch number {iteration}")

    def on_epoch_end(self, model, epoch, logs):
        self._print(f"Epoch {epoch - 1}: validation accuracy {logs['val_accuracy']:.2%}")
        if logs["best"]:
            self._print("This is the best validation accuracy to date.")
            self.best_val = logs["val_accuracy"]
            self.best_iteration = self.n_batches * epoch - 1
            if logs.get("test_accuracy") is not None:
                self.test_accuracy = logs["test_accuracy"]
                self._print(f"The corresponding test accuracy is {self.test_accuracy:.2%}")

    def on_train_end(self, model, history):
        self._print("Finished training network.")
        self._print(f"Best validation accuracy of {self.best_val:.2%} obtained at iteration "
                    f"{self.best_iteration}")
        if self.test_accuracy is not None:
            self._print(f"Corresponding test accuracy of {self.test_accuracy:.2%}")


__all__ = ["conv_pool", "fully_connected", "init_conv_pool", "init_fully_connected",
           "init_softmax", "whole_batches", "sgd", "Printout"]
