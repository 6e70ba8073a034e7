"""The rest of the model's public surface: summary and repr (shapes and parameter
counts worked out by hand), Ensemble (votes, means, ties), and what bad input to
layers, optimizers, Sequential and fit gets: the exception type and a message
naming the mistake."""
from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import assert_close

import fastcnn
from fastcnn import Ensemble, Sequential, optim
from fastcnn import layers as L

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# ---------------------------------------------------------------------------
# Reporting

def test_summary_shapes_and_parameter_counts(capsys):
    layers = [L.Conv2D(6, (3, 5), stride=(2, 1), padding=(1, 2), activation="relu"),
              L.MaxPool2D((2, 3)), L.Conv2D(5, 2, use_bias=False), L.Flatten(),
              L.Dropout(0.5), L.Dense(7, activation="tanh"), L.Dense(4, activation="softmax")]
    model = Sequential(layers, input_shape=(3, 13, 10))
    # by hand: conv (13 + 2 - 3) // 2 + 1 = 7, (10 + 4 - 5) // 1 + 1 = 10; pool 7 // 2 = 3,
    # 10 // 3 = 3; conv 2x2 valid 2, 2; 5*2*2 = 20 features
    shapes = [(6, 7, 10), (6, 3, 3), (5, 2, 2), (20,), (20,), (7,), (4,)]
    counts = [6 * 3 * 3 * 5 + 6, 0, 5 * 6 * 2 * 2, 0, 0, 20 * 7 + 7, 7 * 4 + 4]
    assert [layer.output_shape for layer in model.layers] == shapes
    assert [layer.n_params() for layer in model.layers] == counts
    assert model.n_params() == sum(counts) == 575

    text = model.summary()
    assert capsys.readouterr().out.strip() == text.strip()
    assert model.summary(print_fn=None) == text and capsys.readouterr().out == ""
    lines = text.splitlines()
    assert "(None, 3, 13, 10)" in text                 # the input
    rows = [line for line in lines if line.startswith(tuple(type(x).__name__ for x in layers))]
    assert len(rows) == len(layers)
    for row, layer, shape, count in zip(rows, layers, shapes, counts):
        assert row.startswith(type(layer).__name__)
        assert str((None,) + shape) in row, row
        assert row.rstrip().endswith(f"{count:,}"), row
    assert re.search(r"Total params: 575\b", text)

    r = repr(model)
    for layer in layers:
        assert type(layer).__name__ in r
    assert "(3, 13, 10)" in r and "native" in r
    assert "object at 0x" not in r and "array(" not in r


def test_summary_of_unbuilt_model_says_so():
    with pytest.raises(ValueError, match="not built"):
        Sequential([L.Dense(3)]).summary(print_fn=None)


# ---------------------------------------------------------------------------
# Ensemble

def _constant_model(probs):
    """A model whose output is `probs` for every input: zero weights, log-probability
    biases, softmax."""
    m = Sequential([L.Dense(len(probs), activation="softmax")], input_shape=(3,),
                   backend="reference", dtype="float64")
    m.layers[0].params["w"][...] = 0
    m.layers[0].params["b"][...] = np.log(probs)
    return m


def test_ensemble_vote_mean_and_ties():
    x = np.zeros((4, 3))
    a = _constant_model([0.05, 0.50, 0.45])
    b = _constant_model([0.05, 0.50, 0.45])
    c = _constant_model([0.02, 0.03, 0.95])
    d = _constant_model([0.60, 0.10, 0.30])
    # a, b vote 1 and c votes 2: the vote says 1; the mean probability of 2 is highest
    assert np.array_equal(Ensemble([a, b, c]).predict(x), [1] * 4)
    assert np.array_equal(Ensemble([a, b, c], method="mean").predict(x), [2] * 4)
    assert_close(Ensemble([a, c]).predict_proba(x)[0], [0.035, 0.265, 0.7])
    assert np.array_equal(Ensemble([a, b, c, d]).votes(x)[0], [1, 2, 1])
    # ties go to the lowest class index, whatever the order of the members
    assert np.array_equal(Ensemble([c, a]).predict(x), [1] * 4)
    assert np.array_equal(Ensemble([c, d]).predict(x), [0] * 4)
    assert np.array_equal(Ensemble([c, a, d]).predict(x), [0] * 4)
    e = Ensemble([a, b, c])
    assert e.evaluate(x, [1, 1, 2, 0]) == {"accuracy": 0.5}
    assert Ensemble([a, b, c], method="mean").evaluate(x, [1, 1, 2, 0]) == {"accuracy": 0.25}
    assert "3" in repr(e) and "vote" in repr(e)


