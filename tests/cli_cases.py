"""What the CLI tests share: tiny slices of MNIST for whole runs, and the
results.md row `reproduce` writes for a result."""
from __future__ import annotations

from fastcnn import datasets


def _row(r):
    """The results.md line the reproduce table should hold for result r."""
    row = "Keras" if r["row"] is None else r["row"]
    best = r["best_epoch"] or ""
    return (f"| {row} | {r['preset']} | {r['book']:.2f} | {r['test_accuracy']:.2f}% | "
            f"{r['test_accuracy'] - r['book']:+.2f} | {r['epochs_run']} | {best} | "
            f"{r['seconds'] / 60:.1f} min |")


# A tiny slice of MNIST (training, validation, test images), monkeypatched in by
# conftest.tiny_mnist or passed on as _load_tiny().
TINY = (300, 100, 100)
_REAL_LOAD = datasets.load_mnist


def _load_tiny(real=_REAL_LOAD, sizes=TINY):
    def load_slice(path=None, validation=10000, dtype="float32"):
        sets = real(path, validation=validation, dtype=dtype)
        return tuple((x[:n], y[:n]) for (x, y), n in zip(sets, sizes))
    return load_slice
