"""The inference plan's life around the model (nn/steps.Plans): it sees parameters
updated in place, is rebuilt when a parameter array, the steps or the backend
change, gives way to the Python forward where it cannot run (reference backend,
a layer without an inference step); and _core.InferencePlan
refuses bad steps and bad runs cleanly, also under a fuzz.

Bit-for-bit agreement with the Python forward is tests/test_inference_plan.py."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastcnn
from fastcnn import Sequential, _core, layers as L
from fastcnn.nn.layers import Layer


def _model(**kw):
    model = Sequential([L.Conv2D(4, 3, activation="relu"), L.MaxPool2D(2), L.Dense(5, "softmax")],
                       input_shape=(2, 9, 9), seed=1, **kw)
    return model


def _x(n=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 2, 9, 9)).astype(np.float32)


def _forward(model, x):
    return model.forward(model.batch(x))[0]


def test_updates_in_place_are_seen_without_a_rebuild():
    model, x = _model(), _x()
    first = model.predict_proba(x)
    plan = model._plans.get(model)
    for layer in model.layers:
        for p in layer.params.values():
            p *= 1.5
    second = model.predict_proba(x)
    assert model._plans.get(model) is plan
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(second, _forward(model, x))


def test_training_then_predicting_uses_the_trained_weights():
    model, x = _model(), _x(20)
    model.predict_proba(x)
    model.fit(x, np.arange(20) % 5, epochs=1, batch_size=4, verbose=0)
    np.testing.assert_array_equal(model.predict_proba(x), _forward(model, x))


@pytest.mark.parametrize("change", ["replace array", "fuse", "build", "backend"])
def test_a_new_plan_when_what_it_holds_changed(change):
    model, x = _model(), _x()
    model.predict_proba(x)
    plan = model._plans.get(model)
    if change == "replace array":
        layer = model.layers[0]
        layer.params["w"] = layer.params["w"] * 2.0
    elif change == "fuse":
        model.fuse = False
    elif change == "build":
        model.build(model.input_shape)
    else:
        model.backend = "reference"
    got = model.predict_proba(x)
    assert model._plans.get(model) is not plan
    np.testing.assert_array_equal(got, _forward(model, x))
    if change == "backend":
        assert model._plans.get(model) is None   # the reference runs the Python forward


def test_float64_models_run_the_python_forward():
    model = _model(backend="reference", dtype="float64")
    x = _x()
    assert model.predict_proba(x).dtype == np.float64
    assert model._plans.get(model) is None


def test_large_buffers_are_freed_and_made_again():
    """Buffers over 64 MiB (here 2 x 40 images x 1 MiB) are freed after each run;
    the next run makes them again, and a smaller batch after a larger one fits."""
    model = Sequential([L.Conv2D(64, 3, padding="same", activation="tanh"), L.GlobalAvgPool2D()],
                       input_shape=(1, 64, 64), seed=1)
    for n in (40, 40, 3, 41):
        x = np.random.default_rng(n).normal(size=(n, 1, 64, 64)).astype(np.float32)
        np.testing.assert_array_equal(model.predict_proba(x), _forward(model, x))


class Twice(Layer):
    """A layer of the user's own, with no inference step."""

    def forward(self, ops, x, training=False, rng=None, head=False):
        return x * 2, None


class OddDense(L.Dense):
    """A subclass that changes forward but not infer: must not run Dense's step."""

    def forward(self, ops, x, training=False, rng=None, head=False):
        y, cache = super().forward(ops, x, training, rng, head)
        return y + 1, cache


@pytest.mark.parametrize("layer", [Twice(), OddDense(3)], ids=["own layer", "subclass"])
def test_layers_without_their_own_step_run_the_python_forward(layer):
    model = Sequential([L.Conv2D(2, 3), layer], input_shape=(2, 9, 9))
    x = _x()
    np.testing.assert_array_equal(model.predict_proba(x), _forward(model, x))
    assert model._plans.get(model) is None


def test_python_threads_share_one_plan(threads):
    """Runs of one plan from several Python threads take turns on its buffers."""
    model = _model()
    xs = [_x(n, seed=n) for n in (1, 7, 2, 30, 5, 1, 16, 3)]
    want = [_forward(model, x) for x in xs]
    got = [None] * len(xs)

    def work(i):
        for _ in range(20):
            got[i] = model.predict_proba(xs[i], batch_size=4)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for g, w, x in zip(got, want, xs):
        np.testing.assert_array_equal(g, np.concatenate(
            [_forward(model, x[i:i + 4]) for i in range(0, len(x), 4)]))


# ------------------------------------------------------- _core directly --

W = np.ones((4, 2, 3, 3), np.float32)


def _plan():
    p = _core.InferencePlan([2, 9, 9])
    p.conv2d(W, None, (1, 1), (0, 0), relu=True)
    return p


