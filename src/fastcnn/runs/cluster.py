"""Many training runs as Dask tasks: `reproduce --scheduler` and `sweep`.

Each run (a reproduce row, an ensemble member, a point of a sweep's grid and
seed) is one task. The task runs the same code as a run of `reproduce` in one
process (reproduce.run_once): it checkpoints into the output directory after every
epoch and resumes from that checkpoint if it finds one. So when a worker dies,
Dask gives its task to another worker, which continues from the last finished
epoch and ends with the parameters an uninterrupted run has, bit for bit. The
output directory must therefore be one every worker sees (a shared filesystem
on a real cluster).

dask.distributed is an optional dependency (pip install "fastcnn[dask]"); it
is imported only when a scheduler is used.
"""
from __future__ import annotations

import json
import os
from types import SimpleNamespace

from ..backend.threads import set_num_threads
from . import reproduce
from .presets import PRESETS
from .reproduce import fmt, run_stem

PROGRESS_TOPIC = "fastcnn-progress"
GRID_KEYS = {"lr": float, "lmbda": float, "batch_size": int}


def _dask():
    try:
        import distributed
    except ImportError:
        raise ImportError("running on Dask needs dask.distributed: "
                          "pip install 'fastcnn[dask]'") from None
    return distributed


def client_for(scheduler):
    """(client, cluster) for a scheduler address: "tcp://host:8786" connects to a
    running cluster (cluster is None); "local:N" starts a LocalCluster of N worker
    processes of one thread each. The caller closes both."""
    distributed = _dask()
    if not isinstance(scheduler, str) or not scheduler:
        raise ValueError(f"scheduler must be 'local:N' or an address such as "
                         f"tcp://host:8786, got {scheduler!r}")
    if scheduler.startswith("local:"):
        try:
            n = int(scheduler[len("local:"):])
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"scheduler 'local:N' needs an integer N >= 1, got {scheduler!r}")
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           dashboard_address=":0")
        return distributed.Client(cluster), cluster
    return distributed.Client(scheduler), None


