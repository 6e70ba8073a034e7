"""fastcnn.layers -- the building blocks of a network.

A layer holds its hyper-parameters and its parameters, and computes with the
backend's ops (fastcnn.ops or fastcnn.reference, passed in as `ops`). It never
asks which backend it runs on.

Contract of every layer:
  build(input_shape, rng, dtype) -> output_shape   create parameters (shapes exclude the batch)
  forward(ops, x, training, rng, head) -> (out, cache)
  backward(ops, dout, cache, need_dx) -> (dx, grads)   grads: {param name: array}, overwritten
  params: {name: array}; decayed: names that L2 weight decay applies to (weights, not biases)
  config() -> dict of JSON-able hyper-parameters; Layer(**config) rebuilds it.

`head=True` is passed to the last layer only, when the loss applies that layer's
activation itself (softmax with log-likelihood, sigmoid with binary cross-entropy,
both computed on logits): the layer then returns its pre-activation output.

Layout: images (N, C, H, W); conv weights (K, C, KH, KW); dense weights (I, O).
"""
from __future__ import annotations

import math

import numpy as np

from ._validate import MAX_SIZE

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")
INITS = ("glorot", "he", "book")


def _choice(value, name: str, allowed) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value.lower()


def positive_int(v, name: str) -> int:
    """A count (filters, units, epochs, batch size...): an int in [1, MAX_SIZE], else
    ValueError (the model API reports every bad hyper-parameter as a ValueError)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= MAX_SIZE:
        raise ValueError(f"{name} must be a positive integer (at most 2**40), got {v!r}")
    return int(v)


def _pair(v, name: str, lo: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each in [lo, MAX_SIZE]."""
    vals = (v, v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else v
    try:
        a, b = vals
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}") from None
    for e in (a, b):
        if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or not lo <= e <= MAX_SIZE:
            raise ValueError(f"{name} must hold integers in [{lo}, 2**40], got {v!r}")
    return int(a), int(b)


# ------------------------------------------------------------ activations --


def activation_forward(ops, name: str, z):
    """y = f(z) and what the backward pass needs."""
    if name == "linear":
        return z, None
    if name == "relu":
        return ops.relu(z), z
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
    if name == "sigmoid":
        return ops.sigmoid_backward(dout, saved)
    if name == "tanh":
        return ops.tanh_backward(dout, saved)
    raise ValueError(
        "softmax is differentiated only together with the log-likelihood loss "
        "(loss='log_likelihood'); with another loss end the network in sigmoid or linear")


# ----------------------------------------------------------------- layers --


class Layer:
    """Base class: no parameters, identity shape."""

    params: dict
    decayed: tuple = ()
    activation = None  # the name, for layers that apply one

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
                                 f"shape {tuple(input_shape)}) holds more than 2**40 values")
        return out, shapes

    def _output_shape(self, input_shape):
        return input_shape

    def _param_shapes(self, input_shape) -> dict:
        return {}

    def config(self) -> dict:
        return {}

    def backward_sgd(self, ops, dout, cache, need_dx, lr, weight_decay):
        """backward, then one plain-SGD step of this layer's parameters (weight
        decay on the decayed ones); returns dx. Layers that can fuse the two
        (Dense) override it."""
        dx, grads = self.backward(ops, dout, cache, need_dx)
        self._sgd_step(ops, grads, lr, weight_decay)
        return dx

    def _sgd_step(self, ops, grads, lr, weight_decay):
        for name, g in grads.items():
            ops.sgd_update(self.params[name], g, None, lr=lr,
                           weight_decay=weight_decay if name in self.decayed else 0.0)

    def n_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def _describe(self) -> list:
        """The short arguments repr shows (defaults left out)."""
        return [f"{k}={v!r}" for k, v in self.config().items()]

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(self._describe())})"


def _x(pair) -> str:
    return f"{pair[0]}x{pair[1]}"


