"""Winograd F(4x4, 3x3) for 3x3 stride-1 convolutions (src/cpp/winograd.h): the
error bound against the float64 reference on awkward shapes (forward, dx, dw,
db; conv2d and the fused conv + max-pool) on every SIMD path and 1 and 2
threads; the same bits on 1 and 2 threads and for an image alone or in a batch
(any count of tiles per row); NaN placed as im2col places it; the
choice by shape and its override (FASTCNN_CONV, fastcnn.set_conv_algorithm);
and "im2col" giving exactly the plain path's bits."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import as64, assert_close, run_python

import fastcnn
from fastcnn import _core, layers as L, ops, optim, reference

# (N, C, H, W, K, padding): odd sizes, C and K not multiples of 16, batch 1,
# padding 0, 1, 2; outputs smaller than one 4x4 tile, edge tiles; images cut
# into bands of tile rows (many channels, 37x41); several images per block.
CASES = [
    (1, 3, 7, 9, 5, 1),
    (2, 17, 13, 11, 19, 1),
    (3, 20, 12, 15, 24, 0),
    (1, 33, 5, 6, 7, 0),
    (2, 5, 9, 9, 35, 2),
    (4, 18, 21, 19, 6, 1),
    (2, 48, 37, 41, 40, 1),
    (9, 16, 8, 8, 16, 1),
]


def _id(case):
    n, c, h, w, k, p = case
    return f"x{n}x{c}x{h}x{w}-k{k}-p{p}"


@pytest.fixture
def winograd():
    """Every 3x3 stride-1 conv by Winograd for the test; the setting restored."""
    before = fastcnn.conv_algorithm()
    fastcnn.set_conv_algorithm("winograd")
    yield
    fastcnn.set_conv_algorithm(before)


def _data(case, seed=0):
    n, c, h, w, k, p = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    oh, ow = h + 2 * p - 2, w + 2 * p - 2
    dout = rng.standard_normal((n, k, oh, ow)).astype(np.float32)
    return x, wt, b, dout


def assert_within_bound(got, want, scale, name):
    """The stated bound: in every output plane (the last two axes), max |got -
    want| <= WINOGRAD_ERROR_BOUND * max scale, scale = the same sum of magnitudes."""
    err = np.abs(np.asarray(got, dtype=np.float64) - want)
    limit = _core.WINOGRAD_ERROR_BOUND * scale.max(axis=(-2, -1), keepdims=True)
    ratio = err.max(axis=(-2, -1)) / np.maximum(limit[..., 0, 0], 1e-300)
    assert np.all(err <= limit), (f"{name}: error {ratio.max():.3g} x the bound at plane "
                                  f"{np.unravel_index(np.argmax(ratio), ratio.shape)}")


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_conv2d_within_bound(case, winograd, threads, isa):
    n, c, h, w, k, p = case
    assert _core._conv_path(n, c, h, w, k, 3, 3, 1, 1, p, p) == "winograd"
    x, wt, b, dout = _data(case)
    x64, w64, b64, d64 = as64(x, wt, b, dout)
    scale = reference.conv2d(np.abs(x64), np.abs(w64), None, 1, p)
    assert_within_bound(ops.conv2d(x, wt, b, 1, p), reference.conv2d(x64, w64, b64, 1, p),
                        scale + np.abs(b64)[:, None, None], "out")
    relu = ops.conv2d(x, wt, b, 1, p, relu=True)
    np.testing.assert_array_equal(relu, np.maximum(ops.conv2d(x, wt, b, 1, p), 0))

    dx, dw, db = ops.conv2d_backward(dout, x, wt, 1, p)
    rdx, rdw, rdb = reference.conv2d_backward(d64, x64, w64, 1, p)
    sdx, sdw, _ = reference.conv2d_backward(np.abs(d64), np.abs(x64), np.abs(w64), 1, p)
    assert_within_bound(dx, rdx, sdx, "dx")
    assert_within_bound(dw, rdw, sdw, "dw")
    assert_close(db, rdb, rtol=1e-4, atol=1e-5 * dout[0, 0].size * n, name="db")
    no_dx = ops.conv2d_backward(dout, x, wt, 1, p, need_dx=False)
    assert no_dx[0] is None
    np.testing.assert_array_equal(no_dx[1], dw)
    np.testing.assert_array_equal(no_dx[2], db)


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("case", CASES[1:3] + CASES[5:], ids=_id)
def test_conv2d_maxpool_within_bound(case, relu, winograd, threads, isa):
    """The fused op takes the same Winograd pass: bit for bit conv2d then
    maxpool2d, and its backward the separate ops' backward; all within the bound."""
    n, c, h, w, k, p = case
    x, wt, b, _ = _data(case)
    out, choice = ops.conv2d_maxpool(x, wt, b, 1, p, 2, relu=relu)
    z = ops.conv2d(x, wt, b, 1, p, relu=relu)
    np.testing.assert_array_equal(out, ops.maxpool2d(z, 2))
    x64, w64, b64 = as64(x, wt, b)
    want, _ = reference.conv2d_maxpool(x64, w64, b64, 1, p, 2, relu=relu)
    scale = reference.maxpool2d(reference.conv2d(np.abs(x64), np.abs(w64), None, 1, p), 2)
    assert_within_bound(out, want, scale + np.abs(b64)[:, None, None], "out")

    dout = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    dx, dw, db = ops.conv2d_maxpool_backward(dout, choice, x, wt, 1, p, 2)
    g = ops.relu_backward(dout, out) if relu else dout
    dz = ops.maxpool2d_backward(g, z, 2)
    for got, sep in zip((dx, dw, db), ops.conv2d_backward(dz, x, wt, 1, p)):
        np.testing.assert_array_equal(got, sep)
    rdx, rdw, _ = reference.conv2d_maxpool_backward(as64(dout)[0], choice, x64, w64, 1, p, 2)
    dz64 = np.abs(as64(dz)[0])
    sdx, sdw, _ = reference.conv2d_backward(dz64, np.abs(x64), np.abs(w64), 1, p)
    assert_within_bound(dx, rdx, sdx, "dx")
    assert_within_bound(dw, rdw, sdw, "dw")


