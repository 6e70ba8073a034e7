"""The book's data: MNIST as flat rows split 50000 / 10000 / 10000, as network3's
load_data_shared gives it, and the book's expanded training set."""
from __future__ import annotations

import gzip
import os
import pickle

import numpy as np

from .augment import expand_shifts
from . import idx, sources

# The expanded set is shuffled once with this seed, so every run sees the same order.
EXPANDED_SHUFFLE_SEED = 0


def load_data_shared(filename=None, expanded=False, dtype="float32"):
    """[(x, y) training, validation, test]: x flat (N, 784), y int64 labels.

    filename=None: the MNIST copy bundled with fastcnn, split as the book's
    mnist.pkl.gz (50000 / 10000 / 10000). A directory: the four IDX files in it;
    another data spec of fastcnn.data.sources ("cifar10:DIR"...): that set, its
    images flattened (C*H*W values per row).
    A file: the book's mnist.pkl.gz (or mnist_expanded.pkl.gz) -- a Python pickle,
    and loading a pickle can run code from the file, so only give a file you trust.
    expanded=True: the training set with each image's four 1-pixel shifts
    (250000 images), shuffled once with a fixed seed, as the book's
    expand_mnist.py does; it is built in place, so loading peaks near one copy
    of it (196 MB as uint8). dtype="uint8" keeps pixels as
    bytes (a quarter of the memory; fastcnn scales them per mini-batch).
    """
    if filename is not None and os.path.isfile(filename):
        with gzip.open(filename, "rb") as f:
            sets = pickle.load(f, encoding="latin1")  # the book's file is a Python 2 pickle
        out = [(np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64))
               for x, y in sets]
    else:
        (xt, yt), (xv, yv), (xs, ys) = sources.load(filename, dtype=dtype)
        if expanded:
            # The arrays above are copies; the raw files load_mnist keeps cached
            # (55 MB) would only add to the peak of the long expanded-set run.
            idx.clear_cache()
            xt, yt = expanded_set(xt, yt)
        return [(x.reshape(x.shape[0], -1), y) for x, y in ((xt, yt), (xv, yv), (xs, ys))]
    if expanded:
        x, y = out[0]
        x, y = expanded_set(x.reshape(-1, 1, 28, 28), y)
        out[0] = (x.reshape(x.shape[0], -1), y)
    return out


def expanded_set(x, y):
    """The book's expanded set: every image and its four 1-pixel shifts, shuffled
    once (as the book's expand_mnist.py does before saving its pickle; network3
    itself never shuffles), here with a fixed seed so every run sees the same order.
    expand_shifts writes each image straight to its shuffled row, so the unshuffled
    set is never held as well (for 250k uint8 images that would be 196 MB more)."""
    order = np.random.default_rng(EXPANDED_SHUFFLE_SEED).permutation(5 * len(x))
    return expand_shifts(x, y, order=order)


__all__ = ["load_data_shared", "expanded_set", "EXPANDED_SHUFFLE_SEED"]
