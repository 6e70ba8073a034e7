"""Two builds of fastcnn side by side: Sequential.fit images/s of the benchmark nets,
each sample a fresh process, the builds alternated, ratios of the medians.

    # an old commit next to this tree (both built: cmake ... && cmake --build build)
    git worktree add /tmp/old b081e4e && (cd /tmp/old && cmake -S . -B build ... && cmake --build build)
    python bench/bench_builds.py /tmp/old/src src --env FASTCNN_ISA=avx2 --rounds 3

A sample trains the net on random MNIST-shaped images (2,000 at mini-batches up to 16,
else 4,096): one warm-up fit of 20 mini-batches, then 5 timed fits; its figure is
the median. Only the layers API both builds have is used (Sequential, Conv2D,
MaxPool2D, Dense, Dropout, Flatten, SGD), so builds from before `fastcnn bench`
existed can be compared. --env applies to the second build only (e.g. to force its
SIMD path). Run it on a quiet machine: 2-thread figures collapse next to any other
busy process.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _subproc import emit_result, run_for_result  # noqa: E402

CASES = "N2:10,N3:10,N2:128,K1:128"


def worker(net, bs, threads):
    import time

    import numpy as np

    import fastcnn
    from fastcnn import layers as L
    from fastcnn.network import Sequential

    fastcnn.set_num_threads(threads)
    conv = [L.Conv2D(20, 5, activation="relu"), L.MaxPool2D(2),
            L.Conv2D(40, 5, activation="relu"), L.MaxPool2D(2)]
    out = L.Dense(10, activation="softmax")
    nets = {
        "N2": lambda: conv + [L.Dense(100, activation="relu"), out],
        "N3": lambda: conv + [L.Dense(1000, activation="relu"), L.Dropout(0.5),
                              L.Dense(1000, activation="relu"), L.Dropout(0.5), out],
        "K1": lambda: [L.Conv2D(32, 3, activation="relu"), L.MaxPool2D(2),
                       L.Conv2D(64, 3, activation="relu"), L.MaxPool2D(2), L.Flatten(),
                       L.Dropout(0.5), out],
    }
    g = np.random.default_rng(0)
    n = 2000 if bs <= 16 else 4096
    x = g.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8).astype(np.float32) / 255
    y = g.integers(0, 10, n)
    model = Sequential(nets[net](), input_shape=(1, 28, 28), seed=0)
    opt = fastcnn.optim.SGD(0.01)
    model.fit(x[:20 * bs], y[:20 * bs], batch_size=bs, optimizer=opt, verbose=0)
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        model.fit(x, y, batch_size=bs, optimizer=opt, verbose=0, shuffle=False)
        rates.append(n / (time.perf_counter() - t))
    emit_result({"images_per_s": statistics.median(rates),
                 "simd": fastcnn.build_info().get("simd")})


def sample(src, env_extra, net, bs, threads):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(src), OMP_NUM_THREADS=str(threads),
               **env_extra)
    return run_for_result([sys.executable, os.path.abspath(__file__), "--worker", net, str(bs),
                           str(threads)], env, timeout=600)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", nargs="?", help="src/ directory of the first build")
    ap.add_argument("other", nargs="?", help="src/ directory of the second build")
    ap.add_argument("--cases", default=CASES, help="NET:BATCH,... (default %(default)s)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="environment for the second build's samples (repeatable)")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        net, bs, threads = args.worker
        worker(net, int(bs), int(threads))
        return
    if not args.base or not args.other:
        ap.error("give the src/ directories of the two builds")
    for src in (args.base, args.other):
        if not os.path.isdir(os.path.join(src, "fastcnn")):
            ap.error(f"{src!r} has no fastcnn package (give a tree's src/ directory)")
    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            ap.error(f"--env wants NAME=VALUE, got {item!r}")
        env[name] = value
    cases = [(c.split(":")[0], int(c.split(":")[1])) for c in args.cases.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    rows = {}
    for rnd in range(args.rounds):
        for th in threads:
            for net, bs in cases:
                a = sample(args.base, {}, net, bs, th)
                b = sample(args.other, env, net, bs, th)
                row = rows.setdefault((th, net, bs), {"base": [], "other": []})
                row["base"].append(a["images_per_s"])
                row["other"].append(b["images_per_s"])
                paths = (a["simd"], b["simd"])
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"base {args.base} ({paths[0]} path), other {args.other} {' '.join(args.env)} "
          f"({paths[1]} path); images/s per round; ratio = other / base, median of the "
          "rounds (and each round's)")
    print("| threads | net | batch | base | other | ratio | rounds |")
    print("|---|---|---|---|---|---|---|")
    for (th, net, bs), r in rows.items():
        ratio = statistics.median(r["other"]) / statistics.median(r["base"])
        each = ", ".join(f"{o / b:.3f}" for b, o in zip(r["base"], r["other"]))
        print(f"| {th} | {net} | {bs} | {', '.join(f'{v:.0f}' for v in r['base'])} | "
              f"{', '.join(f'{v:.0f}' for v in r['other'])} | {ratio:.3f} | {each} |")


if __name__ == "__main__":
    main()