class _Affine(Layer):
    """Shared by Conv2D and Dense: weights, bias, initialisation, activation."""

    decayed = ("w",)

    def __init__(self, activation, init, use_bias):
        super().__init__()
        self.activation = _choice(activation or "linear", "activation", ACTIVATIONS)
        self.init = _choice(init, "init", INITS)
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


class Conv2D(_Affine):
    """Convolution: `filters` feature maps, each a kernel_size window of shared
    weights and one shared bias, slid with `stride` over the zero-padded input.
    padding: an int, a pair, "valid" (0) or "same" (odd kernels, stride 1)."""

    def __init__(self, filters, kernel_size, stride=1, padding=0, activation="linear",
                 init="glorot", use_bias=True):
        super().__init__(activation, init, use_bias)
        self.filters = positive_int(filters, "filters")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        if isinstance(padding, str):
            mode = _choice(padding, "padding", ("valid", "same"))
            if mode == "same":
                if self.stride != (1, 1) or any(k % 2 == 0 for k in self.kernel_size):
                    raise ValueError("padding='same' needs an odd kernel_size and stride 1, got "
                                     f"kernel_size={self.kernel_size}, stride={self.stride}")
                padding = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)
            else:
                padding = 0
        self.padding = _pair(padding, "padding", lo=0)

    def _output_shape(self, s):
        if len(s) != 3:
            raise ValueError(f"Conv2D needs (C, H, W) inputs, got input shape {s}")
        c, h, w = s
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if h + 2 * ph < kh or w + 2 * pw < kw:
            raise ValueError(f"Conv2D kernel {self.kernel_size} is larger than its padded "
                             f"input {(h + 2 * ph, w + 2 * pw)} (input shape {s})")
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

    # Set by Sequential.build when a MaxPool2D follows a ReLU conv: the pool then
    # applies the ReLU's backward mask, on its smaller output (see MaxPool2D).
    relu_mask_after = False

    def backward(self, ops, dout, cache, need_dx=True):
        x, saved = cache
        if self.relu_mask_after and saved is not None:
            dz = dout  # already masked by the max-pool above
        else:
            dz = self._unfinish(ops, dout, saved)
        dx, dw, db = ops.conv2d_backward(dz, x, self.params["w"], self.stride, self.padding,
                                         need_dx)
        return dx, self._grads(dw, db)

    def _grads(self, dw, db):
        return {"w": dw, "b": db} if self.use_bias else {"w": dw}

    # ---- with the MaxPool2D that follows, as one op (Sequential decides when).

    def fuses_with(self, layer) -> bool:
        """Whether forward_maxpool can run this conv and `layer` after it as one op:
        a MaxPool2D after a relu or linear conv (max-pooling the activation is
        then the same as picking the maximum of the relu'd values), with a window
        of fewer than 255 elements (its choice fits a byte)."""
        return (type(layer) is MaxPool2D and self.activation in ("relu", "linear")
                and layer.size[0] * layer.size[1] < 255)

    def forward_maxpool(self, ops, x, pool):
        """pool.forward of this layer's forward, in one op: the conv's own output is
        never stored, only each window's choice (a byte)."""
        out, choice = ops.conv2d_maxpool(x, self.params["w"], self.params.get("b"), self.stride,
                                         self.padding, pool.size, pool.stride,
                                         relu=self.activation == "relu")
        return out, (x, choice)

    def backward_maxpool(self, ops, dout, cache, pool, need_dx=True):
        """(dx, grads) of forward_maxpool from dout of the pooled output."""
        x, choice = cache
        dx, dw, db = ops.conv2d_maxpool_backward(dout, choice, x, self.params["w"], self.stride,
                                                 self.padding, pool.size, pool.stride, need_dx)
        return dx, self._grads(dw, db)

    def _describe(self):
        parts = [str(self.filters), _x(self.kernel_size)]
        if self.stride != (1, 1):
            parts.append(f"stride={_x(self.stride)}")
        if self.padding != (0, 0):
            parts.append(f"padding={_x(self.padding)}")
        return parts + self._tail()

    def config(self):
        return {"filters": self.filters, "kernel_size": list(self.kernel_size),
                "stride": list(self.stride), "padding": list(self.padding),
                "activation": self.activation, "init": self.init, "use_bias": self.use_bias}


