"""The conv2d shapes (by hand, for conv.cpp's strategies, and random) and their
data, shared by test_conv2d, test_im2col and test_dense."""
from __future__ import annotations

import numpy as np


# ------------------------------------------------------------------ cases --
# (N, C, H, W, K, kernel, stride, padding); kernel/stride/padding as int or (h, w).
HAND_CASES = [
    (1, 1, 1, 1, 1, 1, 1, 0),                    # smallest possible
    (1, 1, 5, 5, 1, 5, 1, 0),                    # kernel == image: 1x1 output
    (3, 1, 9, 7, 4, (3, 2), (2, 1), (1, 0)),     # non-square everything
    (1, 3, 11, 13, 1, 7, 3, 3),
    (5, 2, 6, 17, 3, (5, 7), (1, 3), (2, 3)),
    (2, 4, 4, 4, 6, 3, 1, 1),
    (1, 2, 3, 3, 2, (7, 5), 2, (2, 1)),          # kernel only fits the padded image
    (3, 3, 10, 10, 5, 1, 2, 0),                  # 1x1 kernel, stride skips pixels
    (2, 1, 8, 2, 3, (2, 7), (3, 2), (0, 3)),     # padding wider than the image
]


def _random_cases(count: int, seed: int):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        n = int(rng.choice([1, 2, 3, 5]))
        c, k = int(rng.integers(1, 5)), int(rng.integers(1, 6))
        kh, kw = (int(v) for v in rng.integers(1, 8, size=2))
        sh, sw = (int(v) for v in rng.integers(1, 4, size=2))
        ph, pw = (int(v) for v in rng.integers(0, 4, size=2))
        h = max(1, kh - 2 * ph) + int(rng.integers(0, 12))
        w = max(1, kw - 2 * pw) + int(rng.integers(0, 12))
        cases.append((n, c, h, w, k, (kh, kw), (sh, sw), ph if ph == pw else (ph, pw)))
    return cases


# Shapes for the strategies of conv.cpp: per-image GEMMs when OH*OW >= 256
# (with 2 threads the images of a chunk are shared out among the threads),
# else one GEMM per chunk through a K-row matrix; chunks of about 1 MiB of
# scratch (at least one image), the last one short.
PATH_CASES = [
    (2, 3, 16, 16, 5, 3, 1, 1),                  # OH*OW = 256: per image, one chunk
    (1, 2, 17, 19, 3, 2, 1, 0),                  # per image, one image: one thread only
    (3, 1, 29, 31, 6, (5, 3), 1, 0),             # per image, 3 images over 2 threads
    (3, 3, 17, 15, 5, 1, 1, 0),                  # OH*OW = 255: batched, one chunk
    (5, 3, 30, 26, 4, 7, 1, 3),                  # per image, chunks of 2 images: 2+2+1
    (3, 2, 40, 37, 3, 3, 2, 1),                  # per image, stride 2
    (2, 16, 20, 20, 3, 7, 1, 3),                 # per image, one image > 1 MiB: NB = 1
    (9, 20, 12, 12, 40, 5, 1, 0),                # batched (book conv2), chunks 7+2
    (2, 64, 15, 15, 3, 7, 1, 3),                 # batched, one image > 1 MiB: NB = 1
]

CONV_CASES = HAND_CASES + PATH_CASES + _random_cases(12, seed=20240611)


def _case_id(case):
    n, c, h, w, k, ks, s, p = case
    return f"x{n}x{c}x{h}x{w}-k{k}-ks{ks}-s{s}-p{p}".replace(" ", "")


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _tol(terms: int) -> dict:
    """Tolerances for float32 sums of `terms` products of O(1) numbers."""
    return dict(rtol=1e-4, atol=max(1e-5, 1e-6 * terms))


def _conv_data(case, seed=0):
    n, c, h, w, k, ks, s, p = case
    kh, kw = _pair(ks)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c, kh, kw)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    oh = (h + 2 * _pair(p)[0] - kh) // _pair(s)[0] + 1
    ow = (w + 2 * _pair(p)[1] - kw) // _pair(s)[1] + 1
    dout = rng.standard_normal((n, k, oh, ow)).astype(np.float32)
    return x, wt, b, dout
