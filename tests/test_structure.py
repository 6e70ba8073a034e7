"""The shape of the code (docs/design.md): imports go one way between the rooms,
no cycle, no import of the package root; files stay small enough to read."""
from __future__ import annotations

import importlib.util
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")
CHECKER = os.path.join(ROOT, "tools", "check_imports.py")
pytestmark = pytest.mark.skipif(not os.path.isdir(os.path.join(SRC, "fastcnn")),
                                reason="needs the source tree (src/fastcnn)")

# Lines per file (docs/design.md, "Sizes").
LIMITS = {".py": 400, ".cpp": 500, ".h": 500}


def _checker():
    spec = importlib.util.spec_from_file_location("check_imports", CHECKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_imports_go_one_way():
    problems, count, n = _checker().check(SRC)
    assert n > 40 and count > 200, "the checker read too little: is src/fastcnn there?"
    assert problems == []


def test_the_checker_finds_a_cycle_an_upward_import_and_the_root(tmp_path):
    """The checker itself, on a made-up package: each kind of offence is reported."""
    pkg = tmp_path / "fastcnn"
    for room in ("nn", "common"):
        (pkg / room).mkdir(parents=True)
        (pkg / room / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "common" / "a.py").write_text("from ..nn import b\n")            # upward
    (pkg / "nn" / "b.py").write_text("def f():\n    from ..nn import c\n")  # b -> c
    (pkg / "nn" / "c.py").write_text("from . import b\nimport fastcnn\n")   # c -> b, root
    problems, _, _ = _checker().check(str(tmp_path))
    text = "\n".join(problems)
    assert "room 'common' imports room 'nn', which is above it" in text
    assert "import cycle: fastcnn.nn.b -> fastcnn.nn.c -> fastcnn.nn.b" in text
    assert "imports the package root" in text


def _sizes(top, exts):
    for folder, _, files in os.walk(top):
        for f in files:
            ext = os.path.splitext(f)[1]
            if ext in exts:
                path = os.path.join(folder, f)
                with open(path, encoding="utf-8") as fh:
                    yield os.path.relpath(path, ROOT), sum(1 for _ in fh), LIMITS[ext]


@pytest.mark.parametrize("top", ["src/fastcnn", "src/cpp", "tests", "bench", "tools", "examples"])
def test_no_file_is_too_long(top):
    long = [(p, n) for p, n, limit in _sizes(os.path.join(ROOT, top), LIMITS) if n > limit]
    assert long == [], f"over the limit of docs/design.md: {long}"
