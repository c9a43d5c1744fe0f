"""Shared test setup: the dtypes every suite runs in, and the kernel and
network suites at every SIMD level.

Test modules import the shared parametrisation (``from conftest import
DTYPES, dtype_id``); pytest puts this folder on ``sys.path``.

``simd_level`` runs each test of a module that asks for it (``pytestmark``)
once per SIMD level dlfr knows, in this process: ``_kernels.select_simd``
swaps the kernel table, the test runs, and the level the session started
with comes back. A level this CPU lacks is skipped, saying so (selecting it
would silently run a lower one). ``DLFR_SIMD`` still caps the session: a
level above it is skipped too, so ``DLFR_SIMD=generic`` runs generic alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlfr import _kernels

#: The dtypes of weights and arithmetic; every kernel and network test runs in both.
DTYPES = [np.float32, np.float64]


def dtype_id(dtype) -> str:
    """A parametrised test's id for a dtype: "float32", "int8", ..."""
    return np.dtype(dtype).name


def arch_id(sizes) -> str:
    """A parametrised test's id for layer sizes: "784-16-10"."""
    return "-".join(map(str, sizes))


#: Every level dlfr knows, lowest first per architecture (generic, avx2, ...).
LEVELS = sorted(_kernels.SIMD_LEVELS, key=_kernels.SIMD_LEVELS.__getitem__)


@pytest.fixture(params=LEVELS)
def simd_level(request):
    """Run the test at one SIMD level (see the module docstring)."""
    level = request.param
    started = _kernels.build_info()["simd_in_use"]
    if _kernels.select_simd(_kernels.SIMD_LEVELS[level]) != _kernels.SIMD_LEVELS[level]:
        _kernels.select_simd(_kernels.SIMD_LEVELS[started])
        pytest.skip(f"SIMD level {level}: this CPU/build runs up to {started}")
    if _kernels.SIMD_LEVELS[level] > _kernels.SIMD_LEVELS[started]:
        _kernels.select_simd(_kernels.SIMD_LEVELS[started])
        pytest.skip(f"SIMD level {level}: above the session's {started} (DLFR_SIMD)")
    try:
        yield level
    finally:
        _kernels.select_simd(_kernels.SIMD_LEVELS[started])
