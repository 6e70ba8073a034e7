"""The command line (fastcnn.cli): help, argument errors, `evaluate` against
Sequential.evaluate, the bookkeeping of `reproduce` (with presets.train replaced by
a fake that saves a tiny model, so nothing trains for long) and `train` on a small
slice of MNIST (datasets.load_mnist replaced by a wrapper that slices the real data).
Most tests call fastcnn.cli.main in-process; the help tests run `python -m fastcnn`."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastcnn
from fastcnn import cli, datasets, presets
from fastcnn import layers as L
from fastcnn.network3 import FullyConnectedLayer, Network, SoftmaxLayer

SRC = str(Path(fastcnn.__file__).parents[1])
PCT = r"(\d+\.\d\d)%"


@pytest.fixture(autouse=True)
def keep_threads():
    """main(["...", "--threads", "1"]) sets the process-wide thread count: restore it."""
    before = fastcnn.get_num_threads()
    yield
    fastcnn.set_num_threads(before)


@pytest.fixture(scope="module")
def mnist():
    return datasets.load_mnist()


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
    monkeypatch.setattr(presets, "train", must_not_train)
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
# reproduce, with a fake presets.train

class FakeTrain:
    """Stands in for presets.train: records its calls, saves a small untrained model
    (different for each seed) and returns a result dict shaped like the real one."""

    def __init__(self):
        self.calls = []

    def __call__(self, name, epochs=None, batch_size=None, lr=None, lmbda=None, seed=0,
                 backend="native", data_path=None, verbose=1, save=None):
        self.calls.append((name, seed, epochs))
        spec = presets.PRESETS[name]
        model = fastcnn.Sequential([L.Flatten(), L.Dense(10, activation="softmax")],
                                   input_shape=(1, 28, 28), seed=seed + 100)
        model.save(save)
        epochs = spec["epochs"] if epochs is None else epochs
        return {"preset": name, "row": spec["row"], "book": spec["book"], "epochs": epochs,
                "epochs_run": epochs, "batch_size": 10, "lr": spec["lr"], "lmbda": None,
                "seed": seed, "backend": backend, "best_epoch": epochs - 1,
                "best_val_accuracy": 95.0, "test_accuracy": 90.0 + seed + len(self.calls) / 8,
                "final_test_accuracy": 89.0, "seconds": 60.0 * (seed + 1),
                "stop_reason": None}


@pytest.fixture
def fake_train(monkeypatch):
    fake = FakeTrain()
    monkeypatch.setattr(presets, "train", fake)
    return fake


def _row(r):
    """The results.md line the reproduce table should hold for result r."""
    row = "Keras" if r["row"] is None else r["row"]
    best = r["best_epoch"] or ""
    return (f"| {row} | {r['preset']} | {r['book']:.2f} | {r['test_accuracy']:.2f}% | "
            f"{r['test_accuracy'] - r['book']:+.2f} | {r['epochs_run']} | {best} | "
            f"{r['seconds'] / 60:.1f} min |")


def test_reproduce_writes_results_and_reuses_finished_runs(tmp_path, fake_train, capsys):
    out = tmp_path / "runs"
    argv = ["reproduce", "--rows", "conv,keras-cnn", "--out", str(out), "--quiet"]
    assert cli.main(argv) == 0
    assert fake_train.calls == [("conv", 0, None), ("keras-cnn", 0, None)]
    results = json.loads((out / "results.json").read_text())
    assert [r["preset"] for r in results] == ["conv", "keras-cnn"]
    assert results[0]["row"] == 2 and results[1]["row"] is None
    md = (out / "results.md").read_text().splitlines()
    assert md[0].startswith("| row | preset | book | fastcnn |")
    assert md[2:] == [_row(r) for r in results]
    assert "| 2 | conv | 98.78 | 90.12% | -8.66 | 60 | 59 | 1.0 min |" in md
    assert (out / "conv-seed0.npz").exists() and (out / "conv-seed0.json").exists()
    printed = capsys.readouterr().out
    assert "\n".join(md) in printed

    # a second call reuses both finished runs: the same table, no training
    assert cli.main(argv) == 0
    assert len(fake_train.calls) == 2
    printed = capsys.readouterr().out
    assert printed.count("reusing the finished run") == 2
    assert (out / "results.md").read_text().splitlines() == md

    # a run whose model file is gone is trained again
    (out / "keras-cnn-seed0.npz").unlink()
    assert cli.main(argv) == 0
    assert fake_train.calls[2:] == [("keras-cnn", 0, None)]

    # --fresh trains everything again; --epochs and --seed name other runs
    assert cli.main(argv + ["--fresh"]) == 0
    assert len(fake_train.calls) == 5
    assert cli.main(argv + ["--epochs", "2", "--seed", "3"]) == 0
    assert fake_train.calls[5:] == [("conv", 3, 2), ("keras-cnn", 3, 2)]
    assert (out / "conv-seed3-e2.json").exists()
    results = json.loads((out / "results.json").read_text())
    assert [r["epochs_run"] for r in results] == [2, 2]


def _member_predictions(path, x):
    """argmax of softmax(x @ w + b) = argmax of the logits, straight from the file."""
    with np.load(path) as f:
        w, b = f["param/1/w"].astype(np.float64), f["param/1/b"].astype(np.float64)
    return np.argmax(x.reshape(len(x), -1).astype(np.float64) @ w + b, axis=1)


def test_reproduce_ensemble_votes_five_dropout_nets(tmp_path, fake_train, mnist):
    out = tmp_path / "runs"
    argv = ["reproduce", "--rows", "ensemble", "--out", str(out), "--seed", "2", "--quiet"]
    assert cli.main(argv) == 0
    assert fake_train.calls == [("dropout", s, None) for s in range(2, 7)]
    (result,) = json.loads((out / "results.json").read_text())
    assert result["preset"] == "ensemble" and result["row"] == 9 and result["book"] == 99.67

    _, _, (xs, ys) = mnist
    preds = np.stack([_member_predictions(out / f"dropout-seed{s}.npz", xs)
                      for s in range(2, 7)])
    assert len({tuple(p[:50]) for p in preds}) == 5  # five different members
    votes = np.zeros((len(ys), 10), dtype=int)
    for p in preds:
        np.add.at(votes, (np.arange(len(ys)), p), 1)
    winner = np.argmax(votes, axis=1)  # ties: the lowest class
    assert result["test_accuracy"] == round(100 * float(np.mean(winner == ys)), 2)
    assert result["seconds"] == sum(60.0 * (s + 1) for s in range(2, 7))
    md = (out / "results.md").read_text().splitlines()
    assert md[2] == _row(result)

    # the members are finished runs: a second call trains nothing
    assert cli.main(argv) == 0
    assert len(fake_train.calls) == 5
    assert json.loads((out / "results.json").read_text()) == [result]


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
    monkeypatch.setattr(datasets, "load_mnist", load_slice)
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
                        "(native backend, 1 threads)")
    assert lines[1].startswith("epoch 1/1  loss ")
    assert lines[-1].startswith("fc100: test accuracy ")
