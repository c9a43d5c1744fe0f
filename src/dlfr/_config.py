"""``dlfr.show_config()``: what this build is and what it runs on."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from . import _cpu, _kernels


def config_info() -> dict[str, Any]:
    """Build and run-time facts as a dict (versions, compiler, OpenMP, SIMD, GEMM, BLAS)."""
    import numpy
    import scipy

    from . import __version__, _omp_wait

    try:
        import Cython

        cython_version = Cython.__version__
    except ImportError:  # Cython is a build-time dependency only
        cython_version = "not installed"
    build = _kernels.build_info()
    blas = [
        {k: pool[k] for k in ("internal_api", "version", "num_threads", "architecture",
                              "threading_layer", "filepath")}
        for pool in _cpu.thread_pools()
    ]
    return {
        "dlfr": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "cython": cython_version,
        "compiler": build["compiler"],
        "compile_flags": build["flags"],
        "openmp": build["openmp"],
        "threads": build["max_threads"],
        "omp_wait": ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
                              if k in os.environ) or _omp_wait or "runtime default",
        "simd_supported": build["simd_supported"],
        "simd_in_use": build["simd_in_use"],
        "gemm": build["gemm"],
        "thread_pools": blas,
    }


def show_config(mode: str = "stdout") -> dict[str, Any] | None:
    """Print dlfr's build facts (mode="stdout") or return them (mode="dicts")."""
    info = config_info()
    if mode == "dicts":
        return info
    if mode != "stdout":
        raise ValueError(f"mode must be 'stdout' or 'dicts'; got {mode!r}")
    width = max(map(len, info))
    for key, value in info.items():
        if key == "thread_pools":
            for lib in value:
                pool = ", ".join(f"{k}={v}" for k, v in lib.items())
                print(f"{'thread pool':<{width}} : {pool}")
        else:
            print(f"{key:<{width}} : {value}")
    return None
