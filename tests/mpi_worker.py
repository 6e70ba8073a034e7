"""Run by tests/test_mpi.py under mpiexec (and once without it, as the one-process
oracle): a small CNN fit on synthetic data, parameters saved after every epoch.

    python tests/mpi_worker.py MODE OUTDIR
MODE: 'fit' (data-parallel with comm if run under MPI), 'single' (no comm),
'bad' (rank 1 gets labels out of range: the job must end with that error),
'short' (rank 1 has 10 examples fewer: refused on every rank).
"""
import os
import sys

import numpy as np

import fastcnn as fc
from fastcnn import layers as L
from fastcnn.callbacks import Callback

EPOCHS, BATCH, N = 3, 24, 2000   # 3 x 84 = 252 steps (last batch of 8 split 4 + 4)


def data():
    g = np.random.default_rng(7)
    x = g.random((N, 1, 12, 12), dtype=np.float32)
    # labels that depend on the pixels, so the net has something to learn
    y = (x[:, 0, 2:6, 2:6].sum(axis=(1, 2)) * 10 / 16).astype(np.int64) % 5
    return x, y


def model():
    # tanh and sigmoid, not ReLU: with ReLU a conv output within rounding of 0
    # can get another sign when the batch is split (the GEMM sums in another
    # order), which routes a max-pool window's gradient elsewhere, a jump that
    # then grows; smooth activations keep the runs within float rounding.
    return fc.Sequential([L.Conv2D(6, 3, activation="tanh"), L.MaxPool2D(2),
                          L.Dense(16, activation="sigmoid"), L.Dense(5, activation="softmax")],
                         input_shape=(1, 12, 12), seed=3)


class SaveParams(Callback):
    def __init__(self, out, tag):
        self.out, self.tag = out, tag

    def on_epoch_end(self, model, epoch, logs):
        flat = np.concatenate([p.ravel() for p, _ in model.parameters()])
        np.save(os.path.join(self.out, f"{self.tag}_e{epoch}.npy"), flat)
        np.save(os.path.join(self.out, f"{self.tag}_e{epoch}_logs.npy"),
                np.array([logs["loss"], logs["accuracy"], logs["val_accuracy"]]))


def main():
    mode, out = sys.argv[1], sys.argv[2]
    x, y = data()
    val = (x[:300], y[:300])
    net = model()
    opt = fc.optim.SGD(0.05, momentum=0.5)
    if mode == "single":
        net.fit(x, y, EPOCHS, BATCH, optimizer=opt, validation_data=val, verbose=0,
                callbacks=[SaveParams(out, "single")])
        return
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    if mode == "bad" and comm.Get_rank() == 1:
        y = y.copy()
        y[5] = 99
    if mode == "short" and comm.Get_rank() == 1:
        x, y = x[:-10], y[:-10]
    net.fit(x, y, EPOCHS, BATCH, optimizer=opt, validation_data=val, verbose=0,
            callbacks=[SaveParams(out, f"rank{comm.Get_rank()}")], comm=comm)


if __name__ == "__main__":
    main()
