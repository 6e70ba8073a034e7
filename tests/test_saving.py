"""Sequential.save / fastcnn.load: exact round trips (parameters, optimizer state,
training continued after a reload), atomic writes, and refusal of every kind of
damaged, tampered or foreign file with a ValueError naming the file."""
from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import warnings

import numpy as np
import pytest
from helpers import assert_close

import fastcnn
from fastcnn import Sequential, optim
from fastcnn import layers as L


@pytest.fixture(autouse=True)
def one_thread():
    """Bit-for-bit comparisons of training runs: one thread throughout."""
    before = fastcnn.get_num_threads()
    fastcnn.set_num_threads(1)
    yield
    fastcnn.set_num_threads(before)


SHAPE = (2, 9, 11)


def _data(n=17, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + SHAPE).astype(np.float32), rng.integers(0, 4, n)


def _model(backend="native", dtype="float32", seed=3):
    layers = [L.Conv2D(3, 3, stride=2, padding=1, activation="relu"), L.MaxPool2D(2),
              L.Dropout(0.3), L.Dense(5, activation="tanh", init="book"),
              L.Dense(4, activation="softmax")]
    return Sequential(layers, input_shape=SHAPE, backend=backend, dtype=dtype, seed=seed)


def _trained(opt=None, backend="native", dtype="float32", seed=3):
    model = _model(backend, dtype, seed)
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=6, optimizer=opt or optim.Adam(0.01), seed=1, verbose=0)
    return model


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
# Refusals

