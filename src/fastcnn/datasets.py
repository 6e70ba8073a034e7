"""MNIST, loaded and checked, plus the shift augmentations used to train on it.

load_mnist(path=None, validation=10000, dtype="float32")
    -> ((x_train, y_train), (x_val, y_val), (x_test, y_test))

    Images are (N, 1, 28, 28): float32 in [0, 1] (byte / 255) or, with
    dtype="uint8", the raw bytes 0..255 (a quarter of the memory; convert per
    batch). Labels are int64 (N,), each in 0..9. The split follows the book's
    mnist.pkl.gz: of the 60000 official training images the first
    60000 - validation train and the last `validation` validate; the official
    10000 test images test. Every call returns fresh arrays the caller owns.

    path=None reads the copy bundled in fastcnn/data/mnist; otherwise `path` is
    a directory holding the four standard IDX files, gzipped (name + ".gz") or
    not (bare name); the gzipped one is read when both are there. Every file is
    checked against the SHA-256 of its decompressed bytes listed in the bundled
    SHA256SUMS.raw and its IDX header is checked against its size. A missing
    file raises FileNotFoundError; a corrupt, truncated or malformed one raises
    ValueError naming it. Checked files are cached for the life of the process
    (keyed by resolved path, size and modification time), so a second call
    costs only the copy.

clear_cache()
    Drops those cached files (about 55 MB for MNIST), e.g. before a long
    training run that will not load MNIST again; the next load_mnist re-reads
    and re-checks them (a fraction of a second).

expand_shifts(x, y, order=None) -> (x5, y5)
    The book's expanded training set: each image followed by its four 1-pixel
    shifts (order: itself, up, down, left, right), vacated pixels zero. With a
    permutation `order` of the 5N rows, returns (x5[order], y5[order]) built
    directly in that order, without ever holding the unshuffled x5.

random_shift(x, rng, max_shift=1) -> x_shifted
    The memory-light alternative, applied per mini-batch: each image moved by
    its own random (dy, dx), each in [-max_shift, max_shift], vacated pixels zero.

Both shift functions take images (N, C, H, W) of any dtype, return a new array
of that dtype, and leave their inputs unchanged.
"""
from __future__ import annotations

import gzip
import hashlib
import numbers
import zlib
from pathlib import Path

import numpy as np

__all__ = ["load_mnist", "clear_cache", "expand_shifts", "random_shift"]

BUNDLED_DIR = Path(__file__).parent / "data" / "mnist"
SUMS_FILE = BUNDLED_DIR / "SHA256SUMS.raw"

TRAIN_SIZE = 60000  # images in the official training set
IMAGE_MAGIC = 2051  # IDX: unsigned bytes, 3 dimensions (N, rows, cols)
LABEL_MAGIC = 2049  # IDX: unsigned bytes, 1 dimension (N,)

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"

# (resolved path, size, mtime_ns) -> read-only uint8 array of the file's data
_cache: dict[tuple[str, int, int], np.ndarray] = {}

_ADVICE = "replace it with an intact copy (for the bundled files, reinstall fastcnn)"


# ----------------------------------------------------------------------------
# Loading

def load_mnist(path=None, validation=10000, dtype="float32"):
    """MNIST as ((x_train, y_train), (x_val, y_val), (x_test, y_test)); see the
    module docstring for layouts, the split and the checks made."""
    if isinstance(validation, (bool, np.bool_)) or not isinstance(validation, numbers.Integral):
        raise TypeError(f"validation must be an integer, got {validation!r}")
    validation = int(validation)
    if not 0 <= validation < TRAIN_SIZE:
        raise ValueError(f"validation must be in [0, {TRAIN_SIZE}) (the number of official "
                         f"training images to hold out), got {validation}")
    dtype = _image_dtype(dtype)

    directory = BUNDLED_DIR if path is None else Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory '{directory}' does not exist or is not a directory")

    train_x, train_y = _images_and_labels(directory, TRAIN_IMAGES, TRAIN_LABELS)
    test_x, test_y = _images_and_labels(directory, TEST_IMAGES, TEST_LABELS)

    n_train = len(train_x) - validation
    return (
        (_to_images(train_x[:n_train], dtype), _to_labels(train_y[:n_train])),
        (_to_images(train_x[n_train:], dtype), _to_labels(train_y[n_train:])),
        (_to_images(test_x, dtype), _to_labels(test_y)),
    )


def clear_cache() -> None:
    """Forget the checked files load_mnist keeps; arrays it returned are unaffected
    (they are copies)."""
    _cache.clear()


def _image_dtype(dtype) -> np.dtype:
    try:
        d = np.dtype(dtype)
    except TypeError:
        d = None
    if d is None or d not in (np.float32, np.uint8):
        raise ValueError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
    return d


