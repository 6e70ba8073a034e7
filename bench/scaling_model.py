"""Data-parallel scaling model: the global mini-batch each net needs on p machines
for a given parallel efficiency, from this machine's measured step time and the
size of the gradient buffer (docs/scaling-mpi.md explains the model).

    python bench/scaling_model.py                   # from bench/results/mpi.json
    python bench/scaling_model.py --alpha-us 20 --efficiency 0.9

Per machine (one rank of 2 threads, as measured by bench_mpi.py's "1 process x
2 threads") an image costs t = 1 / images_per_s. A step with global batch B on p
machines costs compute (B / p) * t and, with no overlap, an allreduce of S bytes:
ring    2 (p-1)/p * S / bandwidth + 2 (p-1) alpha
log     2 (p-1)/p * S / bandwidth + 2 log2(p) alpha   (recursive doubling /
        Rabenseifner, what MPICH picks for short messages)
Efficiency compute / (compute + allreduce) >= e needs
B >= p * allreduce * e / ((1 - e) * t).
"""
from __future__ import annotations

import argparse
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def allreduce_s(p, nbytes, gbit_s, alpha_s, ring=True):
    bandwidth = 2 * (p - 1) / p * nbytes * 8 / (gbit_s * 1e9)
    latency = 2 * (p - 1) * alpha_s if ring else 2 * math.log2(p) * alpha_s
    return bandwidth + latency


def min_batch(p, t_image_s, reduce_s, efficiency):
    return math.ceil(p * reduce_s * efficiency / ((1 - efficiency) * t_image_s))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=os.path.join(HERE, "results", "mpi.json"),
                    help="bench_mpi.py's output (default: %(default)s)")
    ap.add_argument("--machines", default="8,32,128")
    ap.add_argument("--gbits", default="10,25", help="network bandwidths, Gb/s")
    ap.add_argument("--alpha-us", type=float, default=50.0,
                    help="per-message latency, microseconds (default 50: TCP over Ethernet)")
    ap.add_argument("--efficiency", type=float, default=0.8)
    args = ap.parse_args()
    if not 0 < args.efficiency < 1:
        raise SystemExit(f"--efficiency must be in (0, 1), got {args.efficiency}")
    with open(args.results) as f:
        data = json.load(f)
    machines = [int(v) for v in args.machines.split(",")]
    print(f"from {args.results} ({data.get('cpu', '?')}); alpha {args.alpha_us:g} us, "
          f"efficiency >= {args.efficiency:.0%}; allreduce per step, global batch needed "
          "(ring latency; in brackets log latency)\n")
    print("| net | per image | S | Gb/s | " + " | ".join(f"p = {p}" for p in machines) + " |")
    print("|---|---|---|---|" + "---|" * len(machines))
    for row in data["results"]:
        t = 1.0 / row["threads_1x2_images_per_s"]
        nbytes = row["allreduce_bytes"]
        for gb in (float(v) for v in args.gbits.split(",")):
            cells = []
            for p in machines:
                ring = allreduce_s(p, nbytes, gb, args.alpha_us * 1e-6, ring=True)
                log = allreduce_s(p, nbytes, gb, args.alpha_us * 1e-6, ring=False)
                cells.append(f"{ring * 1e3:.1f} ms, B ≥ {min_batch(p, t, ring, args.efficiency):,}"
                             f" ({min_batch(p, t, log, args.efficiency):,})")
            print(f"| {row['net']} | {t * 1e6:.0f} µs | {nbytes / 1e6:.2f} MB | {gb:g} | "
                  + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
