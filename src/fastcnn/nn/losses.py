"""fastcnn.losses -- cost functions: (ops, out, y) -> (mean loss over the batch, dout).

`out` is the network's output; `y` holds integer class labels (N,) or, for the
quadratic and binary cross-entropy costs, targets shaped like `out`. Integer
labels are turned into one-hot targets for those two. Each loss names the
activation it applies itself (`head`): the network's last activation is then
skipped in training and the loss works on logits, which is exact and stable.

  log_likelihood        softmax + negative log-likelihood (the book's "softmax
                        with log-likelihood"; Keras' categorical cross-entropy)
  binary_cross_entropy  sigmoid + cross-entropy per output, summed over outputs
  quadratic             0.5 * ||a - y||^2 on the activated output
"""
from __future__ import annotations

import numpy as np

from ..common.checks import labels_in_range


def _targets(y, out):
    """Targets shaped like out: one-hot rows for integer labels."""
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        k = out.shape[1]
        labels_in_range(y, k, "labels", "output classes")
        t = np.zeros(out.shape, dtype=out.dtype)
        t[np.arange(y.shape[0]), y] = 1
        return t
    if y.shape != out.shape:
        raise ValueError(f"targets y must be integer labels (N,) or shaped like the network "
                         f"output {tuple(out.shape)}, got shape {tuple(y.shape)}")
    return y.astype(out.dtype, copy=False)


class Loss:
    name = ""
    head = None           # activation the loss applies itself, or None
    heads = ("linear",)   # last activations it accepts (its head, or linear = logits)

    def __call__(self, ops, out, y):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class LogLikelihood(Loss):
    name = "log_likelihood"
    head = "softmax"
    heads = ("softmax", "linear")

    def __call__(self, ops, out, y):
        return ops.softmax_loglik(out, y)


class BinaryCrossEntropy(Loss):
    name = "binary_cross_entropy"
    head = "sigmoid"
    heads = ("sigmoid", "linear")

    def __call__(self, ops, out, y):
        return ops.binary_cross_entropy(out, _targets(y, out))


class Quadratic(Loss):
    name = "quadratic"
    head = None
    heads = ("linear", "sigmoid", "tanh", "relu")

    def __call__(self, ops, out, y):
        return ops.quadratic_cost(out, _targets(y, out))


_LOSSES = {cls.name: cls for cls in (LogLikelihood, BinaryCrossEntropy, Quadratic)}
_ALIASES = {"cross_entropy": "log_likelihood", "categorical_crossentropy": "log_likelihood",
            "nll": "log_likelihood", "binary_crossentropy": "binary_cross_entropy",
            "bce": "binary_cross_entropy", "mse": "quadratic"}


def get(loss) -> Loss:
    """A Loss from a Loss instance or a name ('log_likelihood', 'binary_cross_entropy',
    'quadratic', or an alias such as 'categorical_crossentropy' or 'mse')."""
    if isinstance(loss, Loss):
        return loss
    key = _ALIASES.get(loss, loss) if isinstance(loss, str) else None
    if key not in _LOSSES:
        names = sorted(_LOSSES) + sorted(_ALIASES)
        raise ValueError(f"unknown loss {loss!r}; known: {', '.join(names)}")
    return _LOSSES[key]()


__all__ = ["Loss", "LogLikelihood", "BinaryCrossEntropy", "Quadratic", "get"]
