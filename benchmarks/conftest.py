"""Benchmark session setup: every thread pool limited to one thread.

The kernel benchmarks compare single-threaded code; threads are measured
separately. threadpoolctl limits every pool already loaded when the session
starts (OpenBLAS behind NumPy, OpenMP behind dlfr's extension), which
collection has imported by then.
"""

from __future__ import annotations

import os

import numpy  # noqa: F401  (loads OpenBLAS, so the header can name it)
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

#: Threads every benchmark in this directory runs with.
THREADS = 1

#: Variables that force a slower OpenBLAS kernel (see shared PERFORMANCE notes).
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@pytest.fixture(scope="session", autouse=True)
def single_thread():
    """Limit BLAS and OpenMP to THREADS threads for the whole session."""
    with threadpool_limits(limits=THREADS):
        busy = [p for p in threadpool_info() if p["num_threads"] != THREADS]
        assert not busy, f"thread pools not limited to {THREADS}: {busy}"
        yield


def pytest_report_header(config):
    lines = [f"benchmark threads: {THREADS}"]
    for pool in threadpool_info():
        lines.append(
            f"  {pool['user_api']}: {pool['internal_api']} {pool.get('version') or ''} "
            f"{pool.get('architecture') or ''} ({pool['filepath']})"
        )
    for name in OPENBLAS_OVERRIDES:
        if name in os.environ:
            lines.append(f"WARNING: {name}={os.environ[name]} forces a slower OpenBLAS kernel")
    return lines