@pytest.mark.parametrize("width", [2, 4, 5, 9, 13, 16, 22, 27, 35, 41])
def test_tile_runs_any_width(width, winograd, isa):
    """Every count of tiles per tile row (1 to 10 here) with the chunks of
    tiles the transforms take (64 at a time) starting and ending mid-row: a
    batch gives each image the bits that image gives alone (each output, and
    each pixel of dx, comes from its own tiles only), within the bound."""
    n, c, h, k, p = 5, 16, 6, 16, 1
    rng = np.random.default_rng(width)
    x = rng.standard_normal((n, c, h, width)).astype(np.float32)
    wt = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    dout = rng.standard_normal((n, k, h, width)).astype(np.float32)
    out = ops.conv2d(x, wt, b, 1, p)
    dx = ops.conv2d_backward(dout, x, wt, 1, p)[0]
    for i in range(n):
        np.testing.assert_array_equal(out[i:i + 1], ops.conv2d(x[i:i + 1], wt, b, 1, p))
        np.testing.assert_array_equal(dx[i:i + 1],
                                      ops.conv2d_backward(dout[i:i + 1], x[i:i + 1], wt, 1, p)[0])
    x64, w64, b64, d64 = as64(x, wt, b, dout)
    scale = reference.conv2d(np.abs(x64), np.abs(w64), None, 1, p)
    assert_within_bound(out, reference.conv2d(x64, w64, b64, 1, p),
                        scale + np.abs(b64)[:, None, None], "out")
    sdx = reference.conv2d_backward(np.abs(d64), np.abs(x64), np.abs(w64), 1, p)[0]
    assert_within_bound(dx, reference.conv2d_backward(d64, x64, w64, 1, p)[0], sdx, "dx")


