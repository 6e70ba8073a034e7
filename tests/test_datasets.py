"""fastcnn.datasets: the bundled MNIST (split, dtypes, values against the official
files read here without fastcnn), load_mnist(path=...) on raw, damaged and missing
files, the cache, and other IDX data sets. Shifted images: test_expand_shifts.py."""
from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

import fastcnn
from fastcnn import datasets
from fastcnn.datasets import load_mnist

BUNDLED = Path(fastcnn.__file__).parent / "data" / "mnist"
NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def _read_official(name: str) -> np.ndarray:
    data = gzip.decompress((BUNDLED / (name + ".gz")).read_bytes())
    if "images" in name:
        return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)
    return np.frombuffer(data, np.uint8, offset=8)


@pytest.fixture(scope="module")
def official():
    """The four bundled files, read without fastcnn."""
    return {name: _read_official(name) for name in NAMES}


# ----------------------------------------------------------------------------
# load_mnist: split, dtypes, values

def test_default_split_is_50000_10000_10000(mnist):
    (xt, yt), (xv, yv), (xs, ys) = mnist
    assert xt.shape == (50000, 1, 28, 28) and yt.shape == (50000,)
    assert xv.shape == (10000, 1, 28, 28) and yv.shape == (10000,)
    assert xs.shape == (10000, 1, 28, 28) and ys.shape == (10000,)


def test_float32_images_in_unit_range_and_int64_labels(mnist):
    for x, y in mnist:
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.min() == 0.0 and x.max() == 1.0
        assert set(np.unique(y)) == set(range(10))


def test_split_matches_the_official_files(mnist, official):
    (xt, yt), (xv, yv), (xs, ys) = mnist
    images, labels = official["train-images-idx3-ubyte"], official["train-labels-idx1-ubyte"]
    assert np.array_equal(xv[:, 0], images[50000:] / np.float32(255))
    assert np.array_equal(yv, labels[50000:])
    assert np.array_equal(xt[:, 0], images[:50000] / np.float32(255))
    assert np.array_equal(yt, labels[:50000])
    assert np.array_equal(xs[:, 0], official["t10k-images-idx3-ubyte"] / np.float32(255))
    assert np.array_equal(ys, official["t10k-labels-idx1-ubyte"])


def test_uint8_keeps_the_raw_bytes(official):
    (xt, yt), (xv, _), (xs, _) = load_mnist(dtype="uint8")
    assert xt.dtype == xv.dtype == xs.dtype == np.uint8 and yt.dtype == np.int64
    assert xt.max() == 255
    assert np.array_equal(xv[:, 0], official["train-images-idx3-ubyte"][50000:])


@pytest.mark.parametrize("validation, n_train", [(5000, 55000), (0, 60000), (59999, 1)])
def test_validation_size_moves_the_split(validation, n_train, official):
    (xt, yt), (xv, yv), (xs, _) = load_mnist(validation=validation, dtype="uint8")
    assert xt.shape == (n_train, 1, 28, 28) and yt.shape == (n_train,)
    assert xv.shape == (validation, 1, 28, 28) and yv.shape == (validation,)
    assert xs.shape == (10000, 1, 28, 28)
    assert np.array_equal(yv, official["train-labels-idx1-ubyte"][n_train:])


def test_each_call_returns_fresh_arrays():
    (x, y), _, _ = load_mnist(dtype="uint8")
    x[:] = 7
    y[:] = 7
    (x2, y2), _, _ = load_mnist(dtype="uint8")
    assert x2.max() == 255 and set(np.unique(y2)) == set(range(10))
    assert x2.flags.writeable and x2.flags.c_contiguous


@pytest.mark.parametrize("validation, error", [
    (-1, ValueError), (60000, ValueError), (10**9, ValueError),
    (1.5, TypeError), (10000.0, TypeError), ("10", TypeError), (True, TypeError), (None, TypeError),
])
def test_bad_validation_is_rejected(validation, error):
    with pytest.raises(error, match="validation"):
        load_mnist(validation=validation)


@pytest.mark.parametrize("dtype", ["float64", "int64", "nonsense", None])
def test_bad_dtype_is_rejected(dtype):
    with pytest.raises(ValueError, match="dtype"):
        load_mnist(dtype=dtype)


# ----------------------------------------------------------------------------
# load_mnist(path=...): raw files, damaged files, missing files

def _link_bundled(directory: Path, except_name: str | None = None) -> None:
    """Symlink the bundled gz files into directory (all but except_name)."""
    for name in NAMES:
        if name != except_name:
            (directory / (name + ".gz")).symlink_to(BUNDLED / (name + ".gz"))


def test_path_with_decompressed_files(tmp_path, mnist):
    for name in NAMES:
        (tmp_path / name).write_bytes(gzip.decompress((BUNDLED / (name + ".gz")).read_bytes()))
    got = load_mnist(path=tmp_path)
    for (x, y), (x_ref, y_ref) in zip(got, mnist):
        assert np.array_equal(x, x_ref) and np.array_equal(y, y_ref)


