"""fastcnn.saving -- models to and from .npz files.

File layout (a plain numpy .npz, format version 2):
  header            uint8 bytes of a UTF-8 JSON object: format name and version,
                    fastcnn version, input_shape, dtype, seed, loss, the layers as
                    [{"type", "config"}], the optimizer as {"type", "config",
                    "steps"}, and the SHA-256 of every array below
  digest            uint8 bytes: the SHA-256 (64 hex digits) of the header's bytes,
                    so the header, and through its table every array, is covered
  param/<i>/<name>  parameter <name> of layer i
  opt/<j>/<name>    optimizer state <name> of parameter j (in model.parameters() order)

A training checkpoint (save_checkpoint / load_checkpoint: what `reproduce` writes
after every epoch to resume an interrupted run) is the same file with one more
header entry, "checkpoint": a JSON object of whatever the trainer needs to
continue (history, epochs done, Generator state...). load_model reads it as the
model it holds; load_checkpoint refuses a file without that entry.

Loading reads the archive itself (never np.load, never pickle), builds layers only
from fastcnn's own registry, and refuses any damaged, edited or foreign file with
one fastcnn.FileFormatError (a ValueError) naming the file; every size the file
declares is checked against the limits in fastcnn._files before anything is
allocated or decompressed (see _read for the order). Version-1 files (before the
header was covered) still load when intact, with a warning: their arrays are
checked, their header cannot be. Saving writes a temporary file
beside the target, flushes it to disk and renames it over the target, so a crash
never leaves a half-written model behind.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import warnings
import zipfile
import zlib

import numpy as np

from ._files import (MAX_HEADER_BYTES, MAX_MEMBERS, MAX_MODEL_BYTES, FileFormatError,
                     parse_json, read_bounded, refuse)
from ._validate import MAX_SIZE

FORMAT = "fastcnn-model"
VERSION = 2          # written
READS = (1, 2)       # read: version 1 has no header checksum


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def save_model(model, path, checkpoint=None) -> None:
    """Write model to path (.npz), atomically. checkpoint: a JSON-able dict stored
    in the header (see save_checkpoint)."""
    from . import __version__

    if model.input_shape is None:
        raise ValueError("the model is not built yet: give input_shape or call fit first")
    path = os.fspath(path)
    if not path.endswith(".npz"):
        raise ValueError(f"path must end in .npz, got {path!r}")
    arrays = {}
    for i, layer in enumerate(model.layers):
        for name, p in layer.params.items():
            arrays[f"param/{i}/{name}"] = p
    opt = model.optimizer
    if opt is not None:
        for j, state in enumerate(opt.state):
            for name, a in state.items():
                arrays[f"opt/{j}/{name}"] = a
    header = {
        "format": FORMAT, "version": VERSION, "fastcnn_version": __version__,
        "input_shape": list(model.input_shape), "dtype": model.dtype.name,
        "seed": model.seed if isinstance(model.seed, int) else None,
        "loss": model.loss.name,
        "layers": [{"type": type(layer).__name__, "config": layer.config()}
                   for layer in model.layers],
        "optimizer": None if opt is None else {
            "type": type(opt).__name__, "config": opt.config(), "steps": opt.steps},
        "sha256": {k: _digest(a) for k, a in arrays.items()},
    }
    if checkpoint is not None:
        if not isinstance(checkpoint, dict):
            raise TypeError(f"checkpoint must be a dict, got {type(checkpoint).__name__}")
        header["checkpoint"] = checkpoint
    text = json.dumps(header).encode("utf-8")
    if len(text) > MAX_HEADER_BYTES:
        raise ValueError(f"the model's header would be {len(text)} bytes; load accepts at "
                         f"most {MAX_HEADER_BYTES} (a checkpoint state too large?)")
    blob = np.frombuffer(text, dtype=np.uint8)
    digest = np.frombuffer(hashlib.sha256(text).hexdigest().encode("ascii"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, header=blob, digest=digest, **arrays))


def atomic_write(path, write) -> None:
    """Call write(binary file) on a temporary file beside `path`, flush it to disk
    and rename it over `path`: readers see the old file or the whole new one, never
    a half-written one. On any failure the temporary file is removed."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".fastcnn-{os.getpid()}-{secrets.token_hex(8)}.tmp")
    # created like any new file (mode 0o666 less the umask; mkstemp would make it 0o600),
    # O_EXCL: never an existing file
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
    except OSError as e:   # name the user's file, not the temporary one
        why = ("its directory does not exist" if isinstance(e, FileNotFoundError)
               else f"cannot create a file in {directory!r}: {e.strerror}")
        raise type(e)(e.errno, f"cannot write {os.fspath(path)!r}: {why}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_directory(directory)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _fsync_directory(directory) -> None:
    """Flush the directory entry of a rename to disk, so that after a power loss the
    new file, not the old one, is there (POSIX; skipped where directories cannot be
    opened, e.g. on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(model, path, state) -> None:
    """The model (parameters, optimizer state) and `state`, a JSON-able dict of
    whatever else a trainer needs to continue, in one .npz, written atomically."""
    save_model(model, path, checkpoint=state)


def load_checkpoint(path, backend="native"):
    """(model, state) from a file save_checkpoint wrote; a ValueError naming the
    file for a damaged file or one that is not a checkpoint."""
    path = os.fspath(path)
    model, header = _load(path, backend)
    state = header.get("checkpoint")
    if not isinstance(state, dict):
        raise refuse(path, "it is a saved model, not a training checkpoint")
    return model, state


def load_model(path, backend="native"):
    """A Sequential model from a file written by Sequential.save."""
    return _load(path, backend)[0]


def _load(path, backend):
    """(model, header) from a checked file."""
    from .network import BACKENDS

    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'native' or 'reference', got {backend!r}")
    path = os.fspath(path)
    with open(path, "rb") as f:   # a missing file: FileNotFoundError, as for any open
        try:
            return _read(f, path, backend)
        except FileFormatError:
            raise
        except Exception as e:   # whatever else a damaged or hostile file provokes
            raise refuse(path, f"its contents are malformed ({type(e).__name__}: {e})") from None


def _read(f, path, backend):
    """The checks, in the order that keeps every step bounded: the zip directory,
    the header (bounded, its checksum, then parsed with limits), the model the
    header describes planned without allocating, every member's declared size
    and dtype against that plan, then the arrays read (each stopping at its
    planned size) and checked against their SHA-256, and only then the model built."""
    _check_directory_size(f, path)
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        raise refuse(path, f"not a readable .npz (zip) archive (truncated or damaged?): {e}") \
            from None
    with zf:
        members = _members(zf, path)
        if "header" not in members:
            raise refuse(path, "it has no fastcnn header; it was not written by fastcnn's save")
        text = _read_npy(zf, members.pop("header"), path, "header", np.uint8, None,
                         MAX_HEADER_BYTES).tobytes()
        digest = members.pop("digest", None)
        if digest is not None:
            want = _read_npy(zf, digest, path, "digest", np.uint8, (64,), 64).tobytes()
            if hashlib.sha256(text).hexdigest().encode("ascii") != want:
                raise refuse(path, "its header does not match its checksum (the file was "
                                   "modified or damaged)")
        header = parse_json(text, path)
        _check_header(header, path, has_digest=digest is not None)
        if header["version"] == 1:
            warnings.warn(f"{path}: a version-1 model file; its arrays are checked, but an edit "
                          "of its header (layers, optimizer) cannot be detected. Save it again "
                          "to write version 2, which covers both.", UserWarning, stacklevel=4)
        plan = _plan(header, path)
        _match_members(members, plan, header["sha256"], path)
        arrays = {}
        for name, (shape, dtype) in plan.arrays.items():
            a = _read_npy(zf, members[name], path, name, dtype, shape, None)
            if _digest(a) != header["sha256"][name]:
                raise refuse(path, f"array {name!r} does not match its checksum (the file was "
                                   "modified or damaged)")
            arrays[name] = a
    return _rebuild(path, header, plan, arrays, backend), header


# End of central directory record: signature, then at offset 10 the number of
# entries (2 bytes) and at 12 the directory's size (4 bytes), little-endian; it
# sits in the last 22 + 65535 (the longest comment) bytes of the file.
_EOCD, _EOCD_SEARCH = b"PK\x05\x06", 22 + 0xFFFF
_DIRECTORY_ENTRY_MAX = 1024   # a fixed 46 bytes plus a short member name


def _check_directory_size(f, path):
    """Refuse an archive whose central directory is too large before zipfile
    reads it (it would build an object per entry): at most MAX_MEMBERS entries
    and MAX_MEMBERS * _DIRECTORY_ENTRY_MAX bytes. A zip64 directory (for
    archives over 2 GiB or 65535 members, beyond the limits) is refused too."""
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - _EOCD_SEARCH))
    tail = f.read()
    at = tail.rfind(_EOCD)
    f.seek(0)
    if at < 0 or len(tail) - at < 22:
        raise refuse(path, "not a readable .npz (zip) archive (truncated or damaged?): "
                           "no end-of-directory record")
    entries = int.from_bytes(tail[at + 10:at + 12], "little")
    dir_size = int.from_bytes(tail[at + 12:at + 16], "little")
    if entries > MAX_MEMBERS or dir_size > MAX_MEMBERS * _DIRECTORY_ENTRY_MAX:
        raise refuse(path, f"its archive directory declares {entries} members in {dir_size} "
                           f"bytes (at most {MAX_MEMBERS} members)")


def _members(zf, path):
    """{name without .npy: ZipInfo}, after checking the directory: a bounded
    number of members, each stored or deflated (as numpy writes them), none
    encrypted, none twice."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise refuse(path, f"its archive has {len(infos)} members (at most {MAX_MEMBERS})")
    members = {}
    for info in infos:
        name = info.filename
        if info.flag_bits & 0x1:
            raise refuse(path, f"member {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise refuse(path, f"member {name!r} uses compression method {info.compress_type} "
                               "(numpy writes only stored or deflated members)")
        if not name.endswith(".npy") or name[:-4] in members:
            raise refuse(path, f"member {name!r} is not one array of a fastcnn model")
        members[name[:-4]] = info
    return members


def _read_npy(zf, info, path, name, dtype, shape, max_bytes):
    """One .npy member as an array, reading no more than its planned size: its
    npy header must declare exactly `dtype` and `shape` (or, with shape None, a
    1-D array of at most max_bytes) before any data is read."""
    try:
        return _read_npy_stream(zf, info, path, name, dtype, shape, max_bytes)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:   # CRC, inflate or local header
        raise refuse(path, f"array {name!r} is damaged ({e})") from None


def _read_npy_stream(zf, info, path, name, dtype, shape, max_bytes):
    with zf.open(info) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                got, fortran, dt = np.lib.format.read_array_header_1_0(stream)
            elif version in ((2, 0), (3, 0)):
                got, fortran, dt = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"npy format version {version}")
        except ValueError as e:
            raise refuse(path, f"array {name!r} is not a readable .npy array ({e})") from None
        if dt != np.dtype(dtype) or dt.hasobject:
            raise refuse(path, f"array {name!r} has dtype {dt}, expected {np.dtype(dtype)}")
        if shape is None:
            if len(got) != 1 or got[0] > max_bytes:
                raise refuse(path, f"array {name!r} has shape {got}; expected at most "
                                   f"{max_bytes} bytes in one dimension")
            shape = got
        elif tuple(got) != tuple(shape):
            raise refuse(path, f"array {name!r} has shape {tuple(got)}, the model its header "
                               f"describes needs {tuple(shape)}")
        count = math.prod(shape)
        data = read_bounded(stream, count * dt.itemsize, path, f"array {name!r}")
    return np.frombuffer(data, dtype=dt).reshape(shape, order="F" if fortran else "C")


