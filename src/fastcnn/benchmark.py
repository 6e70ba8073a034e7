"""fastcnn.benchmark -- how fast fastcnn trains and infers on this machine, beside its
NumPy reference backend and PyTorch (when installed): the same nets, the same
starting weights, the same mini-batches.

    python -m fastcnn bench                    # about a minute: N1, N2, N3 at mini-batch 10
    python -m fastcnn bench --nets N2 --threads 1,2 --segments 7
    python bench/bench_train.py                # the deeper comparison (more batch sizes)

The nets (input 1x28x28, 10 classes):
  N1  conv 20 5x5 sigmoid, max-pool 2, FC 100 sigmoid, softmax 10          (book row 2)
  N2  conv 20 5x5 ReLU, pool, conv 40 5x5 ReLU, pool, FC 100 ReLU, softmax (book row 4)
  N3  N2's conv stack, FC 1000 ReLU, dropout 0.5, FC 1000 ReLU, dropout 0.5, softmax
      (book row 8, with Keras-style inverted dropout, which torch also uses)
  K1  conv 32 3x3 ReLU, pool, conv 64 3x3 ReLU, pool, flatten, dropout 0.5, softmax

Validate, then time: each case first checks one native training step against the
reference backend (loss, every gradient, the same dropout masks) and one torch SGD
step against fastcnn's (float32, and float64 where the two must agree almost
exactly; for nets with dropout the inference outputs); a contender that fails is
reported and not timed. Then segments of a fixed number of steps (~segment_seconds)
run round-robin, A B C A B C ..., with the thread count set and a settle pause
before each, so background load hits every contender alike. Reported: images/s,
the median and the spread (min..max) over segments, and ratios of medians.

fastcnn is imported before torch: it links the system libgomp; torch bundles its
own libgomp.so.1, and whichever loads first serves both (one OpenMP runtime).
"""
from __future__ import annotations

import copy
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

import fastcnn
from . import Sequential, layers as L, optim

try:
    import torch
except ImportError:
    torch = None
try:
    from threadpoolctl import ThreadpoolController
except ImportError:
    ThreadpoolController = None

NO_TORCH = "PyTorch not installed: pip install torch==2.13.0 (or pip install '.[bench]')"
NETS = ("N1", "N2", "N3", "K1")
LR = 0.01
INFER_BATCH = 1000
GRAD_RTOL = 1e-4    # native vs reference, both float32: loss and gradients
# The native-vs-reference step is checked on the first CHECK_BATCH images at most.
# Both backends are float32 with different summation orders, so a conv output whose
# true value is within rounding of 0 can come out positive in one and negative in
# the other; ReLU then passes its max-pool window's gradient in one backend only,
# and the conv's weight gradient differs by 1-10% of its largest entry, though both
# are right to float32 precision. MNIST training image 10 has such a value in N2's
# second conv (float64 -2.3e-8; native AVX-512 +2.6e-9, reference -2.8e-8), so
# checks on 11 or more images fail on that path for that reason alone. Each op is
# tested against the float64 reference on its own in tests/.
CHECK_BATCH = 10
TORCH_RTOL = 1e-4   # torch vs fastcnn in float32: loss, weights after one step (see below)
EXACT_RTOL = 1e-9   # torch vs fastcnn in float64: loss, the weight change of one step
PROBA_ATOL = 1e-5   # torch vs fastcnn: class probabilities


@dataclass
class Settings:
    """How a run times its contenders."""
    segments: int = 7              # timed segments per contender
    segment_seconds: float = 0.6   # the length one segment is calibrated to
    settle: float = 0.3            # pause before each segment, s
    reference_batches: tuple = (10,)   # training mini-batch sizes the reference is timed at
    reference_inference: bool = False  # time the reference's inference too
    infer_batch: int = INFER_BATCH
    use_torch: bool = True
    # Extra native contenders "native <path>" on these SIMD paths (e.g. ("avx2",)):
    # the same net trained with fastcnn.set_isa(path) around each segment, to
    # A/B the paths in one run; "native" is the default path.
    compare_isas: tuple = ()


# ---------------------------------------------------------------- machine --

def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """CPU, core count, fastcnn build (SIMD path, threads), NumPy and its BLAS."""
    info = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "fastcnn": fastcnn.build_info()}
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: d.get(k) for k in ("internal_api", "version", "architecture",
                                                 "num_threads", "threading_layer")}
                        for d in threadpool_info() if d.get("user_api") == "blas"]
    except ImportError:
        info["blas"] = "threadpoolctl not installed"
    try:
        info["loadavg_at_start"] = os.getloadavg()
    except OSError:
        pass
    return info


# ------------------------------------------------------------------ the nets --

