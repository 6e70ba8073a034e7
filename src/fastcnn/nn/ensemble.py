"""fastcnn.ensemble -- several trained models that decide together.

method="vote": each model names its most probable class and the class with the
most votes wins (the book's ensemble of five nets); a tie goes to the lowest class
index. method="mean": the class with the highest mean predicted probability.
"""
from __future__ import annotations

import numpy as np


class Ensemble:
    def __init__(self, models, method="vote"):
        self.models = list(models)
        if not self.models:
            raise ValueError("an Ensemble needs at least one model")
        if method not in ("vote", "mean"):
            raise ValueError(f"method must be 'vote' or 'mean', got {method!r}")
        self.method = method

    def _check_outputs(self):
        """Members must agree on the number of classes (checked once each is built)."""
        shapes = [tuple(m.output_shape) for m in self.models]
        if len(set(shapes)) > 1:
            raise ValueError(f"the models of an Ensemble must have the same output shape, "
                             f"got {', '.join(map(str, shapes))}")
        return shapes[0]

    def predict_proba(self, x, batch_size=1000):
        """Mean of the members' outputs (N, classes)."""
        outs = [m.predict_proba(x, batch_size) for m in self.models]
        self._check_outputs()
        return np.mean(outs, axis=0)

    def votes(self, x, batch_size=1000):
        """(N, classes): how many members chose each class."""
        preds = [m.predict(x, batch_size) for m in self.models]
        k = self._check_outputs()[0]
        counts = np.zeros((preds[0].shape[0], k), dtype=np.int64)
        for p in preds:
            counts[np.arange(p.shape[0]), p] += 1
        return counts

    def predict(self, x, batch_size=1000):
        scores = self.votes(x, batch_size) if self.method == "vote" else \
            self.predict_proba(x, batch_size)
        return np.argmax(scores, axis=1)  # argmax takes the first (lowest) class on ties

    def evaluate(self, x, y, batch_size=1000):
        """{'accuracy'} of the ensemble on (x, y)."""
        y = np.asarray(y)
        pred = self.predict(x, batch_size)
        if y.shape != pred.shape:
            raise ValueError(f"y must hold one label per example: shape {pred.shape}, "
                             f"got {y.shape}")
        return {"accuracy": float(np.mean(pred == y))}

    def __repr__(self):
        return f"Ensemble({len(self.models)} models, method={self.method!r})"


__all__ = ["Ensemble"]
