"""Pooling layers: max, average and L2 over windows; global average."""
from __future__ import annotations

import math

from ...common.checks import pair
from ...common.geometry import pool_output_size
from .base import Layer, xstr


class Pool(Layer):
    """A size window slid with stride (default: size) over each feature map, no padding."""

    _op = ""            # the ops' name of the forward op; backward is _op + "_backward"
    _onnx = ("", {})    # the ONNX node and its extra attributes
    fusable_max_pool = False   # a MaxPool2D a conv may run together with (nn.steps)

    def __init__(self, size=2, stride=None):
        super().__init__()
        self.size = pair(size, "size", 1)
        self.stride = self.size if stride is None else pair(stride, "stride", 1)

    def _output_shape(self, s):
        if len(s) != 3:
            raise ValueError(f"{type(self).__name__} needs (C, H, W) inputs, got input shape {s}")
        oh, ow = pool_output_size(s, self.size, self.stride, f"{type(self).__name__}'s input")
        return (s[0], oh, ow)

    def forward(self, ops, x, training=False, rng=None, head=False):
        return getattr(ops, self._op)(x, self.size, self.stride), x

    def infer(self, plan, head=False):
        getattr(plan, self._op)(self.size, self.stride)

    def backward(self, ops, dout, x, need_dx=True):
        return getattr(ops, self._op + "_backward")(dout, x, self.size, self.stride), {}

    def flops(self):
        return math.prod(self.output_shape) * self.size[0] * self.size[1]

    def onnx(self, g):
        node, attrs = self._onnx
        g.op(node, shape=self.output_shape, kernel_shape=list(self.size),
             strides=list(self.stride), pads=[0, 0, 0, 0], **attrs)

    def _describe(self):
        return [xstr(self.size)] + ([] if self.stride == self.size else [f"stride={xstr(self.stride)}"])

    def config(self):
        return {"size": list(self.size), "stride": list(self.stride)}


class MaxPool2D(Pool):
    """Maximum of each window."""
    _op = "maxpool2d"
    _onnx = ("MaxPool", {})
    fusable_max_pool = True

    def torch(self, nn, last=False):
        return [nn.MaxPool2d(self.size, self.stride)]


class AvgPool2D(Pool):
    """Mean of each window."""
    _op = "avgpool2d"
    _onnx = ("AveragePool", {})   # no padding: every window is whole

    def torch(self, nn, last=False):
        return [nn.AvgPool2d(self.size, self.stride)]


class L2Pool2D(Pool):
    """Square root of the sum of squares of each window."""
    _op = "l2pool2d"
    _onnx = ("LpPool", {"p": 2})

    def torch(self, nn, last=False):
        return [nn.LPPool2d(2, self.size, self.stride)]


class GlobalAvgPool2D(Layer):
    """(N, C, H, W) -> (N, C): the mean of each whole feature map."""

    def _output_shape(self, s):
        if len(s) != 3:
            raise ValueError(f"GlobalAvgPool2D needs (C, H, W) inputs, got input shape {s}")
        return (s[0],)

    def forward(self, ops, x, training=False, rng=None, head=False):
        return ops.global_avgpool2d(x), x

    def infer(self, plan, head=False):
        plan.global_avgpool2d()

    def backward(self, ops, dout, x, need_dx=True):
        return ops.global_avgpool2d_backward(dout, x), {}

    def flops(self):
        return math.prod(self.input_shape)

    def onnx(self, g):
        g.op("GlobalAveragePool", shape=self.output_shape + (1, 1))
        g.flatten()

    def torch(self, nn, last=False):
        return [nn.AdaptiveAvgPool2d(1), nn.Flatten()]


__all__ = ["MaxPool2D", "AvgPool2D", "L2Pool2D", "GlobalAvgPool2D"]
