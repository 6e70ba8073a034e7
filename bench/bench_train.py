"""Training speed on MNIST: fastcnn (native core and NumPy reference backend) against
PyTorch on the CPU, the same nets side by side.

The nets N1 N2 N3 K1, the checks and the round-robin timing are those of
fastcnn.bench (which `python -m fastcnn bench` runs quickly, after a plain pip
install); this script sweeps more mini-batch sizes and thread counts and writes JSON.

Same start (fastcnn's initial weights copied into an equivalent torch.nn.Sequential),
same mini-batches (the bundled MNIST training set from the start, in order), plain
SGD (lr 0.01), same thread count. fastcnn runs model.fit(...), torch the usual
zero_grad / forward / CrossEntropyLoss / backward / step loop. Each case first checks
one native step against the reference backend (loss, all gradients, same dropout
masks) and one torch SGD step against fastcnn's, in float32 and in float64 (nets
without dropout; for the others the inference outputs); a contender that fails is
reported and not timed. Segments of a fixed number of steps (~0.6 s) then run
round-robin with a settle pause between; reported: median images/s and the spread
(min..max) over segments.

    python bench/bench_train.py                    # everything, about 10 minutes
    python bench/bench_train.py --nets N2 --threads 1,2 --segments 5
    python bench/bench_train.py --nets N2,N3 --batches 10 --isas avx2   # A/B of SIMD paths
    python bench/bench_train.py --quick            # smoke test, tiny segments
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastcnn  # noqa: E402

# The nets, checks, timing and tables live in fastcnn.bench (what
# `python -m fastcnn bench` runs); this script adds the batch-size sweep and the JSON.
from fastcnn.bench import (  # noqa: E402,F401 -- the tests use several of these
    LR, NETS, Settings, build, check_native_vs_reference, check_torch_forward,
    check_torch_step, header, infer_case, load_data, net_layers, print_table, to_torch,
    torch, train_case, twin)
from fastcnn.io.files import atomic_write  # noqa: E402
from _harness import RESULTS_DIR  # noqa: E402

DEFAULT_BATCHES = {"N1": (10, 64, 256), "N2": (10, 64, 256), "N3": (10, 64, 256),
                   "K1": (10, 64, 128, 256)}


def parse_args(argv):
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n")[:2]))
    p.add_argument("--nets", default=",".join(NETS), help="comma-separated, e.g. N1,N2")
    p.add_argument("--batches", nargs="+", help="mini-batch sizes (default 10,64,256; "
                   "K1 also 128)")
    p.add_argument("--threads", nargs="+", default=["1,2"])
    p.add_argument("--segments", type=int, help="timed segments per contender (default 7)")
    p.add_argument("--segment-seconds", type=float, default=0.6)
    p.add_argument("--settle", type=float, default=0.3, help="pause before each segment, s")
    p.add_argument("--reference-batches", nargs="+", default=["10"],
                   help="mini-batch sizes to time the NumPy reference at (default 10)")
    p.add_argument("--no-reference", action="store_true", help="never time the reference")
    p.add_argument("--no-inference", action="store_true")
    p.add_argument("--isas", nargs="+", default=[],
                   help="also time fastcnn on these SIMD paths (e.g. avx2), for an A/B of "
                        "paths against the default one in the same run")
    p.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    p.add_argument("--quick", action="store_true", help="tiny segments: a smoke test")
    p.add_argument("--out", default=os.path.join(RESULTS_DIR, "bench_train.json"))
    args = p.parse_args(argv)
    args.nets = [n.strip().upper() for n in args.nets.split(",") if n.strip()]
    if set(args.nets) - set(NETS):
        p.error(f"unknown net(s) in {args.nets}; known: {', '.join(NETS)}")
    for k in ("batches", "threads", "reference_batches"):  # "1,2" or "1 2"
        if getattr(args, k) is not None:
            setattr(args, k, [int(v) for v in ",".join(getattr(args, k)).split(",") if v])
    if args.quick:
        args.segment_seconds, args.settle = 0.03, 0.02
    args.segments = args.segments or (2 if args.quick else 7)
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    env = [f"{k}={os.environ[k]}" for k in ("PYTHONPATH", "OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                                            "GOMP_SPINCOUNT", "FASTCNN_ISA") if k in os.environ]
    command = " ".join(env + [os.path.basename(sys.executable), "bench/bench_train.py"] + argv)
    for isa in args.isas:
        if isa not in fastcnn.build_info()["isas_supported"]:
            raise SystemExit(f"--isas: '{isa}' is not a SIMD path this CPU and build run "
                             f"({', '.join(fastcnn.build_info()['isas_supported'])})")
    settings = Settings(segments=args.segments, segment_seconds=args.segment_seconds,
                        settle=args.settle,
                        reference_batches=() if args.no_reference else
                        tuple(args.reference_batches),
                        compare_isas=tuple(args.isas), use_torch=not args.no_torch)
    info, tinfo = header(settings, command)
    data = load_data()
    failures, train_rows, infer_rows = [], [], []
    for net in args.nets:
        print(f"\n== {net}: {' -> '.join(repr(layer) for layer in net_layers(net))}")
        ref_cache = {}
        for threads in args.threads:
            for bs in args.batches or DEFAULT_BATCHES[net]:
                train_rows.append(train_case(net, threads, bs, data, settings, failures,
                                             ref_cache))
        if not args.no_inference:
            infer_rows += [infer_case(net, threads, data, settings, failures)
                           for threads in args.threads]

    for net in args.nets:
        print_table(f"Training {net}: images/s, median [min..max] over segments; ratios "
                    "of medians", [r for r in train_rows if r["net"] == net])
    if infer_rows:
        print_table(f"Inference at batch {settings.infer_batch} (predict_proba; torch eval"
                    " + no_grad + softmax): images/s", infer_rows)
    load_end = os.getloadavg()
    print(f"\nload average at start: {info.get('loadavg_at_start')}, at end: {load_end}")
    out = {"command": command, "machine": info, "torch": tinfo, "settings": {
               "lr": LR, "segments": args.segments, "segment_seconds": args.segment_seconds,
               "settle_s": args.settle, "quick": args.quick,
               "reference_batches": list(settings.reference_batches)},
           "training": train_rows, "inference": infer_rows, "failures": failures,
           "loadavg_at_end": load_end}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    text = json.dumps(out, indent=1, default=str).encode()
    atomic_write(args.out, lambda f: f.write(text))  # a reader never sees half a file
    print(f"results written to {os.path.relpath(args.out)}")
    if failures:
        print("\nVALIDATION FAILURES:\n  " + "\n  ".join(failures), file=sys.stderr)
    return out


if __name__ == "__main__":
    sys.exit(1 if main()["failures"] else 0)
