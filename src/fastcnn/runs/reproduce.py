"""reproduce: the book's chapter-6 table, row by row, beside the book's figures.

Each run (a preset and a seed) is trained by training_run.train with a
checkpoint after every epoch, or its finished results are reused: its files
are <out>/<preset>[-<settings>]-seed<seed>[-e<epochs>].{npz,json,png} (the model,
its results and History, its learning curves) and .partial.npz while it trains.
Row 9, the ensemble, is a vote of five row-8 (dropout) nets. runs/dask.py runs
the same runs as Dask tasks.
"""
from __future__ import annotations

import json
import os

from ..data import idx
from ..io.files import atomic_write
from ..nn.ensemble import Ensemble
from ..nn.model import load_model
from ..plot.figures import learning_curves
from . import training_run
from .presets import PRESETS

DEFAULT_ROWS = ["conv", "conv2", "conv2-relu", "keras-cnn"]
ALL_ROWS = ["fc100", "conv", "conv2", "conv2-relu", "conv2-relu-expanded", "dropout",
            "ensemble", "keras-cnn", "keras-fcn"]
ENSEMBLE_SIZE = 5


def check_rows(rows):
    """The rows asked for ("all" or names), checked against the known ones."""
    rows = ALL_ROWS if rows == "all" else [r.strip() for r in rows.split(",")]
    for r in rows:
        if r not in PRESETS and r != "ensemble":
            raise ValueError(f"--rows: unknown row {r!r}; known: {', '.join(ALL_ROWS)}")
    return rows


def reproduce(rows, args):
    """Train (or reuse) each row in turn, writing the results table after each;
    returns the results. args: out, epochs, seed, fresh, backend, data, quiet."""
    results = []
    for r in rows:
        if r == "ensemble":
            results.append(ensemble(args))
        else:
            results.append(run_once(args, r, args.seed))
        write_results(args.out, results)
    return results


def run_stem(out, preset, seed, epochs=None, overrides=None):
    """The path, without extension, of one run's files in directory out."""
    settings = "".join(f"-{k}{v}" for k, v in sorted((overrides or {}).items()))
    return os.path.join(out, f"{preset}{settings}-seed{seed}" +
                        (f"-e{epochs}" if epochs else ""))


def run_once(args, preset, seed, overrides=None, on_epoch=None, log=None):
    """Train one preset, or reuse the result of an earlier run with the same settings.
    While it trains, <stem>.partial.npz holds its state after the last finished
    epoch; a later call resumes from there (--fresh: starts over). overrides:
    training_run.train's batch_size, lr, lmbda; on_epoch: its per-epoch hook;
    log: prints this function's lines."""
    log = log or _say
    stem = run_stem(args.out, preset, seed, args.epochs, overrides)
    partial = stem + ".partial.npz"
    if not args.fresh and os.path.exists(stem + ".json") and os.path.exists(stem + ".npz"):
        with open(stem + ".json") as f:
            res = json.load(f)
        log(f"== {preset} (seed {seed}): reusing the finished run in {stem}.json")
        _remove(partial)   # left over if a run stopped between its results and clean-up
        if not os.path.exists(stem + ".png"):
            learning_curve(stem, res, log)
        return res
    if args.fresh and os.path.exists(partial):
        log(f"== {preset} (seed {seed}): discarding the interrupted run in {partial}")
        os.remove(partial)
    log(f"== {preset} (seed {seed})")
    res = training_run.train(preset, epochs=args.epochs, seed=seed, backend=args.backend,
                        data_path=args.data, verbose=not args.quiet, save=stem + ".npz",
                        checkpoint=partial, **(overrides or {}),
                        **({"on_epoch": on_epoch} if on_epoch else {}))
    write_text(stem + ".json", json.dumps(res, indent=1))
    _remove(partial)
    log(f"== {preset}: test accuracy {fmt(res['test_accuracy'])} (book "
          f"{res['book']:.2f}%), {res['seconds']:.0f} s")
    learning_curve(stem, res, log)
    return res


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def ensemble(args, members=None):
    """Row 9: a plurality vote of five row-8 (dropout) nets, seeds seed..seed+4
    (members: their results when they were trained elsewhere, e.g. as parallel
    tasks on Dask). "seconds" is the members' training times added up."""
    parallel = members is not None
    if members is None:
        members = [run_once(args, "dropout", args.seed + i) for i in range(ENSEMBLE_SIZE)]
    models = []
    for i in range(ENSEMBLE_SIZE):
        stem = os.path.join(args.out, f"dropout-seed{args.seed + i}" +
                            (f"-e{args.epochs}" if args.epochs else ""))
        models.append(load_model(stem + ".npz", backend=args.backend))
    _, _, (xt, yt) = idx.load_mnist(args.data)
    acc = Ensemble(models, method="vote").evaluate(xt, yt)["accuracy"]
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
        lines.append(f"| {row} | {r['preset']} | {r['book']:.2f} | {fmt(ours)} | {diff} | "
                     f"{r['epochs_run']} | {best} | {mins:.1f} min |")
    return "\n".join(lines)


def notes(results) -> str:
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


def write_results(out, results):
    write_text(os.path.join(out, "results.json"), json.dumps(results, indent=1))
    write_text(os.path.join(out, "results.md"), table(results) + notes(results) + "\n")


def write_text(path, text):
    """A text file (UTF-8), written atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def save_results(model_path, res):
    """MODEL.json beside MODEL.npz: the run's results and History, which
    `fastcnn plot MODEL.npz` draws as learning curves."""
    path = os.path.splitext(model_path)[0] + ".json"
    write_text(path, json.dumps(res, indent=1))


def _say(text):
    print(text, flush=True)


def learning_curve(stem, res, log=_say):
    """<stem>.png: the run's learning curves, when matplotlib is installed."""
    if not res.get("history"):
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log('   (no learning curve: pip install "fastcnn[plot]" for pictures)')
        return
    learning_curves(res["history"], stem + ".png",
                    title=f"{res['preset']} (seed {res['seed']}): test accuracy "
                          f"{fmt(res.get('test_accuracy'))}")
    log(f"   learning curves in {stem}.png")


def fmt(pct):
    return "n/a" if pct is None else f"{pct:.2f}%"


__all__ = ["DEFAULT_ROWS", "ALL_ROWS", "ENSEMBLE_SIZE", "check_rows", "reproduce", "run_once",
           "run_stem", "ensemble", "table", "notes", "write_results", "write_text",
           "save_results", "learning_curve", "fmt"]
