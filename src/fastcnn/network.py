"""fastcnn.network -- Sequential: a stack of layers, trained by mini-batch descent.

The model owns its layers, an optimizer and a backend (`backend="native"` runs on
fastcnn.ops, `"reference"` on fastcnn.reference: the same model, switched by one
word). Inputs are images (N, C, H, W) -- or flat (N, C*H*W), reshaped -- as
float32/float64, or uint8 scaled by 1/255 one mini-batch at a time (so a large
training set can stay in memory as bytes). Labels are integers (N,).

Every random draw (initial weights, shuffling, dropout masks) comes from a numpy
Generator seeded by `seed`.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from . import layers as L
from .layers import positive_int
from . import losses, optim
from .callbacks import History

BACKENDS = ("native", "reference")

# Mini-batch of the evaluations fit runs after each epoch. The activations of a
# whole batch are held at once: for the book's row-8 net 1000 images add ~99 MB
# to the peak memory, 200 only ~16 MB. Accuracies do not depend on it; the
# native GEMM may sum a layer's products in another order for another batch
# size (the 10-way output layer: last-bit differences), so the loss can differ
# in its last digits from evaluate(batch_size=1000).
FIT_EVAL_BATCH = 200


def _backend_module(name):
    if name not in BACKENDS:
        raise ValueError(f"backend must be 'native' or 'reference', got {name!r}")
    if name == "native":
        from . import ops
        return ops
    from . import reference
    return reference


class Sequential:
    """Layers applied in order. `input_shape` (C, H, W) or (features,) builds the
    parameters now; without it they are built on the first data seen."""

    def __init__(self, layers, input_shape=None, backend="native", dtype="float32", seed=0):
        layers = list(layers)
        if not layers:
            raise ValueError("a Sequential model needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, L.Layer):
                raise TypeError(f"layers[{i}] must be a fastcnn layer, got {type(layer).__name__}")
        self.layers = layers
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.backend = backend
        self.optimizer = None
        self.loss = losses.get("log_likelihood")
        self.input_shape = None
        self.stop_training, self.stop_reason = False, None
        self.history = None   # the History of the current (or last) fit
        self._fuse, self._fused = True, {}
        self._comm = None   # the MPI communicator while a data-parallel fit runs
        if input_shape is not None:
            self.build(input_shape)

    # ------------------------------------------------------------ set-up --

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, name):
        ops = _backend_module(name)
        if name == "native" and self.dtype != np.float32:
            raise ValueError("the native backend computes in float32; use dtype='float32' "
                             "or backend='reference'")
        self._backend, self.ops = name, ops

    def build(self, input_shape):
        shape = tuple(positive_int(s, "input_shape") for s in np.atleast_1d(input_shape))
        if len(shape) not in (1, 3):
            raise ValueError(f"input_shape must be (C, H, W) or (features,), got {input_shape!r}")
        self.input_shape = s = shape
        for layer in self.layers:
            s = layer.build(s, self.rng, self.dtype)
        self.output_shape = s
        # A ReLU conv followed by a max-pool: the pool applies the ReLU's backward
        # mask to its own (4x smaller) output gradient, and the conv skips it.
        # Exactly the same numbers: a window's gradient goes to its maximum, which
        # is > 0 exactly when the pooled value is.
        for a, b in zip(self.layers, self.layers[1:] + [None]):
            if isinstance(a, L.Conv2D):
                a.relu_mask_after = isinstance(b, L.MaxPool2D) and a.activation == "relu"
            if isinstance(b, L.MaxPool2D):
                b.relu_mask_before = isinstance(a, L.Conv2D) and a.activation == "relu"
        self._plan_fusion()
        return self

    @property
    def fuse(self) -> bool:
        """Run each Conv2D + MaxPool2D pair that can be fused (Conv2D.fuses_with) as
        one op, which never stores the conv's own output (default True). The same
        numbers either way; False runs every layer on its own."""
        return self._fuse

    @fuse.setter
    def fuse(self, on):
        if not isinstance(on, (bool, np.bool_)):
            raise TypeError(f"fuse must be a bool, got {on!r}")
        self._fuse = bool(on)
        self._plan_fusion()

    def _plan_fusion(self):
        # index of a conv -> the max-pool after it, run together. A fused pool
        # never starts another pair.
        self._fused = {}
        i = 0
        while self._fuse and i + 1 < len(self.layers):
            a, b = self.layers[i], self.layers[i + 1]
            if isinstance(a, L.Conv2D) and a.fuses_with(b):
                self._fused[i] = b
                i += 2
            else:
                i += 1

    def parameters(self):
        """[(array, decayed)] in layer order: what the optimizer updates."""
        return [(p, name in layer.decayed) for layer in self.layers
                for name, p in layer.params.items()]

    def n_params(self) -> int:
        return sum(layer.n_params() for layer in self.layers)

    # ------------------------------------------------------------- input --

    def _check_x(self, x, name="x"):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
        if x.dtype != np.uint8 and x.dtype.kind != "f":
            raise TypeError(f"{name} must hold floats or uint8 pixels, got dtype {x.dtype}")
        if self.input_shape is None:
            if x.ndim not in (2, 4):
                raise ValueError(f"{name} must be images (N, C, H, W) or rows (N, features), "
                                 f"got shape {x.shape}")
            self.build(x.shape[1:])
        want = self.input_shape
        if x.shape[1:] != want:
            # flat rows for an image model, or images for a model of flat rows
            same_size = x.ndim >= 2 and int(np.prod(x.shape[1:])) == int(np.prod(want))
            if same_size and (x.ndim == 2 or len(want) == 1):
                x = x.reshape((x.shape[0],) + want)
            else:
                raise ValueError(f"{name} must be shaped (N, {', '.join(map(str, want))}) for "
                                 f"this model (input_shape {want}), got shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one example, got shape {x.shape}")
        return x

    def _check_y(self, y, n, name="y", x_name="x"):
        y = np.asarray(y)
        if y.ndim == 1 and y.dtype.kind in "iu":
            classes = self.output_shape[0] if len(self.output_shape) == 1 else None
            if y.size and classes is not None and (y.min() < 0 or y.max() >= classes):
                raise ValueError(f"{name} holds labels in [{y.min()}, {y.max()}], but the model "
                                 f"has {classes} outputs: labels must lie in [0, {classes})")
            y = y.astype(np.int64, copy=False)
        elif y.dtype.kind != "f" or y.shape[1:] != tuple(self.output_shape):
            raise ValueError(f"{name} must be integer labels (N,) or float targets shaped "
                             f"(N, {', '.join(map(str, self.output_shape))}), got shape "
                             f"{y.shape} and dtype {y.dtype}")
        if y.shape[0] != n:
            raise ValueError(f"{x_name} and {name} must hold the same number of examples, got "
                             f"{n} and {y.shape[0]}")
        return y

    def _batch(self, x):
        """A mini-batch in the model's dtype: uint8 pixels become values in [0, 1]."""
        if x.dtype == np.uint8:  # divide, not multiply by 1/255: the same values as load_mnist
            return np.divide(x, self.dtype.type(255), dtype=self.dtype)
        return np.ascontiguousarray(x, dtype=self.dtype)

    # ---------------------------------------------------- forward/backward --

    def _head(self, loss) -> bool:
        """True when the loss applies the last layer's activation itself."""
        act = self.layers[-1].activation or "linear"
        if act not in loss.heads:
            raise ValueError(
                f"loss {loss.name!r} does not fit a network ending in {act!r}: it needs the "
                f"last activation to be one of {', '.join(loss.heads)} "
                f"(last layer {self.layers[-1]!r})")
        return act == loss.head

    def forward(self, x, training=False, rng=None, head=False):
        """The output for a prepared batch, and the caches backward needs."""
        caches = []
        last = len(self.layers) - 1
        i = 0
        while i <= last:
            pool = self._fused.get(i)
            if pool is not None:  # conv + max-pool in one op; the pool keeps no cache
                x, cache = self.layers[i].forward_maxpool(self.ops, x, pool)
                caches += [cache, None]
                i += 2
                continue
            x, cache = self.layers[i].forward(self.ops, x, training, rng, head and i == last)
            caches.append(cache)
            i += 1
        return x, caches

    def backward(self, dout, caches):
        """Gradients [{name: array}] of every layer, given d(loss)/d(output)."""
        grads = [None] * len(self.layers)
        for i, pool in self._backward_order():
            if pool is not None:
                dout, grads[i] = self.layers[i].backward_maxpool(self.ops, dout, caches[i],
                                                                 pool, i > 0)
                grads[i + 1] = {}
            else:
                dout, grads[i] = self.layers[i].backward(self.ops, dout, caches[i], i > 0)
        return grads

    def _backward_order(self):
        """(i, pool) from the last layer to the first: pool is the MaxPool2D fused
        with the conv at i (the pair runs as one step), else None."""
        i = len(self.layers) - 1
        while i >= 0:
            if i - 1 in self._fused:  # layer i is the pool of a fused conv + max-pool
                yield i - 1, self._fused[i - 1]
                i -= 2
            else:
                yield i, None
                i -= 1

    def _backward_sgd(self, dout, caches, params):
        """backward and a plain-SGD step in one sweep: each layer updates its own
        parameters as soon as it has passed dx on (computed with its old weights),
        so a Dense layer's weight gradient is never stored. The same step as
        backward + optimizer.step, up to float rounding."""
        opt = self.optimizer
        opt.ensure_state(params)
        for i, pool in self._backward_order():
            layer = self.layers[i]
            if pool is not None:
                dout, grads = layer.backward_maxpool(self.ops, dout, caches[i], pool, i > 0)
                layer._sgd_step(self.ops, grads, opt.lr, opt.weight_decay)
            else:
                dout = layer.backward_sgd(self.ops, dout, caches[i], i > 0, opt.lr,
                                          opt.weight_decay)
        opt.steps += 1

    def loss_and_grads(self, x, y, loss="log_likelihood", rng=None, training=True):
        """(loss, output, [grads per layer]) for one batch -- one training step
        without the update. Useful to compare backends and to check gradients."""
        loss = losses.get(loss)
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        out, caches = self.forward(self._batch(x), training, rng, self._head(loss))
        value, dout = loss(self.ops, out, y)
        return value, out, self.backward(dout, caches)

    # --------------------------------------------------------- inference --

    def _outputs(self, x, batch_size, head=False):
        x = self._check_x(x)
        batch_size = positive_int(batch_size, "batch_size")
        outs = [self.forward(self._batch(x[i:i + batch_size]), head=head)[0]
                for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(outs)

    def predict_proba(self, x, batch_size=1000):
        """The network's output (class probabilities when it ends in softmax)."""
        return self._outputs(x, batch_size)

    def predict(self, x, batch_size=1000):
        """The most probable class of each example."""
        return np.argmax(self._outputs(x, batch_size), axis=1)

    def evaluate(self, x, y, batch_size=1000, loss=None):
        """{'loss', 'accuracy'} over (x, y), in inference mode (no dropout)."""
        loss = losses.get(loss or self.loss)
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        batch_size = positive_int(batch_size, "batch_size")
        head = self._head(loss)
        total, correct = 0.0, 0
        for i in range(0, x.shape[0], batch_size):
            out = self.forward(self._batch(x[i:i + batch_size]), head=head)[0]
            yb = y[i:i + batch_size]
            total += loss(self.ops, out, yb)[0] * out.shape[0]
            correct += _n_correct(out, yb)
        return {"loss": total / x.shape[0], "accuracy": correct / x.shape[0]}

    # ---------------------------------------------------------- training --

    def fit(self, x, y, epochs=1, batch_size=32, optimizer=None, loss="log_likelihood",
            validation_data=None, test_data=None, shuffle=True, callbacks=(), seed=None,
            verbose=1, augment=None, drop_last=False, initial_epoch=0, history=None,
            comm=None):
        """Train by mini-batch gradient descent; returns a History.

        optimizer: a fastcnn.optim optimizer or a name; None keeps the model's
        current one (or SGD(lr=0.1) the first time). loss: 'log_likelihood',
        'binary_cross_entropy', 'quadratic' or a Loss. validation_data / test_data:
        (x, y) pairs, evaluated after each epoch; the test accuracy is measured
        whenever the validation accuracy is the best so far, as in the book.
        shuffle: a new order every epoch. augment: f(x_batch, rng) -> x_batch,
        applied to each training batch (e.g. fastcnn.datasets.random_shift).
        drop_last: skip a final partial batch. verbose: 0 silent, 1 progress bar
        (on a terminal) and a line per epoch, 2 a line per epoch only.

        To continue a run (as Keras): initial_epoch, the epochs already done,
        makes fit train epochs initial_epoch + 1 .. epochs; history, the History
        of those epochs, is continued (best epoch and test accuracy included)
        instead of a new one. With the model's parameters, optimizer and Generator
        state as they were after epoch initial_epoch, the run continues exactly as
        if it had never stopped. While fit runs, model.history is the History being
        filled (a callback's on_epoch_end sees it complete up to that epoch).

        comm: an MPI communicator (mpi4py, pip install "fastcnn[mpi]") for one
        data-parallel run, every rank calling fit with the same data and
        arguments: each rank computes its share of each global mini-batch, the
        gradients are summed by one Allreduce per step, every rank applies the
        same update (see fastcnn.mpi). Only rank 0 prints. An error on any rank
        ends the whole job (MPI Abort) instead of leaving the others waiting.
        """
        with self.ops.busy_wait():   # threads wait hot between the ops of a step
            if comm is not None and comm.Get_size() > 1:
                from . import mpi
                return mpi.abort_on_error(comm, self._fit, x, y, epochs, batch_size,
                                          optimizer, loss, validation_data, test_data,
                                          shuffle, callbacks, seed, verbose, augment,
                                          drop_last, initial_epoch, history, comm)
            return self._fit(x, y, epochs, batch_size, optimizer, loss, validation_data,
                             test_data, shuffle, callbacks, seed, verbose, augment, drop_last,
                             initial_epoch, history, None)

    def _fit(self, x, y, epochs, batch_size, optimizer, loss, validation_data, test_data,
             shuffle, callbacks, seed, verbose, augment, drop_last, initial_epoch, history,
             comm):
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        epochs = positive_int(epochs, "epochs")
        batch_size = positive_int(batch_size, "batch_size")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) \
                or not 0 <= initial_epoch <= epochs:
            raise ValueError(f"initial_epoch must be an integer in [0, epochs] = [0, {epochs}], "
                             f"got {initial_epoch!r}")
        initial_epoch = int(initial_epoch)
        if history is None:
            history = History()
        elif not isinstance(history, History):
            raise TypeError(f"history must be a fastcnn History, got {type(history).__name__}")
        elif history.epochs != initial_epoch:
            raise ValueError(f"history holds {history.epochs} epochs, but initial_epoch is "
                             f"{initial_epoch}: give the History of the epochs already done")
        if drop_last and batch_size > x.shape[0]:
            raise ValueError(f"batch_size {batch_size} exceeds the {x.shape[0]} training "
                             "examples and drop_last is set: no batch would run")
        val = self._pair(validation_data, "validation_data")
        test = self._pair(test_data, "test_data")
        self.loss = loss = losses.get(loss)
        head = self._head(loss)
        if optimizer is not None or self.optimizer is None:
            self.optimizer = optim.get(optimizer if optimizer is not None else optim.SGD(0.1))
        rng = self.rng if seed is None else np.random.default_rng(seed)
        callbacks = list(callbacks or ())
        params = self.parameters()

        n = x.shape[0]
        n_batches = n // batch_size if drop_last else -(-n // batch_size)
        rank, size, flat = 0, 1, None
        local_rng = rng
        if comm is not None:
            from . import mpi
            rank, size = comm.Get_rank(), comm.Get_size()
            mpi.check_same(comm, "(training examples, batch_size, epochs, parameters)",
                           (n, batch_size, epochs, self.n_params()))
            flat = mpi.FlatGrads(params)
            if rank:
                verbose = 0
            # The shuffled order comes from `rng`, the same on every rank; dropout
            # masks and augmentation draw from a per-rank Generator, so each rank
            # has its own masks for its own images (not those one process would draw).
            base = self.seed if seed is None else seed
            local_rng = np.random.default_rng([int(base) & (2**63 - 1), rank, initial_epoch])
        self._comm = comm
        self.history = history
        self.stop_training, self.stop_reason = False, None
        for cb in callbacks:
            cb.on_train_begin(self)
        iteration = initial_epoch * n_batches
        for epoch in range(initial_epoch + 1, epochs + 1):
            start = time.perf_counter()
            order = rng.permutation(n) if shuffle else None
            bar = _progress(n_batches, f"epoch {epoch}/{epochs}", verbose)
            loss_sum, correct, seen = 0.0, 0, 0
            for b in range(n_batches):
                for cb in callbacks:
                    cb.on_batch_begin(self, iteration)
                iteration += 1
                sl = slice(b * batch_size, min((b + 1) * batch_size, n))
                if flat is not None:
                    value, n_ok, m = self._mpi_step(x, y, sl, order, augment, local_rng, head,
                                                    loss, params, flat, comm)
                else:
                    out, yb, caches, value, dout = self._forward_loss(
                        x, y, sl if order is None else order[sl], augment, rng, head, loss)
                    n_ok, m = None, out.shape[0]
                if not math.isfinite(value):
                    self.stop_training = True
                    self.stop_reason = (f"the loss became {value} in epoch {epoch}, batch "
                                        f"{b + 1}: training stopped (try a smaller learning "
                                        "rate or check the inputs)")
                    break
                if flat is not None:
                    self.optimizer.step(self.ops, params, flat.views)
                elif getattr(self.optimizer, "fusable", False):
                    self._backward_sgd(dout, caches, params)
                else:
                    grads = self.backward(dout, caches)
                    self.optimizer.step(self.ops, params,
                                        [g[k] for layer, g in zip(self.layers, grads)
                                         for k in layer.params])
                loss_sum += value * m
                correct += _n_correct(out, yb) if n_ok is None else n_ok
                seen += m
                if bar is not None:
                    bar.update(1)
                    if b % 50 == 0 or b == n_batches - 1:
                        bar.set_postfix(loss=f"{loss_sum / seen:.4f}",
                                        acc=f"{correct / seen:.2%}", refresh=False)
            if bar is not None:
                bar.close()
            if not self.stop_training and not all(np.isfinite(p).all() for p, _ in params):
                # an update overflowed after the last loss was seen (e.g. the last batch)
                self.stop_training = True
                self.stop_reason = (f"the parameters became non-finite (Inf or NaN) in epoch "
                                    f"{epoch}: training stopped (try a smaller learning rate "
                                    "or check the inputs)")
            diverged = self.stop_reason if self.stop_training else None
            if seen == 0:  # stopped in the first batch
                break
            logs = self._end_epoch(history, epoch, loss_sum / seen, correct / seen, val, test,
                                   time.perf_counter() - start)
            if verbose:
                print(_epoch_line(epoch, epochs, logs, history), flush=True)
            for cb in callbacks:
                cb.on_epoch_end(self, epoch, logs)
            if diverged:  # a callback (say EarlyStopping) must not hide why training stopped
                self.stop_training, self.stop_reason = True, diverged
            if self.stop_training:
                break
        self._comm = None
        history.stop_reason = self.stop_reason
        if self.stop_reason and verbose:
            print(self.stop_reason, file=sys.stderr, flush=True)
        for cb in callbacks:
            cb.on_train_end(self, history)
        return history

    def _forward_loss(self, x, y, idx, augment, rng, head, loss):
        """One training forward pass on the examples idx (a slice or an index array):
        returns (output, labels, caches, loss value, d loss / d output)."""
        xb, yb = self._batch(x[idx]), y[idx]
        if augment is not None:
            xb = augment(xb, rng)
        out, caches = self.forward(xb, True, rng, head)
        value, dout = loss(self.ops, out, yb)
        return out, yb, caches, value, dout

    def _mpi_step(self, x, y, sl, order, augment, rng, head, loss, params, flat, comm):
        """This rank's share of the global batch `sl`: its mean gradient weighted by
        its share of the batch goes into the flat buffer, with its loss sum and
        correct count; one Allreduce sums them. Returns (batch loss, correct, batch size)."""
        from .mpi import share
        m = sl.stop - sl.start
        mine = share(m, comm.Get_rank(), comm.Get_size())
        part = slice(sl.start + mine.start, sl.start + mine.stop)
        k = part.stop - part.start
        flat.buf[:] = 0
        if k:
            out, yb, caches, value, dout = self._forward_loss(
                x, y, part if order is None else order[part], augment, rng, head, loss)
            grads = self.backward(dout, caches)
            w = np.float32(k / m)
            for v, g in zip(flat.views, (g[key] for layer, g in zip(self.layers, grads)
                                         for key in layer.params)):
                np.multiply(g, w, out=v)
            flat.extra[:] = value * k, _n_correct(out, yb)
        flat.allreduce(comm)
        return float(flat.extra[0]) / m, int(round(float(flat.extra[1]))), m

    def _pair(self, data, name):
        if data is None:
            return None
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError(f"{name} must be a pair (x, y), got {type(data).__name__}")
        x = self._check_x(data[0], f"{name}[0]")
        return x, self._check_y(data[1], x.shape[0], f"{name}[1]", f"{name}[0]")

    def _end_epoch(self, history, epoch, loss, acc, val, test, seconds):
        h = history.history
        logs = {"loss": loss, "accuracy": acc, "lr": self.optimizer.lr, "seconds": seconds}
        comm = getattr(self, "_comm", None)
        if comm is not None:
            from . import mpi

            def evaluate(x, y, batch_size):
                return mpi.evaluate(self, comm, x, y, batch_size, self.loss)
        else:
            evaluate = self.evaluate
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

    # ------------------------------------------------------------- report --

    def summary(self, print_fn=print) -> str:
        """A table: layer, output shape, parameter count; totals."""
        if self.input_shape is None:
            raise ValueError("the model is not built yet: give input_shape or call fit first")
        rows = [("Layer", "Output shape", "Params")]
        rows.append(("Input", str((None,) + self.input_shape), ""))
        for layer in self.layers:
            rows.append((repr(layer), str((None,) + tuple(layer.output_shape)),
                         f"{layer.n_params():,}"))
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:>{w[2]}}" for r in rows]
        rule = "-" * len(lines[0])
        text = "\n".join([lines[0], rule, *lines[1:], rule,
                          f"Total params: {self.n_params():,}  ({self.backend} backend, "
                          f"{self.dtype.name})"])
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self):
        inner = ",\n".join(f"    {layer!r}" for layer in self.layers)
        shape = "" if self.input_shape is None else f", input_shape={self.input_shape}"
        return f"Sequential([\n{inner},\n]{shape}, backend={self.backend!r})"

    def save(self, path):
        """Write parameters, architecture and optimizer state to a .npz file, atomically."""
        from .saving import save_model
        save_model(self, path)

    def export_onnx(self, path, opset=None):
        """Write the model's inference graph as an ONNX file (fastcnn.onnx_export;
        needs pip install "fastcnn[onnx]"). Returns the path."""
        from . import onnx_export
        return onnx_export.export_onnx(self, path, opset or onnx_export.OPSET)


def _n_correct(out, y) -> int:
    if y.ndim == 1:
        return int(np.count_nonzero(np.argmax(out, axis=1) == y))
    return int(np.count_nonzero(np.argmax(out, axis=1) == np.argmax(y, axis=1)))


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


__all__ = ["Sequential", "BACKENDS"]
