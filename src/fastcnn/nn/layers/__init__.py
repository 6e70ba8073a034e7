"""fastcnn.layers -- the building blocks of a network (contract: base.py).

  base.py        Layer (the contract), Affine (weights + bias + activation)
  conv.py        Conv2D
  dense.py       Dense
  pool.py        MaxPool2D, AvgPool2D, L2Pool2D, GlobalAvgPool2D
  activation.py  Activation, ReLU, Sigmoid, Tanh, Softmax
  reshape.py     Flatten, Dropout

REGISTRY maps a class name to its class: a saved model names its layers, and
from_config rebuilds them from fastcnn's own classes only.
"""
from __future__ import annotations

from .activation import Activation, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import ACTIVATIONS, INITS, Layer
from .conv import Conv2D
from .dense import Dense
from .pool import AvgPool2D, GlobalAvgPool2D, L2Pool2D, MaxPool2D
from .reshape import Dropout, Flatten

REGISTRY = {cls.__name__: cls for cls in (
    Conv2D, Dense, Activation, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, MaxPool2D, AvgPool2D,
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


__all__ = ["Layer", "Conv2D", "Dense", "Activation", "ReLU", "LeakyReLU", "Sigmoid", "Tanh",
           "Softmax",
           "MaxPool2D", "AvgPool2D", "L2Pool2D", "GlobalAvgPool2D", "Flatten", "Dropout",
           "ACTIVATIONS", "INITS", "REGISTRY", "from_config"]
