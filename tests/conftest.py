"""Shared fixtures: thread counts and SIMD paths to run native ops under, and the
MNIST data (whole, or a tiny slice for the CLI's runs) that several files use."""
from __future__ import annotations

import os

import pytest
from cli_cases import _load_tiny

import fastcnn
from fastcnn import _core, datasets


@pytest.fixture(params=[1, 2], ids=lambda n: f"threads{n}")
def threads(request):
    """Run the test with 1 and with 2 threads; restore afterwards. Skipped where
    OMP_THREAD_LIMIT caps the count below the one asked for."""
    before = fastcnn.get_num_threads()
    fastcnn.set_num_threads(request.param)
    if fastcnn.get_num_threads() != request.param:
        fastcnn.set_num_threads(before)
        pytest.skip(f"OMP_THREAD_LIMIT={os.environ.get('OMP_THREAD_LIMIT')} grants "
                    f"{fastcnn.get_num_threads()} threads, not {request.param}")
    yield request.param
    fastcnn.set_num_threads(before)


@pytest.fixture
def keep_threads():
    """Restore the thread count a test (e.g. a CLI run with --threads) changed."""
    before = fastcnn.get_num_threads()
    yield
    fastcnn.set_num_threads(before)


@pytest.fixture
def one_thread():
    """Train on one thread: the machine is shared with other jobs, and two
    threads competing for two busy cores are many times slower; bit-for-bit
    comparisons of training runs stay on one thread throughout. A module takes it
    with pytestmark = pytest.mark.usefixtures("one_thread"). Tests that take the
    `threads` fixture still run with 1 and 2 (it is set up after this one)."""
    before = fastcnn.get_num_threads()
    fastcnn.set_num_threads(1)
    yield
    fastcnn.set_num_threads(before)


@pytest.fixture(scope="module")
def mnist():
    """The bundled MNIST split (training, validation, test), once a module;
    test_network3_mnist.py has its own (network3.load_data_shared)."""
    return datasets.load_mnist()


@pytest.fixture
def tiny_mnist(monkeypatch):
    """datasets.load_mnist replaced by a tiny slice of MNIST (cli_cases.TINY)."""
    monkeypatch.setattr(datasets.idx, "load_mnist", _load_tiny())


# Every SIMD path fastcnn has (the build's list; "generic" first). Paths this
# CPU, OS or build cannot run are still parametrised, and skipped with the
# reason set_isa gives, so a summary shows what did not run and why.
ALL_ISAS = ("generic", "avx2", "avx512")
_RAN_ISAS: set[str] = set()


def _unavailable(name: str) -> str:
    """'' if this process can run path `name`, else set_isa's reason."""
    before = _core.simd_level()
    try:
        _core._set_isa(name)
    except ValueError as e:
        return str(e)
    finally:
        _core._set_isa(before)
    return ""


@pytest.fixture(params=ALL_ISAS)
def isa(request):
    """Run the test on every SIMD path this CPU and build offer (the others are
    skipped, naming what is missing); restore the path afterwards."""
    why = _unavailable(request.param)
    if why:
        pytest.skip(why)
    before = _core.simd_level()
    _core._set_isa(request.param)
    _RAN_ISAS.add(request.param)
    yield request.param
    _core._set_isa(before)


def pytest_report_header(config):
    info = fastcnn.build_info()
    return (f"fastcnn SIMD path in use: {info['simd']}; paths this CPU and build run: "
            f"{', '.join(info['isas_supported'])}")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    info = fastcnn.build_info()
    ran = [name for name in ALL_ISAS if name in _RAN_ISAS]
    missing = [name for name in ALL_ISAS if name not in info["isas_supported"]]
    line = (f"fastcnn: default path {info['simd']}; isa-parametrised tests ran on: "
            f"{', '.join(ran) or 'none'}")
    if missing:
        line += f"; skipped (not runnable here): {', '.join(missing)}"
    terminalreporter.write_line(line)
