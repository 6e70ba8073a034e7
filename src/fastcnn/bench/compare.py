"""fastcnn.bench -- how fast fastcnn trains and infers on this machine, beside its
NumPy reference backend and PyTorch (when installed): the same nets, the same
starting weights, the same mini-batches.

    python -m fastcnn bench                    # about a minute: N1, N2, N3 at mini-batch 10
    python -m fastcnn bench --nets N2 --threads 1,2 --segments 7
    python bench/bench_train.py                # the deeper comparison (more batch sizes)

The nets N1, N2, N3 (book rows 2, 4, 8) and K1 (Keras' CNN) are described in nets.py.

Validate, then time: each case first checks one native training step against the
reference backend (loss, every gradient, the same dropout masks) and one torch SGD
step against fastcnn's (float32, and float64 where the two must agree almost
exactly; for nets with dropout the inference outputs); a contender that fails is
reported and not timed. Then segments of a fixed number of steps (~segment_seconds)
run round-robin, A B C A B C ..., with the thread count set and a settle pause
before each, so background load hits every contender alike. Reported: images/s,
the median and the spread (min..max) over segments, and ratios of medians.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from ..backend.build import build_info
from ..backend.threads import get_num_threads, set_num_threads
from ..common.version import VERSION
from .checks import (CHECK_BATCH, PROBA_ATOL, check_native_vs_reference, check_torch_forward,
                     check_torch_step, verdict)
from . import nets as _nets
from .nets import (LR, NETS, NO_TORCH, build, load_data, machine_info, net_layers, to_torch,
                   twin)
from .timing import (Settings, ThreadpoolController, fastcnn_train, on_isa, thread_setter,
                     time_round_robin, torch_infer, torch_train, torch_info)


# ------------------------------------------------------------------ cases --

def train_case(net, threads, bs, data, settings, failures, ref_cache):
    """Training at mini-batch bs: native, torch and (at settings.reference_batches)
    the reference, checked then timed. data: (x, y, x as torch, y as _nets.torch)."""
    x, y, xt, yt = data
    setup = thread_setter(threads)
    setup()
    model, xb, yb = build(net), x[:bs], y[:bs]
    nc = min(bs, CHECK_BATCH)
    if nc not in ref_cache:  # the reference step does not depend on the thread count
        ref_cache[nc] = twin(model, "reference").loss_and_grads(
            x[:nc], y[:nc], rng=np.random.default_rng(1))
    checks = {"native": [check_native_vs_reference(model, x[:nc], y[:nc],
                                                   ref_result=ref_cache[nc])]}
    runs = {"native": fastcnn_train(model, x, y, bs)}
    for isa in settings.compare_isas:
        runs[f"native {isa}"] = on_isa(isa, fastcnn_train(build(net), x, y, bs))
    if _use_torch(settings):
        tmodel = to_torch(model)
        dropout = any(layer.draws_in_training for layer in model.layers)
        checks["torch"] = ([check_torch_forward(model, tmodel, x[:64])] if dropout
                           else check_torch_step(model, tmodel, xb, yb))
        runs["torch"] = torch_train(tmodel, xt, yt, bs)
    if bs in settings.reference_batches:
        runs["reference"] = fastcnn_train(twin(model, "reference"), x, y, bs)
    return _case(net, threads, bs, checks, runs, setup, settings, failures, len(x) // bs)


def infer_case(net, threads, data, settings, failures):
    """Inference (predict_proba; torch in eval mode under no_grad, then softmax) at
    mini-batch settings.infer_batch."""
    x, _, xt, _ = data
    bs = settings.infer_batch
    setup = thread_setter(threads)
    setup()
    model = build(net)
    checks, runs = {}, {"native": lambda k: len(model.predict_proba(x[:k * bs],
                                                                    batch_size=bs))}
    for isa in settings.compare_isas:
        runs[f"native {isa}"] = on_isa(isa, runs["native"])
    if _use_torch(settings):
        tmodel = to_torch(model)
        checks["torch"] = [check_torch_forward(model, tmodel, x[:bs])]
        runs["torch"] = torch_infer(tmodel, xt, bs)
    if settings.reference_inference:
        ref = twin(model, "reference")
        err = float(np.max(np.abs(model.predict_proba(x[:64]) - ref.predict_proba(x[:64]))))
        checks["native"] = [verdict("native vs reference, inference output",
                                     {"probabilities (abs)": err}, PROBA_ATOL)]
        runs["reference"] = lambda k: len(ref.predict_proba(x[:k * bs], batch_size=bs))
    return _case(net, threads, bs, checks, runs, setup, settings, failures, len(x) // bs)


def _use_torch(settings):
    return _nets.torch is not None and settings.use_torch


def _case(net, threads, bs, checks, runs, setup, settings, failures, max_steps):
    """Report the checks, time the contenders that passed, print and return the row."""
    label = f"{net} t={threads} batch={bs}"
    for chk in [c for cs in checks.values() for c in cs]:
        print(f"  check {label:22s} {chk['check']:36s} {'ok  ' if chk['ok'] else 'FAIL'} "
              f"worst {chk['worst']:.2e} (tol {chk['tol']:.0e}) at {chk['where']}")
        if not chk["ok"]:
            failures.append(f"{label}: {chk['check']}: {chk['worst']:.3g} at {chk['where']}")
            print(f"!!! VALIDATION FAILED: {failures[-1]} -- not timed", file=sys.stderr,
                  flush=True)
    live = {n: r for n, r in runs.items() if all(c["ok"] for c in checks.get(n, []))}
    load = os.getloadavg()
    res = time_round_robin(live, setup, settings, max_steps)
    res.update({n: {"error": "validation failed"} for n in runs if n not in live})
    row = {"net": net, "threads": threads, "batch": bs, "loadavg_before": load,
           "contenders": res, "checks": [c for cs in checks.values() for c in cs],
           "native/torch": ratio(res.get("native"), res.get("torch")),
           "native/reference": ratio(res.get("native"), res.get("reference"))}
    for name in runs:
        if name.startswith("native ") and ratio(res.get("native"), res.get(name)):
            row[f"native/{name}"] = ratio(res.get("native"), res.get(name))
            print(f"         native ({build_info()['simd']}) / {name}: "
                  f"x{row[f'native/{name}']:.2f} ({fmt_rate(res[name])} images/s)")
    print(f"  timed  {row_line(row)}", flush=True)
    return row


# ----------------------------------------------------------------- report --

def ratio(a, b):
    return a["median"] / b["median"] if a and b and "median" in a and "median" in b else None


def fmt_rate(r, spread=True):
    if not r or "median" not in r:
        return (r or {}).get("error", "-")
    return f"{r['median']:.0f}" + (f" [{r['min']:.0f}..{r['max']:.0f}]" if spread else "")


def row_line(r):
    c, nt, nr = r["contenders"], r["native/torch"], r["native/reference"]
    return (f"{r['net']:4s} {r['threads']:3d} {r['batch']:5d}  "
            f"{fmt_rate(c.get('native')):>24s}  {fmt_rate(c.get('torch')):>24s}  "
            f"{fmt_rate(c.get('reference')):>20s}  "
            f"{f'{nt:.2f}' if nt else '-':>12s}  {f'{nr:.1f}' if nr else '-':>10s}")


def print_table(title, rows):
    print(f"\n{title}\n{'net':4s} {'thr':>3s} {'batch':>5s}  {'native [min..max]':>24s}  "
          f"{'torch [min..max]':>24s}  {'reference [min..max]':>20s}  native/torch  "
          "native/ref")
    for r in rows:
        print(row_line(r))



# --------------------------------------------------------- fastcnn bench --

def header(settings, command):
    """Print what runs where: the command, CPU, SIMD path, threads, torch; return
    (machine info, torch info)."""
    info, tinfo = machine_info(), torch_info() if _use_torch(settings) else None
    fc = info["fastcnn"]
    print(f"$ {command}\ncpu: {info['cpu']} ({info['logical_cpus']} logical CPUs); "
          f"load average at start: {info.get('loadavg_at_start')}")
    print(f"fastcnn {VERSION}: simd={fc.get('simd')} (paths this CPU runs: "
          f"{', '.join(fc.get('isas_supported', []))}) "
          f"threads={fc.get('num_threads')} {fc.get('compiler')} {fc.get('cxx_flags')}; "
          f"numpy {info['numpy']}; blas: {info.get('blas')}")
    if _nets.torch is None:
        print(NO_TORCH)
    elif tinfo is None:
        print("torch: not timed (--no-_nets.torch)")
    else:
        try:
            _nets.torch.set_num_interop_threads(1)
        except RuntimeError:  # only allowed once per process
            pass
        tinfo["interop_threads"] = _nets.torch.get_num_interop_threads()
        print(f"torch {tinfo['version']}: default threads {tinfo['default_threads']}, "
              f"interop threads {tinfo['interop_threads']}, mkldnn={tinfo['mkldnn']} "
              f"mkl={tinfo['mkl']}; OpenMP runtime: {', '.join(tinfo['openmp_runtime_loaded'])}")
    if ThreadpoolController is None:
        print("threadpoolctl not installed: the reference backend's BLAS threads are not set")
    print(f"SGD lr {LR}, no shuffling; {settings.segments} segments of "
          f"~{settings.segment_seconds} s per contender, round-robin, {settings.settle} s "
          "settle; median [min..max] images/s")
    return info, tinfo


def run(nets=("N1", "N2", "N3"), threads=None, batches=(10,), settings=None, command=None,
        inference=True):
    """fastcnn bench: time training (each mini-batch size in batches) and inference of
    each net on each thread count (default: fastcnn's current one); prints the
    checks, a table per task and returns everything as a dict."""
    settings = settings or Settings(segments=5, segment_seconds=0.3, settle=0.1,
                                    reference_batches=tuple(batches), reference_inference=True)
    for n in nets:
        if n not in NETS:
            raise ValueError(f"unknown net {n!r}; known: {', '.join(NETS)}")
    threads = list(threads or [get_num_threads()])
    before = get_num_threads(), _nets.torch.get_num_threads() if _nets.torch else None
    info, tinfo = header(settings, command or "python -m fastcnn bench")
    data = load_data()
    failures, train_rows, infer_rows = [], [], []
    try:
        for net in nets:
            print(f"\n== {net}: {' -> '.join(repr(layer) for layer in net_layers(net))}")
            ref_cache = {}
            for t in threads:
                for bs in batches:
                    train_rows.append(train_case(net, t, bs, data, settings, failures,
                                                 ref_cache))
                if inference:
                    infer_rows.append(infer_case(net, t, data, settings, failures))
    finally:
        set_num_threads(before[0])
        if _nets.torch is not None:
            _nets.torch.set_num_threads(before[1])
    print_table("Training: images/s, median [min..max] over segments; ratios of medians",
                train_rows)
    if infer_rows:
        print_table(f"Inference at batch {settings.infer_batch} (predict_proba; torch eval + "
                    "no_grad + softmax): images/s", infer_rows)
    try:
        load_end = os.getloadavg()
    except OSError:
        load_end = None
    print(f"\nload average at start: {info.get('loadavg_at_start')}, at end: {load_end}")
    if failures:
        print("\nVALIDATION FAILURES:\n  " + "\n  ".join(failures), file=sys.stderr)
    return {"command": command, "machine": info, "torch": tinfo,
            "settings": settings.__dict__ | {"nets": list(nets), "threads": threads,
                                             "batches": list(batches)},
            "training": train_rows, "inference": infer_rows, "failures": failures,
            "loadavg_at_end": load_end}
