"""fastcnn.network3 -- the API of network3.py from chapter 6 of Michael Nielsen's
"Neural Networks and Deep Learning", running on fastcnn instead of Theano.

The book's scripts run with only their import changed:

    from fastcnn import network3
    from fastcnn.network3 import Network, ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer
    from fastcnn.network3 import sigmoid, tanh, ReLU, linear

This module reproduces network3's own semantics (they differ from Keras'):

  * ConvPoolLayer: convolution (stride 1, no padding), then max-pooling, then
    + bias, then the activation. The bias is one number per feature map, so
    adding it before or after the max is the same; fastcnn adds it in the
    convolution. Theano's conv2d flips its kernels; with random initial weights
    that changes nothing, so fastcnn's cross-correlation is used as is.
  * Dropout (p_dropout) acts on a layer's *input*: in training each input is
    zeroed with probability p and the rest are NOT rescaled; at inference the
    layer sees its input multiplied by (1 - p), its expected value.
  * Initial weights N(0, 1/n_out) -- for a ConvPoolLayer n_out is
    filters * kernel area / pool area -- and biases N(0, 1); the SoftmaxLayer
    starts at zero.
  * The cost is the mean log-likelihood over the mini-batch plus
    0.5 * lmbda * (sum of all squared weights) / (number of mini-batches);
    biases are not penalised. Plain SGD with learning rate eta.
  * Mini-batches are taken in order, without shuffling, and a remainder smaller
    than a mini-batch is dropped (in training, validation and test alike).
  * The same printout: the mini-batch counter every 1000 mini-batches, the
    validation accuracy after each epoch, "best to date" with the test accuracy
    then, and the final summary.

Extensions (keyword arguments the book's scripts do not use): Network(...,
seed=0, backend="native"); SGD(..., verbose=True) returns the fastcnn History,
and SGD(..., initial_epoch=k, history=h, callbacks=[...]) continues a run;
load_data_shared(expanded=False, dtype="float32").
"""
from __future__ import annotations

import gzip
import os
import pickle

import numpy as np

from . import datasets
from . import layers as L
from .callbacks import Callback
from .network import Sequential
from .optim import SGD as _SGD


# ----------------------------------------------------------- activations --
# The book passes these functions as activation_fn; fastcnn maps each one to
# its native activation. They also work on numpy arrays.

def linear(z):
    return z


def ReLU(z):  # noqa: N802 -- the book's name
    return np.maximum(0.0, z)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def tanh(z):
    return np.tanh(z)


_ACTIVATION_NAMES = {linear: "linear", ReLU: "relu", sigmoid: "sigmoid", tanh: "tanh"}


def _activation_name(fn, where):
    name = _ACTIVATION_NAMES.get(fn)
    if name is None:
        raise ValueError(f"{where}: activation_fn must be one of network3's sigmoid, tanh, "
                         f"ReLU or linear, got {fn!r}")
    return name


def _ints(v, name, n):
    try:
        t = tuple(int(e) for e in v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a tuple of {n} integers, got {v!r}") from None
    if len(t) != n or any(e < 1 for e in t) or any(isinstance(e, bool) for e in v):
        raise ValueError(f"{name} must be a tuple of {n} positive integers, got {v!r}")
    return t


def _p_dropout(p):
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"p_dropout must be a number in [0, 1), got {p!r}")
    return float(p)


# ----------------------------------------------------------------- layers --


