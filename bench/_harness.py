"""A small benchmark harness: validate first, then time contenders interleaved.

Usage (see bench_gemm.py):

    h = Harness("gemm", argv=sys.argv)          # prints command line + machine info
    case = h.case("1024x1024x1024 t=1", flops=2 * 1024**3, reference=want)
    case.add("ours", run_ours, setup=lambda: fastcnn.set_num_threads(1))
    case.add("numpy", run_numpy, setup=...)
    case.run()                                  # validate each, then time round-robin
    h.finish()                                  # table + JSON under bench/results/

How a case is timed:
  * every contender's result is first compared with the reference (a float64
    answer); a contender that disagrees is reported and not timed;
  * each contender gets a batch size so one sample lasts about `sample_s`;
  * samples are taken round-robin (A B C A B C ...) so slow drifts and other
    processes on the machine hit every contender alike, and `setup()` (e.g.
    the thread count) runs before every sample;
  * between samples the harness sleeps `settle_s`, so worker threads of the
    previous contender that still spin do not steal cores from the next one
    (measured here: OpenBLAS's idle threads keep spinning for 0.15-0.3 s after
    its last call; a fastcnn GEMM started 0.15 s after one ran at 2/3 speed);
  * reported: median seconds per call, the spread (min..max) over the
    samples, rate (e.g. GFLOP/s) and the ratio to the first contender.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

# the machine description every bench script prints (CPU, SIMD path, threads, BLAS)
from fastcnn.bench import cpu_model, machine_info  # noqa: F401

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


@dataclass
class Contender:
    name: str
    run: Callable[[], object]                 # one call; returns the result to validate
    setup: Callable[[], None] | None = None   # runs before every sample (threads, ISA)
    seconds: list = field(default_factory=list)  # per-call time of each sample
    error: str | None = None


class Case:
    def __init__(self, harness: "Harness", name: str, work: float, unit: str,
                 reference, rtol: float, atol: float, params: dict):
        self.harness, self.name, self.work, self.unit = harness, name, work, unit
        self.reference, self.rtol, self.atol, self.params = reference, rtol, atol, params
        self.contenders: list[Contender] = []

    def add(self, name: str, run: Callable[[], object],
            setup: Callable[[], None] | None = None) -> None:
        self.contenders.append(Contender(name, run, setup))

    def _validate(self, c: Contender) -> None:
        if c.setup:
            c.setup()
        got = np.asarray(c.run(), dtype=np.float64)
        want = np.asarray(self.reference, dtype=np.float64)
        if got.shape != want.shape:
            c.error = f"shape {got.shape} != {want.shape}"
        elif not np.allclose(got, want, rtol=self.rtol, atol=self.atol, equal_nan=True):
            c.error = f"max abs error {np.max(np.abs(got - want)):.3g} > atol {self.atol:.3g}"

    def _batch(self, c: Contender) -> int:
        """Calls per sample so a sample lasts about sample_s (at least 1)."""
        if c.setup:
            c.setup()
        c.run()  # warm up: page in buffers, spin up threads
        n, t = 1, 0.0
        while True:
            t0 = time.perf_counter()
            for _ in range(n):
                c.run()
            t = time.perf_counter() - t0
            if t >= self.harness.sample_s / 4 or n >= 1 << 20:
                break
            n *= 2
        return max(1, int(n * self.harness.sample_s / max(t, 1e-9)))

    def run(self) -> None:
        h = self.harness
        for c in self.contenders:
            self._validate(c)
        live = [c for c in self.contenders if c.error is None]
        batches = {c.name: self._batch(c) for c in live}
        for _ in range(h.repeats):
            for c in live:
                time.sleep(h.settle_s)
                if c.setup:
                    c.setup()
                n = batches[c.name]
                t0 = time.perf_counter()
                for _ in range(n):
                    c.run()
                c.seconds.append((time.perf_counter() - t0) / n)
        h.record(self)


class Harness:
    def __init__(self, name: str, argv=None, repeats: int = 7, sample_s: float = 0.1,
                 settle_s: float = 0.4):
        self.name, self.repeats, self.sample_s, self.settle_s = name, repeats, sample_s, settle_s
        self.rows: list[dict] = []
        self.info = machine_info()
        env = " ".join(f"{k}={os.environ[k]}" for k in ("PYTHONPATH", "OMP_NUM_THREADS",
                                                        "FASTCNN_ISA") if k in os.environ)
        self.command = (env + " " if env else "") + " ".join(argv if argv is not None else sys.argv)
        print(f"$ {self.command}")
        fc = self.info.get("fastcnn", {})
        print(f"cpu: {self.info['cpu']} ({self.info['logical_cpus']} logical CPUs); "
              f"load average at start: {self.info.get('loadavg_at_start')}")
        if isinstance(fc, dict):
            print(f"fastcnn: simd={fc.get('simd')} (paths this CPU runs: "
                  f"{', '.join(fc.get('isas_supported', []))}) "
                  f"threads={fc.get('num_threads')} "
                  f"compiler={fc.get('compiler')} flags={fc.get('cxx_flags')}")
        print(f"numpy {self.info['numpy']}; blas: {self.info.get('blas')}")
        print(f"timing: {repeats} interleaved samples of ~{sample_s}s per contender, "
              f"{settle_s}s settle pause; median [min..max] over samples\n")

    def case(self, name: str, *, work: float, unit: str = "GFLOP/s", reference,
             rtol: float = 1e-4, atol: float = 1e-4, params: dict | None = None) -> Case:
        return Case(self, name, work, unit, reference, rtol, atol, params or {})

    def record(self, case: Case) -> None:
        base = None
        for c in case.contenders:
            row = {"case": case.name, "contender": c.name, **case.params}
            if c.error:
                row["error"] = c.error
                print(f"{case.name:34s} {c.name:24s} INVALID: {c.error}")
                self.rows.append(row)
                continue
            med = statistics.median(c.seconds)
            rate = lambda s: case.work / s / 1e9  # noqa: E731
            row.update(median_s=med, min_s=min(c.seconds), max_s=max(c.seconds),
                       samples=len(c.seconds), unit=case.unit, rate_median=rate(med),
                       rate_best=rate(min(c.seconds)), rate_worst=rate(max(c.seconds)))
            if base is None:
                base = med
            row["ratio_vs_first"] = base / med
            self.rows.append(row)
            print(f"{case.name:34s} {c.name:24s} {rate(med):8.1f} {case.unit} "
                  f"[{row['rate_worst']:6.1f} ..{row['rate_best']:6.1f}]  "
                  f"{med * 1e3:9.3f} ms  x{base / med:5.2f}")
        sys.stdout.flush()

    def finish(self, summary: list[str] | None = None) -> str:
        """Write the JSON file and return its path."""
        os.makedirs(RESULTS_DIR, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = os.path.join(RESULTS_DIR, f"{self.name}-{stamp}.json")
        try:
            load_end = os.getloadavg()
        except OSError:
            load_end = None
        with open(path, "w") as f:
            json.dump({"command": self.command, "machine": self.info, "results": self.rows,
                       "summary": summary or [], "loadavg_at_end": load_end}, f, indent=1,
                      default=str)
        print(f"\nload average at end: {load_end}")
        print(f"results written to {os.path.relpath(path)}")
        return path