def _all_passes(x, wt, b, dout, p, threads):
    """Every Winograd pass (conv2d, the fused op, their backward) on `threads` threads."""
    fastcnn.set_num_threads(threads)
    out, choice = ops.conv2d_maxpool(x, wt, b, 1, p, 2, relu=True)
    return (ops.conv2d(x, wt, b, 1, p), *ops.conv2d_backward(dout, x, wt, 1, p), out,
            *ops.conv2d_maxpool_backward(np.ones_like(out), choice, x, wt, 1, p, 2))


@pytest.mark.parametrize("case", [CASES[1], CASES[6], CASES[7]], ids=_id)
def test_same_bits_on_1_and_2_threads(case, winograd, isa, keep_threads):
    """1 thread, 2 threads, 1 thread again: the same bits each time."""
    data = _data(case, seed=4)
    runs = [_all_passes(*data, case[5], t) for t in (1, 2, 1)]
    for run in runs[1:]:
        for got, first in zip(run, runs[0]):
            np.testing.assert_array_equal(got, first)


def test_training_same_bits_on_1_and_2_threads(winograd):
    """A net whose convs run by Winograd trains to the same bits on 1 and 2 threads."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3, 12, 12)).astype(np.float32)
    y = rng.integers(0, 10, 40)
    params = []
    before = fastcnn.get_num_threads()
    try:
        for t in (1, 2):
            fastcnn.set_num_threads(t)
            net = fastcnn.Sequential([L.Conv2D(16, 3, padding=1, activation="relu"),
                                      L.Conv2D(24, 3, padding=1, activation="relu"),
                                      L.MaxPool2D(2), L.Conv2D(16, 3, activation="relu"),
                                      L.Flatten(), L.Dense(10, activation="softmax")],
                                     input_shape=(3, 12, 12), seed=1)
            net.fit(x, y, epochs=1, batch_size=20, optimizer=optim.SGD(0.05, momentum=0.9),
                    verbose=0)
            params.append([p.copy() for p, _ in net.parameters()])
    finally:
        fastcnn.set_num_threads(before)
    for one, two in zip(*params):
        np.testing.assert_array_equal(two, one)


def test_nan_lands_where_im2col_puts_it(winograd, isa):
    """A NaN spreads over a whole tile in the Winograd domain; such calls are
    recomputed by im2col, so NaN and Inf land where the direct sum puts them."""
    case = CASES[1]
    x, wt, b, dout = _data(case)
    p = case[5]
    x[1, 3, 5, 7] = np.nan
    x[0, 2, 0, 0] = np.inf
    want = reference.conv2d(*as64(x, wt, b), 1, p)
    assert_close(ops.conv2d(x, wt, b, 1, p), want, rtol=1e-4, atol=1e-4)
    fastcnn.set_conv_algorithm("im2col")
    plain = ops.conv2d(x, wt, b, 1, p), ops.conv2d_backward(dout, x, wt, 1, p)
    fastcnn.set_conv_algorithm("winograd")
    np.testing.assert_array_equal(ops.conv2d(x, wt, b, 1, p), plain[0])
    for got, sep in zip(ops.conv2d_backward(dout, x, wt, 1, p), plain[1]):
        np.testing.assert_array_equal(got, sep)


def test_choice_by_shape():
    """auto takes Winograd only for 3x3 stride-1 convs (never e.g. the book's 5x5
    or a strided one), and for the forward pass also on one large image; im2col
    never; winograd wherever it applies."""
    before = fastcnn.conv_algorithm()
    path = _core._conv_path
    try:
        fastcnn.set_conv_algorithm("auto")
        assert path(64, 64, 16, 16, 64, 3, 3, 1, 1, 1, 1) == "winograd"
        # the forward pass of one image of 64 tiles or more (32x32), not of 16 (16x16)
        assert path(1, 32, 32, 32, 32, 3, 3, 1, 1, 1, 1) == "winograd"
        assert path(1, 32, 16, 16, 64, 3, 3, 1, 1, 1, 1) == "im2col"
        for shape in [(64, 64, 16, 16, 64, 5, 5, 1, 1, 2, 2), (64, 64, 16, 16, 64, 3, 3, 2, 2, 1, 1),
                      (64, 64, 16, 16, 64, 3, 1, 1, 1, 1, 0), (64, 3, 32, 32, 32, 3, 3, 1, 1, 1, 1),
                      (10, 20, 12, 12, 40, 5, 5, 1, 1, 0, 0)]:
            assert path(*shape) == "im2col", shape
        fastcnn.set_conv_algorithm("winograd")
        assert path(1, 1, 3, 3, 1, 3, 3, 1, 1, 0, 0) == "winograd"
        assert path(2, 4, 9, 9, 3, 3, 3, 1, 2, 1, 1) == "im2col"
        fastcnn.set_conv_algorithm("im2col")
        assert path(64, 64, 16, 16, 64, 3, 3, 1, 1, 1, 1) == "im2col"
        assert fastcnn.conv_algorithm() == "im2col"
        with pytest.raises(ValueError, match="unknown convolution algorithm"):
            fastcnn.set_conv_algorithm("fft")
        assert fastcnn.conv_algorithm() == "im2col"
        with pytest.raises(TypeError):
            fastcnn.set_conv_algorithm(None)
    finally:
        fastcnn.set_conv_algorithm(before)


def test_environment_variable():
    code = "import fastcnn; print(fastcnn.conv_algorithm())"
    assert run_python(code, FASTCNN_CONV="winograd") == "winograd"
    assert run_python(code, FASTCNN_CONV="im2col") == "im2col"
    assert run_python(code, FASTCNN_CONV=None) == "auto"
    assert run_python(code, FASTCNN_CONV="") == "auto"
    bad = "try:\n import fastcnn\nexcept ImportError as e:\n print(e)"
    assert "FASTCNN_CONV" in run_python(bad, FASTCNN_CONV="fast")


def test_im2col_setting_gives_the_plain_bits(tmp_path):
    """FASTCNN_CONV=im2col in a fresh process and set_conv_algorithm("im2col")
    here give the same bits for a shape auto runs by Winograd; and a 5x5 conv
    (never Winograd) gives the same bits under every setting."""
    case = (16, 32, 16, 16, 32, 1)
    x, wt, b, dout = _data(case, seed=9)
    np.savez(tmp_path / "in.npz", x=x, w=wt, b=b, dout=dout)
    code = (f"import numpy as np; from fastcnn import ops; d = np.load(r'{tmp_path / 'in.npz'}'); "
            "r = [ops.conv2d(d['x'], d['w'], d['b'], 1, 1), "
            "*ops.conv2d_backward(d['dout'], d['x'], d['w'], 1, 1)]; "
            f"np.savez(r'{tmp_path / 'out.npz'}', *r)")
    run_python(code, FASTCNN_CONV="im2col", FASTCNN_ISA=_core.simd_level())  # bits are per path
    fresh = np.load(tmp_path / "out.npz")
    before = fastcnn.conv_algorithm()
    try:
        fastcnn.set_conv_algorithm("im2col")
        here = [ops.conv2d(x, wt, b, 1, 1), *ops.conv2d_backward(dout, x, wt, 1, 1)]
        for i, got in enumerate(here):
            np.testing.assert_array_equal(got, fresh[f"arr_{i}"])
        fastcnn.set_conv_algorithm("auto")
        assert _core._conv_path(*case[:5], 3, 3, 1, 1, 1, 1) == "winograd"
        assert not np.array_equal(ops.conv2d(x, wt, b, 1, 1), here[0])
        w5 = np.random.default_rng(3).standard_normal((32, 32, 5, 5)).astype(np.float32)
        runs = []
        for algo in ("im2col", "auto", "winograd"):
            fastcnn.set_conv_algorithm(algo)
            runs.append((ops.conv2d(x, w5, b, 1, 2), *ops.conv2d_backward(dout, x, w5, 1, 2)))
        for run in runs[1:]:
            for got, first in zip(run, runs[0]):
                np.testing.assert_array_equal(got, first)
    finally:
        fastcnn.set_conv_algorithm(before)
