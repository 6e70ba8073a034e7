"""The command line: `python -m fastcnn` or `fastcnn`.

  train [PRESET]       train a preset on the bundled MNIST and print its test accuracy
                       (no PRESET: the quick main job, conv2-relu for 3 epochs)
  evaluate MODEL.npz   accuracy of a saved model on the MNIST validation and test sets
  reproduce            the chapter-6 table: train the book's rows (and the Keras
                       models) with their published hyper-parameters, and print our
                       accuracy beside the book's; finished runs are kept and reused,
                       an interrupted run resumes from its last finished epoch
  sweep PRESET         train a preset over a grid of settings and seeds, on a Dask
                       cluster or local worker processes (pip install "fastcnn[dask]")
  selfcheck            build information and a check of every native op against NumPy
  plot MODEL.npz --out DIR    learning curves, confusion matrix, misclassified digits,
                       filters and feature maps as PNG files (pip install "fastcnn[plot]")
  export MODEL.npz OUT.onnx   the model as an ONNX file (pip install "fastcnn[onnx]")
  bench                training and inference speed of the chapter's nets on this
                       machine: native, the NumPy reference, and PyTorch if installed
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

QUICK = dict(preset="conv2-relu", epochs=3)
DEFAULT_ROWS = ["conv", "conv2", "conv2-relu", "keras-cnn"]
ALL_ROWS = ["fc100", "conv", "conv2", "conv2-relu", "conv2-relu-expanded", "dropout",
            "ensemble", "keras-cnn", "keras-fcn"]
ENSEMBLE_SIZE = 5


def _positive_int(text):
    """argparse type: an integer >= 1 (0 would silently mean "the default" further on)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {v}")
    return v


