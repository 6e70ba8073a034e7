"""fastcnn.network -- Sequential: a stack of layers, trained by mini-batch descent.

The model owns its layers, an optimizer and a backend (`backend="native"` runs on
fastcnn.ops, `"reference"` on fastcnn.reference: the same model, switched by one
word). Inputs are images (N, C, H, W) -- or flat (N, C*H*W), reshaped -- as
float32/float64, or uint8 scaled by 1/255 one mini-batch at a time (so a large
training set can stay in memory as bytes). Labels are integers (N,).

build() plans the forward and backward passes once (nn/steps.py): the layers
grouped into steps, a fused conv + max-pool being one step. forward and backward
are then plain loops over the steps; fit lives in nn/training.py.

Every random draw (initial weights, shuffling, dropout masks) comes from a numpy
Generator seeded by `seed`.
"""
from __future__ import annotations

import os

import numpy as np

from .. import backend as B
from ..common.checks import count, flag, labels_in_range
from ..io import onnx
from ..io.files import refuse
from . import losses, saving, steps, training
from .batches import n_correct
from .layers import Layer

BACKENDS = B.BACKENDS
FIT_EVAL_BATCH = training.FIT_EVAL_BATCH


class Sequential:
    """Layers applied in order. `input_shape` (C, H, W) or (features,) builds the
    parameters now; without it they are built on the first data seen."""

    def __init__(self, layers, input_shape=None, backend="native", dtype="float32", seed=0):
        layers = list(layers)
        if not layers:
            raise ValueError("a Sequential model needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a fastcnn layer, got {type(layer).__name__}")
        self.layers = layers
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.backend = backend
        self.optimizer = None
        self.loss = losses.get("log_likelihood")
        self.input_shape = None
        self.stop_training, self.stop_reason = False, None
        self.history = None   # the History of the current (or last) fit
        self._fuse, self.steps = True, []
        self._plans = steps.Plans()   # native inference plans of the steps
        self.comm = None      # the MPI communicator while a data-parallel fit runs
        if input_shape is not None:
            self.build(input_shape)

    # ------------------------------------------------------------ set-up --

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, name):
        ops = B.get(name)
        if name == "native" and self.dtype != np.float32:
            raise ValueError("the native backend computes in float32; use dtype='float32' "
                             "or backend='reference'")
        self._backend, self.ops = name, ops

    def build(self, input_shape):
        shape = tuple(count(s, "input_shape") for s in np.atleast_1d(input_shape))
        if len(shape) not in (1, 3):
            raise ValueError(f"input_shape must be (C, H, W) or (features,), got {input_shape!r}")
        self.input_shape = s = shape
        for layer in self.layers:
            s = layer.build(s, self.rng, self.dtype)
        self.output_shape = s
        self.steps = steps.plan(self.layers, self._fuse)
        return self

    @property
    def fuse(self) -> bool:
        """Run each Conv2D + MaxPool2D pair that can be fused (Conv2D.fuses_with) as
        one op, which never stores the conv's own output (default True). The same
        numbers either way; False runs every layer on its own."""
        return self._fuse

    @fuse.setter
    def fuse(self, on):
        self._fuse = flag(on, "fuse")
        if self.input_shape is not None:
            self.steps = steps.plan(self.layers, self._fuse)

    def parameters(self):
        """[(array, decayed)] in layer order: what the optimizer updates."""
        return [pd for step in self.steps for pd in step.params]

    def n_params(self) -> int:
        return sum(layer.n_params() for layer in self.layers)

    def flops(self) -> int:
        """Floating-point operations of one example's forward pass (layer.flops)."""
        self._require_built()
        return sum(layer.flops() for layer in self.layers)

    def _require_built(self):
        if self.input_shape is None:
            raise ValueError("the model is not built yet: give input_shape or call fit first")

    # ------------------------------------------------------------- input --

    def check_x(self, x, name="x"):
        """x as this model's input (flat rows reshaped to images or back); builds
        the model on the first data seen."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
        if x.dtype != np.uint8 and x.dtype.kind != "f":
            raise TypeError(f"{name} must hold floats or uint8 pixels, got dtype {x.dtype}")
        if self.input_shape is None:
            if x.ndim not in (2, 4):
                raise ValueError(f"{name} must be images (N, C, H, W) or rows (N, features), "
                                 f"got shape {x.shape}")
            self.build(x.shape[1:])
        want = self.input_shape
        if x.shape[1:] != want:
            # flat rows for an image model, or images for a model of flat rows
            same_size = x.ndim >= 2 and int(np.prod(x.shape[1:])) == int(np.prod(want))
            if same_size and (x.ndim == 2 or len(want) == 1):
                x = x.reshape((x.shape[0],) + want)
            else:
                raise ValueError(f"{name} must be shaped (N, {', '.join(map(str, want))}) for "
                                 f"this model (input_shape {want}), got shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one example, got shape {x.shape}")
        return x

    def check_y(self, y, n, name="y", x_name="x"):
        """Integer labels (N,) in [0, classes) as int64, or float targets shaped
        like the output."""
        y = np.asarray(y)
        if y.ndim == 1 and y.dtype.kind in "iu":
            classes = self.output_shape[0] if len(self.output_shape) == 1 else None
            if classes is not None:
                labels_in_range(y, classes, f"labels in {name}", "model outputs")
            y = y.astype(np.int64, copy=False)
        elif y.dtype.kind != "f" or y.shape[1:] != tuple(self.output_shape):
            raise ValueError(f"{name} must be integer labels (N,) or float targets shaped "
                             f"(N, {', '.join(map(str, self.output_shape))}), got shape "
                             f"{y.shape} and dtype {y.dtype}")
        if y.shape[0] != n:
            raise ValueError(f"{x_name} and {name} must hold the same number of examples, got "
                             f"{n} and {y.shape[0]}")
        return y

    def check_pair(self, data, name):
        """(x, y) of validation or test data, checked; None stays None."""
        if data is None:
            return None
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError(f"{name} must be a pair (x, y), got {type(data).__name__}")
        x = self.check_x(data[0], f"{name}[0]")
        return x, self.check_y(data[1], x.shape[0], f"{name}[1]", f"{name}[0]")

    def batch(self, x):
        """A mini-batch in the model's dtype: uint8 pixels become values in [0, 1]."""
        if x.dtype == np.uint8:  # divide, not multiply by 1/255: the same values as load_mnist
            return np.divide(x, self.dtype.type(255), dtype=self.dtype)
        return np.ascontiguousarray(x, dtype=self.dtype)

    # ---------------------------------------------------- forward/backward --

    def head(self, loss) -> bool:
        """True when the loss applies the last layer's activation itself."""
        act = self.layers[-1].activation or "linear"
        if act not in loss.heads:
            raise ValueError(
                f"loss {loss.name!r} does not fit a network ending in {act!r}: it needs the "
                f"last activation to be one of {', '.join(loss.heads)} "
                f"(last layer {self.layers[-1]!r})")
        return act == loss.head

    def forward(self, x, training=False, rng=None, head=False):
        """The output for a prepared batch, and the caches backward needs (one per step)."""
        caches = []
        last = len(self.steps) - 1
        for i, step in enumerate(self.steps):
            x, cache = step.forward(self.ops, x, training, rng, head and i == last)
            caches.append(cache)
        return x, caches

    def backward(self, dout, caches):
        """Gradients [{name: array}] of every layer, given d(loss)/d(output)."""
        grads = []
        for i in range(len(self.steps) - 1, -1, -1):
            dout, g = self.steps[i].backward(self.ops, dout, caches[i], i > 0)
            grads[:0] = g
        return grads

    def backward_update(self, dout, caches, update):
        """backward with an optimizer's fused update (Optimizer.fused_step) applied
        step by step: each step updates its parameters as soon as it has passed dx
        on (computed with its old weights), so no gradient is kept."""
        for i in range(len(self.steps) - 1, -1, -1):
            dout = self.steps[i].backward_update(self.ops, dout, caches[i], i > 0, update)

    def loss_and_grads(self, x, y, loss="log_likelihood", rng=None, training=True):
        """(loss, output, [grads per layer]) for one batch -- one training step
        without the update. Useful to compare backends and to check gradients."""
        loss = losses.get(loss)
        x = self.check_x(x)
        y = self.check_y(y, x.shape[0])
        out, caches = self.forward(self.batch(x), training, rng, self.head(loss))
        value, dout = loss(self.ops, out, y)
        return value, out, self.backward(dout, caches)

    # --------------------------------------------------------- inference --

    def _infer(self, xb, head=False, out=None):
        """forward's output for a prepared batch xb (batch) at inference: one call
        of the native inference plan (nn/steps.Plans; the same kernels, the same
        numbers) where the backend has one, else forward. out: an array shaped
        like the output to write into, or None."""
        plan = self._plans.get(self, head)
        if plan is None:
            y = self.forward(xb, head=head)[0]
            if out is None:
                return y
            out[...] = y
            return out
        if out is None:
            out = np.empty((xb.shape[0],) + self.output_shape, self.dtype)
        return plan.run(xb, out)

    def _outputs(self, x, batch_size, head=False):
        x = self.check_x(x)
        batch_size = count(batch_size, "batch_size")
        out = np.empty((x.shape[0],) + self.output_shape, self.dtype)
        if x.shape[0] <= batch_size:   # one batch: no slices
            return self._infer(self.batch(x), head, out)
        for i in range(0, x.shape[0], batch_size):
            self._infer(self.batch(x[i:i + batch_size]), head, out[i:i + batch_size])
        return out

    def predict_proba(self, x, batch_size=1000):
        """The network's output (class probabilities when it ends in softmax)."""
        return self._outputs(x, batch_size)

    def predict(self, x, batch_size=1000):
        """The most probable class of each example."""
        return np.argmax(self._outputs(x, batch_size), axis=1)

    def evaluate(self, x, y, batch_size=1000, loss=None):
        """{'loss', 'accuracy'} over (x, y), in inference mode (no dropout)."""
        loss = losses.get(loss or self.loss)
        x = self.check_x(x)
        y = self.check_y(y, x.shape[0])
        batch_size = count(batch_size, "batch_size")
        head = self.head(loss)
        total, correct = 0.0, 0
        for i in range(0, x.shape[0], batch_size):
            out = self._infer(self.batch(x[i:i + batch_size]), head)
            yb = y[i:i + batch_size]
            total += loss(self.ops, out, yb)[0] * out.shape[0]
            correct += n_correct(out, yb)
        return {"loss": total / x.shape[0], "accuracy": correct / x.shape[0]}

    # ---------------------------------------------------------- training --

    def fit(self, x, y, epochs=1, batch_size=32, optimizer=None, loss="log_likelihood",
            validation_data=None, test_data=None, shuffle=True, callbacks=(), seed=None,
            verbose=1, augment=None, drop_last=False, initial_epoch=0, history=None,
            comm=None):
        """Train by mini-batch gradient descent; returns a History.

        optimizer: a fastcnn.optim optimizer or a name; None keeps the model's
        current one (or SGD(lr=0.1) the first time). loss: 'log_likelihood',
        'binary_cross_entropy', 'quadratic' or a Loss. validation_data / test_data:
        (x, y) pairs, evaluated after each epoch; the test accuracy is measured
        whenever the validation accuracy is the best so far, as in the book.
        shuffle: a new order every epoch. augment: f(x_batch, rng) -> x_batch,
        applied to each training batch (e.g. fastcnn.datasets.random_shift).
        drop_last: skip a final partial batch. verbose: 0 silent, 1 progress bar
        (on a terminal) and a line per epoch, 2 a line per epoch only.

        To continue a run (as Keras): initial_epoch, the epochs already done,
        makes fit train epochs initial_epoch + 1 .. epochs; history, the History
        of those epochs, is continued (best epoch and test accuracy included)
        instead of a new one. With the model's parameters, optimizer and Generator
        state as they were after epoch initial_epoch, the run continues exactly as
        if it had never stopped. While fit runs, model.history is the History being
        filled (a callback's on_epoch_end sees it complete up to that epoch).

        comm: an MPI communicator (mpi4py, pip install "fastcnn[mpi]") for one
        data-parallel run, every rank calling fit with the same data and
        arguments: each rank computes its share of each global mini-batch, the
        gradients are summed by one Allreduce per step, every rank applies the
        same update (see fastcnn.nn.data_parallel). Only rank 0 prints. An error
        on any rank ends the whole job (MPI Abort) instead of leaving the others
        waiting.
        """
        return training.fit(self, x, y, epochs, batch_size, optimizer, loss, validation_data,
                            test_data, shuffle, callbacks, seed, verbose, augment, drop_last,
                            initial_epoch, history, comm)

    # ------------------------------------------------------------- report --

    def summary(self, print_fn=print) -> str:
        """A table: layer, output shape, parameter count; totals."""
        self._require_built()
        rows = [("Layer", "Output shape", "Params")]
        rows.append(("Input", str((None,) + self.input_shape), ""))
        for layer in self.layers:
            rows.append((repr(layer), str((None,) + tuple(layer.output_shape)),
                         f"{layer.n_params():,}"))
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:>{w[2]}}" for r in rows]
        rule = "-" * len(lines[0])
        text = "\n".join([lines[0], rule, *lines[1:], rule,
                          f"Total params: {self.n_params():,}  ({self.backend} backend, "
                          f"{self.dtype.name})"])
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self):
        inner = ",\n".join(f"    {layer!r}" for layer in self.layers)
        shape = "" if self.input_shape is None else f", input_shape={self.input_shape}"
        return f"Sequential([\n{inner},\n]{shape}, backend={self.backend!r})"

    def save(self, path):
        """Write parameters, architecture and optimizer state to a .npz file, atomically."""
        saving.save_model(self, path)

    def export_onnx(self, path, opset=None):
        """Write the model's inference graph as an ONNX file (fastcnn.io.onnx;
        needs pip install "fastcnn[onnx]"). Returns the path."""
        return onnx.export_onnx(self, path, opset or onnx.OPSET)


