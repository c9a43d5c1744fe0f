"""Run-time CPU dispatch: ``DLFR_SIMD`` picks the kernels, and every level agrees.

A wheel is built with portable flags; the C kernels exist in a generic build
and in AVX2 and AVX-512 builds (x86-64) or a NEON build (aarch64) chosen at
import from what the CPU has, or a lower level named by the environment
variable ``DLFR_SIMD``. The choice is
made once, at import, so each level runs in a subprocess of its own, which
saves its outputs for the comparison here.

The compiled layer is several extension modules (``_kernels.MODULES``); the
C kernels, with their dispatch table, are linked into ``_dispatch`` alone,
and the others call them through it. So a level ``select_simd`` sets is the
one every module runs, which is tested here on each module's results; and
from their symbols, that every piece of process-wide state (the dispatch
table, the thread cap, BLAS's piece size) is defined in one module only.

The last tests read the compiled modules' machine code: outside the functions
built for AVX2 or AVX-512 (names ending ``_avx2``/``_avx512``) no instruction
may need AVX, or the wheel would crash on a CPU without it before the
dispatch could choose the generic kernels.
"""

from __future__ import annotations

import importlib
import itertools
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import level_outputs
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import dlfr
from dlfr import _kernels

LEVELS = ["generic", "avx2", "avx512", "neon"]
#: Each architecture's levels, lowest first; generic is in every family. A
#: request runs the best level the CPU has that is not above it in its own
#: family, and a level of another family (neon on x86-64, avx2 on aarch64)
#: runs generic.
FAMILIES = [["generic", "avx2", "avx512"], ["generic", "neon"]]

#: Agreement between SIMD levels. The exp polynomial is the same at every
#: level, but the AVX builds contract a*b+c into FMAs and the GEMM sums in a
#: different order with each vector width, so results differ by rounding:
#: a few ulp elementwise, more after 784-term dot products, and a training
#: epoch (100 SGD steps) lets those differences grow a little further.
TOL = {
    "sigmoid": {"float32": {"rtol": 4e-7, "atol": 1e-38},
                "float64": {"rtol": 1e-15, "atol": 1e-300}},
    "dense": {"float32": {"rtol": 1e-5, "atol": 1e-6},
              "float64": {"rtol": 1e-13, "atol": 1e-14}},
    "forward": {"float32": {"rtol": 1e-5, "atol": 1e-6},
                "float64": {"rtol": 1e-13, "atol": 1e-14}},
    # layers over 64 units: AVX-512's wide kernel against BLAS elsewhere
    "wide": {"float32": {"rtol": 1e-5, "atol": 1e-6},
             "float64": {"rtol": 1e-13, "atol": 1e-14}},
    "trained": {"float32": {"rtol": 3e-5, "atol": 3e-6},
                "float64": {"rtol": 1e-12, "atol": 1e-13}},
}

#: Computes every compared output under the SIMD level in use (see its docstring).
LEVEL_OUTPUTS = Path(__file__).with_name("level_outputs.py")