def test_gz_preferred_when_both_are_there(tmp_path):
    _link_bundled(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"not an IDX file")
    _, _, (_, ys) = load_mnist(path=str(tmp_path), dtype="uint8")
    assert ys.shape == (10000,)


def _write_sums(directory: Path, kind: str) -> None:
    """A checksum list of the intact bundled files beside the data: "disk" lists
    the .gz files as they are on disk (SHA256SUMS), "raw" their decompressed
    contents (SHA256SUMS.raw, in the name.idx3-ubyte spelling)."""
    lines = []
    for name in NAMES:
        packed = (BUNDLED / (name + ".gz")).read_bytes()
        if kind == "disk":
            lines.append(f"{hashlib.sha256(packed).hexdigest()}  {name}.gz")
        else:
            raw = gzip.decompress(packed)
            lines.append(f"{hashlib.sha256(raw).hexdigest()}  {name.replace('-idx', '.idx')}")
    (directory / ("SHA256SUMS" if kind == "disk" else "SHA256SUMS.raw")).write_text(
        "\n".join(lines) + "\n")


@pytest.mark.parametrize("name", NAMES)
def test_flipped_byte_fails_the_raw_checksum_beside_the_data(tmp_path, name):
    _link_bundled(tmp_path, except_name=name)
    _write_sums(tmp_path, "raw")
    data = bytearray(gzip.decompress((BUNDLED / (name + ".gz")).read_bytes()))
    data[len(data) // 2] ^= 0x01
    (tmp_path / name).write_bytes(bytes(data))
    with pytest.raises(fastcnn.FileFormatError,
                       match=f"{name}': it failed its SHA-256 check against SHA256SUMS.raw"):
        load_mnist(path=tmp_path, dtype="uint8")


def test_without_a_checksum_list_the_format_checks_alone_apply(tmp_path, mnist):
    # Another data set than MNIST: the user's bytes are read as they are.
    name = "t10k-labels-idx1-ubyte"
    _link_bundled(tmp_path, except_name=name)
    data = bytearray(gzip.decompress((BUNDLED / (name + ".gz")).read_bytes()))
    data[-1] = (data[-1] + 1) % 10
    (tmp_path / name).write_bytes(bytes(data))
    _, _, (_, yt) = load_mnist(path=tmp_path, dtype="uint8")
    assert yt[-1] == data[-1] and np.array_equal(yt[:-1], mnist[2][1][:-1])


@pytest.mark.parametrize("kind", ["disk", "raw"])
def test_recompressed_damaged_gz_fails_the_checksum_beside_it(tmp_path, kind):
    name = "t10k-labels-idx1-ubyte"
    _link_bundled(tmp_path, except_name=name)
    _write_sums(tmp_path, kind)
    data = bytearray(gzip.decompress((BUNDLED / (name + ".gz")).read_bytes()))
    data[-1] = (data[-1] + 1) % 10  # still a valid label, still a valid IDX file
    (tmp_path / (name + ".gz")).write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(fastcnn.FileFormatError, match=f"{name}.gz': it failed its SHA-256"):
        load_mnist(path=tmp_path)


def test_checksum_list_without_the_file_is_refused(tmp_path):
    _link_bundled(tmp_path)
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  other-file.gz\n")
    with pytest.raises(fastcnn.FileFormatError, match="it is not listed in"):
        load_mnist(path=tmp_path)
    (tmp_path / "SHA256SUMS").write_text("not a checksum\n")
    with pytest.raises(fastcnn.FileFormatError, match="SHA256SUMS"):
        load_mnist(path=tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_truncated_gz_file_is_a_clear_error(tmp_path, name):
    _link_bundled(tmp_path, except_name=name)
    packed = (BUNDLED / (name + ".gz")).read_bytes()
    (tmp_path / (name + ".gz")).write_bytes(packed[: len(packed) // 2])
    with pytest.raises(fastcnn.FileFormatError,
                       match=f"{name}.gz': it (could not be decompressed|is truncated)"):
        load_mnist(path=tmp_path, dtype="uint8")


def test_truncated_decompressed_file_is_refused_by_its_header(tmp_path):
    name = "train-labels-idx1-ubyte"
    _link_bundled(tmp_path, except_name=name)
    data = gzip.decompress((BUNDLED / (name + ".gz")).read_bytes())
    (tmp_path / name).write_bytes(data[:-100])
    with pytest.raises(fastcnn.FileFormatError,
                       match=f"{name}': it holds 59900 data bytes but its header says"):
        load_mnist(path=tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_missing_file_names_file_and_directory(tmp_path, name):
    _link_bundled(tmp_path, except_name=name)
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(path=tmp_path)
    assert name in str(info.value) and str(tmp_path) in str(info.value)


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_mnist(path=tmp_path / "nowhere")


def test_damaged_copy_does_not_poison_the_bundled_load(tmp_path, official):
    # The cache is keyed by path: a failed load elsewhere leaves later loads intact.
    name = "train-labels-idx1-ubyte"
    _link_bundled(tmp_path, except_name=name)
    shutil.copy(BUNDLED / (name + ".gz"), tmp_path / (name + ".gz"))
    with open(tmp_path / (name + ".gz"), "r+b") as f:
        f.truncate(1000)
    with pytest.raises(ValueError):
        load_mnist(path=tmp_path)
    (_, yt), _, _ = load_mnist(validation=0, dtype="uint8")
    assert np.array_equal(yt, official[name])


def test_clear_cache_keeps_loads_and_returned_arrays_intact(official):
    (xt, _), _, _ = load_mnist(dtype="uint8")
    datasets.clear_cache()
    assert not datasets.idx._cache
    assert np.array_equal(xt[:, 0], official["train-images-idx3-ubyte"][:50000])
    (xt2, _), _, _ = load_mnist(dtype="uint8")  # read and checked again
    assert np.array_equal(xt2, xt) and datasets.idx._cache


# ----------------------------------------------------------------------------
# Other IDX data sets: any shape the header gives, classes from the labels

def _idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array, written here from the format's definition."""
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                      for d in array.shape)
    return head + array.astype(np.uint8).tobytes()


def _write_set(directory: Path, shape, classes, n_train=12, n_test=5, packed=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {TRAIN: rng.integers(0, 256, (n_train,) + shape),
              "train-labels-idx1-ubyte": rng.integers(0, classes, n_train),
              TEST: rng.integers(0, 256, (n_test,) + shape),
              "t10k-labels-idx1-ubyte": rng.integers(0, classes, n_test)}
    arrays["train-labels-idx1-ubyte"][0] = classes - 1     # the largest class occurs
    for name, a in arrays.items():
        data = _idx(a)
        if packed:
            (directory / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return arrays


TRAIN, TEST = "train-images-idx3-ubyte", "t10k-images-idx3-ubyte"


@pytest.mark.parametrize("shape, packed", [((5, 7), True), ((5, 7), False),
                                           ((3, 6, 4), True), ((1, 28, 28), False)])
def test_any_idx_data_set_loads_with_its_shape_and_classes(tmp_path, shape, packed):
    arrays = _write_set(tmp_path, shape, classes=3, packed=packed)
    (xt, yt), (xv, yv), (xs, ys) = load_mnist(path=tmp_path, validation=4, dtype="uint8")
    chw = shape if len(shape) == 3 else (1,) + shape
    images = arrays[TRAIN].reshape((-1,) + chw)
    assert np.array_equal(xt, images[:8]) and np.array_equal(xv, images[8:])
    assert np.array_equal(xs, arrays[TEST].reshape((-1,) + chw))
    assert np.array_equal(np.concatenate([yt, yv]), arrays["train-labels-idx1-ubyte"])
    assert datasets.num_classes(yt, yv, ys) == 3
    xf = load_mnist(path=tmp_path, validation=4)[0][0]
    assert xf.dtype == np.float32 and np.array_equal(xf, images[:8].astype(np.float32) / np.float32(255))


def test_data_set_shape_mismatches_are_refused(tmp_path):
    _write_set(tmp_path, (5, 7), classes=3)
    with pytest.raises(ValueError, match="validation must be less than the 12"):
        load_mnist(path=tmp_path)
    (tmp_path / (TEST + ".gz")).write_bytes(gzip.compress(_idx(np.zeros((5, 7, 5), np.uint8))))
    with pytest.raises(fastcnn.FileFormatError, match="training images"):
        load_mnist(path=tmp_path, validation=2)
    (tmp_path / (TEST + ".gz")).write_bytes(gzip.compress(_idx(np.zeros((4, 5, 7), np.uint8))))
    with pytest.raises(fastcnn.FileFormatError, match="4 images but .* 5 labels"):
        load_mnist(path=tmp_path, validation=2)


def test_the_bundled_copy_is_always_checked(tmp_path, monkeypatch):
    for name in NAMES:
        shutil.copy(BUNDLED / (name + ".gz"), tmp_path / (name + ".gz"))
    shutil.copy(BUNDLED / "SHA256SUMS.raw", tmp_path / "SHA256SUMS.raw")
    name = "t10k-labels-idx1-ubyte"
    data = bytearray(gzip.decompress((BUNDLED / (name + ".gz")).read_bytes()))
    data[-1] = (data[-1] + 1) % 10
    (tmp_path / (name + ".gz")).write_bytes(gzip.compress(bytes(data)))
    monkeypatch.setattr(datasets.idx, "BUNDLED_DIR", tmp_path)
    monkeypatch.setattr(datasets.idx, "SUMS_FILE", tmp_path / "SHA256SUMS.raw")
    with pytest.raises(fastcnn.FileFormatError, match="failed its SHA-256 check"):
        load_mnist()
