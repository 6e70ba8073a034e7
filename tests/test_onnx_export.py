"""ONNX export: every preset's architecture and every layer type, run by onnxruntime
(an independent implementation of each op) on MNIST test images, must give
fastcnn's class on every image and its probabilities within 1e-5. Skipped without
the [onnx] extra."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import fastcnn
from fastcnn import Sequential, layers as L, onnx_export, presets

onnx = pytest.importorskip("onnx", reason='the [onnx] extra is not installed')
ort = pytest.importorskip("onnxruntime", reason='the [onnx] extra is not installed')

N_IMAGES = 300
DIFFS = {}   # preset -> max |probability difference|, printed by test_report_differences
PROBA_ATOL = 1e-5


@pytest.fixture(scope="module")
def images():
    _, _, (xt, yt) = fastcnn.datasets.load_mnist()
    return xt[:N_IMAGES], yt[:N_IMAGES]


def _randomize(model, seed):
    """Random parameters whose outputs differ from image to image: each filter and
    each unit's weights sum to zero, so the constant part of the inputs (sigmoid
    outputs near 0.5) cancels and the variation shows (network3's SoftmaxLayer
    starts at zero, and its sigmoid nets need epochs to leave their plateau)."""
    rng = np.random.default_rng(seed)
    # sigmoid squashes what a layer passes on, ReLU does not: a ReLU net's logits
    # grow with the scale, and float32 rounding with them
    gain = 3.0 if any(layer.activation == "sigmoid" for layer in model.layers) else 2.0
    for layer in model.layers:
        for p in layer.params.values():
            if p.ndim == 1:
                p[...] = rng.normal(0.0, 0.1, p.shape)
                continue
            axes = (0,) if p.ndim == 2 else (1, 2, 3)   # Dense (I, O), Conv (K, C, KH, KW)
            w = rng.normal(0.0, 1.0, p.shape)
            w -= w.mean(axis=axes, keepdims=True)
            p[...] = w * gain / np.sqrt(np.prod([p.shape[a] for a in axes]))


def _run_onnx(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, out.name) == ("input", "output")
    return sess.run(None, {"input": np.ascontiguousarray(x, np.float32)})[0]


def _compare(model, x, tmp_path, name="m", exporter=None):
    """Export (exporter.export_onnx, default the model's), check, run; returns
    (max |probability difference|, the ONNX graph)."""
    path = tmp_path / f"{name}.onnx"
    assert (exporter or model).export_onnx(path) == str(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    x = x.reshape((len(x),) + model.input_shape)
    want = model.predict_proba(x)
    got = _run_onnx(path, x / np.float32(255) if x.dtype == np.uint8 else x)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.reshape(len(x), -1).argmax(1),
                                  want.reshape(len(x), -1).argmax(1))
    diff = float(np.max(np.abs(got - want)))
    assert diff <= PROBA_ATOL, f"{name}: max |p_onnx - p_fastcnn| = {diff:.2e}"
    return diff, proto


def _ops(proto):
    return [n.op_type for n in proto.graph.node]


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_every_preset_architecture_random_weights(name, images, tmp_path):
    net = presets.build(name, seed=3)
    model = getattr(net, "model", net)            # network3.Network wraps a Sequential
    _randomize(model, seed=len(name))
    x = images[0]
    # random nets that average each feature map (GlobalAvgPool2D) pick few classes
    # on digits: 5 here for cifar-gap, 9-10 for the others
    least = 3 if any(type(la).__name__ == "GlobalAvgPool2D" for la in model.layers) else 6
    assert np.unique(model.predict(x.reshape((-1,) + model.input_shape))).size >= least, \
        "outputs too uniform to test the argmax"
    diff, proto = _compare(model, x, tmp_path, name, exporter=net)
    DIFFS[name] = diff
    ops = _ops(proto)
    if name == "dropout":    # network3's inference scaling by (1 - p): three Mul nodes
        assert ops.count("Mul") == 3
        keep = [i for i in proto.graph.initializer if "dropout" in i.name]
        assert [float(onnx.numpy_helper.to_array(k)) for k in keep] == [0.5] * 3
    if name == "keras-cnn":  # Keras' inverted dropout is the identity at inference
        assert "Mul" not in ops and "Dropout" not in ops
    if name == "keras-fcn":  # softmax after the global average
        assert ops[-3:] == ["GlobalAveragePool", "Flatten", "Softmax"]


@pytest.mark.parametrize("name", ["conv2-relu", "dropout", "keras-cnn", "keras-fcn"])
def test_briefly_trained_presets(name, images, tmp_path):
    """Presets that learn within 100 Adam steps, trained on 2000 images."""
    (x, y), _, _ = fastcnn.datasets.load_mnist(validation=50000)
    net = presets.build(name, seed=0)
    model = getattr(net, "model", net)
    model.fit(x[:2000], y[:2000], epochs=1, batch_size=20, optimizer="adam", verbose=0)
    xt, yt = images
    assert model.evaluate(xt, yt)["accuracy"] > 0.3   # it learned something
    _compare(model, xt, tmp_path, name, exporter=net)


def test_report_differences(capsys):
    """Print the differences measured above (pytest -s shows them)."""
    with capsys.disabled():
        print("\nONNX vs fastcnn, max |probability difference| over "
              f"{N_IMAGES} test images: " + ", ".join(f"{k} {v:.1e}" for k, v in DIFFS.items()))


def test_every_layer_type(images, tmp_path):
    """Layers and options no preset uses: AvgPool2D, L2Pool2D (ONNX LpPool p=2 is the
    same sqrt of the sum of squares), overlapping pool windows, padding, stride, no
    bias, tanh, a separate Activation, Flatten, inverted and network3 Dropout."""
    model = Sequential([
        L.Conv2D(6, 3, padding=1, activation="tanh"), L.L2Pool2D(2),
        L.Conv2D(8, (3, 5), stride=(2, 1), padding=(0, 2), use_bias=False), L.ReLU(),
        L.AvgPool2D(3, stride=2), L.Dropout(0.3, inverted=False), L.Flatten(),
        L.Dense(32, activation="sigmoid"), L.Dropout(0.2),
        L.Dense(10, use_bias=False), L.Softmax()], input_shape=(1, 28, 28), seed=1)
    _randomize(model, 7)
    _, proto = _compare(model, images[0], tmp_path)
    assert {"LpPool", "AveragePool", "Tanh", "Sigmoid", "Relu", "Mul"} <= set(_ops(proto))


def test_leaky_relu(images, tmp_path):
    """activation="leaky_relu" in a conv and a dense layer and LeakyReLU() on its own:
    ONNX LeakyRelu with fastcnn's slope, saved and loaded with the model."""
    model = Sequential([L.Conv2D(5, 3, activation="leaky_relu"), L.MaxPool2D(2),
                        L.Dense(20), L.LeakyReLU(), L.Dense(10, activation="softmax")],
                       input_shape=(1, 28, 28), seed=2)
    _randomize(model, 3)
    _, proto = _compare(model, images[0][:100], tmp_path)
    leaky = [n for n in proto.graph.node if n.op_type == "LeakyRelu"]
    assert len(leaky) == 2
    assert all(abs(a.f - L.base.LEAKY_SLOPE) < 1e-9 for n in leaky for a in n.attribute)
    model.save(tmp_path / "leaky.npz")
    again = fastcnn.load(tmp_path / "leaky.npz")
    assert repr(again.layers[3]) == "LeakyReLU()"
    np.testing.assert_array_equal(again.predict_proba(images[0][:20]),
                                  model.predict_proba(images[0][:20]))


def test_softmax_over_feature_maps(images, tmp_path):
    """fastcnn's softmax on a conv output runs over all of (C, H, W) at once."""
    model = Sequential([L.Conv2D(4, 5, stride=3), L.MaxPool2D(3, stride=1),
                        L.Conv2D(3, 3, activation="softmax")], input_shape=(1, 28, 28))
    _randomize(model, 2)
    _compare(model, images[0][:50], tmp_path)
    out = model.predict_proba(images[0][:5])
    np.testing.assert_allclose(out.reshape(5, -1).sum(1), 1.0, rtol=1e-5)


def test_float64_model_and_flat_rows(images, tmp_path):
    model = Sequential([L.Dense(30, activation="relu"), L.Dense(10, activation="softmax")],
                       input_shape=(784,), backend="reference", dtype="float64")
    _randomize(model, 4)
    x = images[0].reshape(len(images[0]), -1).astype(np.float64) / 255
    _compare(model, x, tmp_path)


def test_saved_model_and_cli(images, tmp_path):
    from fastcnn.cli import main
    model = presets.build("keras-fcn", seed=5)
    _randomize(model, 5)
    model.save(tmp_path / "m.npz")
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")]) == 0
    x = images[0][:40] / np.float32(255)
    np.testing.assert_allclose(_run_onnx(tmp_path / "m.onnx", x), model.predict_proba(x),
                               atol=PROBA_ATOL)
    assert main(["export", str(tmp_path / "missing.npz"), str(tmp_path / "x.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists()
    # --opset reaches the graph; an opset below 13 is refused and nothing is written
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m15.onnx"),
                 "--opset", "15"]) == 0
    assert onnx.load(str(tmp_path / "m15.onnx")).opset_import[0].version == 15
    np.testing.assert_allclose(_run_onnx(tmp_path / "m15.onnx", x), model.predict_proba(x),
                               atol=PROBA_ATOL)
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "x.onnx"),
                 "--opset", "9"]) == 2
    assert not (tmp_path / "x.onnx").exists()


def test_bad_input(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="not built"):
        Sequential([L.Dense(3)]).export_onnx(tmp_path / "a.onnx")
    with pytest.raises(TypeError, match="Sequential"):
        onnx_export.export_onnx(object(), tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="opset"):
        Sequential([L.Dense(3)], input_shape=(4,)).export_onnx(tmp_path / "a.onnx", opset=9)

    class Custom(L.Layer):
        pass
    with pytest.raises(TypeError, match="no ONNX translation"):
        Sequential([Custom()], input_shape=(4,)).export_onnx(tmp_path / "a.onnx")
    assert list(tmp_path.iterdir()) == []      # nothing half-written
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "fastcnn\[onnx\]"'):
        Sequential([L.Dense(3)], input_shape=(4,)).export_onnx(tmp_path / "a.onnx")
