"""What one timed segment runs, and the timing: segments of a fixed number of
steps (~segment_seconds) run round-robin, A B C A B C ..., with the thread count
set and a settle pause before each, so background load hits every contender
alike. Reported: images/s, the median and the spread (min..max) over segments."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from ..backend.build import build_info, set_isa
from ..backend.threads import set_num_threads
from ..nn import optim
from . import nets
from .nets import INFER_BATCH, LR

try:
    from threadpoolctl import ThreadpoolController
except ImportError:
    ThreadpoolController = None


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
    opt, loss_fn = nets.torch.optim.SGD(tmodel.parameters(), lr=lr), nets.torch.nn.CrossEntropyLoss()

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
        with nets.torch.no_grad():
            nets.torch.cat([nets.torch.softmax(tmodel(xt[i * bs:(i + 1) * bs]), dim=1)
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
        before = build_info()["simd"]
        set_isa(isa)
        try:
            return run(steps)
        finally:
            set_isa(before)
    return wrapped


def thread_setter(n):
    blas = ThreadpoolController() if ThreadpoolController else None

    def setup():
        set_num_threads(n)
        if nets.torch is not None:
            nets.torch.set_num_threads(n)   # torch's own threads (its OpenMP runtime)
        if blas is not None:
            blas.limit(limits=n, user_api="blas")   # NumPy's BLAS, for the reference
    return setup


def torch_info():
    if nets.torch is None:
        return None
    with open("/proc/self/maps") as f:
        omp = sorted({ln.split()[-1] for ln in f if "libgomp" in ln or "libiomp" in ln})
    return {"version": nets.torch.__version__, "default_threads": nets.torch.get_num_threads(),
            "mkldnn": nets.torch.backends.mkldnn.is_available(),
            "mkl": nets.torch.backends.mkl.is_available(), "openmp_runtime_loaded": omp}


__all__ = ["Settings", "fastcnn_train", "torch_train", "torch_infer", "calibrate",
           "time_round_robin", "on_isa", "thread_setter", "torch_info", "ThreadpoolController"]
