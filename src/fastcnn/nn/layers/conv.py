"""Conv2D: local receptive fields with shared weights and biases."""
from __future__ import annotations

from ...common.checks import count, pair
from ...common.geometry import conv_output_size, same_padding
from ...common.limits import MAX_FUSED_POOL_WINDOW
from .base import (Affine, activation_flops, activation_infer, activation_onnx, activation_torch,
                   xstr)


class Conv2D(Affine):
    """Convolution: `filters` feature maps, each a kernel_size window of shared
    weights and one shared bias, slid with `stride` over the zero-padded input.
    padding: an int, a pair, "valid" (0) or "same" (odd kernels, stride 1)."""

    def __init__(self, filters, kernel_size, stride=1, padding=0, activation="linear",
                 init="glorot", use_bias=True):
        super().__init__(activation, init, use_bias)
        self.filters = count(filters, "filters")
        self.kernel_size = pair(kernel_size, "kernel_size", 1)
        self.stride = pair(stride, "stride", 1)
        if isinstance(padding, str):
            if padding.lower() == "same":
                padding = same_padding(self.kernel_size, self.stride)
            elif padding.lower() == "valid":
                padding = 0
            else:
                raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', "
                                 f"got {padding!r}")
        self.padding = pair(padding, "padding", 0)

    def _output_shape(self, s):
        if len(s) != 3:
            raise ValueError(f"Conv2D needs (C, H, W) inputs, got input shape {s}")
        oh, ow = conv_output_size(s, self.kernel_size, self.stride, self.padding,
                                  "Conv2D's input")
        return (self.filters, oh, ow)

    def _param_shapes(self, s):
        shapes = {"w": (self.filters, s[0]) + self.kernel_size}
        if self.use_bias:
            shapes["b"] = (self.filters,)
        return shapes

    def build(self, input_shape, rng, dtype):
        out = super().build(input_shape, rng, dtype)
        c = self.input_shape[0]
        kh, kw = self.kernel_size
        self._init_params(c * kh * kw, self.filters * kh * kw, rng, dtype)
        return out

    def forward(self, ops, x, training=False, rng=None, head=False):
        w, b = self.params["w"], self.params.get("b")
        if self.activation == "relu" and not head:
            # relu inside the conv op (one pass over the output fewer). Its backward
            # needs where the conv output was > 0: exactly where y is > 0.
            y = ops.conv2d(x, w, b, self.stride, self.padding, relu=True)
            return y, (x, (y,))
        z = ops.conv2d(x, w, b, self.stride, self.padding)
        y, saved = self._finish(ops, z, head)
        return y, (x, saved)

    def infer(self, plan, head=False):
        act = "linear" if head else self.activation
        plan.conv2d(self.params["w"], self.params.get("b"), self.stride, self.padding,
                    relu=act == "relu")   # relu inside the conv op, as forward
        if act != "relu":
            activation_infer(plan, act)

    def backward(self, ops, dout, cache, need_dx=True):
        x, saved = cache
        return self.backward_linear(ops, self._unfinish(ops, dout, saved), x, need_dx)

    def backward_linear(self, ops, dz, x, need_dx=True):
        """(dx, grads) from dz, the gradient of the output before the activation."""
        dx, dw, db = ops.conv2d_backward(dz, x, self.params["w"], self.stride, self.padding,
                                         need_dx)
        return dx, self._grads(dw, db)

    # ---- with the MaxPool2D that follows, as one op (nn.steps decides when).

    def fuses_with(self, pool) -> bool:
        """Whether forward_maxpool can run this conv and `pool` after it as one op:
        a MaxPool2D after a relu or linear conv (max-pooling the activation is
        then the same as picking the maximum of the relu'd values), with a window
        whose choice fits a byte."""
        return (pool.fusable_max_pool and self.activation in ("relu", "linear")
                and pool.size[0] * pool.size[1] <= MAX_FUSED_POOL_WINDOW)

    def forward_maxpool(self, ops, x, pool):
        """pool.forward of this layer's forward, in one op: the conv's own output is
        never stored, only each window's choice (a byte)."""
        out, choice = ops.conv2d_maxpool(x, self.params["w"], self.params.get("b"), self.stride,
                                         self.padding, pool.size, pool.stride,
                                         relu=self.activation == "relu")
        return out, (x, choice)

    def infer_maxpool(self, plan, pool):
        """forward_maxpool's step, appended to an inference plan."""
        plan.conv2d_maxpool(self.params["w"], self.params.get("b"), self.stride, self.padding,
                            pool.size, pool.stride, relu=self.activation == "relu")

    def backward_maxpool(self, ops, dout, cache, pool, need_dx=True):
        """(dx, grads) of forward_maxpool from dout of the pooled output."""
        x, choice = cache
        dx, dw, db = ops.conv2d_maxpool_backward(dout, choice, x, self.params["w"], self.stride,
                                                 self.padding, pool.size, pool.stride, need_dx)
        return dx, self._grads(dw, db)

    # ---- self-description

    def flops(self):
        k, oh, ow = self.output_shape
        c = self.input_shape[0]
        kh, kw = self.kernel_size
        return (2 * k * c * kh * kw * oh * ow + (k * oh * ow if self.use_bias else 0)
                + activation_flops(self.activation, k * oh * ow))

    def onnx(self, g):
        ph, pw = self.padding
        inputs = [g.const("conv_w", self.params["w"])]
        if self.use_bias:
            inputs.append(g.const("conv_b", self.params["b"]))
        g.op("Conv", *inputs, shape=self.output_shape, kernel_shape=list(self.kernel_size),
             strides=list(self.stride), pads=[ph, pw, ph, pw], dilations=[1, 1], group=1)
        activation_onnx(g, self.activation)

    def torch(self, nn, last=False):
        m = nn.Conv2d(self.input_shape[0], self.filters, self.kernel_size, stride=self.stride,
                      padding=self.padding, bias=self.use_bias)
        return [self._torch_params(m, self.params["w"])] + \
            activation_torch(nn, self.activation, last)

    def filter_tiles(self, max_filters):
        """One input channel: each (KH, KW) kernel, drawn as a square grid; several:
        a row per filter with a tile per channel (up to 16)."""
        w = self.params["w"]
        k, c = w.shape[:2]
        k = min(k, max_filters)
        if c == 1:
            return [w[f, 0] for f in range(k)], w.shape[0], True
        return [[w[f, ch] for ch in range(min(c, 16))] for f in range(k)], w.shape[0], False

    def _describe(self):
        parts = [str(self.filters), xstr(self.kernel_size)]
        if self.stride != (1, 1):
            parts.append(f"stride={xstr(self.stride)}")
        if self.padding != (0, 0):
            parts.append(f"padding={xstr(self.padding)}")
        return parts + self._tail()

    def config(self):
        return {"filters": self.filters, "kernel_size": list(self.kernel_size),
                "stride": list(self.stride), "padding": list(self.padding),
                "activation": self.activation, "init": self.init, "use_bias": self.use_bias}


__all__ = ["Conv2D"]
