"""The limits the native core enforces, read from it (never copied).

  MAX_SIZE               the largest size, stride, padding or output extent either
                         backend accepts (2**40): no index arithmetic can overflow int64,
                         and anything larger could not be allocated anyway
  CHOICE_NO_GRADIENT     the byte a fused conv + max-pool writes where no gradient flows
  MAX_FUSED_POOL_WINDOW  the most elements a fused max-pool window may have (its
                         choice is a byte, CHOICE_NO_GRADIENT excluded)
  MAX_THREADS            the largest thread count fastcnn.set_num_threads accepts (1024:
                         far beyond any CPU this runs on; one op uses at most 255)
"""
from __future__ import annotations

from .. import _core

MAX_SIZE: int = int(_core.MAX_SIZE)
CHOICE_NO_GRADIENT: int = int(_core.CHOICE_NO_GRADIENT)
MAX_FUSED_POOL_WINDOW: int = int(_core.MAX_FUSED_POOL_WINDOW)
MAX_THREADS: int = int(_core.MAX_THREADS)

__all__ = ["MAX_SIZE", "CHOICE_NO_GRADIENT", "MAX_FUSED_POOL_WINDOW", "MAX_THREADS"]
