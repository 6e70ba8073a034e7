"""The layer contract, and what the layers with weights share.

A layer holds its hyper-parameters and its parameters, and computes with the
backend's ops (fastcnn.ops or fastcnn.reference, passed in as `ops`). It never
asks which backend it runs on.

Contract of every layer:
  build(input_shape, rng, dtype) -> output_shape   create parameters (shapes exclude the batch)
  plan(input_shape) -> (output_shape, {name: shape})   the same, allocating nothing
  forward(ops, x, training, rng, head) -> (out, cache)
  backward(ops, dout, cache, need_dx) -> (dx, grads)   grads: {param name: array}, overwritten
  params: {name: array}; decayed: names that L2 weight decay applies to (weights, not biases)
  config() -> dict of JSON-able hyper-parameters; Layer(**config) rebuilds it.

And a layer describes itself, so that nothing else switches on its type:
  flops(input_shape) -> int          floating-point operations of forward, per example
  onnx(graph)                        append its inference nodes (fastcnn.io.onnx)
  infer(plan, head)                  append its inference step(s) to a native plan
                                     (backend.inference_plan): what forward computes
                                     at inference, with the same kernels
  torch(nn) -> [torch modules]       its PyTorch twin (the benchmarks)
  filter_tiles(max_filters)          its weights as images to draw, or None (fastcnn.plot)
  label                              a short name for pictures

`head=True` is passed to the last layer only, when the loss applies that layer's
activation itself (softmax with log-likelihood, sigmoid with binary cross-entropy,
both computed on logits): the layer then returns its pre-activation output.

Layout: images (N, C, H, W); conv weights (K, C, KH, KW); dense weights (I, O).
"""
from __future__ import annotations

import math

import numpy as np

from ...common.checks import choice
from ...common.limits import MAX_SIZE

ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh", "softmax")
# The slope of "leaky_relu" for inputs <= 0 (PyTorch's default negative_slope).
LEAKY_SLOPE = 0.01
INITS = ("glorot", "he", "book")


# ------------------------------------------------------------ activations --


def activation_forward(ops, name: str, z):
    """y = f(z) and what the backward pass needs."""
    if name == "linear":
        return z, None
    if name == "relu":
        return ops.relu(z), z
    if name == "leaky_relu":
        return ops.leaky_relu(z, LEAKY_SLOPE), z
    if name == "sigmoid":
        y = ops.sigmoid(z)
        return y, y
    if name == "tanh":
        y = ops.tanh(z)
        return y, y
    # softmax over the last axis: only meaningful on (N, classes)
    return ops.softmax(z.reshape(z.shape[0], -1)).reshape(z.shape), None


def activation_backward(ops, name: str, dout, saved):
    if name == "linear":
        return dout
    if name == "relu":
        return ops.relu_backward(dout, saved)
    if name == "leaky_relu":
        return ops.leaky_relu_backward(dout, saved, LEAKY_SLOPE)
    if name == "sigmoid":
        return ops.sigmoid_backward(dout, saved)
    if name == "tanh":
        return ops.tanh_backward(dout, saved)
    raise ValueError(
        "softmax is differentiated only together with the log-likelihood loss "
        "(loss='log_likelihood'); with another loss end the network in sigmoid or linear")


def activation_flops(name: str, size: int) -> int:
    """Floating-point operations of an activation on `size` values (an estimate:
    one per value for relu, a handful for the transcendental ones)."""
    return {"linear": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 4, "tanh": 4,
            "softmax": 5}[name] * size


