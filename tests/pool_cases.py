"""The pooling kinds and their forward and backward ops by name, for test_pool.py
and test_pool_bad_input.py."""
from __future__ import annotations

KINDS = ["maxpool2d", "avgpool2d", "l2pool2d"]


def _fwd(mod, kind):
    return getattr(mod, kind)


def _bwd(mod, kind):
    return getattr(mod, kind + "_backward")
