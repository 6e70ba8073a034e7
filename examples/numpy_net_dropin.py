"""A CNN written in NumPy, trained twice: as written, and with its convolution,
pooling and dense layers swapped for fastcnn.ops. Prints both speeds and the test
accuracy of each (docs/numpy-dropin.md walks through it).

The net is the book's row-4 network: conv 20 5x5 -> ReLU -> max-pool 2 -> conv 40
5x5 -> ReLU -> max-pool 2 -> dense 100 ReLU -> dense 10, softmax + log-likelihood,
plain SGD at mini-batch 10. The NumPy version does its convolution by im2col and a
matmul, as NumPy nets usually do; the swapped version calls fastcnn.ops with the
same arrays (float32, NCHW, conv weights (K, C, KH, KW), dense weights (I, O)).

    python examples/numpy_net_dropin.py             # 300 steps each, ~half a minute
    python examples/numpy_net_dropin.py --steps 5000
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import fastcnn
from fastcnn import ops


# ------------------------------------------------------------ NumPy ops ----
def np_im2col(x, k):
    """(N, C, H, W) -> (N*OH*OW, C*k*k), stride 1, no padding."""
    n, c, h, w = x.shape
    oh, ow = h - k + 1, w - k + 1
    s = x.strides
    win = np.lib.stride_tricks.as_strided(
        x, (n, oh, ow, c, k, k), (s[0], s[2], s[3], s[1], s[2], s[3]), writeable=False)
    return win.reshape(n * oh * ow, c * k * k)


def np_conv2d(x, w, b):
    n, _, h, wd = x.shape
    kk, k = w.shape[0], w.shape[2]
    oh, ow = h - k + 1, wd - k + 1
    cols = np_im2col(x, k)
    out = cols @ w.reshape(kk, -1).T + b
    return np.ascontiguousarray(out.reshape(n, oh, ow, kk).transpose(0, 3, 1, 2))


def np_conv2d_backward(dout, x, w):
    n, c, h, wd = x.shape
    kk, k = w.shape[0], w.shape[2]
    oh, ow = h - k + 1, wd - k + 1
    cols = np_im2col(x, k)
    d = dout.transpose(0, 2, 3, 1).reshape(-1, kk)
    dw = (d.T @ cols).reshape(w.shape)
    db = d.sum(axis=0)
    dcols = (d @ w.reshape(kk, -1)).reshape(n, oh, ow, c, k, k)
    dx = np.zeros_like(x)
    for i in range(k):
        for j in range(k):
            dx[:, :, i:i + oh, j:j + ow] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dx, dw, db


def np_maxpool2d(x, size):
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // size, size, w // size, size)
    return win.max(axis=(3, 5))


def np_maxpool2d_backward(dout, x, size):
    """The gradient goes to the first maximum of each window, as in fastcnn."""
    n, c, h, w = x.shape
    oh, ow = h // size, w // size
    win = x.reshape(n, c, oh, size, ow, size).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, oh, ow, -1)
    dwin = np.zeros_like(win)
    np.put_along_axis(dwin, win.argmax(axis=-1)[..., None], dout[..., None], axis=-1)
    return dwin.reshape(n, c, oh, ow, size, size).transpose(0, 1, 2, 4, 3, 5).reshape(x.shape)


def np_dense(x, w, b):
    return x @ w + b


def np_dense_backward(dout, x, w):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


NUMPY = dict(conv=np_conv2d, conv_bwd=np_conv2d_backward, pool=np_maxpool2d,
             pool_bwd=np_maxpool2d_backward, dense=np_dense, dense_bwd=np_dense_backward)
CONV_POOL = dict(NUMPY, conv=lambda x, w, b: ops.conv2d(x, w, b),
                 conv_bwd=lambda d, x, w: ops.conv2d_backward(d, x, w),
                 pool=lambda x, s: ops.maxpool2d(x, s),
                 pool_bwd=lambda d, x, s: ops.maxpool2d_backward(d, x, s))
ALL = dict(CONV_POOL, dense=lambda x, w, b: ops.dense(x, w, b),
           dense_bwd=lambda d, x, w: ops.dense_backward(d, x, w))
VARIANTS = {"numpy": NUMPY, "conv/pool": CONV_POOL, "all": ALL}


# ------------------------------------------------------------------ net ----
def init_params(seed=0):
    rng = np.random.default_rng(seed)
    f32 = np.float32

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(f32)
    return {"w1": he((20, 1, 5, 5), 25), "b1": np.zeros(20, f32),
            "w2": he((40, 20, 5, 5), 500), "b2": np.zeros(40, f32),
            "w3": he((640, 100), 640), "b3": np.zeros(100, f32),
            "w4": he((100, 10), 100), "b4": np.zeros(10, f32)}


def train_step(p, x, y, f, lr=0.03):
    """One SGD step in place; returns the mean loss."""
    n = x.shape[0]
    z1 = f["conv"](x, p["w1"], p["b1"]); a1 = np.maximum(z1, 0); h1 = f["pool"](a1, 2)
    z2 = f["conv"](h1, p["w2"], p["b2"]); a2 = np.maximum(z2, 0); h2 = f["pool"](a2, 2)
    flat = h2.reshape(n, -1)
    z3 = f["dense"](flat, p["w3"], p["b3"]); a3 = np.maximum(z3, 0)
    z4 = f["dense"](a3, p["w4"], p["b4"])
    z4 = z4 - z4.max(axis=1, keepdims=True)
    e = np.exp(z4); prob = e / e.sum(axis=1, keepdims=True)
    loss = float(-np.log(prob[np.arange(n), y] + 1e-30).mean())
    d4 = prob; d4[np.arange(n), y] -= 1; d4 = (d4 / n).astype(np.float32)
    da3, dw4, db4 = f["dense_bwd"](d4, a3, p["w4"])
    d3 = (da3 * (z3 > 0)).astype(np.float32)
    dflat, dw3, db3 = f["dense_bwd"](d3, flat, p["w3"])
    dh2 = np.ascontiguousarray(dflat.reshape(h2.shape))
    da2 = f["pool_bwd"](dh2, a2, 2); dz2 = (da2 * (z2 > 0)).astype(np.float32)
    dh1, dw2, db2 = f["conv_bwd"](dz2, h1, p["w2"])
    da1 = f["pool_bwd"](np.ascontiguousarray(dh1), a1, 2); dz1 = (da1 * (z1 > 0)).astype(np.float32)
    _, dw1, db1 = f["conv_bwd"](dz1, x, p["w1"])
    for k, g in (("w1", dw1), ("b1", db1), ("w2", dw2), ("b2", db2),
                 ("w3", dw3), ("b3", db3), ("w4", dw4), ("b4", db4)):
        p[k] -= lr * g
    return loss


def accuracy(p, x, y, f, batch=500):
    right = 0
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        h = f["pool"](np.maximum(f["conv"](xb, p["w1"], p["b1"]), 0), 2)
        h = f["pool"](np.maximum(f["conv"](h, p["w2"], p["b2"]), 0), 2).reshape(len(xb), -1)
        h = np.maximum(f["dense"](h, p["w3"], p["b3"]), 0)
        right += int((f["dense"](h, p["w4"], p["b4"]).argmax(axis=1) == y[i:i + batch]).sum())
    return right / len(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train a NumPy CNN with and without fastcnn.ops.")
    ap.add_argument("--steps", type=int, default=300, help="SGD steps of each version")
    ap.add_argument("--batch-size", type=int, default=10)
    args = ap.parse_args(argv)
    (x, y), _, (xt, yt) = fastcnn.datasets.load_mnist()
    xt, yt = xt[:2000], yt[:2000]
    for name in ("numpy", "all"):
        f = VARIANTS[name]
        p = init_params(seed=0)
        t0 = time.perf_counter()
        for step in range(args.steps):
            i = (step * args.batch_size) % (len(x) - args.batch_size)
            train_step(p, x[i:i + args.batch_size], y[i:i + args.batch_size], f)
        seconds = time.perf_counter() - t0
        label = "pure NumPy" if name == "numpy" else "with fastcnn.ops"
        print(f"{label:>17}: {args.steps * args.batch_size / seconds:7.0f} images/s, "
              f"test accuracy {100 * accuracy(p, xt, yt, f):.1f}% after {args.steps} steps")


if __name__ == "__main__":
    main()