# ----------------------------------------------------------------- loading --


def load_model(path, backend="native"):
    """A Sequential model from a file written by Sequential.save (see nn/saving.py
    for what is checked); fastcnn.FileFormatError names a damaged file."""
    return _load(path, backend)[0]


def load_checkpoint(path, backend="native"):
    """(model, state) from a file save_checkpoint wrote; a ValueError naming the
    file for a damaged file or one that is not a checkpoint."""
    model, header = _load(path, backend)
    state = header.get("checkpoint")
    if not isinstance(state, dict):
        raise refuse(os.fspath(path), "it is a saved model, not a training checkpoint")
    return model, state


def _load(path, backend):
    """(model, header) of a checked file."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'native' or 'reference', got {backend!r}")
    path = os.fspath(path)
    header, plan, arrays = saving.read(path)
    try:
        model = Sequential(plan.layers, input_shape=plan.input_shape, backend="reference",
                           dtype=header["dtype"], seed=header["seed"] or 0)
        model.backend = backend
    except ValueError as e:   # the native backend and a float64 model
        raise refuse(path, str(e)) from None
    model.loss = losses.get(header["loss"])
    for i, layer in enumerate(model.layers):
        for name, p in layer.params.items():
            p[...] = arrays[f"param/{i}/{name}"]
    opt = plan.optimizer
    if opt is not None:
        # one (possibly empty) dict per parameter, unless a stateful optimizer never stepped
        if not opt.state_names or any(k.startswith("opt/") for k in arrays):
            opt.state = [{n: arrays[f"opt/{j}/{n}"].copy() for n in opt.state_names}
                         for j in range(len(model.parameters()))]
        model.optimizer = opt
    return model, header


__all__ = ["Sequential", "BACKENDS", "FIT_EVAL_BATCH", "load_model", "load_checkpoint"]
