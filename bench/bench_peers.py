"""fastcnn against PyTorch and ONNX Runtime where the arithmetic is (fastcnn.bench.peers):
CIFAR-shaped nets trained against PyTorch eager (and torch.compile with --compile),
inference of every net against PyTorch and ONNX Runtime on fastcnn's own export.

    python bench/bench_peers.py                                  # C1, C2, N2, K1; 1 and 2 threads
    python bench/bench_peers.py --train C1:64,C1:128 --infer K1:1,K1:64 --threads 1
    python bench/bench_peers.py --compile --json bench/results/peers.json

Needs the bench extra (torch) and onnxruntime (pip install ".[bench,onnx]"); a missing
peer is left out. Prints each check, then images/s (median [min..max] over the
segments) and the ratios of medians fastcnn / peer. Run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fastcnn.bench import peers, Settings, machine_info  # noqa: E402
from fastcnn.io.files import atomic_write  # noqa: E402

TRAIN = "C1:64,C1:128,C2:64,C2:128"
INFER = "N2:1,N2:64,N2:1000,K1:1,K1:64,K1:1000,C1:1,C1:64,C2:64"


def _cases(text):
    out = []
    for item in text.split(","):
        if item.strip():
            net, _, bs = item.partition(":")
            out.append((net.strip(), int(bs)))
    return out


def _cpu_seconds():
    """(busy CPU seconds of the whole machine, of this process) so far (Linux)."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:9]]
    except OSError:
        return None
    t = os.times()
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK"), t.user + t.system


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", default=TRAIN, help=f"NET:BATCH,... (default {TRAIN})")
    p.add_argument("--infer", default=INFER, help=f"NET:BATCH,... (default {INFER})")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--segments", type=int, default=7)
    p.add_argument("--segment-seconds", type=float, default=0.5)
    p.add_argument("--settle", type=float, default=0.2)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (training)")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    settings = Settings(segments=args.segments, segment_seconds=args.segment_seconds,
                        settle=args.settle)
    info = machine_info()
    print(f"$ python bench/bench_peers.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"cpu: {info['cpu']} ({info['logical_cpus']} logical CPUs), fastcnn simd="
          f"{info['fastcnn']['simd']}, torch {getattr(peers._nets.torch, '__version__', None)}")
    start, t0 = _cpu_seconds(), time.perf_counter()
    rows = peers.run(_cases(args.train), _cases(args.infer),
                     [int(v) for v in args.threads.split(",")], settings, args.compile,
                     out=lambda line: print(line, flush=True))
    end = _cpu_seconds()
    if start and end:   # what else ran: CPU time other processes took meanwhile
        other = (end[0] - start[0]) - (end[1] - start[1])
        print(f"other processes used {other / (time.perf_counter() - t0):.2f} CPUs on "
              f"average during the run; load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        atomic_write(args.json, lambda f: f.write(json.dumps(
            {"machine": info, "rows": rows}, indent=1, default=str).encode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