class ConvPoolLayer:
    """filter_shape (filters, input feature maps, height, width); image_shape
    (mini-batch size, input feature maps, height, width); poolsize (y, x)."""

    def __init__(self, filter_shape, image_shape, poolsize=(2, 2), activation_fn=sigmoid):
        self.filter_shape = _ints(filter_shape, "filter_shape", 4)
        self.image_shape = _ints(image_shape, "image_shape", 4)
        self.poolsize = _ints(poolsize, "poolsize", 2)
        self.activation_fn = activation_fn
        self.activation = _activation_name(activation_fn, "ConvPoolLayer")
        if self.filter_shape[1] != self.image_shape[1]:
            raise ValueError(f"ConvPoolLayer: filter_shape {self.filter_shape} expects "
                             f"{self.filter_shape[1]} input feature maps, image_shape "
                             f"{self.image_shape} has {self.image_shape[1]}")
        self.n_in = int(np.prod(self.image_shape[1:]))

    def _fastcnn_layers(self):
        k, _, kh, kw = self.filter_shape
        return [L.Conv2D(k, (kh, kw), activation="linear", init="book"),
                L.MaxPool2D(self.poolsize), L.Activation(self.activation)]

    def _init(self, fc_layers, rng, dtype):
        conv = fc_layers[0]
        k, _, kh, kw = self.filter_shape
        n_out = k * kh * kw / (self.poolsize[0] * self.poolsize[1])
        conv.params["w"][...] = rng.normal(0.0, np.sqrt(1.0 / n_out), size=self.filter_shape)
        conv.params["b"][...] = rng.normal(0.0, 1.0, size=k)

    def __repr__(self):
        return (f"ConvPoolLayer(filter_shape={self.filter_shape}, image_shape="
                f"{self.image_shape}, poolsize={self.poolsize}, activation_fn={self.activation})")


class FullyConnectedLayer:
    def __init__(self, n_in, n_out, activation_fn=sigmoid, p_dropout=0.0):
        self.n_in, self.n_out = _ints((n_in, n_out), "(n_in, n_out)", 2)
        self.activation_fn = activation_fn
        self.activation = _activation_name(activation_fn, type(self).__name__)
        self.p_dropout = _p_dropout(p_dropout)

    def _fastcnn_layers(self):
        drop = [L.Dropout(self.p_dropout, inverted=False)] if self.p_dropout else []
        return drop + [L.Dense(self.n_out, activation=self.activation, init="book")]

    def _init(self, fc_layers, rng, dtype):
        dense = fc_layers[-1]
        dense.params["w"][...] = rng.normal(0.0, np.sqrt(1.0 / self.n_out),
                                            size=(self.n_in, self.n_out))
        dense.params["b"][...] = rng.normal(0.0, 1.0, size=self.n_out)

    def __repr__(self):
        return (f"{type(self).__name__}(n_in={self.n_in}, n_out={self.n_out}, "
                f"activation_fn={self.activation}, p_dropout={self.p_dropout})")


class SoftmaxLayer(FullyConnectedLayer):
    def __init__(self, n_in, n_out, p_dropout=0.0):
        super().__init__(n_in, n_out, linear, p_dropout)
        self.activation = "softmax"

    def _init(self, fc_layers, rng, dtype):
        for p in fc_layers[-1].params.values():
            p[...] = 0.0

    def __repr__(self):
        return f"SoftmaxLayer(n_in={self.n_in}, n_out={self.n_out}, p_dropout={self.p_dropout})"


# ---------------------------------------------------------------- network --


