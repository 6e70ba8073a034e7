"""Type stub of fastcnn._core, the private native module (src/cpp/bindings/).

Use fastcnn.ops instead: it checks arguments, converts inputs and allocates
outputs. Here every array argument must already be a numpy.ndarray of dtype
float32 and C-contiguous (labels: int64; mask: uint8 or bool); outputs are
passed in, overwritten (or updated in place) and never converted. Wrong
dtype/layout raises TypeError, wrong shape or value raises ValueError.

Size letters: N batch, C channels, H W image, K filters / classes,
KH KW kernel, OH OW output, I O dense features, M N K for GEMM.
"""
from typing import Optional, Sequence

import numpy as np

# The limits the intake enforces (src/cpp/geometry.h).
MAX_SIZE: int               # largest size, window, stride or padding (2**40)
CHOICE_NO_GRADIENT: int     # the choice value of a window that passes no gradient (255)
MAX_FUSED_POOL_WINDOW: int  # most elements in a fused conv + max-pool window (254)
MAX_THREADS: int            # largest thread count set_num_threads takes (1024)
WINOGRAD_ERROR_BOUND: float  # Winograd: per output plane, max |err| <= this * max S

# ------------------------------------------------------------------ GEMM --

def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, alpha: float, beta: float,
         trans_a: bool, trans_b: bool) -> None:
    """c (M, N) = alpha * op(a) @ op(b) + beta * c, in place; op(x) is x.T when asked."""

def _sgemm_naive(a: np.ndarray, b: np.ndarray, c: np.ndarray, alpha: float, beta: float,
                 trans_a: bool, trans_b: bool) -> None:
    """The same as gemm by the plain triple loop (double accumulation): the tests' oracle."""

def _gemm_path(m: int, n: int, k: int, trans_a: bool, trans_b: bool,
               serial: bool = False) -> str:
    """The strategy gemm (serial: the single-threaded entry point) takes for these sizes on
    the SIMD path in use: "empty", "scale", "stream_nn", "stream_nt", "stream_tn", "dot",
    "whole_a" or "blocked"."""

def _gemm_limits() -> dict[str, int]:
    """The size limits of that choice: dot_kb, dot_max_mn, dot_k_ranges, stream_max_m,
    stream_min_n, stream_min_dot_k, stream_max_k, whole_a_max_floats, min_work_per_thread."""

# ------------------------------------------------- im2col, conv, dense --

def im2col(cols: np.ndarray, x: np.ndarray, kh: int, kw: int, sh: int, sw: int,
           ph: int, pw: int) -> None:
    """cols (C*KH*KW, N*OH*OW) <- im2col(x (N, C, H, W)); cols is overwritten."""

def col2im(dx: np.ndarray, cols: np.ndarray, kh: int, kw: int, sh: int, sw: int,
           ph: int, pw: int) -> None:
    """dx (N, C, H, W) <- col2im(cols (C*KH*KW, N*OH*OW)); dx is overwritten."""

def conv2d_forward(out: np.ndarray, x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray],
                   sh: int, sw: int, ph: int, pw: int, relu: bool = False) -> None:
    """out (N, K, OH, OW) <- conv(x (N, C, H, W), w (K, C, KH, KW)) + b (K,) or no bias;
    then relu when asked."""

def conv2d_backward(dx: Optional[np.ndarray], dw: np.ndarray, db: Optional[np.ndarray],
                    dout: np.ndarray, x: np.ndarray, w: np.ndarray,
                    sh: int, sw: int, ph: int, pw: int) -> None:
    """dx (or None), dw, db (or None) <- conv2d gradients from dout (N, K, OH, OW); overwritten."""

def conv2d_maxpool_forward(out: np.ndarray, choice: np.ndarray, x: np.ndarray, w: np.ndarray,
                           b: Optional[np.ndarray], sh: int, sw: int, ph: int, pw: int,
                           pkh: int, pkw: int, psh: int, psw: int, relu: bool) -> None:
    """out (N, K, POH, POW), choice (uint8, the same shape) <- max-pool (pkh x pkw window,
    stride psh x psw) of conv(x, w) + b, relu'd when asked; the conv output is not stored."""

