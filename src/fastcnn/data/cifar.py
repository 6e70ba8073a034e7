"""CIFAR-10 and CIFAR-100 in their official binary versions, loaded and checked.

load_cifar10(path, validation=None, dtype="float32")
load_cifar100(path, validation=None, dtype="float32", labels="fine")
    -> ((x_train, y_train), (x_val, y_val), (x_test, y_test))

    Images are (N, 3, 32, 32) -- the red, green and blue planes of each record,
    as stored -- float32 in [0, 1] (byte / 255) or, with dtype="uint8", the raw
    bytes. Labels are int64 (N,). Of the N training images (50000 in the
    official files) the first N - validation train and the last `validation`
    validate (None: a tenth, 5000 of the official set); the test images (10000)
    test. Every call returns fresh arrays the caller owns.

    path: the directory holding the .bin files (cifar-10-batches-bin/ or
    cifar-100-binary/ as the archives unpack), a directory holding that one, or
    the downloaded archive itself (cifar-10-binary.tar.gz, cifar-100-binary.tar.gz).

The files: CIFAR-10 has data_batch_1.bin .. data_batch_5.bin and test_batch.bin,
each record one label byte (0..9) and 3072 pixel bytes; CIFAR-100 has train.bin and
test.bin, each record a coarse label byte (0..19), a fine label byte (0..99) and
3072 pixel bytes. Checked before use: every file is a whole number of records and
at most fastcnn.io.files.MAX_DATA_BYTES, read no further than its size says, and
every label lies in its range. A missing file raises FileNotFoundError; anything
else wrong fastcnn.FileFormatError naming the file. (There are no official
checksums of the unpacked files to check against.)
"""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from ..common.checks import choice, integer
from ..io.files import MAX_DATA_BYTES, read_bounded, refuse
from .idx import image_dtype

SHAPE = (3, 32, 32)
PIXELS = 3 * 32 * 32

# name: (folder as unpacked, training files, test files, label bytes per record,
#        classes of each label byte)
_SETS = {
    "cifar10": ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)],
                ["test_batch.bin"], (10,)),
    "cifar100": ("cifar-100-binary", ["train.bin"], ["test.bin"], (20, 100)),
}


def load_cifar10(path, validation=None, dtype="float32"):
    """((x_train, y_train), (x_val, y_val), (x_test, y_test)) of CIFAR-10; see the
    module docstring."""
    return _load("cifar10", path, validation, dtype, label=0)


def load_cifar100(path, validation=None, dtype="float32", labels="fine"):
    """The same for CIFAR-100; labels="fine" (100 classes) or "coarse" (20)."""
    labels = choice(labels, "labels", ("fine", "coarse"))
    return _load("cifar100", path, validation, dtype, label=1 if labels == "fine" else 0)


def _load(name, path, validation, dtype, label):
    if validation is not None:
        validation = integer(validation, "validation", 0)
    dtype = image_dtype(dtype)
    folder, train_files, test_files, classes = _SETS[name]
    with _Source(Path(path), folder) as src:
        train = [src.records(f, len(classes)) for f in train_files]
        test = [src.records(f, len(classes)) for f in test_files]
    x_tr, y_tr = _split(train, classes, label, train_files, src)
    x_te, y_te = _split(test, classes, label, test_files, src)
    if validation is None:
        validation = len(x_tr) // 10
    if validation >= len(x_tr):
        raise ValueError(f"validation must be less than the {len(x_tr)} training images in "
                         f"'{src.where}' (the number to hold out), got {validation}")
    n = len(x_tr) - validation
    return ((_images(x_tr[:n], dtype), y_tr[:n].copy()), (_images(x_tr[n:], dtype),
            y_tr[n:].copy()), (_images(x_te, dtype), y_te))


def _split(parts, classes, label, files, src):
    """(pixels (N, 3072) uint8, labels (N,) int64) of the records of `files`,
    every label byte checked against its range."""
    xs, ys = [], []
    for records, f in zip(parts, files):
        for i, k in enumerate(classes):
            bad = records[:, i] >= k
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise refuse(src.name(f), f"record {r} has label {int(records[r, i])}; "
                                          f"labels of this kind lie in [0, {k})")
        xs.append(records[:, len(classes):])
        ys.append(records[:, label].astype(np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _images(pixels, dtype):
    """(N, 3072) bytes -> a fresh (N, 3, 32, 32) array of dtype."""
    x = pixels.reshape((-1,) + SHAPE).astype(dtype)   # astype copies
    if x.dtype == np.float32:
        x /= np.float32(255)
    return x


class _Source:
    """The .bin files of one data set, from a directory or a .tar.gz archive."""

    def __init__(self, path: Path, folder: str):
        self.path, self.folder, self.tar = path, folder, None
        if path.is_file():
            try:
                self.tar = tarfile.open(path, "r:*")
            except (tarfile.TarError, OSError) as e:
                raise refuse(path, f"not a readable tar archive of CIFAR ({e})") from None
            self.where = path
        elif (path / folder).is_dir():
            self.where = path / folder
        elif path.is_dir():
            self.where = path
        else:
            raise FileNotFoundError(f"data directory or archive '{path}' does not exist")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.tar is not None:
            self.tar.close()

    def name(self, file):
        return f"{self.where}:{self.folder}/{file}" if self.tar is not None else self.where / file

    def records(self, file, label_bytes):
        """The records of one file as a (N, label_bytes + 3072) uint8 array."""
        size = label_bytes + PIXELS
        if self.tar is None:
            p = self.where / file
            if not p.is_file():
                raise FileNotFoundError(f"data file '{file}' not found in directory "
                                        f"'{self.where}'")
            n = p.stat().st_size
            self._check_size(p, n, size)
            with open(p, "rb") as f:
                data = read_bounded(f, n, p, "the file")
        else:
            member = self._member(file)
            self._check_size(self.name(file), member.size, size)
            f = self.tar.extractfile(member)
            data = read_bounded(f, member.size, self.name(file), "the member")
        return np.frombuffer(data, np.uint8).reshape(-1, size)

    def _member(self, file):
        for m in self.tar.getmembers():
            if m.isfile() and (m.name == file or m.name.endswith("/" + file)):
                return m
        raise FileNotFoundError(f"data file '{file}' not found in archive '{self.path}'")

    @staticmethod
    def _check_size(where, n, size):
        if n == 0 or n % size or n > MAX_DATA_BYTES:
            raise refuse(where, f"it holds {n} bytes, not a whole number of {size}-byte "
                                f"records (at most {MAX_DATA_BYTES} bytes)")


__all__ = ["load_cifar10", "load_cifar100", "SHAPE"]
