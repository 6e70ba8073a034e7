"""fastcnn.reference -- every op of the ops interface (backend/ops_list.py) in
plain NumPy: the oracle every native result is tested against, written to be
read, and a usable backend (dtype-generic: the tests run it in float64). The
same names, signatures and return structure as fastcnn.ops. See docs/ops.md.

  conv.py       gemm, im2col, col2im, conv2d, conv2d_maxpool, dense (+ backward)
  pool.py       max / average / L2 / global average pooling (+ backward)
  pointwise.py  activations, softmax, costs, dropout, optimizer updates
"""
from .conv import *  # noqa: F401,F403 -- each family module lists its ops in __all__
from .pointwise import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from ..ops_list import OPS as _OPS

__all__ = list(_OPS)
