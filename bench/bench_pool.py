"""How fast is native pooling? Checks each op against the NumPy reference first,
then times native forward and backward (best of several runs) and prints the
speed-up over the reference.

    PYTHONPATH=src python bench/bench_pool.py [--threads 1] [--batch 64]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import fastcnn
from fastcnn import ops, reference


def best_ms(f, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    fastcnn.set_num_threads(args.threads)

    x = np.random.default_rng(0).standard_normal((args.batch, 32, 28, 28)).astype(np.float32)
    print(f"x {x.shape} float32, {args.threads} thread(s), best of {args.repeats}")
    print(f"{'op':>10} {'window':>12} {'fwd ms':>8} {'bwd ms':>8} {'fwd x ref':>10} {'bwd x ref':>10}")
    for kind in ("maxpool2d", "avgpool2d", "l2pool2d"):
        for size, stride in ((2, 2), (3, 2), (3, 1)):
            fwd, bwd = getattr(ops, kind), getattr(ops, kind + "_backward")
            ref_fwd, ref_bwd = getattr(reference, kind), getattr(reference, kind + "_backward")
            out = fwd(x, size, stride)
            dout = np.ones_like(out)
            np.testing.assert_allclose(out, ref_fwd(x, size, stride), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(bwd(dout, x, size, stride), ref_bwd(dout, x, size, stride),
                                       rtol=1e-5, atol=1e-6)
            times = [best_ms(lambda: fwd(x, size, stride), args.repeats),
                     best_ms(lambda: bwd(dout, x, size, stride), args.repeats),
                     best_ms(lambda: ref_fwd(x, size, stride), 2),
                     best_ms(lambda: ref_bwd(dout, x, size, stride), 2)]
            print(f"{kind:>10} {f'k{size} s{stride}':>12} {times[0]:8.2f} {times[1]:8.2f} "
                  f"{times[2] / times[0]:10.1f} {times[3] / times[1]:10.1f}")


if __name__ == "__main__":
    main()
