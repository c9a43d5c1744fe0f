"""``dlfr bench``: inference throughput of dlfr against NumPy and the peers, on one network:
a sigmoid network of given sizes, or the user's own model file (``--model``)."""

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
from .files import check_writable, refuse_overwriting, write_json
from .models import is_onnx, read_model
from .options import DTYPES, int_list, layer_sizes, positive_float, positive_int
from .timing import format_seconds, seconds_per_call

PEERS = tuple(peers.RUNNERS)
#: What to install for each peer.
PEER_INSTALL = {"onnxruntime": 'pip install "dlfr[peers]"', "sklearn": 'pip install "dlfr[peers]"',
                "torch": "pip install torch"}
#: The network timed without --model.
DEFAULT_SIZES = [784, 16, 10]
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
    p = subparsers.add_parser(
        "bench", help="inference throughput: dlfr vs NumPy and peers",
        description="Time a sigmoid network of --sizes, or the model in --model FILE, on "
        "random batches: dlfr, the plain NumPy expression and the peers, each checked "
        "against dlfr's output first. With --model FILE.onnx, onnxruntime is ONNX Runtime's "
        "InferenceSession on the file itself and dlfr is Network.from_onnx(FILE), the "
        "drop-in comparison (an .npz model: ONNX Runtime on its to_onnx export).",
    )
    p.add_argument("--sizes", type=layer_sizes, default=None, metavar="N,N,...",
                   help=f"layer sizes of the sigmoid network, input first (default "
                   f"{','.join(map(str, DEFAULT_SIZES))})")
    p.add_argument("--model", metavar="FILE",
                   help="time this model (.onnx or .npz) instead, at its own dtype; torch "
                   "and sklearn run it only where every layer is sigmoid")
    p.add_argument("--batch", type=_batches, default=[1, 16, 256, 4096], metavar="N,N,...")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads for every implementation (default: all cores)")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help="of the --sizes network (default float32)")
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
    bench(sizes=args.sizes, model=args.model, batches=args.batch, threads=args.threads,
          dtype=args.dtype, repeat=args.repeat, min_time=args.min_time, peer_names=args.peers,
          simd=args.simd, json_path=args.json)


def bench(
    *,
    sizes: list[int] | None = None,
    model: str | None = None,
    batches: Sequence[int],
    threads: int | None = None,
    dtype: DTypeName | None = None,
    repeat: int = 5,
    min_time: float = 0.01,
    peer_names: Sequence[str] = PEERS,
    simd: str | None = None,
    json_path: str | None = None,
) -> None:
    """Time a network on random batches: dlfr, NumPy and the peers.

    The network is a sigmoid network of ``sizes`` (default 784-16-10) and ``dtype``
    (default float32), or the one in the model file ``model`` (.onnx or .npz), at its own
    dtype. For a model, NumPy computes each layer's own activation, onnxruntime is ONNX
    Runtime's session on the .onnx file itself (on ``to_onnx``'s export of an .npz),
    asked for the output dlfr's ``forward`` computes, and torch and sklearn run it only
    where every layer is sigmoid.

    Each implementation's output is checked against dlfr's before it is timed (one that
    differs or fails is reported, not timed); a peer that is not installed or cannot build
    the network is skipped with the reason. Prints a table and, with ``json_path``, writes
    it as JSON (what ``dlfr plot bench`` draws).
    """
    if model is not None and (sizes is not None or dtype is not None):
        raise CLIError("--model times the model file's own network: leave out --sizes and "
                       "--dtype")
    if json_path:
        check_writable(json_path)
        if model is not None:
            refuse_overwriting(json_path, "--json", [("model file", model)])
    if simd is not None:
        try:
            _cpu.use_simd(simd)
        except ValueError as exc:
            raise CLIError(f"--simd: {exc}") from None
    simd_level = _cpu.simd_in_use()
    cpu = _cpu.cpu_model()
    net = (read_model(model) if model is not None
           else Network(sizes or DEFAULT_SIZES, activation="sigmoid", dtype=dtype or "float32",
                        seed=0))
    threads = threads or _kernels.max_threads()
    impls, skipped = _implementations(net, threads, peer_names, model)
    dtype_name = net.dtype.name
    tolerance = TOLERANCE[dtype_name]
    activations = [layer.activation for layer in net.layers]

    source = f"{model}, a " if model is not None else ""
    print(f"dlfr bench: {source}{'-'.join(map(str, net.sizes))} "
          f"{'/'.join(dict.fromkeys(activations))} network, {dtype_name}, "
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
            X = rng.random((batch, net.sizes[0]), dtype=net.dtype)
            expected = net.forward(X)
            timed = {}
            for name, forward in impls.items():
                problem = _problem(forward, X, expected, net.classes, tolerance)
                if problem:
                    print(f"{batch:6d}  {name:<12}  {problem}: not timed")
                    results.append({"batch": batch, "impl": name, "error": problem})
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
            "dlfr_version": __version__, "model": model, "sizes": net.sizes,
            "activations": activations, "dtype": dtype_name,
            "threads": threads, "repeat": repeat, "machine": platform.machine(),
            "cpu": cpu, "simd": simd_level,
            "python": platform.python_version(), "skipped": skipped, "results": results,
        })
        print(f"saved the results to {json_path}")


