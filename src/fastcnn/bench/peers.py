"""fastcnn against its peers where the arithmetic is: CIFAR-shaped nets trained
against PyTorch (eager, and torch.compile when asked), and inference against
PyTorch and ONNX Runtime running fastcnn's own ONNX export of the same model.

    python bench/bench_peers.py --nets C1,C2 --threads 1,2     # the full comparison
    python -m fastcnn bench --peers                            # a quick version

The nets: N2 and K1 (nets.py, MNIST-shaped) and
  C1  cifar-vgg: conv 32, conv 32, pool, conv 64, conv 64, pool, dense 10  (3x3 'same')
  C2  cifar-gap: conv 64, pool, conv 128, pool, conv 256, global average, dense 10
on random images of their shape (3x32x32 for C1 and C2). Training: SGD with
momentum 0.9 in both libraries, the same weights, the same mini-batches.

Validate, then time, as in compare.py: one training step of each contender against
fastcnn's (torch; float32 loss and weights), every inference output against
fastcnn's probabilities (ONNX Runtime within 1e-5); then segments round-robin with
the thread count set before each (ONNX Runtime: one session per thread count,
intra-op threads = the count, inter-op 1).
"""
from __future__ import annotations

import copy

import numpy as np

from ..backend.threads import set_num_threads
from ..runs.presets import cifar_layers
from ..nn.model import Sequential
from ..nn import optim
from . import nets as _nets
from .checks import PROBA_ATOL, relerr, verdict
from .timing import thread_setter, time_round_robin

PEER_NETS = {"C1": "cifar-vgg", "C2": "cifar-gap"}
MAX_INFER_STEPS = 1_000_000   # inference segments are bounded by their time
MOMENTUM, PEER_LR = 0.9, 0.01


def build_net(name, seed=0):
    """A benchmark net by name: N1-K1 (MNIST-shaped) or C1/C2 (CIFAR-shaped)."""
    if name in PEER_NETS:
        return Sequential(cifar_layers(PEER_NETS[name]), input_shape=(3, 32, 32), seed=seed)
    return _nets.build(name, seed=seed)


