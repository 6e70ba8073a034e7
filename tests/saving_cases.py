"""The small model (and its data) that test_saving.py and test_saving_refusals.py
save and load."""
from __future__ import annotations

import numpy as np

from fastcnn import Sequential, optim
from fastcnn import layers as L

SHAPE = (2, 9, 11)


def _data(n=17, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + SHAPE).astype(np.float32), rng.integers(0, 4, n)


def _model(backend="native", dtype="float32", seed=3):
    layers = [L.Conv2D(3, 3, stride=2, padding=1, activation="relu"), L.MaxPool2D(2),
              L.Dropout(0.3), L.Dense(5, activation="tanh", init="book"),
              L.Dense(4, activation="softmax")]
    return Sequential(layers, input_shape=SHAPE, backend=backend, dtype=dtype, seed=seed)


def _trained(opt=None, backend="native", dtype="float32", seed=3):
    model = _model(backend, dtype, seed)
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=6, optimizer=opt or optim.Adam(0.01), seed=1, verbose=0)
    return model