def net_layers(name):
    """The fastcnn layers of one benchmark net (input 1x28x28, 10 classes)."""
    def conv_stack():
        return [L.Conv2D(20, 5, activation="relu"), L.MaxPool2D(2),
                L.Conv2D(40, 5, activation="relu"), L.MaxPool2D(2)]
    out = L.Dense(10, activation="softmax")
    if name == "N1":
        return [L.Conv2D(20, 5, activation="sigmoid"), L.MaxPool2D(2),
                L.Dense(100, activation="sigmoid"), out]
    if name == "N2":
        return conv_stack() + [L.Dense(100, activation="relu"), out]
    if name == "N3":
        return conv_stack() + [L.Dense(1000, activation="relu"), L.Dropout(0.5),
                               L.Dense(1000, activation="relu"), L.Dropout(0.5), out]
    if name == "K1":
        return [L.Conv2D(32, 3, activation="relu"), L.MaxPool2D(2),
                L.Conv2D(64, 3, activation="relu"), L.MaxPool2D(2),
                L.Flatten(), L.Dropout(0.5), out]
    raise ValueError(f"unknown net {name!r}; known: {', '.join(NETS)}")


def build(name, backend="native", seed=0):
    return Sequential(net_layers(name), input_shape=(1, 28, 28), backend=backend, seed=seed)


def twin(model, backend, dtype="float32"):
    """The same layers, parameters and rng seed on another backend (or dtype)."""
    layers = [L.from_config(type(layer).__name__, layer.config()) for layer in model.layers]
    other = Sequential(layers, input_shape=model.input_shape, backend=backend, dtype=dtype,
                       seed=model.seed)
    for mine, theirs in zip(model.layers, other.layers):
        for k, p in mine.params.items():
            theirs.params[k][...] = p
    return other


def to_torch(model):
    """An equivalent torch.nn.Sequential holding a copy of the model's parameters.
    Conv weights are (K, C, KH, KW) in both; fastcnn's Dense weight (I, O) is
    Linear's (O, I) transposed; both flatten (C, H, W) in C order. The final
    softmax is left out: CrossEntropyLoss takes logits."""
    nn = torch.nn
    acts = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
    mods = []
    for i, layer in enumerate(model.layers):
        p = {k: torch.from_numpy(v) for k, v in layer.params.items()}  # copied below
        if isinstance(layer, L.Conv2D):
            m = nn.Conv2d(layer.input_shape[0], layer.filters, layer.kernel_size,
                          stride=layer.stride, padding=layer.padding, bias=layer.use_bias)
        elif isinstance(layer, L.Dense):
            if len(layer.input_shape) > 1:
                mods.append(nn.Flatten())
            m = nn.Linear(int(np.prod(layer.input_shape)), layer.units, bias=layer.use_bias)
            p["w"] = p["w"].T
        elif isinstance(layer, L.MaxPool2D):
            m = nn.MaxPool2d(layer.size, layer.stride)
        elif isinstance(layer, L.Dropout) and layer.inverted:
            m = nn.Dropout(layer.rate)
        elif isinstance(layer, L.Flatten):
            m = nn.Flatten()
        else:
            raise ValueError(f"no torch equivalent written for {layer!r}")
        with torch.no_grad():
            for k, name in (("w", "weight"), ("b", "bias")):
                if k in p:
                    getattr(m, name).copy_(p[k])
        mods.append(m)
        act = layer.activation or "linear"
        if act in acts:
            mods.append(acts[act]())
        elif act == "softmax" and i != len(model.layers) - 1:
            raise ValueError("softmax is supported only as the last activation")
    return nn.Sequential(*mods)


# ----------------------------------------------------------------- checks --

