"""``dlfr bench``: inference throughput of dlfr against NumPy and the peers, on one network."""

from __future__ import annotations

import argparse
import functools
import platform
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .. import __version__, _cpu, _kernels, peers
from .._names import DTypeName
from ..network import Network
from .errors import CLIError
from .files import check_writable, write_json
from .options import DTYPES, int_list, layer_sizes, positive_float, positive_int
from .timing import format_seconds, seconds_per_call

PEERS = tuple(peers.RUNNERS)
#: How close (rtol, atol) an implementation's output must be to dlfr's to be timed.
TOLERANCE = {"float32": (1e-4, 1e-5), "float64": (1e-10, 1e-12)}


def _batches(text: str) -> list[int]:
    return int_list(text, what="batch sizes")


def _peer_list(text: str) -> list[str]:
    names = [p.strip().lower() for p in text.split(",") if p.strip()]
    if names == ["all"]:
        return list(PEERS)
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in PEERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"peers must be 'all', 'none' or a comma-separated subset of {','.join(PEERS)}, "
            f"got {text!r}"
        )
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="inference throughput: dlfr vs NumPy and peers")
    p.add_argument("--sizes", type=layer_sizes, default=[784, 16, 10], metavar="N,N,...")
    p.add_argument("--batch", type=_batches, default=[1, 16, 256, 4096], metavar="N,N,...")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads for every implementation (default: all cores)")
    p.add_argument("--dtype", choices=DTYPES, default="float32")
    p.add_argument("--repeat", type=positive_int, default=5)
    p.add_argument("--min-time", type=positive_float, default=0.01, metavar="SECONDS",
                   help="each timing runs calls for at least this long (default 0.01)")
    p.add_argument("--peers", type=_peer_list, default=list(PEERS), metavar="LIST",
                   help=f"all (default), none, or some of {','.join(PEERS)}")
    p.add_argument("--simd", metavar="LEVEL", default=None,
                   help="SIMD level of dlfr's kernels for this run: auto (the best this CPU "
                   "has) or a level name such as generic, avx2, avx512 (default: DLFR_SIMD's "
                   "choice, else auto)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> None:
    bench(sizes=args.sizes, batches=args.batch, threads=args.threads, dtype=args.dtype,
          repeat=args.repeat, min_time=args.min_time, peer_names=args.peers, simd=args.simd,
          json_path=args.json)


def bench(
    *,
    sizes: list[int],
    batches: Sequence[int],
    threads: int | None = None,
    dtype: DTypeName = "float32",
    repeat: int = 5,
    min_time: float = 0.01,
    peer_names: Sequence[str] = PEERS,
    simd: str | None = None,
    json_path: str | None = None,
) -> None:
    """Time a sigmoid network of ``sizes`` on random batches: dlfr, NumPy and the peers.

    Each implementation's output is checked against dlfr's before it is timed (one that
    differs is reported, not timed); a peer that is not installed or cannot build the
    network is skipped with the reason. Prints a table and, with ``json_path``, writes it
    as JSON (what ``dlfr plot bench`` draws).
    """
    if json_path:
        check_writable(json_path)
    if simd is not None:
        try:
            _cpu.use_simd(simd)
        except ValueError as exc:
            raise CLIError(f"--simd: {exc}") from None
    simd_level = _cpu.simd_in_use()
    cpu = _cpu.cpu_model()
    threads = threads or _kernels.max_threads()
    net = Network(sizes, activation="sigmoid", dtype=dtype, seed=0)
    impls, skipped = _implementations(net, threads, peer_names)
    rtol, atol = TOLERANCE[dtype]

    print(f"dlfr bench: {'-'.join(map(str, sizes))} sigmoid network, {dtype}, "
          f"{threads} thread(s), median of {repeat}")
    print(f"SIMD level: {simd_level}; CPU: {cpu}")
    for name, reason in skipped.items():
        print(f"  skipped {name}: {reason}")
    print(f"{'batch':>6}  {'implementation':<12}  {'samples/s':>14}  {'time/call':>10}  "
          f"{'vs NumPy':>8}")
    rng = np.random.default_rng(0)
    results: list[dict[str, Any]] = []
    with threadpool_limits(limits=threads, user_api="blas"):
        for batch in batches:
            X = rng.random((batch, sizes[0]), dtype=np.dtype(dtype))
            expected = net.forward(X)
            timed = {}
            for name, forward in impls.items():
                got = np.asarray(forward(X))
                if got.shape != expected.shape or not np.allclose(
                    got, expected, rtol=rtol, atol=atol
                ):
                    diff = (np.max(np.abs(got - expected)) if got.shape == expected.shape
                            else f"shape {got.shape}")
                    print(f"{batch:6d}  {name:<12}  output differs from dlfr's ({diff}): "
                          "not timed")
                    results.append({"batch": batch, "impl": name, "error": "output differs"})
                    continue
                timed[name] = seconds_per_call(functools.partial(forward, X), repeat, min_time)
            base = timed.get("numpy")
            for name, seconds in timed.items():
                ratio = base / seconds if base else None
                results.append({
                    "batch": batch, "impl": name, "seconds_per_call": seconds,
                    "samples_per_s": batch / seconds, "vs_numpy": ratio,
                })
                ratio_text = f"{ratio:7.2f}x" if ratio else "       -"
                print(f"{batch:6d}  {name:<12}  {batch / seconds:14,.0f}  "
                      f"{format_seconds(seconds):>10}  {ratio_text:>8}")
    if json_path:
        write_json(json_path, {
            "dlfr_version": __version__, "sizes": sizes, "dtype": dtype,
            "threads": threads, "repeat": repeat, "machine": platform.machine(),
            "cpu": cpu, "simd": simd_level,
            "python": platform.python_version(), "skipped": skipped, "results": results,
        })
        print(f"saved the results to {json_path}")


def _implementations(
    net: Network, threads: int, peer_names: Sequence[str]
) -> tuple[dict[str, Callable], dict[str, str]]:
    """X -> output functions by name (dlfr, numpy, then the peers that could be built), and
    the reason each other peer was skipped."""
    Ws = [np.ascontiguousarray(layer.W) for layer in net.layers]
    bs = [layer.b.copy() for layer in net.layers]
    impls: dict[str, Callable] = {
        "dlfr": lambda X: net.forward(X, n_threads=threads),
        "numpy": peers.numpy_forward(Ws, bs),
    }
    skipped: dict[str, str] = {}
    for name in peer_names:
        try:
            impls[name] = peers.RUNNERS[name](Ws, bs, threads)
        except ImportError as exc:
            skipped[name] = f"not installed ({exc.name or exc})"
        except Exception as exc:  # a peer that cannot build the model is skipped, not fatal
            skipped[name] = f"failed to build the model: {type(exc).__name__}: {exc}"
    return impls, skipped
