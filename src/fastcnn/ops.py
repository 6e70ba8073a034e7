"""fastcnn.ops -- the native backend: the same names, signatures and return
structure as fastcnn.reference, computed by the compiled core (fastcnn._core).

Every function: checks its arguments with fastcnn._validate (same errors as the
reference), converts read-only inputs to float32 C-contiguous arrays, allocates
its outputs, and calls one _core function (which releases the GIL). Arrays
updated in place are never converted. See the README's "Ops" section.
"""
from __future__ import annotations

import math

import numpy as np

from . import _core
from . import _validate as V


def _f32(x: np.ndarray) -> np.ndarray:
    """A read-only input as float32 C-contiguous (no copy when it already is)."""
    return np.ascontiguousarray(x, dtype=np.float32)


# =================================================================== GEMM ==


def _real(v, name: str) -> float:
    """V.real(v, name), with a shortcut for the usual finite Python float (the
    full check costs ~0.7 us, noticeable on small GEMMs called in a loop)."""
    if type(v) is float and math.isfinite(v):
        return v
    return V.real(v, name)


def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """c = alpha * op(a) @ op(b) + beta * c, in float32 (op(x) is x.T when asked).

    Without c a new (M, N) array is returned and beta is ignored. A given c
    must be float32 C-contiguous; it is updated in place and returned. beta == 0
    makes c write-only (NaN already in c does not survive).
    """
    a, b, m, n, _ = V.gemm_args(a, b, c, trans_a, trans_b, native=True)
    alpha = _real(alpha, "alpha")
    beta = _real(beta, "beta")
    a, b = _f32(a), _f32(b)
    if c is None:
        c, beta = np.empty((m, n), dtype=np.float32), 0.0
    else:
        # The kernel reads a and b while it writes c: never let them overlap.
        if np.may_share_memory(a, c):
            a = a.copy()
        if np.may_share_memory(b, c):
            b = b.copy()
    _core.gemm(a, b, c, alpha, beta, bool(trans_a), bool(trans_b))
    return c



# ========================================== im2col, col2im, conv2d, dense ==


# ================================================================ pooling ==


# ============================== activations, softmax, costs, dropout, optim ==
