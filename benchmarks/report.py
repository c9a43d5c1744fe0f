"""Summarise pytest-benchmark JSON files as markdown: one table per group, SIMD levels side by side.

Run the benchmarks from the repository root (after building the extension in
place), once per SIMD level, one JSON file each, then the report::

    python setup.py build_ext --inplace
    for level in avx2 generic; do
        env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src python -m pytest \\
            benchmarks/test_bench_inference.py benchmarks/test_bench_kernels.py \\
            benchmarks/test_bench_training.py --simd $level --benchmark-json=$level.json
    done
    python benchmarks/report.py avx2.json generic.json --out docs/performance.md
    python benchmarks/report.py avx2.json generic.json --headline   # the README's table

(``env -u`` unsets the two variables that force a slower OpenBLAS kernel, for
that command alone; ``--simd all`` runs every level this CPU has in one
session, one file.) A plain ``python -m pytest`` never runs the benchmarks: it
only collects ``tests/``. A short run to check the machinery end to end::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src python -m pytest \\
        benchmarks/test_bench_inference.py --simd avx2 --benchmark-max-time=0.1 \\
        --benchmark-min-rounds=3 -k "b1- or b16-" --benchmark-json=/tmp/avx2.json
    (the same with --simd generic and /tmp/generic.json)
    python benchmarks/report.py /tmp/avx2.json /tmp/generic.json --out /tmp/perf.md

The report opens with a header (date, CPU, levels, numpy and BLAS versions,
commit, the commands that wrote each file), then the headline table (dlfr's
speed-up over NumPy and over ONNX Runtime for 784-16-10 and 784-256-128-10,
float32, at batch 1 to 65536, per level), then, from benchmarks/test_bench_onnx.py,
dlfr's speed-up over ONNX Runtime on the same .onnx file, then one table per group: every
entry with, per level, its median time and its speed-up over the plain NumPy
entry of the same group in the same run and level: ``numpy median / entry
median``, so above 1 is faster than NumPy. Compare ratios measured in one
run, never absolute times across runs. With a single level (or files from
before the levels), each group's table is the older one: median, rounds,
speed-up.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shlex
import sys
from collections.abc import Sequence
from typing import Any

#: ``extra_info["impl"]`` of the baseline entry in every group.
BASELINE = "numpy"
#: The level of benchmarks that do not name one (files from before ``--simd``).
UNKNOWN_LEVEL = "unknown"
#: The headline table's rows: networks and batch sizes, float32, every thread count run.
HEADLINE_NETWORKS = ("784-16-10", "784-256-128-10")
HEADLINE_BATCHES = (1, 16, 256, 4096, 65536)
HEADLINE_DTYPE = "float32"
HEADLINE_PEER = "onnxruntime"
INFERENCE_GROUP = re.compile(
    r"^inference (?P<network>\S+) batch=(?P<batch>\d+) (?P<dtype>float\d+) "
    r"threads=(?P<threads>\d+)$"
)
#: benchmarks/test_bench_onnx.py's groups: one .onnx file, ONNX Runtime against dlfr.
ONNX_FILE_GROUP = re.compile(
    r"^onnx file (?P<network>\S+) batch=(?P<batch>\d+) (?P<dtype>float\d+) "
    r"threads=(?P<threads>\d+)$"
)


def format_time(seconds: float) -> str:
    """A duration in s, ms, µs or ns with three significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            return f"{seconds / scale:.3g} {unit}"
    raise AssertionError("unreachable")


def label(bench: dict) -> str:
    return bench.get("extra_info", {}).get("impl") or bench["name"]


def level_of(bench: dict, data: dict) -> str:
    """The SIMD level a benchmark ran at: its extra_info, else its file's only level."""
    level = bench.get("extra_info", {}).get("simd")
    if level:
        return str(level)
    levels = data.get("machine_info", {}).get("dlfr", {}).get("simd_levels") or []
    return str(levels[0]) if len(levels) == 1 else UNKNOWN_LEVEL


def base_group(bench: dict, level: str) -> str:
    """The group's name without its `` simd=LEVEL`` ending, the same at every level."""
    group = bench.get("group") or bench["name"]
    suffix = f" simd={level}"
    return group[: -len(suffix)] if group.endswith(suffix) else group


