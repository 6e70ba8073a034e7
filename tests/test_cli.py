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
from fastcnn.runs import reproduce, training_run
from fastcnn import layers as L
from fastcnn.network3 import FullyConnectedLayer, Network, SoftmaxLayer

SRC = str(Path(fastcnn.__file__).parents[1])
PCT = r"(\d+\.\d\d)%"


# main(["...", "--threads", "1"]) sets the process-wide thread count: restore it.
pytestmark = pytest.mark.usefixtures("keep_threads")


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
# reproduce, with a fake presets.train

class FakeTrain:
    """Stands in for presets.train: records its calls, saves a small untrained model
    (different for each seed) and returns a result dict shaped like the real one."""

    def __init__(self):
        self.calls, self.checkpoints = [], []

    def __call__(self, name, epochs=None, batch_size=None, lr=None, lmbda=None, seed=0,
                 backend="native", data_path=None, verbose=1, save=None, checkpoint=None):
        self.calls.append((name, seed, epochs))
        self.checkpoints.append(checkpoint)
        with open(checkpoint, "wb") as f:   # what the real train leaves for the CLI to remove
            f.write(b"state after the last epoch")
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
    monkeypatch.setattr(training_run, "train", fake)
    return fake


def _row(r):
    """The results.md line the reproduce table should hold for result r."""
    row = "Keras" if r["row"] is None else r["row"]
    best = r["best_epoch"] or ""
    return (f"| {row} | {r['preset']} | {r['book']:.2f} | {r['test_accuracy']:.2f}% | "
            f"{r['test_accuracy'] - r['book']:+.2f} | {r['epochs_run']} | {best} | "
            f"{r['seconds'] / 60:.1f} min |")


def test_reproduce_writes_results_and_reuses_finished_runs(tmp_path, fake_train, capsys,
                                                         monkeypatch):
    out = tmp_path / "runs"
    argv = ["reproduce", "--rows", "conv,keras-cnn", "--out", str(out), "--quiet"]
    clock = iter([1000.0, 1090.0])   # the command's start and end
    with monkeypatch.context() as m:
        m.setattr(cli.time, "monotonic", lambda: next(clock))
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
    # each run kept its state in a checkpoint, removed once its results were written
    assert fake_train.checkpoints == [str(out / "conv-seed0.partial.npz"),
                                      str(out / "keras-cnn-seed0.partial.npz")]
    assert not list(out.glob("*.partial.npz"))
    printed = capsys.readouterr().out
    assert "\n".join(md) in printed
    assert "this command ran 1.5 min)" in printed

    # a second call reuses both finished runs: the same table, no training
    assert cli.main(argv) == 0
    assert len(fake_train.calls) == 2
    printed = capsys.readouterr().out
    assert printed.count("reusing the finished run") == 2
    assert (out / "results.md").read_text().splitlines() == md

    # a checkpoint left beside a finished run (stopped between results and clean-up) goes
    (out / "conv-seed0.partial.npz").write_bytes(b"stale")
    assert cli.main(argv) == 0
    assert len(fake_train.calls) == 2
    assert not (out / "conv-seed0.partial.npz").exists()

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


def test_notes_say_how_an_ensembles_wall_time_was_added_up():
    members = [300.0, 420.0, 360.0]
    par = {"preset": "ensemble", "seconds": sum(members), "member_seconds": members,
           "members_parallel": True}
    note = reproduce.notes([par])
    assert "3 members' added up (they ran as parallel tasks" in note
    assert "the slowest member took 7.0 min" in note
    seq = dict(par, members_parallel=False)
    assert "they ran one after the other" in reproduce.notes([seq])
    # a resumed single run and an ensemble: both notes, resumed first
    note = reproduce.notes([{"preset": "conv", "segments": 2}, par])
    assert note.index("Resumed after an interruption: conv.") < note.index("ensemble's")
    assert reproduce.notes([{"preset": "conv"}]) == ""


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
    assert result["member_seconds"] == [60.0 * (s + 1) for s in range(2, 7)]
    md = (out / "results.md").read_text().splitlines()
    assert md[2] == _row(result)
    # trained one after the other here; the slowest member (seed 6) took 7 min
    assert ("members' added up (they ran one after the other); the slowest member took "
            "7.0 min.") in (out / "results.md").read_text()

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
# reproduce: an interrupted run resumes from its last finished epoch, on a tiny slice
# of MNIST (300 / 100 / 100 images; the dropout row expands its 300 to 1500), 3 epochs.
# `dropout` is a book row (network3.Network.SGD, dropout masks from the model's
# Generator); `keras-cnn` goes through Sequential.fit directly (Adam state, shuffling
# and dropout from the Generator).

