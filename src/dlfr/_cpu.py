"""The CPU and the SIMD level of dlfr's kernels, for ``dlfr bench`` and the benchmarks.

Level names come from ``_kernels.SIMD_LEVELS`` (name -> int), never from a
fixed list, so a level another build adds is picked up. A level counts as
available when ``_kernels.select_simd`` asked for it actually runs it (the
call clamps to what the CPU has). Switching swaps the kernel table every
running call reads: do it only while no other thread is inside dlfr.
"""

from __future__ import annotations

import platform
from typing import Any

from . import _kernels

#: Names that ask for the best level this CPU has.
AUTO = ("auto", "best")


def cpu_model() -> str:
    """The CPU's model name: /proc/cpuinfo's "model name" on Linux, else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def simd_in_use() -> str:
    """The name of the SIMD level dlfr's kernels run at now."""
    return str(_kernels.build_info()["simd_in_use"])


def simd_levels() -> list[str]:
    """Every level of ``_kernels.SIMD_LEVELS`` this CPU runs, lowest first.

    Tries each level in turn, then restores the level in use.
    """
    current = simd_in_use()
    available = []
    try:
        for name, value in sorted(_kernels.SIMD_LEVELS.items(), key=lambda item: item[1]):
            _kernels.select_simd(value)
            if simd_in_use() == name:
                available.append(name)
    finally:
        _kernels.select_simd(_kernels.SIMD_LEVELS[current])
    return available


def resolve_simd(name: str) -> str:
    """The level `name` means on this CPU ("auto": the best it has).

    ValueError, one line, for a name ``_kernels.SIMD_LEVELS`` does not hold
    or a level this CPU lacks.
    """
    requested = name.strip().lower()
    available = simd_levels()
    if requested in AUTO:
        return available[-1]
    if requested not in _kernels.SIMD_LEVELS:
        raise ValueError(f"unknown SIMD level {name!r}: choose auto, "
                         f"{', '.join(_kernels.SIMD_LEVELS)}")
    if requested not in available:
        raise ValueError(f"this CPU ({cpu_model()}) cannot run SIMD level {requested!r}; "
                         f"it runs {', '.join(available)}")
    return requested


def use_simd(name: str) -> str:
    """Run dlfr's kernels at level `name` (see resolve_simd); return the level in use."""
    level = resolve_simd(name)
    _kernels.select_simd(_kernels.SIMD_LEVELS[level])
    in_use = simd_in_use()
    if in_use != level:  # select_simd and simd_levels disagree: never expected
        raise RuntimeError(f"asked for SIMD level {level!r}, got {in_use!r}")
    return in_use


def thread_pools() -> list[dict[str, Any]]:
    """threadpoolctl's facts about the BLAS and OpenMP libraries loaded (empty without it)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: pool.get(k) for k in ("user_api", "internal_api", "version", "architecture",
                                       "num_threads", "threading_layer", "filepath")}
            for pool in threadpool_info()]