def _version() -> str:
    """The installed distribution's version (a source tree without metadata: 'unknown')."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("fastcnn")
    except PackageNotFoundError:
        return "unknown"


def _parser():
    from . import presets
    p = argparse.ArgumentParser(prog="fastcnn", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"fastcnn {_version()}")
    sub = p.add_subparsers(dest="command")

    t = sub.add_parser("train", help="train a preset model on MNIST")
    t.add_argument("preset", nargs="?", choices=list(presets.PRESETS),
                   help="model (default: conv2-relu for 3 epochs, the quick main job)")
    t.add_argument("--epochs", type=_positive_int,
                   help="default: the preset's published value")
    t.add_argument("--batch-size", type=_positive_int, help="mini-batch size")
    t.add_argument("--lr", type=float, help="learning rate (the book's eta)")
    t.add_argument("--lmbda", type=float, help="L2 regularisation (book presets)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--mpi", action="store_true",
                   help="data-parallel over the ranks of an MPI job: mpiexec -n 2 python -m "
                        "fastcnn train PRESET --mpi (needs pip install \"fastcnn[mpi]\")")
    _common(t)
    t.add_argument("--save", metavar="MODEL.npz", help="save the trained model here (and "
                                                      "its results and History in MODEL.json)")

    e = sub.add_parser("evaluate", help="evaluate a saved model on MNIST")
    e.add_argument("model", metavar="MODEL.npz")
    _common(e)

    r = sub.add_parser("reproduce", help="train the book's table and compare")
    r.add_argument("--rows", default=",".join(DEFAULT_ROWS),
                   help=f"comma-separated presets, or 'all' ({','.join(ALL_ROWS)}); "
                        f"default {','.join(DEFAULT_ROWS)}")
    r.add_argument("--out", default="fastcnn-reproduce",
                   help="directory for models and results (reused by later runs)")
    r.add_argument("--fresh", action="store_true",
                   help="retrain runs already finished, and discard the checkpoints of "
                        "interrupted ones instead of resuming them")
    r.add_argument("--epochs", type=_positive_int,
                   help="override every row's epochs (quick checks)")
    r.add_argument("--seed", type=int, default=0)
    _add_scheduler(r)
    _common(r)

    sub.add_parser("selfcheck", help="print build info and check every native op")
    _add_export(sub)
    _add_plot(sub)
    _add_bench(sub)
    _add_sweep(sub)
    return p


def _common(p):
    p.add_argument("--threads", type=_positive_int, help="OpenMP threads (default: all cores)")
    p.add_argument("--backend", choices=["native", "reference"], default="native")
    p.add_argument("--data", metavar="DIR", help="directory of the four IDX files of MNIST "
                                                   "or a data set in its format (Fashion-MNIST,"
                                                   " KMNIST...; default: the bundled MNIST)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    args.argv = argv
    if args.command is None:
        _parser().print_help()
        return 0
    if args.command == "selfcheck":
        return _selfcheck()
    import fastcnn
    try:
        if getattr(args, "threads", None) is not None:
            if args.threads > fastcnn.MAX_THREADS:
                raise ValueError(f"--threads must be at most {fastcnn.MAX_THREADS}, "
                                 f"got {args.threads}")
            fastcnn.set_num_threads(args.threads)
        if args.command == "train":
            return _train(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command in EXTRA_COMMANDS:
            return EXTRA_COMMANDS[args.command](args)
        return _reproduce(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        print(f"fastcnn {args.command}: error: {e}", file=sys.stderr)
        return 2


def _selfcheck() -> int:
    import fastcnn
    from . import selfcheck
    print("fastcnn", fastcnn.__version__)
    for key, value in fastcnn.build_info().items():
        print(f"  {key:14s} {value}")
    print()
    return 0 if selfcheck.run() else 1


def _train(args) -> int:
    from . import presets
    import fastcnn
    preset, epochs = args.preset, args.epochs
    if preset is None:
        preset = QUICK["preset"]
        epochs = QUICK["epochs"] if epochs is None else epochs
    spec = presets.PRESETS[preset]
    n_epochs = spec["epochs"] if epochs is None else epochs
    comm, rank = None, 0
    if args.mpi:
        from .mpi import import_mpi
        comm = import_mpi().COMM_WORLD
        rank = comm.Get_rank()
        if rank:  # only rank 0 reports and saves
            args.quiet = True
    if not args.quiet:
        data = "MNIST" if args.data is None else args.data
        print(f"fastcnn {fastcnn.__version__}: training {preset} on {data} for {n_epochs} "
              f"epoch{'' if n_epochs == 1 else 's'} ({args.backend} backend, "
              f"{fastcnn.get_num_threads()} thread{'' if fastcnn.get_num_threads() == 1 else 's'}"
              + (f" x {comm.Get_size()} MPI ranks" if comm is not None else "") + ")",
              flush=True)
    res = presets.train(preset, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                        lmbda=args.lmbda, seed=args.seed, backend=args.backend,
                        data_path=args.data, verbose=not args.quiet, save=args.save, comm=comm)
    if rank:
        return 0 if res["test_accuracy"] is not None else 1
    if res["stop_reason"]:
        print(res["stop_reason"], file=sys.stderr)
    print(f"{preset}: test accuracy {_fmt(res['test_accuracy'])} at the epoch of best "
          f"validation accuracy ({res['best_epoch']}), {_fmt(res['final_test_accuracy'])} "
          f"after the last; {res['seconds']:.0f} s")
    if args.save:
        print(f"saved to {args.save}")
        _save_results(args.save, res)
    return 0 if res["test_accuracy"] is not None else 1


def _fmt(pct):
    return "n/a" if pct is None else f"{pct:.2f}%"


def _evaluate(args) -> int:
    import fastcnn
    from . import datasets
    model = fastcnn.load(args.model, backend=args.backend)
    _, (xv, yv), (xt, yt) = datasets.load_mnist(args.data)
    if len(model.input_shape) == 1:  # a model of flat rows (fc100, network3's first FC layer)
        xv, xt = xv.reshape(len(xv), -1), xt.reshape(len(xt), -1)
    val = model.evaluate(xv, yv)["accuracy"]
    test = model.evaluate(xt, yt)["accuracy"]
    print(f"{args.model}: validation accuracy {val:.2%} (last 10000 training images), "
          f"test accuracy {test:.2%} (the 10000 test images)")
    return 0


def _reproduce(args) -> int:
    from . import presets
    rows = ALL_ROWS if args.rows == "all" else [r.strip() for r in args.rows.split(",")]
    for r in rows:
        if r not in presets.PRESETS and r != "ensemble":
            raise ValueError(f"--rows: unknown row {r!r}; known: {', '.join(ALL_ROWS)}")
    os.makedirs(args.out, exist_ok=True)
    started = time.monotonic()
    if getattr(args, "scheduler", None):
        from . import distributed
        try:
            results = distributed.reproduce(rows, args)
        except KeyboardInterrupt:
            return _interrupted("reproduce", args.out)
        _write_results(args.out, results)
        print()
        print(table(results) + _notes(results))
        print(_footer(args.out, started))
        return 0
    results = []
    try:
        for r in rows:
            if r == "ensemble":
                results.append(_ensemble(args))
            else:
                results.append(_run_once(args, r, args.seed))
            _write_results(args.out, results)
    except KeyboardInterrupt:
        print(f"\nfastcnn reproduce: interrupted. Finished runs are kept in {args.out}; "
              "the run in progress resumes from its last finished epoch when the same "
              "command is run again.", file=sys.stderr, flush=True)
        return 130
    print()
    print(table(results) + _notes(results))
    print(_footer(args.out, started))
    return 0


def _footer(out, started) -> str:
    """Where the results are, and this command's own wall time (finished runs it
    reused took none of it; runs it resumed count only from their resumption)."""
    return (f"\n(results in {os.path.join(out, 'results.md')} and results.json; "
            f"this command ran {(time.monotonic() - started) / 60:.1f} min)")


def run_stem(out, preset, seed, epochs=None, overrides=None):
    """The path, without extension, of one run's files in directory out."""
    settings = "".join(f"-{k}{v}" for k, v in sorted((overrides or {}).items()))
    return os.path.join(out, f"{preset}{settings}-seed{seed}" +
                        (f"-e{epochs}" if epochs else ""))


