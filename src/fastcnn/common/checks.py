"""Argument checks every room uses: one function per rule, one message per mistake.

The rule for the exception type, the same in every module of fastcnn:
  * TypeError  -- the wrong kind of object: a float where an integer count is
                  needed, a string where a number is, a non-bool flag;
  * ValueError -- the right kind, a wrong value: out of range, an unknown name,
                  a pair of three elements.
Every message names the argument and says what it must be and what it got.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .geometry import MAX_SIZE

# Hyper-parameters reach the native core as float32: each must be 0 or lie in
# float32's normal range, so that both backends compute with the same number.
F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)


def shape_str(shape) -> str:
    """(2, 3) -> '(2, 3)'; (5,) -> '(5,)'."""
    return str(tuple(int(s) for s in shape))


def integer(v, name: str, lo: int | None = None, hi: int = MAX_SIZE) -> int:
    """A Python/NumPy integer (not bool, not float) in [lo, hi]."""
    # The usual case first (a plain int): the ABC check below costs ~0.3 us,
    # and a training step validates a few dozen sizes.
    if type(v) is int and (lo is None or v >= lo) and v <= hi:
        return v
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {v!r}")
    v = int(v)
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    if v > hi:
        raise ValueError(f"{name} must be <= {hi}, got {v}")
    return v


def count(v, name: str) -> int:
    """A count (filters, units, epochs, batch size...): an integer in [1, MAX_SIZE]."""
    return integer(v, name, 1)


def pair(v, name: str, lo: int) -> tuple[int, int]:
    """An int or a pair of ints (tuple or list), each >= lo, as (h, w)."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {v!r}")
        return integer(v[0], name, lo), integer(v[1], name, lo)
    v = integer(v, name, lo)
    return v, v


def real(v, name: str, lo: float | None = None, hi: float | None = None,
         lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite real number in the given range, representable as a normal float32 (or 0)."""
    if (type(v) is float and (v == 0.0 or F32_TINY <= abs(v) <= F32_MAX)
            and (lo is None or v > lo or (v == lo and not lo_open))
            and (hi is None or v < hi or (v == hi and not hi_open))):
        return v  # the usual case, without the ABC check (NaN fails every comparison)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {v!r}")
    try:
        v = float(v)
    except OverflowError:   # an int beyond float's range
        raise ValueError(f"{name} must be finite, got an integer of "
                         f"{int(v).bit_length()} bits") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if abs(v) > F32_MAX or (v != 0 and abs(v) < F32_TINY):
        raise ValueError(f"{name} must be 0 or of magnitude in [{F32_TINY:.4g}, "
                         f"{F32_MAX:.4g}] (float32's normal range), got {v}")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {v}")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise ValueError(f"{name} must be {'<' if hi_open else '<='} {hi}, got {v}")
    return v


def labels_in_range(y, k: int, name: str = "labels", what: str = "classes") -> None:
    """ValueError unless every integer label in y lies in [0, k): the rule for
    class labels wherever they are taken (the model, the losses, the ops)."""
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"{name} must lie in [0, {k}) for {k} {what}, got values in "
                         f"[{y.min()}, {y.max()}]")


def flag(v, name: str) -> bool:
    """A yes/no argument: a bool (or numpy bool), nothing else."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {v!r}")
    return bool(v)


def choice(v, name: str, allowed) -> str:
    """One of the names in `allowed` (case-insensitive), returned in lower case."""
    if not isinstance(v, str):
        raise TypeError(f"{name} must be a str, one of {', '.join(map(repr, allowed))}, "
                        f"got {v!r}")
    if v.lower() not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {v!r}")
    return v.lower()


def instance(v, name: str, kind, what: str):
    """v when it is an instance of kind, else TypeError naming `what` it must be."""
    if not isinstance(v, kind):
        raise TypeError(f"{name} must be {what}, got {type(v).__name__}")
    return v


# ------------------------------------------- hyper-parameters of the updates --
# The same rule wherever the value is taken: by an optimizer when it is made, by
# an update op when it runs.

def learning_rate(lr, positive: bool = False) -> float:
    """lr >= 0 (an op may take a step of 0); positive=True: lr > 0 (an optimizer)."""
    return real(lr, "lr", 0.0, lo_open=positive)


def weight_decay(wd) -> float:
    return real(wd, "weight_decay", 0.0)


def decay_rate(v, name: str) -> float:
    """momentum, alpha, beta1, beta2: in [0, 1)."""
    return real(v, name, 0.0, 1.0, hi_open=True)


def epsilon(eps) -> float:
    return real(eps, "eps", 0.0, lo_open=True)


__all__ = ["shape_str", "integer", "count", "pair", "real", "flag", "choice", "instance",
           "labels_in_range",
           "learning_rate", "weight_decay", "decay_rate", "epsilon", "F32_MAX", "F32_TINY"]
