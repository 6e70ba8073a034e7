"""fastcnn.plot -- pictures of a model and its training, as PNG files.

    from fastcnn import plot
    plot.learning_curves(history, "curves.png")          # loss; train/validation/test accuracy
    plot.confusion_matrix_plot(model, x_test, y_test, "confusion.png")
    plot.misclassified(model, x_test, y_test, "wrong.png")
    plot.filters(model, "filters.png")                   # the first layer's weights
    plot.feature_maps(model, x_test[0], "maps.png")       # one image through every conv/pool
    plot.plot_model(model, "pictures/", data=(x_test, y_test), history=history)

    python -m fastcnn plot MODEL.npz --out DIR            # all of them

Each function draws on its own matplotlib Figure (the Agg canvas, no pyplot and no
window), writes it as a PNG of figsize * dpi pixels, atomically, and returns the
Figure (its axes hold what was drawn). confusion_matrix() is the count itself.
Needs the optional extra: pip install "fastcnn[plot]" (matplotlib).
"""
from __future__ import annotations

import io
import json
import math
import os

import numpy as np

from ..io.files import atomic_write
from ..nn.callbacks import History
from ..nn.model import Sequential

DPI = 100


def _need_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError('pictures need matplotlib: pip install "fastcnn[plot]"') from None


def _figure(width, height, layout=None):
    """A Figure on an Agg canvas: width x height inches at DPI."""
    _need_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    """Write fig as a PNG at path, atomically (its pixel size: figsize * DPI)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    data = buf.getvalue()
    atomic_write(os.fspath(path), lambda f: f.write(data))
    return fig


def _sequential(model):
    inner = model if isinstance(model, Sequential) else getattr(model, "model", None)
    if not isinstance(inner, Sequential):   # a network3.Network wraps a Sequential
        raise TypeError(f"model must be a fastcnn Sequential (or network3 Network), got "
                        f"{type(model).__name__}")
    if inner.input_shape is None:
        raise ValueError("the model is not built yet: give input_shape or call fit first")
    return inner


# ---------------------------------------------------------- learning curves --

def learning_curves(history, path, title=None):
    """Loss (left) and accuracy in % (right) per epoch: training, validation, and the
    test accuracy where fit measured it (the epochs of best validation accuracy).
    history: a History, its to_dict(), or its .history dict of lists."""
    h = _history_lists(history)
    epochs = np.arange(1, len(h["loss"]) + 1)
    if epochs.size == 0:
        raise ValueError("history holds no epochs: nothing to plot")
    fig = _figure(10, 4, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key, label in (("loss", "training"), ("val_loss", "validation")):
        xs, ys = _present(epochs, h.get(key))
        if xs.size:
            ax_loss.plot(xs, ys, marker=".", label=label)
    for key, label, style in (("accuracy", "training", "-"), ("val_accuracy", "validation", "-"),
                              ("test_accuracy", "test", "")):
        xs, ys = _present(epochs, h.get(key))
        if xs.size:
            ax_acc.plot(xs, 100 * ys, linestyle=style, marker="." if style else "o",
                        label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    from matplotlib.ticker import MaxNLocator
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _history_lists(history):
    if isinstance(history, History):
        return history.history
    if isinstance(history, dict) and isinstance(history.get("history"), dict):
        return history["history"]   # History.to_dict()
    if isinstance(history, dict) and isinstance(history.get("loss"), list):
        return history
    raise TypeError(f"history must be a fastcnn History or its to_dict(), got "
                    f"{type(history).__name__}")


def _present(epochs, values):
    """(epochs, values) where a value was recorded (not None)."""
    if not values:
        return np.array([]), np.array([])
    keep = [i for i, v in enumerate(values) if v is not None]
    return epochs[keep], np.array([values[i] for i in keep], dtype=float)


# ----------------------------------------------------------- confusion matrix --

def confusion_matrix(y_true, y_pred, n_classes=None):
    """counts (K, K), int64: counts[t, p] = number of examples of class t predicted p."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be label vectors of one length, got shapes "
                         f"{y_true.shape} and {y_pred.shape}")
    if y_true.size and min(y_true.min(), y_pred.min()) < 0:
        raise ValueError("labels must be >= 0")
    k = n_classes or int(max(y_true.max(initial=-1), y_pred.max(initial=-1)) + 1)
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (y_true.astype(np.intp), y_pred.astype(np.intp)), 1)
    return counts


def _predict(model, x, batch_size=1000):
    """The model's classes for x, reshaped to its input (flat rows or images)."""
    x = np.asarray(x)
    if x.ndim >= 1 and x[0].size == int(np.prod(model.input_shape)):
        x = x.reshape((len(x),) + tuple(model.input_shape))
    return model.predict(x, batch_size=batch_size)   # else predict names the shapes


