"""Sequential.save / fastcnn.load: exact round trips (parameters, optimizer state,
training continued after a reload), atomic writes, and training checkpoints.
Refusal of damaged, tampered or foreign files: test_saving_refusals.py."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
from helpers import assert_close
from saving_cases import _data, _model, _trained

import fastcnn
from fastcnn import Sequential, optim
from fastcnn import layers as L

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _params(model):
    return [p for p, _ in model.parameters()]


OPTIMIZERS = {
    "sgd": lambda: optim.SGD(0.1),
    "momentum": lambda: optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adagrad": lambda: optim.Adagrad(0.05),
    "rmsprop": lambda: optim.RMSprop(0.01, alpha=0.8),
    "adam": lambda: optim.Adam(0.01, beta1=0.8, weight_decay=1e-4),
}


@pytest.mark.parametrize("backend, dtype", [("native", "float32"), ("reference", "float64")])
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_round_trip_is_exact_and_training_continues(tmp_path, opt, backend, dtype):
    model = _trained(OPTIMIZERS[opt](), backend, dtype)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = fastcnn.load(path, backend=backend)

    assert repr(loaded) == repr(model)
    assert loaded.input_shape == model.input_shape and loaded.dtype == model.dtype
    assert loaded.loss.name == model.loss.name
    for a, b in zip(loaded.layers, model.layers):
        assert type(a) is type(b) and a.config() == b.config()
    for p, q in zip(_params(loaded), _params(model)):
        assert p.dtype == q.dtype and np.array_equal(p, q)
    x, y = _data(9, seed=5)
    assert np.array_equal(loaded.predict_proba(x), model.predict_proba(x))

    o, p = loaded.optimizer, model.optimizer
    assert type(o) is type(p) and o.config() == p.config() and o.steps == p.steps == 3
    assert len(o.state) == len(p.state) == len(_params(model))
    for s, t in zip(o.state, p.state):
        assert s.keys() == t.keys() == set(p.state_names)
        for k in s:
            assert s[k].dtype == t[k].dtype and np.array_equal(s[k], t[k])

    # one more epoch on each, same data and seed, the optimizer they carry
    before = [p.copy() for p in _params(model)]
    h1 = model.fit(x, y, epochs=1, batch_size=4, seed=7, verbose=0)
    h2 = loaded.fit(x, y, epochs=1, batch_size=4, seed=7, verbose=0)
    assert h1.history["loss"] == h2.history["loss"]
    assert loaded.optimizer.steps == 6
    for p, q, b in zip(_params(loaded), _params(model), before):
        assert np.array_equal(p, q) and not np.array_equal(p, b)


def test_other_loss_untrained_model_and_other_backend(tmp_path):
    model = Sequential([L.Dense(3, activation="sigmoid")], input_shape=(5,), seed=4)
    x = np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32)
    y = np.random.default_rng(2).random((6, 3))
    model.fit(x, y, loss="binary_cross_entropy", optimizer=optim.SGD(0.5), verbose=0)
    model.save(tmp_path / "bce.npz")
    loaded = fastcnn.load(tmp_path / "bce.npz", backend="reference")
    assert loaded.backend == "reference" and loaded.loss.name == "binary_cross_entropy"
    assert_close(loaded.predict_proba(x), model.predict_proba(x), rtol=1e-6, atol=1e-7)
    assert loaded.evaluate(x, y)["loss"] == pytest.approx(model.evaluate(x, y)["loss"], rel=1e-5)

    fresh = _model()                                # never trained: no optimizer
    fresh.save(str(tmp_path / "fresh.npz"))         # a str path works too
    again = fastcnn.load(str(tmp_path / "fresh.npz"))
    assert again.optimizer is None
    assert all(np.array_equal(p, q) for p, q in zip(_params(again), _params(fresh)))


def test_unbuilt_model_and_bad_suffix_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        Sequential([L.Dense(3)]).save(tmp_path / "m.npz")
    for name in ("model.bin", "model", "model.npz.tmp"):
        with pytest.raises(ValueError, match=re.escape(name)):
            _model().save(tmp_path / name)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# Atomic writes

def test_save_leaves_no_temp_file_and_replaces(tmp_path):
    path = tmp_path / "m.npz"
    first, second = _trained(seed=3), _trained(seed=4)
    first.save(path)
    assert os.listdir(tmp_path) == ["m.npz"]
    second.save(path)
    assert os.listdir(tmp_path) == ["m.npz"]
    x, _ = _data(5, seed=9)
    assert np.array_equal(fastcnn.load(path).predict_proba(x), second.predict_proba(x))
    assert not np.array_equal(first.predict_proba(x), second.predict_proba(x))


def test_saved_file_gets_the_usual_permissions(tmp_path):
    """Like any file the user creates (umask applies), not private to the owner."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    _model().save(tmp_path / "m.npz")
    assert oct(os.stat(tmp_path / "m.npz").st_mode & 0o777) == oct(os.stat(probe).st_mode & 0o777)


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch, error):
    path = tmp_path / "m.npz"
    _trained().save(path)
    before = path.read_bytes()

    def broken_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a file")   # something written before the failure
        raise error
    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(type(error)):
        _trained(seed=5).save(path)
    with pytest.raises(type(error)):
        _trained(seed=5).save(tmp_path / "new.npz")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]      # no temp file, no half-written new.npz
    fastcnn.load(path)


