"""Benchmark session setup: the SIMD level, one thread per pool, what the JSON records.

SIMD level: ``--simd LEVEL`` runs dlfr's kernels at LEVEL (``auto``: the best
this CPU has; a name from ``dlfr._kernels.SIMD_LEVELS``, e.g. generic, avx2,
avx512; ``all``: every level this CPU has, one after another, each test once
per level). Without it the session keeps the level chosen at import
(``DLFR_SIMD``, else the best). A level the CPU lacks is refused before
anything runs. Every test is parametrized by the level (its id holds the
name), every group name ends with ``simd=LEVEL`` and every benchmark's
extra_info holds ``simd``, so runs at several levels can be merged
(benchmarks/report.py); ``DLFR_SIMD`` is set to the level too, so processes
the session starts (dask workers) run at it.

Threads: the kernel benchmarks compare single-threaded code; threads are
measured separately. threadpoolctl limits every pool already loaded when the
session starts (OpenBLAS behind NumPy, OpenMP behind dlfr's extension), which
collection has imported by then.

The JSON's machine_info gains ``dlfr``: the levels run, the CPU model,
numpy's version, the BLAS/OpenMP pools, the commit (``git rev-parse``) and
the command that ran the session.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from dlfr import _cpu

#: Threads every benchmark in this directory runs with.
THREADS = 1

#: Variables that force a slower OpenBLAS kernel (docs/performance.md says how to measure).
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

#: The SIMD levels this session runs, lowest first (set by pytest_configure).
LEVELS = pytest.StashKey[list[str]]()


def pytest_addoption(parser):
    parser.addoption(
        "--simd", default=None, metavar="LEVEL",
        help="SIMD level of dlfr's kernels: auto (the best this CPU has), all (every level "
        "this CPU has, one after another) or a level name (generic, avx2, avx512, ...); "
        "default: the level chosen at import (DLFR_SIMD, else the best)",
    )


def pytest_configure(config):
    requested = config.getoption("--simd", default=None)
    if requested is None:
        levels = [_cpu.simd_in_use()]
    elif requested.strip().lower() == "all":
        levels = _cpu.simd_levels()
    else:
        try:
            levels = [_cpu.resolve_simd(requested)]
        except ValueError as exc:
            raise pytest.UsageError(f"--simd: {exc}") from None
    config.stash[LEVELS] = levels


def pytest_generate_tests(metafunc):
    if "simd" in metafunc.fixturenames:
        metafunc.parametrize("simd", metafunc.config.stash[LEVELS], indirect=True,
                             scope="session")


@pytest.fixture(scope="session", autouse=True)
def simd(request):
    """The SIMD level dlfr's kernels run at, chosen before the tests of that level run."""
    level = request.param
    saved = os.environ.get("DLFR_SIMD")
    os.environ["DLFR_SIMD"] = level
    assert _cpu.use_simd(level) == level
    yield level
    if saved is None:
        os.environ.pop("DLFR_SIMD", None)
    else:
        os.environ["DLFR_SIMD"] = saved


@pytest.fixture(autouse=True)
def record_simd(request, simd):
    """Each benchmark's extra_info names the SIMD level (tests add the rest)."""
    assert _cpu.simd_in_use() == simd
    if "benchmark" in request.fixturenames:
        request.getfixturevalue("benchmark").extra_info["simd"] = simd


@pytest.fixture(scope="session", autouse=True)
def single_thread():
    """Limit BLAS and OpenMP to THREADS threads for the whole session."""
    with threadpool_limits(limits=THREADS):
        busy = [p for p in threadpool_info() if p["num_threads"] != THREADS]
        assert not busy, f"thread pools not limited to {THREADS}: {busy}"
        yield


def git_commit() -> str | None:
    """``git rev-parse HEAD`` of the checkout these benchmarks are in, "+dirty" if so."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def command_line(config) -> str:
    """The command that ran this session, with the environment variables that matter."""
    env = [f"{name}={shlex.quote(os.environ[name])}"
           for name in ("PYTHONPATH", *OPENBLAS_OVERRIDES) if name in os.environ]
    unset = [f"-u {name}" for name in OPENBLAS_OVERRIDES if name not in os.environ]
    prefix = " ".join(["env", *unset, *env]) + " " if env or unset else ""
    return prefix + shlex.join(["python", "-m", "pytest", *config.invocation_params.args])


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["dlfr"] = {
        "simd_levels": config.stash[LEVELS],
        "simd_available": _cpu.simd_levels(),
        "cpu_model": _cpu.cpu_model(),
        "numpy": numpy.__version__,
        # num_threads left out: this runs after the session's limit is lifted
        "thread_pools": [{k: v for k, v in pool.items() if k != "num_threads"}
                         for pool in _cpu.thread_pools()],
        "commit": git_commit(),
        "command": command_line(config),
        "python_executable": sys.executable,
    }


def pytest_report_header(config):
    lines = [
        f"benchmark threads: {THREADS}",
        f"dlfr SIMD levels: {', '.join(config.stash[LEVELS])} "
        f"(this CPU runs {', '.join(_cpu.simd_levels())}); CPU: {_cpu.cpu_model()}",
    ]
    for pool in threadpool_info():
        lines.append(
            f"  {pool['user_api']}: {pool['internal_api']} {pool.get('version') or ''} "
            f"{pool.get('architecture') or ''} ({pool['filepath']})"
        )
    for name in OPENBLAS_OVERRIDES:
        if name in os.environ:
            lines.append(f"WARNING: {name}={os.environ[name]} forces a slower OpenBLAS kernel")
    return lines
