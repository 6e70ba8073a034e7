"""Flatten and Dropout: layers without parameters that do not slide windows."""
from __future__ import annotations

import math

import numpy as np

from ...common.checks import flag, real
from .base import Layer


class Flatten(Layer):
    """(N, ...) -> (N, product of the rest), C order."""

    def _output_shape(self, s):
        return (math.prod(s),)

    def forward(self, ops, x, training=False, rng=None, head=False):
        return x.reshape(x.shape[0], -1), x.shape

    def infer(self, plan, head=False):
        plan.flatten()   # a new shape, no copy

    def backward(self, ops, dout, shape, need_dx=True):
        return dout.reshape(shape), {}

    def onnx(self, g):
        g.flatten()

    def torch(self, nn, last=False):
        return [nn.Flatten()]


class Dropout(Layer):
    """Zero each input with probability `rate` while training.

    inverted=True (Keras, PyTorch): kept values are scaled by 1/(1 - rate) while
    training; inference is the identity.
    inverted=False (the book's network3): no scaling while training; at inference
    the input is multiplied by (1 - rate), the expected value of the mask.
    """

    draws_in_training = True

    def __init__(self, rate, inverted=True):
        super().__init__()
        self.rate = real(rate, "rate", 0.0, 1.0, hi_open=True)
        self.inverted = flag(inverted, "inverted")

    def _keep(self):
        return 1.0 - self.rate

    def forward(self, ops, x, training=False, rng=None, head=False):
        if self.rate == 0.0:
            return x, None
        if not training:
            return (x if self.inverted else x * x.dtype.type(self._keep())), None
        if rng is None:
            raise ValueError("Dropout needs a random Generator (rng) while training")
        mask = rng.random(x.shape, dtype=np.float32) < self._keep()
        scale = self._keep() if self.inverted else 1.0
        return ops.dropout(x, mask, scale), mask

    def infer(self, plan, head=False):
        if self.rate != 0.0 and not self.inverted:   # else the identity
            plan.scale(self._keep())

    def backward(self, ops, dout, mask, need_dx=True):
        if mask is None:
            return dout, {}
        scale = self._keep() if self.inverted else 1.0
        return ops.dropout_backward(dout, mask, scale), {}

    def flops(self):
        return math.prod(self.output_shape)

    def onnx(self, g):
        if not self.inverted and self.rate > 0:   # network3's scaling at inference
            g.op("Mul", g.const("dropout_keep", np.float32(1.0 - self.rate)))

    def torch(self, nn, last=False):
        if not self.inverted:
            raise ValueError(f"no torch equivalent written for {self!r}")
        return [nn.Dropout(self.rate)]

    def _describe(self):
        return [repr(self.rate)] + ([] if self.inverted else ["inverted=False"])

    def config(self):
        return {"rate": self.rate, "inverted": self.inverted}


__all__ = ["Flatten", "Dropout"]
