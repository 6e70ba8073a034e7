"""3x3 stride-1 convolutions: im2col + GEMM against Winograd F(4x4, 3x3), forward +
backward (dx, dw, db), as GFLOP/s and as a share of the FMA peak.

One call = conv2d forward (with bias), then conv2d_backward giving dx, dw, db. The
rate counts direct-convolution flops, 2*N*K*C*9*OH*OW per pass, three passes (so
Winograd, which does fewer multiply-adds, may pass 100% of the peak). The peak is
bench_peak.py's: the SIMD path's independent FMA chains on every thread, measured
here first. Each contender is checked against the float64 reference first. The
layers: the issue's 64->64 on 16x16, the CIFAR-shaped nets' (C1, C2 of
bench_peers.py; the first, 3->32, stays im2col under "auto") and K1's second conv
(32->64 on 13x13, no padding). "auto" below each case says what the rule picks.

    python bench/bench_conv3x3.py                       # batch 64, 1 and 2 threads, ~3 min
    python bench/bench_conv3x3.py --threads 1 --layers 64-64@16 --split
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastcnn  # noqa: E402
from fastcnn import _core, ops, reference  # noqa: E402
from _harness import Harness  # noqa: E402

# name: (C, H, W, K, padding)
LAYERS = {
    "64-64@16": (64, 16, 16, 64, 1),
    "3-32@32": (3, 32, 32, 32, 1),
    "32-32@32": (32, 32, 32, 32, 1),
    "32-64@16": (32, 16, 16, 64, 1),
    "64-128@16": (64, 16, 16, 128, 1),
    "128-256@8": (128, 8, 8, 256, 1),
    "32-64@13 valid": (32, 13, 13, 64, 0),
}
ALGOS = ("im2col", "winograd")


def passes(backend, x, w, b, dout, pad, which):
    """The passes asked for ("fwd", "bwd" or both), their results flattened."""
    parts = []
    if which in ("fwd+bwd", "fwd"):
        parts.append(backend.conv2d(x, w, b, 1, pad))
    if which in ("fwd+bwd", "bwd"):
        parts.extend(backend.conv2d_backward(dout, x, w, 1, pad))
    return np.concatenate([np.ravel(p) for p in parts])


def fma_peak(threads, seconds=0.3):
    """GFLOP/s of the SIMD path in use on `threads` threads (bench_peak.py's loop)."""
    import time

    path = fastcnn.build_info()["simd"]
    per_iter = _core._peak_fma(path, 1, 1)[0]
    iters = max(1, int(2e9 / per_iter))
    best = 0.0
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        flops, _ = _core._peak_fma(path, iters, threads)
        best = max(best, flops / (time.perf_counter() - t0) / 1e9)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--layers", nargs="+", choices=list(LAYERS), default=list(LAYERS))
    p.add_argument("--split", action="store_true", help="also time forward and backward alone")
    p.add_argument("--repeats", type=int, default=7, help="interleaved samples per contender")
    p.add_argument("--sample", type=float, default=0.2, help="seconds per sample")
    args = p.parse_args(argv)

    harness = Harness("conv3x3", argv=[os.path.basename(sys.executable)] + sys.argv,
                      repeats=args.repeats, sample_s=args.sample)
    before = fastcnn.conv_algorithm()
    rng = np.random.default_rng(0)
    summary = []
    n = args.batch
    for threads in args.threads:
        fastcnn.set_num_threads(threads)
        peak = fma_peak(threads)
        summary.append(f"FMA peak, {threads} thread(s): {peak:.1f} GFLOP/s")
        print(f"FMA peak ({fastcnn.build_info()['simd']}, {threads} thread(s)): {peak:.1f} GFLOP/s\n")
        for name in args.layers:
            c, h, wd, k, pad = LAYERS[name]
            oh, ow = h + 2 * pad - 2, wd + 2 * pad - 2
            x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
            w = (rng.standard_normal((k, c, 3, 3)) / np.sqrt(c * 9)).astype(np.float32)
            b = rng.standard_normal(k).astype(np.float32)
            dout = rng.standard_normal((n, k, oh, ow)).astype(np.float32)
            fastcnn.set_conv_algorithm("auto")
            auto = _core._conv_path(n, c, h, wd, k, 3, 3, 1, 1, pad, pad)
            for which in ("fwd+bwd", "fwd", "bwd") if args.split else ("fwd+bwd",):
                count = {"fwd+bwd": 3, "fwd": 1, "bwd": 2}[which]
                flops = count * 2.0 * n * k * c * 9 * oh * ow
                want = passes(reference, *(a.astype(np.float64) for a in (x, w, b, dout)), pad,
                              which)
                case = harness.case(f"{name} {which} N={n} t={threads} (auto: {auto})",
                                    work=flops, reference=want, rtol=1e-3,
                                    atol=1e-4 * float(np.abs(want).max()),
                                    params=dict(layer=name, passes=which, batch=n,
                                                threads=threads, auto=auto, peak=peak))
                for algo in ALGOS:
                    def setup(a=algo, t=threads):
                        fastcnn.set_num_threads(t)
                        fastcnn.set_conv_algorithm(a)

                    case.add(algo, lambda: passes(ops, x, w, b, dout, pad, which), setup=setup)
                case.run()
                for row in harness.rows[-len(ALGOS):]:
                    if "rate_median" in row:
                        summary.append(f"{row['case']:52s} {row['contender']:9s} "
                                       f"{row['rate_median']:6.1f} GFLOP/s = "
                                       f"{100 * row['rate_median'] / peak:5.1f}% of peak")
    fastcnn.set_conv_algorithm(before)
    print("\n" + "\n".join(summary))
    harness.finish(summary)


if __name__ == "__main__":
    main()
