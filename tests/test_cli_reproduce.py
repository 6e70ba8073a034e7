"""`fastcnn reproduce` and `fastcnn sweep` (fastcnn.cli): the bookkeeping of
reproduce (results.json, results.md, reusing finished runs, the ensemble's vote)
with presets.train replaced by a fake that saves a tiny model, so nothing trains
for long; sweep run in this process on a tiny slice of MNIST against direct runs."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from cli_cases import _row

import fastcnn
from fastcnn import cli, presets
from fastcnn.runs import reproduce, training_run
from fastcnn import layers as L


# main(["...", "--threads", "1"]) sets the process-wide thread count: restore it.
pytestmark = pytest.mark.usefixtures("keep_threads")


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
