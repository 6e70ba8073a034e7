"""fastcnn.presets -- the models of the book's chapter-6 table and of the Keras
course notes, with the hyper-parameters they were published with; train() (in
runs/training_run.py) trains any of them and reports the book's figure of merit.

Book rows (network3 semantics, fastcnn.nn.book; mini-batch 10, SGD, no
shuffling; the book's accuracies are the test accuracy at the epoch of best
validation accuracy):
  fc100                row 1  FC 100 sigmoid                           eta 0.1           60 ep  97.80
  conv                 row 2  conv 20 5x5 + pool, FC 100, sigmoid      eta 0.1           60 ep  98.78
  conv2                row 3  + conv 40 5x5 + pool                     eta 0.1           60 ep  99.06
  conv2-relu           row 4  as conv2, ReLU                           eta 0.03 lmbda 0.1 60 ep 99.23
  conv2-relu-expanded  row 5  as conv2-relu, on the 250k expanded set  eta 0.03 lmbda 0.1 60 ep 99.37
  dropout              row 8  conv2-relu + FC 1000 + FC 1000, dropout 0.5, no L2,
                              expanded, 40 ep                          eta 0.03          99.60
Keras models (Adam 1e-3, mini-batch 128, 15 epochs, shuffled, last 6000 training
images held out for validation as Keras' validation_split=0.1 does):
  keras-cnn   conv 32 3x3 relu, pool, conv 64 3x3 relu, pool, dropout 0.5, dense 10  (99.0)
  keras-fcn   conv 32 3x3, pool, conv 64 3x3, pool, conv 128 3x3, conv 10 1x1,
              global average pool, softmax                                         (99.1)
CIFAR-shaped nets (3x32x32 inputs, 3x3 'same' convs; SGD with Nesterov momentum 0.9,
weight decay 5e-4, mini-batch 128, each image shifted by up to 2 pixels; no published
figure to compare with): train with --data cifar10:DIR (or cifar100:DIR)
  cifar-vgg   conv 32, conv 32, pool, conv 64, conv 64, pool, dense 10           30 ep
  cifar-gap   conv 64, pool, conv 128, pool, conv 256, global average pool, dense 10
"""
from __future__ import annotations

from ..nn import book
from ..nn import layers as L
from ..nn.model import Sequential

BOOK = {
    "fc100": dict(row=1, book=97.80, epochs=60, lr=0.1, lmbda=0.0, expanded=False),
    "conv": dict(row=2, book=98.78, epochs=60, lr=0.1, lmbda=0.0, expanded=False),
    "conv2": dict(row=3, book=99.06, epochs=60, lr=0.1, lmbda=0.0, expanded=False),
    "conv2-relu": dict(row=4, book=99.23, epochs=60, lr=0.03, lmbda=0.1, expanded=False),
    "conv2-relu-expanded": dict(row=5, book=99.37, epochs=60, lr=0.03, lmbda=0.1,
                                expanded=True),
    # The book trains the dropout net without L2 (net.SGD(..., 0.03, validation_data, test_data)).
    "dropout": dict(row=8, book=99.60, epochs=40, lr=0.03, lmbda=0.0, expanded=True),
}
KERAS = {
    "keras-cnn": dict(row=None, book=99.0, epochs=15, lr=1e-3, batch_size=128),
    "keras-fcn": dict(row=None, book=99.1, epochs=15, lr=1e-3, batch_size=128),
}
CIFAR = {
    "cifar-vgg": dict(row=None, book=None, epochs=30, lr=0.05, batch_size=128),
    "cifar-gap": dict(row=None, book=None, epochs=30, lr=0.05, batch_size=128),
}
PRESETS = {**BOOK, **KERAS, **CIFAR}
BOOK_BATCH = 10
KERAS_VALIDATION = 6000


MNIST_SHAPE, MNIST_CLASSES = (1, 28, 28), 10


