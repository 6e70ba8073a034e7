"""The SHA-256 of what a short, fixed training run leaves: python tools/fit_digest.py

Two nets (the book's row-4 conv net, and Keras' CNN with dropout and Adam) are
trained for one epoch on the first 640 bundled MNIST training images, from seed 0,
on 1 thread; the digest covers every parameter, every optimizer state array and
the probabilities the trained nets give for 100 validation images. Two builds of
fastcnn that compute the same bits print the same digest: the release check
compares the installed wheel's with the source build's (tools/release.py).
Standard library and the installed fastcnn only.
"""
from __future__ import annotations

import hashlib
import sys


def digest() -> str:
    import fastcnn
    from fastcnn import layers as L
    from fastcnn import optim

    fastcnn.set_num_threads(1)
    (x, y), (xv, _), _ = fastcnn.datasets.load_mnist()
    x, y, xv = x[:640], y[:640], xv[:100]
    nets = {
        "row4": ([L.Conv2D(20, 5, activation="relu"), L.MaxPool2D(2),
                  L.Conv2D(40, 5, activation="relu"), L.MaxPool2D(2),
                  L.Dense(100, activation="relu"), L.Dense(10, activation="softmax")],
                 lambda: optim.SGD(0.03, momentum=0.9, weight_decay=1e-4), 10),
        "keras-cnn": ([L.Conv2D(32, 3, activation="relu"), L.MaxPool2D(2),
                       L.Conv2D(64, 3, activation="relu"), L.MaxPool2D(2), L.Flatten(),
                       L.Dropout(0.5), L.Dense(10, activation="softmax")],
                      lambda: optim.Adam(1e-3), 64),
    }
    h = hashlib.sha256()
    for name, (layers, opt, batch) in nets.items():
        model = fastcnn.Sequential(layers, input_shape=(1, 28, 28), seed=0)
        model.fit(x, y, epochs=1, batch_size=batch, optimizer=opt(), verbose=0)
        h.update(name.encode())
        for p, _ in model.parameters():
            h.update(p.tobytes())
        for state in model.optimizer.state:
            for key in sorted(state):
                h.update(state[key].tobytes())
        h.update(model.predict_proba(xv).tobytes())
    return h.hexdigest()


if __name__ == "__main__":
    print(digest())
    sys.exit(0)
