"""The subcommands of the optional extras and of many runs: export (ONNX), plot
(pictures), bench (speed against PyTorch and the reference), sweep (a grid of
runs, on Dask). Each module they need is imported when the command runs."""
from __future__ import annotations

import json
import os
import sys

from ..backend.threads import MAX_THREADS, get_num_threads
from ..data import sources
from ..io import onnx
from ..nn.model import load_model
from ..runs.presets import PRESETS
from ..runs.reproduce import write_text
from .args import add_common, add_scheduler, int_list, positive_int


def _add_plot(sub):
    g = sub.add_parser("plot", help="pictures of a saved model: confusion matrix, "
                                    'misclassified digits, filters... (pip install '
                                    '"fastcnn[plot]")')
    g.add_argument("model", metavar="MODEL.npz")
    g.add_argument("--out", required=True, metavar="DIR", help="directory for the PNG files")
    g.add_argument("--history", metavar="FILE.json",
                   help="learning curves from this History (a reproduce results file or "
                        "History.to_dict()); default: MODEL.json beside the model, if it "
                        "holds one")
    g.add_argument("--image", type=int, default=0, metavar="INDEX",
                   help="test image whose feature maps are drawn (default 0)")
    g.add_argument("--data", metavar="SPEC", help="the test images: as train's --data "
                                                  "(default: the bundled MNIST)")


def _plot(args) -> int:
    from .. import plot
    model = load_model(args.model)
    history_file = args.history
    if history_file is None:
        guess = os.path.splitext(args.model)[0] + ".json"
        history_file = guess if os.path.exists(guess) else None
    history = plot.read_history(history_file) if history_file else None
    if args.history and history is None:
        raise ValueError(f"--history: {args.history} holds no History")
    _, _, (xt, yt) = sources.load(args.data)
    if not 0 <= args.image < len(xt):
        raise ValueError(f"--image must be in [0, {len(xt)}), got {args.image}")
    paths = plot.plot_model(model, args.out, data=(xt, yt), history=history,
                            image_index=args.image)
    for name, path in paths.items():
        print(f"{name:18s} {path}")
    if history is None:
        print("(no learning curves: no History found; give --history FILE.json)")
    return 0


def _add_export(sub):
    x = sub.add_parser("export", help="write a saved model as an ONNX file "
                                      '(pip install "fastcnn[onnx]")')
    x.add_argument("model", metavar="MODEL.npz")
    x.add_argument("out", metavar="OUT.onnx")
    x.add_argument("--opset", type=int, default=None,
                   help="ONNX opset of the graph (13 or later; default 17)")


def _export(args) -> int:
    model = load_model(args.model, backend="reference")   # no compute: any backend does
    opset = onnx.OPSET if args.opset is None else args.opset
    onnx.export_onnx(model, args.out, opset=opset)
    print(f"{args.model} -> {args.out} (ONNX opset {opset}; input 'input' "
          f"(N, {', '.join(map(str, model.input_shape))}) float32 pixels in [0, 1], "
          f"output 'output' (N, {', '.join(map(str, model.output_shape))}))")
    return 0


def _add_bench(sub):
    b = sub.add_parser("bench", help="time training and inference of the chapter's nets: "
                                     "native, the NumPy reference, PyTorch if installed")
    b.add_argument("--nets", default="N1,N2,N3",
                   help="comma-separated, of N1 N2 N3 K1 (see fastcnn.bench; "
                        "default N1,N2,N3)")
    b.add_argument("--threads", dest="bench_threads", type=int_list, metavar="N[,N...]",
                   help="thread counts to time, e.g. 1,2 (default: all cores)")
    b.add_argument("--batch-size", type=int_list, default=[10], metavar="B[,B...]",
                   help="training mini-batch sizes (default 10, the book's)")
    b.add_argument("--infer-batch", type=positive_int, default=1000,
                   help="inference mini-batch size (default 1000)")
    b.add_argument("--segments", type=positive_int, default=5,
                   help="timed segments per contender (default 5)")
    b.add_argument("--segment-seconds", type=float, default=0.3,
                   help="length of one timed segment (default 0.3 s)")
    b.add_argument("--settle", type=float, default=0.1,
                   help="pause before each segment (default 0.1 s)")
    b.add_argument("--no-reference", action="store_true", help="do not time the reference")
    b.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    b.add_argument("--no-inference", action="store_true", help="time training only")
    b.add_argument("--peers", action="store_true",
                   help="also time a CIFAR-shaped net's training against PyTorch and "
                        "inference at batch 1 and 64 against PyTorch and ONNX Runtime "
                        "(fastcnn.bench.peers; bench/bench_peers.py has more)")
    b.add_argument("--json", metavar="FILE", help="also write every figure to FILE (JSON)")


