"""The damaged files of the file-loader fuzz (test_fuzz_files.py): model files and
IDX data directories, damaged by category, and the sizes they are built with
(larger under FASTCNN_FUZZ_LONG=1)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

import fastcnn
from fastcnn import optim
from fastcnn import layers as L

LONG = os.environ.get("FASTCNN_FUZZ_LONG") == "1"
BOMB = (1 << 30) if LONG else (16 << 20)          # bytes a zip bomb inflates to
GZIP_BOMB = (8 << 30) if LONG else (16 << 20)     # bytes a gzip bomb inflates to
SPARSE = (2 << 40) if LONG else (1 << 20)         # size of a sparse IDX file
FLIPS = 400 if LONG else 40
CUTS = 200 if LONG else 20
MANY_MEMBERS = 65535 if LONG else 5000


# ------------------------------------------------------------------ models --

def _model():
    model = fastcnn.Sequential(
        [L.Conv2D(3, 3, stride=2, padding=1, activation="relu"), L.MaxPool2D(2),
         L.Dropout(0.3), L.Dense(5, activation="tanh"), L.Dense(4, activation="softmax")],
        input_shape=(2, 9, 11), seed=3)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 2, 9, 11)).astype(np.float32), rng.integers(0, 4, 12)
    model.fit(x, y, epochs=1, batch_size=6, optimizer=optim.Adam(0.01), seed=1, verbose=0)
    return model


def _fingerprint(model) -> str:
    """Everything a loaded model is: architecture, optimizer, every array, and
    what it predicts."""
    h = hashlib.sha256(repr((model.input_shape, model.dtype.name, model.loss.name,
                             [(type(la).__name__, la.config()) for la in model.layers],
                             model.optimizer and (type(model.optimizer).__name__,
                                                  model.optimizer.config(),
                                                  model.optimizer.steps))).encode())
    for p, _ in model.parameters():
        h.update(p.tobytes())
    for st in (model.optimizer.state if model.optimizer else []):
        for k in sorted(st):
            h.update(st[k].tobytes())
    x = np.random.default_rng(9).standard_normal((3,) + model.input_shape).astype(np.float32)
    h.update(model.predict_proba(x).tobytes())
    return h.hexdigest()


def _npy(a: np.ndarray, shape=None) -> bytes:
    """The .npy bytes of a, its header optionally declaring another shape."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
    data = buf.getvalue()
    if shape is not None:
        data = data.replace(repr(a.shape).encode(), repr(tuple(shape)).encode(), 1)
    return data


def _members(path) -> tuple[dict, dict]:
    """(header dict, {name: array}) of a model file, read with numpy."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.pop("digest")
    return json.loads(arrays.pop("header").tobytes()), arrays


class Zeros:
    """A member's content: `head` then `n` zero bytes, written in chunks (a bomb
    is never held in memory while it is built)."""

    def __init__(self, head: bytes, n: int):
        self.head, self.n = head, n


def _zip(path, members: dict, methods: dict | None = None):
    """A zip of {name: bytes or Zeros} (".npy" appended), stored or as in methods."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = (methods or {}).get(name, zipfile.ZIP_STORED)
            if isinstance(data, Zeros):
                with zf.open(info, "w", force_zip64=data.n > 2 ** 31 - 2 ** 20) as f:
                    f.write(data.head)
                    left, block = data.n, bytes(16 << 20)
                    while left:
                        f.write(block[:min(left, len(block))])
                        left -= min(left, len(block))
            else:
                zf.writestr(info, data)
    return path


def _signed(path, header, arrays, methods=None, raw_header=None, npy=None):
    """A model file with header (dict, or raw_header bytes) and its correct digest:
    the edits it carries get past the digest to the checks behind it."""
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    members = {"header": _npy(np.frombuffer(text, np.uint8)),
               "digest": _npy(np.frombuffer(hashlib.sha256(text).hexdigest().encode(),
                                            np.uint8))}
    members.update({k: _npy(a) for k, a in arrays.items()})
    members.update(npy or {})
    return _zip(path, members, methods)