BAD_STEPS = [
    ("input shape", lambda: _core.InferencePlan([2, 3]), ValueError, "input_shape"),
    ("zero size", lambda: _core.InferencePlan([0]), ValueError, "input_shape"),
    ("w dtype", lambda: _plan().conv2d(W.astype(np.float64), None, (1, 1), (0, 0)),
     TypeError, "float32"),
    ("w channels", lambda: _plan().conv2d(W, None, (1, 1), (0, 0)), ValueError, "w has shape"),
    ("w layout", lambda: _core.InferencePlan([2, 9, 9]).conv2d(
        np.ones((3, 3, 2, 4), np.float32).T, None, (1, 1), (0, 0)), TypeError, "C-contiguous"),
    ("bias", lambda: _core.InferencePlan([2, 9, 9]).conv2d(W, np.ones(3, np.float32), (1, 1),
                                                           (0, 0)), ValueError, "b has shape"),
    ("kernel too big", lambda: _core.InferencePlan([2, 2, 2]).conv2d(W, None, (1, 1), (0, 0)),
     ValueError, "larger than the padded input"),
    ("stride 0", lambda: _core.InferencePlan([2, 9, 9]).conv2d(W, None, (0, 1), (0, 0)),
     ValueError, "stride"),
    ("pool window", lambda: _plan().maxpool2d((8, 2), (1, 1)), ValueError, "larger than"),
    ("fused window", lambda: _core.InferencePlan([2, 30, 30]).conv2d_maxpool(
        W, None, (1, 1), (0, 0), (16, 16), (1, 1)), ValueError, "fused conv"),
    ("pool on flat", lambda: _core.InferencePlan([5]).avgpool2d((1, 1), (1, 1)), ValueError,
     r"needs \(C, H, W\)"),
    ("dense features", lambda: _plan().dense(np.ones((10, 3), np.float32), None), ValueError,
     "w has shape"),
    ("activation", lambda: _plan().activation("gelu"), ValueError, "activation must be"),
]


@pytest.mark.parametrize("what,call,error,words", BAD_STEPS, ids=[b[0] for b in BAD_STEPS])
def test_bad_steps_are_refused(what, call, error, words):
    with pytest.raises(error, match=words):
        call()


def _run_bad(what):
    p = _plan()
    x, out = np.ones((2, 2, 9, 9), np.float32), np.empty((2, 4, 7, 7), np.float32)
    if what == "x shape":
        x = np.ones((2, 2, 9, 8), np.float32)
    elif what == "x dtype":
        x = x.astype(np.float64)
    elif what == "empty batch":
        x, out = x[:0], out[:0]
    elif what == "out shape":
        out = np.empty((2, 4, 7), np.float32)
    elif what == "out read-only":
        out.flags.writeable = False
    elif what == "out is x":
        out = x
    elif what == "out is w":   # a parameter array the plan reads
        w = np.ones((36, 4), np.float32)
        p = _core.InferencePlan([36])
        p.dense(w, None)
        x, out = np.ones((1, 36), np.float32), w[:1]
    p.run(x, out)


RUN_ERRORS = [("x shape", ValueError, "x has shape"), ("x dtype", TypeError, "float32"),
              ("empty batch", ValueError, "batch size"), ("out shape", ValueError, "out has"),
              ("out read-only", ValueError, "writeable"), ("out is x", ValueError, "out has"),
              ("out is w", ValueError, "share memory")]


@pytest.mark.parametrize("what,error,words", RUN_ERRORS, ids=[r[0] for r in RUN_ERRORS])
def test_bad_runs_are_refused(what, error, words):
    with pytest.raises(error, match=words):
        _run_bad(what)


def test_a_parameter_array_resized_under_the_plan_is_refused():
    w = W.copy()
    p = _core.InferencePlan([2, 9, 9])
    p.conv2d(w, None, (1, 1), (0, 0))
    w.resize((8, 2, 3, 3), refcheck=False)   # may move the data: the plan must not use it
    with pytest.raises(ValueError, match="build a new plan"):
        p.run(np.ones((1, 2, 9, 9), np.float32), np.empty((1, 4, 7, 7), np.float32))


FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
SIZES = [0, 1, 2, 3, 5, 2 ** 40, -1]


@FUZZ
@given(data=st.data())
def test_fuzz_steps_and_runs(data):
    """Random steps with random (often wrong) arguments, then a run: a result or
    TypeError/ValueError, never a crash or a write out of bounds."""
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    shape = draw(st.lists(st.sampled_from([1, 2, 3, 6]), min_size=1, max_size=4))
    pair = st.tuples(st.sampled_from(SIZES), st.sampled_from(SIZES))

    def array(ndim_max=4):
        a = rng.normal(size=draw(st.lists(st.sampled_from([1, 2, 3]), max_size=ndim_max)))
        return a.astype(draw(st.sampled_from([np.float32, np.float32, np.float64])))

    try:
        p = _core.InferencePlan(shape)
        for _ in range(draw(st.integers(0, 5))):
            kind = draw(st.sampled_from(["conv", "convpool", "pool", "gap", "dense", "act",
                                         "scale", "flatten"]))
            b = draw(st.sampled_from([None, "array"]))
            b = None if b is None else array(1)
            if kind == "conv":
                p.conv2d(array(), b, draw(pair), draw(pair), draw(st.booleans()))
            elif kind == "convpool":
                p.conv2d_maxpool(array(), b, draw(pair), draw(pair), draw(pair), draw(pair))
            elif kind == "pool":
                getattr(p, draw(st.sampled_from(["maxpool2d", "avgpool2d", "l2pool2d"])))(
                    draw(pair), draw(pair))
            elif kind == "gap":
                p.global_avgpool2d()
            elif kind == "dense":
                p.dense(array(2), b)
            elif kind == "act":
                p.activation(draw(st.sampled_from(["relu", "softmax", "tanh", "x"])), 0.5)
            elif kind == "scale":
                p.scale(0.5)
            else:
                p.flatten()
        n = draw(st.sampled_from([1, 2, 3]))
        x = rng.normal(size=(n,) + tuple(draw(st.sampled_from([p.input_shape, shape[:1]]))))
        out = np.empty((n,) + tuple(p.output_shape), np.float32)
        p.run(x.astype(np.float32), out)
    except (TypeError, ValueError):
        pass
    assert fastcnn.get_num_threads() >= 1
