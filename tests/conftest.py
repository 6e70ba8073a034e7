"""Shared fixtures: thread counts and SIMD paths to run native ops under."""
from __future__ import annotations

import pytest

import fastcnn
from fastcnn import _core


@pytest.fixture(params=[1, 2], ids=lambda n: f"threads{n}")
def threads(request):
    """Run the test with 1 and with 2 OpenMP threads; restore afterwards."""
    before = fastcnn.get_num_threads()
    fastcnn.set_num_threads(request.param)
    yield request.param
    fastcnn.set_num_threads(before)


def _isas():
    out = ["generic"]
    if fastcnn.build_info()["cpu_avx2_fma"] and fastcnn.build_info()["avx2_compiled"]:
        out.append("avx2")
    return out


@pytest.fixture(params=_isas())
def isa(request):
    """Run the test on every SIMD path this CPU and build offer; restore afterwards."""
    before = _core.simd_level()
    _core._set_isa(request.param)
    yield request.param
    _core._set_isa(before)