class Network:
    """The book's Network: a list of network3 layers and the mini-batch size."""

    def __init__(self, layers, mini_batch_size, seed=0, backend="native"):
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("Network needs at least one layer")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, (ConvPoolLayer, FullyConnectedLayer)):
                raise TypeError(f"layers[{i}] must be a network3 layer (ConvPoolLayer, "
                                f"FullyConnectedLayer or SoftmaxLayer), got "
                                f"{type(layer).__name__}")
        if not isinstance(self.layers[-1], SoftmaxLayer):
            raise ValueError("the last layer must be a SoftmaxLayer (network3 trains with "
                             "the log-likelihood cost)")
        if isinstance(mini_batch_size, bool) or not isinstance(mini_batch_size, int) \
                or mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be a positive integer, got "
                             f"{mini_batch_size!r}")
        self.mini_batch_size = mini_batch_size
        first = self.layers[0]
        input_shape = (first.image_shape[1:] if isinstance(first, ConvPoolLayer)
                       else (first.n_in,))
        groups = [layer._fastcnn_layers() for layer in self.layers]
        self.model = Sequential([fl for g in groups for fl in g], input_shape=input_shape,
                                backend=backend, seed=seed)
        self._check_shapes(groups)
        for layer, group in zip(self.layers, groups):
            layer._init(group, self.model.rng, self.model.dtype)
        self.params = [p for p, _ in self.model.parameters()]
        self.history = None

    def _check_shapes(self, groups):
        for i, (layer, group) in enumerate(zip(self.layers, groups)):
            got = group[0].input_shape
            if isinstance(layer, ConvPoolLayer):
                want = layer.image_shape[1:]
                if layer.image_shape[0] != self.mini_batch_size:
                    raise ValueError(f"layer {i}: image_shape {layer.image_shape} must start "
                                     f"with the mini-batch size {self.mini_batch_size}")
            else:
                want = (layer.n_in,)
                got = (int(np.prod(got)),)
            if tuple(got) != tuple(want):
                raise ValueError(f"layer {i} ({layer!r}) expects input {want}, but the layer "
                                 f"before gives {tuple(got)}")

    def SGD(self, training_data, epochs, mini_batch_size, eta, validation_data,  # noqa: N802
            test_data=None, lmbda=0.0, verbose=True, initial_epoch=0, history=None,
            callbacks=(), comm=None):
        """Train with mini-batch SGD, printing as network3 does. Returns a History.
        verbose: True prints network3's lines; False nothing; 2 prints fastcnn's
        progress bar and one line per epoch instead.

        Extensions to continue an interrupted run (see Sequential.fit):
        initial_epoch, the epochs already done, and history, their History. With
        initial_epoch > 0 the model's optimizer is continued when it is an SGD with
        these hyper-parameters (as restored from a checkpoint), else a new one
        starts. callbacks: more fastcnn callbacks, called after the printout's.
        comm: an MPI communicator for a data-parallel run (Sequential.fit); only
        rank 0 prints."""
        if mini_batch_size != self.mini_batch_size:
            raise ValueError(f"mini_batch_size {mini_batch_size} differs from the network's "
                             f"{self.mini_batch_size} (network3 fixes it when the net is built)")
        mbs = self.mini_batch_size
        train = _whole_batches(training_data, mbs, "training_data")
        val = _whole_batches(validation_data, mbs, "validation_data")
        test = None if test_data is None else _whole_batches(test_data, mbs, "test_data")
        n_batches = train[0].shape[0] // mbs
        if isinstance(lmbda, bool) or not isinstance(lmbda, (int, float)) or not lmbda >= 0:
            raise ValueError(f"lmbda must be a number >= 0, got {lmbda!r}")
        # 0.5 * lmbda * sum(w^2) / n_batches in the cost = weight decay lmbda / n_batches.
        opt = _SGD(lr=eta, weight_decay=lmbda / n_batches)
        current = self.model.optimizer
        if initial_epoch and type(current) is _SGD and current.config() == opt.config():
            opt = current  # a restored optimizer: keep its state and step count
        fastcnn_style = verbose == 2 and verbose is not True
        if comm is not None and comm.Get_rank():
            verbose = False
        printer = _Printout(n_batches, bool(verbose) and not fastcnn_style)
        self.history = self.model.fit(
            train[0], train[1], epochs=epochs, batch_size=mbs, optimizer=opt,
            loss="log_likelihood", validation_data=val, test_data=test, shuffle=False,
            callbacks=[printer, *callbacks], verbose=1 if fastcnn_style else 0,
            drop_last=True, initial_epoch=initial_epoch, history=history, comm=comm)
        return self.history

    def accuracy(self, data):
        """Fraction of (x, y) classified correctly (whole mini-batches, as network3)."""
        x, y = _whole_batches(data, self.mini_batch_size, "data")
        return self.model.evaluate(x, y, batch_size=self.mini_batch_size)["accuracy"]

    def save(self, path):
        self.model.save(path)

    def export_onnx(self, path, opset=None):
        """The model as an ONNX file (see Sequential.export_onnx): dropout's
        inference scaling by (1 - p) becomes a Mul node."""
        return self.model.export_onnx(path, opset)

    def __repr__(self):
        inner = ",\n".join(f"    {layer!r}" for layer in self.layers)
        return f"Network([\n{inner},\n], mini_batch_size={self.mini_batch_size})"


