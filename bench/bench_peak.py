"""The machine's fp32 multiply-add peak per SIMD path, 1 and 2 threads.

A small native loop (fastcnn._core._peak_fma) runs independent FMA chains --
enough of them to cover the FMA units' latency -- on every thread: no memory
traffic, nothing else. Every other figure (bench_gemm, bench_train) can then
be put as a share of this peak. Each contender does the same flops per call
(iterations scaled by the path's flops per iteration), so the ratios compare
paths directly; "x" is against the first contender (generic).

    python bench/bench_peak.py                  # ~20 s
    python bench/bench_peak.py --threads 1 --repeats 9

The generic path has no FMA (baseline x86-64: SSE2 multiply + add), so its
figure is the portable code's ceiling, not the CPU's.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastcnn  # noqa: E402
from fastcnn import _core  # noqa: E402
from _harness import Harness  # noqa: E402

FLOPS_PER_CALL = 768 * 1_000_000  # per thread; a multiple of every path's flops per iteration


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=7, help="interleaved samples per contender")
    p.add_argument("--sample", type=float, default=0.2, help="seconds per sample")
    args = p.parse_args(argv)

    harness = Harness("peak", argv=[os.path.basename(sys.executable)] + sys.argv,
                      repeats=args.repeats, sample_s=args.sample, settle_s=0.1)
    paths = fastcnn.build_info()["isas_supported"]
    per_iter = {path: _core._peak_fma(path, 1, 1)[0] for path in paths}
    peaks = {}
    for threads in args.threads:
        work = FLOPS_PER_CALL * threads
        case = harness.case(f"fp32 FMA peak threads={threads}", work=work, reference=work,
                            rtol=0, atol=0, params={"threads": threads})
        for path in paths:
            iters = FLOPS_PER_CALL // per_iter[path]

            def run(path=path, iters=iters, t=threads):
                flops, value = _core._peak_fma(path, iters, t)
                return flops if value == value else float("nan")  # NaN: the loop went wrong

            case.add(f"{path} t={threads}", run)
        case.run()
        for c in case.contenders:
            if c.seconds:
                peaks[c.name] = work / min(c.seconds) / 1e9
    summary = [f"peak {name}: {gflops:.1f} GFLOP/s (best sample)" for name, gflops in
               peaks.items()]
    print()
    for line in summary:
        print(line)
    harness.finish(summary)


if __name__ == "__main__":
    main()
