"""Benchmarks whose samples run in fresh processes (bench_mpi.py, bench_builds.py):
the worker prints its figures as one JSON line, the parent runs it and reads them.
Imports nothing of fastcnn, so a worker can load whichever build it was pointed at."""
from __future__ import annotations

import json
import subprocess


def emit_result(obj):
    """In a worker process: hand obj (JSON) to the parent (see run_for_result)."""
    print("RESULT " + json.dumps(obj), flush=True)


def run_for_result(cmd, env=None, timeout=900):
    """Run the worker process cmd; return the object it passed to emit_result. A
    failed worker raises RuntimeError with the command and its output."""
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr}")
    line = next((l for l in r.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{' '.join(cmd)} printed no RESULT line:\n{r.stdout}\n{r.stderr}")
    return json.loads(line[len("RESULT "):])
