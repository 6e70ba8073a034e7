"""Activations, costs, dropout and optimizer steps: native (fastcnn.ops) against
NumPy (fastcnn.reference on float32), validated first, then timed interleaved.

    PYTHONPATH=src python bench/bench_elementwise.py [--sizes 4096,65536,1048576] [--threads 1,2]

Prints the best time per call and ns per value for each, and the speed-up.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import fastcnn
from fastcnn import ops, reference


def cases(n: int, rng):
    x = rng.standard_normal(n).astype(np.float32)
    d = rng.standard_normal(n).astype(np.float32)
    mask = rng.random(n) < 0.5
    rows = x[: (n // 10) * 10].reshape(-1, 10)
    labels = rng.integers(0, 10, size=rows.shape[0])
    y = rng.random(rows.shape).astype(np.float32)

    def state(k):  # fresh in-place arrays per call: (param, grad, states...)
        return lambda: [x.copy(), d] + [np.zeros_like(x) for _ in range(k)]

    return {
        "relu": (lambda b: b.relu(x), None),
        "relu_backward": (lambda b: b.relu_backward(d, x), None),
        "sigmoid": (lambda b: b.sigmoid(x), None),
        "tanh": (lambda b: b.tanh(x), None),
        "tanh_backward": (lambda b: b.tanh_backward(d, x), None),
        "dropout": (lambda b: b.dropout(x, mask, 0.5), None),
        "softmax (N,10)": (lambda b: b.softmax(rows), None),
        "softmax_loglik (N,10)": (lambda b: b.softmax_loglik(rows, labels), None),
        "bce (N,10)": (lambda b: b.binary_cross_entropy(rows, y), None),
        "sgd momentum": (lambda b, a: b.sgd_update(*a, lr=0.1, momentum=0.9), state(1)),
        "adam": (lambda b, a: b.adam_update(*a, step=3, lr=0.1), state(2)),
    }


def best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="4096,65536,1048576")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(fastcnn.build_info())
    for n in (int(s) for s in args.sizes.split(",")):
        for name, (call, make) in cases(n, rng).items():
            # validate: native against the float32 reference
            a_ref, a_nat = (make(), make()) if make else (None, None)
            r = call(reference, a_ref) if make else call(reference)
            o = call(ops, a_nat) if make else call(ops)
            got, want = (a_nat[0], a_ref[0]) if make else (o, r)
            got, want = (got[1], want[1]) if isinstance(got, tuple) else (got, want)
            assert np.allclose(got, want, rtol=1e-4, atol=1e-6), name
            line = f"n={n:>8} {name:<22}"
            t_np = None
            for th in (int(t) for t in args.threads.split(",")):
                fastcnn.set_num_threads(th)
                if make:  # time the update only, on fresh arrays prepared outside
                    prepared = [make() for _ in range(args.repeat)]
                    it = iter(prepared)
                    t_nat = best_time(lambda: call(ops, next(it)), args.repeat)
                    if t_np is None:
                        it2 = iter([make() for _ in range(args.repeat)])
                        t_np = best_time(lambda: call(reference, next(it2)), args.repeat)
                else:
                    t_nat = best_time(lambda: call(ops), args.repeat)
                    if t_np is None:
                        t_np = best_time(lambda: call(reference), args.repeat)
                line += f" | {th}T {t_nat * 1e6:9.1f} us {t_nat / n * 1e9:6.2f} ns/val"
            line += f" | numpy {t_np * 1e6:9.1f} us  x{t_np / t_nat:5.1f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
