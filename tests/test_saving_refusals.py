"""fastcnn.load refuses every kind of damaged, tampered or foreign file with a
ValueError (FileFormatError) naming the file: truncated, arrays or header edited
(even edits that would load), arrays missing or extra, a float64 file on the
native backend, plain npz/npy, pickles (never unpickled); an intact version-1
file still loads, with a warning."""
from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import warnings

import numpy as np
import pytest
from saving_cases import _data, _trained

import fastcnn

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


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
