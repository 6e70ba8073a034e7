"""Fuzz of argument intake: every public op, both backends, random arguments.

Each example starts from a valid call (random small sizes) and then spoils
some arguments at random: wrong dtype (int, bool, complex), None, a list,
float16/float32/float64, non-contiguous or read-only arrays, zero-size or
wrong shapes, NaN/Inf values, and sizes/strides/paddings/hyper-parameters that
are zero, negative, huge (2**40 and beyond), floats, bools, strings or tuples
of the wrong length. The same arguments go to fastcnn.ops and to
fastcnn.reference (floating arrays as float64 copies), and then either

  * both succeed and every result (return values and arrays updated in place)
    matches within float32 tolerance, NaN/Inf in the same places; or
  * both raise the same exception type (TypeError, ValueError or MemoryError)
    with the same message;

never a crash. The one documented difference: an array updated in place
(gemm's c, optimizer param/state) that is not float32 C-contiguous is a
TypeError in the native backend only (README, "Ops").

Divergences this fuzz found are kept out of the random search and pinned down
as explicit cases at the bottom; all are fixed now and stay as regression tests.

The runner (Case, check) is tests/fuzz_intake_runner.py, the case of each op
tests/fuzz_intake_cases.py."""
from __future__ import annotations

import os

import numpy as np
import pytest
from fuzz_intake_cases import CASES
from fuzz_intake_runner import Case, check
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastcnn import reference


# FASTCNN_FUZZ_EXAMPLES=2000 for a longer hunt; the default keeps the file at a few seconds.
FUZZ = settings(max_examples=int(os.environ.get("FASTCNN_FUZZ_EXAMPLES", "20")),
                deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_every_public_op_is_fuzzed():
    assert set(reference.__all__) == set(CASES)


# The second positional argument of the *_update ops is grad, read-only; the
# others listed in a case's third element are updated in place.
@pytest.mark.parametrize("name", sorted(CASES))
@FUZZ
@given(data=st.data())
def test_fuzz(name, data):
    args, kwargs, inplace = CASES[name](Case(data))
    check(name, list(args), kwargs, inplace)


# ------------------------------------------ divergences the fuzz found --


# Fixed: ops.py passed np.ascontiguousarray(grad), which turns a 0-d grad 1-d,
# so the binding refused it while the reference succeeded.
@pytest.mark.parametrize("name", ["sgd_update", "adagrad_update", "rmsprop_update",
                                  "adam_update"])
def test_optimizer_0d_param(name):
    states = {"sgd_update": 1, "adagrad_update": 1, "rmsprop_update": 1, "adam_update": 2}[name]
    args = [np.full((), 0.5, np.float32), np.ones(())]
    args += [np.full((), 0.25, np.float32) for _ in range(states)]
    kw = {"lr": 0.1}
    if name == "adam_update":
        kw["step"] = 1
    check(name, args, kw, tuple([0] + list(range(2, 2 + states))))


# Fixed: the reference padded the whole image (np.pad) before sweeping it, so a
# valid call with a huge padding and an equally huge stride (a 3x3 output) ran
# out of memory there while native computed it. It now reads only what lies
# inside the image.
@pytest.mark.parametrize("name", ["im2col", "conv2d"])
@pytest.mark.parametrize("big", [2 ** 16, 2 ** 40])
def test_huge_padding_same_in_both_backends(name, big):
    x = np.ones((1, 1, 1, 1))
    args = [x, 1, big, big] if name == "im2col" else [x, np.ones((1, 1, 1, 1)), None, big, big]
    check(name, args)


# Fixed: _validate.real accepted any finite double while native casts it to
# float32 (1e39 became inf, alpha 1e-110 became 0, 1/keep_prob overflowed).
# Both backends now refuse hyper-parameters outside float32's normal range.
@pytest.mark.parametrize("name", ["gemm", "sgd_update", "rmsprop_update", "dropout"])
def test_hyperparameter_beyond_float32(name):
    if name == "rmsprop_update":
        check("rmsprop_update", [np.full(1, 0.7, np.float32), np.full(1, 0.4),
                                 np.full(1, np.inf, np.float32)],
              {"lr": 0.0, "alpha": 1e-110, "eps": 1e-2}, (0, 2))
    elif name == "gemm":
        check("gemm", [np.ones((1, 2)), np.ones((2, 1))], {"alpha": 1e39})
    elif name == "sgd_update":
        check("sgd_update", [np.ones(3, np.float32), np.ones(3)], {"lr": 1e39}, (0,))
    else:
        check("dropout", [np.array([0.0, 1.0, -1.0]), np.ones(3, bool), 1e-40])


# ------------------------------------------------ _core called directly --
# The bindings re-check everything, so even nonsense straight into _core must
# end in TypeError/ValueError or a result, never a crash or an out-of-bounds
# write (run this file under AddressSanitizer to see the latter).

_CORE_SKIP = {"set_num_threads", "get_num_threads", "simd_level", "_set_isa", "build_info",
              "_gemm_blocking", "_peak_fma"}
_CORE_INTS = [-1, 0, 1, 1, 2, 2, 3, 2 ** 40, 2 ** 40 + 1, 2 ** 62]


def _core_params(fn):
    """(name, kind) of each parameter, read from the pybind11 signature line."""
    import re

    sig = fn.__doc__.split("\n")[0]
    params = sig[sig.index("(") + 1:sig.rindex(") ->")]
    out = []
    for name, kind in re.findall(r"(\w+): ([\w.]+)", params):
        out.append((name, "int" if "Int" in kind else "float" if "Float" in kind else kind))
    return out


def _core_names():
    """The functions of _core (its class, InferencePlan, has its own fuzz in
    tests/test_inference_plan.py)."""
    from fastcnn import _core

    return sorted(n for n in dir(_core) if not n.startswith("__") and n not in _CORE_SKIP
                  and callable(getattr(_core, n)) and not isinstance(getattr(_core, n), type))


@pytest.mark.parametrize("name", _core_names())
@FUZZ
@given(data=st.data())
def test_fuzz_core_direct(name, data):
    from fastcnn import _core

    fn = getattr(_core, name)
    c = Case(data, spoil_rate=5)
    dims = [c.dim(0, 4) for _ in range(4)]  # a pool of sizes the arrays share
    args = []
    for pname, kind in _core_params(fn):
        if kind == "int":
            args.append(c.draw(st.sampled_from(_CORE_INTS)))
        elif kind == "float":
            args.append(c.draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0, float("nan")])))
        elif kind == "bool":
            args.append(c.draw(st.booleans()))
        else:
            ndim = c.draw(st.integers(0, 4))
            shape = [dims[c.draw(st.integers(0, 3))] for _ in range(ndim)]
            if pname == "labels":
                a = c.rng.integers(-1, 4, shape)
            elif pname == "mask":
                a = c.rng.uniform(size=shape) < 0.5
            else:
                a = c.array(shape, inplace=True)
            if c.draw(st.integers(0, 9)) == 0 and args and isinstance(args[-1], np.ndarray):
                a = args[-1]  # the same buffer twice
            args.append(a)
    try:
        fn(*args)
    except (TypeError, ValueError):
        pass
