"""GEMM: fastcnn.ops.gemm (native float32) against fastcnn.reference.gemm (float64)
and against the plain triple loop _core._sgemm_naive.

Every size in a small range (so every remainder modulo each path's MR x NR
register tile is hit), the network's shapes, sizes that cross each path's
MC/KC/NC cache blocks and each limit of the choice of strategy, all four
transpose combinations, alpha/beta, NaN/Inf, strided inputs, bad input; on
each SIMD path and with 1 and 2 threads. Which strategy a shape takes is asked
from the code (_core._gemm_path, the function gemm itself calls), never
mirrored here.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

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


def test_shape_lists_hit_their_paths(isa):
    """Each shape list takes the strategy it is meant for, as the code chooses."""
    if BLOCKING[isa] == BLOCKING["generic"]:  # the table the lists are built around
        assert all(path(*s) == "whole_a" for s in WHOLE_A_SHAPES)
        assert all(path(*s) == "blocked" for s in BLOCKED_SHAPES)
        assert not any(path(*s) == "blocked" for s in NETWORK_SHAPES)
    if isa == "avx512":
        paths = [path(*s) for s in AVX512_BLOCK_SHAPES]
        assert "blocked" in paths and "whole_a" in paths
    tiled = WHOLE_A_SHAPES + BLOCKED_SHAPES + NETWORK_SHAPES
    assert not any(path(*s) == "dot" for s in tiled)
    for ta, tb in TRANSPOSES:
        assert sum(path(*s, ta, tb) == "dot" for s in DOT_SHAPES) >= 7
    assert sum(path(*s, False, True) == "dot" for s in WGRAD_SHAPES) == 4
    assert sum(path(*s, False, False) == "dot" for s in WGRAD_SHAPES) == 4
    for ta, tb in TRANSPOSES:
        assert sum(path(*s, ta, tb).startswith("stream") for s in STREAM_SHAPES) >= 5
    assert {path(*s, ta, tb) for s in STREAM_SHAPES for ta, tb in TRANSPOSES} >= {
        "stream_nn", "stream_nt", "stream_tn"}
    assert not any(path(*s).startswith("stream") for s in WHOLE_A_SHAPES + BLOCKED_SHAPES)


def edge_shapes():
    """(m, n, k, trans_a, trans_b, takes) at and just past each limit of the
    choice of strategy: takes is the strategy the shape is built for, or
    "not X" for the neighbour that just misses X."""
    max_m, min_n = LIMITS["stream_max_m"], LIMITS["stream_min_n"]
    min_dot_k, max_k = LIMITS["stream_min_dot_k"], LIMITS["stream_max_k"]
    kb, max_mn = LIMITS["dot_kb"], LIMITS["dot_max_mn"]
    return [
        (max_m, min_n, 7, False, False, "stream_nn"),
        (max_m + 1, min_n, 7, False, False, "not stream_nn"),
        (max_m, min_n - 1, 7, False, False, "not stream_nn"),
        (max_m, min_n, min_dot_k, False, True, "stream_nt"),
        (max_m, min_n, min_dot_k - 1, False, True, "not stream_nt"),
        (min_n, min_n, max_k, True, False, "stream_tn"),
        (min_n, min_n, max_k + 1, True, False, "not stream_tn"),
        (min_n - 1, min_n, max_k, True, False, "not stream_tn"),
        (1, max_mn, kb, False, True, "dot"),            # M*N at the limit, one K block
        (1, max_mn + 1, kb, False, True, "not dot"),
        (1, max_mn, kb - 1, False, True, "not dot"),
        (3, 5, kb + 9, True, False, "dot"),
    ]


@pytest.mark.parametrize("m, n, k, trans_a, trans_b, takes", edge_shapes(),
                         ids=lambda v: str(v).replace(" ", ""))
def test_path_edges(isa, threads, m, n, k, trans_a, trans_b, takes):
    """Either side of each limit takes the strategy it should, and computes
    what the oracle computes."""
    got_path = path(m, n, k, trans_a, trans_b)
    if takes.startswith("not "):
        assert got_path != takes[4:]
    else:
        assert got_path == takes
    rng = np.random.default_rng(m * 7 + n * 3 + k)
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    c = rng.standard_normal((m, n)).astype(np.float32)
    check_against_naive(a, b, c, alpha=0.5, beta=-1.5, trans_a=trans_a, trans_b=trans_b)


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


# One or more shapes per strategy, on every block table; together with the
# transposes they take every path (test_oracle_shapes_take_every_path).
ORACLE_SHAPES = [(0, 5, 3), (4, 5, 0), (10, 100, 640), (10, 640, 40), (1000, 64, 10),
                 (20, 25, 5760), (7, 19, 5), (40, 640, 500), (600, 37, 257)]
ALL_PATHS = {"empty", "scale", "stream_nn", "stream_nt", "stream_tn", "dot", "whole_a",
             "blocked"}


def test_oracle_shapes_take_every_path(isa):
    assert {path(*s, ta, tb) for s in ORACLE_SHAPES for ta, tb in TRANSPOSES} == ALL_PATHS


@pytest.mark.parametrize("trans_a, trans_b", TRANSPOSES)
@pytest.mark.parametrize("shape", ORACLE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_every_path_against_naive(isa, threads, shape, trans_a, trans_b):
    rng = np.random.default_rng(sum(shape) + 2 * trans_a + trans_b)
    a, b = operands(rng, *shape, trans_a, trans_b)
    c = rng.standard_normal(shape[:2]).astype(np.float32)
    check_against_naive(a, b, c, alpha=0.5, beta=-1.5, trans_a=trans_a, trans_b=trans_b)
    c[:, -1:] = np.nan  # beta == 0: C is write-only on every path and in the plain loop
    check_against_naive(a, b, c, alpha=2.0, beta=0.0, trans_a=trans_a, trans_b=trans_b)


def test_gemm_path_arguments():
    assert path(0, 5, 3) == "empty" and path(4, 0, 3) == "empty" and path(4, 5, 0) == "scale"
    for s in NETWORK_SHAPES + DOT_SHAPES + STREAM_SHAPES:
        for ta, tb in TRANSPOSES:
            assert _core._gemm_path(*s, ta, tb, serial=True) == path(*s, ta, tb)
    for bad in [(-1, 5, 3), (4, -5, 3), (4, 5, -1), (_core.MAX_SIZE + 1, 1, 1)]:
        with pytest.raises(ValueError):
            path(*bad)
    with pytest.raises(ValueError):
        path(_core.MAX_SIZE, _core.MAX_SIZE, _core.MAX_SIZE)  # M*N*K overflows


# ------------------------------------------------------------ sweeps ----


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (False, True), (True, False),
                                              (True, True)])
def test_every_small_size(isa, trans_a, trans_b):
    """M 1..14, N 1..34, K 1..18: every remainder mod MR and NR of the path
    (6 x 16: twice over; 12 x 32: once, plus a full tile and more)."""
    rng = np.random.default_rng(1)
    t = BLOCKING[isa]
    m_max, n_max, k_max = max(14, t["mr"] + 2), max(34, t["nr"] + 2), 18
    a_full = rng.standard_normal((m_max, k_max)).astype(np.float32)  # (M, K)
    b_full = rng.standard_normal((k_max, n_max)).astype(np.float32)  # (K, N)
    for k in range(1, k_max + 1):
        # One float64 product per k; every (m, n) result is a corner of it.
        want = a_full[:, :k].astype(np.float64) @ b_full[:k].astype(np.float64)
        got = np.full((m_max, n_max, m_max, n_max), np.nan)  # [m-1, n-1] -> (m, n) result
        for m in range(1, m_max + 1):
            a = a_full[:m, :k]
            a = np.ascontiguousarray(a.T) if trans_a else a
            for n in range(1, n_max + 1):
                b = b_full[:k, :n]
                b = np.ascontiguousarray(b.T) if trans_b else b
                got[m - 1, n - 1, :m, :n] = ops.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
        for m in range(1, m_max + 1):
            for n in range(1, n_max + 1):
                assert_close(got[m - 1, n - 1, :m, :n], want[:m, :n], rtol=1e-5, atol=1e-5,
                             name=f"gemm m={m} n={n} k={k}")


@pytest.mark.parametrize("shape",
                         NETWORK_SHAPES + WHOLE_A_SHAPES + BLOCKED_SHAPES + AVX512_BLOCK_SHAPES,
                         ids=lambda s: "x".join(map(str, s)))
def test_network_and_block_shapes(isa, threads, shape):
    rng = np.random.default_rng(2)
    m, n, k = shape
    a, b = operands(rng, m, n, k, False, False)
    check(a, b)


@pytest.mark.parametrize("trans_a, trans_b", [(False, True), (True, False), (True, True)])
@pytest.mark.parametrize("shape", [(40, 500, 640), (145, 4100, 30), (150, 300, 300),
                                   (301, 37, 257), (MC + 6, 600, KC)],
                         ids=lambda s: "x".join(map(str, s)))
def test_transposes_large(isa, threads, shape, trans_a, trans_b):
    rng = np.random.default_rng(3)
    a, b = operands(rng, *shape, trans_a, trans_b)
    check(a, b, trans_a=trans_a, trans_b=trans_b)


@pytest.mark.parametrize("shape", [(1024, 64, 64), (64, 1024, 64), (301, 37, 257),
                                   (20, 5760, 25), (MC + 7, NC + 21, KC + 5),
                                   (MC + 6, 2 * NC + 40, KC), (40, 640, 500)],
                         ids=lambda s: "x".join(map(str, s)))
def test_threads_agree_bitwise(isa, shape):
    """Threads cut C on tile boundaries, so 1 and 2 threads give the same bits."""
    rng = np.random.default_rng(4)
    a, b = operands(rng, *shape, False, False)
    c0 = rng.standard_normal(shape[:2]).astype(np.float32)
    np.testing.assert_array_equal(*_at_1_and_2_threads(a, b, c0, alpha=0.5, beta=-1.5))


def _at_1_and_2_threads(a, b, c0, **kwargs):
    """ops.gemm(a, b, copy of c0, **kwargs) with 1 and then 2 threads."""
    before = fastcnn.get_num_threads()
    try:
        results = []
        for t in (1, 2):
            fastcnn.set_num_threads(t)
            results.append(ops.gemm(a, b, c0.copy(), **kwargs))
    finally:
        fastcnn.set_num_threads(before)
    return results


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (False, True), (True, False),
                                              (True, True)])
@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (-0.03, 1.0), (2.0, -0.5)])
@pytest.mark.parametrize("shape", STREAM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_stream_shapes(isa, threads, shape, trans_a, trans_b, alpha, beta):
    rng = np.random.default_rng(sum(shape))
    a, b = operands(rng, *shape, trans_a, trans_b)
    c = rng.standard_normal(shape[:2]).astype(np.float32)
    if beta == 0.0:
        c[0, -1] = np.nan  # write-only C: must not leak
    check(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize("shape", [(10, 1000, 640), (7, 1000, 10), (1000, 1000, 10),
                                   (513, 33, 3)], ids=lambda s: "x".join(map(str, s)))
def test_stream_threads_agree_bitwise(isa, shape, trans_a, trans_b):
    """Each C value of a streaming path is computed by one thread in a fixed order."""
    rng = np.random.default_rng(5)
    a, b = operands(rng, *shape, trans_a, trans_b)
    c0 = rng.standard_normal(shape[:2]).astype(np.float32)
    np.testing.assert_array_equal(*_at_1_and_2_threads(a, b, c0, alpha=-0.25, beta=1.0,
                                                       trans_a=trans_a, trans_b=trans_b))


def test_paths_agree(isa):
    """Every path's micro-kernels compute what the portable ones do (to rounding)."""
    rng = np.random.default_rng(5)
    a, b = operands(rng, 47, 95, 300, False, False)
    v = ops.gemm(a, b)
    before = _core.simd_level()
    try:
        _core._set_isa("generic")
        g = ops.gemm(a, b)
    finally:
        _core._set_isa(before)
    rtol, atol = tolerance(a, b, 300)
    assert_close(v, g.astype(np.float64), rtol=rtol, atol=atol)


