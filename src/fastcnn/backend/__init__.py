"""fastcnn.backend -- the ops interface and its two implementations.

  native/      fastcnn.ops: every op on the compiled core (_core)
  reference/   fastcnn.reference: every op in NumPy, the oracle
  ops_list.py  the names both define (the interface)
  intake.py    the argument checks both run first (same errors either way)
  threads.py   fastcnn.threads: the native thread count and how idle threads wait
  native/plan.py  the native inference plan (a model's forward pass in one call)
  selfcheck.py every native op against the reference, for an installed copy

Everything above this room calls ops through a module handed to it (get(name)),
never naming a backend itself.
"""
from __future__ import annotations

from . import native, reference
from .native import plan as _native_plan

BACKENDS = ("native", "reference")


def get(name: str):
    """The backend module for `name`: "native" (fastcnn.ops) or "reference"."""
    if name == "native":
        return native
    if name == "reference":
        return reference
    raise ValueError(f"backend must be 'native' or 'reference', got {name!r}")


def inference_plan(name: str, input_shape):
    """An empty inference plan of backend `name` for inputs of input_shape (one
    example), which layers then describe their steps to (nn/steps.py), or None
    when the backend has none: the reference runs the Python forward."""
    get(name)
    return _native_plan.inference_plan(input_shape) if name == "native" else None


__all__ = ["BACKENDS", "get", "inference_plan", "native", "reference"]
