"""fastcnn.nn -- networks: layers, the Sequential model, losses, optimizers,
callbacks, the training loop, ensembles, and saving models to files.

  layers/           the building blocks (one file per kind; the contract in base.py)
  model.py          Sequential: set-up, forward/backward over the planned steps,
                    evaluate/predict, summary, save/load
  steps.py          the plan: layers grouped into steps (a fused conv + max-pool is one)
  training.py       fit: epochs, progress, evaluation, stopping, resuming
  batches.py        one mini-batch: forward + loss, correct count
  data_parallel.py  fit over MPI (one Allreduce per step)
  losses.py optim.py callbacks.py ensemble.py saving.py

Everything here computes through a backend module (fastcnn.backend) handed to
it, never naming one.
"""
from __future__ import annotations

from . import callbacks, layers, losses, optim
from .ensemble import Ensemble
from .model import Sequential, load_checkpoint, load_model
from .saving import save_checkpoint, save_model

__all__ = ["layers", "losses", "optim", "callbacks", "Sequential", "Ensemble", "load_model",
           "load_checkpoint", "save_model", "save_checkpoint"]