def _can_use(path):
    return path in fastcnn.build_info()["isas_supported"]


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (False, True), (True, False),
                                              (True, True)])
@pytest.mark.parametrize("shape", WGRAD_SHAPES + DOT_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_weight_gradient_and_dot_shapes(isa, threads, shape, trans_a, trans_b):
    """Small M x N, long K, every transpose (dW of a conv is the NT case)."""
    if trans_a and shape in WGRAD_SHAPES[:2] and (trans_b or threads == 2):
        pytest.skip("covered by the other variants; keeps the file fast")
    rng = np.random.default_rng(11)
    a, b = operands(rng, *shape, trans_a, trans_b)
    check(a, b, trans_a=trans_a, trans_b=trans_b)


@pytest.mark.parametrize("shape", [(20, 25, 5760), (7, 5, 40001), (31, 17, 4099),
                                   (64, 288, 1210)],
                         ids=lambda s: "x".join(map(str, s)))
def test_threads_agree_split_k(isa, shape):
    """The dot path splits K into ranges fixed by K alone (summed in a fixed
    order) and shares them out among the threads: 1 and 2 threads give the
    same bits, on every call; and the float64 product to rounding."""
    rng = np.random.default_rng(12)
    a, b = operands(rng, *shape, False, True)
    c0 = rng.standard_normal(shape[:2]).astype(np.float32)
    before = fastcnn.get_num_threads()
    try:
        results = []
        for t in (1, 2, 1, 2):
            fastcnn.set_num_threads(t)
            results.append(ops.gemm(a, b, c0.copy(), alpha=0.5, beta=-1.5, trans_b=True))
    finally:
        fastcnn.set_num_threads(before)
    for again in results[1:]:
        np.testing.assert_array_equal(again, results[0])
    want = 0.5 * ref.gemm(*as64(a, b), trans_b=True) - 1.5 * c0.astype(np.float64)
    rtol, atol = tolerance(a, b, shape[2], 0.5, -1.5, c0)
    assert_close(results[0], want, rtol=rtol, atol=atol)


# ------------------------------------------------------- alpha, beta ----


@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (2.5, 0.0), (-0.5, 1.0), (1.0, -2.0),
                                         (0.0, 0.75), (0.3, 1.7)])