def _run_once(args, preset, seed, overrides=None, on_epoch=None, log=None):
    """Train one preset, or reuse the result of an earlier run with the same settings.
    While it trains, <stem>.partial.npz holds its state after the last finished
    epoch; a later call resumes from there (--fresh: starts over). overrides:
    presets.train's batch_size, lr, lmbda; on_epoch: its per-epoch hook;
    log: prints this function's lines."""
    from . import presets
    log = log or _say
    stem = run_stem(args.out, preset, seed, args.epochs, overrides)
    partial = stem + ".partial.npz"
    if not args.fresh and os.path.exists(stem + ".json") and os.path.exists(stem + ".npz"):
        with open(stem + ".json") as f:
            res = json.load(f)
        log(f"== {preset} (seed {seed}): reusing the finished run in {stem}.json")
        _remove(partial)   # left over if a run stopped between its results and clean-up
        if not os.path.exists(stem + ".png"):
            _learning_curve(stem, res, log)
        return res
    if args.fresh and os.path.exists(partial):
        log(f"== {preset} (seed {seed}): discarding the interrupted run in {partial}")
        os.remove(partial)
    log(f"== {preset} (seed {seed})")
    res = presets.train(preset, epochs=args.epochs, seed=seed, backend=args.backend,
                        data_path=args.data, verbose=not args.quiet, save=stem + ".npz",
                        checkpoint=partial, **(overrides or {}),
                        **({"on_epoch": on_epoch} if on_epoch else {}))
    _atomic_write(stem + ".json", json.dumps(res, indent=1))
    _remove(partial)
    log(f"== {preset}: test accuracy {_fmt(res['test_accuracy'])} (book "
          f"{res['book']:.2f}%), {res['seconds']:.0f} s")
    _learning_curve(stem, res, log)
    return res


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _ensemble(args, members=None):
    """Row 9: a plurality vote of five row-8 (dropout) nets, seeds seed..seed+4
    (members: their results when they were trained elsewhere, e.g. as parallel
    tasks on Dask). "seconds" is the members' training times added up."""
    import fastcnn
    from . import datasets
    parallel = members is not None
    if members is None:
        members = [_run_once(args, "dropout", args.seed + i) for i in range(ENSEMBLE_SIZE)]
    models = []
    for i in range(ENSEMBLE_SIZE):
        stem = os.path.join(args.out, f"dropout-seed{args.seed + i}" +
                            (f"-e{args.epochs}" if args.epochs else ""))
        models.append(fastcnn.load(stem + ".npz", backend=args.backend))
    _, _, (xt, yt) = datasets.load_mnist(args.data)
    acc = fastcnn.Ensemble(models, method="vote").evaluate(xt, yt)["accuracy"]
    return {"preset": "ensemble", "row": 9, "book": 99.67,
            "epochs": members[0]["epochs"], "epochs_run": members[0]["epochs_run"],
            "test_accuracy": round(100 * acc, 2), "final_test_accuracy": round(100 * acc, 2),
            "best_epoch": None, "seconds": round(sum(m["seconds"] for m in members), 1),
            "member_seconds": [m["seconds"] for m in members], "members_parallel": parallel,
            "seed": args.seed, "backend": args.backend}


