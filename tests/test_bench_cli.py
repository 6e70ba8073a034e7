"""`python -m fastcnn bench` with a tiny budget: the output's structure and that every
rate and ratio is a positive number (no timing is judged here)."""
from __future__ import annotations

import json
import importlib.util
import re

import pytest

import fastcnn
from fastcnn import benchmark
from fastcnn.cli import main

TINY = ["bench", "--nets", "N1", "--threads", "1", "--segments", "2", "--segment-seconds",
        "0.02", "--settle", "0", "--infer-batch", "100"]
RATE = r"(\d+) \[(\d+)\.\.(\d+)\]"


# main(["...", "--threads", "1"]) sets the process-wide thread count: restore it.
pytestmark = pytest.mark.usefixtures("keep_threads")


def _rows(text, title):
    """The table rows under the heading that starts with `title`."""
    block = text.split("\n" + title, 1)[1].split("\n\n", 1)[0].splitlines()
    assert block[1].split()[:3] == ["net", "thr", "batch"]
    return block[2:]


def test_bench_prints_machine_tables_and_ratios(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(TINY + ["--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"cpu: {benchmark.cpu_model()}" in text
    assert f"simd={fastcnn.build_info()['simd']}" in text
    with_torch = benchmark.torch is not None
    (train,) = _rows(text, "Training")
    (infer,) = _rows(text, "Inference at batch 100")
    for row, batch in ((train, 10), (infer, 100)):
        assert row.split()[:3] == ["N1", "1", str(batch)]
        rates = [tuple(map(int, m)) for m in re.findall(RATE, row)]
        assert len(rates) == (3 if with_torch else 2)      # native, (torch), reference
        for med, lo, hi in rates:
            assert 0 < lo <= med <= hi
        ratios = [float(v) for v in row.split()[-2:] if v != "-"]
        assert len(ratios) == (2 if with_torch else 1) and all(r > 0 for r in ratios)
    data = json.loads(out.read_text())
    assert data["failures"] == [] and data["settings"]["nets"] == ["N1"]
    (tr,) = data["training"]
    assert set(tr["contenders"]) == {"native", "reference"} | ({"torch"} if with_torch else set())
    assert all(c["ok"] for c in tr["checks"]) and tr["native/reference"] > 0
    assert fastcnn.get_num_threads() >= 1


def test_bench_without_torch(monkeypatch, capsys):
    monkeypatch.setattr(benchmark.nets, "torch", None)
    assert main(TINY + ["--no-inference", "--no-reference"]) == 0
    text = capsys.readouterr().out
    assert "PyTorch not installed" in text
    (row,) = _rows(text, "Training")
    assert len(re.findall(RATE, row)) == 1 and row.split()[-2:] == ["-", "-"]


@pytest.mark.parametrize("bad", [["--nets", "N9"], ["--segment-seconds", "0"],
                                 ["--threads", "0"], ["--threads", "99999"]])
def test_bench_bad_arguments(bad, capsys):
    try:
        code = main(["bench"] + bad)
    except SystemExit as e:     # argparse refuses it
        code = e.code
    assert code == 2
    assert "error" in capsys.readouterr().err


def test_peers_check_then_time(capsys):
    """fastcnn.bench.peers: every contender checked against fastcnn first, then timed;
    PyTorch and ONNX Runtime appear when installed, and the ratios are of medians."""
    from fastcnn.bench import Settings, peers
    settings = Settings(segments=2, segment_seconds=0.02, settle=0)
    rows = peers.run([("C1", 4)], [("K1", 1)], [1], settings)
    text = capsys.readouterr().out
    assert [(r["kind"], r["net"], r["batch"]) for r in rows] == [("train", "C1", 4),
                                                                 ("infer", "K1", 1)]
    for r in rows:
        assert all(c["ok"] for c in r["checks"]), r["checks"]
        fast = r["results"]["fastcnn"]
        assert fast["min"] <= fast["median"] <= fast["max"]
        for peer, ratio in r["ratios"].items():
            assert ratio == pytest.approx(fast["median"] / r["results"][peer]["median"])
    expected = {"onnxruntime"} if importlib.util.find_spec("onnxruntime") else set()
    if importlib.util.find_spec("torch"):
        expected.add("torch")
    assert set(rows[1]["ratios"]) == expected
    assert "infer K1 t=1 b=    1  fastcnn" in text