TINY = (300, 100, 100)
EPOCHS = 3
BATCHES = {"dropout": 5 * TINY[0] // 10, "keras-cnn": -(-TINY[0] // 128)}  # per epoch
_REAL_LOAD = datasets.load_mnist


def _load_tiny(real=_REAL_LOAD, sizes=TINY):
    def load_slice(path=None, validation=10000, dtype="float32"):
        sets = real(path, validation=validation, dtype=dtype)
        return tuple((x[:n], y[:n]) for (x, y), n in zip(sets, sizes))
    return load_slice


@pytest.fixture
def tiny_mnist(monkeypatch):
    monkeypatch.setattr(datasets.idx, "load_mnist", _load_tiny())


class HistorySpy:
    """Records the History every Sequential.fit returns (both presets' paths use it)."""

    def __init__(self, monkeypatch):
        self.histories = []
        real = fastcnn.Sequential.fit

        def fit(model, *args, **kwargs):
            h = real(model, *args, **kwargs)
            self.histories.append(h)
            return h
        monkeypatch.setattr(fastcnn.Sequential, "fit", fit)


def _argv(out, preset, *more):
    return ["reproduce", "--rows", preset, "--epochs", str(EPOCHS), "--out", str(out),
            "--quiet", "--threads", "1", *more]


def _run(out, preset, *more):
    """A whole run: (exit code, its results, its saved arrays, the History fit returned)."""
    with pytest.MonkeyPatch.context() as mp:
        spy = HistorySpy(mp)
        code = cli.main(_argv(out, preset, *more))
    stem = out / f"{preset}-seed0-e{EPOCHS}"
    with np.load(f"{stem}.npz") as f:
        arrays = {k: f[k] for k in f.files if k != "header"}
    return (code, json.loads(Path(f"{stem}.json").read_text()), arrays,
            spy.histories[-1] if spy.histories else None)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: each tiny run trained in one go."""
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.idx, "load_mnist", _load_tiny())
        before = fastcnn.get_num_threads()
        for preset in BATCHES:
            runs[preset] = _run(tmp_path_factory.mktemp(preset), preset)
        fastcnn.set_num_threads(before)
    return runs


def _interrupt_mid_epoch(monkeypatch, preset, epoch, batch, done):
    """A KeyboardInterrupt (Ctrl-C) in training, before mini-batch `batch` of `epoch`,
    in a run that starts after epoch `done`."""
    real, count = fastcnn.Sequential.forward, [0]
    stop_at = (epoch - 1 - done) * BATCHES[preset] + batch

    def forward(model, x, training=False, rng=None, head=False):
        if training:
            count[0] += 1
            if count[0] == stop_at:
                raise KeyboardInterrupt
        return real(model, x, training, rng, head)
    monkeypatch.setattr(fastcnn.Sequential, "forward", forward)


def _interrupt_after_epoch(monkeypatch, epoch):
    """A KeyboardInterrupt right after the checkpoint of `epoch` was written."""
    real = presets._Checkpoint.on_epoch_end

    def on_epoch_end(self, model, e, logs):
        real(self, model, e, logs)
        if e == epoch:
            raise KeyboardInterrupt
    monkeypatch.setattr(presets._Checkpoint, "on_epoch_end", on_epoch_end)


def _interrupted(out, preset, how, epoch, capsys, done=0):
    """Run `preset` (from after epoch `done`) until it is interrupted in or after
    `epoch`; returns the checkpoint's path."""
    with pytest.MonkeyPatch.context() as mp:
        if how == "mid":
            _interrupt_mid_epoch(mp, preset, epoch, 2, done)
        else:
            _interrupt_after_epoch(mp, epoch)
        assert cli.main(_argv(out, preset)) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "resumes from its last finished epoch" in err
    partial = out / f"{preset}-seed0-e{EPOCHS}.partial.npz"
    assert partial.exists() and not Path(str(partial).replace(".partial", "")).exists()
    return partial


def _same_history(h, ref):
    assert h.epochs == ref.epochs == EPOCHS
    for k in ref.history:
        if k != "seconds":
            assert h.history[k] == ref.history[k], k
    assert (h.best_epoch, h.best_val_accuracy, h.test_accuracy, h.stop_reason) == \
        (ref.best_epoch, ref.best_val_accuracy, ref.test_accuracy, ref.stop_reason)


def _same_results(res, ref, segments):
    assert res["segments"] == segments and ref["segments"] == 1
    skip = ("seconds", "segments", "history")   # history: compared by _same_history
    assert {k: v for k, v in res.items() if k not in skip} == \
        {k: v for k, v in ref.items() if k not in skip}


@pytest.mark.parametrize("preset", list(BATCHES))
@pytest.mark.parametrize("stops", [[("mid", 2)], [("end", 1), ("mid", 3)]],
                         ids=["in-epoch-2", "after-epoch-1-then-in-epoch-3"])
def test_interrupted_run_resumes_bit_identically(preset, stops, tmp_path, capsys, tiny_mnist,
                                                 uninterrupted):
    code, ref, ref_arrays, ref_history = uninterrupted[preset]
    assert code == 0
    out = tmp_path / "runs"
    done = 0
    for how, epoch in stops:
        partial = _interrupted(out, preset, how, epoch, capsys, done)
        done = epoch if how == "end" else epoch - 1
        _, state = fastcnn.saving.load_checkpoint(partial)
        assert state["epoch"] == done and len(state["history"]["history"]["loss"]) == done

    code, res, arrays, history = _run(out, preset)
    assert code == 0
    printed = capsys.readouterr().out
    assert f"resuming {preset} seed 0 from epoch {done}/{EPOCHS} ({partial})" in printed
    assert not partial.exists()
    # parameters and optimizer state, every per-epoch figure, the accuracies: all the same
    assert arrays.keys() == ref_arrays.keys()
    for k in ref_arrays:
        assert np.array_equal(arrays[k], ref_arrays[k]), k
    _same_history(history, ref_history)
    _same_results(res, ref, segments=len(stops) + 1)
    assert json.loads((out / "results.json").read_text()) == [res]
    md = (out / "results.md").read_text()
    assert md.splitlines()[2] == _row(res)
    assert f"Resumed after an interruption: {preset}. The wall time of a resumed run is " \
        "the sum of its segments'" in md
    assert md.rstrip("\n") in printed   # the table and its note, as printed


def test_resume_needs_the_generator_state(tmp_path, capsys, tiny_mnist, uninterrupted):
    """The check above can fail: resumed with a fresh Generator, the dropout masks of
    epochs 2 and 3 are other ones and so are the parameters."""
    _, _, ref_arrays, _ = uninterrupted["dropout"]
    out = tmp_path / "runs"
    partial = _interrupted(out, "dropout", "end", 1, capsys)
    model, state = fastcnn.saving.load_checkpoint(partial)
    state["rng"] = np.random.default_rng(0).bit_generator.state
    fastcnn.saving.save_checkpoint(model, partial, state)
    _, _, arrays, _ = _run(out, "dropout")
    assert not np.array_equal(arrays["param/11/w"], ref_arrays["param/11/w"])


def test_time_of_a_resumed_run_is_the_sum_of_its_segments(tmp_path, capsys, tiny_mnist,
                                                          monkeypatch):
    """presets.train reads its clock when it starts, at each checkpoint and when
    training ends; here every reading is one second after the last."""
    clock = iter(range(1000, 2000))
    monkeypatch.setattr(training_run, "time", type("Clock", (), {
        "perf_counter": staticmethod(lambda: float(next(clock)))}))
    out = tmp_path / "runs"
    partial = _interrupted(out, "keras-cnn", "mid", 2, capsys)
    _, state = fastcnn.saving.load_checkpoint(partial)
    assert state["seconds"] == 1.0   # start -> epoch 1; the half of epoch 2 is lost
    _, res, _, _ = _run(out, "keras-cnn")
    assert res["seconds"] == 1.0 + 3.0 and res["segments"] == 2   # + start -> 2 -> 3 -> end


def test_fresh_discards_an_interrupted_run(tmp_path, capsys, tiny_mnist, uninterrupted):
    _, ref, ref_arrays, _ = uninterrupted["keras-cnn"]
    out = tmp_path / "runs"
    partial = _interrupted(out, "keras-cnn", "mid", 2, capsys)
    code, res, arrays, _ = _run(out, "keras-cnn", "--fresh")
    assert code == 0
    printed = capsys.readouterr().out
    assert f"discarding the interrupted run in {partial}" in printed
    assert "resuming" not in printed
    assert not partial.exists()
    _same_results(res, ref, segments=1)
    assert all(np.array_equal(arrays[k], ref_arrays[k]) for k in ref_arrays)


@pytest.mark.parametrize("change", ["backend", "data"])
def test_resume_refuses_a_checkpoint_of_other_settings(change, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(datasets.idx, "load_mnist", _load_tiny())
    out = tmp_path / "runs"
    partial = _interrupted(out, "keras-cnn", "end", 1, capsys)
    saved = partial.read_bytes()
    more = []
    if change == "backend":
        more = ["--backend", "reference"]
        why = "backend 'native' there, 'reference' here"
    else:   # the same command on other images
        monkeypatch.setattr(datasets.idx, "load_mnist", _load_tiny(_REAL_LOAD, (301, 100, 100)))
        why = "other data"

    def must_not_train(*args, **kwargs):
        raise AssertionError("trained on a checkpoint of other settings")
    monkeypatch.setattr(fastcnn.Sequential, "fit", must_not_train)
    assert cli.main(_argv(out, "keras-cnn", *more)) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastcnn reproduce: error: ")
    assert f"{partial} is the checkpoint of a run with other settings ({why}" in err
    assert "reproduce --fresh" in err
    assert partial.read_bytes() == saved   # left as it was


@pytest.mark.parametrize("damage", ["junk", "truncated", "a-model", "bad-state"])
def test_a_damaged_checkpoint_is_refused_naming_it(damage, tmp_path, capsys, tiny_mnist,
                                                   uninterrupted):
    out = tmp_path / "runs"
    partial = _interrupted(out, "keras-cnn", "end", 1, capsys)
    if damage == "junk":
        partial.write_bytes(b"not a zip file")
    elif damage == "truncated":
        partial.write_bytes(partial.read_bytes()[:-300])
    elif damage == "a-model":   # a plain model file has no training state
        fastcnn.load(partial).save(partial)
    else:
        model, state = fastcnn.saving.load_checkpoint(partial)
        state["epoch"] = EPOCHS + 5
        fastcnn.saving.save_checkpoint(model, partial, state)
    assert cli.main(_argv(out, "keras-cnn")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastcnn reproduce: error: cannot load {str(partial)!r}: ")
    assert "delete it (reproduce --fresh does) to start the run over" in err
    assert partial.exists()
    # from Python, a damaged file stays a FileFormatError (a ValueError)
    kind = fastcnn.FileFormatError if damage in ("junk", "truncated") else ValueError
    with pytest.raises(kind, match="delete it"):
        presets.train("keras-cnn", epochs=EPOCHS, verbose=0, checkpoint=str(partial))
    # --fresh starts over and gives the uninterrupted run
    code, res, _, _ = _run(out, "keras-cnn", "--fresh")
    assert code == 0 and not partial.exists()
    _same_results(res, uninterrupted["keras-cnn"][1], segments=1)


def test_a_run_stopped_after_its_last_epoch_only_writes_its_results(tmp_path, capsys,
                                                                   tiny_mnist, uninterrupted,
                                                                   monkeypatch):
    """Killed after the last checkpoint, before the results were written: the next call
    trains nothing and writes the results of the finished run."""
    _, ref, ref_arrays, _ = uninterrupted["keras-cnn"]
    out = tmp_path / "runs"
    _interrupted(out, "keras-cnn", "end", EPOCHS, capsys)
    trained = []
    real = fastcnn.Sequential.forward
    monkeypatch.setattr(fastcnn.Sequential, "forward", lambda m, x, training=False, rng=None,
                        head=False: trained.append(training) or real(m, x, training, rng, head))
    code, res, arrays, _ = _run(out, "keras-cnn")
    assert code == 0 and not any(trained)
    assert f"from epoch {EPOCHS}/{EPOCHS}" in capsys.readouterr().out
    _same_results(res, ref, segments=2)
    assert all(np.array_equal(arrays[k], ref_arrays[k]) for k in ref_arrays)


def test_a_run_that_had_stopped_is_not_continued(tmp_path, capsys, tiny_mnist, monkeypatch):
    """A checkpoint of the epoch at which training stopped (say the loss diverged in
    the next one's first batch... or a callback stopped it) ends the run there."""
    out = tmp_path / "runs"
    partial = _interrupted(out, "keras-cnn", "end", 1, capsys)
    model, state = fastcnn.saving.load_checkpoint(partial)
    state["stopped"] = True
    state["history"]["stop_reason"] = "the loss became nan in epoch 1, batch 3"
    fastcnn.saving.save_checkpoint(model, partial, state)

    def must_not_train(*args, **kwargs):
        raise AssertionError("a stopped run was continued")
    monkeypatch.setattr(fastcnn.Sequential, "fit", must_not_train)
    assert cli.main(_argv(out, "keras-cnn")) == 0
    res = json.loads((out / f"keras-cnn-seed0-e{EPOCHS}.json").read_text())
    assert res["epochs_run"] == 1 and res["stop_reason"].startswith("the loss became nan")
    assert not partial.exists()


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


# ---------------------------------------------------------------------------
# sweep without a scheduler: the runs one after the other in this process (the Dask
# path is tests/test_dask.py, run once by CI)

@pytest.mark.parametrize("argv, message", [
    (["sweep", "conv", "--set", "momentum=0.9"], "--set must be NAME=V1,V2,..."),
    (["sweep", "conv", "--set", "lr=fast"], "--set lr: values must be floats"),
    (["sweep", "conv", "--seeds", "a"], "--seeds must be comma-separated integers"),
    (["sweep", "nope"], "unknown preset 'nope'"),
])
def test_sweep_bad_arguments(argv, message, tmp_path, capsys, monkeypatch):
    def must_not_train(*args, **kwargs):
        raise AssertionError("a bad argument got through to presets.train")
    monkeypatch.setattr(training_run, "train", must_not_train)
    assert cli.main(argv + ["--out", str(tmp_path / "sweep")]) == 2
    assert message in capsys.readouterr().err


def test_sweep_in_process_matches_direct_runs(tmp_path, capsys, tiny_mnist):
    out = tmp_path / "sweep"
    argv = ["sweep", "conv2-relu", "--set", "lr=0.03,0.1", "--seeds", "0", "--epochs", "1",
            "--out", str(out), "--threads", "1"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert [(r["lr"], r["seed"]) for r in results] == [(0.03, 0), (0.1, 0)]
    for r in results:
        direct = tmp_path / f"direct-{r['lr']}.npz"
        ref = presets.train("conv2-relu", epochs=1, lr=r["lr"], seed=0, verbose=0,
                            save=str(direct))
        assert (r["test_accuracy"], r["best_epoch"]) == (ref["test_accuracy"],
                                                         ref["best_epoch"])
        with np.load(direct) as a, np.load(out / f"{r['run']}.npz") as b:
            for k in a.files:
                assert np.array_equal(a[k], b[k]), k
        assert f"[{r['run']}] epoch 1:" in printed
        assert f"| {r['run']} | lr={r['lr']} | 0 |" in (out / "results.md").read_text()


def test_scheduler_without_dask_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)   # import distributed fails
    for argv in (["sweep", "conv", "--scheduler", "local:1"],
                 ["reproduce", "--rows", "conv", "--scheduler", "local:1"]):
        assert cli.main(argv + ["--out", str(tmp_path / "o"), "--epochs", "1"]) == 2
        assert "pip install 'fastcnn[dask]'" in capsys.readouterr().err