def test_ensemble_bad_input():
    a = _constant_model([0.2, 0.8])
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])
    with pytest.raises(ValueError, match="method"):
        Ensemble([a], method="median")
    with pytest.raises(ValueError, match="y"):
        Ensemble([a]).evaluate(np.zeros((4, 3)), [0, 1, 1])
    other = _constant_model([0.2, 0.3, 0.5])
    for method in ("vote", "mean"):
        with pytest.raises(ValueError, match="output"):
            Ensemble([a, other], method=method).predict(np.zeros((4, 3)))


# ---------------------------------------------------------------------------
# Bad input to the public API

def _small():
    return Sequential([L.Conv2D(2, 3, activation="relu"), L.Dense(3, activation="softmax")],
                      input_shape=(1, 6, 5))


def _x(n=4, shape=(1, 6, 5)):
    return np.zeros((n,) + shape, np.float32)


def _fit_error(match, *args, error=ValueError, **kwargs):
    with pytest.raises(error, match=match):
        _small().fit(*args, verbose=0, **kwargs)


def test_bad_data():
    _fit_error(re.escape("(N, 1, 6, 5)") + ".*" + re.escape("(4, 1, 6, 4)"),
               _x(shape=(1, 6, 4)), np.zeros(4, int))
    _fit_error(re.escape("[0, 3)"), _x(), np.array([0, 1, 3, 2]))
    _fit_error("labels", _x(), np.array([0, -1, 1, 2]))
    _fit_error(r"same number of examples.*4 and 5", _x(), np.zeros(5, int))
    _fit_error("at least one", _x(0), np.zeros(0, int))
    _fit_error("x must be a numpy array", [[0.0]], [0], error=TypeError)
    _fit_error("dtype int64", _x().astype(np.int64), np.zeros(4, int), error=TypeError)
    _fit_error(re.escape("(N, 3)"), _x(), np.zeros((4, 2)))
    _fit_error("validation_data", _x(), np.zeros(4, int), validation_data=_x())
    _fit_error(re.escape("validation_data[0]"), _x(), np.zeros(4, int),
               validation_data=(_x(shape=(1, 5, 5)), np.zeros(4, int)))
    with pytest.raises(ValueError, match=re.escape("(4, 2, 6, 5)")):
        _small().predict(_x(shape=(2, 6, 5)))


def test_flat_rows_and_images_are_reshaped_when_the_sizes_agree():
    image_model = _small()
    x = np.random.default_rng(0).random((4, 1, 6, 5), dtype=np.float32)
    np.testing.assert_array_equal(image_model.predict_proba(x.reshape(4, 30)),
                                  image_model.predict_proba(x))
    row_model = Sequential([L.Dense(3, activation="softmax")], input_shape=(30,))
    np.testing.assert_array_equal(row_model.predict_proba(x), row_model.predict_proba(
        x.reshape(4, 30)))
    with pytest.raises(ValueError, match=re.escape("(N, 30)") + ".*" + re.escape("(4, 1, 6, 4)")):
        row_model.predict(x[..., :4])


def test_bad_training_arguments():
    x, y = _x(), np.zeros(4, int)
    _fit_error("batch_size", x, y, batch_size=0)
    _fit_error("epochs", x, y, epochs=0)
    with pytest.raises(TypeError, match="epochs"):
        Sequential([L.Dense(2)], input_shape=(4,)).fit(x.reshape(4, -1)[:, :4], y, epochs=1.5,
                                                      verbose=0)
    _fit_error("unknown optimizer 'adamw'", x, y, optimizer="adamw")
    _fit_error("unknown loss 'hinge'", x, y, loss="hinge")
    _fit_error("drop_last", x, y, batch_size=5, drop_last=True)
    with pytest.raises(ValueError, match="batch_size"):
        _small().predict(x, batch_size=0)


@pytest.mark.parametrize("loss, last", [("quadratic", "softmax"), ("log_likelihood", "relu"),
                                        ("binary_cross_entropy", "tanh"),
                                        ("log_likelihood", "sigmoid")])
def test_loss_must_fit_the_last_activation(loss, last):
    model = Sequential([L.Dense(3, activation=last)], input_shape=(4,))
    x, y = np.zeros((2, 4), np.float32), np.array([0, 1])
    with pytest.raises(ValueError, match=f"{loss}.*{last}"):
        model.fit(x, y, loss=loss, verbose=0)
    with pytest.raises(ValueError, match=f"{loss}.*{last}"):
        model.loss_and_grads(x, y, loss)