def _bench(args) -> int:
    from .. import bench as benchmark
    nets = [n.strip().upper() for n in args.nets.split(",") if n.strip()]
    for n in nets:
        if n not in benchmark.NETS:
            raise ValueError(f"--nets: unknown net {n!r}; known: {', '.join(benchmark.NETS)}")
    for t in args.bench_threads or []:
        if t > MAX_THREADS:
            raise ValueError(f"--threads must be at most {MAX_THREADS}, got {t}")
    if not args.segment_seconds > 0 or not args.settle >= 0:
        raise ValueError("--segment-seconds must be > 0 and --settle >= 0, got "
                         f"{args.segment_seconds} and {args.settle}")
    settings = benchmark.Settings(
        segments=args.segments, segment_seconds=args.segment_seconds, settle=args.settle,
        reference_batches=() if args.no_reference else tuple(args.batch_size),
        reference_inference=not args.no_reference, infer_batch=args.infer_batch,
        use_torch=not args.no_torch)
    command = "python -m fastcnn " + " ".join(sys.argv[1:] if args.argv is None else args.argv)
    out = benchmark.run(nets, args.bench_threads, args.batch_size, settings, command,
                        inference=not args.no_inference)
    if args.peers:
        print("\nPeers: fastcnn / PyTorch (training, CIFAR-shaped C1) and / ONNX Runtime "
              "on fastcnn's own export (inference); images/s, median [min..max]")
        out["peers"] = benchmark.peers.run(
            [("C1", 64)], [("K1", 1), ("K1", 64), ("C1", 64)],
            args.bench_threads or [get_num_threads()], settings)
    if args.json:
        write_text(args.json, json.dumps(out, indent=1, default=str))
        print(f"results written to {args.json}")
    return 1 if out["failures"] else 0


def _add_sweep(sub):
    s = sub.add_parser("sweep", help="train a preset over a grid of settings and seeds "
                                     '(pip install "fastcnn[dask]" for --scheduler)')
    s.add_argument("preset", help="the preset to train")
    s.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="a grid axis: lr, batch_size or lmbda and its values (repeatable)")
    s.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    s.add_argument("--epochs", type=positive_int, help="default: the preset's published value")
    s.add_argument("--out", default="fastcnn-sweep",
                   help="directory for models, checkpoints and results")
    s.add_argument("--fresh", action="store_true",
                   help="retrain finished runs and discard interrupted runs' checkpoints")
    add_scheduler(s)
    add_common(s)


def _sweep(args) -> int:
    from ..runs import cluster
    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; known: {', '.join(PRESETS)}")
    grid = cluster.parse_grid(args.set)
    try:
        seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {args.seeds!r}") \
            from None
    if not seeds:
        raise ValueError("--seeds: give at least one seed")
    try:
        results = cluster.sweep(args.preset, grid, seeds, epochs=args.epochs,
                                    scheduler=args.scheduler, out=args.out, data=args.data,
                                    backend=args.backend, fresh=args.fresh,
                                    verbose=not args.quiet)
    except KeyboardInterrupt:
        return interrupted("sweep", args.out)
    print()
    print(cluster.sweep_table(results))
    print(f"\n(results in {os.path.join(args.out, 'results.md')} and results.json)")
    return 0


def interrupted(command, out):
    print(f"\nfastcnn {command}: interrupted. Finished runs are kept in {out}; the runs "
          "in progress resume from their last finished epoch when the same command is "
          "run again.", file=sys.stderr, flush=True)
    return 130


def add_parsers(sub):
    """The subcommands of this module, added to the main parser's."""
    _add_export(sub)
    _add_plot(sub)
    _add_bench(sub)
    _add_sweep(sub)


COMMANDS = {"export": _export, "plot": _plot, "bench": _bench, "sweep": _sweep}
