"""CIFAR-10 and CIFAR-100 binary files, as the tests write them: the layout of each
record, the split, a directory or a .tar.gz, and every damaged file refused with
one error naming it. Also the data specs (cifar10:PATH) the command line takes."""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

import fastcnn
from fastcnn.data import sources


def _records(rng, n, label_bytes, classes):
    """n records: label bytes, then the R, G and B planes of a 32x32 image."""
    labels = [rng.integers(0, k, n, dtype=np.uint8) for k in classes]
    pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return np.concatenate([np.stack(labels, 1), pixels], axis=1), labels, pixels


def _write_cifar10(folder, rng, per_file=7, test=5):
    folder.mkdir(parents=True)
    parts = []
    for i in range(1, 6):
        rec, (labels,), pixels = _records(rng, per_file, 1, (10,))
        (folder / f"data_batch_{i}.bin").write_bytes(rec.tobytes())
        parts.append((labels, pixels))
    rec, (labels,), pixels = _records(rng, test, 1, (10,))
    (folder / "test_batch.bin").write_bytes(rec.tobytes())
    return parts, (labels, pixels)


def test_cifar10_layout_and_split(tmp_path):
    rng = np.random.default_rng(0)
    parts, (tl, tp) = _write_cifar10(tmp_path / "cifar-10-batches-bin", rng)
    labels = np.concatenate([p[0] for p in parts])
    pixels = np.concatenate([p[1] for p in parts])
    for path in (tmp_path, tmp_path / "cifar-10-batches-bin"):   # the folder or its parent
        (x, y), (xv, yv), (xt, yt) = fastcnn.datasets.load_cifar10(path, validation=4)
        assert x.shape == (31, 3, 32, 32) and xv.shape == (4, 3, 32, 32)
        assert x.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_array_equal(np.concatenate([y, yv]), labels)
        np.testing.assert_array_equal(yt, tl)
        # record i: its bytes after the label are the R, G, B planes, row by row
        assert xv[1, 2, 3, 4] == np.float32(pixels[32, 2 * 1024 + 3 * 32 + 4]) / np.float32(255)
        np.testing.assert_array_equal(xt.reshape(5, -1), tp / np.float32(255))
    (x8, _), _, _ = fastcnn.datasets.load_cifar10(tmp_path, validation=4, dtype="uint8")
    assert x8.dtype == np.uint8
    np.testing.assert_array_equal(x8.reshape(31, -1), pixels[:31])


def test_cifar100_fine_and_coarse_from_a_tar_gz(tmp_path):
    rng = np.random.default_rng(1)
    tr, (coarse, fine), _ = _records(rng, 9, 2, (20, 100))
    te, (tcoarse, tfine), _ = _records(rng, 4, 2, (20, 100))
    archive = tmp_path / "cifar-100-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, rec in (("train.bin", tr), ("test.bin", te)):
            info = tarfile.TarInfo(f"cifar-100-binary/{name}")
            info.size = rec.nbytes
            tar.addfile(info, io.BytesIO(rec.tobytes()))
    (x, y), (xv, yv), (xt, yt) = fastcnn.datasets.load_cifar100(archive, validation=3)
    np.testing.assert_array_equal(np.concatenate([y, yv]), fine)
    np.testing.assert_array_equal(yt, tfine)
    (_, y), (_, yv), _ = fastcnn.datasets.load_cifar100(archive, validation=3, labels="coarse")
    np.testing.assert_array_equal(np.concatenate([y, yv]), coarse)
    # the same through a data spec
    (_, y), _, _ = sources.load(f"cifar100-coarse:{archive}", validation=3)
    np.testing.assert_array_equal(y, coarse[:6])


@pytest.mark.parametrize("damage, match", [
    ("partial record", "not a whole number of 3073-byte records"),
    ("empty", "not a whole number"),
    ("label 10", r"record 2 has label 10; labels of this kind lie in \[0, 10\)"),
])
def test_damaged_files_are_refused_naming_them(tmp_path, damage, match):
    folder = tmp_path / "cifar-10-batches-bin"
    _write_cifar10(folder, np.random.default_rng(2))
    f = folder / "data_batch_3.bin"
    data = bytearray(f.read_bytes())
    if damage == "partial record":
        data = data[:-100]
    elif damage == "empty":
        data = bytearray()
    else:
        data[2 * 3073] = 10
    f.write_bytes(bytes(data))
    with pytest.raises(fastcnn.FileFormatError, match="data_batch_3.bin.*" + match):
        fastcnn.datasets.load_cifar10(folder, validation=4)


def test_missing_files_and_bad_arguments(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    _write_cifar10(folder, np.random.default_rng(3))
    (folder / "test_batch.bin").unlink()
    with pytest.raises(FileNotFoundError, match="test_batch.bin"):
        fastcnn.datasets.load_cifar10(folder, validation=4)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        fastcnn.datasets.load_cifar10(tmp_path / "nowhere")
    _write_cifar10(tmp_path / "ok" / "cifar-10-batches-bin", np.random.default_rng(4))
    with pytest.raises(ValueError, match="validation must be less than the 35"):
        fastcnn.datasets.load_cifar10(tmp_path / "ok", validation=35)
    with pytest.raises(TypeError, match="validation"):
        fastcnn.datasets.load_cifar10(tmp_path / "ok", validation=2.5)
    with pytest.raises(ValueError, match="dtype"):
        fastcnn.datasets.load_cifar10(tmp_path / "ok", validation=4, dtype="float64")
    with pytest.raises(ValueError, match="labels"):
        fastcnn.datasets.load_cifar100(tmp_path / "ok", labels="medium")
    not_tar = tmp_path / "x.tar.gz"
    not_tar.write_bytes(b"not an archive")
    with pytest.raises(fastcnn.FileFormatError, match="x.tar.gz"):
        fastcnn.datasets.load_cifar10(not_tar)


def test_data_specs():
    assert sources.parse(None) == ("mnist", None)
    assert sources.parse("/data/fashion") == ("mnist", "/data/fashion")
    assert sources.parse("cifar10:/data/c10") == ("cifar10", "/data/c10")
    assert sources.describe("cifar100:/d") == "cifar100 at /d"
    with pytest.raises(ValueError, match="unknown kind 'imagenet'"):
        sources.parse("imagenet:/d")
    with pytest.raises(ValueError, match="give the path"):
        sources.parse("cifar10:")
    with pytest.raises(TypeError, match="data"):
        sources.parse(3)


def test_train_a_cifar_preset_on_written_files(tmp_path, capsys):
    from fastcnn.cli import main
    _write_cifar10(tmp_path / "cifar-10-batches-bin", np.random.default_rng(5), per_file=20)
    assert main(["train", "cifar-gap", "--epochs", "1", "--batch-size", "16", "--quiet",
                 "--data", f"cifar10:{tmp_path}", "--save", str(tmp_path / "m.npz")]) == 0
    assert "cifar-gap: test accuracy" in capsys.readouterr().out
    model = fastcnn.load(tmp_path / "m.npz")
    assert model.input_shape == (3, 32, 32) and model.output_shape == (10,)
    assert main(["evaluate", str(tmp_path / "m.npz"), "--data", f"cifar10:{tmp_path}"]) == 0
    assert "(last 10 training images)" in capsys.readouterr().out
    assert main(["train", "cifar-vgg", "--epochs", "1"]) == 2   # no CIFAR data given
    assert "give --data cifar10:DIR" in capsys.readouterr().err
