"""Where inference time goes, and what a second thread gives: the benchmark nets'
predict_proba on 1 and 2 threads, the native plan's call alone (plan.run, no Python
around it) and the Python forward over the layers (what predict_proba ran before the
plan), interleaved in one run.

    PYTHONPATH=src python bench/bench_infer.py                  # N2, K1 at batch 1, 64, 1000
    PYTHONPATH=src python bench/bench_infer.py --nets K1 --batches 1,2,4,8
    PYTHONPATH=src python bench/bench_infer.py --nets C1,C2 --batches 1,8   # CIFAR-shaped

Each contender is first checked against the Python forward; rates are images/s
(median [worst..best] over the samples), ratios against predict_proba on 1 thread.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import Harness  # noqa: E402

import fastcnn  # noqa: E402
from fastcnn.bench import peers  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", default="N2,K1")
    p.add_argument("--batches", default="1,64,1000")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    h = Harness("infer", argv=sys.argv if argv is None else ["bench_infer.py"] + argv,
                repeats=args.repeats, sample_s=0.2, settle_s=0.2)

    def threads(n):
        return lambda: fastcnn.set_num_threads(n)

    for name in args.nets.split(","):
        model = peers.build_net(name)
        for bs in (int(b) for b in args.batches.split(",")):
            x = np.random.default_rng(bs).random((bs,) + model.input_shape, dtype=np.float32)
            want = model.forward(x)[0]
            plan = model._plans.get(model)   # what predict_proba runs (nn/steps.Plans)
            out = np.empty_like(want)
            case = h.case(f"{name} batch {bs}", work=bs * 1e9, unit="img/s", reference=want,
                          rtol=0, atol=0, params={"net": name, "batch": bs})
            for t in (1, 2):
                case.add(f"predict_proba t={t}", lambda: model.predict_proba(x), threads(t))
            for t in (1, 2):
                case.add(f"plan.run t={t}", lambda: plan.run(x, out), threads(t))
            case.add("python forward t=1", lambda: model.forward(x)[0], threads(1))
            case.run()
    h.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
