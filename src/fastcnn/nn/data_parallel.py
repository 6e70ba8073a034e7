"""fastcnn.mpi -- data-parallel training over MPI (pip install "fastcnn[mpi]").

    mpiexec -n 2 python -m fastcnn train PRESET --mpi
    model.fit(x, y, ..., comm=MPI.COMM_WORLD)

Every rank holds the whole training set and draws the same shuffled order, takes
its contiguous share of each global mini-batch, computes the mean gradient of
its share, and the shares are combined by ONE Allreduce per step on one flat
float32 buffer (each rank's gradient is weighted by its share of the batch, so
the sum is the mean gradient of the whole batch); the batch's loss and correct
count ride in the same buffer. Every rank then applies the same update, so the
parameters stay bitwise identical on all ranks. Evaluation is sharded the same
way and its sums reduced.

The per-step work is Step; nn/training.py calls it instead of the one-process
step when fit is given a communicator. mpi4py is imported only when a comm is used.
"""
from __future__ import annotations

import math
import sys
import time
import traceback

import numpy as np

from .batches import forward_loss, n_correct


def import_mpi():
    """mpi4py's MPI module, or an ImportError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError('MPI training needs mpi4py and an MPI library: '
                          'pip install "fastcnn[mpi]"') from e
    return MPI


def share(n: int, rank: int, size: int) -> slice:
    """The contiguous part of n items that rank owns (sizes differ by at most 1)."""
    return slice(rank * n // size, (rank + 1) * n // size)


class FlatGrads:
    """One float32 buffer holding every parameter's gradient (views shaped like the
    parameters) followed by `extra` scalars, reduced with one Allreduce."""

    def __init__(self, params, extra=2):
        sizes = [p.size for p, _ in params]
        self.n = sum(sizes)
        self.buf = np.zeros(self.n + extra, np.float32)
        self.views, off = [], 0
        for (p, _), s in zip(params, sizes):
            self.views.append(self.buf[off:off + s].reshape(p.shape))
            off += s
        self.extra = self.buf[self.n:]

    @property
    def nbytes(self) -> int:
        return self.buf.nbytes

    def allreduce(self, comm):
        MPI = import_mpi()
        comm.Allreduce(MPI.IN_PLACE, self.buf, op=MPI.SUM)


class Step:
    """One data-parallel training step of `model` on this rank (see the module
    docstring): call it with the global batch's slice; returns (batch loss,
    correct count, batch size), or (None, the loss, 0) when the loss is not
    finite (then no rank updates)."""

    def __init__(self, model, comm, n, batch_size, epochs, params, seed, initial_epoch):
        check_same(comm, "(training examples, batch_size, epochs, parameters)",
                   (n, batch_size, epochs, model.n_params()))
        self.model, self.comm, self.params = model, comm, params
        self.flat = FlatGrads(params)
        # The shuffled order comes from the model's Generator, the same on every
        # rank; dropout masks and augmentation draw from a per-rank Generator, so
        # each rank has its own masks for its own images (not those one process
        # would draw).
        base = model.seed if seed is None else seed
        self.rng = np.random.default_rng([int(base) & (2**63 - 1), comm.Get_rank(),
                                          initial_epoch])

    def __call__(self, x, y, sl, order, augment, head, loss):
        model, comm, flat = self.model, self.comm, self.flat
        m = sl.stop - sl.start
        mine = share(m, comm.Get_rank(), comm.Get_size())
        part = slice(sl.start + mine.start, sl.start + mine.stop)
        k = part.stop - part.start
        flat.buf[:] = 0
        if k:
            # This rank's mean gradient weighted by its share of the batch goes into
            # the flat buffer, with its loss sum and correct count.
            out, yb, caches, value, dout = forward_loss(
                model, x, y, part if order is None else order[part], augment, self.rng,
                head, loss)
            grads = model.backward(dout, caches)
            w = np.float32(k / m)
            for v, g in zip(flat.views, (g[key] for layer, g in zip(model.layers, grads)
                                         for key in layer.params)):
                np.multiply(g, w, out=v)
            flat.extra[:] = value * k, n_correct(out, yb)
        flat.allreduce(comm)
        value = float(flat.extra[0]) / m
        if not math.isfinite(value):
            return None, value, 0
        model.optimizer.step(model.ops, self.params, flat.views)
        return value, int(round(float(flat.extra[1]))), m


def evaluate(model, comm, x, y, batch_size, loss):
    """model.evaluate over (x, y), each rank on its share; the sums are reduced in
    float64 so every rank returns the same numbers."""
    MPI = import_mpi()
    sl = share(x.shape[0], comm.Get_rank(), comm.Get_size())
    part = np.zeros(2)
    if sl.stop > sl.start:
        r = model.evaluate(x[sl], y[sl], batch_size=batch_size, loss=loss)
        m = sl.stop - sl.start
        part[:] = r["loss"] * m, round(r["accuracy"] * m)
    comm.Allreduce(MPI.IN_PLACE, part, op=MPI.SUM)
    return {"loss": part[0] / x.shape[0], "accuracy": part[1] / x.shape[0]}


def check_same(comm, what: str, value):
    """Raise on every rank when `value` differs between ranks (say a rank loaded
    other data): the training would otherwise deadlock or silently diverge."""
    values = comm.allgather(value)
    if any(v != values[0] for v in values):
        raise ValueError(f"{what} must be the same on every MPI rank, got "
                         + ", ".join(f"rank {i}: {v}" for i, v in enumerate(values)))


def abort_on_error(comm, fn, *args, **kwargs):
    """fn(*args, **kwargs); when it raises on any rank, print the error with the
    rank and end the whole MPI job (comm.Abort), since the other ranks would
    wait forever in their next collective."""
    try:
        return fn(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 -- any error must end the job
        if comm.Get_size() == 1:
            raise
        rank = comm.Get_rank()
        # one write, then a moment for mpiexec to forward it before Abort kills the job
        text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        sys.stdout.flush()
        sys.stderr.write(f"{text}fastcnn: MPI rank {rank} failed "
                         f"({type(e).__name__}: {e}); ending the job\n")
        sys.stderr.flush()
        time.sleep(0.5)
        comm.Abort(1)
        raise


__all__ = ["import_mpi", "share", "FlatGrads", "Step", "evaluate", "check_same",
           "abort_on_error"]
