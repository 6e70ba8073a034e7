"""How arrays reach the native core: read-only inputs as float32 C-contiguous
(copied only when they are not already), scalars checked once."""
from __future__ import annotations

import numpy as np

from ...common.checks import F32_MAX, F32_TINY, real

F32 = np.dtype(np.float32)


def f32(x: np.ndarray) -> np.ndarray:
    """A read-only input as float32 C-contiguous (no copy when it already is).
    The shape is kept: np.ascontiguousarray alone turns a 0-d array into 1-d."""
    if type(x) is np.ndarray and x.dtype == F32 and x.flags.c_contiguous:
        return x  # the usual case, checked in ~0.2 us instead of ~0.6
    out = np.ascontiguousarray(x, dtype=np.float32)
    return out if out.shape == x.shape else out.reshape(x.shape)


def scalar(v, name: str) -> float:
    """checks.real(v, name), with a shortcut for the usual finite Python float (the
    full check costs ~0.7 us, noticeable on small GEMMs called in a loop)."""
    if type(v) is float and (v == 0.0 or F32_TINY <= abs(v) <= F32_MAX):
        return v
    return real(v, name)
