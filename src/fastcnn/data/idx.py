"""MNIST (or any data set of its four IDX files), loaded and checked.

load_mnist(path=None, validation=10000, dtype="float32")
    -> ((x_train, y_train), (x_val, y_val), (x_test, y_test))

    Images are (N, C, H, W) -- (N, 1, 28, 28) for MNIST -- float32 in [0, 1]
    (byte / 255) or, with dtype="uint8", the raw bytes 0..255 (a quarter of the
    memory; convert per batch). Labels are int64 (N,); num_classes(y) is the
    number of classes they imply. The split follows the book's mnist.pkl.gz: of
    the official training images the first N - validation train and the last
    `validation` validate; the official test images test. Every call returns
    fresh arrays the caller owns.

    path=None reads the copy bundled in fastcnn/data/mnist, always checked
    against the SHA-256 of each decompressed file in its SHA256SUMS.raw.
    Otherwise `path` is a directory holding the four standard IDX files
    (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
    t10k-labels-idx1-ubyte; MNIST, Fashion-MNIST, KMNIST, EMNIST...), gzipped
    (name + ".gz") or not (bare name); the gzipped one is read when both are
    there. When the directory holds a SHA256SUMS (digests of the files as they
    are on disk) or a SHA256SUMS.raw (of their decompressed contents; names
    spelled name-idx3-ubyte or name.idx3-ubyte), every file read must be listed
    in it and match; without one, the format checks alone apply.

    Format checks, made on every file before its data is read: IDX magic (two
    zero bytes, type 0x08 unsigned byte, the number of dimensions: 3 (N, H, W)
    or 4 (N, C, H, W) for images, 1 for labels), each declared size >= 1 and
    the whole at most fastcnn.io.files.MAX_DATA_BYTES, the data exactly as long
    as the header says (a gzip member is decompressed only up to that length:
    no bomb is inflated to its end), images and labels of a split equal in
    number, train and test images of one shape. A missing file raises
    FileNotFoundError; anything else wrong raises fastcnn.FileFormatError (a
    ValueError) naming the file. Checked files are cached for the life of the
    process (keyed by resolved path, size, modification time and the digest
    expected), so a second call costs only the copy.

clear_cache()
    Drops those cached files (about 55 MB for MNIST), e.g. before a long
    training run that will not load MNIST again; the next load_mnist re-reads
    and re-checks them (a fraction of a second).

num_classes(*labels) -> int
    1 + the largest label in the given label arrays (10 for MNIST).

image_shape(path=None) -> (C, H, W)
    The shape of the training images, from their IDX header alone.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from pathlib import Path

import numpy as np

from ..common.checks import integer
from ..io.files import MAX_DATA_BYTES, refuse

__all__ = ["load_mnist", "clear_cache", "num_classes", "image_shape"]

BUNDLED_DIR = Path(__file__).parent / "mnist"
SUMS_FILE = BUNDLED_DIR / "SHA256SUMS.raw"
DISK_SUMS = "SHA256SUMS"        # beside a user's data: digests of the files on disk
RAW_SUMS = "SHA256SUMS.raw"     # digests of the decompressed contents

IDX_UBYTE = 0x08        # IDX type code of unsigned bytes, the only one these files use
IMAGE_DIMS = (3, 4)     # (N, H, W) or (N, C, H, W)
LABEL_DIMS = (1,)

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"

# (resolved path, size, mtime_ns, expected digests) -> read-only uint8 array of the data
_cache: dict[tuple, np.ndarray] = {}

_ADVICE = "replace it with an intact copy (for the bundled files, reinstall fastcnn)"
_CHUNK = 16 << 20   # bytes decompressed per read


# ----------------------------------------------------------------------------
# Loading

def load_mnist(path=None, validation=10000, dtype="float32"):
    """((x_train, y_train), (x_val, y_val), (x_test, y_test)) of MNIST or of the
    IDX data set in directory `path`; see the module docstring for layouts, the
    split and the checks made."""
    validation = integer(validation, "validation", 0)
    dtype = image_dtype(dtype)

    directory = BUNDLED_DIR if path is None else Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"data directory '{directory}' does not exist or is not a "
                                "directory")
    sums = _Sums(directory, bundled=path is None)

    train_x, train_y = _images_and_labels(directory, sums, TRAIN_IMAGES, TRAIN_LABELS)
    test_x, test_y = _images_and_labels(directory, sums, TEST_IMAGES, TEST_LABELS)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise refuse(directory / TEST_IMAGES, f"its images are {test_x.shape[1:]}, the "
                                              f"training images {train_x.shape[1:]}")
    if validation >= len(train_x):
        raise ValueError(f"validation must be less than the {len(train_x)} training images "
                         f"in '{directory}' (the number to hold out), got {validation}")

    n_train = len(train_x) - validation
    return (
        (_to_images(train_x[:n_train], dtype), _to_labels(train_y[:n_train])),
        (_to_images(train_x[n_train:], dtype), _to_labels(train_y[n_train:])),
        (_to_images(test_x, dtype), _to_labels(test_y)),
    )


def num_classes(*labels) -> int:
    """1 + the largest label in the label arrays given (the classes a model
    trained on them needs)."""
    return 1 + max(int(np.max(y)) for y in labels if len(y))


def clear_cache() -> None:
    """Forget the checked files load_mnist keeps; arrays it returned are unaffected
    (they are copies)."""
    _cache.clear()


def image_dtype(dtype) -> np.dtype:
    """float32 or uint8, the dtypes images are loaded as; else ValueError."""
    try:
        d = np.dtype(dtype)
    except TypeError:
        d = None
    if d is None or d not in (np.float32, np.uint8):
        raise ValueError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
    return d


def _to_images(raw: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """(N, H, W) or (N, C, H, W) uint8 -> a fresh (N, C, H, W) array of dtype."""
    out = (raw[:, None] if raw.ndim == 3 else raw).astype(dtype)  # astype copies
    if dtype == np.float32:
        out /= np.float32(255)
    return out


def _to_labels(raw: np.ndarray) -> np.ndarray:
    return raw.astype(np.int64)


def _images_and_labels(directory: Path, sums, images_name: str, labels_name: str):
    """The images (N, [C,] H, W) and labels (N,) of one official set, both uint8."""
    images_file = _find(directory, images_name)
    labels_file = _find(directory, labels_name)
    images = _load_checked(images_file, images_name, IMAGE_DIMS, sums)
    labels = _load_checked(labels_file, labels_name, LABEL_DIMS, sums)
    if len(images) != len(labels):
        raise refuse(images_file, f"it holds {len(images)} images but '{labels_file}' holds "
                                  f"{len(labels)} labels")
    return images, labels


def _find(directory: Path, name: str) -> Path:
    """directory/name.gz if it exists, else directory/name."""
    for candidate in (directory / (name + ".gz"), directory / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"data file '{name}.gz' (or '{name}') not found in "
                            f"directory '{directory}'")


class _Sums:
    """The digests a directory's files must match: for the bundled copy, the
    bundled SHA256SUMS.raw; for a user's directory, its SHA256SUMS and
    SHA256SUMS.raw when there (empty: format checks only)."""

    def __init__(self, directory: Path, bundled: bool):
        self.required = bundled
        self.raw = _read_sums(SUMS_FILE if bundled else directory / RAW_SUMS)
        self.disk = {} if bundled else _read_sums(directory / DISK_SUMS)
        self.files = [directory / n for n in ((RAW_SUMS,) if bundled else (DISK_SUMS, RAW_SUMS))
                      if (directory / n).is_file()]

    def expected(self, file: Path, name: str):
        """(digest of the data on disk or None, digest of the decompressed data or None)."""
        want = (self.disk.get(file.name), self.raw.get(name))
        if (self.required or self.files) and want == (None, None):
            where = " or ".join(f"'{f}'" for f in self.files) or f"'{SUMS_FILE}'"
            raise refuse(file, f"it is not listed in {where}; {_ADVICE}")
        return want


def _read_sums(file: Path) -> dict[str, str]:
    """{file name: SHA-256 hex} from a sha256sum-style list ('digest  name' or
    'digest *name'); names spelled 'train-images.idx3-ubyte' (as unpacked files
    often are) are mapped to the standard 'train-images-idx3-ubyte'."""
    if not file.is_file():
        return {}
    if file.stat().st_size > 1 << 20:
        raise refuse(file, "a checksum list of more than 1 MiB")
    sums = {}
    try:
        for line in file.read_text(encoding="ascii").splitlines():
            if line.strip():
                digest, name = line.split(maxsplit=1)
                if len(digest) != 64 or not all(c in "0123456789abcdefABCDEF" for c in digest):
                    raise ValueError(f"{digest[:70]!r} is not a SHA-256 digest")
                sums[name.strip().lstrip("*").replace(".idx", "-idx")] = digest.lower()
    except (UnicodeDecodeError, ValueError) as e:
        raise refuse(file, f"not a list of 'SHA-256  file name' lines ({e})") from None
    return sums


def _load_checked(file: Path, name: str, ndims, sums) -> np.ndarray:
    """The data of one IDX file as a read-only uint8 array, checked and cached."""
    disk_sum, raw_sum = sums.expected(file, name)
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns, disk_sum, raw_sum)
    if key not in _cache:
        if disk_sum is not None:
            _check_sha256(_file_sha256(file), disk_sum, file, DISK_SUMS)
        data, digest = _read_idx(file, ndims)
        if raw_sum is not None:
            _check_sha256(digest, raw_sum, file, RAW_SUMS)
        data.flags.writeable = False
        _cache[key] = data
    return _cache[key]


def _file_sha256(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_sha256(got: str, expected: str, file: Path, listed_in: str) -> None:
    if got != expected:
        raise refuse(file, f"it failed its SHA-256 check against {listed_in} (expected "
                           f"{expected}, got {got}): the file is corrupt or truncated; {_ADVICE}")


def _read_idx(file: Path, ndims) -> tuple[np.ndarray, str]:
    """(data as a uint8 array of the declared shape, SHA-256 of the whole decompressed
    file). IDX layout: two zero bytes, the type code, the number of dimensions,
    that many big-endian uint32 sizes, then the values in C order. Every size is
    checked before the data is read, and no more than the declared data is read."""
    packed = file.suffix == ".gz"
    try:
        with (gzip.open(file, "rb") if packed else open(file, "rb")) as f:
            head, sizes, dims = _read_header(f, file, ndims)
            count = math.prod(dims)
            header = 4 + len(sizes)
            if not packed and file.stat().st_size != header + count:
                raise refuse(file, f"it holds {file.stat().st_size - header} data bytes but "
                                   f"its header says {dims} ({count} bytes)")
            data = _read_exactly(f, count, file, dims)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise refuse(file, f"it could not be decompressed ({e}): the file is corrupt or "
                           f"truncated; {_ADVICE}") from None
    h = hashlib.sha256(head)
    h.update(sizes)
    h.update(data)
    return data.reshape(dims), h.hexdigest()


def _read_header(f, file: Path, ndims):
    """(first 4 bytes, size bytes, dims) of an IDX stream, checked."""
    head = f.read(4)
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] != IDX_UBYTE or head[3] not in ndims:
        raise refuse(file, f"not an IDX file of unsigned bytes with "
                           f"{' or '.join(map(str, ndims))} dimensions (it starts "
                           f"{head.hex() or 'empty'}; expected 000008"
                           f"{'/'.join(f'{n:02x}' for n in ndims)})")
    sizes = f.read(4 * head[3])
    if len(sizes) < 4 * head[3]:
        raise refuse(file, f"it is too short ({4 + len(sizes)} bytes) for its IDX header")
    dims = tuple(int.from_bytes(sizes[i:i + 4], "big") for i in range(0, len(sizes), 4))
    if min(dims) < 1 or math.prod(dims) > MAX_DATA_BYTES:
        raise refuse(file, f"its IDX header declares shape {dims}: each size must be "
                           f">= 1 and the whole at most {MAX_DATA_BYTES} bytes")
    return head, sizes, dims


def image_shape(path=None) -> tuple[int, int, int]:
    """(C, H, W) of the training images in directory `path` (None: the bundled
    MNIST, (1, 28, 28)), from the IDX header alone; load_mnist checks the rest."""
    directory = BUNDLED_DIR if path is None else Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"data directory '{directory}' does not exist or is not a "
                                "directory")
    file = _find(directory, TRAIN_IMAGES)
    try:
        with (gzip.open(file, "rb") if file.suffix == ".gz" else open(file, "rb")) as f:
            dims = _read_header(f, file, IMAGE_DIMS)[2]
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise refuse(file, f"it could not be decompressed ({e}); {_ADVICE}") from None
    return (1,) + dims[1:] if len(dims) == 3 else dims[1:]


def _read_exactly(f, count: int, file: Path, dims) -> np.ndarray:
    """count bytes of f, then its end (else refused). Read in chunks into one
    buffer, so memory follows the data actually there, not what is declared."""
    data = np.empty(count, dtype=np.uint8)
    view, done = memoryview(data), 0
    while done < count:
        n = f.readinto(view[done:done + _CHUNK])
        if not n:
            raise refuse(file, f"it is truncated: {done} data bytes where its header says "
                               f"{dims} ({count} bytes)")
        done += n
    if f.read(1):
        raise refuse(file, f"it holds more than the {count} data bytes its header says {dims}")
    return data