def table(results) -> str:
    """A Markdown table of reproduce results."""
    lines = ["| row | preset | book | fastcnn | difference | epochs | best epoch | wall time |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        ours = r.get("test_accuracy")
        diff = "" if ours is None else f"{ours - r['book']:+.2f}"
        row = r["row"] if r["row"] is not None else "Keras"
        best = r.get("best_epoch") or ""
        mins = r["seconds"] / 60
        lines.append(f"| {row} | {r['preset']} | {r['book']:.2f} | {_fmt(ours)} | {diff} | "
                     f"{r['epochs_run']} | {best} | {mins:.1f} min |")
    return "\n".join(lines)


def _notes(results) -> str:
    """What the table needs said about its runs: resumed runs' wall time, and an
    ensemble's, which adds up its members' (even when they ran in parallel)."""
    notes = []
    resumed = [r["preset"] for r in results if r.get("segments", 1) > 1]
    if resumed:
        notes.append(f"Resumed after an interruption: {', '.join(resumed)}. The wall time of "
                     "a resumed run is the sum of its segments' (each from its start, data "
                     "loading included, to its last finished epoch).")
    for r in results:
        if r["preset"] == "ensemble" and r.get("member_seconds"):
            how = ("they ran as parallel tasks, so the ensemble took less wall time than that"
                   if r.get("members_parallel") else "they ran one after the other")
            notes.append(f"The ensemble's wall time is its {len(r['member_seconds'])} members' "
                         f"added up ({how}); the slowest member took "
                         f"{max(r['member_seconds']) / 60:.1f} min.")
    return "".join("\n\n" + n for n in notes)


def _write_results(out, results):
    _atomic_write(os.path.join(out, "results.json"), json.dumps(results, indent=1))
    _atomic_write(os.path.join(out, "results.md"), table(results) + _notes(results) + "\n")


def _atomic_write(path, text):
    from .saving import atomic_write
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


# ------------------------------------------------- export, plot, bench --
# Subcommands of the optional extras; each parses its own arguments here and
# runs from EXTRA_COMMANDS.

def _save_results(model_path, res):
    """MODEL.json beside MODEL.npz: the run's results and History, which
    `fastcnn plot MODEL.npz` draws as learning curves."""
    path = os.path.splitext(model_path)[0] + ".json"
    _atomic_write(path, json.dumps(res, indent=1))


def _say(text):
    print(text, flush=True)


def _learning_curve(stem, res, log=_say):
    """<stem>.png: the run's learning curves, when matplotlib is installed."""
    if not res.get("history"):
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log('   (no learning curve: pip install "fastcnn[plot]" for pictures)')
        return
    from . import plot
    plot.learning_curves(res["history"], stem + ".png",
                         title=f"{res['preset']} (seed {res['seed']}): test accuracy "
                               f"{_fmt(res.get('test_accuracy'))}")
    log(f"   learning curves in {stem}.png")


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
    g.add_argument("--data", metavar="DIR", help="directory of the four MNIST IDX files "
                                                 "(default: the bundled copy)")


def _plot(args) -> int:
    import fastcnn
    from . import datasets, plot
    model = fastcnn.load(args.model)
    history_file = args.history
    if history_file is None:
        guess = os.path.splitext(args.model)[0] + ".json"
        history_file = guess if os.path.exists(guess) else None
    history = plot.read_history(history_file) if history_file else None
    if args.history and history is None:
        raise ValueError(f"--history: {args.history} holds no History")
    _, _, (xt, yt) = datasets.load_mnist(args.data)
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
    import fastcnn
    from . import onnx_export
    model = fastcnn.load(args.model, backend="reference")   # no compute: any backend does
    opset = onnx_export.OPSET if args.opset is None else args.opset
    onnx_export.export_onnx(model, args.out, opset=opset)
    print(f"{args.model} -> {args.out} (ONNX opset {opset}; input 'input' "
          f"(N, {', '.join(map(str, model.input_shape))}) float32 pixels in [0, 1], "
          f"output 'output' (N, {', '.join(map(str, model.output_shape))}))")
    return 0


def _int_list(text):
    """argparse type: "1,2" -> [1, 2], each an integer >= 1."""
    return [_positive_int(v) for v in text.split(",") if v.strip()] or \
        _positive_int("")


def _add_bench(sub):
    b = sub.add_parser("bench", help="time training and inference of the chapter's nets: "
                                     "native, the NumPy reference, PyTorch if installed")
    b.add_argument("--nets", default="N1,N2,N3",
                   help="comma-separated, of N1 N2 N3 K1 (see fastcnn.benchmark; "
                        "default N1,N2,N3)")
    b.add_argument("--threads", dest="bench_threads", type=_int_list, metavar="N[,N...]",
                   help="thread counts to time, e.g. 1,2 (default: all cores)")
    b.add_argument("--batch-size", type=_int_list, default=[10], metavar="B[,B...]",
                   help="training mini-batch sizes (default 10, the book's)")
    b.add_argument("--infer-batch", type=_positive_int, default=1000,
                   help="inference mini-batch size (default 1000)")
    b.add_argument("--segments", type=_positive_int, default=5,
                   help="timed segments per contender (default 5)")
    b.add_argument("--segment-seconds", type=float, default=0.3,
                   help="length of one timed segment (default 0.3 s)")
    b.add_argument("--settle", type=float, default=0.1,
                   help="pause before each segment (default 0.1 s)")
    b.add_argument("--no-reference", action="store_true", help="do not time the reference")
    b.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    b.add_argument("--no-inference", action="store_true", help="time training only")
    b.add_argument("--json", metavar="FILE", help="also write every figure to FILE (JSON)")


def _bench(args) -> int:
    from . import benchmark
    nets = [n.strip().upper() for n in args.nets.split(",") if n.strip()]
    for n in nets:
        if n not in benchmark.NETS:
            raise ValueError(f"--nets: unknown net {n!r}; known: {', '.join(benchmark.NETS)}")
    import fastcnn
    for t in args.bench_threads or []:
        if t > fastcnn.MAX_THREADS:
            raise ValueError(f"--threads must be at most {fastcnn.MAX_THREADS}, got {t}")
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
    if args.json:
        _atomic_write(args.json, json.dumps(out, indent=1, default=str))
        print(f"results written to {args.json}")
    return 1 if out["failures"] else 0


def _add_scheduler(p):
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run each run as a Dask task: tcp://HOST:8786 for a running "
                        "cluster (--out must be on a filesystem all workers share), or "
                        'local:N for N local worker processes (pip install "fastcnn[dask]")')


