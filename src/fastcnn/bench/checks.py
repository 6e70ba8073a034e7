"""Validate, then time: each contender is first checked against the reference.

One native training step against the reference backend (loss, every gradient,
the same dropout masks) and one torch SGD step against fastcnn's (float32, and
float64 where the two must agree almost exactly; for nets with dropout the
inference outputs). A contender that fails is reported and not timed.
"""
from __future__ import annotations

import copy

import numpy as np

from ..nn import optim
from . import nets
from .nets import LR, twin

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


# ----------------------------------------------------------------- checks --

def relerr(got, want):
    """max |got - want| / max |want|: one number per array."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-30))


def verdict(name, errs, tol):
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
    return verdict("native vs reference, one step", errs, GRAD_RTOL)


def _fastcnn_step(model, x, y, lr, backend, dtype):
    fc = twin(model, backend, dtype)
    loss = fc.fit(x, y, epochs=1, batch_size=len(x), optimizer=optim.SGD(lr), shuffle=False,
                  verbose=0).history["loss"][0]
    return loss, [p for p, _ in fc.parameters()]


def _torch_step(tmodel, x, y, lr, dtype):
    tm = copy.deepcopy(tmodel).to(dtype).train()
    opt = nets.torch.optim.SGD(tm.parameters(), lr=lr)
    loss = nets.torch.nn.functional.cross_entropy(tm(nets.torch.from_numpy(x).to(dtype)),
                                             nets.torch.from_numpy(y))
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
                          _torch_step(tmodel, x, y, lr, nets.torch.float32))
    scale = max(float(np.max(np.abs(w))) for w in wf)
    errs = {"loss": relerr(lt, lf)}
    errs.update({f"param {i} {a.shape}": float(np.max(np.abs(b - a))) / scale
                 for i, (a, b) in enumerate(zip(wf, wt))})
    (lf, wf), (lt, wt) = (_fastcnn_step(model, x, y, lr, "reference", "float64"),
                          _torch_step(tmodel, x, y, lr, nets.torch.float64))
    errs64 = {"loss": relerr(lt, lf)}
    errs64.update({f"param {i} {a.shape} update": relerr(b - w, a - w)
                   for i, (a, b, w) in enumerate(zip(wf, wt, w0))})
    return [verdict("torch vs fastcnn, SGD step, float32", errs, TORCH_RTOL),
            verdict("torch vs fastcnn, SGD step, float64", errs64, EXACT_RTOL)]


def check_torch_forward(model, tmodel, x):
    """Inference outputs (class probabilities, dropout off) of the two models."""
    tmodel.eval()
    with nets.torch.no_grad():
        want = nets.torch.softmax(tmodel(nets.torch.from_numpy(x)), dim=1).numpy()
    err = float(np.max(np.abs(model.predict_proba(x) - want)))
    return verdict("torch vs fastcnn, inference output", {"probabilities (abs)": err},
                    PROBA_ATOL)


__all__ = ["relerr", "verdict", "check_native_vs_reference", "check_torch_step",
           "check_torch_forward", "GRAD_RTOL", "CHECK_BATCH", "TORCH_RTOL", "EXACT_RTOL",
           "PROBA_ATOL"]
