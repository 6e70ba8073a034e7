"""The training loop behind Sequential.fit: epochs of mini-batches, the progress
bar and epoch lines, evaluation after each epoch, stopping, resuming.

One training step, in one process:
    forward (model.forward) -> loss -> optimizer.fused_step ? model.backward_update
                                                            : model.backward + optimizer.step
and over MPI (comm given) data_parallel.step: each rank's share of the batch,
one Allreduce of the gradients, the same optimizer.step on every rank.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from ..backend.threads import busy_wait
from ..common.checks import count, integer
from . import data_parallel, losses, optim
from .batches import forward_loss, n_correct
from .callbacks import History

# Mini-batch of the evaluations fit runs after each epoch. The activations of a
# whole batch are held at once: for the book's row-8 net 1000 images add ~99 MB
# to the peak memory, 200 only ~16 MB. Accuracies do not depend on it; the
# native GEMM may sum a layer's products in another order for another batch
# size (the 10-way output layer: last-bit differences), so the loss can differ
# in its last digits from evaluate(batch_size=1000).
FIT_EVAL_BATCH = 200


def fit(model, x, y, epochs, batch_size, optimizer, loss, validation_data, test_data,
        shuffle, callbacks, seed, verbose, augment, drop_last, initial_epoch, history, comm):
    """Sequential.fit (see its docstring)."""
    with busy_wait():   # threads wait hot between the ops of a step
        if comm is not None and comm.Get_size() > 1:
            return data_parallel.abort_on_error(
                comm, _fit, model, x, y, epochs, batch_size, optimizer, loss, validation_data,
                test_data, shuffle, callbacks, seed, verbose, augment, drop_last,
                initial_epoch, history, comm)
        return _fit(model, x, y, epochs, batch_size, optimizer, loss, validation_data,
                    test_data, shuffle, callbacks, seed, verbose, augment, drop_last,
                    initial_epoch, history, None)


def _checked_history(history, initial_epoch):
    if history is None:
        return History()
    if not isinstance(history, History):
        raise TypeError(f"history must be a fastcnn History, got {type(history).__name__}")
    if history.epochs != initial_epoch:
        raise ValueError(f"history holds {history.epochs} epochs, but initial_epoch is "
                         f"{initial_epoch}: give the History of the epochs already done")
    return history


def _fit(model, x, y, epochs, batch_size, optimizer, loss, validation_data, test_data,
         shuffle, callbacks, seed, verbose, augment, drop_last, initial_epoch, history, comm):
    x = model.check_x(x)
    y = model.check_y(y, x.shape[0])
    epochs = count(epochs, "epochs")
    batch_size = count(batch_size, "batch_size")
    try:
        initial_epoch = integer(initial_epoch, "initial_epoch", 0, epochs)
    except (TypeError, ValueError) as e:
        raise type(e)(f"initial_epoch must be an integer in [0, epochs] = [0, {epochs}], "
                      f"got {initial_epoch!r}") from None
    history = _checked_history(history, initial_epoch)
    if drop_last and batch_size > x.shape[0]:
        raise ValueError(f"batch_size {batch_size} exceeds the {x.shape[0]} training "
                         "examples and drop_last is set: no batch would run")
    val = model.check_pair(validation_data, "validation_data")
    test = model.check_pair(test_data, "test_data")
    model.loss = loss = losses.get(loss)
    head = model.head(loss)
    if optimizer is not None or model.optimizer is None:
        model.optimizer = optim.get(optimizer if optimizer is not None else optim.SGD(0.1))
    rng = model.rng if seed is None else np.random.default_rng(seed)
    callbacks = list(callbacks or ())
    params = model.parameters()

    n = x.shape[0]
    n_batches = n // batch_size if drop_last else -(-n // batch_size)
    parallel = None
    if comm is not None:
        parallel = data_parallel.Step(model, comm, n, batch_size, epochs, params, seed,
                                      initial_epoch)
        if comm.Get_rank():
            verbose = 0
    model.comm = comm
    model.history = history
    model.stop_training, model.stop_reason = False, None
    for cb in callbacks:
        cb.on_train_begin(model)
    iteration = initial_epoch * n_batches
    for epoch in range(initial_epoch + 1, epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(n) if shuffle else None
        bar = _progress(n_batches, f"epoch {epoch}/{epochs}", verbose)
        loss_sum, correct, seen = 0.0, 0, 0
        for b in range(n_batches):
            for cb in callbacks:
                cb.on_batch_begin(model, iteration)
            iteration += 1
            sl = slice(b * batch_size, min((b + 1) * batch_size, n))
            if parallel is not None:
                value, n_ok, m = parallel(x, y, sl, order, augment, head, loss)
            else:
                value, n_ok, m = _step(model, x, y, sl if order is None else order[sl],
                                       augment, rng, head, loss, params)
            if value is None:
                model.stop_training = True
                model.stop_reason = (f"the loss became {n_ok} in epoch {epoch}, batch "
                                     f"{b + 1}: training stopped (try a smaller learning "
                                     "rate or check the inputs)")
                break
            loss_sum += value * m
            correct += n_ok
            seen += m
            if bar is not None:
                bar.update(1)
                if b % 50 == 0 or b == n_batches - 1:
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}",
                                    acc=f"{correct / seen:.2%}", refresh=False)
        if bar is not None:
            bar.close()
        if not model.stop_training and not all(np.isfinite(p).all() for p, _ in params):
            # an update overflowed after the last loss was seen (e.g. the last batch)
            model.stop_training = True
            model.stop_reason = (f"the parameters became non-finite (Inf or NaN) in epoch "
                                 f"{epoch}: training stopped (try a smaller learning rate "
                                 "or check the inputs)")
        diverged = model.stop_reason if model.stop_training else None
        if seen == 0:  # stopped in the first batch
            break
        logs = _end_epoch(model, history, epoch, loss_sum / seen, correct / seen, val, test,
                          time.perf_counter() - start)
        if verbose:
            print(_epoch_line(epoch, epochs, logs, history), flush=True)
        for cb in callbacks:
            cb.on_epoch_end(model, epoch, logs)
        if diverged:  # a callback (say EarlyStopping) must not hide why training stopped
            model.stop_training, model.stop_reason = True, diverged
        if model.stop_training:
            break
    model.comm = None
    history.stop_reason = model.stop_reason
    if model.stop_reason and verbose:
        print(model.stop_reason, file=sys.stderr, flush=True)
    for cb in callbacks:
        cb.on_train_end(model, history)
    return history


def _step(model, x, y, idx, augment, rng, head, loss, params):
    """One training step in this process: (loss, correct, batch size), or
    (None, the loss, 0) when the loss is not finite (no update then)."""
    out, yb, caches, value, dout = forward_loss(model, x, y, idx, augment, rng, head, loss)
    if not math.isfinite(value):
        return None, value, 0
    update = model.optimizer.fused_step(params)
    if update is not None:
        model.backward_update(dout, caches, update)
    else:
        grads = model.backward(dout, caches)
        model.optimizer.step(model.ops, params,
                             [g[k] for layer, g in zip(model.layers, grads)
                              for k in layer.params])
    return value, n_correct(out, yb), out.shape[0]


def _end_epoch(model, history, epoch, loss, acc, val, test, seconds):
    h = history.history
    logs = {"loss": loss, "accuracy": acc, "lr": model.optimizer.lr, "seconds": seconds}
    if model.comm is not None:
        def evaluate(x, y, batch_size):
            return data_parallel.evaluate(model, model.comm, x, y, batch_size, model.loss)
    else:
        evaluate = model.evaluate
    if val is not None:
        r = evaluate(*val, batch_size=FIT_EVAL_BATCH)
        logs["val_loss"], logs["val_accuracy"] = r["loss"], r["accuracy"]
    best = val is None or (history.best_val_accuracy is None
                           or logs["val_accuracy"] >= history.best_val_accuracy)
    if val is not None and best:
        history.best_epoch, history.best_val_accuracy = epoch, logs["val_accuracy"]
    if test is not None and best:
        logs["test_accuracy"] = history.test_accuracy = \
            evaluate(*test, batch_size=FIT_EVAL_BATCH)["accuracy"]
        if val is None:
            history.best_epoch = epoch
    logs["best"] = best
    for k in h:
        h[k].append(logs.get(k))
    return logs


def _progress(total, desc, verbose):
    """A tqdm bar on a terminal at verbose=1, else None."""
    if verbose != 1 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="batch", leave=False, mininterval=0.5)


def _epoch_line(epoch, epochs, logs, history) -> str:
    parts = [f"epoch {epoch}/{epochs}", f"loss {logs['loss']:.4f}",
             f"accuracy {logs['accuracy']:.2%}"]
    if "val_accuracy" in logs:
        parts.append(f"validation {logs['val_accuracy']:.2%}")
    if logs.get("test_accuracy") is not None:
        parts.append(f"test {logs['test_accuracy']:.2%}")
    if logs["best"] and "val_accuracy" in logs:
        parts.append("(best so far)")
    parts.append(f"{logs['seconds']:.1f} s")
    return "  ".join(parts)


__all__ = ["fit", "FIT_EVAL_BATCH"]
