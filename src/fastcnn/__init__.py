"""fastcnn: train small convolutional networks on the CPU, fast.

Two backends with the same op names and signatures:
  fastcnn.reference -- pure NumPy, dtype-generic: the oracle, and a usable backend;
  fastcnn.ops       -- the compiled core (float32, NCHW), tested against the reference.

The package is a house of rooms, each importing only the rooms below it
(docs/design.md has the picture):
  compat                 the book's network3 API; module paths users import
  cli                    the command line
  runs  bench            whole runs (presets, reproduce, Dask); benchmarks
  plot                   pictures
  nn                     layers, Sequential, losses, optimizers, training
  data  io               data sets; files (model archives, ONNX, atomic writes)
  backend                the ops interface: native (fastcnn.ops) and reference
  common                 checks, limits, geometry, version
"""
from __future__ import annotations

from . import _core  # noqa: F401  (the native core: fails here, once, if it cannot load)
from .backend import native as ops
from .backend import reference
from .backend.build import build_info, conv_algorithm, set_conv_algorithm, set_isa
from .backend.threads import MAX_THREADS, get_num_threads, set_num_threads
from .common.version import VERSION as __version__
from .backend import threads
from .compat import paths
from . import data as datasets
from .io.files import FileFormatError
from .nn import callbacks, layers, losses, optim
from .nn.ensemble import Ensemble
from .nn.model import Sequential
from .nn.model import load_model as load

paths.install()


def __getattr__(name):
    """fastcnn.<path> for the module paths of compat/paths.py (fastcnn.saving,
    fastcnn.presets, fastcnn.network3...), imported when first asked for."""
    return paths.attribute(name)

__all__ = ["ops", "reference", "threads", "layers", "losses", "optim", "callbacks", "Sequential",
           "Ensemble", "load", "FileFormatError", "datasets", "build_info", "set_isa",
           "set_conv_algorithm", "conv_algorithm",
           "set_num_threads", "get_num_threads", "MAX_THREADS", "__version__"]