class Results:
    """Benchmarks of one or more files, by group (without the level), level and entry."""

    def __init__(self, files: Sequence[tuple[str, dict]]):
        self.files = list(files)
        self.levels: list[str] = []
        # group -> level -> entry label -> benchmark; every dict in the order things ran
        self.groups: dict[str, dict[str, dict[str, dict]]] = {}
        for path, data in self.files:
            for bench in data.get("benchmarks", []):
                level = level_of(bench, data)
                if level not in self.levels:
                    self.levels.append(level)
                by_label = self.groups.setdefault(base_group(bench, level), {}).setdefault(
                    level, {})
                name = label(bench)
                if name in by_label:
                    print(f"report.py: {path}: {bench.get('group')!r} {name!r} at level {level} "
                          "is in an earlier file too; the first is kept", file=sys.stderr)
                    continue
                by_label[name] = bench

    def entries(self, group: str) -> list[str]:
        """Entry labels of a group at every level, in the order they first ran."""
        names: list[str] = []
        for by_label in self.groups[group].values():
            names += [name for name in by_label if name not in names]
        return names

    def median(self, group: str, level: str, name: str) -> float | None:
        bench = self.groups.get(group, {}).get(level, {}).get(name)
        return bench["stats"]["median"] if bench else None

    def ratio(self, group: str, level: str, name: str, over: str = BASELINE) -> float | None:
        """`over`'s median / `name`'s median, both in this group at this level."""
        base, entry = self.median(group, level, over), self.median(group, level, name)
        return base / entry if base and entry else None


def format_ratio(ratio: float | None) -> str:
    """2 decimals; 2 significant digits below 0.1 (never a misleading 0.00x)."""
    if ratio is None:
        return "n/a"
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"


def _distinct(values: Sequence[Any]) -> list[str]:
    out: list[str] = []
    for value in values:
        text = str(value)
        if value not in (None, "") and text not in out:
            out.append(text)
    return out


def header(results: Results, command: str | None) -> str:
    """Date, machine, levels, numpy/BLAS, commit and the commands behind the report."""
    infos = [data.get("machine_info", {}) for _, data in results.files]
    dlfr_infos = [info.get("dlfr", {}) for info in infos]
    cpus = _distinct([d.get("cpu_model") or info.get("cpu", {}).get("brand_raw")
                      or info.get("processor") for d, info in zip(dlfr_infos, infos, strict=True)])
    machine = _distinct([f"{info.get('machine', '?')}, {info.get('system', '?')} "
                         f"{info.get('release', '')}".strip() for info in infos])
    pythons = _distinct([info.get("python_version") for info in infos])
    available = _distinct([", ".join(d["simd_available"]) for d in dlfr_infos
                           if d.get("simd_available")])
    numpys = _distinct([d.get("numpy") for d in dlfr_infos])
    blas = _distinct([
        f"{pool.get('internal_api')} {pool.get('version') or '?'} "
        f"{pool.get('architecture') or ''}".strip()
        + f" ({pool.get('filepath', '').rsplit('/', 1)[-1]})"
        for d in dlfr_infos for pool in d.get("thread_pools", [])
        if pool.get("user_api") == "blas"
    ])
    commits = _distinct([d.get("commit") for d in dlfr_infos] or [])
    if not commits:  # files from before the levels: pytest-benchmark's own record
        commits = _distinct([
            data.get("commit_info", {}).get("id", "")
            + ("+dirty" if data.get("commit_info", {}).get("dirty") else "")
            for _, data in results.files
        ])
    dates = _distinct([data.get("datetime") for _, data in results.files])
    lines = [
        "## Benchmarks per SIMD level",
        "",
        f"- Date: {', '.join(dates) or '?'} (report written "
        f"{datetime.date.today().isoformat()})",
        f"- Machine: CPU {'; '.join(cpus) or '?'} ({'; '.join(machine) or '?'}), "
        f"Python {', '.join(pythons) or '?'}",
        f"- SIMD levels: {', '.join(results.levels)}"
        + (f" (this CPU runs {'; '.join(available)})" if available else ""),
        f"- numpy {', '.join(numpys) or '?'}; BLAS: {'; '.join(blas) or '?'}",
        f"- Commit: {', '.join(commits) or '?'}",
        f"- Ratio = {BASELINE} median / entry median, within one run and one SIMD level "
        "(above 1: faster than NumPy).",
        "",
        "Commands:",
        "",
        "```bash",
    ]
    for (path, _), d in zip(results.files, dlfr_infos, strict=True):
        lines.append(f"{d['command']}  # wrote {path}" if d.get("command")
                     else f"# {path}: written by a run that did not record its command")
    if command:
        lines.append(command)
    lines.append("```")
    return "\n".join(lines)


def headline_rows(results: Results,
                  pattern: re.Pattern[str] = INFERENCE_GROUP) -> list[tuple[str, int, int, str]]:
    """(network, batch, threads, group) of the float32 groups of ``pattern`` a table shows."""
    rows = []
    for group in results.groups:
        match = pattern.match(group)
        if not match or match["dtype"] != HEADLINE_DTYPE:
            continue
        if match["network"] in HEADLINE_NETWORKS and int(match["batch"]) in HEADLINE_BATCHES:
            rows.append((match["network"], int(match["batch"]), int(match["threads"]), group))
    rows.sort(key=lambda r: (HEADLINE_NETWORKS.index(r[0]), r[1], r[2]))
    return rows


