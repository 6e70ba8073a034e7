"""fastcnn.reference -- every fastcnn op in plain NumPy: the oracle, written to be read.

Dtype-generic: results come out in the floating dtype of the inputs (the tests
run it in float64). The same names, signatures and return structure as
fastcnn.ops; arguments are checked by fastcnn._validate, so both backends raise
the same errors. See the README's "Ops" section for the contract of each op.

Layouts: images (N, C, H, W); conv weights (C_out, C_in, KH, KW); dense
weights (in_features, out_features).
"""
from __future__ import annotations

import numpy as np

from . import _validate as V


# =================================================================== GEMM ==


def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """c = alpha * op(a) @ op(b) + beta * c, where op(x) is x.T when asked.

    Without c a new (M, N) array is returned and beta is ignored. A given c is
    updated in place and returned; beta == 0 makes c write-only (NaN already in
    c does not survive, as in BLAS).
    """
    a, b, _, _, _ = V.gemm_args(a, b, c, trans_a, trans_b, native=False)
    alpha = V.real(alpha, "alpha")
    beta = V.real(beta, "beta")
    op_a = a.T if trans_a else a  # (M, K)
    op_b = b.T if trans_b else b  # (K, N)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf in, NaN/Inf out
        product = alpha * (op_a @ op_b)  # (M, N)
        if c is None:
            return product
        if beta == 0.0:
            c[...] = product
        else:
            c[...] = product + beta * c
    return c



# ========================================== im2col, col2im, conv2d, dense ==


# ================================================================ pooling ==


# ============================== activations, softmax, costs, dropout, optim ==
