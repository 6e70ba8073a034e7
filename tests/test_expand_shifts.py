"""fastcnn.datasets.expand_shifts (the expanded training set: each image and its
four one-pixel shifts, plain or shuffled in place by `order`) and random_shift.
Expected images are built with loops over pixels."""
from __future__ import annotations

import numpy as np
import pytest

from fastcnn import datasets
from fastcnn.datasets import expand_shifts, load_mnist, random_shift


# ----------------------------------------------------------------------------
# Shifts. Expected images are built with loops over pixels.

def _shifted(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """img (C, H, W) with pixel (r, c) moved to (r + dy, c + dx), zero elsewhere."""
    out = np.zeros_like(img)
    _, h, w = img.shape
    for r in range(h):
        for c in range(w):
            if 0 <= r + dy < h and 0 <= c + dx < w:
                out[:, r + dy, c + dx] = img[:, r, c]
    return out


def _one_pixel(h, w, r, c, dtype=np.float32):
    img = np.zeros((1, h, w), dtype)
    img[0, r, c] = 1
    return img


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_expand_shifts_moves_a_lit_pixel(dtype):
    r, c = 2, 3
    x = _one_pixel(5, 6, r, c, dtype)[None]
    x5, y5 = expand_shifts(x, np.array([4]))
    assert x5.shape == (5, 1, 5, 6) and x5.dtype == dtype
    expected = [(r, c), (r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)]  # self, up, down, left, right
    for k, (er, ec) in enumerate(expected):
        assert np.array_equal(x5[k], _one_pixel(5, 6, er, ec, dtype)), k
    assert list(y5) == [4] * 5


def test_expand_shifts_drops_border_pixels_and_zero_fills():
    x = np.ones((1, 1, 4, 5), np.float32)
    x5, _ = expand_shifts(x, [0])
    up, down, left, right = x5[1, 0], x5[2, 0], x5[3, 0], x5[4, 0]
    assert np.all(up[:3] == 1) and np.all(up[3] == 0)
    assert np.all(down[0] == 0) and np.all(down[1:] == 1)
    assert np.all(left[:, :4] == 1) and np.all(left[:, 4] == 0)
    assert np.all(right[:, 0] == 0) and np.all(right[:, 1:] == 1)
    # A pixel on the top edge leaves the image in the "up" copy.
    x5, _ = expand_shifts(_one_pixel(4, 5, 0, 2)[None], [0])
    assert not x5[1].any() and x5[2, 0, 1, 2] == 1


def test_expand_shifts_many_images_and_channels():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(3, 2, 6, 7), dtype=np.uint8)
    x_before = x.copy()
    y = np.array([7, 1, 9], np.int64)
    x5, y5 = expand_shifts(x, y)
    assert x5.shape == (15, 2, 6, 7) and x5.dtype == np.uint8
    assert y5.tolist() == [7] * 5 + [1] * 5 + [9] * 5 and y5.dtype == np.int64
    for i in range(3):
        for k, (dy, dx) in enumerate([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]):
            assert np.array_equal(x5[5 * i + k], _shifted(x[i], dy, dx)), (i, k)
    assert np.array_equal(x, x_before)


def test_expand_shifts_on_mnist_labels(mnist):
    (xt, yt), _, _ = mnist
    x5, y5 = expand_shifts(xt[:4], yt[:4])
    assert x5.shape == (20, 1, 28, 28) and x5.dtype == np.float32
    assert np.array_equal(y5, np.repeat(yt[:4], 5))


def test_expand_shifts_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"x .*\(4, 784\)"):
        expand_shifts(np.zeros((4, 784), np.float32), np.zeros(4))
    with pytest.raises(ValueError, match=r"y .*\(3,\).*\(3, 1, 5, 5\).*\(4,\)"):
        expand_shifts(np.zeros((3, 1, 5, 5), np.float32), np.zeros(4))


# expand_shifts(..., order=...): the shuffled set built in place. The oracle is
# the straightforward construction it replaces: build all 5N rows in order, then
# index them by the permutation. Shifts here come from a zero border and a crop.

