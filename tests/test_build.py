"""The build as a user meets it: float behaviour, build_info, SIMD choice, calls from
several Python threads, both backends exposing the same ops with the same signatures
(the thread count: test_threads.py)."""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from helpers import run_python

import fastcnn
from fastcnn import ops, reference
from fastcnn.backend import ops_list

OPS = ops_list.OPS   # the ops interface, as the backend defines it


def _public(module):
    """Public names of a backend package, its submodules (conv, pool...) aside."""
    return {n for n in dir(module) if not n.startswith("_")
            and not isinstance(getattr(module, n), type(module))}


def test_both_backends_hold_exactly_the_same_names():
    """fastcnn.ops and fastcnn.reference are interchangeable: the same public names
    (the ops, nothing else: thread control lives in fastcnn.threads)."""
    assert _public(ops) == _public(reference) == set(OPS)


@pytest.mark.parametrize("name", OPS)
def test_both_backends_have_the_op_with_the_same_signature(name):
    assert callable(getattr(reference, name)), f"reference.{name} missing"
    assert callable(getattr(ops, name)), f"ops.{name} missing"
    assert inspect.signature(getattr(ops, name)) == inspect.signature(getattr(reference, name))


def test_subnormals_survive_import_and_native_work():
    # A library built with -ffast-math on gcc would set flush-to-zero for the
    # whole process when loaded; subnormal float32 and float64 must still exist.
    tiny32 = np.finfo(np.float32).tiny
    tiny64 = np.finfo(np.float64).tiny
    a = np.ones((8, 8), np.float32)
    ops.gemm(a, a)  # run a kernel too: nothing may change the FP mode behind our back
    assert np.float32(tiny32) / np.float32(2) > 0
    assert np.float64(tiny64) / 2.0 > 0
    sub = np.full(16, tiny32 / 4, np.float32)
    assert np.all(sub * np.float32(1.0) > 0)


def test_build_info_reports_what_runs():
    info = fastcnn.build_info()
    assert info["simd"] in info["isas_supported"]
    assert info["isas_supported"][0] == "generic"
    assert set(info["isas_supported"]) <= set(info["isas_compiled"]) <= {"generic", "avx2",
                                                                           "avx512"}
    assert "openmp" not in info            # no OpenMP runtime: the threads are fastcnn's own
    assert "worker pool" in info["threads"]
    assert info["num_threads"] == fastcnn.get_num_threads()
    for key in ("compiler", "cxx_flags", "version"):
        assert isinstance(info[key], str)
    for bad in ("-ffast-math", "-Ofast", "-march=native"):
        assert bad not in info["cxx_flags"]
    if info["simd"] == "avx2":
        assert info["cpu_avx2_fma"] and info["avx2_compiled"]
    if info["simd"] == "avx512":
        assert info["cpu_avx512"] and info["avx512_compiled"]


def test_isa_environment_variable_forces_a_path():
    code = "import fastcnn, json; print(json.dumps(fastcnn.build_info()))"
    forced = json.loads(run_python(code, FASTCNN_ISA="generic"))
    assert forced["simd"] == "generic"
    default = json.loads(run_python(code))
    want = "avx2" if default["cpu_avx2_fma"] and default["avx2_compiled"] else "generic"
    if default["cpu_avx512"] and default["avx512_compiled"]:
        want = "avx512"
    assert default["simd"] == want
    # An unknown value is refused at import (a typo must not silently run,
    # or benchmark, another path), with a message naming the variable.
    full_env = {k: v for k, v in os.environ.items() if k != "FASTCNN_ISA"}
    out = subprocess.run([sys.executable, "-c", "import fastcnn"], capture_output=True,
                         text=True, timeout=120, env={**full_env, "FASTCNN_ISA": "no-such-isa"})
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "FASTCNN_ISA=no-such-isa" in out.stderr


def test_malloc_tuning_at_import_and_its_opt_outs():
    """glibc: fixed thresholds unless the user set their own or opted out."""
    import platform

    code = "import fastcnn; print(fastcnn.build_info()['malloc_tuned'])"
    glibc = platform.libc_ver()[0] == "glibc"
    if not any(os.environ.get(k) for k in ("FASTCNN_MALLOC_TUNING", "MALLOC_MMAP_THRESHOLD_",
                                            "MALLOC_TRIM_THRESHOLD_")):
        assert run_python(code) == str(glibc)
    assert run_python(code, FASTCNN_MALLOC_TUNING="0") == "False"
    assert run_python(code, MALLOC_TRIM_THRESHOLD_="1000000") == "False"