def _add_sweep(sub):
    s = sub.add_parser("sweep", help="train a preset over a grid of settings and seeds "
                                     '(pip install "fastcnn[dask]" for --scheduler)')
    s.add_argument("preset", help="the preset to train")
    s.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="a grid axis: lr, batch_size or lmbda and its values (repeatable)")
    s.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    s.add_argument("--epochs", type=_positive_int, help="default: the preset's published value")
    s.add_argument("--out", default="fastcnn-sweep",
                   help="directory for models, checkpoints and results")
    s.add_argument("--fresh", action="store_true",
                   help="retrain finished runs and discard interrupted runs' checkpoints")
    _add_scheduler(s)
    _common(s)


def _sweep(args) -> int:
    from . import distributed, presets
    if args.preset not in presets.PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; known: {', '.join(presets.PRESETS)}")
    grid = distributed.parse_grid(args.set)
    try:
        seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {args.seeds!r}") \
            from None
    if not seeds:
        raise ValueError("--seeds: give at least one seed")
    try:
        results = distributed.sweep(args.preset, grid, seeds, epochs=args.epochs,
                                    scheduler=args.scheduler, out=args.out, data=args.data,
                                    backend=args.backend, fresh=args.fresh,
                                    verbose=not args.quiet)
    except KeyboardInterrupt:
        return _interrupted("sweep", args.out)
    print()
    print(distributed.sweep_table(results))
    print(f"\n(results in {os.path.join(args.out, 'results.md')} and results.json)")
    return 0


def _interrupted(command, out):
    print(f"\nfastcnn {command}: interrupted. Finished runs are kept in {out}; the runs "
          "in progress resume from their last finished epoch when the same command is "
          "run again.", file=sys.stderr, flush=True)
    return 130


EXTRA_COMMANDS = {"export": _export, "plot": _plot, "bench": _bench, "sweep": _sweep}


if __name__ == "__main__":
    sys.exit(main())