def images(model, n, seed=0):
    """(x uint8, y): n random images of the model's input shape, 10 classes."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n,) + tuple(model.input_shape), dtype=np.uint8)
    return x, rng.integers(0, 10, n)


# --------------------------------------------------------------- training --

def fastcnn_train(model, x, y, bs):
    opt = optim.SGD(PEER_LR, momentum=MOMENTUM)

    def run(steps):
        n = steps * bs
        model.fit(x[:n], y[:n], epochs=1, batch_size=bs, optimizer=opt, shuffle=False,
                  verbose=0)
        return n
    return run


def torch_train(tmodel, xf, y, bs):
    torch = _nets.torch
    xt, yt = torch.from_numpy(xf), torch.from_numpy(y)
    opt = torch.optim.SGD(tmodel.parameters(), lr=PEER_LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run(steps):
        tmodel.train()
        for i in range(steps):
            opt.zero_grad()
            loss_fn(tmodel(xt[i * bs:(i + 1) * bs]), yt[i * bs:(i + 1) * bs]).backward()
            opt.step()
        return steps * bs
    return run


def check_train_step(model, tmodel, xf, y):
    """One momentum-SGD step from the same weights: the float32 loss and the updated
    weights agree (against the largest weight)."""
    torch = _nets.torch
    fc = _twin(model)
    h = fc.fit(xf, y, epochs=1, batch_size=len(xf), shuffle=False, verbose=0,
               optimizer=optim.SGD(PEER_LR, momentum=MOMENTUM))
    tm = copy.deepcopy(tmodel).train()
    opt = torch.optim.SGD(tm.parameters(), lr=PEER_LR, momentum=MOMENTUM)
    loss = torch.nn.functional.cross_entropy(tm(torch.from_numpy(xf)), torch.from_numpy(y))
    loss.backward()
    opt.step()
    wf = [p for p, _ in fc.parameters()]
    wt = [p.detach().numpy().T if p.ndim == 2 else p.detach().numpy() for p in tm.parameters()]
    scale = max(float(np.max(np.abs(w))) for w in wf)
    errs = {"loss": relerr(loss.item(), h.history["loss"][0])}
    errs.update({f"param {i}": float(np.max(np.abs(a - b))) / scale
                 for i, (a, b) in enumerate(zip(wf, wt))})
    return verdict("torch vs fastcnn, momentum SGD step, float32", errs, 1e-4)


def _twin(model):
    from ..nn import layers as L
    other = Sequential([L.from_config(type(la).__name__, la.config()) for la in model.layers],
                       input_shape=model.input_shape, seed=model.seed)
    for mine, theirs in zip(model.layers, other.layers):
        for k, p in mine.params.items():
            theirs.params[k][...] = p
    return other


# -------------------------------------------------------------- inference --

# Inference steps cycle through the len(xf) // bs batches, so a segment lasts its
# calibrated time (~segment_seconds) whatever the batch size: a segment of a few
# batches of one image would time little but the start after the settle pause.

def fastcnn_infer(model, xf, bs):
    n = len(xf) // bs

    def run(steps):
        for i in range(steps):
            j = i % n
            model.predict_proba(xf[j * bs:(j + 1) * bs], batch_size=bs)
        return steps * bs
    return run


def torch_infer(tmodel, xf, bs):
    torch = _nets.torch
    xt = torch.from_numpy(xf)
    n = len(xf) // bs

    def run(steps):
        tmodel.eval()
        with torch.no_grad():
            for i in range(steps):
                j = i % n
                torch.softmax(tmodel(xt[j * bs:(j + 1) * bs]), dim=1)
        return steps * bs
    return run


def ort_session(model, threads):
    """An ONNX Runtime session of fastcnn's own export of model, on `threads` intra-op
    threads (None when onnxruntime or onnx is not installed)."""
    try:
        import onnxruntime as ort
        from ..io.onnx import to_onnx
    except ImportError:
        return None
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(to_onnx(model).SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def ort_infer(sess, xf, bs):
    n = len(xf) // bs

    def run(steps):
        for i in range(steps):
            j = i % n
            sess.run(None, {"input": xf[j * bs:(j + 1) * bs]})
        return steps * bs
    return run


def check_outputs(name, got, want, tol=PROBA_ATOL):
    return verdict(f"{name} vs fastcnn, inference output",
                   {"probabilities (abs)": float(np.max(np.abs(got - want)))}, tol)


# ------------------------------------------------------------------ cases --

def train_case(net, threads, bs, settings, compile_torch=False, n_batches=8):
    """{contender: timing}, [checks] of training net at mini-batch bs."""
    setup = thread_setter(threads)
    setup()
    model = build_net(net)
    x, y = images(model, bs * n_batches, seed=1)
    xf = (x / np.float32(255)).astype(np.float32)
    runs, checks = {"fastcnn": fastcnn_train(model, xf, y, bs)}, []
    if _nets.torch is not None:
        tmodel = _nets.to_torch(model)
        checks.append(("torch", check_train_step(model, tmodel, xf[:min(bs, 32)],
                                                 y[:min(bs, 32)])))
        runs["torch"] = torch_train(tmodel, xf, y, bs)
        if compile_torch:
            runs["torch.compile"] = torch_train(_nets.torch.compile(_nets.to_torch(model)),
                                                xf, y, bs)
    return _timed(runs, checks, setup, settings, n_batches)


def infer_case(net, threads, bs, settings, n_batches=8):
    """{contender: timing}, [checks] of inference at mini-batch bs."""
    setup = thread_setter(threads)
    setup()
    model = build_net(net)
    x, _ = images(model, bs * n_batches, seed=2)
    xf = (x / np.float32(255)).astype(np.float32)
    want = model.predict_proba(xf[:min(len(xf), 256)])
    runs, checks = {"fastcnn": fastcnn_infer(model, xf, bs)}, []
    if _nets.torch is not None:
        tmodel = _nets.to_torch(model).eval()
        with _nets.torch.no_grad():
            got = _nets.torch.softmax(tmodel(_nets.torch.from_numpy(xf[:len(want)])),
                                      dim=1).numpy()
        checks.append(("torch", check_outputs("torch", got, want)))
        runs["torch"] = torch_infer(tmodel, xf, bs)
    sess = ort_session(model, threads)
    if sess is not None:
        got = sess.run(None, {"input": xf[:len(want)]})[0]
        checks.append(("onnxruntime", check_outputs("onnxruntime", got, want)))
        runs["onnxruntime"] = ort_infer(sess, xf, bs)
    set_num_threads(threads)
    return _timed(runs, checks, setup, settings, MAX_INFER_STEPS)


def run(train=(), infer=(), threads=(1,), settings=None, compile_torch=False, out=print):
    """Time each (net, batch) of train and infer on each thread count; print a line per
    case (checks, then images/s of every contender and the ratios fastcnn / peer) and
    return the rows."""
    from .timing import Settings
    settings = settings or Settings(segments=5, segment_seconds=0.3, settle=0.1)
    rows = []
    for t in threads:
        for kind, cases in (("train", train), ("infer", infer)):
            for net, bs in cases:
                if kind == "train":
                    res, checks = train_case(net, t, bs, settings, compile_torch)
                else:
                    res, checks = infer_case(net, t, bs, settings)
                for c in checks:
                    out(f"  check {net} t={t} b={bs} {c['check']}: "
                        f"{'ok' if c['ok'] else 'FAIL'} (worst {c['worst']:.1e})")
                base = res["fastcnn"].get("median")
                ratios = {k: base / v["median"] for k, v in res.items()
                          if k != "fastcnn" and "median" in v and base}
                rows.append({"kind": kind, "net": net, "threads": t, "batch": bs,
                             "results": res, "ratios": ratios, "checks": checks})
                out(f"{kind:5s} {net} t={t} b={bs:5d}  " + "  ".join(
                    f"{k} {_rate(v)}" for k, v in res.items()) + "  |  " + "  ".join(
                    f"fastcnn/{k} {r:.2f}" for k, r in ratios.items()))
    return rows


def _rate(r):
    if not r or "median" not in r:
        return (r or {}).get("error", "-")
    return f"{r['median']:.0f} [{r['min']:.0f}..{r['max']:.0f}]"


def _timed(runs, checks, setup, settings, max_steps):
    live = {n: r for n, r in runs.items() if all(c["ok"] for who, c in checks if who == n)}
    res = time_round_robin(live, setup, settings, max_steps)
    res.update({n: {"error": "validation failed"} for n in runs if n not in live})
    return res, [c for _, c in checks]


__all__ = ["PEER_NETS", "build_net", "images", "train_case", "infer_case", "ort_session",
           "run"]
