"""Drop-in benchmark: a NumPy net with fastcnn.ops swapped in.

A CNN written the way NumPy users write one (the book's row-4 net, "N2": conv
20 5x5 -> ReLU -> max-pool 2 -> conv 40 5x5 -> ReLU -> max-pool 2 -> dense 100
ReLU -> dense 10, softmax + log-likelihood, plain SGD): im2col convolution and
dense layers through numpy matmul (so NumPy's BLAS threads run), max-pool by
reshape. It is trained on the bundled MNIST in three variants, timed in
interleaved segments in one process:

  numpy       everything in NumPy
  conv/pool   conv2d, conv2d_backward, maxpool2d, maxpool2d_backward from fastcnn.ops
  all         also dense / dense_backward from fastcnn.ops (softmax stays NumPy)

in the default environment (no thread setting by anyone: what a user gets) and
with both libraries limited to 1 and to 2 threads (threadpoolctl for the BLAS,
fastcnn.set_num_threads for fastcnn). Before timing, one step of each swapped
variant is checked against the NumPy one (same loss and weights, rtol 1e-4).

    PYTHONPATH=src python bench/bench_dropin.py            # ~3 minutes
    PYTHONPATH=src python bench/bench_dropin.py --quick    # smoke test
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

import fastcnn
from fastcnn.bench import cpu_model

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # pragma: no cover - the bench extra has it
    threadpool_info = threadpool_limits = None


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from numpy_net_dropin import NUMPY, VARIANTS, init_params, train_step  # noqa: E402


def check(x, y):
    """One step of each swapped variant against the NumPy one."""
    ref = init_params()
    want = train_step(ref, x[:10], y[:10], NUMPY)
    for name, f in VARIANTS.items():
        p = init_params()
        got = train_step(p, x[:10], y[:10], f)
        if abs(got - want) > 1e-4 * abs(want):
            sys.exit(f"{name}: loss {got} != NumPy's {want}")
        for k in p:
            if not np.allclose(p[k], ref[k], rtol=1e-4, atol=1e-6):
                sys.exit(f"{name}: parameter {k} differs from the NumPy step")


def segment(f, p, x, y, batch, seconds, start):
    """Train for ~seconds; returns (images/s, next start)."""
    n = x.shape[0]
    done = 0
    t0 = time.perf_counter()
    while True:
        if start + batch > n:
            start = 0
        train_step(p, x[start:start + batch], y[start:start + batch], f)
        start += batch
        done += batch
        t = time.perf_counter() - t0
        if t >= seconds:
            return done / t, start


def limits(threads):
    if threads is None:
        return nullcontext()
    fastcnn.set_num_threads(threads)
    return threadpool_limits(limits=threads, user_api="blas")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="default,1,2",
                    help="comma-separated: 'default' (nobody sets anything) and/or counts")
    ap.add_argument("--batch-size", type=int, default=10)
    ap.add_argument("--segments", type=int, default=7)
    ap.add_argument("--segment-seconds", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="tiny segments: a smoke test")
    args = ap.parse_args(argv)
    if args.quick:
        args.segments, args.segment_seconds = 2, 0.05
    (x, y), _, _ = fastcnn.datasets.load_mnist()
    x, y = x[:20000], y[:20000]
    check(x, y)
    default_threads = fastcnn.get_num_threads()
    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
            for i in (threadpool_info() if threadpool_info else []) if i.get("user_api") == "blas"]
    print(f"CPU: {cpu_model()}; fastcnn SIMD path {fastcnn.build_info()['simd']}, "
          f"{default_threads} threads by default; NumPy {np.__version__}, BLAS: "
          f"{', '.join(blas) or 'unknown'}")
    print(f"N2 as a NumPy net, mini-batch {args.batch_size}, training images/s: median "
          f"[min..max] over {args.segments} interleaved segments of {args.segment_seconds} s")
    print(f"{'threads':>8} {'variant':>10} {'images/s':>24} {'x numpy':>8}")
    for spec in args.threads.split(","):
        threads = None if spec == "default" else int(spec)
        with limits(threads):
            rates = {name: [] for name in VARIANTS}
            state = {name: (init_params(), 0) for name in VARIANTS}
            for _ in range(args.segments):
                for name, f in VARIANTS.items():
                    p, start = state[name]
                    rate, start = segment(f, p, x, y, args.batch_size, args.segment_seconds, start)
                    state[name] = (p, start)
                    rates[name].append(rate)
        fastcnn.set_num_threads(default_threads)
        base = statistics.median(rates["numpy"])
        for name, r in rates.items():
            med = statistics.median(r)
            print(f"{spec:>8} {name:>10} {med:>8.0f} [{min(r):.0f}..{max(r):.0f}]".ljust(44)
                  + f" {med / base:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
