"""fastcnn.callbacks -- hooks into Sequential.fit, and the History it returns.

A callback may define any of:
  on_train_begin(model)                 before the first epoch
  on_batch_begin(model, iteration)      iteration counts mini-batches from 0 over all epochs
  on_epoch_end(model, epoch, logs)      epoch counts from 1; logs: this epoch's figures
  on_train_end(model, history)
To stop training, set model.stop_training = True (and, to say why,
model.stop_reason). Learning-rate schedules change model.optimizer.lr.
model.history is the History fit is filling (in on_epoch_end it holds that
epoch too).
"""
from __future__ import annotations

import math


class History:
    """What fit returns: per-epoch lists in `history` (loss, accuracy, val_loss,
    val_accuracy, test_accuracy, lr, seconds), and the book's summary: the epoch
    with the best validation accuracy (ties go to the later epoch, as in network3)
    and the test accuracy measured at that epoch."""

    def __init__(self):
        self.history = {k: [] for k in ("loss", "accuracy", "val_loss", "val_accuracy",
                                          "test_accuracy", "lr", "seconds")}
        self.best_epoch = None
        self.best_val_accuracy = None
        self.test_accuracy = None
        self.stop_reason = None

    @property
    def epochs(self) -> int:
        return len(self.history["loss"])

    def to_dict(self) -> dict:
        """Everything in the History as JSON-able values (numbers as Python floats,
        which JSON writes and reads back exactly)."""
        return {"history": {k: [_plain(v) for v in vs] for k, vs in self.history.items()},
                "best_epoch": self.best_epoch,
                "best_val_accuracy": _plain(self.best_val_accuracy),
                "test_accuracy": _plain(self.test_accuracy),
                "stop_reason": self.stop_reason}

    @classmethod
    def from_dict(cls, d) -> "History":
        """The History to_dict described; ValueError if d is not such a dict."""
        h = cls()
        try:
            lists = d["history"]
            if not isinstance(lists, dict) or set(lists) != set(h.history):
                raise ValueError(f"not a History: per-epoch lists {lists!r:.200}")
            if not all(isinstance(v, list) for v in lists.values()) \
                    or len({len(v) for v in lists.values()}) != 1:
                raise ValueError("not a History: the per-epoch lists differ in length")
            h.history = {k: list(lists[k]) for k in h.history}
            h.best_epoch, h.best_val_accuracy = d["best_epoch"], d["best_val_accuracy"]
            h.test_accuracy, h.stop_reason = d["test_accuracy"], d["stop_reason"]
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a History: missing or malformed {e}") from None
        return h

    def __repr__(self):
        parts = [f"epochs={self.epochs}"]
        if self.best_epoch is not None:
            parts.append(f"best_epoch={self.best_epoch}")
        if self.best_val_accuracy is not None:  # None when fit had test_data only
            parts.append(f"best_val_accuracy={self.best_val_accuracy:.4f}")
        if self.test_accuracy is not None:
            parts.append(f"test_accuracy={self.test_accuracy:.4f}")
        if self.stop_reason:
            parts.append(f"stop_reason={self.stop_reason!r}")
        return f"History({', '.join(parts)})"


def _plain(v):
    """A number as a Python float (numpy scalars included); anything else unchanged."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    return float(v)


class Callback:
    def on_train_begin(self, model):
        pass

    def on_batch_begin(self, model, iteration):
        pass

    def on_epoch_end(self, model, epoch, logs):
        pass

    def on_train_end(self, model, history):
        pass


def _monitor(monitor: str) -> tuple[str, bool]:
    """(key, higher_is_better)."""
    known = {"val_accuracy": True, "accuracy": True, "val_loss": False, "loss": False}
    if monitor not in known:
        raise ValueError(f"monitor must be one of {', '.join(known)}, got {monitor!r}")
    return monitor, known[monitor]


class _Watcher(Callback):
    """Tracks whether the monitored figure improved by more than min_delta."""

    def __init__(self, monitor, patience, min_delta):
        self.monitor, self.higher = _monitor(monitor)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {patience!r}")
        if not isinstance(min_delta, (int, float)) or not min_delta >= 0:
            raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}")
        self.patience, self.min_delta = patience, float(min_delta)
        self.best, self.wait = None, 0

    def _improved(self, logs) -> bool:
        value = logs.get(self.monitor)
        if value is None:
            raise ValueError(f"{type(self).__name__} monitors {self.monitor!r}, which fit "
                             "does not report (give validation_data for val_* figures)")
        better = (self.best is None
                  or (value > self.best + self.min_delta if self.higher
                      else value < self.best - self.min_delta))
        if better:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        return better


class EarlyStopping(_Watcher):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs."""

    def __init__(self, monitor="val_accuracy", patience=5, min_delta=0.0):
        super().__init__(monitor, patience, min_delta)

    def on_train_begin(self, model):
        self.best, self.wait = None, 0

    def on_epoch_end(self, model, epoch, logs):
        if not self._improved(logs) and self.wait > self.patience - 1:
            model.stop_training = True
            model.stop_reason = (f"early stopping: {self.monitor} has not improved for "
                                 f"{self.wait} epochs (best {self.best:.4f})")


class StepLR(Callback):
    """Multiply the learning rate by gamma every step_size epochs."""

    def __init__(self, step_size, gamma=0.1):
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"step_size must be a positive integer, got {step_size!r}")
        if not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
            raise ValueError(f"gamma must lie in (0, 1], got {gamma!r}")
        self.step_size, self.gamma = step_size, float(gamma)

    def on_epoch_end(self, model, epoch, logs):
        if epoch % self.step_size == 0:
            model.optimizer.lr *= self.gamma


class ReduceLROnPlateau(_Watcher):
    """Multiply the learning rate by `factor` when `monitor` has not improved for
    `patience` epochs, then wait again; never below min_lr."""

    def __init__(self, monitor="val_accuracy", factor=0.1, patience=3, min_delta=0.0,
                 min_lr=0.0):
        super().__init__(monitor, patience, min_delta)
        if not isinstance(factor, (int, float)) or not 0 < factor < 1:
            raise ValueError(f"factor must lie in (0, 1), got {factor!r}")
        if not isinstance(min_lr, (int, float)) or not min_lr >= 0 or math.isinf(min_lr):
            raise ValueError(f"min_lr must be a finite number >= 0, got {min_lr!r}")
        self.factor, self.min_lr = float(factor), float(min_lr)

    def on_train_begin(self, model):
        self.best, self.wait = None, 0

    def on_epoch_end(self, model, epoch, logs):
        if not self._improved(logs) and self.wait >= max(self.patience, 1):
            model.optimizer.lr = max(model.optimizer.lr * self.factor, self.min_lr)
            self.wait = 0


__all__ = ["History", "Callback", "EarlyStopping", "StepLR", "ReduceLROnPlateau"]
