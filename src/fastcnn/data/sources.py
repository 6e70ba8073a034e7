"""Which data set a command or a preset trains on, named by one string.

  None              the MNIST copy bundled with fastcnn
  DIR or mnist:DIR  the four IDX files in DIR (MNIST, Fashion-MNIST, KMNIST...)
  cifar10:PATH      CIFAR-10's binary version (a directory or the .tar.gz)
  cifar100:PATH     CIFAR-100's binary version, fine labels (cifar100-coarse: the 20)

load(spec) gives ((x, y), (x_val, y_val), (x_test, y_test)) as images (N, C, H, W);
validation=None holds out each set's usual share (MNIST 10000 as the book does,
CIFAR a tenth: 5000).
"""
from __future__ import annotations

from . import cifar, idx

KINDS = ("mnist", "cifar10", "cifar100", "cifar100-coarse")


def parse(spec):
    """(kind, path or None) of a data spec; ValueError for an unknown kind."""
    if spec is None:
        return "mnist", None
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"data must be a str such as 'cifar10:DIR' or a directory, got {spec!r}")
    kind, sep, path = spec.partition(":")
    if not sep or len(kind) == 1:   # a plain path (a drive letter is not a kind)
        return "mnist", spec
    if kind not in KINDS:
        raise ValueError(f"data {spec!r}: unknown kind {kind!r}; known: {', '.join(KINDS)} "
                         "(or a directory of IDX files)")
    if not path:
        raise ValueError(f"data {spec!r}: give the path after '{kind}:'")
    return kind, path


def load(spec=None, validation=None, dtype="float32"):
    """The training, validation and test sets of a data spec, as images."""
    kind, path = parse(spec)
    if kind == "mnist":
        return idx.load_mnist(path, validation=10000 if validation is None else validation,
                              dtype=dtype)
    if kind == "cifar10":
        return cifar.load_cifar10(path, validation=validation, dtype=dtype)
    return cifar.load_cifar100(path, validation=validation, dtype=dtype,
                               labels="coarse" if kind == "cifar100-coarse" else "fine")


def image_shape(spec) -> tuple:
    """(C, H, W) of the spec's images, without loading them."""
    kind, path = parse(spec)
    return idx.image_shape(path) if kind == "mnist" else cifar.SHAPE


def describe(spec) -> str:
    """A short name for messages: 'MNIST', 'cifar10 at DIR', 'IDX files in DIR'."""
    kind, path = parse(spec)
    if path is None:
        return "MNIST"
    return f"IDX files in {path}" if kind == "mnist" else f"{kind} at {path}"


__all__ = ["KINDS", "parse", "load", "image_shape", "describe"]
