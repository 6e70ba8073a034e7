"""fastcnn.datasets -- training data: MNIST bundled with fastcnn (mnist/, checked
against its SHA-256 sums) or any data set of four IDX files (idx.py), CIFAR-10 and
CIFAR-100 (cifar.py), one string naming any of them (sources.py), the shift
augmentations (augment.py), and the book's flat rows and expanded set (book.py).
See idx.py's docstring for layouts, the split and every check made on a file."""
from __future__ import annotations

from .augment import expand_shifts, random_shift
from .cifar import load_cifar10, load_cifar100
from .idx import clear_cache, image_shape, load_mnist, num_classes

__all__ = ["load_mnist", "load_cifar10", "load_cifar100", "clear_cache", "num_classes",
           "image_shape", "expand_shifts", "random_shift"]