def _whole_batches(data, mbs, name):
    """(x, y) cut to whole mini-batches. Slicing keeps x's dtype, so uint8 pixels stay
    bytes until fastcnn scales each mini-batch."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{name} must be a pair (x, y) as load_data_shared returns")
    x, y = data
    n = (len(x) // mbs) * mbs
    if n == 0:
        raise ValueError(f"{name} holds {len(x)} examples, fewer than one mini-batch of {mbs}")
    return x[:n], np.asarray(y)[:n]


class _Printout(Callback):
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


# ------------------------------------------------------------------- data --


def load_data_shared(filename=None, expanded=False, dtype="float32"):
    """[(x, y) training, validation, test]: x flat (N, 784), y int64 labels.

    filename=None: the MNIST copy bundled with fastcnn, split as the book's
    mnist.pkl.gz (50000 / 10000 / 10000). A directory: the four IDX files in it.
    A file: the book's mnist.pkl.gz (or mnist_expanded.pkl.gz) -- a Python pickle,
    and loading a pickle can run code from the file, so only give a file you trust.
    expanded=True: the training set with each image's four 1-pixel shifts
    (250000 images), shuffled once with a fixed seed, as the book's
    expand_mnist.py does; it is built in place, so loading peaks near one copy
    of it (196 MB as uint8). dtype="uint8" keeps pixels as
    bytes (a quarter of the memory; fastcnn scales them per mini-batch).
    """
    if filename is not None and os.path.isfile(filename):
        with gzip.open(filename, "rb") as f:
            sets = pickle.load(f, encoding="latin1")  # the book's file is a Python 2 pickle
        out = [(np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64))
               for x, y in sets]
    else:
        (xt, yt), (xv, yv), (xs, ys) = datasets.load_mnist(path=filename, dtype=dtype)
        if expanded:
            # The arrays above are copies; the raw files load_mnist keeps cached
            # (55 MB) would only add to the peak of the long expanded-set run.
            datasets.clear_cache()
            xt, yt = _expanded(xt, yt)
        return [(x.reshape(x.shape[0], -1), y) for x, y in ((xt, yt), (xv, yv), (xs, ys))]
    if expanded:
        x, y = out[0]
        x, y = _expanded(x.reshape(-1, 1, 28, 28), y)
        out[0] = (x.reshape(x.shape[0], -1), y)
    return out


EXPANDED_SHUFFLE_SEED = 0


def _expanded(x, y):
    """The book's expanded set: every image and its four 1-pixel shifts, shuffled
    once (as the book's expand_mnist.py does before saving its pickle; network3
    itself never shuffles), here with a fixed seed so every run sees the same order.
    expand_shifts writes each image straight to its shuffled row, so the unshuffled
    set is never held as well (for 250k uint8 images that would be 196 MB more)."""
    order = np.random.default_rng(EXPANDED_SHUFFLE_SEED).permutation(5 * len(x))
    return datasets.expand_shifts(x, y, order=order)


def size(data):
    """The number of examples in (x, y)."""
    return data[0].shape[0]


__all__ = ["Network", "ConvPoolLayer", "FullyConnectedLayer", "SoftmaxLayer",
           "load_data_shared", "size", "sigmoid", "tanh", "ReLU", "linear"]