def _patch_zip(data: bytes, name: str, offset_local: int, offset_central: int,
               value: bytes) -> bytes:
    """data with `value` written at the given offsets of member name's local and
    central-directory headers (the zip layout's fixed fields)."""
    data = bytearray(data)
    key = (name + ".npy").encode()
    local = data.find(b"PK\x03\x04" + b"")
    while local >= 0 and data[local + 30:local + 30 + len(key)] != key:
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central >= 0 and data[central + 46:central + 46 + len(key)] != key:
        central = data.find(b"PK\x01\x02", central + 4)
    data[local + offset_local:local + offset_local + len(value)] = value
    data[central + offset_central:central + offset_central + len(value)] = value
    return bytes(data)


def model_cases(d: Path, good: Path):
    """{category: [(file, 'model')]} of damaged model files written into d."""
    data = good.read_bytes()
    header, arrays = _members(good)
    rng = np.random.default_rng(1)
    cases = {k: [] for k in ("model truncation", "model byte flips", "model header edits",
                             "model nesting", "model compression", "model bombs",
                             "model sizes")}

    def add(category, name, content):
        p = d / f"{name}.npz"
        if isinstance(content, bytes):
            p.write_bytes(content)
        cases[category].append(p)

    for i, n in enumerate(sorted(set(rng.integers(0, len(data), CUTS)) | {0, 1, 21, 22})):
        add("model truncation", f"cut{i}", data[:n])
    for i in range(FLIPS):
        flipped = bytearray(data)
        for at in rng.integers(0, len(data), rng.integers(1, 4)):
            flipped[at] ^= 1 << int(rng.integers(0, 8))
        add("model byte flips", f"flip{i}", bytes(flipped))

    # Unsigned edits (the digest of the intact header kept): refused by the digest.
    unsigned = [
        lambda h: h["layers"][3]["config"].update(activation="relu"),
        lambda h: h["layers"][4]["config"].update(use_bias=False),
        lambda h: h.update(input_shape=None),
        lambda h: h.update(optimizer=None),
        lambda h: h["optimizer"]["config"].update(lr=0.5),
        lambda h: h.update(version=1),
    ]
    with np.load(good, allow_pickle=False) as npz:
        digest = npz["digest"]
    for i, edit in enumerate(unsigned):
        h = json.loads(json.dumps(header))
        edit(h)
        text = json.dumps(h).encode()
        members = {"header": _npy(np.frombuffer(text, np.uint8)), "digest": _npy(digest)}
        members.update({k: _npy(a) for k, a in arrays.items()})
        _zip(d / f"unsigned{i}.npz", members)
        cases["model header edits"].append(d / f"unsigned{i}.npz")
    # Signed edits: the digest matches, the values behind it must be refused.
    signed = [
        lambda h: h["layers"][3]["config"].update(units=2 ** 40),
        lambda h: h["layers"][3]["config"].update(units=2 ** 62),
        lambda h: h["layers"][0]["config"].update(padding=[2 ** 31, 2 ** 31]),
        lambda h: h["layers"][0]["config"].update(padding=[2 ** 62, 2 ** 62]),
        lambda h: h["layers"][0]["config"].update(kernel_size=[2 ** 40, 1]),
        lambda h: h.update(input_shape=[2, 2 ** 31, 2 ** 31]),
        lambda h: h.update(input_shape=None),
        lambda h: h.update(input_shape=[2, 9]),
        lambda h: h["layers"][4]["config"].update(use_bias=False),
        lambda h: h.update(optimizer=None),
        lambda h: h["optimizer"].update(steps=float("inf")),
        lambda h: h["optimizer"].update(steps=-1),
        lambda h: h["optimizer"]["config"].update(lr=2 ** 2000),
        lambda h: h["optimizer"]["config"].update(lr=float("nan")),
        lambda h: h["optimizer"]["config"].update(lr=1e300),
        lambda h: h.update(seed=10 ** 5000 - 1),
        lambda h: h.update(dtype="float16"),
        lambda h: h.update(layers=[]),
        lambda h: h["layers"][1].update(type="Lambda"),
        lambda h: h["layers"][2]["config"].update(rate=2.0),
        lambda h: h.update(sha256={}),
        lambda h: h.update(extra=1),
    ]
    for i, edit in enumerate(signed):
        h = json.loads(json.dumps(header))
        edit(h)
        # json.dumps of a 5000-digit int needs the str-digits limit lifted here only
        text = _dumps(h)
        _signed(d / f"signed{i}.npz", None, arrays, raw_header=text)
        cases["model header edits"].append(d / f"signed{i}.npz")

    deep = 100_000 if LONG else 20_000
    for i, text in enumerate([b"[" * deep + b"]" * deep,
                              _dumps(dict(header, checkpoint={"a": _nest(200)})),
                              b'{"format": ' + b"1" * 5000 + b"}",
                              b"\xff\xfe" + b"{" * 1000]):
        _signed(d / f"nest{i}.npz", None, arrays, raw_header=text)
        cases["model nesting"].append(d / f"nest{i}.npz")

    for i, method in enumerate([zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]):
        _signed(d / f"method{i}.npz", header, arrays, methods={"param/0/w": method})
        cases["model compression"].append(d / f"method{i}.npz")
    for i, (lo, ce, value) in enumerate([(8, 10, (99).to_bytes(2, "little")),      # unknown
                                         (8, 10, (12).to_bytes(2, "little")),      # bzip2
                                         (6, 8, (1).to_bytes(2, "little"))]):      # encrypted
        add("model compression", f"patched{i}", _patch_zip(data, "param/3/w", lo, ce, value))

    # Zip bombs: a member inflating to BOMB bytes, declared as such; the same with
    # its declared size patched down to the planned one; a header member of BOMB bytes.
    w = arrays["param/3/w"]
    big = Zeros(_npy(w), BOMB)
    _signed(d / "bomb0.npz", header, arrays, methods={"param/3/w": zipfile.ZIP_DEFLATED},
            npy={"param/3/w": big})
    cases["model bombs"].append(d / "bomb0.npz")
    planned = len(_npy(w)).to_bytes(4, "little")
    add("model bombs", "bomb1", _patch_zip((d / "bomb0.npz").read_bytes(), "param/3/w",
                                           22, 24, planned))
    header_bomb = Zeros(_npy(np.zeros(1, np.uint8), (BOMB,)), BOMB)
    _zip(d / "bomb2.npz", {"header": header_bomb}, {"header": zipfile.ZIP_DEFLATED})
    cases["model bombs"].append(d / "bomb2.npz")

    _signed(d / "size0.npz", header, arrays, npy={"param/3/w": _npy(w, (2 ** 40,))})
    _signed(d / "size1.npz", header, arrays, npy={"param/3/w": _npy(w, (2 ** 20, 2 ** 20))})
    _signed(d / "size2.npz", header, arrays, npy={"param/3/b": _npy(w)})
    _zip(d / "size3.npz", {f"m{i}": b"" for i in range(MANY_MEMBERS)})
    cases["model sizes"] += [d / f"size{i}.npz" for i in range(4)]
    return cases


