"""The command line (fastcnn.cli): help, argument errors, `evaluate` against
Sequential.evaluate, and `train` on a small slice of MNIST (datasets.load_mnist
replaced by a wrapper that slices the real data) or on another IDX data set.
Most tests call fastcnn.cli.main in-process; the help tests run `python -m fastcnn`.
`reproduce` and `sweep`: test_cli_reproduce.py; resuming runs: test_cli_resume.py."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastcnn
from fastcnn import cli, datasets, presets
from fastcnn.runs import training_run
from fastcnn import layers as L
from fastcnn.network3 import FullyConnectedLayer, Network, SoftmaxLayer

SRC = str(Path(fastcnn.__file__).parents[1])
PCT = r"(\d+\.\d\d)%"


# main(["...", "--threads", "1"]) sets the process-wide thread count: restore it.
pytestmark = pytest.mark.usefixtures("keep_threads")


# ---------------------------------------------------------------------------
# Help

@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["reproduce"], ["selfcheck"]],
                         ids=lambda c: c[0] if c else "top")
def test_help_in_a_subprocess(command):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "fastcnn", *command, "--help"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: fastcnn" + "".join(" " + c for c in command))
    if not command:
        for sub in ("train", "evaluate", "reproduce", "selfcheck"):
            assert sub in r.stdout
    if command == ["train"]:
        for preset in presets.PRESETS:
            assert preset in r.stdout


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert capsys.readouterr().out.startswith("usage: fastcnn")


# ---------------------------------------------------------------------------
# Bad arguments

def _exit_code(argv):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    return e.value.code


@pytest.mark.parametrize("argv, message", [
    (["train", "nope"], "invalid choice: 'nope'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["train", "conv", "--epochs", "0"], "--epochs: must be an integer >= 1, got 0"),
    (["train", "conv", "--batch-size", "0"], "--batch-size: must be an integer >= 1"),
    (["train", "conv", "--batch-size", "ten"], "--batch-size: invalid integer: 'ten'"),
    (["evaluate", "m.npz", "--threads", "0"], "--threads: must be an integer >= 1"),
    (["reproduce", "--epochs", "-2"], "--epochs: must be an integer >= 1, got -2"),
    (["train", "conv", "--backend", "cuda"], "invalid choice: 'cuda'"),
    (["evaluate"], "the following arguments are required: MODEL.npz"),
])
def test_argparse_errors_exit_2(argv, message, capsys, monkeypatch):
    def must_not_train(*args, **kwargs):
        raise AssertionError("a bad argument got through to presets.train")
    monkeypatch.setattr(training_run, "train", must_not_train)
    assert _exit_code(argv) == 2
    assert message in capsys.readouterr().err


def test_reproduce_unknown_row(tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli.main(["reproduce", "--rows", "conv,nope", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "fastcnn reproduce: error: --rows: unknown row 'nope'" in err
    assert "ensemble" in err  # the known rows are listed
    assert not out.exists()  # checked before anything is made


def test_evaluate_missing_file(tmp_path, capsys):
    path = tmp_path / "missing.npz"
    assert cli.main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastcnn evaluate: error:")
    assert str(path) in err and "No such file" in err


def test_evaluate_not_a_model(tmp_path, capsys):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip file")
    assert cli.main(["evaluate", str(path)]) == 2
    assert f"cannot load {str(path)!r}" in capsys.readouterr().err


def test_too_many_threads(capsys):
    n = fastcnn.MAX_THREADS + 1
    assert cli.main(["evaluate", "m.npz", "--threads", str(n)]) == 2
    assert f"--threads must be at most {fastcnn.MAX_THREADS}, got {n}" in \
        capsys.readouterr().err


def test_lmbda_on_a_keras_preset(capsys):
    assert cli.main(["train", "keras-cnn", "--lmbda", "0.1", "--quiet"]) == 2
    assert "lmbda applies to the book's presets" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# evaluate

def _printed_accuracies(text, path):
    m = re.search(re.escape(str(path)) + r": validation accuracy " + PCT +
                  r" \(last 10000 training images\), test accuracy " + PCT +
                  r" \(the 10000 test images\)", text)
    assert m, text
    return m.group(1) + "%", m.group(2) + "%"


def test_evaluate_a_saved_sequential_model(tmp_path, capsys, mnist):
    (xt, yt), (xv, yv), (xs, ys) = mnist
    fastcnn.set_num_threads(1)
    model = fastcnn.Sequential([L.Conv2D(4, 5, activation="relu"), L.MaxPool2D(2), L.Flatten(),
                                L.Dense(10, activation="softmax")], input_shape=(1, 28, 28))
    model.fit(xt[:2000], yt[:2000], epochs=1, batch_size=20, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    capsys.readouterr()
    assert cli.main(["evaluate", str(path), "--threads", "1"]) == 0
    val, test = _printed_accuracies(capsys.readouterr().out, path)
    assert val == f"{model.evaluate(xv, yv)['accuracy']:.2%}"
    assert test == f"{model.evaluate(xs, ys)['accuracy']:.2%}"
    assert val != test  # two different sets really were evaluated


def test_evaluate_a_saved_network3_model_keeps_its_dropout_scaling(tmp_path, capsys, mnist):
    """A network3 net with dropout scales inputs by (1 - p) at inference; the saved
    model must do the same when the CLI loads it."""
    (xt, yt), (xv, yv), (xs, ys) = mnist
    fastcnn.set_num_threads(1)
    net = Network([FullyConnectedLayer(784, 30, p_dropout=0.5),
                   SoftmaxLayer(30, 10, p_dropout=0.5)], 10)
    net.SGD((xt[:1000].reshape(-1, 784), yt[:1000]), 1, 10, 0.1,
            (xv[:100].reshape(-1, 784), yv[:100]), verbose=False)
    path = tmp_path / "net3.npz"
    net.save(str(path))
    capsys.readouterr()
    assert cli.main(["evaluate", str(path)]) == 0
    val, test = _printed_accuracies(capsys.readouterr().out, path)
    assert val == f"{net.accuracy((xv.reshape(-1, 784), yv)):.2%}"
    assert test == f"{net.accuracy((xs.reshape(-1, 784), ys)):.2%}"


# ---------------------------------------------------------------------------
# train, on a slice of MNIST

SLICE = (1000, 200, 200)  # training, validation, test images


@pytest.fixture
def small_mnist(monkeypatch):
    real = datasets.load_mnist

    def load_slice(path=None, validation=10000, dtype="float32"):
        sets = real(path, validation=validation, dtype=dtype)
        return tuple((x[:n], y[:n]) for (x, y), n in zip(sets, SLICE))

    # network3.load_data_shared and presets.train both call datasets.load_mnist
    monkeypatch.setattr(datasets.idx, "load_mnist", load_slice)
    return load_slice()


@pytest.mark.parametrize("preset", ["conv", "keras-cnn"])
def test_train_prints_accuracy_and_saves_a_loadable_model(preset, tmp_path, capsys,
                                                          small_mnist):
    path = tmp_path / f"{preset}.npz"
    argv = ["train", preset, "--epochs", "1", "--save", str(path), "--threads", "1"]
    assert cli.main(argv + ["--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines
    m = re.fullmatch(preset + r": test accuracy " + PCT + r" at the epoch of best validation "
                     r"accuracy \(1\), " + PCT + r" after the last; \d+ s", lines[0])
    assert m, lines[0]
    assert lines[1] == f"saved to {path}"

    model = fastcnn.load(path)
    acc = f"{model.evaluate(*small_mnist[2])['accuracy']:.2%}"
    assert m.group(1) + "%" == acc and m.group(2) + "%" == acc


def test_train_progress_output(tmp_path, capsys, small_mnist):
    assert cli.main(["train", "fc100", "--epochs", "1", "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"fastcnn {fastcnn.__version__}: training fc100 on MNIST for 1 epoch "
                        "(native backend, 1 thread)")
    assert lines[1].startswith("epoch 1/1  loss ")
    assert lines[-1].startswith("fc100: test accuracy ")


# ---------------------------------------------------------------------------
# train --data DIR: another IDX data set than MNIST, its shape and classes

def _write_idx_set(directory, n_train, n_test, shape, classes, seed=0):
    """Four IDX files (gzipped), written here from the format's definition:
    images of `shape` (H, W) whose mean brightness tells the class."""
    import gzip
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, classes, n).astype(np.uint8)
        y[0] = classes - 1
        x = (rng.integers(0, 40, (n,) + shape) + 200 * y[:, None, None] // classes).astype(
            np.uint8)
        for kind, a in (("images-idx3", x), ("labels-idx1", y)):
            head = bytes([0, 0, 8, a.ndim]) + b"".join(d.to_bytes(4, "big") for d in a.shape)
            (directory / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(head +
                                                                                a.tobytes()))


@pytest.mark.parametrize("preset, shape, n_train", [("fc100", (9, 7), 10060),
                                                     ("keras-cnn", (16, 15), 10060)])
def test_train_on_another_idx_data_set(preset, shape, n_train, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    _write_idx_set(data, n_train, 50, shape, classes=3)
    path = tmp_path / "m.npz"
    argv = ["train", preset, "--data", str(data), "--epochs", "1", "--batch-size", "10",
            "--save", str(path), "--threads", "1", "--quiet"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    model = fastcnn.load(path)
    assert model.output_shape == (3,)
    want = (1,) + shape if preset == "keras-cnn" else (shape[0] * shape[1],)
    assert model.input_shape == want
    assert cli.main(["evaluate", str(path), "--data", str(data), "--threads", "1"]) == 0
