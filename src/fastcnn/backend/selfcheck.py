"""A quick self-check a user can run: every native op against the NumPy reference.

`python -m fastcnn` runs it after printing build_info(). Each op is run once in
the native backend (float32) and once in the reference (float64) on small random
inputs of awkward sizes; the largest relative difference is printed per op.
This is a smoke check of an installation, not the test suite (see tests/).
"""
from __future__ import annotations

import numpy as np

from . import native as ops, reference

# Inputs are drawn once per run from this seed so failures can be reproduced.
SEED = 20261124


def _cases(rng: np.random.Generator):
    """(op name, positional args, keyword args, indices of in-place args[, note]) per
    op case; the note tells apart cases of one op (the 3x3 convs with 16 channels,
    which the native core runs by Winograd unless FASTCNN_CONV says otherwise)."""
    r = rng.standard_normal
    x = r((3, 2, 9, 7))                      # N C H W, odd on purpose
    w = r((4, 2, 3, 2))                      # K C KH KW
    b = r(4)
    conv_out = reference.conv2d(x, w, b, 2, 1)
    pool_out = reference.maxpool2d(x, 2, None)
    # conv (stride 1, padding 1) then a 2x2 max-pool: 5x4 out of a 9x8 conv output
    fused_out, choice = reference.conv2d_maxpool(x, w, b, 1, 1, 2, relu=True)
    xd, wd, bd = r((5, 13)), r((13, 6)), r(6)
    logits = r((5, 7)) * 10
    labels = rng.integers(0, 7, 5)
    probs_target = rng.uniform(size=(5, 7))
    mask = rng.uniform(size=x.shape) < 0.6
    p, g, s1, s2 = r(40), r(40), rng.uniform(size=40), rng.uniform(size=40)
    cols = reference.im2col(x, (3, 2), 2, 1)
    # a 3x3 'same' conv with 16 channels on 16 images: Winograd under "auto"
    xw, ww, bw = r((16, 16, 16, 16)), r((16, 16, 3, 3)) / 12, r(16)
    wino_out, wino_choice = reference.conv2d_maxpool(xw, ww, bw, 1, 1, 2, relu=True)
    return [
        ("gemm", (r((7, 5)), r((9, 5))), dict(alpha=0.5, trans_b=True), ()),
        ("im2col", (x, (3, 2), 2, 1), {}, ()),
        ("col2im", (cols, x.shape, (3, 2), 2, 1), {}, ()),
        ("conv2d", (x, w, b, 2, 1), {}, ()),
        ("conv2d", (x, w, b, 2, 1), dict(relu=True), ()),
        ("conv2d_backward", (r(conv_out.shape), x, w, 2, 1), {}, ()),
        ("conv2d_maxpool", (x, w, b, 1, 1, 2), dict(relu=True), ()),
        ("conv2d_maxpool_backward", (r(fused_out.shape), choice, x, w, 1, 1, 2), {}, ()),
        ("conv2d", (xw, ww, bw, 1, 1), {}, (), "3x3, 16 ch"),
        ("conv2d_backward", (r((16, 16, 16, 16)), xw, ww, 1, 1), {}, (), "3x3, 16 ch"),
        ("conv2d_maxpool", (xw, ww, bw, 1, 1, 2), dict(relu=True), (), "3x3, 16 ch"),
        ("conv2d_maxpool_backward", (r(wino_out.shape), wino_choice, xw, ww, 1, 1, 2), {}, (),
         "3x3, 16 ch"),
        ("maxpool2d", (x, 2), {}, ()),
        ("maxpool2d_backward", (r(pool_out.shape), x, 2), {}, ()),
        ("avgpool2d", (x, (3, 2), 1), {}, ()),
        ("avgpool2d_backward", (r((3, 2, 7, 6)), x, (3, 2), 1), {}, ()),
        ("l2pool2d", (x, 2), {}, ()),
        ("l2pool2d_backward", (r(pool_out.shape), x, 2), {}, ()),
        ("global_avgpool2d", (x,), {}, ()),
        ("global_avgpool2d_backward", (r((3, 2)), x), {}, ()),
        ("dense", (xd, wd, bd), {}, ()),
        ("dense_backward", (r((5, 6)), xd, wd), {}, ()),
        ("dense_backward_sgd", (r((5, 6)), xd, wd.copy(), bd.copy()),
         dict(lr=0.1, weight_decay=1e-3), (2, 3)),
        ("relu", (x,), {}, ()),
        ("relu_backward", (r(x.shape), x), {}, ()),
        ("leaky_relu", (x,), dict(alpha=0.2), ()),
        ("leaky_relu_backward", (r(x.shape), x), dict(alpha=0.2), ()),
        ("sigmoid", (x,), {}, ()),
        ("sigmoid_backward", (r(x.shape), reference.sigmoid(x)), {}, ()),
        ("tanh", (x,), {}, ()),
        ("tanh_backward", (r(x.shape), reference.tanh(x)), {}, ()),
        ("softmax", (logits,), {}, ()),
        ("log_softmax", (logits,), {}, ()),
        ("softmax_loglik", (logits, labels), {}, ()),
        ("quadratic_cost", (r((5, 7)), probs_target), {}, ()),
        ("binary_cross_entropy", (logits, probs_target), {}, ()),
        ("dropout", (x, mask, 0.6), {}, ()),
        ("dropout_backward", (r(x.shape), mask, 0.6), {}, ()),
        ("sgd_update", (p, g, s1), dict(lr=0.1, momentum=0.9, weight_decay=1e-3,
                                       nesterov=True), (0, 2)),
        ("adagrad_update", (p, g, s1), dict(lr=0.1), (0, 2)),
        ("rmsprop_update", (p, g, s1), dict(lr=0.01), (0, 2)),
        ("adam_update", (p, g, s1 - 0.5, s2), dict(step=3, lr=0.01), (0, 2, 3)),
    ]


def _flatten(result, inplace_args):
    """Every array an op produced: its return value(s) and in-place arguments."""
    parts = list(result) if isinstance(result, tuple) else [result]
    parts += list(inplace_args)
    return [np.asarray(v, dtype=np.float64) for v in parts if v is not None]


def _relative_error(got, want) -> float:
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    return float(np.max(np.abs(got - want))) / scale if want.size else 0.0


def run(tolerance: float = 1e-4, out=print) -> bool:
    """Run every op in both backends; print one line per op; True if all agree."""
    rng = np.random.default_rng(SEED)
    ok_all = True
    out(f"{'op':42s} {'max rel. error':>14s}  result")
    for name, args, kwargs, inplace, *note in _cases(rng):
        label = name + ("(relu=True)" if kwargs.get("relu") else "")
        label += f" [{note[0]}]" if note else ""
        ref_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        nat_args = [a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
                    else (a.copy() if isinstance(a, np.ndarray) else a) for a in args]
        try:
            want = _flatten(getattr(reference, name)(*ref_args, **kwargs),
                            [ref_args[i] for i in inplace])
            got = _flatten(getattr(ops, name)(*nat_args, **kwargs),
                           [nat_args[i] for i in inplace])
        except Exception as e:  # report every op, even after one breaks
            ok_all = False
            out(f"{label:42s} {'-':>14s}  FAIL ({type(e).__name__}: {e})")
            continue
        err = max(_relative_error(g, w) for g, w in zip(got, want))
        ok = len(got) == len(want) and err <= tolerance
        ok_all &= ok
        out(f"{label:42s} {err:14.2e}  {'ok' if ok else 'FAIL'}")
    out("self-check " + ("passed: every native op matches the reference" if ok_all
                         else "FAILED: see the lines marked FAIL"))
    return ok_all
