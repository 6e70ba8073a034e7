"""fastcnn.presets -- the models of the book's chapter-6 table and of the Keras
course notes, with the hyper-parameters they were published with, and one
function that trains any of them and reports the book's figure of merit.

Book rows (network3 semantics, fastcnn.network3; mini-batch 10, SGD, no
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
"""
from __future__ import annotations

import hashlib
import os
import time

import numpy as np

from . import datasets, network3, optim
from . import layers as L
from .callbacks import Callback, History
from .network import FIT_EVAL_BATCH, Sequential
from .saving import load_checkpoint, save_checkpoint

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
PRESETS = {**BOOK, **KERAS}
BOOK_BATCH = 10
KERAS_VALIDATION = 6000


MNIST_SHAPE, MNIST_CLASSES = (1, 28, 28), 10


def _book_layers(name, mbs, shape=MNIST_SHAPE, classes=MNIST_CLASSES):
    """The network3 layers of a book row, for images of `shape` (C, H, W) (MNIST's
    in the book) and `classes` outputs: each 5x5 conv + 2x2 pool maps H to (H - 4) // 2."""
    from .network3 import ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer
    act = network3.sigmoid if name in ("fc100", "conv", "conv2") else network3.ReLU
    c, h, w = shape
    if name == "fc100":
        return [FullyConnectedLayer(c * h * w, 100, act), SoftmaxLayer(100, classes)]
    h1, w1 = (h - 4) // 2, (w - 4) // 2
    h2, w2 = (h1 - 4) // 2, (w1 - 4) // 2
    smallest = min(h1, w1) if name == "conv" else min(h2, w2)
    if smallest < 1:
        raise ValueError(f"preset {name!r} needs images of at least "
                         f"{6 if name == 'conv' else 14} pixels a side, got {h}x{w}")
    stack = [ConvPoolLayer((20, c, 5, 5), (mbs, c, h, w), (2, 2), act)]
    if name == "conv":
        return stack + [FullyConnectedLayer(20 * h1 * w1, 100, act),
                        SoftmaxLayer(100, classes)]
    stack.append(ConvPoolLayer((40, 20, 5, 5), (mbs, 20, h1, w1), (2, 2), act))
    if name == "dropout":
        return stack + [FullyConnectedLayer(40 * h2 * w2, 1000, act, p_dropout=0.5),
                        FullyConnectedLayer(1000, 1000, act, p_dropout=0.5),
                        SoftmaxLayer(1000, classes, p_dropout=0.5)]
    return stack + [FullyConnectedLayer(40 * h2 * w2, 100, act), SoftmaxLayer(100, classes)]


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


