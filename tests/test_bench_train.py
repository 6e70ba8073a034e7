"""Smoke test of bench/bench_train.py (fastcnn against PyTorch): the weight copy into
torch, the native-vs-reference check, and a --quick run of one tiny case. The bench
script is not part of the package; it is loaded from its path."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import fastcnn

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_train.py"


@pytest.fixture(scope="module")
def bt():
    path = list(sys.path)
    spec = importlib.util.spec_from_file_location("bench_train", BENCH)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)   # it puts bench/ on sys.path for _harness
    finally:
        sys.path[:] = path
    return mod


@pytest.fixture(autouse=True)
def one_thread(bt):
    """One thread each for fastcnn and torch on the shared machine."""
    torch = bt.torch
    before = fastcnn.get_num_threads(), torch.get_num_threads() if torch else None
    fastcnn.set_num_threads(1)
    if torch:
        torch.set_num_threads(1)
    yield
    fastcnn.set_num_threads(before[0])
    if torch:
        torch.set_num_threads(before[1])


@pytest.fixture(scope="module")
def mnist():
    (x, y), _, _ = fastcnn.datasets.load_mnist()
    return x[:16].copy(), y[:16].copy()


@pytest.mark.parametrize("net", ["N1", "N2"])
def test_weight_copy_gives_the_same_outputs(bt, mnist, net):
    torch = pytest.importorskip("torch")
    x, _ = mnist
    model = bt.build(net)
    tmodel = bt.to_torch(model).eval()
    with torch.no_grad():
        got = torch.softmax(tmodel(torch.from_numpy(x[:5])), dim=1).numpy()
    np.testing.assert_allclose(got, model.predict_proba(x[:5]), rtol=1e-5, atol=1e-6)
    # a copy, not a view: training torch leaves fastcnn's weights alone
    w = model.layers[0].params["w"]
    assert not np.shares_memory(w, next(tmodel.parameters()).detach().numpy())


def test_torch_step_check_catches_a_different_net(bt, mnist):
    torch = pytest.importorskip("torch")
    x, y = mnist
    model = bt.build("N2")
    tmodel = bt.to_torch(model)
    assert all(c["ok"] for c in bt.check_torch_step(model, tmodel, x[:8], y[:8]))
    with torch.no_grad():
        tmodel[0].weight[0, 0, 0, 0] += 0.1   # float32 and float64 steps both notice
    assert not any(c["ok"] for c in bt.check_torch_step(model, tmodel, x[:8], y[:8]))


@pytest.mark.parametrize("net", ["N2", "N3"])
def test_native_matches_reference_for_one_step(bt, mnist, net):
    x, y = mnist
    model = bt.build(net)
    result = bt.check_native_vs_reference(model, x[:4], y[:4])
    assert result["ok"], result
    # and the check is not vacuous: a changed reference weight is noticed
    other = bt.twin(model, "reference")
    other.layers[0].params["w"][0, 0, 0, 0] += 0.1
    ref = other.loss_and_grads(x[:4], y[:4], rng=np.random.default_rng(1))
    assert not bt.check_native_vs_reference(model, x[:4], y[:4], ref_result=ref)["ok"]


def test_quick_run_writes_the_json(bt, tmp_path, capsys):
    out = tmp_path / "bench_train.json"
    bt.main(["--quick", "--nets", "N1", "--batches", "10", "--threads", "1",
             "--segments", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert {"command", "machine", "torch", "settings", "training", "inference",
            "failures", "loadavg_at_end"} <= set(data)
    assert data["failures"] == []
    (row,) = data["training"]
    assert (row["net"], row["threads"], row["batch"]) == ("N1", 1, 10)
    expected = {"native", "reference"} | ({"torch"} if bt.torch else set())
    assert set(row["contenders"]) == expected
    for c in row["contenders"].values():
        assert c["steps"] >= 1 and len(c["images_per_s"]) == 1
        assert c["min"] <= c["median"] <= c["max"] and c["median"] > 0
    assert all(chk["ok"] for chk in row["checks"])
    assert row["native/reference"] > 0
    (inf,) = data["inference"]
    assert inf["batch"] == 1000 and inf["contenders"]["native"]["median"] > 0
    if bt.torch:
        assert row["native/torch"] > 0 and data["torch"]["version"]
    else:
        assert "PyTorch not installed" in printed
    assert "Training N1" in printed and "native/torch" in printed


def test_bench_stretches_smoke(tmp_path):
    """bench_stretches.py runs a few short intervals at 1 and 2 threads in turn and
    writes its JSON (timing itself is not judged here)."""
    path = list(sys.path)
    spec = importlib.util.spec_from_file_location("bench_stretches",
                                                  BENCH.parent / "bench_stretches.py")
    mod = importlib.util.module_from_spec(spec)
    before = fastcnn.get_num_threads()
    try:
        spec.loader.exec_module(mod)
        out = tmp_path / "stretches.json"
        mod.main(["--threads", "1", "2", "--intervals", "4", "--seconds", "0.05",
                  "--out", str(out)])
    finally:
        sys.path[:] = path
        fastcnn.set_num_threads(before)
    data = json.loads(out.read_text())
    assert [r["threads"] for r in data["intervals"]] == [1, 2, 1, 2]
    assert all(r["images_per_s"] > 0 for r in data["intervals"])
    assert set(data["summary"]) == {"1", "2"}
    with pytest.raises(SystemExit):
        mod.main(["--threads", "0"])