@pytest.mark.parametrize("make, match", [
    (lambda: L.Dense(2.5), "units"),
    (lambda: L.Conv2D("3", 3), "filters"),
    (lambda: L.Conv2D(2, 3, stride=1.0), "stride"),
    (lambda: L.Dense(3, activation=None and 1 or 7), "activation"),
    (lambda: L.Dropout("0.5"), "rate"),
    (lambda: L.Dropout(0.5, inverted="yes"), "inverted"),
    (lambda: optim.SGD("0.1"), "lr"),
    (lambda: optim.SGD(0.1, nesterov=1), "nesterov"),
])
def test_wrong_kinds_of_argument_are_type_errors(make, match):
    """The kind of mistake decides the exception, in every module: the wrong kind of
    object is a TypeError, a wrong value (below) a ValueError."""
    with pytest.raises(TypeError, match=match):
        make()


@pytest.mark.parametrize("make, match", [
    (lambda: L.Dense(0), "units"),
    (lambda: L.Dense(-3), "units"),
    (lambda: L.Conv2D(0, 3), "filters"),
    (lambda: L.Conv2D(2, 0), "kernel_size"),
    (lambda: L.Conv2D(2, (3, -1)), "kernel_size"),
    (lambda: L.Conv2D(2, 3, stride=0), "stride"),
    (lambda: L.Conv2D(2, 3, padding=-1), "padding"),
    (lambda: L.Conv2D(2, 4, padding="same"), "same"),
    (lambda: L.MaxPool2D(0), "size"),
    (lambda: L.AvgPool2D(2, stride=(1, 0)), "stride"),
    (lambda: L.Dense(3, activation="gelu"), "activation.*gelu"),
    (lambda: L.Conv2D(3, 3, init="xavier"), "init.*xavier"),
    (lambda: L.Activation("swish"), "activation"),
    (lambda: L.Dropout(1), "rate"),
    (lambda: L.Dropout(-0.1), "rate"),
    (lambda: L.from_config("Conv3D", {}), "unknown layer type 'Conv3D'"),
    (lambda: L.from_config("Dense", {"units": 3, "bias": True}), "Dense"),
    (lambda: optim.SGD(-0.1), "lr"),
    (lambda: optim.SGD(0.0), "lr"),
    (lambda: optim.Adam(float("nan")), "lr"),
    (lambda: optim.SGD(0.1, momentum=1.0), "momentum"),
    (lambda: optim.SGD(0.1, nesterov=True), "nesterov"),
    (lambda: optim.Adam(beta1=1.0), "beta1"),
    (lambda: optim.Adam(eps=0), "eps"),
    (lambda: optim.RMSprop(alpha=-0.5), "alpha"),
    (lambda: optim.SGD(0.1, weight_decay=-1), "weight_decay"),
    (lambda: optim.get("nadam"), "unknown optimizer"),
    (lambda: fastcnn.losses.get("hinge"), "unknown loss"),
    (lambda: Sequential([]), "at least one layer"),
    (lambda: Sequential([L.Dense(3)], backend="cuda"), "backend"),
    (lambda: Sequential([L.Dense(3)], dtype="float16"), "dtype"),
    (lambda: Sequential([L.Dense(3)], dtype="float64"), "float32"),
    (lambda: Sequential([L.Dense(3)], input_shape=(0,)), "input_shape"),
    (lambda: Sequential([L.Dense(3)], input_shape=(2, 3)), "input_shape"),
    (lambda: Sequential([L.Conv2D(2, 5)], input_shape=(1, 4, 6)), r"larger than.*\(4, 6\)"),
    (lambda: Sequential([L.Conv2D(2, (3, 7), padding=1)], input_shape=(1, 6, 4)),
     r"larger than.*\(8, 6\)"),
    (lambda: Sequential([L.MaxPool2D(3)], input_shape=(1, 2, 9)), "larger than"),
    (lambda: Sequential([L.Conv2D(2, 3)], input_shape=(12,)), "Conv2D needs"),
])
def test_bad_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_native_refuses_float64_also_when_switched():
    model = Sequential([L.Dense(3)], input_shape=(4,), backend="reference", dtype="float64")
    with pytest.raises(ValueError, match="float32"):
        model.backend = "native"
    assert model.backend == "reference"
    with pytest.raises(TypeError, match=r"layers\[1\]"):
        Sequential([L.Dense(3), "relu"])


def test_dropout_without_rng_in_training_is_refused():
    model = Sequential([L.Dropout(0.5), L.Dense(2)], input_shape=(3,))
    with pytest.raises(ValueError, match="rng"):
        model.loss_and_grads(np.zeros((2, 3), np.float32), np.array([0, 1]))
