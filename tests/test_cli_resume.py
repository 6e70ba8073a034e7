"""`fastcnn reproduce` interrupted (Ctrl-C in or after an epoch) and run again:
it resumes from its last finished epoch and ends bit-identical to a run trained
in one go; checkpoints of other settings, damaged or stale ones are refused or
discarded. Runs on a tiny slice of MNIST (cli_cases.TINY)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_cases import _REAL_LOAD, TINY, _load_tiny, _row

import fastcnn
from fastcnn import cli, datasets, presets
from fastcnn.runs import training_run


# main(["...", "--threads", "1"]) sets the process-wide thread count: restore it.
pytestmark = pytest.mark.usefixtures("keep_threads")


# ---------------------------------------------------------------------------
# reproduce: an interrupted run resumes from its last finished epoch, on a tiny slice
# of MNIST (300 / 100 / 100 images; the dropout row expands its 300 to 1500), 3 epochs.
# `dropout` is a book row (network3.Network.SGD, dropout masks from the model's
# Generator); `keras-cnn` goes through Sequential.fit directly (Adam state, shuffling
# and dropout from the Generator).

EPOCHS = 3
BATCHES = {"dropout": 5 * TINY[0] // 10, "keras-cnn": -(-TINY[0] // 128)}  # per epoch


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
