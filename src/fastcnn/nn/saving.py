"""Models to and from .npz files (the archive itself: fastcnn.io.archive).

The header (format version 2) is a JSON object: format name and version, the
fastcnn version, input_shape, dtype, seed, loss, the layers as [{"type",
"config"}], the optimizer as {"type", "config", "steps"}, and the SHA-256 of
every array. The arrays:
  param/<i>/<name>  parameter <name> of layer i
  opt/<j>/<name>    optimizer state <name> of parameter j (in model.parameters() order)

A training checkpoint (save_checkpoint / load_checkpoint: what `reproduce` writes
after every epoch to resume an interrupted run) is the same file with one more
header entry, "checkpoint": a JSON object of whatever the trainer needs to
continue (history, epochs done, Generator state...). load_model reads it as the
model it holds; load_checkpoint refuses a file without that entry.

Loading builds layers only from fastcnn's own registry: the header is checked
(keys and JSON types here, values by the layers, optimizer and loss that take
them) and the model it describes planned without allocating before any array
is read. Version-1 files (before the header was covered) still load when intact,
with a warning: their arrays are checked, their header cannot be. The model is
then built by nn.model.load_model from what read() returns.
"""
from __future__ import annotations

import math
import os
import warnings

import numpy as np

from ..common.checks import count
from ..common.limits import MAX_SIZE
from ..common.version import VERSION as FASTCNN_VERSION
from ..io import archive
from ..io.files import MAX_MODEL_BYTES, refuse
from . import layers as L
from . import losses, optim

FORMAT = "fastcnn-model"
VERSION = 2          # written
READS = (1, 2)       # read: version 1 has no header checksum


def save_model(model, path, checkpoint=None) -> None:
    """Write model to path (.npz), atomically. checkpoint: a JSON-able dict stored
    in the header (see save_checkpoint)."""
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
        "format": FORMAT, "version": VERSION, "fastcnn_version": FASTCNN_VERSION,
        "input_shape": list(model.input_shape), "dtype": model.dtype.name,
        "seed": model.seed if isinstance(model.seed, int) else None,
        "loss": model.loss.name,
        "layers": [{"type": type(layer).__name__, "config": layer.config()}
                   for layer in model.layers],
        "optimizer": None if opt is None else {
            "type": type(opt).__name__, "config": opt.config(), "steps": opt.steps},
    }
    if checkpoint is not None:
        if not isinstance(checkpoint, dict):
            raise TypeError(f"checkpoint must be a dict, got {type(checkpoint).__name__}")
        header["checkpoint"] = checkpoint
    archive.write(path, header, arrays)


def save_checkpoint(model, path, state) -> None:
    """The model (parameters, optimizer state) and `state`, a JSON-able dict of
    whatever else a trainer needs to continue, in one .npz, written atomically."""
    save_model(model, path, checkpoint=state)


def read(path):
    """(header, plan, arrays) of a model file, every check made; plan.layers
    and plan.optimizer are built from the header, arrays are the file's."""
    return archive.read(path, _plan_file)


def _plan_file(header, path, has_digest):
    _check_header(header, path, has_digest)
    if header["version"] == 1:
        warnings.warn(f"{path}: a version-1 model file; its arrays are checked, but an edit "
                      "of its header (layers, optimizer) cannot be detected. Save it again "
                      "to write version 2, which covers both.", UserWarning, stacklevel=6)
    plan = _plan(header, path)
    return plan, plan.arrays


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
            raise refuse(path, f"optimizer steps must be an integer in [0, {MAX_SIZE}], "
                               f"got {steps!r:.80}")


class _Plan:
    """What the header describes, before anything is allocated: the layers and
    optimizer (constructed, hence range-checked), the input shape, and
    arrays = {member name: (shape, dtype)} the file must hold."""

    def __init__(self, layer_list, input_shape, opt, arrays):
        self.layers, self.input_shape, self.optimizer, self.arrays = \
            layer_list, input_shape, opt, arrays


def _plan(header, path):
    try:
        layer_list = [L.from_config(d["type"], d["config"]) for d in header["layers"]]
        shape = header["input_shape"]
        if len(shape) not in (1, 3):
            raise ValueError(f"input_shape must be (C, H, W) or (features,), got {shape!r}")
        s = tuple(count(v, "input_shape") for v in shape)
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
    except (TypeError, ValueError) as e:   # what the layers, the optimizer or the loss refuse
        raise refuse(path, str(e)) from None
    total = sum(math.prod(shape) * dt.itemsize for shape, dt in arrays.values())
    if total > MAX_MODEL_BYTES:
        raise refuse(path, f"its header describes {total} bytes of arrays (at most "
                           f"{MAX_MODEL_BYTES})")
    return _Plan(layer_list, input_shape, opt, arrays)



__all__ = ["save_model", "save_checkpoint", "read", "FORMAT", "VERSION"]
