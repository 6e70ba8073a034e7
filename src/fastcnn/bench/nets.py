"""The benchmark nets, their twins on the reference backend and in PyTorch, and
the machine they run on.

The nets (input 1x28x28, 10 classes):
  N1  conv 20 5x5 sigmoid, max-pool 2, FC 100 sigmoid, softmax 10          (book row 2)
  N2  conv 20 5x5 ReLU, pool, conv 40 5x5 ReLU, pool, FC 100 ReLU, softmax (book row 4)
  N3  N2's conv stack, FC 1000 ReLU, dropout 0.5, FC 1000 ReLU, dropout 0.5, softmax
      (book row 8, with Keras-style inverted dropout, which torch also uses)
  K1  conv 32 3x3 ReLU, pool, conv 64 3x3 ReLU, pool, flatten, dropout 0.5, softmax

fastcnn loads no OpenMP runtime (its threads are its own), so torch's bundled
libgomp is the only one in the process and the import order does not matter; each
library's thread count is set on its own (timing.thread_setter).
"""
from __future__ import annotations

import os
import platform

import numpy as np

from ..backend.build import build_info
from ..data import idx
from ..nn import layers as L
from ..nn.model import Sequential

try:
    import torch
except ImportError:
    torch = None

NO_TORCH = "PyTorch not installed: pip install torch==2.13.0 (or pip install '.[bench]')"
NETS = ("N1", "N2", "N3", "K1")
LR = 0.01
INFER_BATCH = 1000
# ---------------------------------------------------------------- machine --

def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """CPU, core count, fastcnn build (SIMD path, threads), NumPy and its BLAS."""
    info = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "fastcnn": build_info()}
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: d.get(k) for k in ("internal_api", "version", "architecture",
                                                 "num_threads", "threading_layer")}
                        for d in threadpool_info() if d.get("user_api") == "blas"]
    except ImportError:
        info["blas"] = "threadpoolctl not installed"
    try:
        info["loadavg_at_start"] = os.getloadavg()
    except OSError:
        pass
    return info


# ------------------------------------------------------------------ the nets --

def net_layers(name):
    """The fastcnn layers of one benchmark net (input 1x28x28, 10 classes)."""
    def conv_stack():
        return [L.Conv2D(20, 5, activation="relu"), L.MaxPool2D(2),
                L.Conv2D(40, 5, activation="relu"), L.MaxPool2D(2)]
    out = L.Dense(10, activation="softmax")
    if name == "N1":
        return [L.Conv2D(20, 5, activation="sigmoid"), L.MaxPool2D(2),
                L.Dense(100, activation="sigmoid"), out]
    if name == "N2":
        return conv_stack() + [L.Dense(100, activation="relu"), out]
    if name == "N3":
        return conv_stack() + [L.Dense(1000, activation="relu"), L.Dropout(0.5),
                               L.Dense(1000, activation="relu"), L.Dropout(0.5), out]
    if name == "K1":
        return [L.Conv2D(32, 3, activation="relu"), L.MaxPool2D(2),
                L.Conv2D(64, 3, activation="relu"), L.MaxPool2D(2),
                L.Flatten(), L.Dropout(0.5), out]
    raise ValueError(f"unknown net {name!r}; known: {', '.join(NETS)}")


def build(name, backend="native", seed=0):
    return Sequential(net_layers(name), input_shape=(1, 28, 28), backend=backend, seed=seed)


def twin(model, backend, dtype="float32"):
    """The same layers, parameters and rng seed on another backend (or dtype)."""
    layers = [L.from_config(type(layer).__name__, layer.config()) for layer in model.layers]
    other = Sequential(layers, input_shape=model.input_shape, backend=backend, dtype=dtype,
                       seed=model.seed)
    for mine, theirs in zip(model.layers, other.layers):
        for k, p in mine.params.items():
            theirs.params[k][...] = p
    return other


def to_torch(model):
    """An equivalent torch.nn.Sequential holding a copy of the model's parameters,
    each layer giving its own twin (Layer.torch). The final softmax is left out:
    CrossEntropyLoss takes logits."""
    nn = torch.nn
    last = len(model.layers) - 1
    return nn.Sequential(*[m for i, layer in enumerate(model.layers)
                           for m in layer.torch(nn, last=i == last)])


def load_data():
    """(x, y, x as torch, y as torch): the bundled MNIST training set, in order."""
    (x, y), _, _ = idx.load_mnist()
    return (x, y) + ((torch.from_numpy(x), torch.from_numpy(y)) if torch else (None, None))


__all__ = ["NETS", "NO_TORCH", "LR", "INFER_BATCH", "cpu_model", "machine_info", "net_layers",
           "build", "twin", "to_torch", "load_data", "torch"]
