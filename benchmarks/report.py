"""Summarise a pytest-benchmark JSON file as one markdown table per group.

Run the kernel benchmarks from the repository root (after building the
extension in place), then the report::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src \\
        python -m pytest benchmarks/test_bench_kernels.py --benchmark-json=bench.json
    python benchmarks/report.py bench.json

(``env -u`` unsets the two variables that force a slower OpenBLAS kernel, for
that command alone.) A plain ``python -m pytest`` never runs the benchmarks:
it only collects ``tests/``.

Each table lists every entry of a group with its median time and its speed-up
over the plain NumPy entry of the same group: ``numpy median / entry median``,
so above 1 is faster than NumPy. Compare ratios measured in one run, never
absolute times across runs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

#: ``extra_info["impl"]`` of the baseline entry in every group.
BASELINE = "numpy"


def format_time(seconds: float) -> str:
    """A duration in s, ms, µs or ns with three significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            return f"{seconds / scale:.3g} {unit}"


def label(bench: dict) -> str:
    return bench.get("extra_info", {}).get("impl") or bench["name"]


def groups(benchmarks: Sequence[dict]) -> dict[str, list[dict]]:
    """Benchmarks by group, groups and entries in the order they ran."""
    grouped: dict[str, list[dict]] = {}
    for bench in benchmarks:
        grouped.setdefault(bench.get("group") or bench["name"], []).append(bench)
    return grouped


def table(group: str, entries: Sequence[dict]) -> str:
    """The markdown table of one group."""
    baseline = next((e for e in entries if label(e) == BASELINE), None)
    threads = sorted({str(e.get("extra_info", {}).get("threads", "?")) for e in entries})
    lines = [
        f"### {group} (threads: {', '.join(threads)})",
        "",
        f"| entry | median | rounds | speed-up vs {BASELINE} |",
        "|---|---:|---:|---:|",
    ]
    for entry in entries:
        stats = entry["stats"]
        ratio = (
            f"{baseline['stats']['median'] / stats['median']:.2f}x" if baseline else "n/a"
        )
        lines.append(
            f"| {label(entry)} | {format_time(stats['median'])} | {stats['rounds']} | {ratio} |"
        )
    return "\n".join(lines)


def report(data: dict) -> str:
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw", machine.get("processor", "?"))
    commit = data.get("commit_info", {})
    header = [
        "## Kernel benchmarks",
        "",
        f"{data.get('datetime', '?')}; CPU {cpu}; Python {machine.get('python_version', '?')}; "
        f"commit {commit.get('id', '?')[:12]}{' (dirty)' if commit.get('dirty') else ''}.",
        f"Speed-up = {BASELINE} median / entry median, within one run.",
    ]
    tables = [table(g, entries) for g, entries in groups(data["benchmarks"]).items()]
    return "\n\n".join(["\n".join(header), *tables]) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file", help="file written by pytest --benchmark-json")
    args = parser.parse_args(argv)
    with open(args.json_file, encoding="utf-8") as file:
        print(report(json.load(file)), end="")


if __name__ == "__main__":
    main()