@pytest.mark.parametrize("shape", [(7, 19, 5), (40, 500, 640), (MC + 1, 70, KC + 9), (7, 5, 4001),
                                   (301, 37, 257)],
                         ids=lambda s: "x".join(map(str, s)))
def test_alpha_beta(isa, threads, shape, alpha, beta):
    rng = np.random.default_rng(6)
    a, b = operands(rng, *shape, False, False)
    c = rng.standard_normal(shape[:2]).astype(np.float32)
    check(a, b, c, alpha=alpha, beta=beta)


@pytest.mark.parametrize("shape", [(5, 7, 3), (13, 35, 300), (40, 640, 500), (301, 37, 257),
                                   (7, 5, 40001)],
                         ids=lambda s: "x".join(map(str, s)))
def test_beta_zero_ignores_nan_in_c(isa, threads, shape):
    rng = np.random.default_rng(7)
    a, b = operands(rng, *shape, False, False)
    c = np.full(shape[:2], np.nan, dtype=np.float32)
    got = check(a, b, c, alpha=1.5, beta=0.0)
    assert np.isfinite(got).all()


def test_without_c_beta_is_ignored():
    rng = np.random.default_rng(8)
    a, b = operands(rng, 4, 5, 6, False, False)
    for backend in (ref, ops):
        np.testing.assert_allclose(backend.gemm(a, b, beta=3.0), a.astype(np.float64) @ b,
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m, n, k", [(0, 5, 3), (4, 0, 3), (0, 0, 0), (4, 5, 0), (1, 1, 0)])
def test_zero_sizes(isa, m, n, k):
    rng = np.random.default_rng(9)
    a, b = operands(rng, m, n, k, False, False)
    for backend in (ref, ops):
        out = backend.gemm(a, b)
        assert out.shape == (m, n)
        np.testing.assert_array_equal(out, np.zeros((m, n)))
    c = rng.standard_normal((m, n)).astype(np.float32)
    want = ref.gemm(*as64(a, b), c.astype(np.float64), alpha=2.0, beta=-3.0)
    got = ops.gemm(a, b, c, alpha=2.0, beta=-3.0)
    assert_close(got, want, rtol=1e-6, atol=0)
    if k == 0 and m and n:  # K == 0: c = beta * c, write-only when beta == 0
        c = np.full((m, n), np.nan, dtype=np.float32)
        np.testing.assert_array_equal(ops.gemm(a, b, c, beta=0.0), np.zeros((m, n)))


# ------------------------------------------------------------ NaN/Inf ----


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, True)])
@pytest.mark.parametrize("shape", [(7, 19, 5), (23, 45, 300), (40, 640, 500), (301, 37, 257),
                                   (9, 11, 1003), (20, 25, 2048)],
                         ids=lambda s: "x".join(map(str, s)))
