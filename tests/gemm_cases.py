"""Shared by the GEMM tests: the block tables and strategy limits asked from the
build, the shape lists built around them, and the check of one product against
the float64 reference and the plain triple loop _core._sgemm_naive."""
from __future__ import annotations

import numpy as np

import fastcnn
from fastcnn import _core, ops
from fastcnn import reference as ref
from helpers import as64, assert_close

# Each path's block table (src/cpp/gemm/blocking.h), asked from the build.
BLOCKING = {name: _core._gemm_blocking(name) for name in fastcnn.build_info()["isas_compiled"]}
# The shape lists below are built around the AVX2 table (also the portable
# path's); AVX512_BLOCK_SHAPES add the edges of the AVX-512 table.
MR, NR, MC, KC, NC = (BLOCKING["generic"][x] for x in ("mr", "nr", "mc", "kc", "nc"))

# The limits of the GEMM's choice of strategy (src/cpp/gemm/strategy.h).
LIMITS = _core._gemm_limits()


def path(m, n, k, trans_a=False, trans_b=False):
    """The strategy gemm takes for these sizes on the SIMD path in use."""
    return _core._gemm_path(m, n, k, trans_a, trans_b)


# The network's GEMMs, M x N x K.
NETWORK_SHAPES = [(20, 5760, 25), (40, 640, 500), (500, 640, 40), (40, 500, 640),
                  (10, 100, 640), (64, 1000, 1000)]
# The tiled strategies (src/cpp/gemm/whole_a.cpp, blocked.cpp): "whole_a" when
# one K block of packed op(A) is small (fits MC x KC), else "blocked" (BLIS
# loops with MC/KC/NC). Sizes just below, at and above each block, and across
# several blocks:
WHOLE_A_SHAPES = [(MC - 1, 37, KC + 1), (MC, NR * 3, KC), (MC + 1, 50, 2 * KC + 3),
                  (2 * MC + 5, 33, 17), (17, NC + 3, 9), (MC + 7, NC + 21, KC + 5)]
BLOCKED_SHAPES = [(301, 37, 257), (MC + 6, 600, KC), (2 * MC + 1, 45, KC + 1),
                  (MC + 6, NC + 120, KC), (1024, 64, 64)]


def block_edge_shapes(t):
    """Whole-A and blocked shapes just around table t's MC, KC and NC."""
    mc, kc, nc, nr = t["mc"], t["kc"], t["nc"], t["nr"]
    return [(mc - 1, 37, kc + 1), (mc, nr * 3, kc), (mc + 1, 50, 2 * kc + 3),
            (mc + 13, nc + 33, kc + 5), (2 * mc + 1, 45, kc + 1), (mc + 12, 600, kc)]


AVX512_BLOCK_SHAPES = block_edge_shapes(BLOCKING["avx512"]) if "avx512" in BLOCKING else []


# Weight gradients of the convolutions, dW = dout (K_out, N*OH*OW) @ cols.T:
# small M x N, long K (batch 64 and 10). Most take the "dot" path (dot.cpp:
# one dot product per C element, K split across threads), the others whole A.
WGRAD_SHAPES = [(20, 25, 36864), (32, 9, 36864), (40, 500, 4096), (20, 25, 5760),
                (32, 9, 6760), (40, 500, 640), (64, 288, 1210)]
# Dot-path edges: K not a multiple of 8 (the k >= K//8*8 tail) nor of the
# 256-wide K block, odd M and N (3 x 4 tile remainders), one block, M x N at
# the 4096 limit, a single row/column.
DOT_SHAPES = [(7, 5, 40001), (1, 1, 263), (3, 4, 256), (2, 3, 257), (13, 11, 1031),
              (5, 1, 2000), (1, 33, 777), (31, 17, 4099), (64, 64, 300), (30, 60, 2050)]


