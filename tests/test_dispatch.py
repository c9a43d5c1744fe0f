"""Run-time CPU dispatch: ``DLFR_SIMD`` picks the kernels, and every level agrees.

A wheel is built with portable flags; the C kernels exist in a generic build
and in AVX2 and AVX-512 builds (x86-64) or a NEON build (aarch64) chosen at
import from what the CPU has, or a lower level named by the environment
variable ``DLFR_SIMD``. The choice is
made once, at import, so each level runs in a subprocess of its own, which
saves its outputs for the comparison here.

The last test reads the compiled module's machine code: outside the functions
built for AVX2 or AVX-512 (names ending ``_avx2``/``_avx512``) no instruction
may need AVX, or the wheel would crash on a CPU without it before the
dispatch could choose the generic kernels.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

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

#: Computes every compared output under the SIMD level the environment asks
#: for, on one thread (so the thread count cannot change the summation order).
SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import dlfr
    from dlfr import _kernels, kernels
    from dlfr.datasets import load_mnist

    out = {"simd_in_use": np.array(dlfr.show_config(mode="dicts")["simd_in_use"]),
           "simd_supported": np.array(dlfr.show_config(mode="dicts")["simd_supported"]),
           "gemm_wide": np.array(_kernels.gemm_wide())}
    X_all, y_all = load_mnist()
    for dtype in ("float32", "float64"):
        # Every float from far below to far above the sigmoid's saturation,
        # crossing each vector width's remainder loop.
        z = np.concatenate([np.linspace(-120, 120, 20011), [0.0, -0.0, 1e-30, -1e-30]])
        out[f"sigmoid/{dtype}"] = kernels.sigmoid(z.astype(dtype))
        rng = np.random.default_rng(0)
        X = X_all[:257].astype(dtype)
        W = (rng.standard_normal((784, 16)) * 0.05).astype(dtype)
        b = rng.standard_normal(16).astype(dtype)
        out[f"dense/{dtype}"] = kernels.dense(X, W, b, activation="sigmoid")
        net = dlfr.Network([784, 16, 10], dtype=dtype, seed=0)
        out[f"forward/{dtype}"] = net.forward(X_all[:1000])
        out[f"wide/{dtype}"] = dlfr.Network([784, 256, 80, 10], dtype=dtype,
                                             seed=1).forward(X_all[:301])
        net.fit(X_all[:1000], y_all[:1000], epochs=1, batch_size=10, learning_rate=3.0, seed=0)
        out[f"trained/{dtype}"] = np.concatenate(
            [a.ravel() for layer in net.layers for a in (layer.W, layer.b)])
    np.savez(sys.argv[1], **out)
    """
)


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
        proc = _run(simd, "-c", SCRIPT, str(path), cwd=tmp)
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


def test_sigmoid_is_exact_at_the_ends_at_every_level(outputs):
    for simd in [*LEVELS, "auto"]:
        for dtype in ("float32", "float64"):
            s = outputs[simd][f"sigmoid/{dtype}"]
            assert s[0] >= 0 and s[20010] == 1.0
            assert s[20011] == s[20012] == 0.5


# ---- the machine code: AVX only inside the dispatched functions ----

_FUNCTION = re.compile(r"^[0-9a-f]+ <(?P<name>[^>]+)>:$")
_DISPATCHED = re.compile(r"_(avx2|avx512)(\.|@|$)")
#: ymm/zmm registers, AVX-512 mask registers, or any VEX/EVEX-encoded
#: instruction on xmm registers (their mnemonics start with v: vmovss, vfmadd...).
_NEEDS_AVX = re.compile(r"%[yz]mm\d|%k[0-7]\b|^\s*[0-9a-f]+:\s+v[a-z0-9]+\s.*%xmm")


def _disassembly(path: str) -> str:
    proc = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="the AVX dispatch exists on x86-64 only")
def test_no_avx_outside_the_dispatched_functions():
    objdump = shutil.which("objdump")
    required = os.environ.get("DLFR_TEST_REQUIRE_OBJDUMP") == "1"
    if objdump is None:
        if required:
            pytest.fail("objdump not found and DLFR_TEST_REQUIRE_OBJDUMP=1")
        pytest.skip("objdump not found")
    functions: dict[str, list[str]] = {}
    name = None
    for line in _disassembly(_kernels.__file__).splitlines():
        match = _FUNCTION.match(line)
        if match:
            name = match["name"]
            functions[name] = []
        elif name is not None and _NEEDS_AVX.search(line):
            functions[name].append(line.strip())
    dispatched = [f for f in functions if _DISPATCHED.search(f)]
    if not dispatched:
        # Stripped, or a compiler without the dispatch (MSVC): nothing to tell apart.
        if required:
            pytest.fail(f"no _avx2/_avx512 functions found in {_kernels.__file__}")
        pytest.skip("no _avx2/_avx512 function symbols (stripped, or no dispatch in this build)")
    assert any(functions[f] for f in dispatched), "the AVX builds contain no AVX instructions"
    offenders = {f: lines[:3] for f, lines in functions.items()
                 if lines and not _DISPATCHED.search(f)}
    assert not offenders, f"AVX instructions outside the dispatched functions: {offenders}"