def activation_onnx(g, name: str) -> None:
    """Append an activation's ONNX nodes to g (nothing for linear)."""
    if name == "linear":
        return
    if name in ("relu", "sigmoid", "tanh"):
        g.op({"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}[name])
        return
    if name == "leaky_relu":
        g.op("LeakyRelu", alpha=LEAKY_SLOPE)
        return
    # softmax: fastcnn takes it over every non-batch axis of its input at once
    shape = g.shape
    g.flatten()
    g.op("Softmax", axis=-1)
    if len(shape) != 1:
        g.op("Reshape", g.int_const("shape", (-1,) + shape), shape=shape)


def activation_infer(plan, name: str) -> None:
    """Append an activation's inference step to plan (nothing for linear)."""
    if name == "leaky_relu":
        plan.activation(name, LEAKY_SLOPE)
    elif name != "linear":
        plan.activation(name)   # softmax: over every non-batch axis, as activation_forward


def activation_torch(nn, name: str, last: bool) -> list:
    """The torch module of an activation ([] for linear; softmax only last, where
    CrossEntropyLoss takes the logits)."""
    if name == "leaky_relu":
        return [nn.LeakyReLU(LEAKY_SLOPE)]
    acts = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
    if name in acts:
        return [acts[name]()]
    if name == "softmax" and not last:
        raise ValueError("softmax is supported only as the last activation")
    return []


# ----------------------------------------------------------------- layers --


class Layer:
    """Base class: no parameters, identity shape."""

    params: dict
    decayed: tuple = ()
    activation = None          # the name, for layers that apply one
    draws_in_training = False  # True when training draws random numbers (Dropout)

    def __init__(self):
        self.params = {}
        self.input_shape = None
        self.output_shape = None

    def build(self, input_shape, rng, dtype):
        self.input_shape = tuple(input_shape)
        self.output_shape, _ = self.plan(self.input_shape)
        return self.output_shape

    def plan(self, input_shape):
        """(output_shape, {param name: shape}) for inputs of input_shape, allocating
        nothing; ValueError when a shape would hold more than MAX_SIZE values (so
        no size arithmetic downstream can overflow int64)."""
        out = tuple(self._output_shape(tuple(input_shape)))
        shapes = self._param_shapes(tuple(input_shape))
        for what, shape in [("output", out)] + [(f"parameter {k!r}", v) for k, v in shapes.items()]:
            if math.prod(shape) > MAX_SIZE:
                raise ValueError(f"{type(self).__name__}: its {what} shape {shape} (for input "
                                 f"shape {tuple(input_shape)}) holds more than {MAX_SIZE} values")
        return out, shapes

    def _output_shape(self, input_shape):
        return input_shape

    def _param_shapes(self, input_shape) -> dict:
        return {}

    def config(self) -> dict:
        return {}

    def n_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    # ---- self-description

    def flops(self) -> int:
        """Floating-point operations of forward per example (built layers)."""
        return 0

    def onnx(self, g) -> None:
        """Append this layer's inference nodes to g (fastcnn.io.onnx's graph)."""
        raise TypeError(f"layer {self!r} has no ONNX translation")

    def infer(self, plan, head=False) -> None:
        """Append the steps of forward at inference (training=False) to plan, an
        inference plan (backend.inference_plan); head as in forward. A layer
        without this method runs the Python forward (nn/steps.py)."""
        raise NotImplementedError(f"layer {self!r} has no inference step")

    def torch(self, nn, last=False) -> list:
        """The torch.nn modules that compute what this layer computes (inference
        and training alike), holding copies of its parameters."""
        raise ValueError(f"no torch equivalent written for {self!r}")

    def filter_tiles(self, max_filters):
        """The weights as pictures, or None for a layer without weights to show:
        (tiles, how many filters there are, grid) -- grid True: tiles is a list of
        images (2-D, (C, H, W) or a square's flat pixels) to lay out in a square
        grid; False: a list of rows of 2-D images."""
        return None

    @property
    def label(self) -> str:
        return type(self).__name__

    def _describe(self) -> list:
        """The short arguments repr shows (defaults left out)."""
        return [f"{k}={v!r}" for k, v in self.config().items()]

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(self._describe())})"


def xstr(pair) -> str:
    return f"{pair[0]}x{pair[1]}"


class Affine(Layer):
    """Shared by Conv2D and Dense: weights, bias, initialisation, activation."""

    decayed = ("w",)

    def __init__(self, activation, init, use_bias):
        super().__init__()
        self.activation = choice(activation or "linear", "activation", ACTIVATIONS)
        self.init = choice(init, "init", INITS)
        self.use_bias = bool(use_bias)

    def _init_params(self, fan_in, fan_out, rng, dtype):
        shapes = self._param_shapes(self.input_shape)
        w_shape = shapes["w"]
        if self.init == "glorot":      # uniform, variance 2 / (fan_in + fan_out)
            a = math.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-a, a, size=w_shape)
        elif self.init == "he":        # normal, variance 2 / fan_in
            w = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=w_shape)
        else:                          # the book's network3: variance 1 / fan_out, biases N(0, 1)
            w = rng.normal(0.0, math.sqrt(1.0 / fan_out), size=w_shape)
        self.params = {"w": w.astype(dtype)}
        if self.use_bias:
            n = shapes["b"]
            b = rng.normal(0.0, 1.0, size=n) if self.init == "book" else np.zeros(n)
            self.params["b"] = b.astype(dtype)

    def _grads(self, dw, db):
        return {"w": dw, "b": db} if self.use_bias else {"w": dw}

    def _tail(self) -> list:
        tail = [] if self.activation == "linear" else [self.activation]
        if self.init != "glorot":
            tail.append(f"init={self.init}")
        if not self.use_bias:
            tail.append("use_bias=False")
        return tail

    def _finish(self, ops, z, head):
        """(y, saved): the activation applied, unless this is the head; saved is
        None when no activation ran (its gradient is then the identity)."""
        if head or self.activation == "linear":
            return z, None
        y, saved = activation_forward(ops, self.activation, z)
        return y, (saved,)

    def _unfinish(self, ops, dout, saved):
        if saved is None:
            return dout
        return activation_backward(ops, self.activation, dout, saved[0])

    def _torch_params(self, module, w):
        """Copy w (already in torch's layout) and the bias into module."""
        import torch
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            if self.use_bias:
                module.bias.copy_(torch.from_numpy(self.params["b"]))
        return module


__all__ = ["Layer", "Affine", "ACTIVATIONS", "INITS", "LEAKY_SLOPE", "activation_forward",
           "activation_backward", "activation_flops", "activation_infer", "activation_onnx",
           "activation_torch", "xstr"]
