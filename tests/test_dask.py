"""Runs on Dask (fastcnn.distributed): a LocalCluster sweep gives the results of the
same runs trained directly with presets.train in this process, and a run whose
worker is killed with SIGKILL after its first checkpoint resumes on a new worker
and ends with the same parameters, bit for bit.

These start clusters of worker processes, so they run only when FASTCNN_DIST_TESTS=1
(.ci/run runs this file once) and dask.distributed is installed.
"""
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("FASTCNN_DIST_TESTS") != "1":
    pytest.skip("cluster tests: set FASTCNN_DIST_TESTS=1", allow_module_level=True)
distributed = pytest.importorskip("distributed")

from fastcnn import cli, datasets, presets  # noqa: E402
from fastcnn import distributed as fd  # noqa: E402
from fastcnn.runs import reproduce  # noqa: E402

PRESET = "conv2-relu"   # a small book preset that learns in a few hundred images
TRAIN, VAL, TEST = 400, 10000, 300   # the book presets hold out 10000 for validation
EPOCHS = 3


def _write_idx(path, array):
    """An IDX file of unsigned bytes (big-endian dimensions after the magic)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A slice of MNIST as a directory of IDX files (every worker process reads it)."""
    (xtr, ytr), _, (xte, yte) = datasets.load_mnist(validation=0, dtype="uint8")
    d = tmp_path_factory.mktemp("idx")
    n = TRAIN + VAL
    _write_idx(d / "train-images-idx3-ubyte", xtr[:n].reshape(n, 28, 28))
    _write_idx(d / "train-labels-idx1-ubyte", ytr[:n])
    _write_idx(d / "t10k-images-idx3-ubyte", xte[:TEST].reshape(TEST, 28, 28))
    _write_idx(d / "t10k-labels-idx1-ubyte", yte[:TEST])
    return str(d)


def _params(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files if k != "header"}


def _same_params(a, b):
    assert a.keys() == b.keys() and a
    for k in a:
        assert np.array_equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def direct(data, tmp_path_factory):
    """The oracle: each run trained by presets.train in this process, in one go,
    without checkpoints."""
    out = tmp_path_factory.mktemp("direct")
    runs = {}
    for lr in (0.03, 0.1):
        for seed in (0, 1):
            path = out / f"lr{lr}-seed{seed}.npz"
            res = presets.train(PRESET, epochs=EPOCHS, lr=lr, seed=seed, data_path=data,
                                verbose=0, save=str(path))
            runs[(lr, seed)] = (res, _params(path))
    return runs


def _check_run(res, ref, params, ref_params):
    _same_params(params, ref_params)
    for key in ("test_accuracy", "best_val_accuracy", "best_epoch", "final_test_accuracy",
                "epochs_run", "lr", "seed"):
        assert res[key] == ref[key], key
    h, hr = res["history"], ref["history"]
    assert h.keys() == hr.keys()
    for k in hr:
        if k != "history":
            assert h[k] == hr[k], k
    for k in hr["history"]:
        if k != "seconds":   # wall time per epoch
            assert h["history"][k] == hr["history"][k], k
    # the runs learned something (the comparison is not one of untrained nets)
    assert res["test_accuracy"] > 50


def test_local_cluster_sweep_matches_direct_runs(data, direct, tmp_path, capfd):
    out = tmp_path / "sweep"
    code = cli.main(["sweep", PRESET, "--set", "lr=0.03,0.1", "--seeds", "0,1",
                     "--epochs", str(EPOCHS), "--data", data, "--out", str(out),
                     "--scheduler", "local:2"])
    assert code == 0
    printed = capfd.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 4
    for res in results:
        ref, ref_params = direct[(res["lr"], res["seed"])]
        _check_run(res, ref, _params(reproduce.run_stem(str(out), PRESET, res["seed"], EPOCHS,
                                                  res["settings"]) + ".npz"), ref_params)
        name = res["run"]
        # one progress line per finished epoch per run, prefixed with its name
        for e in range(1, EPOCHS + 1):
            assert sum(line.startswith(f"[{name}] epoch {e}:")
                       for line in printed.splitlines()) == 1, (name, e)
        assert f"| {name} |" in (out / "results.md").read_text()
    assert not list(out.glob("*.partial.npz"))


def test_killed_worker_run_resumes_bit_identically(data, direct, tmp_path):
    out = tmp_path / "killed"
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        victim = reproduce.run_stem(str(out), PRESET, 1, EPOCHS, {"lr": 0.1})
        box = {}

        def run():
            try:
                box["results"] = fd.sweep(PRESET, {"lr": [0.03, 0.1]}, [1], epochs=EPOCHS,
                                          scheduler=client, out=str(out), data=data,
                                          verbose=False)
            except BaseException as e:   # re-raised in the test's thread below
                box["error"] = e
        t = threading.Thread(target=run)
        t.start()
        partial = Path(victim + ".partial.npz")
        deadline = time.monotonic() + 120
        while not partial.exists() and time.monotonic() < deadline and t.is_alive():
            time.sleep(0.01)
        assert partial.exists(), "the run never wrote its first checkpoint"
        # the worker that runs the victim's task
        key = f"fastcnn-{os.path.basename(victim)}"
        where = [w for w, keys in client.processing().items() if key in keys]
        assert len(where) == 1
        pid = client.run(os.getpid, workers=where)[where[0]]
        os.kill(pid, signal.SIGKILL)
        t.join(300)
        assert not t.is_alive()
        if "error" in box:
            raise box["error"]
    finally:
        client.close()
        cluster.close()
    by_lr = {r["lr"]: r for r in box["results"]}
    res = by_lr[0.1]
    assert res["segments"] == 2, "the killed run was not resumed from its checkpoint"
    ref, ref_params = direct[(0.1, 1)]
    _check_run(res, ref, _params(victim + ".npz"), ref_params)
    other = by_lr[0.03]
    _check_run(other, *direct[(0.03, 1)][:1],
               _params(reproduce.run_stem(str(out), PRESET, 1, EPOCHS, {"lr": 0.03}) + ".npz"),
               direct[(0.03, 1)][1])


def test_scheduler_errors():
    with pytest.raises(ValueError, match="local:N"):
        fd.client_for("local:0")
    with pytest.raises(ValueError, match="--set"):
        fd.parse_grid(["momentum=0.9"])
    with pytest.raises(ValueError, match="floats"):
        fd.parse_grid(["lr=fast"])
