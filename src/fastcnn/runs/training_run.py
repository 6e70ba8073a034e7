"""Training one preset run: train(name, ...) loads the data, builds the preset,
trains it with its published hyper-parameters and reports the book's figure of
merit; with a checkpoint path it writes the whole state of the run after every
epoch and resumes an interrupted run from there, bit for bit.
"""
from __future__ import annotations

import hashlib
import os
import time

import numpy as np

from ..data.book import load_data_shared
from ..data import idx, sources
from ..nn import book
from ..nn.callbacks import Callback, History
from ..nn.model import load_checkpoint
from ..data.augment import random_shift
from ..nn.optim import SGD, Adam
from ..nn.saving import save_checkpoint
from ..nn.training import FIT_EVAL_BATCH
from .presets import (BOOK, BOOK_BATCH, CIFAR, KERAS, KERAS_VALIDATION, MNIST_SHAPE, PRESETS,
                      build)


def train(name, epochs=None, batch_size=None, lr=None, lmbda=None, seed=0,
          backend="native", data_path=None, verbose=1, save=None, checkpoint=None,
          on_epoch=None, comm=None):
    """Train a preset on MNIST, or on the data set data_path names
    (fastcnn.data.sources: a directory of IDX files, "cifar10:DIR", ...; the input
    shape and the number of classes come from its data); returns a dict of
    results (accuracies in %). The CIFAR presets need data_path.

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
    if name in CIFAR and sources.parse(data_path)[0] not in ("cifar10", "cifar100",
                                                              "cifar100-coarse"):
        raise ValueError(f"preset {name!r} trains on CIFAR: give --data cifar10:DIR or "
                         "cifar100:DIR (the binary version, a directory or its .tar.gz)")
    epochs = spec["epochs"] if epochs is None else epochs
    lr = spec["lr"] if lr is None else lr
    if name in BOOK:
        batch_size = batch_size or BOOK_BATCH
        lmbda = spec["lmbda"] if lmbda is None else lmbda
    else:
        batch_size = batch_size or spec["batch_size"]
        if lmbda:
            raise ValueError("lmbda applies to the book's presets; the others use none")
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
        tr, va, te = load_data_shared(data_path, expanded=spec["expanded"],
                                      dtype="uint8" if spec["expanded"] else "float32")
        shape = (MNIST_SHAPE if data_path is not None and os.path.isfile(data_path)
                 else sources.image_shape(data_path))
        model = build(name, seed, backend, shape, idx.num_classes(tr[1], va[1], te[1]))
    else:
        tr, va, te = sources.load(data_path, validation=KERAS_VALIDATION
                                  if sources.parse(data_path)[0] == "mnist" else None)
        model = build(name, seed, backend, shape=tr[0].shape[1:],
                      classes=idx.num_classes(tr[1], va[1], te[1]))
    saver = None
    if checkpoint:
        settings["data"] = _fingerprint(tr, va, te)
        done, history, before = 0, None, {"seconds": 0.0, "segments": 0}
        if resume is not None:
            done, history = resume.restore(model, settings,
                                           "Adam" if name in KERAS else "SGD")
            before = resume.state
            print(f"resuming {name} seed {seed} from epoch {done}/{epochs} "
                  f"({checkpoint})", flush=True)
        saver = _Checkpoint(checkpoint, settings, start, before["seconds"],
                            before["segments"] + 1)
    callbacks = [c for c in (saver, _OnEpoch(on_epoch) if on_epoch else None) if c]
    if resume is not None and resume.state["stopped"]:
        hist = history  # the run had stopped (diverged) at its last epoch
    elif name in BOOK:
        hist = book.sgd(model, tr, epochs, batch_size, lr, va, te, lmbda=lmbda,
                        verbose=2 if verbose else False, initial_epoch=done if saver else 0,
                        history=history if saver else None, callbacks=callbacks, comm=comm)
    else:
        cifar = name in CIFAR
        opt = (SGD(lr, momentum=0.9, nesterov=True, weight_decay=5e-4) if cifar
               else Adam(lr=lr))
        hist = model.fit(tr[0], tr[1], epochs=epochs, batch_size=batch_size,
                         optimizer=None if resume is not None else opt,
                         validation_data=va, test_data=te, verbose=1 if verbose else 0,
                         augment=_shift2 if cifar else None,
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


def _shift2(x, rng):
    """The CIFAR presets' augmentation: each image shifted by up to 2 pixels."""
    return random_shift(x, rng, max_shift=2)


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
            "segments": self.segment,
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


__all__ = ["train", "CHECKPOINT_KIND"]
