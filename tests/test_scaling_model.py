"""bench/scaling_model.py (the data-parallel scaling model of docs/scaling-mpi.md):
the global batch it reports is the smallest one that reaches the efficiency, and
the Allreduce cost follows the textbook ring and log-latency formulas. The script
is not part of the package; it is loaded from its path."""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "scaling_model.py"


@pytest.fixture(scope="module")
def sm():
    spec = importlib.util.spec_from_file_location("scaling_model", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def efficiency(b, p, t, reduce_s):
    compute = b / p * t
    return compute / (compute + reduce_s)


@pytest.mark.parametrize("p", [2, 3, 8, 32, 128])
@pytest.mark.parametrize("t_us", [37.0, 141.0, 900.0])
@pytest.mark.parametrize("e", [0.5, 0.8, 0.95])
def test_min_batch_is_the_smallest_that_reaches_the_efficiency(sm, p, t_us, e):
    reduce_s = sm.allreduce_s(p, 342_688, 10.0, 50e-6)
    b = sm.min_batch(p, t_us * 1e-6, reduce_s, e)
    assert efficiency(b, p, t_us * 1e-6, reduce_s) >= e - 1e-12
    assert efficiency(b - 1, p, t_us * 1e-6, reduce_s) < e


def test_allreduce_cost(sm):
    # 8 machines, 1 MB at 10 Gb/s: each sends and receives 2 * 7/8 MB = 1.75 MB,
    # 1.4 ms on the wire; a ring adds 14 latencies, a log-latency algorithm 6.
    wire = 2 * 7 / 8 * 1e6 * 8 / 10e9
    assert sm.allreduce_s(8, 1e6, 10.0, 50e-6, ring=True) == pytest.approx(wire + 14 * 50e-6)
    assert sm.allreduce_s(8, 1e6, 10.0, 50e-6, ring=False) == pytest.approx(wire + 6 * 50e-6)
    assert sm.allreduce_s(1, 1e6, 10.0, 50e-6) == 0.0        # one machine: nothing to reduce


def test_table_from_a_results_file(tmp_path):
    res = {"cpu": "test CPU", "results": [
        {"net": "X1", "threads_1x2_images_per_s": 10_000.0, "allreduce_bytes": 400_000}]}
    path = tmp_path / "mpi.json"
    path.write_text(json.dumps(res))
    out = subprocess.run([sys.executable, str(SCRIPT), "--results", str(path),
                          "--machines", "4", "--gbits", "10"],
                         capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith("| X1"))
    # 4 machines: wire 2 * 3/4 * 0.4 MB at 10 Gb/s = 0.48 ms, ring latency 6 * 50 us,
    # t = 100 us: B >= 4 * 4 * 0.78 ms / 100 us = 124.8 -> 125.
    reduce_s = 2 * 3 / 4 * 400_000 * 8 / 10e9 + 6 * 50e-6
    assert f"{reduce_s * 1e3:.1f} ms" in row
    assert f"B ≥ {math.ceil(4 * 4 * reduce_s / 100e-6):,}" in row


def test_bad_efficiency_is_refused(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--efficiency", "1.5"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--efficiency must be in (0, 1)" in r.stderr
