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


# ========================================== im2col, col2im, conv2d, dense ==


# ================================================================ pooling ==


# ============================== activations, softmax, costs, dropout, optim ==
