"""One mini-batch through a model: the forward pass with its loss, and the
count of correct answers (shared by the training loop, its MPI step and
evaluate)."""
from __future__ import annotations

import numpy as np


def forward_loss(model, x, y, idx, augment, rng, head, loss):
    """One training forward pass on the examples idx (a slice or an index array):
    returns (output, labels, caches, loss value, d loss / d output)."""
    xb, yb = model.batch(x[idx]), y[idx]
    if augment is not None:
        xb = augment(xb, rng)
    out, caches = model.forward(xb, True, rng, head)
    value, dout = loss(model.ops, out, yb)
    return out, yb, caches, value, dout


def n_correct(out, y) -> int:
    """How many rows of out have their largest value at the label (or at the
    target's largest value, for target rows)."""
    if y.ndim == 1:
        return int(np.count_nonzero(np.argmax(out, axis=1) == y))
    return int(np.count_nonzero(np.argmax(out, axis=1) == np.argmax(y, axis=1)))


__all__ = ["forward_loss", "n_correct"]