def _env(simd: str | None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("DLFR_SIMD", None)
    if simd is not None:
        env["DLFR_SIMD"] = simd
    return env


def _run(simd: str | None, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=_env(simd), cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """Each level's outputs, computed in a fresh interpreter per level."""
    tmp = tmp_path_factory.mktemp("dispatch")
    results = {}
    for simd in [*LEVELS, "auto"]:
        path = tmp / f"{simd}.npz"
        proc = _run(simd, str(LEVEL_OUTPUTS), str(path), cwd=tmp)
        assert proc.returncode == 0, f"DLFR_SIMD={simd}:\n{proc.stderr}"
        with np.load(path) as data:
            results[simd] = {k: data[k] for k in data.files}
    return results


def _expected_level(requested: str, supported: str) -> str:
    if requested == "auto":
        return supported
    for family in FAMILIES:
        if requested in family and supported in family:
            return family[min(family.index(requested), family.index(supported))]
    return "generic"


@pytest.mark.parametrize(("requested", "supported", "expected"), [
    ("avx512", "avx2", "avx2"), ("avx2", "avx512", "avx2"), ("avx2", "generic", "generic"),
    ("neon", "avx512", "generic"), ("neon", "avx2", "generic"), ("neon", "neon", "neon"),
    ("avx2", "neon", "generic"), ("avx512", "neon", "generic"), ("generic", "neon", "generic"),
    ("auto", "neon", "neon"), ("auto", "avx2", "avx2")])
def test_the_selection_rule(requested, supported, expected):
    assert _expected_level(requested, supported) == expected


def test_select_simd_follows_the_rule():
    """Every level asked of the C dispatch directly, in this process (put back after)."""
    supported = _kernels.build_info()["simd_supported"]
    in_use = _kernels.build_info()["simd_in_use"]
    names = {v: k for k, v in _kernels.SIMD_LEVELS.items()}
    try:
        for name, level in _kernels.SIMD_LEVELS.items():
            got = names[_kernels.select_simd(level)]
            assert got == _expected_level(name, supported), name
            assert _kernels.build_info()["simd_in_use"] == got
        assert names[_kernels.select_simd(-1)] == "generic"
        assert names[_kernels.select_simd(1000)] == supported
    finally:
        _kernels.select_simd(_kernels.SIMD_LEVELS[in_use])
    assert _kernels.build_info()["simd_in_use"] == in_use


def _require_level(outputs, simd: str) -> None:
    """Skip, saying so, when this CPU lacks the level (it ran generic instead)."""
    in_use = str(outputs[simd]["simd_in_use"])
    if simd != "auto" and in_use != simd:
        pytest.skip(f"DLFR_SIMD={simd}: this CPU/build has up to "
                    f"{outputs[simd]['simd_supported']}, so {in_use} ran (nothing to compare)")


@pytest.mark.parametrize("simd", [*LEVELS, "auto"])
def test_environment_selects_the_level(outputs, simd):
    supported = str(outputs[simd]["simd_supported"])
    assert supported in LEVELS
    assert str(outputs[simd]["simd_in_use"]) == _expected_level(simd, supported)


@pytest.mark.parametrize("simd", [*LEVELS, "auto"])
def test_own_gemm_at_every_width_above_generic(outputs, simd):
    assert bool(outputs[simd]["gemm_wide"]) == (str(outputs[simd]["simd_in_use"]) != "generic")


def test_generic_is_always_available(outputs):
    assert str(outputs["generic"]["simd_in_use"]) == "generic"


def test_this_process_uses_what_the_environment_asked_for():
    info = dlfr.show_config(mode="dicts")
    requested = os.environ.get("DLFR_SIMD", "").strip().lower() or "auto"
    assert info["simd_in_use"] == _expected_level(requested, info["simd_supported"])


@pytest.mark.parametrize("value", ["sse9", "AVX3", "native", "1"])
def test_invalid_value_fails_import_and_names_the_variable(tmp_path, value):
    proc = _run(value, "-c", "import dlfr", cwd=tmp_path)
    assert proc.returncode != 0
    assert "DLFR_SIMD" in proc.stderr
    assert repr(value.lower()) in proc.stderr
    assert "'generic'" in proc.stderr
    assert "'neon'" in proc.stderr


@pytest.mark.parametrize("spelling", ["", "auto", " AVX2 ", "Generic", "NEON", "avx512"])
def test_spellings(tmp_path, spelling):
    code = "import dlfr; print(dlfr.show_config(mode='dicts')['simd_in_use'])"
    proc = _run(spelling, "-c", code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    supported = _kernels.build_info()["simd_supported"]
    requested = spelling.strip().lower() or "auto"
    assert proc.stdout.strip() == _expected_level(requested, supported)


@pytest.mark.parametrize("simd", [*LEVELS[1:], "auto"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("what", list(TOL))
def test_levels_agree_with_generic(outputs, simd, dtype, what):
    _require_level(outputs, simd)
    key = f"{what}/{dtype}"
    generic, other = outputs["generic"][key], outputs[simd][key]
    assert generic.dtype == other.dtype == np.dtype(dtype)
    assert np.isfinite(generic).all()
    np.testing.assert_allclose(other, generic, **TOL[what][dtype])


def test_select_simd_reaches_every_compiled_module(outputs):
    """After select_simd, the kernels of _ops, _engine and _trainer compute,
    bit for bit, what a process started at that level computes, at each
    level this CPU has (up to the session's DLFR_SIMD); and the levels' results
    differ, so each module's result shows the level it ran. A module with
    its own copy of the C kernels would keep its own level and fail here."""
    started = _kernels.build_info()["simd_in_use"]
    levels = [simd for simd in LEVELS if str(outputs[simd]["simd_in_use"]) == simd
              and _kernels.SIMD_LEVELS[simd] <= _kernels.SIMD_LEVELS[started]]
    if len(levels) < 2:
        pytest.skip(f"levels {levels} only (this CPU/build, DLFR_SIMD): nothing to tell apart")
    keys = [key for key in outputs["generic"] if "/" in key]
    for a, b in itertools.combinations(levels, 2):
        for key in keys:
            assert not np.array_equal(outputs[a][key], outputs[b][key]), (key, a, b)
    try:
        for simd in levels:
            assert _kernels.select_simd(_kernels.SIMD_LEVELS[simd]) == _kernels.SIMD_LEVELS[simd]
            with threadpool_limits(1):
                here = level_outputs.compute()
            assert str(here["simd_in_use"]) == simd
            for key in keys:
                np.testing.assert_array_equal(here[key], outputs[simd][key],
                                              err_msg=f"{key} at {simd}")
    finally:
        _kernels.select_simd(_kernels.SIMD_LEVELS[started])


def test_sigmoid_is_exact_at_the_ends_at_every_level(outputs):
    for simd in [*LEVELS, "auto"]:
        for dtype in ("float32", "float64"):
            s = outputs[simd][f"sigmoid/{dtype}"]
            assert s[0] >= 0 and s[20010] == 1.0
            assert s[20011] == s[20012] == 0.5


# ---- the machine code: the C kernels in one module, AVX only inside them ----

def _compiled_files() -> dict[str, str]:
    """Each compiled module's file, by module name."""
    return {name: importlib.import_module(f"dlfr.{name}").__file__ for name in _kernels.MODULES}


def _objdump(*args: str) -> str:
    """objdump's output, or skip (fail under DLFR_TEST_REQUIRE_OBJDUMP=1) without it."""
    if shutil.which("objdump") is None:
        if os.environ.get("DLFR_TEST_REQUIRE_OBJDUMP") == "1":
            pytest.fail("objdump not found and DLFR_TEST_REQUIRE_OBJDUMP=1")
        pytest.skip("objdump not found")
    proc = subprocess.run(["objdump", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


#: Process-wide state, by the symbols that hold it, and the one module that
#: may define them: the C kernels (dlfr_*, _simd.c and _finite.h) with their
#: dispatch table and level, the thread cap (_dispatch), BLAS's piece size (_blas).
#: (A leading underscore: Mach-O's spelling of a C name.)
_STATE = {
    "the C kernels": (r"^_?dlfr_\w+$", "_dispatch"),
    "the dispatch table": (r"^_?table$", "_dispatch"),
    "the SIMD level": (r"^_?level_in_use$", "_dispatch"),
    "the thread cap": (r"_THREAD_CAP_$", "_dispatch"),
    "BLAS's piece size": (r"_BLAS_MAX_ROWS$", "_blas"),
}


def _defined_symbols(path: str) -> set[str]:
    """Names of the symbols this shared object defines (objdump -t)."""
    names = set()
    for line in _objdump("-t", path).splitlines():
        fields = line.split()
        if len(fields) >= 4 and "*UND*" not in fields and re.fullmatch(r"[0-9a-f]+", fields[0]):
            names.add(fields[-1])
    return names


@pytest.mark.skipif(platform.system() == "Windows", reason="objdump reads ELF and Mach-O")
def test_process_wide_state_is_defined_in_one_module():
    """Each piece of process-wide state exists once: other modules reach it
    through the cdef functions of its module's .pxd, never a copy."""
    files = _compiled_files()
    symbols = {name: _defined_symbols(path) for name, path in files.items()}
    if not any(symbols.values()):
        if os.environ.get("DLFR_TEST_REQUIRE_OBJDUMP") == "1":
            pytest.fail("no symbols in the compiled modules (stripped?)")
        pytest.skip("the compiled modules are stripped: no symbols to read")
    for what, (pattern, owner) in _STATE.items():
        holders = {name for name, names in symbols.items()
                   if any(re.search(pattern, n) for n in names)}
        assert holders == {owner}, f"{what} defined in {sorted(holders)}, not in {owner} alone"


def test_every_compiled_file_is_a_listed_module():
    """The guards here cover every extension in the package: _kernels.MODULES
    lists them all (an extension it does not list, e.g. one left from an
    older build, would escape them, and a stale _kernels extension would
    shadow _kernels.py)."""
    package = Path(dlfr.__file__).parent
    found = {path.name.split(".")[0] for path in package.iterdir()
             if path.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))}
    assert found == set(_kernels.MODULES), f"delete stale builds: {sorted(found)}"


_FUNCTION = re.compile(r"^[0-9a-f]+ <(?P<name>[^>]+)>:$")
_DISPATCHED = re.compile(r"_(avx2|avx512)(\.|@|$)")
#: ymm/zmm registers, AVX-512 mask registers, or any VEX/EVEX-encoded
#: instruction on xmm registers (their mnemonics start with v: vmovss, vfmadd...).
_NEEDS_AVX = re.compile(r"%[yz]mm\d|%k[0-7]\b|^\s*[0-9a-f]+:\s+v[a-z0-9]+\s.*%xmm")


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="the AVX dispatch exists on x86-64 only")
def test_no_avx_outside_the_dispatched_functions():
    """In every compiled module (the AVX builds are all in _dispatch)."""
    required = os.environ.get("DLFR_TEST_REQUIRE_OBJDUMP") == "1"
    functions: dict[tuple[str, str], list[str]] = {}
    for module, path in _compiled_files().items():
        key = None
        for line in _objdump("-d", "--no-show-raw-insn", path).splitlines():
            match = _FUNCTION.match(line)
            if match:
                key = (module, match["name"])
                functions[key] = []
            elif key is not None and _NEEDS_AVX.search(line):
                functions[key].append(line.strip())
    dispatched = [key for key in functions if _DISPATCHED.search(key[1])]
    if not dispatched:
        # Stripped, or a compiler without the dispatch (MSVC): nothing to tell apart.
        if required:
            pytest.fail(f"no _avx2/_avx512 functions found in {_compiled_files()}")
        pytest.skip("no _avx2/_avx512 function symbols (stripped, or no dispatch in this build)")
    assert {module for module, _ in dispatched} == {"_dispatch"}, dispatched
    assert any(functions[key] for key in dispatched), "the AVX builds contain no AVX instructions"
    offenders = {f"{module}: {name}": lines[:3] for (module, name), lines in functions.items()
                 if lines and not _DISPATCHED.search(name)}
    assert not offenders, f"AVX instructions outside the dispatched functions: {offenders}"
