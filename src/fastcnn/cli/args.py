"""Argument types and options several subcommands share."""
from __future__ import annotations

import argparse


def positive_int(text):
    """argparse type: an integer >= 1 (0 would silently mean "the default" further on)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {v}")
    return v


def int_list(text):
    """argparse type: "1,2" -> [1, 2], each an integer >= 1."""
    return [positive_int(v) for v in text.split(",") if v.strip()] or positive_int("")


def add_common(p):
    p.add_argument("--threads", type=positive_int,
                   help="threads of the native ops (default: OMP_NUM_THREADS, else all cores)")
    p.add_argument("--backend", choices=["native", "reference"], default="native")
    p.add_argument("--data", metavar="SPEC", help="the data: a directory of the four IDX "
                   "files of MNIST or a set in its format (Fashion-MNIST, KMNIST...), "
                   "cifar10:PATH or cifar100:PATH (the binary version: its directory or "
                   ".tar.gz); default: the bundled MNIST")
    p.add_argument("--quiet", action="store_true", help="no progress output")



def add_scheduler(p):
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run each run as a Dask task: tcp://HOST:8786 for a running "
                        "cluster (--out must be on a filesystem all workers share), or "
                        'local:N for N local worker processes (pip install "fastcnn[dask]")')
