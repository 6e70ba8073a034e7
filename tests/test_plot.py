"""Pictures (fastcnn.plot): what each PNG shows is checked against numbers computed
here another way (a direct count, the model's own predictions, the NumPy reference
conv), and each file is read back: a PNG of the stated size that is not blank.
Skipped without the [plot] extra."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import fastcnn
from fastcnn import Sequential, layers as L, plot, reference

matplotlib = pytest.importorskip("matplotlib", reason="the [plot] extra is not installed")
from matplotlib.image import imread  # noqa: E402


@pytest.fixture(scope="module")
def data():
    (x, y), _, (xt, yt) = fastcnn.datasets.load_mnist(validation=50000)
    return (x[:2000], y[:2000]), (xt[:500], yt[:500])


@pytest.fixture(scope="module")
def trained(data):
    """A small conv net after one epoch on 2000 images, and its History."""
    (x, y), test = data
    model = Sequential([L.Conv2D(6, 5, activation="relu"), L.MaxPool2D(2),
                        L.Conv2D(8, 3, padding=1), L.AvgPool2D(2), L.ReLU(),
                        L.Dense(10, activation="softmax")], input_shape=(1, 28, 28), seed=2)
    history = model.fit(x, y, epochs=3, batch_size=50, optimizer="adam",
                        validation_data=(x[:300], y[:300]), test_data=test, verbose=0)
    return model, history


def check_png(path, fig):
    """The file is a PNG of fig's size in pixels, and not blank."""
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    img = imread(path)
    w, h = fig.get_size_inches() * fig.dpi
    assert img.shape[:2] == (round(h), round(w))
    rgb = img[..., :3].reshape(-1, 3)
    not_white = np.mean(np.any(rgb < 0.95, axis=1))
    assert not_white > 0.02, f"{path}: only {not_white:.1%} of the pixels are not white"
    assert len(np.unique((rgb * 255).astype(np.uint8), axis=0)) > 20   # more than a frame


def test_confusion_matrix_counts_against_a_direct_count(trained, data, tmp_path):
    model, _ = trained
    xt, yt = data[1]
    pred = model.predict(xt)
    direct = np.zeros((10, 10), int)
    for t, p in zip(yt, pred):
        direct[t, p] += 1
    np.testing.assert_array_equal(plot.confusion_matrix(yt, pred, 10), direct)
    path = tmp_path / "cm.png"
    fig = plot.confusion_matrix_plot(model, xt, yt, path)
    check_png(path, fig)
    (ax,) = fig.axes
    shown = np.array([int(t.get_text()) for t in ax.texts]).reshape(10, 10)
    np.testing.assert_array_equal(shown, direct)
    assert f"{np.trace(direct)} of {len(yt)} correct" in ax.get_title()
    with pytest.raises(ValueError, match="shapes"):
        plot.confusion_matrix(yt, pred[:-1])


def test_learning_curves_show_the_history(trained, tmp_path):
    _, history = trained
    path = tmp_path / "curves.png"
    fig = plot.learning_curves(history, path, title="a title")
    check_png(path, fig)
    ax_loss, ax_acc = fig.axes
    h = history.history
    lines = {ln.get_label(): ln for ln in ax_loss.lines}
    np.testing.assert_allclose(lines["training"].get_ydata(), h["loss"])
    np.testing.assert_allclose(lines["validation"].get_ydata(), h["val_loss"])
    lines = {ln.get_label(): ln for ln in ax_acc.lines}
    np.testing.assert_allclose(lines["training"].get_ydata(), 100 * np.array(h["accuracy"]))
    np.testing.assert_allclose(lines["validation"].get_ydata(),
                               100 * np.array(h["val_accuracy"]))
    measured = [e + 1 for e, v in enumerate(h["test_accuracy"]) if v is not None]
    np.testing.assert_array_equal(lines["test"].get_xdata(), measured)
    # the JSON form reproduce stores draws the same lines
    fig2 = plot.learning_curves(history.to_dict(), tmp_path / "c2.png")
    np.testing.assert_allclose(fig2.axes[1].lines[0].get_ydata(),
                               100 * np.array(h["accuracy"]))
    with pytest.raises(ValueError, match="no epochs"):
        plot.learning_curves(fastcnn.callbacks.History(), tmp_path / "empty.png")
    with pytest.raises(TypeError, match="History"):
        plot.learning_curves([1, 2], tmp_path / "bad.png")


def test_misclassified_are_the_wrong_ones(trained, data, tmp_path):
    model, _ = trained
    xt, yt = data[1]
    pred = model.predict(xt)
    wrong = np.flatnonzero(pred != yt)
    assert len(wrong) > 0
    path = tmp_path / "wrong.png"
    fig = plot.misclassified(model, xt, yt, path, n=12)
    check_png(path, fig)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [f"true {yt[i]}, pred {pred[i]}\n#{i}" for i in wrong[:12]]
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    np.testing.assert_allclose(shown[0], xt[wrong[0], 0])