def _to_images(raw: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """(N, 28, 28) uint8 -> a fresh (N, 1, 28, 28) array of dtype."""
    out = raw[:, None, :, :].astype(dtype)  # astype copies
    if dtype == np.float32:
        out /= np.float32(255)
    return out


def _to_labels(raw: np.ndarray) -> np.ndarray:
    return raw.astype(np.int64)


def _images_and_labels(directory: Path, images_name: str, labels_name: str):
    """The (N, 28, 28) images and (N,) labels of one official set, both uint8."""
    images_file = _find(directory, images_name)
    labels_file = _find(directory, labels_name)
    images = _load_checked(images_file, images_name, IMAGE_MAGIC, 3)
    labels = _load_checked(labels_file, labels_name, LABEL_MAGIC, 1)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"MNIST file '{images_file}' holds images of "
                         f"{images.shape[1]}x{images.shape[2]} pixels, not 28x28")
    if len(images) != len(labels):
        raise ValueError(f"MNIST files '{images_file}' and '{labels_file}' disagree: "
                         f"{len(images)} images but {len(labels)} labels")
    return images, labels


def _find(directory: Path, name: str) -> Path:
    """directory/name.gz if it exists, else directory/name."""
    for candidate in (directory / (name + ".gz"), directory / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"MNIST file '{name}.gz' (or '{name}') not found in "
                            f"directory '{directory}'")


def _load_checked(file: Path, name: str, magic: int, ndim: int) -> np.ndarray:
    """The data of one IDX file as a read-only uint8 array, checked and cached."""
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _cache:
        data = _read_bytes(file)
        _check_sha256(data, file, name)
        _cache[key] = _parse_idx(data, file, magic, ndim)
    return _cache[key]


def _read_bytes(file: Path) -> bytes:
    """The file's bytes, decompressed when its name ends in .gz."""
    if file.suffix != ".gz":
        return file.read_bytes()
    try:
        with gzip.open(file, "rb") as f:
            return f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"MNIST file '{file}' could not be decompressed ({e}): the file is "
                         f"corrupt or truncated; {_ADVICE}") from e


def _expected_sums() -> dict[str, str]:
    """Decompressed file name -> SHA-256 hex digest, from the bundled SHA256SUMS.raw.

    The file spells names 'train-images.idx3-ubyte' (as the unpacked files
    are often named); they are mapped to the standard 'train-images-idx3-ubyte'.
    """
    sums = {}
    for line in SUMS_FILE.read_text(encoding="ascii").splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*").replace(".idx", "-idx")] = digest.lower()
    return sums


def _check_sha256(data: bytes, file: Path, name: str) -> None:
    expected = _expected_sums().get(name)
    if expected is None:  # only if the bundled list itself has been damaged
        raise ValueError(f"no SHA-256 for MNIST file '{name}' in '{SUMS_FILE}'; {_ADVICE}")
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise ValueError(f"MNIST file '{file}' failed its SHA-256 check (expected {expected}, "
                         f"got {got}): the file is corrupt or truncated; {_ADVICE}")