def confusion_matrix_plot(model, x, y, path, batch_size=1000):
    """The confusion matrix of model on (x, y): a count in every cell, rows the true
    class, columns the predicted one; the diagonal (correct) in its own colour scale."""
    model = _sequential(model)
    y = np.asarray(y)
    pred = _predict(model, x, batch_size)
    counts = confusion_matrix(y, pred, n_classes=int(model.output_shape[0]))
    k = counts.shape[0]
    size = max(5.0, 0.5 * k + 2)
    fig = _figure(size, size, layout="constrained")
    ax = fig.subplots()
    off = np.where(np.eye(k, dtype=bool), 0, counts)   # colour by the mistakes
    ax.imshow(off, cmap="Reds", vmin=0, vmax=max(1, off.max()))
    for t in range(k):
        for p in range(k):
            ax.text(p, t, str(counts[t, p]), ha="center", va="center",
                    fontsize=8 if counts[t, p] < 10000 else 6,
                    color="tab:green" if t == p else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set(xlabel="predicted class", ylabel="true class",
           title=f"confusion matrix: {np.trace(counts)} of {counts.sum()} correct "
                 f"({100 * np.trace(counts) / max(1, counts.sum()):.2f}%)")
    return _save(fig, path)


# ----------------------------------------------------------------- images --

def _image(a):
    """A (C, H, W) or flat array as something imshow draws: (H, W) or (H, W, 3)."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        side = math.isqrt(a.size)
        if side * side != a.size:
            raise ValueError(f"cannot draw {a.size} values as a square image")
        return a.reshape(side, side)
    if a.ndim == 3 and a.shape[0] == 1:
        return a[0]
    if a.ndim == 3 and a.shape[0] == 3:
        return np.clip(a.transpose(1, 2, 0), 0, 1)
    if a.ndim == 3:
        return a.mean(axis=0)
    return a


def _grid(n, cols=None):
    cols = cols or math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _blank_axes(ax):
    ax.set_xticks([])
    ax.set_yticks([])


def misclassified(model, x, y, path, n=36, batch_size=1000):
    """A grid of the first n misclassified examples of (x, y), each titled with its
    true and predicted class (and its index in x)."""
    model = _sequential(model)
    y = np.asarray(y)
    pred = _predict(model, x, batch_size)
    wrong = np.flatnonzero(pred != y)[:n]
    rows, cols = _grid(max(1, len(wrong)))
    height = 1.6 * rows + 0.8
    fig = _figure(max(4.0, 1.4 * cols), height)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.9 / height,
                        hspace=0.5, wspace=0.1)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        _blank_axes(ax)
        ax.axis("off")
    for ax, i in zip(axes, wrong):
        ax.axis("on")
        ax.imshow(_image(np.asarray(x[i])), cmap="gray_r")
        ax.set_title(f"true {y[i]}, pred {pred[i]}\n#{i}", fontsize=8, color="tab:red")
    total = int(np.count_nonzero(pred != y))
    fig.suptitle(f"misclassified: {total} of {len(y)} (first {len(wrong)} shown)")
    return _save(fig, path)


def filters(model, path, max_filters=64):
    """The filters of the first layer with weights to show (Layer.filter_tiles), one
    tile each, in one symmetric colour scale (red positive, blue negative): a Conv2D
    on one input channel shows each (KH, KW) kernel; on several, a row per filter
    with a tile per channel; a Dense layer on a square input (e.g. 784 = 28 x 28
    pixels) shows each unit's weights as an image."""
    model = _sequential(model)
    for i, layer in enumerate(model.layers):
        shown = layer.filter_tiles(max_filters)
        if shown is not None:
            break
    else:
        raise ValueError("the model has no layer with weights to draw as filters")
    tiles, total, grid = shown
    if grid:   # a square grid of single images
        flat = [_image(t) for t in tiles]
        rows, cols = _grid(len(flat))
        tiles = [flat[r * cols:(r + 1) * cols] for r in range(rows)]
    else:
        tiles = [[np.asarray(t, dtype=np.float64) for t in row] for row in tiles]
    rows, cols = len(tiles), max(len(t) for t in tiles)
    lim = float(np.max(np.abs(layer.params["w"]))) or 1.0
    fig = _figure(max(4.0, 0.8 * cols + 1.2), 0.8 * rows + 0.9)
    fig.subplots_adjust(left=0.03, right=0.85, bottom=0.03,
                        top=1 - 0.6 / (0.8 * rows + 0.9), hspace=0.15, wspace=0.15)
    axes = fig.subplots(rows, cols, squeeze=False)
    drawn = None
    for r in range(rows):
        for cidx in range(cols):
            ax = axes[r, cidx]
            _blank_axes(ax)
            if cidx < len(tiles[r]):
                drawn = ax.imshow(tiles[r][cidx], cmap="RdBu_r", vmin=-lim, vmax=lim)
            else:
                ax.axis("off")
    fig.colorbar(drawn, cax=fig.add_axes([0.88, 0.1, 0.03, 0.75]))
    shown_n = min(total, max_filters)
    fig.suptitle(f"layer {i}: {layer!r}, weights"
                 + (f" (first {shown_n} of {total})" if shown_n < total else ""))
    return _save(fig, path)


def layer_outputs(model, image):
    """[(layer index, layer, output (C, H, W))] of one image, for every layer whose
    output is a stack of feature maps (conv, pool, and the activations or dropout
    between them), computed layer by layer in inference mode."""
    model = _sequential(model)
    x = np.asarray(image)
    if x.size != int(np.prod(model.input_shape)):
        raise ValueError(f"image must hold one input of shape {model.input_shape} for this "
                         f"model, got shape {x.shape}")
    x = model.batch(model.check_x(x.reshape((1,) + tuple(model.input_shape)), "image"))
    out = []
    for i, layer in enumerate(model.layers):
        x, _ = layer.forward(model.ops, x)
        if x.ndim == 4:
            out.append((i, layer, np.array(x[0])))
    return out


def feature_maps(model, image, path, max_maps=16):
    """One image through the network: the input, then a row per conv, pool (and
    activation) layer showing its first max_maps feature maps, each in its own
    grey scale."""
    model = _sequential(model)
    stages = layer_outputs(model, image)
    if not stages:
        raise ValueError("the model has no conv or pool layer: no feature maps to draw")
    cols = min(max_maps, max(s[2].shape[0] for s in stages))
    rows = len(stages) + 1
    width, height = 1.0 * cols + 1.4, 1.05 * rows + 0.5
    fig = _figure(width, height)
    fig.subplots_adjust(left=1.3 / width, right=0.99, bottom=0.01, top=1 - 0.5 / height,
                        hspace=0.25, wspace=0.08)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        _blank_axes(ax)
        ax.axis("off")
    axes[0, 0].axis("on")
    axes[0, 0].imshow(_image(np.asarray(image).reshape(model.input_shape)), cmap="gray_r")
    axes[0, 0].set_ylabel("input", rotation=0, ha="right", va="center", fontsize=9)
    for r, (i, layer, maps) in enumerate(stages, start=1):
        for m in range(min(cols, maps.shape[0])):
            ax = axes[r, m]
            ax.axis("on")
            ax.imshow(maps[m], cmap="gray_r")
        axes[r, 0].set_ylabel(f"{i}: {layer.label}\n{maps.shape[0]}x"
                              f"{maps.shape[1]}x{maps.shape[2]}", rotation=0, ha="right",
                              va="center", fontsize=8)
    fig.suptitle("feature maps of one image (first "
                 f"{cols} per layer; dark = large)")
    return _save(fig, path)


# ----------------------------------------------------------------- all of them --

def plot_model(model, out_dir, data=None, history=None, image_index=0):
    """Write every picture that applies to out_dir; returns {name: path}.
    data: (x, y) test examples for the confusion matrix, the misclassified grid and
    the feature maps (image data[0][image_index]); history: for the learning curves."""
    model = _sequential(model)
    _need_matplotlib()      # before anything is written
    os.makedirs(out_dir, exist_ok=True)
    paths = {}

    def out(name):
        paths[name] = os.path.join(out_dir, f"{name}.png")
        return paths[name]
    if history is not None:
        learning_curves(history, out("learning_curves"))
    if data is not None:
        x, y = data
        confusion_matrix_plot(model, x, y, out("confusion_matrix"))
        misclassified(model, x, y, out("misclassified"))
    try:
        filters(model, out("filters"))
    except ValueError:
        paths.pop("filters")
    if data is not None and any(len(layer.output_shape) == 3 for layer in model.layers):
        feature_maps(model, data[0][image_index], out("feature_maps"))
    return paths


def read_history(path):
    """The History stored in a JSON file: a History.to_dict(), or a results file of
    `fastcnn reproduce` (which holds one under "history"). None if it holds none."""
    with open(path) as f:
        d = json.load(f)
    if isinstance(d, dict) and isinstance(d.get("history"), dict):
        inner = d["history"]
        return inner if isinstance(inner.get("history"), dict) else d
    return None


__all__ = ["learning_curves", "confusion_matrix", "confusion_matrix_plot", "misclassified",
           "filters", "feature_maps", "layer_outputs", "plot_model", "read_history"]
