"""GEMM: fastcnn.ops.gemm (native float32) against fastcnn.reference.gemm (float64):
alpha/beta, zero sizes, NaN/Inf, strided inputs and aliasing, bad input; on each
SIMD path and with 1 and 2 threads. The strategies and sweeps over sizes:
test_gemm_paths.py; shared shapes and checks: gemm_cases.py."""
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
from gemm_cases import KC, MC, can_use, check, operands, path


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
    for isa, have in [("avx2", info["cpu_avx2_fma"]), ("avx512", info["cpu_avx512"])]:
        assert (isa in info["isas_supported"]) == (have and isa in info["isas_compiled"])


def test_set_isa():
    before = _core.simd_level()
    try:
        _core._set_isa("generic")
        assert _core.simd_level() == "generic"
        with pytest.raises(ValueError, match="unknown SIMD path 'avx1024'"):
            _core._set_isa("avx1024")
        assert _core.simd_level() == "generic"
        for isa in ("avx2", "avx512"):
            if can_use(isa):
                fastcnn.set_isa(isa)
                assert _core.simd_level() == isa
            else:  # the error names what is missing, and nothing changes
                now = _core.simd_level()
                with pytest.raises(ValueError, match="lacks|no '"):
                    fastcnn.set_isa(isa)
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
    elif can_use(env):
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == env
    else:
        assert out.returncode != 0
        assert "ImportError" in out.stderr and f"FASTCNN_ISA={env}" in out.stderr
        assert ("unknown SIMD path" if env == "bogus" else "lacks") in out.stderr
