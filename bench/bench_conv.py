"""conv2d forward + backward: fastcnn.ops (native) against fastcnn.reference (NumPy).

One call = conv2d forward, then conv2d_backward giving dx, dw, db (dx skipped for
a first layer, as a trainer would). Both backends get the same float32 inputs;
each is first checked against the reference computed in float64. The shapes are
the convolutions of the book's nets and of the Keras model from the course
notes, at mini-batch 10 and 64. Rates count the three GEMMs (2*K*C*KH*KW*OH*OW
multiply-adds per image each). Ratios are against the reference (x1.00 = as fast
as NumPy; higher is faster).

    python bench/bench_conv.py
    python bench/bench_conv.py --threads 2 --batches 10 --repeats 5

Needs threadpoolctl (the "bench" extra) to give NumPy's BLAS the same thread count.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from threadpoolctl import ThreadpoolController

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastcnn  # noqa: E402
from fastcnn import ops, reference  # noqa: E402
from _harness import Harness  # noqa: E402

# name: (C, H, W, K, KH, KW, stride, padding, first layer?)
LAYERS = {
    "book conv1 20@5x5 on 1x28x28": (1, 28, 28, 20, 5, 5, 1, 0, True),
    "book conv2 40@5x5 on 20x12x12": (20, 12, 12, 40, 5, 5, 1, 0, False),
    "keras conv1 32@3x3 on 1x28x28": (1, 28, 28, 32, 3, 3, 1, 0, True),
    "keras conv2 64@3x3 on 32x13x13": (32, 13, 13, 64, 3, 3, 1, 0, False),
}


def step(backend, x, w, b, dout, stride, padding, need_dx):
    """Forward and backward of one conv layer; returns everything, flattened."""
    out = backend.conv2d(x, w, b, stride, padding)
    dx, dw, db = backend.conv2d_backward(dout, x, w, stride, padding, need_dx=need_dx)
    parts = [out, dw, db] + ([dx] if need_dx else [])
    return np.concatenate([np.ravel(p) for p in parts])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", nargs="+", type=int, default=[10, 64])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=7, help="interleaved samples per contender")
    p.add_argument("--sample", type=float, default=0.1, help="seconds per sample")
    args = p.parse_args(argv)

    harness = Harness("conv", argv=[os.path.basename(sys.executable)] + sys.argv,
                      repeats=args.repeats, sample_s=args.sample)
    rng = np.random.default_rng(0)
    blas = ThreadpoolController()
    for threads in args.threads:
        for batch in args.batches:
            for name, (c, h, wd, k, kh, kw, s, pad, first) in LAYERS.items():
                x = rng.standard_normal((batch, c, h, wd)).astype(np.float32)
                w = (rng.standard_normal((k, c, kh, kw)) / np.sqrt(c * kh * kw)).astype(np.float32)
                b = rng.standard_normal(k).astype(np.float32)
                oh, ow = (h + 2 * pad - kh) // s + 1, (wd + 2 * pad - kw) // s + 1
                dout = rng.standard_normal((batch, k, oh, ow)).astype(np.float32)
                gemms = 2 if first else 3
                flops = gemms * 2.0 * batch * k * c * kh * kw * oh * ow
                want = step(reference, *(a.astype(np.float64) for a in (x, w, b, dout)),
                            s, pad, not first)
                case = harness.case(f"{name} N={batch} t={threads}", work=flops,
                                    reference=want, rtol=1e-3, atol=2e-3,
                                    params=dict(layer=name, batch=batch, threads=threads))

                def set_threads(t=threads):  # same thread count for OpenMP and OpenBLAS
                    fastcnn.set_num_threads(t)
                    blas.limit(limits=t, user_api="blas")

                case.add("reference (NumPy)",
                         lambda: step(reference, x, w, b, dout, s, pad, not first),
                         setup=set_threads)
                case.add("fastcnn native",
                         lambda: step(ops, x, w, b, dout, s, pad, not first),
                         setup=set_threads)
                case.run()
    harness.finish()


if __name__ == "__main__":
    main()