class Dense(_Affine):
    """Fully connected: out = f(x @ w + b). Inputs of more than one axis are
    flattened first (C order, as Flatten does)."""

    def __init__(self, units, activation="linear", init="glorot", use_bias=True):
        super().__init__(activation, init, use_bias)
        self.units = positive_int(units, "units")

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

    def backward(self, ops, dout, cache, need_dx=True):
        x2, x_shape, saved = cache
        dz = self._unfinish(ops, dout, saved)
        dx, dw, db = ops.dense_backward(dz, x2, self.params["w"], need_dx)
        grads = {"w": dw}
        if self.use_bias:
            grads["b"] = db
        return (None if dx is None else dx.reshape(x_shape)), grads

    def backward_sgd(self, ops, dout, cache, need_dx, lr, weight_decay):
        # One op: the weight gradient goes straight into w, never stored.
        x2, x_shape, saved = cache
        dz = self._unfinish(ops, dout, saved)
        dx = ops.dense_backward_sgd(dz, x2, self.params["w"], self.params.get("b"), lr=lr,
                                    weight_decay=weight_decay, need_dx=need_dx)
        return None if dx is None else dx.reshape(x_shape)

    def _describe(self):
        return [str(self.units)] + self._tail()

    def config(self):
        return {"units": self.units, "activation": self.activation, "init": self.init,
                "use_bias": self.use_bias}


class Activation(Layer):
    """An activation on its own: 'linear', 'relu', 'sigmoid', 'tanh' or 'softmax'
    (softmax only as the last layer, over the class axis). The subclasses ReLU(),
    Sigmoid(), Tanh() and Softmax() fix the name."""

    fixed = None  # set by the subclasses

    def __init__(self, activation=None):
        super().__init__()
        if self.fixed is not None:
            if activation is not None:
                raise TypeError(f"{type(self).__name__}() takes no arguments")
            activation = self.fixed
        self.activation = _choice(activation, "activation", ACTIVATIONS)

    def forward(self, ops, x, training=False, rng=None, head=False):
        if head or self.activation == "linear":
            return x, None
        y, saved = activation_forward(ops, self.activation, x)
        return y, (saved,)

    def backward(self, ops, dout, cache, need_dx=True):
        if cache is None:
            return dout, {}
        return activation_backward(ops, self.activation, dout, cache[0]), {}

    def _describe(self):
        return [] if self.fixed else [repr(self.activation)]

    def config(self):
        return {} if self.fixed else {"activation": self.activation}


class ReLU(Activation):
    fixed = "relu"


class Sigmoid(Activation):
    fixed = "sigmoid"


class Tanh(Activation):
    fixed = "tanh"


class Softmax(Activation):
    fixed = "softmax"


