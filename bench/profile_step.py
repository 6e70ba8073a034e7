"""Where a training step goes: time per fastcnn.ops call during Sequential.fit.

Every public function of fastcnn.ops is wrapped with a timer for the run (the
layers look ops up at call time), the net is trained for --steps mini-batches
of the bundled MNIST (after a warm-up), and the table gives, per op, calls per
step, microseconds per step and the share of the step; "outside ops" is the
rest of the wall time (Python: layers, trainer, slicing, the timers' own
overhead of ~0.3 us per call). Run per SIMD path to compare them.

    python bench/profile_step.py                        # N2 and N3 at batch 10, ~30 s
    python bench/profile_step.py --nets N3 --batch 64 --threads 2 --isas avx2 avx512
    python bench/profile_step.py --nets C1 C2 --batch 64 --steps 50   # CIFAR-shaped (random)
"""
from __future__ import annotations

import argparse
import functools
import inspect
import os
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastcnn  # noqa: E402
from fastcnn import ops  # noqa: E402
from fastcnn.bench import cpu_model, load_data, peers  # noqa: E402


def wrap_ops(totals, counts):
    """Replace every public function of fastcnn.ops by a timed one; return the undo."""
    saved = {}
    for name, fn in inspect.getmembers(ops, inspect.isfunction):
        if name not in ops.__all__:
            continue

        def timed(*args, __fn=fn, __name=name, **kwargs):
            t0 = time.perf_counter()
            try:
                return __fn(*args, **kwargs)
            finally:
                totals[__name] += time.perf_counter() - t0
                counts[__name] += 1
        saved[name] = fn
        setattr(ops, name, functools.wraps(fn)(timed))
    return lambda: [setattr(ops, n, f) for n, f in saved.items()]


def profile(net, batch, steps, x, y):
    model = peers.build_net(net)
    if net in peers.PEER_NETS:   # CIFAR-shaped: random images of its shape
        x, y = peers.images(model, max(batch * 60, batch * steps), seed=3)
    opt = fastcnn.optim.SGD(0.01)
    warm = min(len(x), 50 * batch)
    model.fit(x[:warm], y[:warm], epochs=1, batch_size=batch, optimizer=opt, shuffle=False,
              verbose=0)
    totals, counts = defaultdict(float), defaultdict(int)
    undo = wrap_ops(totals, counts)
    try:
        n = steps * batch
        t0 = time.perf_counter()
        model.fit(x[:n], y[:n], epochs=1, batch_size=batch, optimizer=opt, shuffle=False,
                  verbose=0)
        wall = time.perf_counter() - t0
    finally:
        undo()
    return wall, totals, counts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nets", nargs="+", default=["N2", "N3"])
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--isas", nargs="+", default=[fastcnn.build_info()["simd"]])
    args = p.parse_args(argv)
    x, y, _, _ = load_data()
    steps = min(args.steps, len(x) // args.batch)
    print(f"cpu: {cpu_model()}; paths this CPU runs: "
          f"{', '.join(fastcnn.build_info()['isas_supported'])}; threads={args.threads}; "
          f"batch={args.batch}; {steps} steps after a warm-up")
    fastcnn.set_num_threads(args.threads)
    before = fastcnn.build_info()["simd"]
    try:
        for net in args.nets:
            for isa in args.isas:
                fastcnn.set_isa(isa)
                wall, totals, counts = profile(net, args.batch, steps, x, y)
                step_us = wall / steps * 1e6
                print(f"\n{net} on {isa}: {step_us:.0f} us per step, "
                      f"{args.batch * steps / wall:.0f} images/s")
                print(f"  {'op':28s} {'calls/step':>10s} {'us/step':>9s} {'share':>7s}")
                for name in sorted(totals, key=totals.get, reverse=True):
                    us = totals[name] / steps * 1e6
                    print(f"  {name:28s} {counts[name] / steps:10.1f} {us:9.1f} "
                          f"{us / step_us:7.1%}")
                outside = step_us - sum(totals.values()) / steps * 1e6
                print(f"  {'outside ops (Python)':28s} {'':10s} {outside:9.1f} "
                      f"{outside / step_us:7.1%}")
    finally:
        fastcnn.set_isa(before)


if __name__ == "__main__":
    main()
