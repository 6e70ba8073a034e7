"""fastcnn.saving -- models to and from .npz files.

File layout (a plain numpy .npz; read with allow_pickle=False):
  header            uint8 bytes of a UTF-8 JSON object: format name and version,
                    fastcnn version, input_shape, dtype, loss, the layers as
                    [{"type", "config"}], the optimizer as {"type", "config",
                    "steps"}, and the SHA-256 of every array below
  param/<i>/<name>  parameter <name> of layer i
  opt/<j>/<name>    optimizer state <name> of parameter j (in model.parameters() order)

A training checkpoint (save_checkpoint / load_checkpoint: what `reproduce` writes
after every epoch to resume an interrupted run) is the same file with one more
header entry, "checkpoint": a JSON object of whatever the trainer needs to
continue (history, epochs done, Generator state...). load_model reads it as the
model it holds; load_checkpoint refuses a file without that entry.

Loading builds layers only from fastcnn's own registry, checks every array's shape
against the rebuilt model and its checksum against the header, and refuses
anything else with a ValueError naming the file. Saving writes a temporary file
beside the target, flushes it to disk and renames it over the target, so a crash
never leaves a half-written model behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import zipfile

import numpy as np

FORMAT = "fastcnn-model"
VERSION = 1


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
    blob = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, header=blob, **arrays))


def atomic_write(path, write) -> None:
    """Call write(binary file) on a temporary file beside `path`, flush it to disk
    and rename it over `path`: readers see the old file or the whole new one, never
    a half-written one. On any failure the temporary file is removed."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".fastcnn-{os.getpid()}-{secrets.token_hex(8)}.tmp")
    # created like any new file (mode 0o666 less the umask; mkstemp would make it 0o600),
    # O_EXCL: never an existing file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class _Refused(ValueError):
    """A file load_model will not read (already names the file)."""


def _refuse(path, why):
    return _Refused(f"cannot load {path!r}: {why}")


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
        raise _refuse(path, "it is a saved model, not a training checkpoint")
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
    try:
        # our own handle: np.load would leave its own open when the zip is damaged
        with open(path, "rb") as f:
            npz = np.load(f, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):   # a bare .npy array
                arrays = None
            else:
                with npz:
                    arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise _refuse(path, f"not a readable .npz file (truncated or damaged?): {e}") from None
    if arrays is None:
        raise _refuse(path, "it holds a single .npy array, not a .npz archive of a model")
    if "header" not in arrays or arrays["header"].dtype != np.uint8:
        raise _refuse(path, "it has no fastcnn header; it was not written by fastcnn's save")
    try:
        header = json.loads(arrays.pop("header").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _refuse(path, f"its header is not valid JSON: {e}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _refuse(path, "its header does not describe a fastcnn model")
    if header.get("version") != VERSION:
        raise _refuse(path, f"format version {header.get('version')!r} is not supported "
                            f"(this fastcnn reads version {VERSION})")
    sums = header.get("sha256")
    if not isinstance(sums, dict) or set(sums) != set(arrays):
        raise _refuse(path, "the arrays in the file do not match the list in its header")
    for k, a in arrays.items():
        if _digest(a) != sums[k]:
            raise _refuse(path, f"array {k!r} does not match its checksum (the file was "
                                "modified or damaged)")
    try:
        return _rebuild(path, header, arrays, backend), header
    except _Refused:
        raise
    except ValueError as e:   # a value in the header that a layer, optimizer... refuses
        raise _refuse(path, str(e)) from None
    except (KeyError, TypeError) as e:
        raise _refuse(path, f"its header is incomplete or malformed ({e!r})") from None


def _rebuild(path, header, arrays, backend):
    """The model the (checked) header and arrays describe."""
    from . import layers as L
    from . import losses, optim
    from .network import Sequential

    layer_list = [L.from_config(d["type"], d["config"]) for d in header["layers"]]
    model = Sequential(layer_list, input_shape=header["input_shape"], backend="reference",
                       dtype=header["dtype"], seed=header.get("seed") or 0)
    model.backend = backend
    model.loss = losses.get(header["loss"])
    for i, layer in enumerate(model.layers):
        for name, p in layer.params.items():
            a = arrays.get(f"param/{i}/{name}")
            if a is None or a.shape != p.shape:
                got = None if a is None else a.shape
                raise _refuse(path, f"parameter {name!r} of layer {i} ({layer!r}) should "
                                    f"have shape {p.shape}, the file holds {got}")
            p[...] = a
    spec = header.get("optimizer")
    if spec is not None:
        opt = optim.from_config(spec["type"], spec["config"])
        opt.steps = int(spec["steps"])
        params = model.parameters()
        states = []
        for j, (p, _) in enumerate(params):
            st = {n: arrays.get(f"opt/{j}/{n}") for n in opt.state_names}
            if any(a is None for a in st.values()):
                states = []
                break
            for n, a in st.items():
                if a.shape != p.shape:
                    raise _refuse(path, f"optimizer state {n!r} of parameter {j} should "
                                        f"have shape {p.shape}, the file holds {a.shape}")
                st[n] = a.astype(p.dtype)
            states.append(st)
        opt.state = states
        model.optimizer = opt
    return model


__all__ = ["save_model", "load_model", "save_checkpoint", "load_checkpoint", "atomic_write"]