def test_save_into_a_missing_directory_names_the_users_path(tmp_path):
    path = tmp_path / "no-such-dir" / "m.npz"
    with pytest.raises(FileNotFoundError) as e:
        _model().save(path)
    assert str(path) in str(e.value) and "directory does not exist" in str(e.value)
    assert ".tmp" not in str(e.value)
    assert os.listdir(tmp_path) == []


def test_save_flushes_the_directory_after_the_rename(tmp_path, monkeypatch):
    """The rename itself reaches the disk: the directory is fsynced after it."""
    path = tmp_path / "m.npz"
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append((os.path.realpath(f"/proc/self/fd/{fd}"), os.path.exists(path)))
        return real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    _model().save(path)
    assert (os.path.realpath(tmp_path), True) in synced


# ---------------------------------------------------------------------------
# Training checkpoints: a model file with a JSON state in its header

def test_checkpoint_round_trip(tmp_path):
    model = _trained(optim.Adam(0.01))
    rng = np.random.default_rng(12345)
    rng.random(7)
    state = {"epoch": 3, "rng": rng.bit_generator.state, "loss": [0.1 / 3, float("nan")],
             "best": None}
    path = tmp_path / "run.partial.npz"
    fastcnn.saving.save_checkpoint(model, path, state)
    back, got = fastcnn.saving.load_checkpoint(path)
    assert got["epoch"] == 3 and got["best"] is None and got["loss"][0] == 0.1 / 3
    assert np.isnan(got["loss"][1])
    again = np.random.default_rng()
    again.bit_generator.state = got["rng"]          # 128-bit integers survive JSON
    assert np.array_equal(again.random(5), rng.random(5))
    for p, q in zip(_params(back), _params(model)):
        np.testing.assert_array_equal(p, q)
    assert back.optimizer.steps == model.optimizer.steps
    for a, b in zip(back.optimizer.state, model.optimizer.state):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    # a checkpoint is also a model file
    assert np.array_equal(fastcnn.load(path).predict_proba(_data()[0]),
                          model.predict_proba(_data()[0]))


def test_a_model_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "model.npz"
    _trained().save(path)
    with pytest.raises(ValueError, match=re.escape(f"cannot load {str(path)!r}: it is a saved "
                                                   "model, not a training checkpoint")):
        fastcnn.saving.load_checkpoint(path)
    with pytest.raises(TypeError, match="checkpoint must be a dict"):
        fastcnn.saving.save_checkpoint(_trained(), path, [1, 2])