class _Pool(Layer):
    """A size window slid with stride (default: size) over each feature map, no padding."""

    def __init__(self, size=2, stride=None):
        super().__init__()
        self.size = _pair(size, "size")
        self.stride = self.size if stride is None else _pair(stride, "stride")

    def _output_shape(self, s):
        if len(s) != 3:
            raise ValueError(f"{type(self).__name__} needs (C, H, W) inputs, got input shape {s}")
        c, h, w = s
        if h < self.size[0] or w < self.size[1]:
            raise ValueError(f"{type(self).__name__} window {self.size} is larger than its "
                             f"input {(h, w)}")
        return (c, (h - self.size[0]) // self.stride[0] + 1,
                (w - self.size[1]) // self.stride[1] + 1)

    def forward(self, ops, x, training=False, rng=None, head=False):
        return getattr(ops, self._op)(x, self.size, self.stride), x

    def backward(self, ops, dout, x, need_dx=True):
        return getattr(ops, self._op + "_backward")(dout, x, self.size, self.stride), {}

    def _describe(self):
        return [_x(self.size)] + ([] if self.stride == self.size else [f"stride={_x(self.stride)}"])

    def config(self):
        return {"size": list(self.size), "stride": list(self.stride)}


class MaxPool2D(_Pool):
    """Maximum of each window."""
    _op = "maxpool2d"
    # Set by Sequential.build when the layer below is a ReLU Conv2D: backward then
    # applies that ReLU's mask to dout first, where the pooled value is > 0 (the
    # window's maximum, where the whole gradient goes, is > 0 exactly then; NaN
    # gives 0 in both), instead of the conv masking a 4x larger gradient.
    relu_mask_before = False

    def forward(self, ops, x, training=False, rng=None, head=False):
        out = ops.maxpool2d(x, self.size, self.stride)
        return out, ((x, out) if self.relu_mask_before else x)

    def backward(self, ops, dout, cache, need_dx=True):
        if self.relu_mask_before:
            x, out = cache
            dout = ops.relu_backward(dout, out)
        else:
            x = cache
        return ops.maxpool2d_backward(dout, x, self.size, self.stride), {}


class AvgPool2D(_Pool):
    """Mean of each window."""
    _op = "avgpool2d"


class L2Pool2D(_Pool):
    """Square root of the sum of squares of each window."""
    _op = "l2pool2d"


class GlobalAvgPool2D(Layer):
    """(N, C, H, W) -> (N, C): the mean of each whole feature map."""

    def _output_shape(self, s):
        if len(s) != 3:
            raise ValueError(f"GlobalAvgPool2D needs (C, H, W) inputs, got input shape {s}")
        return (s[0],)

    def forward(self, ops, x, training=False, rng=None, head=False):
        return ops.global_avgpool2d(x), x

    def backward(self, ops, dout, x, need_dx=True):
        return ops.global_avgpool2d_backward(dout, x), {}


class Flatten(Layer):
    """(N, ...) -> (N, product of the rest), C order."""

    def _output_shape(self, s):
        return (math.prod(s),)

    def forward(self, ops, x, training=False, rng=None, head=False):
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, ops, dout, shape, need_dx=True):
        return dout.reshape(shape), {}


class Dropout(Layer):
    """Zero each input with probability `rate` while training.

    inverted=True (Keras, PyTorch): kept values are scaled by 1/(1 - rate) while
    training; inference is the identity.
    inverted=False (the book's network3): no scaling while training; at inference
    the input is multiplied by (1 - rate), the expected value of the mask.
    """

    def __init__(self, rate, inverted=True):
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.inverted = bool(inverted)

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

    def backward(self, ops, dout, mask, need_dx=True):
        if mask is None:
            return dout, {}
        scale = self._keep() if self.inverted else 1.0
        return ops.dropout_backward(dout, mask, scale), {}

    def _describe(self):
        return [repr(self.rate)] + ([] if self.inverted else ["inverted=False"])

    def config(self):
        return {"rate": self.rate, "inverted": self.inverted}


REGISTRY = {cls.__name__: cls for cls in (
    Conv2D, Dense, Activation, ReLU, Sigmoid, Tanh, Softmax, MaxPool2D, AvgPool2D,
    L2Pool2D, GlobalAvgPool2D, Flatten, Dropout)}


def from_config(kind: str, config: dict) -> Layer:
    """A layer from its registry name and config (only fastcnn's own layers)."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown layer type {kind!r}; known: {', '.join(sorted(REGISTRY))}")
    if not isinstance(config, dict):
        raise ValueError(f"config of layer {kind!r} must be a dict, got {type(config).__name__}")
    try:
        return REGISTRY[kind](**config)
    except TypeError as e:
        raise ValueError(f"bad config for layer {kind!r}: {e}") from None


__all__ = ["Layer", "Conv2D", "Dense", "Activation", "ReLU", "Sigmoid", "Tanh", "Softmax",
           "MaxPool2D", "AvgPool2D", "L2Pool2D", "GlobalAvgPool2D", "Flatten", "Dropout",
           "ACTIVATIONS", "INITS", "REGISTRY", "from_config"]
