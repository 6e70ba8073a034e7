"""fastcnn.network3 -- the API of network3.py from chapter 6 of Michael Nielsen's
"Neural Networks and Deep Learning", running on fastcnn instead of Theano.

The book's scripts run with only their import changed:

    from fastcnn import network3
    from fastcnn.network3 import Network, ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer
    from fastcnn.network3 import sigmoid, tanh, ReLU, linear

The book's semantics (conv then pool then bias and activation; dropout on a
layer's input, not rescaled; network3's initial weights; L2 scaled by the
number of mini-batches; mini-batches in order, remainders dropped; the same
printout) live in fastcnn.nn.book, which this module's classes call.

Extensions (keyword arguments the book's scripts do not use): Network(...,
seed=0, backend="native"); SGD(..., verbose=True) returns the fastcnn History,
and SGD(..., initial_epoch=k, history=h, callbacks=[...]) continues a run;
load_data_shared(expanded=False, dtype="float32").
"""
from __future__ import annotations

import numpy as np

from ..data.book import EXPANDED_SHUFFLE_SEED, load_data_shared  # noqa: F401
from ..nn import book
from ..nn.model import Sequential


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
        return book.conv_pool(self.filter_shape, self.poolsize, self.activation)

    def _init(self, fc_layers, rng, dtype):
        book.init_conv_pool(fc_layers[0], self.filter_shape, self.poolsize, rng)

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
        return book.fully_connected(self.n_out, self.activation, self.p_dropout)

    def _init(self, fc_layers, rng, dtype):
        book.init_fully_connected(fc_layers[-1], self.n_in, self.n_out, rng)

    def __repr__(self):
        return (f"{type(self).__name__}(n_in={self.n_in}, n_out={self.n_out}, "
                f"activation_fn={self.activation}, p_dropout={self.p_dropout})")


class SoftmaxLayer(FullyConnectedLayer):
    def __init__(self, n_in, n_out, p_dropout=0.0):
        super().__init__(n_in, n_out, linear, p_dropout)
        self.activation = "softmax"

    def _init(self, fc_layers, rng, dtype):
        book.init_softmax(fc_layers[-1])

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
        self.history = book.sgd(self.model, training_data, epochs, self.mini_batch_size, eta,
                                validation_data, test_data, lmbda, verbose, initial_epoch,
                                history, callbacks, comm)
        return self.history

    def accuracy(self, data):
        """Fraction of (x, y) classified correctly (whole mini-batches, as network3)."""
        x, y = book.whole_batches(data, self.mini_batch_size, "data")
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


def size(data):
    """The number of examples in (x, y)."""
    return data[0].shape[0]


__all__ = ["Network", "ConvPoolLayer", "FullyConnectedLayer", "SoftmaxLayer",
           "load_data_shared", "size", "sigmoid", "tanh", "ReLU", "linear"]
