"""Dense: a fully connected layer."""
from __future__ import annotations

import math

from ...common.checks import count
from .base import Affine, activation_flops, activation_infer, activation_onnx, activation_torch


class Dense(Affine):
    """Fully connected: out = f(x @ w + b). Inputs of more than one axis are
    flattened first (C order, as Flatten does)."""

    def __init__(self, units, activation="linear", init="glorot", use_bias=True):
        super().__init__(activation, init, use_bias)
        self.units = count(units, "units")

    def _output_shape(self, s):
        return (self.units,)

    def _param_shapes(self, s):
        shapes = {"w": (math.prod(s), self.units)}
        if self.use_bias:
            shapes["b"] = (self.units,)
        return shapes

    def build(self, input_shape, rng, dtype):
        out = super().build(input_shape, rng, dtype)
        self._init_params(math.prod(self.input_shape), self.units, rng, dtype)
        return out

    def forward(self, ops, x, training=False, rng=None, head=False):
        x2 = x.reshape(x.shape[0], -1)
        z = ops.dense(x2, self.params["w"], self.params.get("b"))
        y, saved = self._finish(ops, z, head)
        return y, (x2, x.shape, saved)

    def infer(self, plan, head=False):
        plan.dense(self.params["w"], self.params.get("b"))   # any input, seen flat
        activation_infer(plan, "linear" if head else self.activation)

    def backward(self, ops, dout, cache, need_dx=True):
        x2, x_shape, saved = cache
        dz = self._unfinish(ops, dout, saved)
        dx, dw, db = ops.dense_backward(dz, x2, self.params["w"], need_dx)
        return (None if dx is None else dx.reshape(x_shape)), self._grads(dw, db)

    def backward_update(self, ops, dout, cache, need_dx, update):
        """backward and a plain-SGD step (update.lr, update.weight_decay) in one op:
        the weight gradient goes straight into w, never stored. Returns dx."""
        x2, x_shape, saved = cache
        dz = self._unfinish(ops, dout, saved)
        dx = ops.dense_backward_sgd(dz, x2, self.params["w"], self.params.get("b"),
                                    lr=update.lr, weight_decay=update.weight_decay,
                                    need_dx=need_dx)
        return None if dx is None else dx.reshape(x_shape)

    # ---- self-description

    def flops(self):
        i = math.prod(self.input_shape)
        return (2 * i * self.units + (self.units if self.use_bias else 0)
                + activation_flops(self.activation, self.units))

    def onnx(self, g):
        g.flatten()
        inputs = [g.const("dense_w", self.params["w"])]   # (I, O): x @ w
        if self.use_bias:
            inputs.append(g.const("dense_b", self.params["b"]))
        g.op("Gemm", *inputs, shape=self.output_shape)
        activation_onnx(g, self.activation)

    def torch(self, nn, last=False):
        flat = [nn.Flatten()] if len(self.input_shape) > 1 else []
        m = nn.Linear(math.prod(self.input_shape), self.units, bias=self.use_bias)
        return flat + [self._torch_params(m, self.params["w"].T)] + \
            activation_torch(nn, self.activation, last)

    def filter_tiles(self, max_filters):
        """Each unit's weights as an image of the input: (C, H, W), or a square
        of flat pixels (784 = 28 x 28)."""
        w = self.params["w"]
        n_in = w.shape[0]
        shape = self.input_shape if len(self.input_shape) == 3 else None
        if shape is None and math.isqrt(n_in) ** 2 != n_in:
            raise ValueError(f"the first layer is Dense on {n_in} inputs, not a square image: "
                             "its weights cannot be drawn as filters")
        units = min(w.shape[1], max_filters)
        return ([w[:, u].reshape(shape) if shape else w[:, u] for u in range(units)],
                w.shape[1], True)

    def _describe(self):
        return [str(self.units)] + self._tail()

    def config(self):
        return {"units": self.units, "activation": self.activation, "init": self.init,
                "use_bias": self.use_bias}


__all__ = ["Dense"]
