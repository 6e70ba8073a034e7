"""fastcnn.reference -- every op of the ops interface (backend/ops_list.py) in
plain NumPy: the oracle every native result is tested against, written to be
read, and a usable backend (dtype-generic: the tests run it in float64). The
same names, signatures and return structure as fastcnn.ops. See docs/ops.md.

  conv.py       gemm, im2col, col2im, conv2d, conv2d_maxpool, dense (+ backward)
  pool.py       max / average / L2 / global average pooling (+ backward)
  pointwise.py  activations, softmax, costs, dropout, optimizer updates
"""
from .conv import (  # noqa: F401 -- the ops (ops_list.OPS), re-exported
    col2im, conv2d, conv2d_backward, conv2d_maxpool, conv2d_maxpool_backward, dense,
    dense_backward, dense_backward_sgd, gemm, im2col)
from .pointwise import (  # noqa: F401
    adagrad_update, adam_update, binary_cross_entropy, dropout, dropout_backward, leaky_relu,
    leaky_relu_backward, log_softmax, quadratic_cost, relu, relu_backward, rmsprop_update,
    sgd_update, sigmoid, sigmoid_backward, softmax, softmax_loglik, tanh, tanh_backward)
from .pool import (  # noqa: F401
    avgpool2d, avgpool2d_backward, global_avgpool2d, global_avgpool2d_backward, l2pool2d,
    l2pool2d_backward, maxpool2d, maxpool2d_backward)
from ..ops_list import OPS as _OPS

__all__ = list(_OPS)