def _book_groups(name, shape, classes):
    """[(fastcnn layers of one network3 layer, its network3 initialisation)] of a
    book row, for images of `shape` (C, H, W) (MNIST's in the book) and `classes`
    outputs: each 5x5 conv + 2x2 pool maps H to (H - 4) // 2."""
    act = "sigmoid" if name in ("fc100", "conv", "conv2") else "relu"
    c, h, w = shape

    def fc(n_in, n_out, p=0.0):
        return (book.fully_connected(n_out, act, p),
                lambda g, rng: book.init_fully_connected(g[-1], n_in, n_out, rng))

    def softmax(n_in, p=0.0):
        return book.fully_connected(classes, "softmax", p), lambda g, rng: book.init_softmax(g[-1])

    def conv_pool(filter_shape):
        return (book.conv_pool(filter_shape, (2, 2), act),
                lambda g, rng: book.init_conv_pool(g[0], filter_shape, (2, 2), rng))

    if name == "fc100":
        return [fc(c * h * w, 100), softmax(100)]
    h1, w1 = (h - 4) // 2, (w - 4) // 2
    h2, w2 = (h1 - 4) // 2, (w1 - 4) // 2
    smallest = min(h1, w1) if name == "conv" else min(h2, w2)
    if smallest < 1:
        raise ValueError(f"preset {name!r} needs images of at least "
                         f"{6 if name == 'conv' else 14} pixels a side, got {h}x{w}")
    stack = [conv_pool((20, c, 5, 5))]
    if name == "conv":
        return stack + [fc(20 * h1 * w1, 100), softmax(100)]
    stack.append(conv_pool((40, 20, 5, 5)))
    if name == "dropout":
        return stack + [fc(40 * h2 * w2, 1000, 0.5), fc(1000, 1000, 0.5), softmax(1000, 0.5)]
    return stack + [fc(40 * h2 * w2, 100), softmax(100)]


def keras_layers(name, classes=MNIST_CLASSES):
    if name == "keras-cnn":
        return [L.Conv2D(32, 3, activation="relu"), L.MaxPool2D(2),
                L.Conv2D(64, 3, activation="relu"), L.MaxPool2D(2),
                L.Flatten(), L.Dropout(0.5), L.Dense(classes, activation="softmax")]
    # Keras' model (b) puts softmax on every position of the 1x1 conv and averages
    # the probabilities; here the 1x1 conv gives logits, they are averaged, and the
    # softmax comes last (the usual form, which the log-likelihood can fuse).
    return [L.Conv2D(32, 3, activation="relu"), L.MaxPool2D(2),
            L.Conv2D(64, 3, activation="relu"), L.MaxPool2D(2),
            L.Conv2D(128, 3, activation="relu"), L.Conv2D(classes, 1),
            L.GlobalAvgPool2D(), L.Softmax()]


def cifar_layers(name, classes=10):
    """The CIFAR-shaped nets: 3x3 'same' ReLU convolutions, 2x2 max-pools."""
    def conv(k):
        return L.Conv2D(k, 3, padding="same", activation="relu", init="he")
    if name == "cifar-vgg":
        return [conv(32), conv(32), L.MaxPool2D(2), conv(64), conv(64), L.MaxPool2D(2),
                L.Dense(classes, activation="softmax")]
    return [conv(64), L.MaxPool2D(2), conv(128), L.MaxPool2D(2), conv(256),
            L.GlobalAvgPool2D(), L.Dense(classes, activation="softmax")]


def build(name, seed=0, backend="native", shape=MNIST_SHAPE, classes=MNIST_CLASSES):
    """The Sequential model of a preset, for images of `shape` (C, H, W) and
    `classes` classes (MNIST's by default). A book row starts from network3's
    initial weights (fastcnn.nn.book); fc100 takes flat rows."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    if name in KERAS or name in CIFAR:
        layers = keras_layers(name, classes) if name in KERAS else cifar_layers(name, classes)
        return Sequential(layers, input_shape=shape, backend=backend, seed=seed)
    groups = _book_groups(name, shape, classes)
    input_shape = (shape[0] * shape[1] * shape[2],) if name == "fc100" else shape
    model = Sequential([layer for g, _ in groups for layer in g], input_shape=input_shape,
                       backend=backend, seed=seed)
    for g, init in groups:
        init(g, model.rng)
    return model


__all__ = ["BOOK", "KERAS", "CIFAR", "PRESETS", "cifar_layers", "BOOK_BATCH", "KERAS_VALIDATION", "build",
           "keras_layers"]
