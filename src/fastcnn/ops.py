"""fastcnn.ops -- the native backend: the same names, signatures and return
structure as fastcnn.reference, computed by the compiled core (fastcnn._core).

Every function: checks its arguments with fastcnn._validate (same errors as the
reference), converts read-only inputs to float32 C-contiguous arrays, allocates
its outputs, and calls one _core function (which releases the GIL). Arrays
updated in place are never converted. See the README's "Ops" section.
"""
from __future__ import annotations

import numpy as np

from . import _core
from . import _validate as V


def _f32(x: np.ndarray) -> np.ndarray:
    """A read-only input as float32 C-contiguous (no copy when it already is)."""
    return np.ascontiguousarray(x, dtype=np.float32)


# =================================================================== GEMM ==


# ========================================== im2col, col2im, conv2d, dense ==


# ================================================================ pooling ==


# ============================== activations, softmax, costs, dropout, optim ==
