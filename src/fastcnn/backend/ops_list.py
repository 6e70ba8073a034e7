"""The names every backend module defines: the ops interface of fastcnn.

Layers, losses and optimizers call only these (as `ops.<name>`, on whichever
backend module they are given), so the native core and the NumPy reference are
interchangeable. A new op is added to both backends and to this list; a test
checks that both define exactly these names with the same signatures.
"""
OPS = (
    # GEMM-based (conv.py)
    "gemm", "im2col", "col2im", "conv2d", "conv2d_backward", "conv2d_maxpool",
    "conv2d_maxpool_backward", "dense", "dense_backward", "dense_backward_sgd",
    # pooling (pool.py)
    "maxpool2d", "maxpool2d_backward", "avgpool2d", "avgpool2d_backward",
    "l2pool2d", "l2pool2d_backward", "global_avgpool2d", "global_avgpool2d_backward",
    # pointwise (pointwise.py)
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid", "sigmoid_backward",
    "tanh", "tanh_backward",
    "softmax", "log_softmax", "softmax_loglik", "quadratic_cost", "binary_cross_entropy",
    "dropout", "dropout_backward",
    "sgd_update", "adagrad_update", "rmsprop_update", "adam_update",
)
