"""Expanding the training data by shifting images.

expand_shifts(x, y, order=None) -> (x5, y5)
    The book's expanded training set: each image followed by its four 1-pixel
    shifts (order: itself, up, down, left, right), vacated pixels zero. With a
    permutation `order` of the 5N rows, returns (x5[order], y5[order]) built
    directly in that order, without ever holding the unshuffled x5.

random_shift(x, rng, max_shift=1) -> x_shifted
    The memory-light alternative, applied per mini-batch: each image moved by
    its own random (dy, dx), each in [-max_shift, max_shift], vacated pixels zero.

Both shift functions take images (N, C, H, W) of any dtype, return a new array
of that dtype, and leave their inputs unchanged.
"""
from __future__ import annotations

import numpy as np

from ..common.checks import integer

__all__ = ["expand_shifts", "random_shift"]


# (dy, dx) of the five rows each image becomes: itself, then up, down, left, right.
_SHIFTS = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]

# Bytes of images shifted at once when expand_shifts fills a shuffled result.
_CHUNK_BYTES = 4 << 20


def expand_shifts(x, y, order=None):
    """Images x (N, C, H, W) and labels y (N,) -> (x5 (5N, C, H, W), y5 (5N,)).

    Image i becomes rows 5i..5i+4 of x5: itself, then shifted one pixel up,
    down, left and right (pixel (r, c) moves to (r-1, c), (r+1, c), (r, c-1),
    (r, c+1)); pixels shifted off the edge are lost and vacated ones are zero.
    y5 repeats each label 5 times. x5 has x's dtype, y5 has y's.

    order: None, or a permutation of range(5N). Then the result is
    (x5[order], y5[order]), but each shifted image is written straight to its
    final row, so memory holds one 5N-image array plus a few MB, not two.
    """
    x = _image_batch(x)
    y = np.asarray(y)
    if y.shape != (len(x),):
        raise ValueError(f"y must have shape ({len(x)},) to match x {x.shape}, got {y.shape}")
    n, c, h, w = x.shape
    if order is None:
        out = np.zeros((n, 5, c, h, w), dtype=x.dtype)
        for k, (dy, dx) in enumerate(_SHIFTS):
            _shift_into(out[:, k], x, dy, dx)
        return out.reshape(n * 5, c, h, w), np.repeat(y, 5)

    # Row 5i+k of the unshuffled set (image i, shift k) goes to row dest[i, k]
    # of the result: result[j] = unshuffled[order[j]], so dest is order's inverse.
    dest = _inverse_permutation(order, 5 * n).reshape(n, 5)
    x_out = np.empty((5 * n, c, h, w), dtype=x.dtype)  # every row is written once below
    y_out = np.empty(5 * n, dtype=y.dtype)
    chunk = max(1, _CHUNK_BYTES // max(1, x[:1].nbytes))
    for start in range(0, n, chunk):
        images = x[start:start + chunk]  # a view
        rows = dest[start:start + chunk]
        for k, (dy, dx) in enumerate(_SHIFTS):
            shifted = np.zeros_like(images)
            _shift_into(shifted, images, dy, dx)
            x_out[rows[:, k]] = shifted
            y_out[rows[:, k]] = y[start:start + chunk]
    return x_out, y_out


def _inverse_permutation(order, n: int) -> np.ndarray:
    """inv with inv[order[j]] = j, after checking order is a permutation of range(n)."""
    order = np.asarray(order)
    if order.shape != (n,) or (n and order.dtype.kind not in "iu"):
        raise ValueError(f"order must be a permutation of range({n}): integers of shape "
                         f"({n},), got shape {order.shape} and dtype {order.dtype}")
    if n and (order.min() < 0 or order.max() >= n):
        raise ValueError(f"order must be a permutation of range({n}), but it holds values in "
                         f"[{order.min()}, {order.max()}]")
    inv = np.full(n, -1, dtype=np.intp)
    inv[order] = np.arange(n, dtype=np.intp)
    if n and inv.min() < 0:  # some index repeated, so another one is missing
        raise ValueError(f"order must be a permutation of range({n}), but it repeats "
                         f"values (e.g. {int(np.flatnonzero(inv < 0)[0])} is missing)")
    return inv


def random_shift(x, rng, max_shift=1):
    """Each image of x (N, C, H, W) moved by its own (dy, dx), both drawn
    uniformly from [-max_shift, max_shift] with the numpy Generator rng
    (pixel (r, c) moves to (r+dy, c+dx)); vacated pixels are zero. Returns a
    new array of x's shape and dtype."""
    x = _image_batch(x)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    max_shift = integer(max_shift, "max_shift", 0)
    m = int(max_shift)
    dys = rng.integers(-m, m + 1, size=len(x))
    dxs = rng.integers(-m, m + 1, size=len(x))

    out = np.zeros_like(x)
    # One vectorised copy per (dy, dx) pair: (2m+1)**2 of them, 9 for m = 1.
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            chosen = np.flatnonzero((dys == dy) & (dxs == dx))
            if len(chosen):
                shifted = np.zeros_like(x[chosen])
                _shift_into(shifted, x[chosen], dy, dx)
                out[chosen] = shifted
    return out


def _image_batch(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images (N, C, H, W), got shape {x.shape}")
    return x


def _shift_into(dst: np.ndarray, src: np.ndarray, dy: int, dx: int) -> None:
    """dst[..., r + dy, c + dx] = src[..., r, c] wherever both lie inside the
    image; the rest of dst is left as it is (zero, for a fresh dst)."""
    h, w = src.shape[-2:]
    rows_dst, rows_src = _overlap(dy, h)
    cols_dst, cols_src = _overlap(dx, w)
    dst[..., rows_dst, cols_dst] = src[..., rows_src, cols_src]


def _overlap(d: int, n: int) -> tuple[slice, slice]:
    """(destination, source) slices of an axis of length n shifted by d."""
    k = min(abs(d), n)
    if d >= 0:
        return slice(k, n), slice(0, n - k)
    return slice(0, n - k), slice(k, n)