def conv2d_maxpool_backward(dx: Optional[np.ndarray], dw: np.ndarray, db: Optional[np.ndarray],
                            dout: np.ndarray, choice: np.ndarray, x: np.ndarray, w: np.ndarray,
                            sh: int, sw: int, ph: int, pw: int, pkh: int, pkw: int, psh: int,
                            psw: int) -> None:
    """dx (or None), dw, db (or None) <- conv2d_maxpool gradients from dout of the pooled
    output and choice; overwritten."""

def dense_forward(out: np.ndarray, x: np.ndarray, w: np.ndarray,
                  b: Optional[np.ndarray]) -> None:
    """out (N, O) <- x (N, I) @ w (I, O) + b (O,) or no bias."""

def dense_backward(dx: Optional[np.ndarray], dw: np.ndarray, db: Optional[np.ndarray],
                   dout: np.ndarray, x: np.ndarray, w: np.ndarray) -> None:
    """dx (or None), dw, db (or None) <- dense gradients from dout (N, O); overwritten."""
def dense_backward_sgd(dx: Optional[np.ndarray], w: np.ndarray, b: Optional[np.ndarray],
                       dout: np.ndarray, x: np.ndarray, lr: float, weight_decay: float) -> None:
    """dx (or None) <- dout . w^T; then w, b (or None) updated in place by one SGD step."""

# --------------------------------------------------------------- pooling --

def maxpool2d_forward(out: np.ndarray, x: np.ndarray, kh: int, kw: int,
                      sh: int, sw: int) -> None:
    """out (N, C, OH, OW) <- max over each (kh, kw) window of x (N, C, H, W); no padding."""

def maxpool2d_backward(dx: np.ndarray, dout: np.ndarray, x: np.ndarray, kh: int, kw: int,
                       sh: int, sw: int) -> None:
    """dx (N, C, H, W) <- dout (N, C, OH, OW) sent to each window's chosen element of x."""

def avgpool2d_forward(out: np.ndarray, x: np.ndarray, kh: int, kw: int,
                      sh: int, sw: int) -> None:
    """out (N, C, OH, OW) <- mean over each (kh, kw) window of x (N, C, H, W)."""

def avgpool2d_backward(dx: np.ndarray, dout: np.ndarray, kh: int, kw: int,
                       sh: int, sw: int) -> None:
    """dx (N, C, H, W) <- dout (N, C, OH, OW) spread evenly over each window."""

def l2pool2d_forward(out: np.ndarray, x: np.ndarray, kh: int, kw: int,
                     sh: int, sw: int) -> None:
    """out (N, C, OH, OW) <- sqrt(sum of x**2) over each (kh, kw) window of x (N, C, H, W)."""

def l2pool2d_backward(dx: np.ndarray, dout: np.ndarray, x: np.ndarray, kh: int, kw: int,
                      sh: int, sw: int) -> None:
    """dx (N, C, H, W) <- dout * x / out per window (0 where out == 0)."""

def global_avgpool2d_forward(out: np.ndarray, x: np.ndarray) -> None:
    """out (N, C) <- mean of x (N, C, H, W) over H*W."""

def global_avgpool2d_backward(dx: np.ndarray, dout: np.ndarray) -> None:
    """dx (N, C, H, W) <- dout (N, C) / (H*W), broadcast over H*W."""

# ------------------------------- activations, softmax, costs, dropout --
# Elementwise ops take arrays of one shape (any ndim); out/dx may be exactly
# the input buffer but must not partly overlap it.

def relu_forward(out: np.ndarray, x: np.ndarray) -> None:
    """out <- max(x, 0), NaN kept as NaN."""

def relu_backward(dx: np.ndarray, dout: np.ndarray, x: np.ndarray) -> None:
    """dx <- dout where x > 0, else 0 (also 0 where x is NaN)."""

def leaky_relu_forward(out: np.ndarray, x: np.ndarray, alpha: float) -> None:
    """out <- x where x > 0, else alpha * x (NaN kept as NaN)."""

