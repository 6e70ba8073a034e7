"""fastcnn.ops -- the native backend: every op of the ops interface
(backend/ops_list.py) computed by the compiled core, fastcnn._core, with the
same names, signatures and results as fastcnn.reference. See docs/ops.md.

  conv.py       gemm, im2col, col2im, conv2d, conv2d_maxpool, dense (+ backward)
  pool.py       max / average / L2 / global average pooling (+ backward)
  pointwise.py  activations, softmax, costs, dropout, optimizer updates
"""
from .conv import *  # noqa: F401,F403 -- each family module lists its ops in __all__
from .pointwise import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from ..ops_list import OPS as _OPS

__all__ = list(_OPS)
