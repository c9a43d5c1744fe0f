"""The C harness tests/c/simd_check.c: every kernel of every SIMD level this
CPU has against the generic kernels, built with the host C compiler straight
from the sources (no Python in between), and the one kernel list in _simd.h
against the Cython declarations in _simd.pxd.

.ci/run also cross-compiles the harness for aarch64 and runs it under
qemu-aarch64, which checks the NEON level on an x86-64 machine.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "src" / "dlfr"
HARNESS = ROOT / "tests" / "c" / "simd_check.c"
#: As setup.py's (no OpenMP runtime: `omp simd` hints only).
FLAGS = ["-O3", "-std=c11", "-ffp-contract=fast", "-fno-trapping-math", "-fopenmp-simd",
         "-DDLFR_OMP_SIMD=1"]

pytestmark = pytest.mark.skipif(not (SOURCES / "_simd.c").exists() or not HARNESS.exists(),
                                reason="the C sources are not next to the tests")


def _compiler() -> list[str] | None:
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(shlex.split(candidate)[0]):
            return shlex.split(candidate)
    return None


def test_every_level_agrees_with_generic(tmp_path):
    cc = _compiler()
    if cc is None:
        pytest.skip("no C compiler found (CC, cc, gcc, clang)")
    exe = tmp_path / "simd_check"
    build = subprocess.run([*cc, f"-I{SOURCES}", *FLAGS, str(HARNESS), str(SOURCES / "_simd.c"),
                            "-lm", "-o", str(exe)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    last = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed, \d+ failed", last), run.stdout
    assert run.returncode == 0 and last.endswith(" 0 failed"), run.stdout + run.stderr
    assert int(last.split()[0]) > 0
    assert "generic  f64 gemm" in run.stdout


def _kernel_names() -> list[str]:
    header = (SOURCES / "_simd.h").read_text()
    body = header[header.index("#define DLFR_KERNELS"):header.index("DLFR_RETURN_void")]
    return re.findall(r"X\(REAL, S, \w+, (\w+),", body)


def test_every_kernel_in_the_list_is_declared_for_cython():
    names = _kernel_names()
    assert "sigmoid" in names and "gemm" in names and len(names) == len(set(names))
    pxd = (SOURCES / "_simd.pxd").read_text()
    declared = set(re.findall(r"\bdlfr_(\w+)_(f32|f64)\(", pxd))
    missing = [(n, s) for n in names for s in ("f32", "f64") if (n, s) not in declared]
    assert not missing, f"in DLFR_KERNELS but not in _simd.pxd: {missing}"
    extra = {n for n, _ in declared} - set(names)
    assert not extra, f"in _simd.pxd but not in DLFR_KERNELS: {sorted(extra)}"