def _load_error(path) -> str:
    """The ValueError message of loading path; no ResourceWarning (open files) left."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fastcnn.load(path)
        except ValueError as e:
            message = str(e)
        else:
            raise AssertionError(f"loading {path} did not raise ValueError")
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks
    assert str(path) in message, message           # names the file
    return message


def _contents(path):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    del arrays["digest"]
    return json.loads(arrays.pop("header").tobytes()), arrays


def _write(path, header, arrays, sign=True):
    """A model file of this header and these arrays. sign: with the header's
    SHA-256 as its digest member, as save writes it (so the checks behind the
    digest are reached); False keeps the digest of the file at `sign_like`."""
    if not isinstance(header, np.ndarray):
        text = header if isinstance(header, (str, bytes)) else json.dumps(header)
        text = text.encode() if isinstance(text, str) else text
        header = np.frombuffer(text, dtype=np.uint8)
    if sign is True:
        digest = hashlib.sha256(header.tobytes()).hexdigest().encode()
        arrays = dict(arrays, digest=np.frombuffer(digest, dtype=np.uint8))
    elif sign is not False:   # the digest member of another file
        with np.load(sign, allow_pickle=False) as npz:
            arrays = dict(arrays, digest=npz["digest"])
    np.savez(path, header=header, **arrays)
    return path


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.npz"
    _trained().save(path)
    return path


def test_truncated_file(saved, tmp_path):
    data = saved.read_bytes()
    for n in (len(data) // 2, len(data) - 10, 100, 0):
        bad = tmp_path / "cut.npz"
        bad.write_bytes(data[:n])
        _load_error(bad)


def test_tampered_array(saved, tmp_path):
    header, arrays = _contents(saved)
    arrays["param/3/w"] = arrays["param/3/w"].copy()
    arrays["param/3/w"][1, 2] += np.float32(1e-3)
    assert "checksum" in _load_error(_write(tmp_path / "t.npz", header, arrays))
    # a state array too, and an array of another dtype with the same values
    header, arrays = _contents(saved)
    arrays["opt/0/m"] = -arrays["opt/0/m"]
    assert "checksum" in _load_error(_write(tmp_path / "t.npz", header, arrays))
    header, arrays = _contents(saved)
    arrays["param/0/b"] = arrays["param/0/b"].astype(np.float64)
    assert "dtype float64, expected float32" in _load_error(_write(tmp_path / "t.npz", header,
                                                                    arrays))


def test_missing_or_extra_array(saved, tmp_path):
    header, arrays = _contents(saved)
    del arrays["param/4/b"]
    assert "do not match" in _load_error(_write(tmp_path / "t.npz", header, arrays))
    header, arrays = _contents(saved)
    arrays["extra"] = np.zeros(3)
    assert "do not match" in _load_error(_write(tmp_path / "t.npz", header, arrays))


@pytest.mark.parametrize("edit, phrase", [
    (lambda h: h["layers"][1].update(type="MaxPool3D"), "unknown layer type 'MaxPool3D'"),
    (lambda h: h["layers"][1].update(type="__import__"), "unknown layer type"),
    (lambda h: h["layers"][0]["config"].update(filters=-2), "filters"),
    (lambda h: h["layers"][0]["config"].update(colour="red"), "colour"),
    (lambda h: h["layers"][3]["config"].update(units=6), "shape"),
    (lambda h: h.update(version=99), "version 99"),
    (lambda h: h.update(format="keras"), "fastcnn model"),
    (lambda h: h.pop("layers"), "layers"),
    (lambda h: h.pop("input_shape"), "input_shape"),
    (lambda h: h.update(input_shape=[2, 13, 11]), "shape"),
    (lambda h: h.update(input_shape=[0, 9, 11]), "input_shape"),
    (lambda h: h.update(dtype="float16"), "dtype"),
    (lambda h: h.update(dtype="int8x"), "dtype|int8x"),
    (lambda h: h.update(loss="hinge"), "hinge"),
    (lambda h: h["optimizer"].update(type="Lion"), "Lion"),
    (lambda h: h["optimizer"]["config"].update(lr=-1), "lr"),
    (lambda h: h["optimizer"].update(steps="many"), "steps|many"),
    (lambda h: h.update(sha256=None), "sha256"),
    (lambda h: h["sha256"].pop("param/0/w"), "do not match"),
])
def test_bad_header(saved, tmp_path, edit, phrase):
    header, arrays = _contents(saved)
    edit(header)
    message = _load_error(_write(tmp_path / "h.npz", header, arrays))
    assert re.search(phrase, message), message


def test_float64_file_on_the_native_backend(tmp_path):
    _trained(backend="reference", dtype="float64").save(tmp_path / "f64.npz")
    assert "float32" in _load_error(tmp_path / "f64.npz")
    assert fastcnn.load(tmp_path / "f64.npz", backend="reference").dtype == np.float64


@pytest.mark.parametrize("header, phrase", [
    (b"{not json", "JSON"),
    (b"\xff\xfe\x00", "JSON"),
    (b"[1, 2]", "fastcnn model"),
    (np.zeros(4, np.float32), "header"),
    (np.array(["text"]), "header"),
])
def test_header_not_json(saved, tmp_path, header, phrase):
    _, arrays = _contents(saved)
    assert phrase in _load_error(_write(tmp_path / "j.npz", header, arrays))


def test_plain_npz_and_npy_are_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", w=np.zeros((3, 3)), b=np.zeros(3))
    assert "header" in _load_error(tmp_path / "plain.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))
    os.rename(tmp_path / "array.npy", tmp_path / "array.npz")
    _load_error(tmp_path / "array.npz")
    (tmp_path / "text.npz").write_text("hello")
    _load_error(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError):
        fastcnn.load(tmp_path / "missing.npz")


UNPICKLED = []


def _record(what):
    UNPICKLED.append(what)


class _Trap:
    """Unpickling this calls _record: load must never get that far."""

    def __reduce__(self):
        return (_record, ("unpickled",))


def test_load_never_unpickles(saved, tmp_path):
    header, arrays = _contents(saved)
    arrays["param/0/w"] = np.array([_Trap()], dtype=object)
    _load_error(_write(tmp_path / "o.npz", header, arrays))
    obj_header = np.array([json.dumps(header)], dtype=object)
    np.savez(tmp_path / "oh.npz", header=obj_header, **_contents(saved)[1])
    _load_error(tmp_path / "oh.npz")
    import pickle
    (tmp_path / "p.npz").write_bytes(pickle.dumps(_Trap()))
    _load_error(tmp_path / "p.npz")
    assert UNPICKLED == []


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


# ---------------------------------------------------------------------------
# The header is covered too: an edit that leaves a loadable model is refused

@pytest.mark.parametrize("edit", [
    lambda h: h["layers"][3]["config"].update(activation="relu"),
    lambda h: h["layers"][4]["config"].update(use_bias=False),
    lambda h: h["layers"][2]["config"].update(rate=0.5),
    lambda h: h.update(input_shape=None),
    lambda h: h.update(optimizer=None),
    lambda h: h["optimizer"]["config"].update(lr=0.02),
    lambda h: h["optimizer"].update(steps=0),
    lambda h: h.update(loss="quadratic"),
    lambda h: h.update(seed=4),
])
def test_any_header_edit_is_refused(saved, tmp_path, edit):
    header, arrays = _contents(saved)
    edit(header)
    message = _load_error(_write(tmp_path / "e.npz", header, arrays, sign=saved))
    assert "header does not match its checksum" in message


def _as_version_1(header, arrays, path):
    """The file version 1 wrote: the same, without the digest member."""
    header = dict(header, version=1)
    return _write(path, header, arrays, sign=False)


def test_intact_version_1_file_loads_with_a_warning(saved, tmp_path):
    header, arrays = _contents(saved)
    old = _as_version_1(header, arrays, tmp_path / "v1.npz")
    with pytest.warns(UserWarning, match="version-1"):
        loaded = fastcnn.load(old)
    x = _data(5, seed=2)[0]
    assert np.array_equal(loaded.predict_proba(x), fastcnn.load(saved).predict_proba(x))
    # what version 1 can check is still checked: arrays, their list, their shapes
    header["layers"][4]["config"]["use_bias"] = False       # the bias array is left over
    assert "do not match" in _load_error(_as_version_1(header, arrays, tmp_path / "b.npz"))


def test_a_version_2_file_relabelled_version_1_is_refused(saved, tmp_path):
    header, arrays = _contents(saved)
    header["version"] = 1
    assert "header checksum" in _load_error(_write(tmp_path / "d.npz", header, arrays))


def test_refusals_are_one_exception_type(saved, tmp_path):
    assert issubclass(fastcnn.FileFormatError, ValueError)
    (tmp_path / "x.npz").write_bytes(saved.read_bytes()[:300])
    with pytest.raises(fastcnn.FileFormatError, match=re.escape(str(tmp_path / "x.npz"))):
        fastcnn.load(tmp_path / "x.npz")