def headline(results: Results) -> str:
    """dlfr's speed-up over NumPy and ONNX Runtime, float32 inference, per level."""
    rows = headline_rows(results)
    if not rows:
        return "(no float32 inference groups of 784-16-10 or 784-256-128-10 in these files)"
    columns = [f"{level}: vs {name}" for level in results.levels
               for name in ("NumPy", "ONNX Runtime")]
    lines = [
        f"**dlfr, {HEADLINE_DTYPE} inference**: NumPy's (or ONNX Runtime's) median / dlfr's, "
        "same run and SIMD level",
        "",
        "| network | batch | threads | " + " | ".join(columns) + " |",
        "|---|---:|---:|" + "---:|" * len(columns),
    ]
    for network, batch, threads, group in rows:
        cells = [format_ratio(results.ratio(group, level, "dlfr", over))
                 for level in results.levels for over in (BASELINE, HEADLINE_PEER)]
        lines.append(f"| {network} | {batch} | {threads} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def onnx_file_table(results: Results) -> str | None:
    """dlfr's speed-up over ONNX Runtime on the same .onnx file, per level (None: no such run)."""
    rows = headline_rows(results, ONNX_FILE_GROUP)
    if not rows:
        return None
    lines = [
        f"**The same .onnx file, {HEADLINE_DTYPE}** (benchmarks/test_bench_onnx.py): ONNX "
        "Runtime's session median / dlfr's (`Network.from_onnx`), same run and SIMD level",
        "",
        "| network | batch | threads | " + " | ".join(results.levels) + " |",
        "|---|---:|---:|" + "---:|" * len(results.levels),
    ]
    for network, batch, threads, group in rows:
        cells = [format_ratio(results.ratio(group, level, "dlfr", HEADLINE_PEER))
                 for level in results.levels]
        lines.append(f"| {network} | {batch} | {threads} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _threads(results: Results, group: str) -> str:
    threads = sorted({str(b.get("extra_info", {}).get("threads", "?"))
                      for by_label in results.groups[group].values()
                      for b in by_label.values()})
    return ", ".join(threads)


def table(results: Results, group: str) -> str:
    """The markdown table of one group: levels side by side, or the one-level table."""
    levels = [level for level in results.levels if level in results.groups[group]]
    known = [level for level in levels if level != UNKNOWN_LEVEL]
    title = f"### {group} (threads: {_threads(results, group)}"
    title += f"; simd: {', '.join(known)})" if known else ")"
    lines = [title, ""]
    if len(levels) == 1:
        (level,) = levels
        lines += [f"| entry | median | rounds | speed-up vs {BASELINE} |", "|---|---:|---:|---:|"]
        for name, bench in results.groups[group][level].items():
            lines.append(f"| {name} | {format_time(bench['stats']['median'])} | "
                         f"{bench['stats']['rounds']} | "
                         f"{format_ratio(results.ratio(group, level, name))} |")
        return "\n".join(lines)
    lines += [
        "| entry | " + " | ".join(f"{level} median | {level} vs {BASELINE}" for level in levels)
        + " |",
        "|---|" + "---:|---:|" * len(levels),
    ]
    for name in results.entries(group):
        cells = []
        for level in levels:
            median = results.median(group, level, name)
            cells += [format_time(median) if median is not None else "–",
                      format_ratio(results.ratio(group, level, name)) if median else "–"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(files: Sequence[tuple[str, dict]], command: str | None = None) -> str:
    """The whole report of these (path, JSON data) files."""
    results = Results(files)
    onnx_file = onnx_file_table(results)
    parts = [header(results, command), headline(results), *([onnx_file] if onnx_file else []),
             *(table(results, group) for group in results.groups)]
    return "\n\n".join(parts) + "\n"


#: What a written report (``--out``) opens with: it is generated, and how to read it.
PREAMBLE = """# Performance

*Written by `benchmarks/report.py` from the benchmark JSON files named below;
do not edit by hand: run the commands below again.*

Every group times the plain-NumPy twin (per layer `1/(1+np.exp(-(X@W+b)))`)
next to dlfr and, where installed, ONNX Runtime, PyTorch and scikit-learn on
the same weights; each result is checked before it is timed. Ratios are
medians within one run and one SIMD level, never across runs: these are
2-core virtual machines whose neighbours move single groups by 20 % or more
between runs. `OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE`, set on some
machines here, force a slower OpenBLAS kernel, so the commands unset them.

"""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("json_files", nargs="+", metavar="JSON",
                        help="files written by pytest --benchmark-json (e.g. one per level)")
    parser.add_argument("--out", metavar="FILE.md",
                        help="write the report here (e.g. docs/performance.md), not to stdout")
    parser.add_argument("--headline", action="store_true",
                        help="only the headline table (for the README)")
    args = parser.parse_args(argv)
    files = []
    for path in args.json_files:
        with open(path, encoding="utf-8") as file:
            files.append((path, json.load(file)))
    command = shlex.join(["python", "benchmarks/report.py",
                          *(sys.argv[1:] if argv is None else argv)])
    text = headline(Results(files)) + "\n" if args.headline else report(files, command)
    if args.out and not args.headline:
        text = PREAMBLE + text
        with open(args.out, "w", encoding="utf-8") as file:
            file.write(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
