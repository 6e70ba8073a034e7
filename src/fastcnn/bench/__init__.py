"""fastcnn.bench -- how fast fastcnn trains and infers on this machine, beside its
NumPy reference backend and PyTorch (when installed): the same nets, the same
starting weights, the same mini-batches; validate, then time.

  nets.py     the nets (N1 N2 N3 K1), their reference and torch twins, the machine
  checks.py   each contender checked against the reference before it is timed
  timing.py   what a segment runs; segments taken round-robin
  compare.py  the cases, the tables, and run(): `fastcnn bench`

Imports torch when it is installed (pip install "fastcnn[bench]").
"""
from __future__ import annotations

from .checks import (CHECK_BATCH, EXACT_RTOL, GRAD_RTOL, PROBA_ATOL, TORCH_RTOL,
                     check_native_vs_reference, check_torch_forward, check_torch_step, relerr,
                     verdict)
from . import peers
from .compare import header, infer_case, print_table, ratio, run, train_case
from .nets import (INFER_BATCH, LR, NETS, NO_TORCH, build, cpu_model, load_data, machine_info,
                   net_layers, to_torch, torch, twin)
from .timing import Settings, calibrate, time_round_robin

__all__ = ["peers", "run", "header", "train_case", "infer_case", "print_table", "ratio", "Settings",
           "calibrate", "time_round_robin", "NETS", "LR", "INFER_BATCH", "NO_TORCH", "build",
           "cpu_model", "load_data", "machine_info", "net_layers", "to_torch", "twin", "torch",
           "relerr", "verdict", "check_native_vs_reference", "check_torch_forward",
           "check_torch_step", "GRAD_RTOL", "CHECK_BATCH", "TORCH_RTOL", "EXACT_RTOL",
           "PROBA_ATOL"]