# Streaming paths (stream.cpp, a dense layer at a small mini-batch): "small M"
# (M <= 16, N >= 64: out = x . w, and dx = dout . w^T with B transposed,
# K >= 32) and "small K" (K <= 16, M >= 64, N >= 64, B not transposed:
# dw = x^T . dout).
# N and M around the 64-column thread chunks, the 512-column blocks and the
# 16/32-wide vector loops; K around the 4-row and 8-lane steps.
STREAM_SHAPES = [(10, 1000, 1000), (10, 1000, 640), (10, 100, 640), (1, 64, 1), (16, 513, 9),
                 (3, 545, 8), (7, 1000, 10), (15, 97, 31), (1000, 1000, 10), (640, 1000, 10),
                 (64, 65, 16), (100, 9, 1), (1000, 10, 10), (513, 33, 3), (10, 640, 32),
                 (10, 640, 31), (1000, 64, 10), (1000, 63, 10), (16, 513, 40), (3, 545, 33),
                 (7, 70, 40), (5, 67, 48)]  # the last: 4-, 2- and 1-column groups of nt

TRANSPOSES = [(False, False), (False, True), (True, False), (True, True)]


def operands(rng, m, n, k, trans_a, trans_b, dtype=np.float32):
    """Random a, b stored so that op(a) is (m, k) and op(b) is (k, n)."""
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def tolerance(a, b, k, alpha=1.0, beta=0.0, c=None):
    """(rtol, atol) for a float32 product accumulated over k terms, checked
    against float64: the error grows like sqrt(k) * max|a| * max|b|."""
    amax = float(np.max(np.abs(a))) if a.size else 0.0
    bmax = float(np.max(np.abs(b))) if b.size else 0.0
    cmax = float(np.max(np.abs(c))) if c is not None and c.size else 0.0
    atol = 1e-5 * np.sqrt(max(k, 1)) * amax * bmax * abs(alpha) + 1e-6 * abs(beta) * cmax
    return 1e-5, atol + 1e-30


def check(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """Native against the float64 reference for one call; returns the native result."""
    k = a.shape[0] if trans_a else a.shape[1]
    c_ref = None if c is None else c.astype(np.float64)
    c_tol = None if c is None else c.copy()
    want = ref.gemm(*as64(a, b), c_ref, alpha=alpha, beta=beta, trans_a=trans_a,
                    trans_b=trans_b)
    got = ops.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    assert got.dtype == np.float32
    if c is not None:
        assert got is c
    rtol, atol = tolerance(a, b, k, alpha, beta if c is not None else 0.0, c_tol)
    assert_close(got, want, rtol=rtol, atol=atol, name=f"gemm {got.shape} k={k}")
    return got


def naive(a, b, c, *, alpha, beta, trans_a, trans_b):
    """_core._sgemm_naive (the plain triple loop, summing in double) on a copy of c."""
    out = c.copy()
    _core._sgemm_naive(a, b, out, alpha, beta, trans_a, trans_b)
    return out


def check_against_naive(a, b, c, *, alpha, beta, trans_a, trans_b):
    """ops.gemm (whatever strategy it takes) and _sgemm_naive against each other,
    and both against the float64 reference."""
    k = a.shape[0] if trans_a else a.shape[1]
    c64 = c.astype(np.float64)
    want = ref.gemm(*as64(a, b), c64.copy(), alpha=alpha, beta=beta, trans_a=trans_a,
                    trans_b=trans_b)
    plain = naive(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    got = ops.gemm(a, b, c.copy(), alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    taken = path(*got.shape, k, trans_a, trans_b)
    name = f"gemm {got.shape} k={k} trans={trans_a:d}{trans_b:d} ({taken})"
    # The plain loop rounds only its double sum, alpha * sum and + beta * c.
    product = want - beta * c64
    scale = (float(np.max(np.abs(product))) if product.size else 0.0) + \
        abs(beta) * (float(np.max(np.abs(c64))) if c64.size else 0.0)
    assert_close(plain, want, rtol=1e-6, atol=1e-6 * scale + 1e-30, name=f"naive {name}")
    rtol, atol = tolerance(a, b, k, alpha, beta, c)
    assert_close(got, want, rtol=rtol, atol=atol, name=name)
    assert_close(got, plain, rtol=rtol, atol=atol, name=f"{name} against naive")


def can_use(isa):
    """Whether this CPU and build run SIMD path isa."""
    return isa in fastcnn.build_info()["isas_supported"]