def test_filters_are_the_first_layers_weights(trained, tmp_path):
    model, _ = trained
    path = tmp_path / "filters.png"
    fig = plot.filters(model, path)
    check_png(path, fig)
    tiles = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    w = model.layers[0].params["w"]
    assert len(tiles) == w.shape[0]
    for f, tile in enumerate(tiles):
        np.testing.assert_allclose(tile, w[f, 0])
    # a Dense first layer on 784 pixels: each unit's weights as a 28x28 image
    fc = Sequential([L.Dense(12, activation="sigmoid"), L.Dense(10, activation="softmax")],
                    input_shape=(784,))
    fig = plot.filters(fc, tmp_path / "fc.png")
    tiles = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    np.testing.assert_allclose(tiles[5], fc.layers[0].params["w"][:, 5].reshape(28, 28))
    with pytest.raises(ValueError, match="not a square image"):
        plot.filters(Sequential([L.Dense(3)], input_shape=(10,)), tmp_path / "no.png")


def test_feature_maps_through_every_conv_and_pool_layer(trained, data, tmp_path):
    model, _ = trained
    image = data[1][0][7]
    stages = plot.layer_outputs(model, image)
    assert [i for i, _, _ in stages] == [0, 1, 2, 3, 4]   # everything before the Dense
    # the first conv's maps, from the NumPy reference in float64
    conv = model.layers[0]
    want = reference.relu(reference.conv2d(image[None].astype(np.float64),
                                           conv.params["w"].astype(np.float64),
                                           conv.params["b"].astype(np.float64), 1, 0))[0]
    np.testing.assert_allclose(stages[0][2], want, rtol=1e-4, atol=1e-5)
    path = tmp_path / "maps.png"
    fig = plot.feature_maps(model, image, path)
    check_png(path, fig)
    rows = {}
    for ax in fig.axes:
        if ax.images:
            r = ax.get_subplotspec().rowspan.start
            rows.setdefault(r, []).append(ax.images[0].get_array())
    assert sorted(rows) == [0, 1, 2, 3, 4, 5]            # the input and five layers
    assert [len(rows[r]) for r in range(1, 6)] == [6, 6, 8, 8, 8]
    np.testing.assert_allclose(rows[3][2], stages[2][2][2])
    with pytest.raises(ValueError, match=r"image must hold one input of shape \(1, 28, 28\)"):
        plot.feature_maps(model, image[:, :10], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="shape"):
        plot.misclassified(model, data[1][0][:, :, :10], data[1][1], tmp_path / "bad.png")


def test_plot_model_and_the_cli(trained, data, tmp_path, capsys):
    model, history = trained
    paths = plot.plot_model(model, tmp_path / "all", data=data[1], history=history)
    assert set(paths) == {"learning_curves", "confusion_matrix", "misclassified", "filters",
                          "feature_maps"}
    for p in paths.values():
        assert imread(p).shape[0] > 100
    from fastcnn.cli import main
    import json
    model.save(tmp_path / "m.npz")
    (tmp_path / "m.json").write_text(json.dumps({"preset": "x", "history": history.to_dict()}))
    assert main(["plot", str(tmp_path / "m.npz"), "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    for name in paths:
        assert (tmp_path / "cli" / f"{name}.png").exists() and name in out
    assert main(["plot", str(tmp_path / "m.npz"), "--out", str(tmp_path / "c2"),
                 "--image", "10000"]) == 2


def test_train_save_then_plot_draws_the_learning_curves(tmp_path, capsys, monkeypatch):
    """fastcnn train --save MODEL.npz keeps the History in MODEL.json; plot finds it."""
    from fastcnn import datasets
    from fastcnn.cli import main
    full = datasets.load_mnist

    def small(path=None, validation=10000, dtype="float32"):
        (x, y), (xv, yv), (xt, yt) = full(path, validation=validation, dtype=dtype)
        return (x[:600], y[:600]), (xv[:200], yv[:200]), (xt[:200], yt[:200])
    monkeypatch.setattr(datasets.idx, "load_mnist", small)
    model = tmp_path / "m.npz"
    assert main(["train", "fc100", "--epochs", "2", "--save", str(model), "--quiet"]) == 0
    assert main(["plot", str(model), "--out", str(tmp_path / "pics")]) == 0
    assert "learning_curves" in capsys.readouterr().out
    import json
    history = json.loads((tmp_path / "m.json").read_text())["history"]
    fig = plot.learning_curves(history, tmp_path / "again.png")
    assert len(fig.axes[0].lines[0].get_ydata()) == 2
    assert imread(tmp_path / "pics" / "learning_curves.png").shape == \
        imread(tmp_path / "again.png").shape


def test_missing_matplotlib_says_what_to_install(trained, tmp_path, monkeypatch):
    model, history = trained
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, mod, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "fastcnn\[plot\]"'):
        plot.learning_curves(history, tmp_path / "x.png")
    # plot_model refuses before it creates anything
    with pytest.raises(ImportError, match=r'pip install "fastcnn\[plot\]"'):
        plot.plot_model(model, tmp_path / "pictures", history=history)
    assert not (tmp_path / "pictures").exists()
