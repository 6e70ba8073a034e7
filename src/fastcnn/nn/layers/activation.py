"""Activation layers: an activation on its own, after a layer without one."""
from __future__ import annotations

import math

from ...common.checks import choice
from .base import (ACTIVATIONS, Layer, activation_backward, activation_flops,
                   activation_forward, activation_infer, activation_onnx, activation_torch)


class Activation(Layer):
    """An activation on its own: 'linear', 'relu', 'leaky_relu', 'sigmoid', 'tanh' or
    'softmax' (softmax only as the last layer, over the class axis). The subclasses
    ReLU(), LeakyReLU(), Sigmoid(), Tanh() and Softmax() fix the name."""

    fixed = None  # set by the subclasses

    def __init__(self, activation=None):
        super().__init__()
        if self.fixed is not None:
            if activation is not None:
                raise TypeError(f"{type(self).__name__}() takes no arguments")
            activation = self.fixed
        self.activation = choice(activation, "activation", ACTIVATIONS)

    def forward(self, ops, x, training=False, rng=None, head=False):
        if head or self.activation == "linear":
            return x, None
        y, saved = activation_forward(ops, self.activation, x)
        return y, (saved,)

    def backward(self, ops, dout, cache, need_dx=True):
        if cache is None:
            return dout, {}
        return activation_backward(ops, self.activation, dout, cache[0]), {}

    def infer(self, plan, head=False):
        if not head:
            activation_infer(plan, self.activation)

    def flops(self):
        return activation_flops(self.activation, math.prod(self.output_shape))

    def onnx(self, g):
        activation_onnx(g, self.activation)

    def torch(self, nn, last=False):
        return activation_torch(nn, self.activation, last)

    @property
    def label(self):
        return self.activation

    def _describe(self):
        return [] if self.fixed else [repr(self.activation)]

    def config(self):
        return {} if self.fixed else {"activation": self.activation}


class ReLU(Activation):
    fixed = "relu"


class LeakyReLU(Activation):
    """x where x > 0, else LEAKY_SLOPE (0.01) * x."""
    fixed = "leaky_relu"


class Sigmoid(Activation):
    fixed = "sigmoid"


class Tanh(Activation):
    fixed = "tanh"


class Softmax(Activation):
    fixed = "softmax"


__all__ = ["Activation", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax"]