def leaky_relu_backward(dx: np.ndarray, dout: np.ndarray, x: np.ndarray, alpha: float) -> None:
    """dx <- dout where x > 0, else alpha * dout."""

def sigmoid_forward(out: np.ndarray, x: np.ndarray) -> None:
    """out <- 1 / (1 + exp(-x)) (vectorised path)."""

def sigmoid_backward(dx: np.ndarray, dout: np.ndarray, y: np.ndarray) -> None:
    """dx <- dout * y * (1 - y), y being the forward output."""

def tanh_forward(out: np.ndarray, x: np.ndarray) -> None:
    """out <- tanh(x) (vectorised path)."""

def tanh_backward(dx: np.ndarray, dout: np.ndarray, y: np.ndarray) -> None:
    """dx <- dout * (1 - y) * (1 + y), y being the forward output."""

def _sigmoid_forward_plain(out: np.ndarray, x: np.ndarray) -> None:
    """Plain (scalar libm) twin of sigmoid_forward, kept as an oracle for tests."""

def _tanh_forward_plain(out: np.ndarray, x: np.ndarray) -> None:
    """Plain (scalar libm) twin of tanh_forward, kept as an oracle for tests."""

def softmax_forward(out: np.ndarray, x: np.ndarray) -> None:
    """out (N, K) <- row-wise softmax of x (N, K)."""

def log_softmax_forward(out: np.ndarray, x: np.ndarray) -> None:
    """out (N, K) <- row-wise log-softmax of x (N, K)."""

