"""Fuzz of the file loaders: model files (fastcnn.load) and IDX data directories
(fastcnn.datasets.load_mnist(path=...)), damaged the way a hostile user would.

Categories (model files): truncation, byte flips, header edits (unsigned, and
re-signed so they reach the checks behind the digest: sizes of 2**31..2**62,
units 2**40, null input shape, optimizer steps Infinity, lr 2**2000, a
5000-digit integer...), JSON nesting, zip members with other compression
methods or flagged encrypted, zip bombs, npy members declaring 2**40 elements,
archives of too many members. (Data directories): truncation, byte flips (with
a SHA256SUMS.raw beside the data), IDX header edits, gzip bombs, huge declared
sizes (a sparse file), files that are not gzip.

Every case must either be refused with fastcnn.FileFormatError naming the file,
or -- only where a flip hits bytes the formats do not read (zip timestamps...)
-- load exactly what the intact file holds. Each case's peak of traced memory
(Python objects and numpy arrays, tracemalloc) must stay under MEMORY_BOUND.

FASTCNN_FUZZ_LONG=1 runs the long version (not needed by .ci/run): more flips
and cuts, bombs of 1 GiB (zip) and 8 GiB (gzip), a 2 TiB sparse IDX file, an
archive of 65535 members; each category runs in a fresh process and reports
its worst case time and RSS growth (peak resident set of a case, from
/proc/self/status, less the resident set before it), printed as a table:

    FASTCNN_FUZZ_LONG=1 PYTHONPATH=src python -m pytest -q -s tests/test_fuzz_files.py

The damaged files themselves are built by tests/fuzz_file_cases.py."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from fuzz_file_cases import LONG, _fingerprint, _model, data_cases, model_cases

import fastcnn
from fastcnn import datasets

MEMORY_BOUND = 100 << 20


# ------------------------------------------------------------------ checks --

def _run(kind, target, expect):
    """None if the case is handled (refused naming the file, or loaded exactly as
    the intact file), else what went wrong."""
    try:
        if kind == "model":
            loaded = fastcnn.load(target)
        else:
            directory, _ = target
            datasets.clear_cache()
            loaded = datasets.load_mnist(path=directory, validation=5, dtype="uint8")
    except fastcnn.FileFormatError as e:
        named = str(target if kind == "model" else target[1])
        return None if named in str(e) else f"refused without naming the file: {e}"
    except Exception as e:  # noqa: BLE001 - the point: any other type is a failure
        return f"{type(e).__name__}: {e}"
    got = _fingerprint(loaded) if kind == "model" else _data_fingerprint(loaded)
    return None if got == expect else "accepted, and loads something else than the intact file"


def _data_fingerprint(sets) -> str:
    h = hashlib.sha256()
    for x, y in sets:
        h.update(repr((x.shape, y.shape)).encode())
        h.update(x.tobytes())
        h.update(y.tobytes())
    return h.hexdigest()


def _all_cases(d: Path):
    good = d / "good.npz"
    _model().save(good)
    cases = [(cat, "model", p) for cat, ps in model_cases(d, good).items() for p in ps]
    cases += [(cat, "data", t) for cat, ts in data_cases(d).items() for t in ts]
    expect = {"model": _fingerprint(fastcnn.load(good)),
              "data": _data_fingerprint(datasets.load_mnist(path=d / "intact", validation=5,
                                                            dtype="uint8"))}
    return cases, expect


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return _all_cases(tmp_path_factory.mktemp("fuzz"))


CATEGORIES = ["model truncation", "model byte flips", "model header edits", "model nesting",
              "model compression", "model bombs", "model sizes", "data truncation",
              "data byte flips", "data header edits", "data bombs", "data sizes"]


@pytest.mark.skipif(LONG, reason="the long run measures each category in its own process")
@pytest.mark.parametrize("category", CATEGORIES)
def test_every_damaged_file_is_refused_in_bounded_memory(cases, category):
    cases, expect = cases
    mine = [(kind, t) for cat, kind, t in cases if cat == category]
    assert mine
    failures = []
    tracemalloc.start()
    try:
        for kind, target in mine:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            problem = _run(kind, target, expect[kind])
            grew = tracemalloc.get_traced_memory()[1] - before
            if problem or grew > MEMORY_BOUND:
                failures.append(f"{target}: {problem or ''} (peak +{grew >> 20} MiB)")
    finally:
        tracemalloc.stop()
    assert not failures, "\n".join(failures[:10])


# -------------------------------------------------------------- long run --

def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _measure(manifest, category):
    """Run in a fresh process: load each case of the category (written by the
    parent, listed in the manifest); print the worst time and the worst RSS
    growth of one case: its peak resident set (VmHWM, reset before each case
    through /proc/self/clear_refs) less the resident set before it."""
    with open(manifest) as f:
        spec = json.load(f)

    def target(kind, t):
        return Path(t) if kind == "model" else (Path(t[0]), Path(t[1]))
    mine = [(kind, target(kind, t)) for cat, kind, t in spec["cases"] if cat == category]
    intact = {k: target(k, t) for k, t in spec["intact"].items()}
    expect = spec["expect"]
    _run(mine[0][0], intact[mine[0][0]], expect[mine[0][0]])   # warm-up on the intact file
    worst, grew, failures = 0.0, 0, []
    for kind, t in mine:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")   # VmHWM := VmRSS
        before = _status_kb("VmRSS")
        t0 = time.perf_counter()
        problem = _run(kind, t, expect[kind])
        worst = max(worst, time.perf_counter() - t0)
        grew = max(grew, (_status_kb("VmHWM") - before) * 1024)
        if problem:
            failures.append(f"{t}: {problem}")
    print(json.dumps({"category": category, "cases": len(mine), "max_seconds": worst,
                      "rss_growth_bytes": grew, "failures": failures[:10]}))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzzlong")
    cases, expect = _all_cases(d)
    path = d / "manifest.json"
    path.write_text(json.dumps({"cases": [(c, k, str(t) if k == "model" else list(map(str, t)))
                                          for c, k, t in cases], "expect": expect,
                                "intact": {"model": str(d / "good.npz"),
                                           "data": [str(d / "intact"), str(d / "intact")]}}))
    return path


@pytest.mark.skipif(not LONG, reason="set FASTCNN_FUZZ_LONG=1 for the long run")
@pytest.mark.parametrize("category", CATEGORIES)
def test_long_run_each_category_in_its_own_process(category, manifest):
    out = subprocess.run([sys.executable, __file__, str(manifest), category], text=True,
                         capture_output=True, timeout=1800,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n{category:20s} {result['cases']:5d} cases  max {result['max_seconds']:.4f} s  "
          f"RSS +{result['rss_growth_bytes'] / 2 ** 20:.1f} MiB")
    assert not result["failures"], result["failures"]
    assert result["rss_growth_bytes"] < MEMORY_BOUND


if __name__ == "__main__":
    _measure(sys.argv[1], sys.argv[2])
