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
import os
import sys
import time

from ..backend.build import build_info
from ..backend.threads import MAX_THREADS, get_num_threads, set_num_threads
from ..common.version import VERSION
from ..data import sources
from ..nn.model import load_model
from ..runs import reproduce as R
from ..runs.presets import PRESETS
from ..runs import training_run
from . import extras
from .args import add_common, add_scheduler, positive_int

QUICK = dict(preset="conv2-relu", epochs=3)


def _parser():
    p = argparse.ArgumentParser(prog="fastcnn", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"fastcnn {VERSION}")
    sub = p.add_subparsers(dest="command")

    t = sub.add_parser("train", help="train a preset model on MNIST")
    t.add_argument("preset", nargs="?", choices=list(PRESETS),
                   help="model (default: conv2-relu for 3 epochs, the quick main job)")
    t.add_argument("--epochs", type=positive_int,
                   help="default: the preset's published value")
    t.add_argument("--batch-size", type=positive_int, help="mini-batch size")
    t.add_argument("--lr", type=float, help="learning rate (the book's eta)")
    t.add_argument("--lmbda", type=float, help="L2 regularisation (book presets)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--mpi", action="store_true",
                   help="data-parallel over the ranks of an MPI job: mpiexec -n 2 python -m "
                        "fastcnn train PRESET --mpi (needs pip install \"fastcnn[mpi]\")")
    add_common(t)
    t.add_argument("--save", metavar="MODEL.npz", help="save the trained model here (and "
                                                      "its results and History in MODEL.json)")

    e = sub.add_parser("evaluate", help="evaluate a saved model on MNIST")
    e.add_argument("model", metavar="MODEL.npz")
    add_common(e)

    r = sub.add_parser("reproduce", help="train the book's table and compare")
    r.add_argument("--rows", default=",".join(R.DEFAULT_ROWS),
                   help=f"comma-separated presets, or 'all' ({','.join(R.ALL_ROWS)}); "
                        f"default {','.join(R.DEFAULT_ROWS)}")
    r.add_argument("--out", default="fastcnn-reproduce",
                   help="directory for models and results (reused by later runs)")
    r.add_argument("--fresh", action="store_true",
                   help="retrain runs already finished, and discard the checkpoints of "
                        "interrupted ones instead of resuming them")
    r.add_argument("--epochs", type=positive_int,
                   help="override every row's epochs (quick checks)")
    r.add_argument("--seed", type=int, default=0)
    add_scheduler(r)
    add_common(r)

    sub.add_parser("selfcheck", help="print build info and check every native op")
    extras.add_parsers(sub)
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    args.argv = argv
    if args.command is None:
        _parser().print_help()
        return 0
    if args.command == "selfcheck":
        return _selfcheck()
    try:
        if getattr(args, "threads", None) is not None:
            if args.threads > MAX_THREADS:
                raise ValueError(f"--threads must be at most {MAX_THREADS}, "
                                 f"got {args.threads}")
            set_num_threads(args.threads)
        if args.command == "train":
            return _train(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command in extras.COMMANDS:
            return extras.COMMANDS[args.command](args)
        return _reproduce(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        print(f"fastcnn {args.command}: error: {e}", file=sys.stderr)
        return 2


def _selfcheck() -> int:
    from ..backend import selfcheck
    print("fastcnn", VERSION)
    for key, value in build_info().items():
        print(f"  {key:14s} {value}")
    print()
    return 0 if selfcheck.run() else 1


def _train(args) -> int:
    preset, epochs = args.preset, args.epochs
    if preset is None:
        preset = QUICK["preset"]
        epochs = QUICK["epochs"] if epochs is None else epochs
    spec = PRESETS[preset]
    n_epochs = spec["epochs"] if epochs is None else epochs
    comm, rank = None, 0
    if args.mpi:
        from ..nn.data_parallel import import_mpi
        comm = import_mpi().COMM_WORLD
        rank = comm.Get_rank()
        if rank:  # only rank 0 reports and saves
            args.quiet = True
    if not args.quiet:
        data = sources.describe(args.data)
        print(f"fastcnn {VERSION}: training {preset} on {data} for {n_epochs} "
              f"epoch{'' if n_epochs == 1 else 's'} ({args.backend} backend, "
              f"{get_num_threads()} thread{'' if get_num_threads() == 1 else 's'}"
              + (f" x {comm.Get_size()} MPI ranks" if comm is not None else "") + ")",
              flush=True)
    res = training_run.train(preset, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                        lmbda=args.lmbda, seed=args.seed, backend=args.backend,
                        data_path=args.data, verbose=not args.quiet, save=args.save, comm=comm)
    if rank:
        return 0 if res["test_accuracy"] is not None else 1
    if res["stop_reason"]:
        print(res["stop_reason"], file=sys.stderr)
    print(f"{preset}: test accuracy {R.fmt(res['test_accuracy'])} at the epoch of best "
          f"validation accuracy ({res['best_epoch']}), {R.fmt(res['final_test_accuracy'])} "
          f"after the last; {res['seconds']:.0f} s")
    if args.save:
        print(f"saved to {args.save}")
        R.save_results(args.save, res)
    return 0 if res["test_accuracy"] is not None else 1


def _evaluate(args) -> int:
    model = load_model(args.model, backend=args.backend)
    _, (xv, yv), (xt, yt) = sources.load(args.data)
    if len(model.input_shape) == 1:  # a model of flat rows (fc100, network3's first FC layer)
        xv, xt = xv.reshape(len(xv), -1), xt.reshape(len(xt), -1)
    val = model.evaluate(xv, yv)["accuracy"]
    test = model.evaluate(xt, yt)["accuracy"]
    print(f"{args.model}: validation accuracy {val:.2%} (last {len(yv)} training images), "
          f"test accuracy {test:.2%} (the {len(yt)} test images)")
    return 0


def _reproduce(args) -> int:
    rows = R.check_rows(args.rows)
    os.makedirs(args.out, exist_ok=True)
    started = time.monotonic()
    if getattr(args, "scheduler", None):
        from ..runs import cluster
        try:
            results = cluster.reproduce_rows(rows, args)
        except KeyboardInterrupt:
            return extras.interrupted("reproduce", args.out)
        R.write_results(args.out, results)
        print()
        print(R.table(results) + R.notes(results))
        print(_footer(args.out, started))
        return 0
    try:
        results = R.reproduce(rows, args)
    except KeyboardInterrupt:
        print(f"\nfastcnn reproduce: interrupted. Finished runs are kept in {args.out}; "
              "the run in progress resumes from its last finished epoch when the same "
              "command is run again.", file=sys.stderr, flush=True)
        return 130
    print()
    print(R.table(results) + R.notes(results))
    print(_footer(args.out, started))
    return 0


def _footer(out, started) -> str:
    """Where the results are, and this command's own wall time (finished runs it
    reused took none of it; runs it resumed count only from their resumption)."""
    return (f"\n(results in {os.path.join(out, 'results.md')} and results.json; "
            f"this command ran {(time.monotonic() - started) / 60:.1f} min)")


if __name__ == "__main__":
    sys.exit(main())