def build(name, seed=0, backend="native", batch_size=None, shape=MNIST_SHAPE,
          classes=MNIST_CLASSES):
    """A network3.Network for a book row, else a Sequential, for images of `shape`
    (C, H, W) and `classes` classes (MNIST's by default)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    if name in BOOK:
        return network3.Network(_book_layers(name, batch_size or BOOK_BATCH, shape, classes),
                                batch_size or BOOK_BATCH, seed=seed, backend=backend)
    return Sequential(keras_layers(name, classes), input_shape=shape, backend=backend,
                      seed=seed)


def train(name, epochs=None, batch_size=None, lr=None, lmbda=None, seed=0,
          backend="native", data_path=None, verbose=1, save=None, checkpoint=None,
          on_epoch=None, comm=None):
    """Train a preset on MNIST, or on the IDX data set in directory data_path (the
    input shape and the number of classes from its data); returns a dict of
    results (accuracies in %).

    checkpoint: a .npz path. After every epoch the whole state of the run is
    written there, atomically: parameters, optimizer state, history, epochs done,
    time so far and the model's Generator state (the only source of random draws:
    dropout masks, shuffling). If the file exists when train starts, the run
    continues from it and ends exactly as an uninterrupted run would (same
    parameters, history and accuracies, on any number of threads: no native op's
    result depends on the thread count). A file
    written with other settings (preset, epochs, batch size, lr, lmbda, seed,
    backend, data) or a damaged one is refused with a ValueError naming it. The
    file is left in place: the caller deletes it once it has stored the results.

    on_epoch: f(epoch, logs), called after each finished epoch (after its
    checkpoint is written), e.g. to report progress.

    "seconds" is the wall time from the start of train (data loading included) to
    the end of training; for a resumed run, the sum of its segments', each up to
    its last finished epoch ("segments" counts them).

    comm: an MPI communicator (fastcnn.mpi) for one data-parallel run; every rank
    loads the data and trains its share of each mini-batch; only rank 0 prints
    and saves. Not combined with checkpoint.
    """
    spec = PRESETS.get(name)
    if spec is None:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    epochs = spec["epochs"] if epochs is None else epochs
    lr = spec["lr"] if lr is None else lr
    if name in BOOK:
        batch_size = batch_size or BOOK_BATCH
        lmbda = spec["lmbda"] if lmbda is None else lmbda
    else:
        batch_size = batch_size or spec["batch_size"]
        if lmbda:
            raise ValueError("lmbda applies to the book's presets; the Keras models use none")
        lmbda = None
    rank = 0 if comm is None else comm.Get_rank()
    if comm is not None and checkpoint:
        raise ValueError("checkpoint is not supported with an MPI comm (data-parallel run)")
    if rank:
        verbose = 0
    settings = {"preset": name, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                "lmbda": lmbda, "seed": seed, "backend": backend}
    start = time.perf_counter()
    resume = _Resume.read(checkpoint, settings, backend) if checkpoint else None
    # The images' shape and the number of classes come from the data (a directory
    # of IDX files may hold another data set than MNIST; the book's pickle is MNIST).
    if name in BOOK:
        tr, va, te = network3.load_data_shared(
            data_path, expanded=spec["expanded"],
            dtype="uint8" if spec["expanded"] else "float32")
        shape = (MNIST_SHAPE if data_path is not None and os.path.isfile(data_path)
                 else datasets.image_shape(data_path))
        net = build(name, seed, backend, batch_size, shape, datasets.num_classes(
            tr[1], va[1], te[1]))
        model = net.model
    else:
        tr, va, te = datasets.load_mnist(data_path, validation=KERAS_VALIDATION)
        model = build(name, seed, backend, shape=tr[0].shape[1:],
                      classes=datasets.num_classes(tr[1], va[1], te[1]))
    saver = None
    if checkpoint:
        settings["data"] = _fingerprint(tr, va, te)
        done, history, before = 0, None, {"seconds": 0.0, "segments": 0}
        if resume is not None:
            done, history = resume.restore(model, settings, "SGD" if name in BOOK else "Adam")
            before = resume.state
            print(f"resuming {name} seed {seed} from epoch {done}/{epochs} "
                  f"({checkpoint})", flush=True)
        saver = _Checkpoint(checkpoint, settings, start, before["seconds"],
                            before["segments"] + 1)
    callbacks = [c for c in (saver, _OnEpoch(on_epoch) if on_epoch else None) if c]
    if resume is not None and resume.state["stopped"]:
        hist = history  # the run had stopped (diverged) at its last epoch
    elif name in BOOK:
        hist = net.SGD(tr, epochs, batch_size, lr, va, te, lmbda=lmbda,
                       verbose=2 if verbose else False, initial_epoch=done if saver else 0,
                       history=history if saver else None, callbacks=callbacks, comm=comm)
    else:
        hist = model.fit(tr[0], tr[1], epochs=epochs, batch_size=batch_size,
                         optimizer=None if resume is not None else optim.Adam(lr=lr),
                         validation_data=va, test_data=te, verbose=1 if verbose else 0,
                         initial_epoch=done if saver else 0,
                         history=history if saver else None, callbacks=callbacks, comm=comm)
    seconds = time.perf_counter() - start + (saver.before if saver else 0.0)
    final = (model.evaluate(*te, batch_size=FIT_EVAL_BATCH)["accuracy"] if hist.epochs
             else float("nan"))
    if save and rank == 0:
        model.save(save)
    return {
        "preset": name, "row": spec["row"], "book": spec["book"], "epochs": epochs,
        "epochs_run": hist.epochs, "batch_size": batch_size, "lr": lr,
        "lmbda": lmbda, "seed": seed, "backend": backend,
        "best_epoch": hist.best_epoch,
        "best_val_accuracy": _pct(hist.best_val_accuracy),
        "test_accuracy": _pct(hist.test_accuracy), "final_test_accuracy": _pct(final),
        "seconds": round(seconds, 1), "segments": saver.segment if saver else 1,
        "stop_reason": hist.stop_reason, "history": hist.to_dict(),
    }


# ------------------------------------------------------ checkpoint, resume --

CHECKPOINT_KIND = "fastcnn-train-checkpoint"


def _fingerprint(*sets):
    """SHA-256 of the training, validation and test sets (shapes, dtypes, bytes):
    a resumed run must see the data the interrupted one saw. Hashes the arrays
    in place (no copy of a 196 MB expanded set)."""
    h = hashlib.sha256()
    for x, y in sets:
        for a in (x, y):
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()


class _Checkpoint(Callback):
    """Writes the run's state to `path` after every epoch (the last callback, so it
    sees what the others did). The Generator saved is model.rng, the one fit draws
    from when it is given no seed (train never gives one)."""

    def __init__(self, path, settings, start, before, segment):
        self.path, self.settings, self.start = path, settings, start
        self.before, self.segment = before, segment   # seconds of earlier segments

    def on_epoch_end(self, model, epoch, logs):
        state = {
            "kind": CHECKPOINT_KIND, "settings": self.settings, "epoch": epoch,
            "seconds": self.before + time.perf_counter() - self.start,
            "segments": self.segment, "threads": _threads(),
            "stopped": bool(model.stop_training),
            "rng": model.rng.bit_generator.state, "history": model.history.to_dict(),
        }
        if model.stop_training:   # fit ends after this epoch: so does a resumed run
            state["history"]["stop_reason"] = model.stop_reason
        save_checkpoint(model, self.path, state)


class _OnEpoch(Callback):
    """Calls f(epoch, logs) after each epoch."""

    def __init__(self, f):
        self.f = f

    def on_epoch_end(self, model, epoch, logs):
        self.f(epoch, logs)


class _Resume:
    """A checkpoint read back, checked against the settings of this run."""

    def __init__(self, path, model, state):
        self.path, self.model, self.state = path, model, state

    @classmethod
    def read(cls, path, settings, backend):
        if not os.path.exists(path):
            return None
        try:
            model, state = load_checkpoint(path, backend)
            if state.get("kind") != CHECKPOINT_KIND:
                raise ValueError(f"cannot load {path!r}: not a checkpoint of presets.train")
            resume = cls(path, model, state)
            resume._check(settings, "data")   # the data is checked once it is loaded
            return resume
        except ValueError as e:
            raise _named(path, e) from None

    def _check(self, settings, *skip):
        theirs = self.state.get("settings")
        if not isinstance(theirs, dict):
            raise ValueError(f"cannot load {self.path!r}: its settings are missing")
        diff = [k for k in settings if k not in skip and theirs.get(k) != settings[k]]
        if diff:
            what = ", ".join(f"{k} {theirs.get(k)!r} there, {settings[k]!r} here" if k != "data"
                             else "other data (the MNIST files or slice differ)"
                             for k in diff)
            raise ValueError(f"{self.path} is the checkpoint of a run with other settings "
                             f"({what}): refusing to continue it")

    def restore(self, model, settings, optimizer):
        """Load the checkpoint into `model` (built as for a new run); returns
        (epochs done, History so far)."""
        try:
            self._check(settings)
            old = self.model
            if _architecture(old) != _architecture(model):
                raise ValueError(f"{self.path} holds another network than the preset builds "
                                 "now: refusing to continue it")
            if type(old.optimizer).__name__ != optimizer:
                raise ValueError(f"{self.path} holds a {type(old.optimizer).__name__} "
                                 f"optimizer, the preset trains with {optimizer}")
            st = self.state
            done = st["epoch"]
            if isinstance(done, bool) or not isinstance(done, int) \
                    or not 1 <= done <= settings["epochs"]:
                raise ValueError(f"cannot load {self.path!r}: bad epoch count {done!r}")
            history = History.from_dict(st["history"])
            if history.epochs != done or not isinstance(st["stopped"], bool) \
                    or not isinstance(st["seconds"], (int, float)) \
                    or not isinstance(st["segments"], int):
                raise ValueError(f"cannot load {self.path!r}: its state is inconsistent")
            model.rng.bit_generator.state = st["rng"]
        except (KeyError, TypeError) as e:
            raise _named(self.path, f"its state is incomplete or malformed ({e!r})") from None
        except ValueError as e:
            raise _named(self.path, e) from None
        for mine, theirs in zip(model.layers, old.layers):
            for name, p in mine.params.items():
                p[...] = theirs.params[name]
        model.optimizer = old.optimizer
        return done, history


def _threads():
    from . import get_num_threads
    return get_num_threads()


def _named(path, e):
    """The message of e, naming the checkpoint file, and what to do about it."""
    text = str(e) if path in str(e) else f"cannot load {path!r}: {e}"
    # A damaged file stays a FileFormatError (a ValueError) so callers can tell it apart.
    kind = type(e) if isinstance(e, ValueError) else ValueError
    return kind(f"{text}; delete it (reproduce --fresh does) to start the run over")


def _architecture(model):
    return (model.input_shape, model.dtype.name,
            [(type(layer).__name__, layer.config()) for layer in model.layers])


def _pct(v):
    return None if v is None or not np.isfinite(v) else round(100.0 * v, 2)


__all__ = ["BOOK", "KERAS", "PRESETS", "build", "train", "keras_layers"]