def _parse_idx(data: bytes, file: Path, magic: int, ndim: int) -> np.ndarray:
    """IDX layout: big-endian int32 magic, ndim big-endian int32 sizes, then the
    unsigned bytes in C order."""
    header = 4 * (1 + ndim)
    if len(data) < header:
        raise ValueError(f"MNIST file '{file}' is too short ({len(data)} bytes) for an IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"MNIST file '{file}' has IDX magic number {found}, expected {magic}")
    dims = [int.from_bytes(data[4 * i:4 * i + 4], "big") for i in range(1, ndim + 1)]
    if len(data) != header + int(np.prod(dims)):
        raise ValueError(f"MNIST file '{file}' holds {len(data) - header} data bytes but its "
                         f"header says {tuple(dims)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


# ----------------------------------------------------------------------------
# Augmentation

# (dy, dx) of the five rows each image becomes: itself, then up, down, left, right.
_SHIFTS = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]

# Bytes of images shifted at once when expand_shifts fills a shuffled result.
_CHUNK_BYTES = 4 << 20


def expand_shifts(x, y, order=None):
    """Images x (N, C, H, W) and labels y (N,) -> (x5 (5N, C, H, W), y5 (5N,)).

    Image i becomes rows 5i..5i+4 of x5: itself, then shifted one pixel up,
    down, left and right (pixel (r, c) moves to (r-1, c), (r+1, c), (r, c-1),
    (r, c+1)); pixels shifted off the edge are lost and vacated ones are zero.
    y5 repeats each label 5 times. x5 has x's dtype, y5 has y's.

    order: None, or a permutation of range(5N). Then the result is
    (x5[order], y5[order]), but each shifted image is written straight to its
    final row, so memory holds one 5N-image array plus a few MB, not two.
    """
    x = _image_batch(x)
    y = np.asarray(y)
    if y.shape != (len(x),):
        raise ValueError(f"y must have shape ({len(x)},) to match x {x.shape}, got {y.shape}")
    n, c, h, w = x.shape
    if order is None:
        out = np.zeros((n, 5, c, h, w), dtype=x.dtype)
        for k, (dy, dx) in enumerate(_SHIFTS):
            _shift_into(out[:, k], x, dy, dx)
        return out.reshape(n * 5, c, h, w), np.repeat(y, 5)

    # Row 5i+k of the unshuffled set (image i, shift k) goes to row dest[i, k]
    # of the result: result[j] = unshuffled[order[j]], so dest is order's inverse.
    dest = _inverse_permutation(order, 5 * n).reshape(n, 5)
    x_out = np.empty((5 * n, c, h, w), dtype=x.dtype)  # every row is written once below
    y_out = np.empty(5 * n, dtype=y.dtype)
    chunk = max(1, _CHUNK_BYTES // max(1, x[:1].nbytes))
    for start in range(0, n, chunk):
        images = x[start:start + chunk]  # a view
        rows = dest[start:start + chunk]
        for k, (dy, dx) in enumerate(_SHIFTS):
            shifted = np.zeros_like(images)
            _shift_into(shifted, images, dy, dx)
            x_out[rows[:, k]] = shifted
            y_out[rows[:, k]] = y[start:start + chunk]
    return x_out, y_out


def _inverse_permutation(order, n: int) -> np.ndarray:
    """inv with inv[order[j]] = j, after checking order is a permutation of range(n)."""
    order = np.asarray(order)
    if order.shape != (n,) or (n and order.dtype.kind not in "iu"):
        raise ValueError(f"order must be a permutation of range({n}): integers of shape "
                         f"({n},), got shape {order.shape} and dtype {order.dtype}")
    if n and (order.min() < 0 or order.max() >= n):
        raise ValueError(f"order must be a permutation of range({n}), but it holds values in "
                         f"[{order.min()}, {order.max()}]")
    inv = np.full(n, -1, dtype=np.intp)
    inv[order] = np.arange(n, dtype=np.intp)
    if n and inv.min() < 0:  # some index repeated, so another one is missing
        raise ValueError(f"order must be a permutation of range({n}), but it repeats "
                         f"values (e.g. {int(np.flatnonzero(inv < 0)[0])} is missing)")
    return inv


def random_shift(x, rng, max_shift=1):
    """Each image of x (N, C, H, W) moved by its own (dy, dx), both drawn
    uniformly from [-max_shift, max_shift] with the numpy Generator rng
    (pixel (r, c) moves to (r+dy, c+dx)); vacated pixels are zero. Returns a
    new array of x's shape and dtype."""
    x = _image_batch(x)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(max_shift, (bool, np.bool_)) or not isinstance(max_shift, numbers.Integral):
        raise TypeError(f"max_shift must be an integer, got {max_shift!r}")
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    m = int(max_shift)
    dys = rng.integers(-m, m + 1, size=len(x))
    dxs = rng.integers(-m, m + 1, size=len(x))

    out = np.zeros_like(x)
    # One vectorised copy per (dy, dx) pair: (2m+1)**2 of them, 9 for m = 1.
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            chosen = np.flatnonzero((dys == dy) & (dxs == dx))
            if len(chosen):
                shifted = np.zeros_like(x[chosen])
                _shift_into(shifted, x[chosen], dy, dx)
                out[chosen] = shifted
    return out


def _image_batch(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images (N, C, H, W), got shape {x.shape}")
    return x


def _shift_into(dst: np.ndarray, src: np.ndarray, dy: int, dx: int) -> None:
    """dst[..., r + dy, c + dx] = src[..., r, c] wherever both lie inside the
    image; the rest of dst is left as it is (zero, for a fresh dst)."""
    h, w = src.shape[-2:]
    rows_dst, rows_src = _overlap(dy, h)
    cols_dst, cols_src = _overlap(dx, w)
    dst[..., rows_dst, cols_dst] = src[..., rows_src, cols_src]


def _overlap(d: int, n: int) -> tuple[slice, slice]:
    """(destination, source) slices of an axis of length n shifted by d."""
    k = min(abs(d), n)
    if d >= 0:
        return slice(k, n), slice(0, n - k)
    return slice(0, n - k), slice(k, n)