def _dumps(h) -> bytes:
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return json.dumps(h).encode()
    finally:
        sys.set_int_max_str_digits(limit)


def _nest(n):
    v = 0
    for _ in range(n):
        v = [v]
    return v


# -------------------------------------------------------------------- data --

NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"]


def _idx(a: np.ndarray) -> bytes:
    return bytes([0, 0, 8, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape) \
        + a.astype(np.uint8).tobytes()


def _data_set(d: Path, packed=True, sums=True, replace=None):
    """A small IDX data set in d; replace = {name: bytes as written on disk}."""
    d.mkdir()
    rng = np.random.default_rng(2)
    raw = {NAMES[0]: _idx(rng.integers(0, 256, (30, 6, 5))),
           NAMES[1]: _idx(rng.integers(0, 4, 30)),
           NAMES[2]: _idx(rng.integers(0, 256, (8, 6, 5))),
           NAMES[3]: _idx(rng.integers(0, 4, 8))}
    if sums:
        (d / "SHA256SUMS.raw").write_text("".join(f"{hashlib.sha256(v).hexdigest()}  {k}\n"
                                                  for k, v in raw.items()))
    for name, content in raw.items():
        suffix = ".gz" if packed else ""
        disk = gzip.compress(content, mtime=0) if packed else content
        if replace and name in replace:
            disk = replace[name]
        (d / (name + suffix)).write_bytes(disk)
    return d, raw


def data_cases(d: Path):
    """{category: [(directory, damaged file)]}."""
    rng = np.random.default_rng(3)
    _, raw = _data_set(d / "intact")
    cases = {k: [] for k in ("data truncation", "data byte flips", "data header edits",
                             "data bombs", "data sizes")}
    n = 0

    def add(category, name, content, packed=True, sums=True):
        nonlocal n
        n += 1
        directory, _ = _data_set(d / f"set{n}", packed, sums, {name: content})
        cases[category].append((directory, directory / (name + (".gz" if packed else ""))))

    for i in range(CUTS):
        name = NAMES[i % 4]
        packed = bool(i % 2)
        content = gzip.compress(raw[name], mtime=0) if packed else raw[name]
        add("data truncation", name, content[:int(rng.integers(0, len(content)))], packed,
            sums=False)
    for i in range(FLIPS):
        name = NAMES[i % 4]
        packed = bool(i % 2)
        content = bytearray(gzip.compress(raw[name], mtime=0) if packed else raw[name])
        at = int(rng.integers(0, len(content)))
        content[at] ^= 1 << int(rng.integers(0, 8))
        add("data byte flips", name, bytes(content), packed)

    image = raw[NAMES[0]]
    for i, head in enumerate([b"\0\0\x0d\x03", b"\0\0\x08\x02", b"\0\0\x08\x05", b"\x01\0\x08\x03",
                              b"\0\0\x08\x03" + (0).to_bytes(4, "big"),
                              b"\0\0\x08\x03" + (31).to_bytes(4, "big"),
                              b"\0\0\x08\x03" + (2 ** 32 - 1).to_bytes(4, "big")]):
        content = head + image[len(head):]
        add("data header edits", NAMES[0], content, packed=bool(i % 2), sums=False)
    add("data header edits", NAMES[1], b"\0\0\x08\x01" + (29).to_bytes(4, "big")
        + raw[NAMES[1]][8:37], sums=False)    # 29 labels for 30 images

    # A gzip bomb: the intact file followed by gzip members of zeros (a valid
    # gzip stream of GZIP_BOMB bytes), and one whose header declares the bomb's size.
    chunk = gzip.compress(bytes(min(GZIP_BOMB, 64 << 20)), compresslevel=9)
    bomb = gzip.compress(image, mtime=0) + chunk * max(1, GZIP_BOMB // (64 << 20))
    add("data bombs", NAMES[0], bomb)
    add("data bombs", NAMES[0], bomb, sums=False)
    if LONG:   # the bundled MNIST training images followed by the bomb: 47 MB is read
        n += 1
        directory = d / f"set{n}"
        directory.mkdir()
        bundled = Path(fastcnn.__file__).parent / "data" / "mnist"
        for name in NAMES[1:]:
            (directory / (name + ".gz")).symlink_to(bundled / (name + ".gz"))
        target = directory / (NAMES[0] + ".gz")
        target.write_bytes((bundled / (NAMES[0] + ".gz")).read_bytes()
                           + chunk * (GZIP_BOMB // (64 << 20)))
        cases["data bombs"].append((directory, target))
    add("data bombs", NAMES[0], b"\0\0\x08\x03" + b"".join(
        v.to_bytes(4, "big") for v in (2 ** 20, 64, 64)) + b"\0" * 100, packed=False,
        sums=False)

    # Declared sizes beyond the limit: a sparse file that really is that long.
    n += 1
    directory, _ = _data_set(d / f"set{n}", packed=False, sums=False)
    sparse = directory / NAMES[0]
    with open(sparse, "wb") as f:
        side = int(round((SPARSE / 2 ** 16) ** 0.5))
        f.write(b"\0\0\x08\x03" + b"".join(v.to_bytes(4, "big") for v in (2 ** 16, side, side)))
        f.truncate(16 + 2 ** 16 * side * side)
    cases["data sizes"].append((directory, sparse))
    add("data sizes", NAMES[0], b"\x1f\x8b" + bytes(50))              # not gzip
    add("data sizes", NAMES[0], b"\0\0\x08\x03" + (2 ** 31).to_bytes(4, "big") * 3,
        packed=False, sums=False)
    return cases
