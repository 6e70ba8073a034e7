"""fastcnn.onnx_export -- a trained Sequential model as an ONNX file.

    model.export_onnx("model.onnx")          # or export_onnx(model, "model.onnx")
    python -m fastcnn export MODEL.npz OUT.onnx

The graph computes exactly what model.predict_proba does at inference time:

  input   "input", float32 (N, C, H, W) -- or (N, features) for a model of flat rows --
          pixel values as the model sees them (uint8 images divided by 255)
  output  "output", float32: the last layer's output (class probabilities when
          the network ends in softmax), N free

Each layer appends its own nodes (Layer.onnx, through the _Graph below); for
fastcnn's layers (opset OPSET):

  Conv2D           Conv (strides, symmetric pads) with its bias, then its activation
  Dense            Flatten (inputs of more than one axis, C order) + Gemm (x @ w + b)
  MaxPool2D        MaxPool          (no padding, floor of the output size, as fastcnn)
  AvgPool2D        AveragePool      (no padding: every window is whole)
  L2Pool2D         LpPool p=2       (sqrt of the sum of squares, fastcnn's definition)
  GlobalAvgPool2D  GlobalAveragePool + Flatten -> (N, C)
  Flatten          Flatten
  Dropout          nothing when inverted (Keras style); network3's Dropout
                   (inverted=False) multiplies by (1 - rate) at inference: Mul
  activations      Relu, Sigmoid, Tanh, Softmax; softmax runs over all non-batch
                   axes as fastcnn's does (Flatten + Softmax + Reshape when needed)

A Conv2D + MaxPool2D pair that fastcnn fuses into one op is the plain Conv, Relu,
MaxPool sequence here: the same numbers. Parameters are stored as float32 (a
float64 model is rounded once). The file is checked with onnx.checker before it
is written, and written atomically. Needs the optional extra: pip install
"fastcnn[onnx]" (onnx; onnxruntime to run the file).
"""
from __future__ import annotations

import os

import numpy as np

from ..common.version import VERSION
from .files import atomic_write

# ONNX opset of the graph: Softmax over the last axis needs 13+; onnxruntime runs
# opset 17 since 1.12, and every version the [onnx] extra allows reads it.
OPSET = 17
INPUT, OUTPUT = "input", "output"


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError('ONNX export needs the onnx package: pip install "fastcnn[onnx]"') \
            from None
    return onnx


class _Graph:
    """Nodes and initializers being appended in order; `x` names the current tensor
    and `shape` its shape without the batch axis."""

    def __init__(self, onnx, input_shape):
        self.onnx, self.h = onnx, onnx.helper
        self.nodes, self.inits = [], []
        self.x, self.shape = INPUT, tuple(input_shape)
        self.count = 0

    def name(self, stem):
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem, array):
        array = np.array(array, dtype=np.float32, order="C")   # 0-d stays a scalar
        name = self.name(stem)
        self.inits.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def int_const(self, stem, values):
        name = self.name(stem)
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(values, np.int64), name))
        return name

    def op(self, op_type, *inputs, shape=None, **attrs):
        """Append op_type(self.x, *inputs); it becomes the current tensor."""
        out = self.name(op_type.lower())
        self.nodes.append(self.h.make_node(op_type, [self.x, *inputs], [out], **attrs))
        self.x = out
        if shape is not None:
            self.shape = tuple(shape)
        return out

    def flatten(self):
        if len(self.shape) != 1:
            self.op("Flatten", axis=1, shape=(int(np.prod(self.shape)),))


def to_onnx(model, opset=OPSET):
    """The onnx.ModelProto of a built Sequential model (checked by onnx.checker)."""
    onnx = _onnx()
    model = _sequential(model)
    if model.input_shape is None:
        raise ValueError("the model is not built yet: give input_shape or call fit first")
    if isinstance(opset, bool) or not isinstance(opset, int) or not 13 <= opset:
        raise ValueError(f"opset must be an integer >= 13, got {opset!r}")
    g = _Graph(onnx, model.input_shape)
    for i, layer in enumerate(model.layers):
        try:
            layer.onnx(g)
        except TypeError as e:
            raise TypeError(f"layer {i}: {e}") from None
        if tuple(g.shape) != tuple(layer.output_shape):
            raise AssertionError(f"ONNX shape {g.shape} != layer output {layer.output_shape} "
                                 f"at layer {i}")
    h, f32 = onnx.helper, onnx.TensorProto.FLOAT
    # the last node writes the graph output: rename its output
    if g.nodes:
        g.nodes[-1].output[0] = OUTPUT
    else:   # a model whose layers all vanish (e.g. only inverted dropout)
        g.nodes.append(h.make_node("Identity", [INPUT], [OUTPUT]))
    graph = h.make_graph(
        g.nodes, "fastcnn",
        [h.make_tensor_value_info(INPUT, f32, ["N", *model.input_shape])],
        [h.make_tensor_value_info(OUTPUT, f32, ["N", *g.shape])], g.inits)
    proto = h.make_model(graph, producer_name="fastcnn", producer_version=VERSION,
                         opset_imports=[h.make_opsetid("", opset)],
                         doc_string=repr(model))
    # IR version 8 is opset 17's: older onnxruntime releases refuse a newer one.
    proto.ir_version = min(proto.ir_version, 8)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, path, opset=OPSET):
    """Write `model` as an ONNX file at `path`, atomically; returns the path."""
    path = os.fspath(path)
    data = to_onnx(model, opset).SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return path


def _sequential(model):
    """The Sequential model of model (a network3.Network wraps one), by what it
    has: layers and an input shape."""
    if not hasattr(model, "layers") or not hasattr(model, "input_shape"):
        model = getattr(model, "model", None)
    if not hasattr(model, "layers") or not hasattr(model, "input_shape"):
        raise TypeError(f"model must be a fastcnn Sequential (or network3 Network), got "
                        f"{type(model).__name__}")
    return model


__all__ = ["export_onnx", "to_onnx", "OPSET"]
