"""The native inference plan: a model's whole inference forward pass as one call
into the core (_core.InferencePlan: src/cpp/inference.cpp, bindings/inference.cpp).

An empty plan takes steps in order, each checked when it is added (its
parameter arrays: float32, C-contiguous, of the shapes the current input shape
needs); layers append theirs (Layer.infer, nn/steps.py). Then
plan.run(x, out) computes out (N,) + plan.output_shape from x (N,) +
plan.input_shape (float32, C-contiguous) with the GIL released once: each step
calls the kernel the layer's forward calls, so out is bit for bit the Python
forward's at the same batch size. The plan keeps references to its parameter
arrays and reads them at every run (updates in place are seen); intermediate
buffers are allocated for a batch size once and reused.

Steps: conv2d(w, b, stride, padding, relu), conv2d_maxpool(w, b, stride, padding,
size, pool_stride, relu), maxpool2d / avgpool2d / l2pool2d(size, stride),
global_avgpool2d(), dense(w, b), activation(name, alpha) (relu, leaky_relu,
sigmoid, tanh, softmax over every non-batch axis), scale(factor), flatten().
"""
from __future__ import annotations

from ... import _core


def inference_plan(input_shape):
    """An empty plan for examples of input_shape ((C, H, W) or (features,))."""
    return _core.InferencePlan([int(s) for s in input_shape])


__all__ = ["inference_plan"]
