"""What the training-stack tests (test_network_gradients, test_fit, test_callbacks)
share: random data, and a model's twin in another dtype or backend."""
from __future__ import annotations

import numpy as np

from fastcnn import Sequential
from fastcnn import layers as L


def _data(shape, n, classes, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + shape), rng.integers(0, classes, n)


def _twin(model, dtype="float64", backend="reference"):
    """The same layers and parameters in another dtype / backend."""
    layers = [L.from_config(type(layer).__name__, layer.config()) for layer in model.layers]
    twin = Sequential(layers, input_shape=model.input_shape, backend=backend, dtype=dtype)
    for mine, theirs in zip(model.layers, twin.layers):
        for name, p in mine.params.items():
            theirs.params[name][...] = p
    return twin
