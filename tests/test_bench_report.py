"""benchmarks/report.py on small made-up pytest-benchmark files: ratios, levels, headline."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "report.py"
_spec = importlib.util.spec_from_file_location("bench_report", _PATH)
assert _spec and _spec.loader
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)


def bench(group: str, impl: str, median: float, **extra: object) -> dict:
    return {"group": group, "name": f"test[{impl}]", "extra_info": {"impl": impl, **extra},
            "stats": {"median": median, "rounds": 7}}


def run_file(level: str | None, speed: float = 1.0) -> dict:
    """One run: an inference group and a kernel group at `level` (None: before levels)."""
    suffix = f" simd={level}" if level else ""
    extra = {"simd": level} if level else {}
    inference = f"inference 784-16-10 batch=16 float32 threads=1{suffix}"
    kernel = f"sigmoid n=10M float32{suffix}"
    benchmarks = [
        bench(inference, "numpy", 10e-6, threads=1, **extra),
        bench(inference, "dlfr", 2e-6 * speed, threads=1, **extra),
        bench(inference, "onnxruntime", 5e-6, threads=1, **extra),
        bench(kernel, "numpy", 20e-3, threads=1, **extra),
        bench(kernel, "dlfr", 5e-3 * speed, threads=1, **extra),
    ]
    machine: dict = {"machine": "x86_64", "system": "Linux", "python_version": "3.11.7"}
    if level:
        machine["dlfr"] = {
            "simd_levels": [level], "simd_available": ["generic", "avx2"],
            "cpu_model": "Test CPU 9000", "numpy": "2.4.6", "commit": "abc123",
            "thread_pools": [{"user_api": "blas", "internal_api": "openblas",
                              "version": "0.3.31", "architecture": "Haswell",
                              "filepath": "/x/libopenblas.so"}],
            "command": f"python -m pytest benchmarks --simd {level}",
        }
    return {"datetime": "2026-12-01T00:00:00", "machine_info": machine,
            "commit_info": {"id": "abc123", "dirty": False}, "benchmarks": benchmarks}


def test_one_file_before_levels_keeps_the_one_table_per_group() -> None:
    text = report.report([("old.json", run_file(None))])
    assert "### sigmoid n=10M float32 (threads: 1)" in text
    assert "| entry | median | rounds | speed-up vs numpy |" in text
    assert "| dlfr | 5 ms | 7 | 4.00x |" in text
    assert "| numpy | 10 µs | 7 | 1.00x |" in text
    assert "Commit: abc123" in text


def test_levels_side_by_side_with_ratios_within_each_level() -> None:
    files = [("avx2.json", run_file("avx2")), ("generic.json", run_file("generic", speed=2.0))]
    text = report.report(files, command="python benchmarks/report.py avx2.json generic.json")
    assert "SIMD levels: avx2, generic" in text and "CPU Test CPU 9000" in text
    assert "numpy 2.4.6; BLAS: openblas 0.3.31 Haswell (libopenblas.so)" in text
    assert "python -m pytest benchmarks --simd avx2  # wrote avx2.json" in text
    assert "python benchmarks/report.py avx2.json generic.json" in text
    assert "### sigmoid n=10M float32 (threads: 1; simd: avx2, generic)" in text
    assert "| entry | avx2 median | avx2 vs numpy | generic median | generic vs numpy |" in text
    assert "| dlfr | 5 ms | 4.00x | 10 ms | 2.00x |" in text
    # the headline: dlfr against NumPy and ONNX Runtime, per level
    assert "| 784-16-10 | 16 | 1 | 5.00x | 2.50x | 2.50x | 1.25x |" in text


def test_the_same_onnx_file_table() -> None:
    data = run_file("avx2")
    group = "onnx file 784-256-128-10 batch=4096 float32 threads=2 simd=avx2"
    data["benchmarks"] += [bench(group, "numpy", 9e-3, threads=2, simd="avx2"),
                           bench(group, "onnxruntime", 6e-3, threads=2, simd="avx2"),
                           bench(group, "dlfr", 4e-3, threads=2, simd="avx2")]
    text = report.report([("avx2.json", data)])
    assert "**The same .onnx file, float32**" in text
    assert "| 784-256-128-10 | 4096 | 2 | 1.50x |" in text  # 6 ms / 4 ms
    assert text.index("**The same .onnx file") < text.index(f"### {group[:-10]}")
    assert "The same .onnx file" not in report.report([("avx2.json", run_file("avx2"))])


def test_main_headline_and_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for level in ("avx2", "generic"):
        (tmp_path / f"{level}.json").write_text(json.dumps(run_file(level)))
    paths = [str(tmp_path / "avx2.json"), str(tmp_path / "generic.json")]
    report.main([*paths, "--headline"])
    out = capsys.readouterr().out
    assert out.count("| 784-16-10 |") == 1 and "###" not in out
    report.main([*paths, "--out", str(tmp_path / "perf.md")])
    assert capsys.readouterr().out == ""
    text = (tmp_path / "perf.md").read_text(encoding="utf-8")
    assert text.startswith("# Performance\n") and "do not edit by hand" in text
    assert "## Benchmarks per SIMD level" in text and "--out" in text