_KEYS = {"format", "version", "fastcnn_version", "input_shape", "dtype", "seed", "loss",
         "layers", "optimizer", "sha256"}


def _check_header(header, path, has_digest):
    """The header's structure: known keys of the expected JSON types (values are
    checked by the layers, optimizer and loss that take them)."""
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise refuse(path, "its header does not describe a fastcnn model")
    version = header.get("version")
    if version not in READS:
        raise refuse(path, f"format version {version!r} is not supported (this fastcnn reads "
                           f"versions {', '.join(map(str, READS))})")
    if has_digest != (version >= 2):
        raise refuse(path, f"a version-{version} file "
                           f"{'has no' if version < 2 else 'must have a'} header checksum; "
                           "this one was modified")
    missing = _KEYS - set(header)
    extra = set(header) - _KEYS - {"checkpoint"}
    if missing or extra:
        raise refuse(path, f"its header is malformed (missing {sorted(missing)}, "
                           f"unknown {sorted(extra)})")
    kinds = {"input_shape": list, "dtype": str, "loss": str, "layers": list,
             "sha256": dict, "fastcnn_version": str}
    for key, kind in kinds.items():
        if not isinstance(header[key], kind):
            raise refuse(path, f"its header's {key!r} must be a JSON {kind.__name__}, "
                               f"got {header[key]!r:.80}")
    if header["dtype"] not in ("float32", "float64"):
        raise refuse(path, f"dtype must be 'float32' or 'float64', got {header['dtype']!r:.80}")
    if "checkpoint" in header and not isinstance(header["checkpoint"], dict):
        raise refuse(path, "its checkpoint state must be a JSON object")
    seed = header["seed"]
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise refuse(path, f"seed must be a non-negative integer or null, got {seed!r}")
    if not header["layers"] or not all(
            isinstance(d, dict) and set(d) == {"type", "config"} and isinstance(d["type"], str)
            and isinstance(d["config"], dict) for d in header["layers"]):
        raise refuse(path, "its header's layers must be a non-empty list of "
                           "{\"type\": name, \"config\": {...}}")
    opt = header["optimizer"]
    if opt is not None and not (
            isinstance(opt, dict) and set(opt) == {"type", "config", "steps"}
            and isinstance(opt["type"], str) and isinstance(opt["config"], dict)):
        raise refuse(path, "its header's optimizer must be null or "
                           "{\"type\", \"config\", \"steps\"}")
    if opt is not None:
        steps = opt["steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_SIZE:
            raise refuse(path, f"optimizer steps must be an integer in [0, 2**40], "
                               f"got {steps!r:.80}")


class _Plan:
    """What the header describes, before anything is allocated: the layers and
    optimizer (constructed, hence range-checked), the input shape, and
    arrays = {member name: (shape, dtype)} the file must hold."""

    def __init__(self, layer_list, input_shape, opt, arrays):
        self.layers, self.input_shape, self.optimizer, self.arrays = \
            layer_list, input_shape, opt, arrays


def _plan(header, path):
    from . import layers as L
    from . import losses, optim

    try:
        layer_list = [L.from_config(d["type"], d["config"]) for d in header["layers"]]
        shape = header["input_shape"]
        if len(shape) not in (1, 3):
            raise ValueError(f"input_shape must be (C, H, W) or (features,), got {shape!r}")
        s = tuple(L.positive_int(v, "input_shape") for v in shape)
        input_shape = s
        dtype = np.dtype(header["dtype"])
        arrays, params = {}, []
        for i, layer in enumerate(layer_list):
            s, shapes = layer.plan(s)
            for name, p_shape in shapes.items():
                arrays[f"param/{i}/{name}"] = (p_shape, dtype)
                params.append(p_shape)
        losses.get(header["loss"])
        opt = None
        spec = header["optimizer"]
        if spec is not None:
            opt = optim.from_config(spec["type"], spec["config"])
            opt.steps = spec["steps"]
            # the state arrays are there for every parameter or (never stepped) for none
            if any(k.startswith("opt/") for k in header["sha256"]):
                for j, p_shape in enumerate(params):
                    for n in opt.state_names:
                        arrays[f"opt/{j}/{n}"] = (p_shape, dtype)
    except ValueError as e:   # a value the layers, the optimizer or the loss refuse
        raise refuse(path, str(e)) from None
    total = sum(math.prod(shape) * dt.itemsize for shape, dt in arrays.values())
    if total > MAX_MODEL_BYTES:
        raise refuse(path, f"its header describes {total} bytes of arrays (at most "
                           f"{MAX_MODEL_BYTES})")
    return _Plan(layer_list, input_shape, opt, arrays)


def _match_members(members, plan, sums, path):
    """The file holds exactly the planned arrays, each listed in the checksum
    table and declaring (in the zip directory) no more than its planned size."""
    want, have = set(plan.arrays), set(members)
    if want != have or set(sums) != have:
        missing = sorted(want - have)[:4]
        extra = sorted((have - want) | (set(sums) ^ have))[:4]
        raise refuse(path, f"the arrays in the file do not match its header (missing "
                           f"{missing}, unexpected or unlisted {extra})")
    for name, (shape, dtype) in plan.arrays.items():
        limit = math.prod(shape) * dtype.itemsize + _NPY_HEADER_MAX
        if members[name].file_size > limit:
            raise refuse(path, f"array {name!r} declares {members[name].file_size} bytes; its "
                               f"shape {shape} needs at most {limit}")
        if not isinstance(sums[name], str) or len(sums[name]) != 64:
            raise refuse(path, f"the checksum of array {name!r} is malformed")


# An npy header (magic, version, length, the dict padded to 64 bytes) is far
# shorter than this for any array of at most 4 dimensions.
_NPY_HEADER_MAX = 4096


def _rebuild(path, header, plan, arrays, backend):
    """The model the (checked) header and arrays describe."""
    from . import losses
    from .network import Sequential

    try:
        model = Sequential(plan.layers, input_shape=plan.input_shape, backend="reference",
                           dtype=header["dtype"], seed=header["seed"] or 0)
        model.backend = backend
    except ValueError as e:   # the native backend and a float64 model
        raise refuse(path, str(e)) from None
    model.loss = losses.get(header["loss"])
    for i, layer in enumerate(model.layers):
        for name, p in layer.params.items():
            p[...] = arrays[f"param/{i}/{name}"]
    opt = plan.optimizer
    if opt is not None:
        # one (possibly empty) dict per parameter, unless a stateful optimizer never stepped
        if not opt.state_names or any(k.startswith("opt/") for k in arrays):
            opt.state = [{n: arrays[f"opt/{j}/{n}"].copy() for n in opt.state_names}
                         for j in range(len(model.parameters()))]
        model.optimizer = opt
    return model

__all__ = ["save_model", "load_model", "save_checkpoint", "load_checkpoint", "atomic_write"]