def test_native_ops_are_safe_from_several_python_threads():
    # The GIL is released during compute, so calls from several Python threads
    # really overlap; each must still get its own correct answer.
    rng = np.random.default_rng(7)
    jobs = [(rng.standard_normal((37, 53)).astype(np.float32),
             rng.standard_normal((53, 29)).astype(np.float32)) for _ in range(8)]
    results = [None] * len(jobs)

    def work(i):
        for _ in range(20):
            results[i] = ops.gemm(*jobs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (a, b), got in zip(jobs, results):
        np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_unpickled_and_byteswapped_arrays():
    # An unpickled float32 array carries an equal but distinct dtype object: it
    # must be accepted where the op writes into it. A big-endian float32 array
    # is not native float32: refused for writing, converted when only read.
    import pickle

    p = pickle.loads(pickle.dumps(np.ones(10, np.float32)))
    ops.sgd_update(p, np.ones(10, np.float32), lr=0.5)
    np.testing.assert_array_equal(p, np.full(10, 0.5, np.float32))
    c = pickle.loads(pickle.dumps(np.zeros((2, 2), np.float32)))
    ops.gemm(np.eye(2), np.eye(2), c)
    np.testing.assert_array_equal(c, np.eye(2))
    with pytest.raises(TypeError, match="param"):
        ops.sgd_update(np.ones(10, ">f4"), np.ones(10, np.float32), lr=0.5)
    np.testing.assert_array_equal(ops.relu(np.array([-1.0, 2.0], ">f4")), [0.0, 2.0])


_X = np.ones((1, 1, 4, 4), np.float32)
_W = np.ones((1, 1, 3, 3), np.float32)
ABSURD = [
    ("stride 2**70", lambda B: B.conv2d(_X, _W, None, 2**70, 0), ValueError, "stride"),
    ("padding 2**62", lambda B: B.conv2d(_X, _W, None, 1, 2**62), ValueError, "padding"),
    ("padding 2**39", lambda B: B.conv2d(_X, _W, None, 1, 2**39), ValueError, "too large"),
    ("output 2**21 x 2**21", lambda B: B.im2col(_X, 2**21, 1, 2**21 - 1), ValueError,
     "too large"),
    ("kernel 2**41", lambda B: B.im2col(_X, 2**41, 1, 0), ValueError, "kernel_size"),
    ("pool size 2**64", lambda B: B.maxpool2d(_X, 2**64), ValueError, "size"),
    ("x_shape 2**50", lambda B: B.col2im(np.ones((9, 4), np.float32), (2**50, 1, 4, 4), 3),
     ValueError, "x_shape"),
    # 16 TiB of output from two small (broadcast) inputs: numpy's MemoryError.
    ("gemm 2**42 outputs", lambda B: B.gemm(np.broadcast_to(np.float32(1), (2**20, 1)),
                                            np.broadcast_to(np.float32(1), (1, 2**22))),
     MemoryError, "allocate"),
]


@pytest.mark.parametrize("what,call,error,word", ABSURD, ids=[a[0] for a in ABSURD])
@pytest.mark.parametrize("backend", [reference, ops], ids=["reference", "ops"])
def test_absurd_sizes_are_refused_cleanly(backend, what, call, error, word):
    with pytest.raises(error, match=word):
        call(backend)


def test_core_stub_matches_the_module():
    # _core.pyi documents the private module; it must name every function the
    # module has, with the same argument names in the same order.
    import ast
    import re
    from pathlib import Path

    from fastcnn import _core

    # A class (InferencePlan) is its methods, "Class.method", self included.
    stub = Path(fastcnn.__file__).with_name("_core.pyi")
    tree = ast.parse(stub.read_text())

    def functions(body, prefix=""):
        out = {}
        for f in body:
            if isinstance(f, ast.FunctionDef):
                out[prefix + f.name] = [a.arg for a in f.args.args]
            elif isinstance(f, ast.ClassDef):
                out.update(functions(f.body, f.name + "."))
        return out

    def params(fn):
        first = fn.__doc__.split("\n")[0]
        return re.findall(r"(\w+):", first[first.index("(") + 1:first.rindex(")")])

    in_stub = functions(tree.body)
    in_module = {}
    for name in dir(_core):
        fn = getattr(_core, name)
        if name.startswith("__") or not callable(fn):
            continue
        if isinstance(fn, type):
            for m in dir(fn):
                method = getattr(fn, m)
                if (m == "__init__" or not m.startswith("_")) and callable(method):
                    in_module[f"{name}.{m}"] = params(method)
            continue
        in_module[name] = params(fn)
    assert in_stub == in_module


def test_conv_from_several_python_threads_and_changing_sizes():
    # Convolutions whose sizes grow and shrink from call to call, and Python
    # threads running convolutions at once (the GIL is released, so their
    # parallel loops and scratch buffers really overlap), must all still give
    # the reference's answer.
    rng = np.random.default_rng(3)
    shapes = [((2, 1, 9, 9), (3, 1, 3, 3)), ((7, 3, 30, 26), (5, 3, 5, 4)),
              ((1, 2, 6, 5), (2, 2, 2, 2)), ((9, 4, 17, 19), (6, 4, 3, 3))]
    jobs = []
    for xs, ws in shapes:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        b = rng.standard_normal(ws[0]).astype(np.float32)
        out = reference.conv2d(*(a.astype(np.float64) for a in (x, w, b)), 1, 1)
        dout = rng.standard_normal(out.shape).astype(np.float32)
        grads = reference.conv2d_backward(*(a.astype(np.float64) for a in (dout, x, w)), 1, 1)
        jobs.append(((x, w, b, dout), (out,) + grads))

    def check(job):
        (x, w, b, dout), want = job
        got = (ops.conv2d(x, w, b, 1, 1),) + ops.conv2d_backward(dout, x, w, 1, 1)
        for g, r in zip(got, want):
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-3)

    for job in jobs + jobs[::-1]:        # grow, shrink, grow again on one thread
        check(job)
    errors = []

    def work(i):
        try:
            for _ in range(5):
                check(jobs[(i + _) % len(jobs)])
        except AssertionError as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
