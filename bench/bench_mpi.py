"""Data-parallel MPI training against threads on one machine: the same fit, as
2 MPI ranks x 1 OpenMP thread and as 1 process x 2 threads, interleaved.

    python bench/bench_mpi.py                     # K1 at b128, N2 at b64, 3 rounds
    python bench/bench_mpi.py --cases N2:64 --rounds 5 --steps 40

Each sample is a fresh process (mpiexec -n 2 ... or plain python) that builds the
net (fastcnn.bench), runs 3 warm-up steps, then times one fit of --steps
global mini-batches of random MNIST-shaped images (no evaluation) and reports
images/s. The MPI samples also time the step's Allreduce alone on the net's flat
gradient buffer (bytes, median microseconds over 200 calls). The two contenders
alternate (A B A B ...); reported: medians over the rounds and their ratio.
Needs pip install "fastcnn[mpi]". Run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _subproc import emit_result, run_for_result  # noqa: E402


def worker(net_name, bs, steps, use_mpi):
    import numpy as np
    import fastcnn as fc
    from fastcnn.bench import build
    comm = None
    if use_mpi:
        from fastcnn.nn.data_parallel import FlatGrads, import_mpi
        comm = import_mpi().COMM_WORLD
    g = np.random.default_rng(0)
    x = g.integers(0, 256, (bs * steps, 1, 28, 28), dtype=np.uint8)
    y = g.integers(0, 10, bs * steps)
    model = build(net_name)
    kw = dict(batch_size=bs, optimizer=fc.optim.SGD(0.01), verbose=0, shuffle=False, comm=comm)
    model.fit(x[:3 * bs], y[:3 * bs], **kw)       # warm-up: scratch buffers, pages
    if comm is not None:
        comm.Barrier()
    t0 = time.perf_counter()
    model.fit(x, y, **kw)
    seconds = time.perf_counter() - t0
    out = {"images_per_s": bs * steps / seconds, "s_per_step": seconds / steps}
    if comm is not None:
        flat = FlatGrads(model.parameters())
        ts = []
        for _ in range(200):
            comm.Barrier()
            t = time.perf_counter()
            flat.allreduce(comm)
            ts.append(time.perf_counter() - t)
        out["allreduce_bytes"] = flat.nbytes
        out["allreduce_us"] = statistics.median(ts) * 1e6
        if comm.Get_rank():
            return
    out["params"] = model.n_params()
    emit_result(out)


def sample(net_name, bs, steps, use_mpi):
    env = dict(os.environ, OMP_NUM_THREADS="1" if use_mpi else "2")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", net_name, str(bs),
           str(steps)]
    if use_mpi:
        exe = shutil.which("mpiexec") or os.path.join(os.path.dirname(sys.executable),
                                                      "mpiexec")
        cmd = [exe, "-n", "2"] + cmd + ["--mpi"]
    return run_for_result(cmd, env)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="K1:128,N2:64", help="NET:BATCH,...")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30, help="timed global mini-batches")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--mpi", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        net_name, bs, steps = args.worker
        worker(net_name, int(bs), int(steps), args.mpi)
        return
    from fastcnn.bench import cpu_model
    print(f"bench_mpi: {' '.join(sys.argv)}\nCPU: {cpu_model()}, {os.cpu_count()} logical CPUs,"
          f" load {os.getloadavg()}")
    results = []
    for case in args.cases.split(","):
        net_name, bs = case.split(":")
        bs = int(bs)
        mpi_s, thr_s = [], []
        for _ in range(args.rounds):
            mpi_s.append(sample(net_name, bs, args.steps, True))
            thr_s.append(sample(net_name, bs, args.steps, False))
        med = {k: statistics.median(s[k] for s in mpi_s) for k in mpi_s[0]}
        thr = statistics.median(s["images_per_s"] for s in thr_s)
        row = {"net": net_name, "batch": bs, "params": mpi_s[0]["params"],
               "mpi_2x1_images_per_s": med["images_per_s"],
               "threads_1x2_images_per_s": thr,
               "ratio_mpi_over_threads": med["images_per_s"] / thr,
               "allreduce_bytes": mpi_s[0]["allreduce_bytes"],
               "allreduce_us_median": med["allreduce_us"],
               "mpi_images_per_s_all": [round(s["images_per_s"], 1) for s in mpi_s],
               "threads_images_per_s_all": [round(s["images_per_s"], 1) for s in thr_s]}
        results.append(row)
        print(f"{net_name} b{bs} ({row['params']:,} params): 2 ranks x 1 thread "
              f"{row['mpi_2x1_images_per_s']:.0f} img/s, 1 process x 2 threads {thr:.0f} img/s,"
              f" ratio {row['ratio_mpi_over_threads']:.2f}; allreduce "
              f"{row['allreduce_bytes']:,} B in {row['allreduce_us_median']:.0f} us (median)",
              flush=True)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", "mpi.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"argv": sys.argv, "cpu": cpu_model(), "results": results}, f, indent=1)
    os.replace(tmp, path)
    print(f"(written to {path})")


if __name__ == "__main__":
    main()