def parse_grid(items):
    """["lr=0.01,0.1", "batch_size=10"] -> {"lr": [0.01, 0.1], "batch_size": [10]}."""
    grid = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in GRID_KEYS:
            raise ValueError(f"--set must be NAME=V1,V2,... with NAME one of "
                             f"{', '.join(GRID_KEYS)}, got {item!r}")
        try:
            grid[name] = [GRID_KEYS[name](v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--set {name}: values must be {GRID_KEYS[name].__name__}s, "
                             f"got {values!r}") from None
        if not grid[name]:
            raise ValueError(f"--set {name}: give at least one value")
    return grid


def _points(grid):
    """Every combination of the grid's values, as dicts, in a fixed order."""
    points = [{}]
    for name in sorted(grid):
        points = [{**p, name: v} for p in points for v in grid[name]]
    return points


def _job(out, preset, seed, epochs, overrides, data, backend, verbose):
    stem = run_stem(out, preset, seed, epochs, overrides)
    return {"name": os.path.basename(stem), "stem": stem, "out": out, "preset": preset,
            "seed": seed, "epochs": epochs, "overrides": overrides, "data": data,
            "backend": backend, "verbose": verbose}


def run_task(job):
    """One run, on a Dask worker or in this process: reproduce.run_once with the
    job's settings; progress lines are prefixed with the run's name."""
    emit = _emitter()
    if emit is not print:
        # A worker of T threads runs up to T tasks at once; each uses one fastcnn
        # thread, so the worker's process uses T cores (no oversubscription). The
        # results do not depend on the thread count.
        set_num_threads(1)
    name = job["name"]

    def log(text):
        emit(f"[{name}] {text.lstrip()}")

    def on_epoch(epoch, logs):
        val = logs.get("val_accuracy")
        line = f"epoch {epoch}: loss {logs.get('loss', float('nan')):.4f}"
        if val is not None:
            line += f", validation accuracy {val:.2%}"
        log(line)

    args = SimpleNamespace(out=job["out"], epochs=job["epochs"], fresh=False,
                           backend=job["backend"], data=job["data"], quiet=True)
    res = reproduce.run_once(args, job["preset"], job["seed"], job["overrides"] or None,
                        on_epoch=on_epoch if job["verbose"] else None,
                        log=log if job["verbose"] else (lambda text: None))
    return {**res, "run": name, "settings": job["overrides"]}


def _emitter():
    """On a Dask worker: a function sending a line to the client's progress
    topic; elsewhere print."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return print

    def emit(text):
        worker.log_event(PROGRESS_TOPIC, text)
    return emit


def run_jobs(jobs, scheduler=None, verbose=True, fresh=False):
    """The results of jobs, in order: on Dask when scheduler is given (an address,
    "local:N" or a distributed.Client), else one after the other in this process.
    fresh: first delete each run's finished results and checkpoint."""
    if fresh:
        for job in jobs:
            for ext in (".json", ".npz", ".partial.npz"):
                try:
                    os.remove(job["stem"] + ext)
                except FileNotFoundError:
                    pass
    if scheduler is None:
        return [run_task(job) for job in jobs]
    distributed = _dask()
    own = not isinstance(scheduler, distributed.Client)
    client, cluster = client_for(scheduler) if own else (scheduler, None)
    try:
        if verbose:
            try:
                link = client.dashboard_link
            except Exception:   # no dashboard (bokeh missing, or none configured)
                link = None
            if link:
                print(f"Dask dashboard: {link}", flush=True)
            client.subscribe_topic(PROGRESS_TOPIC, lambda event: print(event[1], flush=True))
        # One task per run, keyed by its name (a run asked for twice is trained once).
        # A task whose worker dies is rescheduled by Dask and resumes from its
        # checkpoint; an exception in a run is not retried (it would recur).
        futures = {}
        for job in jobs:
            if job["name"] not in futures:
                futures[job["name"]] = client.submit(run_task, job, key=f"fastcnn-{job['name']}",
                                                     pure=False)
        done = dict(zip(futures, client.gather(list(futures.values()))))
        if verbose:
            client.unsubscribe_topic(PROGRESS_TOPIC)
        return [done[job["name"]] for job in jobs]
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()


def sweep(preset, grid=None, seeds=(0,), epochs=None, scheduler=None, out="fastcnn-sweep",
          data=None, backend="native", fresh=False, verbose=True):
    """Train preset at every point of grid ({"lr": [...], "batch_size": [...],
    "lmbda": [...]}) with every seed; one Dask task per run when scheduler is
    given (see run_jobs), else one after the other here. Writes each run's model,
    results and checkpoints into out, and the table of all runs as
    out/results.json and out/results.md; returns the runs' results (dicts as
    training_run.train returns, plus "run", the run's name, and "settings", its point
    of the grid)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    grid = dict(grid or {})
    for name, values in grid.items():
        if name not in GRID_KEYS:
            raise ValueError(f"grid: unknown setting {name!r}; known: {', '.join(GRID_KEYS)}")
        if not values:
            raise ValueError(f"grid: {name!r} has no values")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds: give at least one seed")
    os.makedirs(out, exist_ok=True)
    jobs = [_job(out, preset, seed, epochs, point, data, backend, verbose)
            for point in _points(grid) for seed in seeds]
    results = run_jobs(jobs, scheduler, verbose, fresh)
    reproduce.write_text(os.path.join(out, "results.json"), json.dumps(results, indent=1))
    reproduce.write_text(os.path.join(out, "results.md"), sweep_table(results) + "\n")
    return results


def sweep_table(results):
    """A Markdown table of sweep results: one line per run."""
    lines = ["| run | settings | seed | validation | test | best epoch | epochs | wall time |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        settings = ", ".join(f"{k}={v}" for k, v in sorted((r.get("settings") or {}).items()))
        lines.append(f"| {r['run']} | {settings} | {r['seed']} | "
                     f"{fmt(r.get('best_val_accuracy'))} | {fmt(r.get('test_accuracy'))} | "
                     f"{r.get('best_epoch') or ''} | {r['epochs_run']} | {r['seconds']:.1f} s |")
    return "\n".join(lines)


def reproduce_rows(rows, args):
    """reproduce's rows as Dask tasks (args.scheduler): each row one task, the
    ensemble's five members five tasks, voted on here once they are done."""
    jobs, plan = [], []
    for r in rows:
        preset, seeds = (("dropout", [args.seed + i for i in range(reproduce.ENSEMBLE_SIZE)])
                         if r == "ensemble" else (r, [args.seed]))
        plan.append((r, len(seeds)))
        jobs += [_job(args.out, preset, s, args.epochs, {}, args.data, args.backend,
                      not args.quiet) for s in seeds]
    done = run_jobs(jobs, args.scheduler, not args.quiet, args.fresh)
    results, i = [], 0
    for r, n in plan:
        part = done[i:i + n]
        i += n
        if r == "ensemble":
            results.append(reproduce.ensemble(args, members=part))
        else:
            res = dict(part[0])
            res.pop("run", None)
            res.pop("settings", None)
            results.append(res)
    return results


__all__ = ["client_for", "parse_grid", "run_jobs", "run_task", "sweep", "sweep_table",
           "reproduce_rows"]
