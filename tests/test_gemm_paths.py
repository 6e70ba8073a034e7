"""GEMM: which strategy a shape takes (asked from the code: _core._gemm_path, the
function gemm itself calls, never mirrored here), each strategy at and past its
limits against the plain triple loop _core._sgemm_naive and the float64
reference, and sweeps over every small size (every remainder modulo each path's
MR x NR tile), the network's shapes, the cache blocks and split K; on each SIMD
path and with 1 and 2 threads."""
from __future__ import annotations

import numpy as np
import pytest

import fastcnn
from fastcnn import _core, ops
from fastcnn import reference as ref
from helpers import as64, assert_close
from gemm_cases import (AVX512_BLOCK_SHAPES, BLOCKED_SHAPES, BLOCKING, DOT_SHAPES, KC, LIMITS,
                        MC, NC, NETWORK_SHAPES, STREAM_SHAPES, TRANSPOSES, WGRAD_SHAPES,
                        WHOLE_A_SHAPES, check, check_against_naive, operands, path,
                        tolerance)


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