def _expand_then_shuffle(x, y, order):
    n, c, h, w = x.shape
    padded = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])  # pixel (r, c) at (r + 1, c + 1)
    x5 = np.empty((n, 5, c, h, w), x.dtype)
    for k, (dy, dx) in enumerate([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]):
        x5[:, k] = padded[:, :, 1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
    return x5.reshape(5 * n, c, h, w)[order], np.repeat(y, 5)[order]


def test_expand_then_shuffle_oracle_agrees_with_the_pixel_loops():
    x = np.random.default_rng(5).integers(1, 256, size=(2, 1, 4, 5), dtype=np.uint8)
    x5, y5 = _expand_then_shuffle(x, np.array([3, 8]), np.arange(10))
    for i in range(2):
        for k, (dy, dx) in enumerate([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]):
            assert np.array_equal(x5[5 * i + k], _shifted(x[i], dy, dx)), (i, k)
    assert y5.tolist() == [3] * 5 + [8] * 5


def test_expand_shifts_shuffled_matches_expand_then_index():
    (xt, yt), _, _ = load_mnist(dtype="uint8")
    x, y = xt[:300], yt[:300]
    order = np.random.default_rng(0).permutation(1500)
    want_x, want_y = _expand_then_shuffle(x, y, order)
    got_x, got_y = expand_shifts(x, y, order=order)
    assert got_x.shape == (1500, 1, 28, 28) and got_x.dtype == np.uint8
    assert got_y.dtype == np.int64 and got_x.flags.c_contiguous
    np.testing.assert_array_equal(got_x, want_x)
    np.testing.assert_array_equal(got_y, want_y)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_expand_shifts_shuffled_across_chunks(monkeypatch, dtype):
    # Chunks of 7 images: several full chunks and a short last one.
    rng = np.random.default_rng(3)
    x = rng.integers(1, 256, size=(40, 2, 5, 6)).astype(dtype)
    y = rng.integers(0, 10, size=40)
    x_before = x.copy()
    monkeypatch.setattr(datasets.augment, "_CHUNK_BYTES", 7 * x[0].nbytes)
    for order in (rng.permutation(200), np.arange(200), np.arange(200)[::-1]):
        want_x, want_y = _expand_then_shuffle(x, y, order)
        got_x, got_y = expand_shifts(x, y, order=order)
        assert got_x.dtype == dtype
        np.testing.assert_array_equal(got_x, want_x)
        np.testing.assert_array_equal(got_y, want_y)
    assert np.array_equal(x, x_before)


def test_expand_shifts_identity_order_is_the_plain_expansion():
    x = np.random.default_rng(4).random((9, 1, 4, 4), dtype=np.float32)
    y = np.arange(9)
    plain = expand_shifts(x, y)
    ordered = expand_shifts(x, y, order=np.arange(45))
    np.testing.assert_array_equal(ordered[0], plain[0])
    np.testing.assert_array_equal(ordered[1], plain[1])


def test_expand_shifts_rejects_bad_orders():
    x, y = np.zeros((3, 1, 4, 4), np.uint8), np.zeros(3, np.int64)
    with pytest.raises(ValueError, match=r"permutation of range\(15\).*shape \(14,\)"):
        expand_shifts(x, y, order=np.arange(14))
    with pytest.raises(ValueError, match=r"permutation of range\(15\).*float64"):
        expand_shifts(x, y, order=np.arange(15.0))
    with pytest.raises(ValueError, match=r"values in \[-1, 13\]"):
        expand_shifts(x, y, order=np.arange(15) - 1)
    with pytest.raises(ValueError, match=r"repeats values \(e.g. 14 is missing\)"):
        expand_shifts(x, y, order=np.r_[np.arange(14), 0])


@pytest.mark.parametrize("max_shift", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_random_shift_is_some_shift_in_range(dtype, max_shift):
    data = np.random.default_rng(1)
    # Every pixel nonzero and distinct within an image: only one shift can match.
    x = np.stack([data.permutation(np.arange(1, 65)).reshape(1, 8, 8) for _ in range(300)])
    x = x.astype(dtype)
    x_before = x.copy()
    out = random_shift(x, np.random.default_rng(2), max_shift=max_shift)
    assert out.shape == x.shape and out.dtype == dtype
    span = range(-max_shift, max_shift + 1)
    seen = set()
    for img, res in zip(x, out):
        matches = [(dy, dx) for dy in span for dx in span if np.array_equal(res, _shifted(img, dy, dx))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {(dy, dx) for dy in span for dx in span}  # 300 draws reach them all
    assert np.array_equal(x, x_before)


def test_random_shift_is_reproducible_with_a_seed():
    x = np.random.default_rng(3).random((50, 1, 28, 28), dtype=np.float32)
    a = random_shift(x, np.random.default_rng(42))
    b = random_shift(x, np.random.default_rng(42))
    c = random_shift(x, np.random.default_rng(43))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_shift_zero_is_a_copy_and_bad_arguments_fail():
    x = np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3)
    out = random_shift(x, np.random.default_rng(0), max_shift=0)
    assert np.array_equal(out, x) and out is not x
    with pytest.raises(TypeError, match="rng"):
        random_shift(x, 0)
    with pytest.raises(ValueError, match="max_shift"):
        random_shift(x, np.random.default_rng(0), max_shift=-1)
    with pytest.raises(TypeError, match="max_shift"):
        random_shift(x, np.random.default_rng(0), max_shift=1.0)
    with pytest.raises(ValueError, match=r"x .*\(3, 3\)"):
        random_shift(x[0, 0], np.random.default_rng(0))
