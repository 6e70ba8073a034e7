"""GFLOP/s of fastcnn's sgemm against NumPy's matmul (OpenBLAS), float32.

For every shape (M x N x K: C (M, N) = op(A) (M, K) @ op(B) (K, N)) and thread
count (a shape may end in ":nt", ":tn" or ":tt": B and/or A stored transposed,
numpy then computes a @ b.T etc. on the same transposed views),
these contenders, each first checked against a float64 product:
  numpy           np.matmul(a, b, out=c), OpenBLAS threads set with threadpoolctl
  fastcnn avx512  fastcnn.ops.gemm(a, b, c) on the AVX-512 path (12 x 32 micro-kernel)
  fastcnn avx2    the same forced onto the AVX2 + FMA path (6 x 16)
  fastcnn generic the same forced onto the portable micro-kernel
(every path this CPU runs, or those given with --isas). Ratios are against
numpy (x1.00 = as fast as OpenBLAS; higher is faster); the summary gives each
path's ratio to numpy and, with bench_peak.py's figure if --peak is given, its
share of the machine's FMA peak.

    python bench/bench_gemm.py                 # everything (about 4 minutes)
    python bench/bench_gemm.py --threads 1 --shapes 1024x1024x1024 --repeats 5
    python bench/bench_gemm.py --isas avx512 avx2 --shapes 20x25x36864:nt 20x25x36864

Needs threadpoolctl (pip install threadpoolctl, or the "bench" extra).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from threadpoolctl import ThreadpoolController

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastcnn  # noqa: E402
from fastcnn import _core, ops  # noqa: E402
from _harness import Harness  # noqa: E402

SQUARE = ["1024x1024x1024", "2048x2048x2048"]
NETWORK = ["20x5760x25", "40x640x500", "500x640x40", "40x500x640", "10x100x640",
           "64x1000x1000"]
# Weight gradients of the network's convolutions: dW (K_out, C*KH*KW) =
# dout (K_out, N*OH*OW) @ cols.T -- small M x N, long K -- at batch 64 and 10,
# as NT (how conv2d_backward calls it) and NN.
WGRAD_NT = ["20x25x36864:nt", "32x9x36864:nt", "40x500x4096:nt",
            "20x25x5760:nt", "32x9x6760:nt", "40x500x640:nt", "64x288x1210:nt"]
WGRAD = WGRAD_NT + [s.split(":")[0] for s in WGRAD_NT]
# Targets (issue 11): the best path / numpy at these shapes, for every thread
# count: 1024^3 >= 0.95, the nets' GEMM shapes >= 1.1.
TARGETS = {"1024x1024x1024": 0.95, **{s: 1.1 for s in NETWORK},
           **{s: 1.0 for s in WGRAD}}


def parse_shape(text):
    """'MxNxK' or 'MxNxK:nt' (also :tn, :tt) -> (m, n, k, trans_a, trans_b)."""
    dims, _, trans = text.lower().partition(":")
    m, n, k = (int(s) for s in dims.split("x"))
    if trans not in ("", "nn", "nt", "tn", "tt"):
        raise SystemExit(f"bad transpose suffix in {text!r}: use :nt, :tn or :tt")
    trans = trans or "nn"
    return m, n, k, trans[0] == "t", trans[1] == "t"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", nargs="+", default=SQUARE + NETWORK + WGRAD,
                   metavar="MxNxK[:nt]")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=7, help="interleaved samples per contender")
    p.add_argument("--sample", type=float, default=0.1, help="seconds per sample")
    p.add_argument("--isas", nargs="+", metavar="PATH",
                   help="fastcnn SIMD paths to time (default: every path this CPU runs)")
    p.add_argument("--no-generic", action="store_true", help="skip the portable path")
    args = p.parse_args(argv)

    harness = Harness("gemm", argv=[os.path.basename(sys.executable)] + sys.argv,
                      repeats=args.repeats, sample_s=args.sample)
    blas = ThreadpoolController()
    supported = fastcnn.build_info()["isas_supported"]  # best last
    isas = args.isas or supported[::-1]
    for isa in isas:
        if isa not in supported:
            raise SystemExit(f"--isas: '{isa}' is not a path this CPU and build run "
                             f"({', '.join(supported)})")
    if args.no_generic and len(isas) > 1:
        isas = [isa for isa in isas if isa != "generic"]
    print(f"fastcnn paths timed: {', '.join(isas)}\n")
    rng = np.random.default_rng(0)
    ratios = {}  # (shape, threads, isa) -> numpy time / fastcnn time

    for threads in args.threads:
        for shape in args.shapes:
            m, n, k, ta, tb = parse_shape(shape)
            a_st = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)  # A stored
            b_st = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)  # B stored
            a = a_st.T if ta else a_st  # (M, K) view
            b = b_st.T if tb else b_st  # (K, N) view
            c = np.empty((m, n), np.float32)  # (M, N)
            want = a.astype(np.float64) @ b.astype(np.float64)
            atol = 1e-5 * np.sqrt(k) * np.abs(a).max() * np.abs(b).max()
            case = harness.case(f"{shape} threads={threads}", work=2.0 * m * n * k,
                                reference=want, rtol=1e-4, atol=atol,
                                params={"shape": shape, "threads": threads})

            def numpy_setup(t=threads):
                blas.limit(limits=t, user_api="blas")

            def numpy_run():
                return np.matmul(a, b, out=c)

            case.add(f"numpy t={threads}", numpy_run, numpy_setup)
            for isa in isas:
                def ours_setup(t=threads, isa=isa):
                    fastcnn.set_num_threads(t)
                    _core._set_isa(isa)

                def ours_run():
                    return ops.gemm(a_st, b_st, c, trans_a=ta, trans_b=tb)

                case.add(f"fastcnn {isa} t={threads}", ours_run, ours_setup)
            case.run()
            speeds = {cn.name: np.median(cn.seconds) for cn in case.contenders if cn.seconds}
            for isa in isas:
                if f"fastcnn {isa} t={threads}" in speeds and f"numpy t={threads}" in speeds:
                    ratios[(shape, threads, isa)] = (speeds[f"numpy t={threads}"] /
                                                     speeds[f"fastcnn {isa} t={threads}"])
        print()

    summary = []
    print("fastcnn / numpy, median time ratio (higher is faster), per path:")
    head = f"  {'shape':20s} {'threads':>7s} " + " ".join(f"{isa:>8s}" for isa in isas)
    print(head)
    summary.append(head)
    for shape in args.shapes:
        for threads in args.threads:
            cells = [ratios.get((shape, threads, isa)) for isa in isas]
            line = f"  {shape:20s} {threads:7d} " + " ".join(
                f"{'x%.2f' % r if r else '-':>8s}" for r in cells)
            target = TARGETS.get(shape)
            if target is not None and cells[0]:
                line += f"   target {isas[0]} >= {target}: {'met' if cells[0] >= target else 'MISSED'}"
            summary.append(line)
            print(line)
    harness.finish(summary)


if __name__ == "__main__":
    main()