def _implementations(
    net: Network, threads: int, peer_names: Sequence[str], model: str | None = None
) -> tuple[dict[str, Callable], dict[str, str]]:
    """X -> output functions by name (dlfr, numpy, then the peers that could be built), and
    the reason each other peer was skipped. ``model``: the file ``net`` was read from."""
    Ws = [np.ascontiguousarray(layer.W) for layer in net.layers]
    bs = [layer.b.copy() for layer in net.layers]
    activations = [layer.activation for layer in net.layers]
    impls: dict[str, Callable] = {
        "dlfr": lambda X: net.forward(X, n_threads=threads),
        "numpy": peers.numpy_forward(Ws, bs, activations),
    }
    skipped: dict[str, str] = {}
    not_sigmoid = sorted(set(activations) - {"sigmoid"})
    for name in peer_names:
        try:
            if model is not None and name == "onnxruntime":
                impls[name] = _onnxruntime_on(model, net, threads)
            elif not_sigmoid:
                skipped[name] = f"runs sigmoid networks only; this one has {', '.join(not_sigmoid)}"
            else:
                impls[name] = peers.RUNNERS[name](Ws, bs, threads)
        except ImportError as exc:
            # exc.name: the missing module; without one, a message saying what to install
            skipped[name] = (f"not installed ({exc.name}; {PEER_INSTALL[name]})" if exc.name
                             else str(exc))
        except Exception as exc:  # a peer that cannot build the model is skipped, not fatal
            skipped[name] = f"failed to build the model: {type(exc).__name__}: {exc}"
    return impls, skipped


def _onnxruntime_on(model: str, net: Network, threads: int) -> Callable:
    """X -> the output ``net.forward`` computes, by ONNX Runtime's session on the .onnx file
    ``model`` itself (on ``net.to_onnx()`` where ``model`` is an .npz)."""
    source = model if is_onnx(model) else net.to_onnx().SerializeToString()
    session = peers.onnx_session(source, threads)
    feed = session.get_inputs()[0].name
    output = (net.onnx_names or {}).get("output", session.get_outputs()[0].name)
    return lambda X: session.run([output], {feed: X})[0]


def _problem(forward: Callable, X: np.ndarray, expected: np.ndarray,
             classes: np.ndarray | None, tolerance: tuple[float, float]) -> str | None:
    """Why ``forward(X)`` is not timed (it fails, or differs from dlfr's ``expected``), or
    None."""
    try:
        got = _in_forward_layout(forward(X), expected, classes)
    except Exception as exc:  # a peer refusing the user's file (e.g. its fixed batch size)
        return "failed: " + " ".join(f"{type(exc).__name__}: {exc}".split())
    if got.shape != expected.shape:
        return f"output differs from dlfr's (shape {got.shape})"
    rtol, atol = tolerance
    if got.dtype.kind != "f" or not np.allclose(got, expected, rtol=rtol, atol=atol):
        diff = np.max(np.abs(got - expected)) if got.dtype.kind == "f" else got.dtype
        return f"output differs from dlfr's ({diff})"
    return None


def _in_forward_layout(got: Any, expected: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """An implementation's output laid out as ``forward``'s ``expected``, where it holds the
    same values otherwise laid out (as ``Network.from_onnx`` reads them): skl2onnx's ZipMap
    rows ({label: probability}) as columns in ``classes``' order, a two-class [1 - p, p]
    as p, and as many values in another shape (skl2onnx's (n * n_outputs, 1)) reshaped."""
    if isinstance(got, list) and got and isinstance(got[0], dict) and classes is not None:
        got = [[row[label] for label in classes.tolist()] for row in got]
    got = np.asarray(got)
    if expected.shape[1] == 1 and got.shape == (len(expected), 2):
        got = got[:, 1:]
    return got.reshape(expected.shape) if got.size == expected.size else got
