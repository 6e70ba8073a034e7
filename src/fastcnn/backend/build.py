"""What the native core was built with and which SIMD path it runs."""
from __future__ import annotations

from .. import _core


def build_info() -> dict:
    """How the native core was built and what it runs: SIMD path in use
    ("simd"), the paths this CPU, OS and build can run ("isas_supported", best
    last) and the build has ("isas_compiled"), whose threads run the ops
    ("threads": fastcnn's own pool, no OpenMP runtime) and how many
    ("num_threads"), compiler and flags, and how its idle worker threads wait
    ("thread_wait": see fastcnn.threads.busy_wait)."""
    info = dict(_core.build_info())
    info["thread_wait"] = ("fastcnn's own workers: ~20 us spin then sleep; ~2 ms spin "
                           "inside Sequential.fit (fastcnn.threads.busy_wait)")
    return info


def set_isa(name: str) -> None:
    """Use SIMD path `name` ("generic", "avx2" or "avx512") from now on, in this
    process. ValueError (changing nothing) if the name is unknown or the path
    cannot run here; the message names the CPU feature missing, or says that
    this build lacks the path. The environment variable FASTCNN_ISA does the
    same at import (and "auto" there means the best path). Results are
    bit-identical across thread counts on each path, not across paths."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    _core._set_isa(name)


def set_conv_algorithm(name: str) -> None:
    """How conv2d and the fused conv + max-pool compute their layers from now on,
    in this process: "auto" (the default: Winograd F(4x4, 3x3) for 3x3 stride-1
    layers with at least 16 input and output channels and enough output tiles,
    im2col + GEMM for the rest), "im2col" (every layer; exactly the results of
    fastcnn before Winograd) or "winograd" (every 3x3 stride-1 layer). Winograd
    results differ from im2col's in the last bits, within the bound of
    docs/performance.md (section Winograd). ValueError for another name. The
    environment variable FASTCNN_CONV does the same at import."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    _core._set_conv_algo(name)


def conv_algorithm() -> str:
    """The setting of set_conv_algorithm: "auto", "im2col" or "winograd"."""
    return _core._conv_algo()


__all__ = ["build_info", "set_isa", "set_conv_algorithm", "conv_algorithm"]