def test_nan_inf_propagate(isa, threads, shape, trans_a, trans_b):
    rng = np.random.default_rng(10)
    m, n, k = shape
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    op_a = a.T if trans_a else a  # views: writing them writes a, b
    op_b = b.T if trans_b else b
    op_a[m // 2, k - 1] = np.inf   # row m//2 of C becomes +-Inf
    op_a[m - 1, 0] = np.nan        # row m-1 becomes NaN
    op_b[k // 2, n - 1] = -np.inf  # column n-1 becomes +-Inf (NaN where it meets row m-1)
    op_b[0, n // 2] = np.nan       # column n//2 becomes NaN
    # The padded rows/columns of the packed panels are zero; 0 * Inf there
    # must not leak into C (it would show up as an extra NaN).
    got = check(a, b, trans_a=trans_a, trans_b=trans_b)
    assert np.isnan(got[m - 1]).all() and np.isnan(got[:, n // 2]).all()
    if path(m, n, k, trans_a, trans_b) == "dot":  # NT too: B is read in place there
        a, b = operands(rng, m, n, k, False, True)
        a[m // 2, k - 1], b[n - 1, k // 2], a[m - 1, 0] = np.inf, -np.inf, np.nan
        got = check(a, b, trans_b=True)
        assert np.isnan(got[m - 1]).all() and np.isinf(got[m // 2, : n - 1]).all()


# ----------------------------------------------------------- layouts ----


def test_strided_inputs_are_converted(isa, threads):
    rng = np.random.default_rng(11)
    big_a = rng.standard_normal((60, 90))
    big_b = rng.standard_normal((80, 70)).astype(np.float32)
    a = big_a[::2, ::3]   # (30, 30) float64, strided
    b = big_b[1::2, ::2]  # (40, 35) float32, strided
    a = a[:, :20]
    b = b[:20]
    got = ops.gemm(a, b)
    assert_close(got, a @ b.astype(np.float64), rtol=1e-5, atol=1e-4)
    got_t = ops.gemm(a.T, b, trans_a=True)  # a.T is Fortran-ordered
    assert_close(got_t, a @ b.astype(np.float64), rtol=1e-5, atol=1e-4)


def test_c_aliasing_an_input(isa):
    rng = np.random.default_rng(12)
    a = rng.standard_normal((20, 20)).astype(np.float32)
    b = rng.standard_normal((20, 20)).astype(np.float32)
    want = ref.gemm(*as64(a, b), a.astype(np.float64), beta=1.0)
    got = ops.gemm(a, b, a, beta=1.0)  # c is a: read a before writing it
    assert got is a
    assert_close(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("bad_c", ["float64", "fortran", "strided"])
def test_native_refuses_unusable_c(bad_c):
    a = np.ones((4, 3), np.float32)
    b = np.ones((3, 5), np.float32)
    c = {"float64": np.zeros((4, 5)),
         "fortran": np.zeros((4, 5), np.float32, order="F"),
         "strided": np.zeros((4, 10), np.float32)[:, ::2]}[bad_c]
    with pytest.raises(TypeError):
        ops.gemm(a, b, c)
    ref.gemm(a, b, c)  # the reference writes any floating array
    np.testing.assert_allclose(c, 3.0)


def test_reference_is_dtype_generic():
    a = np.ones((2, 3), np.float32)
    b = np.ones((3, 4), np.float32)
    assert ref.gemm(a, b).dtype == np.float32
    assert ref.gemm(a.astype(np.float64), b.astype(np.float64)).dtype == np.float64


# -------------------------------------------------------- bad input ----

A = np.ones((4, 3), np.float32)
B = np.ones((3, 5), np.float32)


@pytest.mark.parametrize("backend", [ref, ops], ids=["reference", "ops"])
@pytest.mark.parametrize("args, kwargs, error", [
    ((np.ones(3, np.float32), B), {}, ValueError),                     # a 1-D
    ((A, np.ones((1, 3, 5), np.float32)), {}, ValueError),             # b 3-D
    ((np.ones((4, 3), np.int64), B), {}, TypeError),                   # int a
    ((A, np.ones((3, 5), bool)), {}, TypeError),                       # bool b
    ((A, np.ones((4, 5), np.float32)), {}, ValueError),                # inner mismatch
    ((A, B), {"trans_a": True}, ValueError),                           # mismatch after op()
    ((A, B, np.zeros((5, 4), np.float32)), {}, ValueError),            # c wrong shape
    ((A, B, [[0.0] * 5] * 4), {}, TypeError),                          # c a list
    ((A, B, np.zeros((4, 5), np.int32)), {}, TypeError),               # c int
    ((A, B), {"alpha": "2"}, TypeError),
    ((A, B), {"beta": None}, TypeError),
    ((A, B), {"alpha": float("nan")}, ValueError),
    (("ab", B), {}, TypeError),
])
def test_bad_input(backend, args, kwargs, error):
    with pytest.raises(error):
        backend.gemm(*args, **kwargs)


@pytest.mark.parametrize("backend", [ref, ops], ids=["reference", "ops"])
def test_read_only_c(backend):
    c = np.zeros((4, 5), np.float32)
    c.flags.writeable = False
    with pytest.raises(ValueError):
        backend.gemm(A, B, c)


def test_same_message_on_both_backends():
    msgs = []
    for backend in (ref, ops):
        with pytest.raises(ValueError) as e:
            backend.gemm(A, np.ones((4, 5), np.float32))
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]


@pytest.mark.parametrize("fn", ["gemm", "_sgemm_naive"])
@pytest.mark.parametrize("a, b, c, trans_a, error", [
    (A, np.ones((4, 5), np.float32), np.zeros((4, 5), np.float32), False, ValueError),
    (A, B, np.zeros((4, 6), np.float32), False, ValueError),
    (A, B, np.zeros((5, 4), np.float32), False, ValueError),
    (A, B, np.zeros((3, 5), np.float32), True, ValueError),
    (A, B, np.zeros((4, 5)), False, TypeError),
    (A, B, np.zeros((20,), np.float32), False, ValueError),
    (np.ones((4, 3)), B, np.zeros((4, 5), np.float32), False, TypeError),
    (np.ones((6, 6), np.float32)[:4, :3], B, np.zeros((4, 5), np.float32), False, TypeError),
    (A, B, np.zeros((4, 10), np.float32)[:, ::2], False, TypeError),
    (A.tolist(), B, np.zeros((4, 5), np.float32), False, TypeError),
    (A, B, None, False, TypeError),
])
def test_core_direct_bad_shapes_raise(fn, a, b, c, trans_a, error):
    with pytest.raises(error):
        getattr(_core, fn)(a, b, c, 1.0, 0.0, trans_a, False)


@pytest.mark.parametrize("fn", ["gemm", "_sgemm_naive"])
def test_core_direct_read_only_c(fn):
    c = np.zeros((4, 5), np.float32)
    c.flags.writeable = False
    with pytest.raises(ValueError):
        getattr(_core, fn)(A, B, c, 1.0, 0.0, False, False)


# ----------------------------------------------------------- dispatch ----


def _cpu_flags():
    """The CPU's feature flags as Linux reports them (an oracle independent of
    fastcnn's CPUID probe); None elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def test_supported_paths_match_the_cpu():
    flags = _cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo")
    info = fastcnn.build_info()
    assert info["cpu_avx2_fma"] == ({"avx2", "fma"} <= flags)
    assert info["cpu_avx512"] == ({"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags)
    for path, have in [("avx2", info["cpu_avx2_fma"]), ("avx512", info["cpu_avx512"])]:
        assert (path in info["isas_supported"]) == (have and path in info["isas_compiled"])


def test_set_isa():
    before = _core.simd_level()
    try:
        _core._set_isa("generic")
        assert _core.simd_level() == "generic"
        with pytest.raises(ValueError, match="unknown SIMD path 'avx1024'"):
            _core._set_isa("avx1024")
        assert _core.simd_level() == "generic"
        for path in ("avx2", "avx512"):
            if _can_use(path):
                fastcnn.set_isa(path)
                assert _core.simd_level() == path
            else:  # the error names what is missing, and nothing changes
                now = _core.simd_level()
                with pytest.raises(ValueError, match="lacks|no '"):
                    fastcnn.set_isa(path)
                assert _core.simd_level() == now
    finally:
        _core._set_isa(before)


@pytest.mark.parametrize("env", ["generic", "avx2", "avx512", "auto", "", "bogus"])
def test_fastcnn_isa_environment(env):
    """Unset, empty or auto: the best path; a path's name: that path, or an
    ImportError saying why it cannot run; anything else: an ImportError."""
    best = fastcnn.build_info()["isas_supported"][-1]
    src = os.path.dirname(os.path.dirname(fastcnn.__file__))
    code = ("import numpy as np, fastcnn; from fastcnn import ops;"
            "c = ops.gemm(np.ones((7, 9), np.float32), np.ones((9, 17), np.float32));"
            "assert (c == 9).all(); print(fastcnn.build_info()['simd'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "FASTCNN_ISA": env,
                              "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")})
    if env in ("", "auto"):
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == best
    elif _can_use(env):
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == env
    else:
        assert out.returncode != 0
        assert "ImportError" in out.stderr and f"FASTCNN_ISA={env}" in out.stderr
        assert ("unknown SIMD path" if env == "bogus" else "lacks") in out.stderr


def test_runtime_grants_fewer_threads():
    """With OMP_THREAD_LIMIT=1 a team of 2 comes up with 1 thread: the work of
    the missing thread must still be done (every path)."""
    src = os.path.dirname(os.path.dirname(fastcnn.__file__))
    code = ("import numpy as np, fastcnn; from fastcnn import ops\n"
            "fastcnn.set_num_threads(2)\n"
            "rng = np.random.default_rng(0)\n"
            "for m, n, k in [(40, 640, 500), (20, 5760, 25), (301, 37, 257), (1024, 64, 64),\n"
            "                (20, 25, 5760)]:\n"
            "    a = rng.standard_normal((m, k)).astype(np.float32)\n"
            "    b = rng.standard_normal((k, n)).astype(np.float32)\n"
            "    want = a.astype(np.float64) @ b\n"
            "    assert np.allclose(ops.gemm(a, b), want, rtol=1e-4, atol=1e-3), (m, n, k)\n")
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={**os.environ, "OMP_THREAD_LIMIT": "1",
                        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")})