def softmax_loglik(dlogits: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> float:
    """Returns the mean of -log softmax(logits)[label]; dlogits (N, K) <- (softmax - onehot)/N."""

def quadratic_cost(da: np.ndarray, a: np.ndarray, y: np.ndarray) -> float:
    """Returns the mean over rows of 0.5*||a - y||**2; da (N, D) <- (a - y)/N."""

def binary_cross_entropy(dz: np.ndarray, z: np.ndarray, y: np.ndarray) -> float:
    """Returns the mean over rows of sum(softplus(z) - y*z); dz (N, D) <- (sigmoid(z) - y)/N."""

def dropout_apply(out: np.ndarray, x: np.ndarray, mask: np.ndarray, scale: float) -> None:
    """out <- x * mask * scale (mask: uint8/bool, one byte per value, x's shape)."""

# ------------------------------------------------------ optimizer steps --
# param, grad and every state: float32 C-contiguous of one shape, pairwise disjoint.

def sgd_update(param: np.ndarray, grad: np.ndarray, velocity: Optional[np.ndarray],
               lr: float, momentum: float, weight_decay: float, nesterov: bool) -> None:
    """SGD step in place on param (and velocity; None only when momentum == 0)."""

def adagrad_update(param: np.ndarray, grad: np.ndarray, sum_sq: np.ndarray, lr: float,
                   eps: float, weight_decay: float) -> None:
    """Adagrad step in place on param and sum_sq."""

def rmsprop_update(param: np.ndarray, grad: np.ndarray, sq_avg: np.ndarray, lr: float,
                   alpha: float, eps: float, weight_decay: float) -> None:
    """RMSprop step in place on param and sq_avg."""

def adam_update(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray,
                step: int, lr: float, beta1: float, beta2: float, eps: float,
                weight_decay: float) -> None:
    """Adam step (bias-corrected with step >= 1) in place on param, m and v."""

# ------------------------------------------------------------ inference --

class InferencePlan:
    """A model's whole inference forward pass as one call (src/cpp/inference.cpp):
    steps appended in order, each checked when added (ValueError for a shape that
    does not follow, TypeError for an array that is not float32 C-contiguous), each
    calling the kernel of the op above it names; the plan keeps references to its
    parameter arrays and reads them at every run (fastcnn/backend/native/plan.py)."""

    input_shape: tuple[int, ...]    # one example: (C, H, W) or (features,)
    output_shape: tuple[int, ...]   # one example's output after the steps so far
    n_steps: int

    def __init__(self, input_shape: Sequence[int]) -> None:
        """An empty plan for examples of input_shape."""

    def conv2d(self, w: np.ndarray, b: Optional[np.ndarray], stride: tuple[int, int],
               padding: tuple[int, int], relu: bool = False) -> None:
        """conv2d_forward with w (K, C, KH, KW), b (K,) or None."""

    def conv2d_maxpool(self, w: np.ndarray, b: Optional[np.ndarray], stride: tuple[int, int],
                       padding: tuple[int, int], size: tuple[int, int],
                       pool_stride: tuple[int, int], relu: bool = False) -> None:
        """conv2d_maxpool_forward's out (its choice is not kept)."""

    def maxpool2d(self, size: tuple[int, int], stride: tuple[int, int]) -> None: ...
    def avgpool2d(self, size: tuple[int, int], stride: tuple[int, int]) -> None: ...
    def l2pool2d(self, size: tuple[int, int], stride: tuple[int, int]) -> None: ...
    def global_avgpool2d(self) -> None: ...

    def dense(self, w: np.ndarray, b: Optional[np.ndarray]) -> None:
        """dense_forward of the input seen flat, w (I, O), b (O,) or None."""

    def activation(self, name: str, alpha: float = 0.0) -> None:
        """relu, leaky_relu (slope alpha), sigmoid, tanh, or softmax over every non-batch axis."""

    def scale(self, factor: float) -> None:
        """out = x * factor (dropout at inference without scaling in training)."""

    def flatten(self) -> None:
        """(C, H, W) -> (C*H*W,): a new shape, no copy."""

    def run(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out (N,) + output_shape <- the steps on x (N,) + input_shape, both float32
        C-contiguous, the GIL released once; returns out."""

# -------------------------------------------------------- threads, SIMD --

def set_num_threads(n: int) -> None:
    """Sets the thread count of fastcnn's workers (1 <= n <= MAX_THREADS, ValueError
    otherwise); OMP_THREAD_LIMIT, when set, caps it."""

def get_num_threads() -> int:
    """The thread count (at import: OMP_NUM_THREADS, else the CPUs this process may
    run on; at most OMP_THREAD_LIMIT)."""

def set_busy_wait(on: bool) -> None:
    """Idle worker threads spin ~2 ms (on) or ~20 us (off) before they sleep."""

def busy_wait() -> bool:
    """Whether idle worker threads spin long (set_busy_wait)."""

def simd_level() -> str:
    """The SIMD path in use: "generic", "avx2" or "avx512"."""

def _set_isa(name: str) -> None:
    """Forces the SIMD path ("generic", "avx2" or "avx512"); ValueError, naming
    what is missing, if unknown or unavailable."""

def _set_conv_algo(name: str) -> None:
    """Convolution algorithm from now on: "auto", "im2col" or "winograd"
    (FASTCNN_CONV at import); ValueError for another name."""

def _conv_algo() -> str:
    """The convolution algorithm setting: "auto", "im2col" or "winograd"."""

def _conv_path(n: int, c: int, h: int, w: int, k: int, kh: int, kw: int, sh: int, sw: int,
               ph: int, pw: int) -> str:
    """"im2col" or "winograd": how a conv of x (n, c, h, w) with w (k, c, kh, kw),
    stride (sh, sw), padding (ph, pw) runs under the setting in use."""

def _peak_fma(name: str, iters: int, threads: int) -> tuple[int, float]:
    """(flops done, a value of the result): `threads` threads each run `iters`
    iterations of path `name`'s independent FMA chains (bench/bench_peak.py)."""

def _gemm_blocking(name: str) -> dict[str, int]:
    """The GEMM block table (mr, nr, mc, kc, nc) of a path this build has."""

def build_info() -> dict[str, object]:
    """How the core was built and what it runs: version, simd, isas_supported,
    isas_compiled, cpu_avx2_fma, cpu_avx512, avx2_compiled, avx512_compiled,
    threads, num_threads, compiler, cxx_flags, avx2_flags, avx512_flags, build_type,
    malloc_tuned."""
