"""Module paths users import that are not the rooms' own: the public short ones
(`fastcnn.ops`, `fastcnn.layers`, `fastcnn.threads`, `fastcnn.network3`...) and
those of fastcnn 0.1 (`fastcnn.network`, `fastcnn.saving`...). Each names the
module that holds its contents (ALIASES). A path is resolved when it is
first imported, so `import fastcnn` loads none of them (nor torch, dask,
matplotlib). install() is called once, by fastcnn/__init__.py.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# path users import -> the module that holds its contents
ALIASES = {
    "fastcnn.ops": "fastcnn.backend.native",
    "fastcnn.reference": "fastcnn.backend.reference",
    "fastcnn.threads": "fastcnn.backend.threads",
    "fastcnn.selfcheck": "fastcnn.backend.selfcheck",
    "fastcnn.layers": "fastcnn.nn.layers",
    "fastcnn.losses": "fastcnn.nn.losses",
    "fastcnn.optim": "fastcnn.nn.optim",
    "fastcnn.callbacks": "fastcnn.nn.callbacks",
    "fastcnn.ensemble": "fastcnn.nn.ensemble",
    "fastcnn.network": "fastcnn.nn.model",
    "fastcnn.mpi": "fastcnn.nn.data_parallel",
    "fastcnn.saving": "fastcnn.compat.saving",
    "fastcnn.datasets": "fastcnn.data",
    "fastcnn.onnx_export": "fastcnn.io.onnx",
    "fastcnn.presets": "fastcnn.compat.presets",
    "fastcnn.distributed": "fastcnn.runs.cluster",
    "fastcnn.benchmark": "fastcnn.bench",
    "fastcnn.network3": "fastcnn.compat.network3",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an aliased path and loads it as the module it names (the same
    module object: fastcnn.ops is fastcnn.backend.native)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in ALIASES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(ALIASES[spec.name])

    def exec_module(self, module):
        pass   # already executed, under its own name


def attribute(name):
    """The module fastcnn.<name> names, imported (the root's __getattr__)."""
    full = f"fastcnn.{name}"
    if full not in ALIASES:
        raise AttributeError(f"module 'fastcnn' has no attribute {name!r}")
    return importlib.import_module(full)


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())


__all__ = ["ALIASES", "attribute", "install"]