def relerr(got, want):
    """max |got - want| / max |want|: one number per array."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-30))


def _verdict(name, errs, tol):
    where = max(errs, key=errs.get)
    return {"check": name, "ok": errs[where] <= tol, "worst": errs[where], "where": where,
            "tol": tol}


def check_native_vs_reference(model, x, y, seed=1, ref_result=None):
    """Loss and every gradient of one step (no update), native against the reference
    backend, dropout masks from the same seed. ref_result: a reference step to reuse."""
    ref = ref_result or twin(model, "reference").loss_and_grads(
        x, y, rng=np.random.default_rng(seed))
    got = model.loss_and_grads(x, y, rng=np.random.default_rng(seed))
    errs = {"loss": relerr(got[0], ref[0])}
    for i, (gn, gr) in enumerate(zip(got[2], ref[2])):
        errs.update({f"{i}:{type(model.layers[i]).__name__}.{k}": relerr(gn[k], gr[k])
                     for k in gr})
    return _verdict("native vs reference, one step", errs, GRAD_RTOL)


def _fastcnn_step(model, x, y, lr, backend, dtype):
    fc = twin(model, backend, dtype)
    loss = fc.fit(x, y, epochs=1, batch_size=len(x), optimizer=optim.SGD(lr), shuffle=False,
                  verbose=0).history["loss"][0]
    return loss, [p for p, _ in fc.parameters()]


def _torch_step(tmodel, x, y, lr, dtype):
    tm = copy.deepcopy(tmodel).to(dtype).train()
    opt = torch.optim.SGD(tm.parameters(), lr=lr)
    loss = torch.nn.functional.cross_entropy(tm(torch.from_numpy(x).to(dtype)),
                                             torch.from_numpy(y))
    loss.backward()
    opt.step()
    return loss.item(), [p.detach().numpy().T if p.ndim == 2 else p.detach().numpy()
                         for p in tm.parameters()]


def check_torch_step(model, tmodel, x, y, lr=LR):
    """One SGD step from the same weights. In float32 (what is timed) the loss and the
    updated weights must agree, measured against the largest weight. The gradients
    themselves can differ more: where the two largest values of a max-pool window lie
    within float32 rounding of each other, the two libraries may pick different
    winners and route that gradient to another input (seen with N2 at batch 256:
    one window of 164k, weight change off by 1e-2 of its largest, weights by 1e-5).
    So the step is also taken in float64 (torch in double, fastcnn's reference
    backend), where the weight changes must agree almost exactly: the nets are equal."""
    w0 = [p for p, _ in model.parameters()]
    (lf, wf), (lt, wt) = (_fastcnn_step(model, x, y, lr, "native", "float32"),
                          _torch_step(tmodel, x, y, lr, torch.float32))
    scale = max(float(np.max(np.abs(w))) for w in wf)
    errs = {"loss": relerr(lt, lf)}
    errs.update({f"param {i} {a.shape}": float(np.max(np.abs(b - a))) / scale
                 for i, (a, b) in enumerate(zip(wf, wt))})
    (lf, wf), (lt, wt) = (_fastcnn_step(model, x, y, lr, "reference", "float64"),
                          _torch_step(tmodel, x, y, lr, torch.float64))
    errs64 = {"loss": relerr(lt, lf)}
    errs64.update({f"param {i} {a.shape} update": relerr(b - w, a - w)
                   for i, (a, b, w) in enumerate(zip(wf, wt, w0))})
    return [_verdict("torch vs fastcnn, SGD step, float32", errs, TORCH_RTOL),
            _verdict("torch vs fastcnn, SGD step, float64", errs64, EXACT_RTOL)]


def check_torch_forward(model, tmodel, x):
    """Inference outputs (class probabilities, dropout off) of the two models."""
    tmodel.eval()
    with torch.no_grad():
        want = torch.softmax(tmodel(torch.from_numpy(x)), dim=1).numpy()
    err = float(np.max(np.abs(model.predict_proba(x) - want)))
    return _verdict("torch vs fastcnn, inference output", {"probabilities (abs)": err},
                    PROBA_ATOL)


# ------------------------------------------------- what one segment runs --
# Each returns run(steps) -> images processed: `steps` mini-batches from the start
# of the training set, in order.

def fastcnn_train(model, x, y, bs, lr=LR):
    opt = optim.SGD(lr)  # kept across segments (plain SGD holds no state)

    def run(steps):
        n = steps * bs
        model.fit(x[:n], y[:n], epochs=1, batch_size=bs, optimizer=opt, shuffle=False,
                  verbose=0)
        if model.stop_training:
            raise RuntimeError(model.stop_reason)
        return n
    return run


def torch_train(tmodel, xt, yt, bs, lr=LR):
    opt, loss_fn = torch.optim.SGD(tmodel.parameters(), lr=lr), torch.nn.CrossEntropyLoss()

    def run(steps):
        tmodel.train()
        for i in range(steps):
            opt.zero_grad()
            loss = loss_fn(tmodel(xt[i * bs:(i + 1) * bs]), yt[i * bs:(i + 1) * bs])
            loss.backward()
            opt.step()
        if not np.isfinite(loss.item()):
            raise RuntimeError(f"the torch loss became {loss.item()}")
        return steps * bs
    return run


def torch_infer(tmodel, xt, bs=INFER_BATCH):
    def run(steps):
        tmodel.eval()
        with torch.no_grad():
            torch.cat([torch.softmax(tmodel(xt[i * bs:(i + 1) * bs]), dim=1)
                       for i in range(steps)])
        return steps * bs
    return run


# ----------------------------------------------------------------- timing --

def calibrate(run, setup, target_s, max_steps):
    """Steps per segment so that one segment lasts about target_s."""
    setup()
    run(1)  # warm up: threads, caches, torch's kernel choice for this shape
    k = 1
    while True:
        t0 = time.perf_counter()
        run(k)
        t = time.perf_counter() - t0
        if t >= target_s / 4 or k >= max_steps:
            return int(min(max_steps, max(1, round(k * target_s / t))))
        k = min(2 * k, max_steps)


def time_round_robin(runs, setup, settings, max_steps):
    """{name: run}: segments taken A B C A B C ..., thread counts set before each one
    and a settle pause before each, so background load and threads left spinning by
    the previous contender hit every contender alike."""
    steps = {name: calibrate(run, setup, settings.segment_seconds, max_steps)
             for name, run in runs.items()}
    rates = {name: [] for name in runs}
    for _ in range(settings.segments):
        for name, run in runs.items():
            time.sleep(settings.settle)
            setup()
            t0 = time.perf_counter()
            n = run(steps[name])
            rates[name].append(n / (time.perf_counter() - t0))
    return {name: {"steps": steps[name], "median": statistics.median(r), "min": min(r),
                   "max": max(r), "images_per_s": r} for name, r in rates.items()}


def on_isa(isa, run):
    """run(steps) on SIMD path isa, the path in use restored afterwards."""
    def wrapped(steps):
        before = fastcnn.build_info()["simd"]
        fastcnn.set_isa(isa)
        try:
            return run(steps)
        finally:
            fastcnn.set_isa(before)
    return wrapped


def thread_setter(n):
    blas = ThreadpoolController() if ThreadpoolController else None

    def setup():
        fastcnn.set_num_threads(n)
        if torch is not None:
            torch.set_num_threads(n)   # sets the OpenMP runtime fastcnn shares, too
        if blas is not None:
            blas.limit(limits=n, user_api="blas")   # NumPy's BLAS, for the reference
    return setup


def torch_info():
    if torch is None:
        return None
    with open("/proc/self/maps") as f:
        omp = sorted({ln.split()[-1] for ln in f if "libgomp" in ln or "libiomp" in ln})
    return {"version": torch.__version__, "default_threads": torch.get_num_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "mkl": torch.backends.mkl.is_available(), "openmp_runtime_loaded": omp}


# ------------------------------------------------------------------ cases --

def train_case(net, threads, bs, data, settings, failures, ref_cache):
    """Training at mini-batch bs: native, torch and (at settings.reference_batches)
    the reference, checked then timed. data: (x, y, x as torch, y as torch)."""
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
        dropout = any(isinstance(layer, L.Dropout) for layer in model.layers)
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
        checks["native"] = [_verdict("native vs reference, inference output",
                                     {"probabilities (abs)": err}, PROBA_ATOL)]
        runs["reference"] = lambda k: len(ref.predict_proba(x[:k * bs], batch_size=bs))
    return _case(net, threads, bs, checks, runs, setup, settings, failures, len(x) // bs)


def _use_torch(settings):
    return torch is not None and settings.use_torch


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
            print(f"         native ({fastcnn.build_info()['simd']}) / {name}: "
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
    print(f"fastcnn {fastcnn.__version__}: simd={fc.get('simd')} (paths this CPU runs: "
          f"{', '.join(fc.get('isas_supported', []))}) openmp={fc.get('openmp')} "
          f"threads={fc.get('num_threads')} {fc.get('compiler')} {fc.get('cxx_flags')}; "
          f"numpy {info['numpy']}; blas: {info.get('blas')}")
    if torch is None:
        print(NO_TORCH)
    elif tinfo is None:
        print("torch: not timed (--no-torch)")
    else:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only allowed once per process
            pass
        tinfo["interop_threads"] = torch.get_num_interop_threads()
        print(f"torch {tinfo['version']}: default threads {tinfo['default_threads']}, "
              f"interop threads {tinfo['interop_threads']}, mkldnn={tinfo['mkldnn']} "
              f"mkl={tinfo['mkl']}; OpenMP runtime: {', '.join(tinfo['openmp_runtime_loaded'])}")
    if ThreadpoolController is None:
        print("threadpoolctl not installed: the reference backend's BLAS threads are not set")
    print(f"SGD lr {LR}, no shuffling; {settings.segments} segments of "
          f"~{settings.segment_seconds} s per contender, round-robin, {settings.settle} s "
          "settle; median [min..max] images/s")
    return info, tinfo


def load_data():
    """(x, y, x as torch, y as torch): the bundled MNIST training set, in order."""
    (x, y), _, _ = fastcnn.datasets.load_mnist()
    return (x, y) + ((torch.from_numpy(x), torch.from_numpy(y)) if torch else (None, None))


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
    threads = list(threads or [fastcnn.get_num_threads()])
    before = fastcnn.get_num_threads(), torch.get_num_threads() if torch else None
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
        fastcnn.set_num_threads(before[0])
        if torch is not None:
            torch.set_num_threads(before[1])
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
