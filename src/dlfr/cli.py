"""The ``dlfr`` command: ``demo``, ``info``, ``train``, ``predict``, ``bench`` and ``plot``.

Every expected failure (a missing file, a bad model file, data that does not
fit the model, a bad option) is reported as one line on stderr,
``dlfr: error: ...``, with exit status 2 and no traceback; files are written
to a temporary name in their folder and renamed into place, so a failed
command leaves no half-written output. Set ``DLFR_DEBUG=1`` to see the
traceback instead.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from . import peers

PROG = "dlfr"
ACTIVATIONS = ("sigmoid", "tanh", "relu", "identity")
OUTPUT_ACTIVATIONS = ("sigmoid", "tanh", "relu", "identity", "softmax")
LOSSES = ("mse", "cross_entropy")
DTYPES = ("float32", "float64")
PEERS = tuple(peers.RUNNERS)
PLOT_KINDS = ("sigmoid", "xor", "weights", "history", "bench")
PLOT_INSTALL_HINT = 'pip install "dlfr[plot]"'

# The recipes the demo (and the quick networks behind some plots) use.
XOR_RECIPE: dict[str, Any] = {"epochs": 5000, "batch_size": 4, "learning_rate": 5.0, "seed": 0}
DIGITS_RECIPE: dict[str, Any] = {
    "epochs": 30, "batch_size": 10, "learning_rate": 3.0, "loss": "mse", "seed": 0,
}
N_DIGITS_TRAIN = 8000


class CLIError(Exception):
    """A problem reported as ``dlfr: error: <message>`` with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one line on stderr (via CLIError)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise CLIError(f"{message} (see '{self.prog} --help')")


# -- argument types -----------------------------------------------------------------------------


def _int_list(text: str, *, what: str, minimum: int = 1, min_len: int = 1) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{what} must be comma-separated integers like '784,16,10', got {text!r}"
        ) from None
    if len(values) < min_len or any(v < minimum for v in values):
        need = f"at least {min_len} " if min_len > 1 else ""
        raise argparse.ArgumentTypeError(
            f"{what} must be {need}integers >= {minimum}, got {text!r}"
        )
    return values


def _sizes(text: str) -> list[int]:
    return _int_list(text, what="layer sizes", min_len=2)


def _batches(text: str) -> list[int]:
    return _int_list(text, what="batch sizes")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
    return value


def _peers(text: str) -> list[str]:
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


# -- files ------------------------------------------------------------------------------------


def _check_writable(path: str | os.PathLike[str]) -> str:
    """Refuse an output path whose folder is missing, before any work is done."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise CLIError(f"cannot write {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"cannot write {path}: it is a folder")
    return path


def _refuse_overwriting(out: str | None, flag: str, inputs: Sequence[tuple[str, str]]) -> None:
    """Refuse an output file that is one of the inputs (the same file: a hard link,
    a symlink or another spelling of its path included)."""
    if out is None:
        return
    try:
        st = os.stat(out)
    except OSError:
        return  # nothing there yet (or unreadable: the write will say)
    for what, path in inputs:
        try:
            other = os.stat(path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (other.st_dev, other.st_ino):
            raise CLIError(f"{flag} {out} is the {what} {path}; refusing to overwrite it")


def _progress_wanted(args: argparse.Namespace) -> bool:
    """A progress bar only on a terminal: in a log its frames are hundreds of lines."""
    return not args.no_progress and sys.stderr.isatty()


def _write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> None:
    """Write a file through ``write(f)``, whole or not at all (see dlfr.io)."""
    from .io import write_atomically

    write_atomically(_check_writable(path), write)


def _write_json(path: str, data: Any) -> None:
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    _write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def _read_json(path: str, what: str) -> Any:
    _require_file(path, what)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CLIError(f"{what} {path} is not a JSON file ({exc})") from None


def _require_file(path: str, what: str) -> None:
    """Refuse a missing path, and anything but a regular file (a FIFO would block)."""
    if not os.path.exists(path):
        raise CLIError(f"{what} {path} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"{what} {path} is a folder, expected a file")
    from .io import open_regular

    with open_regular(path, what):  # ValueError naming it unless it is a regular file
        pass


def _read_array(path: str, what: str) -> np.ndarray:
    """An array from an .npy file, a CSV of numbers, or an IDX file (gzipped or not)."""
    from . import datasets

    _require_file(path, what)
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        from .io import npy_header, open_regular

        with open_regular(path, what) as f:
            if f.read(4) in (b"PK\x03\x04", b"PK\x05\x06"):
                raise CLIError(f"{what} {path} is not an .npy array (it is an .npz archive)")
            f.seek(0)
            size = os.fstat(f.fileno()).st_size
            try:
                # the declared shape must match the file's size before anything is allocated
                npy_header(f, size)
                f.seek(0)
                array = np.load(f, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise CLIError(f"{what} {path} is not a readable .npy array: {exc}") from None
        return array
    if suffix in (".csv", ".txt"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # an empty file warns; make it an error
                return np.loadtxt(path, delimiter=",", ndmin=2)
        except (ValueError, UserWarning) as exc:
            raise CLIError(f"{what} {path} is not a CSV of numbers ({exc})") from None
    # Anything else is read as IDX, the MNIST format; read_idx names the file when it is not.
    return datasets.read_idx(path)


def _features(X: np.ndarray, name: str) -> np.ndarray:
    """Samples as rows; a 1-D array is one sample. Only IDX images, (n, rows, cols)
    by the format's definition, are flattened: a 3-D .npy or CSV is refused, as
    the library refuses it."""
    if X.ndim == 0:
        raise CLIError(f"{name} holds a single number, not samples")
    if X.ndim == 1:
        return X.reshape(1, -1)
    if X.ndim > 2:
        if Path(name).suffix.lower() in (".npy", ".csv", ".txt", ".npz"):
            raise CLIError(
                f"{name} holds an array of shape {X.shape}; expected 2-D "
                "(n_samples, n_features)"
            )
        return X.reshape(len(X), -1)
    return X


def _labels_from(y: np.ndarray, name: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim not in (1, 2):
        raise CLIError(f"{name} must hold 1-D labels or 2-D target rows, got shape {y.shape}")
    return y


# -- data for train -----------------------------------------------------------------------------


def _training_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str, bool]:
    """X, y, a description of the source, and whether it is the bundled digits."""
    from . import datasets

    if args.data is None:
        if args.labels is not None:
            raise CLIError("--labels needs --data X.npy (the features the labels belong to)")
        X, y = datasets.load_mnist(dtype=args.dtype)
        return X, y, "bundled MNIST digits", True
    data = args.data
    if os.path.isdir(data):
        if args.labels is not None:
            raise CLIError("--labels cannot be used with an MNIST folder (it holds its labels)")
        kinds = [args.kind] if args.kind else ["train", "t10k"]
        for kind in kinds:
            try:
                X, y = datasets.load_mnist(data, kind=kind, dtype=args.dtype)
                return X, y, f"MNIST {kind} files in {data}", False
            except FileNotFoundError as exc:
                missing = exc
        raise CLIError(str(missing))
    _require_file(data, "data file")
    if Path(data).suffix.lower() == ".npz":
        if args.labels is not None:
            raise CLIError("--labels cannot be used with an .npz file (it holds y)")
        try:
            with np.load(data, allow_pickle=False) as npz:
                absent = [k for k in ("X", "y") if k not in npz.files]
                if absent:
                    raise CLIError(
                        f"{data} must hold arrays X and y; it holds {sorted(npz.files)}"
                    )
                X, y = npz["X"], npz["y"]
        except (ValueError, OSError, EOFError) as exc:
            raise CLIError(f"{data} is not a readable .npz archive ({exc})") from None
    else:
        if args.labels is None:
            raise CLIError(
                f"--labels y.npy is required with --data {data} (or pass an .npz holding X and y)"
            )
        X = _read_array(data, "data file")
        y = _read_array(args.labels, "labels file")
    # raw uint8 pixels (as in IDX files) stay as they are: fit, evaluate and
    # predict all read them scaled by 1/255, the same numbers everywhere
    X = _features(X, data)
    y = _labels_from(y, args.labels or data)
    if len(X) != len(y):
        raise CLIError(f"{data} has {len(X)} samples but the labels number {len(y)}")
    return X, y, str(data), False


# -- commands ---------------------------------------------------------------------------------


def _cmd_info(args: argparse.Namespace) -> int:
    from ._config import show_config

    if args.json:
        print(json.dumps(show_config("dicts"), indent=1, default=str))
    else:
        show_config()
    return 0


def _train_xor() -> Any:
    from . import datasets
    from .network import Network

    X, y = datasets.xor()
    net = Network([2, 2, 1], activation="sigmoid", seed=XOR_RECIPE["seed"])
    net.fit(X, y, **XOR_RECIPE)
    return net, X, y


def _train_digits(n_train: int, epochs: int, verbose: bool) -> Any:
    from . import datasets
    from .network import Network

    X, y = datasets.load_mnist()
    net = Network([784, 16, 10], activation="sigmoid", seed=0)
    recipe = dict(DIGITS_RECIPE, epochs=epochs)
    start = time.perf_counter()
    net.fit(X[:n_train], y[:n_train], verbose=verbose, **recipe)
    return net, X, y, time.perf_counter() - start


#: Seconds a timing waits for the previous call's thread pools to go idle.
SETTLE_SECONDS = 0.25


def _best_of(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm up
    best = math.inf
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _cmd_demo(args: argparse.Namespace) -> int:
    quick = args.quick
    print(f"dlfr {_version()} demo{' (quick)' if quick else ''}")
    print()
    r = XOR_RECIPE
    print(
        f"1. XOR with a 2-2-1 sigmoid network ({r['epochs']} epochs, batch {r['batch_size']}, "
        f"learning rate {r['learning_rate']}, seed {r['seed']})"
    )
    net, X, y = _train_xor()
    out = net.forward(X)[:, 0]
    pred = net.predict(X)
    print("   x1  x2  target  output  label")
    for xi, t, a, p in zip(X, y, out, pred, strict=True):
        mark = "" if p == t else "  (wrong)"
        print(f"   {xi[0]:2.0f}  {xi[1]:2.0f}  {t:6d}  {a:6.4f}  {p:5d}{mark}")
    print(f"   {int(np.sum(pred == y))}/4 correct")
    print()

    n_train = 2000 if quick else N_DIGITS_TRAIN
    epochs = 3 if quick else DIGITS_RECIPE["epochs"]
    print(
        f"2. Digits with a 784-16-10 sigmoid network: {n_train:,} training digits, "
        f"{epochs} epochs, batch {DIGITS_RECIPE['batch_size']}, "
        f"learning rate {DIGITS_RECIPE['learning_rate']}, mse"
    )
    sys.stdout.flush()  # the progress bar goes to stderr
    net, Xd, yd, seconds = _train_digits(n_train, epochs, verbose=_progress_wanted(args))
    acc = net.evaluate(Xd[N_DIGITS_TRAIN:], yd[N_DIGITS_TRAIN:])
    print(
        f"   test accuracy on the last {len(Xd) - N_DIGITS_TRAIN:,} digits: {acc:.2%} "
        f"(trained in {seconds:.2f} s)"
    )
    print()

    runs = 5 if quick else 20  # a core that sat idle takes a few calls to come up to speed
    from threadpoolctl import threadpool_limits

    from . import _kernels

    print(f"3. Batch inference: labels of all {len(Xd):,} digits (best of {runs} runs)")
    numpy_forward = peers.numpy_forward(
        [np.ascontiguousarray(layer.W) for layer in net.layers],
        [layer.b.copy() for layer in net.layers],
    )
    print("   threads  dlfr net.predict(X)  NumPy 1/(1+np.exp(-(X@W+b)))  ratio")
    for threads in dict.fromkeys((1, _kernels.max_threads())):
        with threadpool_limits(limits=threads, user_api="blas"):
            # OpenBLAS's workers spin for about 0.1 s after a threaded call,
            # and a two-thread run timed meanwhile shares a core with one
            time.sleep(SETTLE_SECONDS)
            t_dlfr = _best_of(functools.partial(net.predict, Xd, n_threads=threads), runs)
            t_numpy = _best_of(lambda: numpy_forward(Xd).argmax(axis=1), runs)
        print(f"   {threads:7d}  {_fmt_time(t_dlfr):>19}  {_fmt_time(t_numpy):>28}  "
              f"{t_numpy / t_dlfr:4.1f}x")
    same = np.mean(net.predict(Xd) == numpy_forward(Xd).argmax(axis=1))
    print(f"   (ratio: NumPy's time over dlfr's; the labels agree on {same:.2%} of the digits)")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from ._validation import targets
    from .network import Network

    out = _check_writable(args.out)
    if args.history:
        _check_writable(args.history)
    sources = [("data file", args.data or ""), ("labels file", args.labels or "")]
    _refuse_overwriting(out, "--out", sources)
    _refuse_overwriting(args.history, "--history", sources)
    X, y, source, bundled = _training_data(args)
    sizes = args.sizes
    if X.shape[1] != sizes[0]:
        raise CLIError(
            f"--sizes {','.join(map(str, sizes))} expects {sizes[0]} input features but "
            f"{source} has {X.shape[1]} (shape {X.shape})"
        )
    if args.limit is not None:
        X, y = X[: args.limit], y[: args.limit]
    val_split = args.val_split if args.val_split is not None else (0.2 if bundled else 0.0)
    n_val = int(round(len(X) * val_split))
    validation = None
    if n_val:
        if n_val >= len(X):
            raise CLIError(f"--val-split {val_split} leaves no training samples of {len(X)}")
        X, y, validation = X[:-n_val], y[:-n_val], (X[-n_val:], y[-n_val:])
    # the labels against the output width, before the banner says training starts
    targets(y, sizes[-1], np.dtype(args.dtype))
    if validation is not None:
        targets(validation[1], sizes[-1], np.dtype(args.dtype), "validation_data y")

    net = Network(
        sizes, activation=args.activation, output_activation=args.output_activation,
        dtype=args.dtype, seed=args.seed,
    )
    print(f"training {net} on {len(X):,} samples from {source}"
          + (f", validating on the last {n_val:,}" if n_val else ""))
    sys.stdout.flush()
    start = time.perf_counter()
    history = net.fit(
        X, y, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        loss=args.loss, seed=args.seed, validation_data=validation,
        verbose=_progress_wanted(args),
    )
    seconds = time.perf_counter() - start
    _print_history(history)
    print(f"trained in {seconds:.2f} s")
    net.save(out)
    print(f"saved the model to {out}")
    if args.history:
        _write_json(args.history, {
            "sizes": net.sizes,
            "activations": [layer.activation for layer in net.layers],
            "dtype": net.dtype.name,
            "epochs": args.epochs, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "loss": args.loss, "seed": args.seed,
            "n_train": len(X), "n_validation": n_val, "seconds": seconds,
            "history": history,
        })
        print(f"saved the history to {args.history}")
    return 0


def _print_history(history: dict[str, list[float]]) -> None:
    keys = list(history)
    print("epoch  " + "  ".join(f"{k:>12}" for k in keys))
    for i in range(len(history[keys[0]])):
        print(f"{i + 1:5d}  " + "  ".join(f"{history[k][i]:12.4f}" for k in keys))


def _cmd_predict(args: argparse.Namespace) -> int:
    from .network import Network

    out = _check_writable(args.out) if args.out else None
    if out and Path(out).suffix.lower() not in (".npy", ".csv", ".txt"):
        raise CLIError(f"--out {out}: write .npy, .csv or .txt")
    _require_file(args.model, "model file")
    _require_file(args.input, "input")
    _refuse_overwriting(out, "--out", [("input", args.input), ("model file", args.model)])
    net = Network.load(args.model)
    X = _features(_read_array(args.input, "input"), args.input)
    if X.shape[1] != net.sizes[0]:
        raise CLIError(
            f"the model {args.model} expects {net.sizes[0]} input features but {args.input} "
            f"has {X.shape[1]} (shape {X.shape})"
        )
    if len(X) == 0:
        raise CLIError(f"{args.input} holds no samples")
    check = not args.no_check_finite
    result = (net.forward(X, args.threads, check_finite=check) if args.proba
              else net.predict(X, args.threads, check_finite=check))
    if out is None:
        if args.proba:
            np.savetxt(sys.stdout, result, fmt="%.6g", delimiter=",")
        else:
            sys.stdout.write("\n".join(map(str, result.tolist())) + "\n")
        return 0
    if Path(out).suffix.lower() == ".npy":
        _write_atomic(out, lambda f: np.save(f, result, allow_pickle=False))
    else:
        fmt = "%.6g" if args.proba else "%d"
        _write_atomic(out, lambda f: np.savetxt(f, result, fmt=fmt, delimiter=","))
    what = "probabilities" if args.proba else "labels"
    print(f"wrote {len(result):,} {what} to {out}")
    return 0


# -- bench ----------------------------------------------------------------------------------




def _time_call(fn: Callable, X: np.ndarray, repeat: int, min_time: float) -> float:
    """Median seconds per call over ``repeat`` timings of at least ``min_time`` each."""
    fn(X)
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn(X)
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or number >= 1 << 20:
            break
        number = max(2 * number, int(number * min_time / max(elapsed, 1e-9) * 1.2))
    times = [elapsed / number]
    for _ in range(repeat - 1):
        start = time.perf_counter()
        for _ in range(number):
            fn(X)
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def _cmd_bench(args: argparse.Namespace) -> int:
    from . import _cpu, _kernels
    from .network import Network

    if args.json:
        _check_writable(args.json)
    if args.simd is not None:
        try:
            _cpu.use_simd(args.simd)
        except ValueError as exc:
            raise CLIError(f"--simd: {exc}") from None
    simd = _cpu.simd_in_use()
    cpu = _cpu.cpu_model()
    threads = args.threads or _kernels.max_threads()
    net = Network(args.sizes, activation="sigmoid", dtype=args.dtype, seed=0)
    Ws = [np.ascontiguousarray(layer.W) for layer in net.layers]
    bs = [layer.b.copy() for layer in net.layers]
    impls: dict[str, Callable] = {
        "dlfr": lambda X: net.forward(X, n_threads=threads),
        "numpy": peers.numpy_forward(Ws, bs),
    }
    skipped: dict[str, str] = {}
    for name in args.peers:
        try:
            impls[name] = peers.RUNNERS[name](Ws, bs, threads)
        except ImportError as exc:
            skipped[name] = f"not installed ({exc.name or exc})"
        except Exception as exc:  # a peer that cannot build the model is skipped, not fatal
            skipped[name] = f"failed to build the model: {type(exc).__name__}: {exc}"
    tol = {"float32": (1e-4, 1e-5), "float64": (1e-10, 1e-12)}[args.dtype]

    sizes_text = "-".join(map(str, args.sizes))
    print(f"dlfr bench: {sizes_text} sigmoid network, {args.dtype}, {threads} thread(s), "
          f"median of {args.repeat}")
    print(f"SIMD level: {simd}; CPU: {cpu}")
    for name, reason in skipped.items():
        print(f"  skipped {name}: {reason}")
    print(f"{'batch':>6}  {'implementation':<12}  {'samples/s':>14}  {'time/call':>10}  "
          f"{'vs NumPy':>8}")
    rng = np.random.default_rng(0)
    results = []
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        for batch in args.batch:
            X = rng.random((batch, args.sizes[0]), dtype=args.dtype)
            expected = net.forward(X)
            timed = {}
            for name, fn in impls.items():
                got = np.asarray(fn(X))
                if got.shape != expected.shape or not np.allclose(
                    got, expected, rtol=tol[0], atol=tol[1]
                ):
                    diff = (np.max(np.abs(got - expected)) if got.shape == expected.shape
                            else f"shape {got.shape}")
                    print(f"{batch:6d}  {name:<12}  output differs from dlfr's ({diff}): "
                          "not timed")
                    results.append({"batch": batch, "impl": name, "error": "output differs"})
                    continue
                timed[name] = _time_call(fn, X, args.repeat, args.min_time)
            base = timed.get("numpy")
            for name, seconds in timed.items():
                ratio = base / seconds if base else None
                results.append({
                    "batch": batch, "impl": name, "seconds_per_call": seconds,
                    "samples_per_s": batch / seconds, "vs_numpy": ratio,
                })
                ratio_text = f"{ratio:7.2f}x" if ratio else "       -"
                print(f"{batch:6d}  {name:<12}  {batch / seconds:14,.0f}  "
                      f"{_fmt_time(seconds):>10}  {ratio_text:>8}")
    if args.json:
        _write_json(args.json, {
            "dlfr_version": _version(), "sizes": args.sizes, "dtype": args.dtype,
            "threads": threads, "repeat": args.repeat, "machine": platform.machine(),
            "cpu": cpu, "simd": simd,
            "python": platform.python_version(), "skipped": skipped, "results": results,
        })
        print(f"saved the results to {args.json}")
    return 0


# -- plot -------------------------------------------------------------------------------------


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CLIError(f"plotting needs matplotlib, which is not installed: "
                       f"{PLOT_INSTALL_HINT}") from None
    return plt


def _plot_sigmoid(plt: Any, args: argparse.Namespace) -> Any:
    from . import kernels

    z = np.linspace(-8, 8, 801)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(z, kernels.step(z), color="0.55", lw=2, ls="--", label="step (perceptron)")
    ax.plot(z, kernels.sigmoid(z), lw=2.5, label=r"sigmoid $\sigma(z) = 1/(1+e^{-z})$")
    ax.plot(z, kernels.sigmoid_prime(z), lw=2.5,
            label=r"derivative $\sigma'(z) = \sigma(z)(1-\sigma(z))$")
    ax.annotate("max 0.25 at z = 0", xy=(0, 0.25), xytext=(2.2, 0.32),
                arrowprops={"arrowstyle": "->", "color": "0.3"})
    ax.axhline(0, color="0.85", lw=0.8, zorder=0)
    ax.axvline(0, color="0.85", lw=0.8, zorder=0)
    ax.set(xlabel="z = w·x + b", ylabel="activation", xlim=(-8, 8), ylim=(-0.05, 1.08),
           title="The sigmoid, its derivative and the step function")
    ax.legend(loc="center left", bbox_to_anchor=(0.0, 0.62), frameon=False)
    fig.tight_layout()
    return fig


def _plot_xor(plt: Any, args: argparse.Namespace) -> Any:
    from . import kernels

    net, X, y = _train_xor()
    hidden, output = net.layers
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.6))
    grid = np.linspace(-0.25, 1.25, 201, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    a = net.forward(np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
    cs = ax1.contourf(gx, gy, a, levels=np.linspace(0, 1, 21), cmap="RdBu_r")
    ax1.contour(gx, gy, a, levels=[0.5], colors="k", linewidths=1.5)
    fig.colorbar(cs, ax=ax1, label="network output")
    _xor_points(ax1, X, y)
    ax1.set(xlabel="$x_1$", ylabel="$x_2$", title="Output over the input square",
            aspect="equal")

    H = kernels.dense(X, np.ascontiguousarray(hidden.W), hidden.b.copy(), hidden.activation)
    hg = np.linspace(-0.08, 1.08, 201, dtype=np.float32)
    hx, hy = np.meshgrid(hg, hg)
    ah = kernels.dense(np.column_stack([hx.ravel(), hy.ravel()]),
                       np.ascontiguousarray(output.W), output.b.copy(), output.activation)
    ax2.contourf(hx, hy, ah.reshape(hx.shape), levels=np.linspace(0, 1, 21), cmap="RdBu_r")
    ax2.contour(hx, hy, ah.reshape(hx.shape), levels=[0.5], colors="k", linewidths=1.5)
    _xor_points(ax2, H, y, names=X)
    ax2.set(xlabel="hidden neuron 1", ylabel="hidden neuron 2", xlim=(-0.08, 1.08),
            ylim=(-0.08, 1.08), title="Hidden layer's view: one line separates them",
            aspect="equal")
    fig.suptitle("XOR solved by a 2-2-1 sigmoid network")
    fig.tight_layout()
    return fig


def _xor_points(ax: Any, P: np.ndarray, y: np.ndarray, names: np.ndarray | None = None) -> None:
    for label, marker, color in ((0, "o", "#2166ac"), (1, "s", "#b2182b")):
        sel = y == label
        ax.scatter(P[sel, 0], P[sel, 1], marker=marker, s=90, c=color, edgecolors="white",
                   linewidths=1.5, label=f"XOR = {label}", zorder=3)
    if names is not None:
        # inputs the hidden layer maps close together share one label
        labels: list[tuple[np.ndarray, str]] = []
        for p, n in zip(P, names, strict=True):
            text = f"({n[0]:.0f},{n[1]:.0f})"
            for k, (q, t) in enumerate(labels):
                if np.hypot(*(p - q)) < 0.08:
                    labels[k] = (q, f"{t} {text}")
                    break
            else:
                labels.append((p, text))
        for p, text in labels:
            ax.annotate(text, xy=(p[0], p[1]), xytext=(7, 7), textcoords="offset points",
                        fontsize=9, color="k", zorder=4,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.7})
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)


def _plot_weights(plt: Any, args: argparse.Namespace) -> Any:
    from .network import Network

    if args.source:
        _require_file(args.source, "model file")
        net = Network.load(args.source)
        origin = args.source
    else:
        net = _train_digits(N_DIGITS_TRAIN, 3, verbose=False)[0]
        origin = "a 784-16-10 network trained for 3 epochs on the bundled digits"
    if net.sizes[0] != 784:
        raise CLIError(f"a weights plot needs a model with 784 inputs (28x28 images); "
                       f"{origin} has {net.sizes[0]}")
    W = np.asarray(net.layers[0].W, dtype=np.float64)
    n = min(W.shape[1], 64)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.6), squeeze=False)
    for j, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if j >= n:
            continue
        w = W[:, j].reshape(28, 28)
        m = np.max(np.abs(w)) or 1.0
        ax.imshow(w, cmap="RdBu_r", vmin=-m, vmax=m)
        ax.set_title(f"neuron {j}", fontsize=8)
    more = f" (first {n} of {W.shape[1]})" if W.shape[1] > n else ""
    fig.suptitle(f"Hidden neurons' input weights as 28x28 images{more}\n"
                 "red: the pixel pushes the neuron on, blue: off", fontsize=10)
    fig.tight_layout()
    return fig


def _plot_history(plt: Any, args: argparse.Namespace) -> Any:
    if not args.source:
        raise CLIError("a history plot needs --history FILE.json (from dlfr train --history)")
    data = _read_json(args.source, "history file")
    history = data.get("history", data) if isinstance(data, dict) else None
    if not (isinstance(history, dict) and isinstance(history.get("loss"), list)
            and history["loss"]):
        raise CLIError(f"{args.source} is not a training history (no 'loss' list)")
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((ax1, "loss", "loss"), (ax2, "accuracy", "accuracy")):
        if key in history:
            ax.plot(epochs, history[key], marker="o", ms=3, label="training (running mean)")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="s", ms=3, label="validation")
        ax.set(xlabel="epoch", title=title)
        ax.grid(alpha=0.3)
        ax.legend()
    if isinstance(data, dict) and "sizes" in data:
        fig.suptitle(f"Training {'-'.join(map(str, data['sizes']))} "
                     f"({data.get('loss', '')}, lr {data.get('learning_rate', '')}, "
                     f"batch {data.get('batch_size', '')})")
    fig.tight_layout()
    return fig


def _plot_bench(plt: Any, args: argparse.Namespace) -> Any:
    if not args.source:
        raise CLIError("a bench plot needs --json FILE.json (from dlfr bench --json)")
    data = _read_json(args.source, "bench file")
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise CLIError(f"{args.source} is not a dlfr bench result (no 'results' list)")
    rows = [r for r in results if isinstance(r, dict) and "samples_per_s" in r]
    if not rows:
        raise CLIError(f"{args.source} holds no timed results")
    batches = sorted({r["batch"] for r in rows})
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    value = {(r["batch"], r["impl"]): r["samples_per_s"] for r in rows}
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(impls)
    x = np.arange(len(batches))
    for k, impl in enumerate(impls):
        ys = [value.get((b, impl), 0.0) for b in batches]
        ax.bar(x + (k - (len(impls) - 1) / 2) * width, ys, width, label=impl)
    ax.set_xticks(x, [f"{b:,}" for b in batches])
    ax.set_yscale("log")
    ax.set_ylim(top=max(value.values()) * 8)  # room for the legend above the bars
    ax.set(xlabel="batch size (samples per call)", ylabel="samples per second (log)")
    ax.set_title(f"Inference throughput, {'-'.join(map(str, data.get('sizes', [])))} "
                 f"sigmoid network, {data.get('dtype', '')}, {data.get('threads', '?')} "
                 "thread(s)")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(ncols=min(len(impls), 5), fontsize=9)
    fig.tight_layout()
    return fig


_PLOTS = {
    "sigmoid": _plot_sigmoid, "xor": _plot_xor, "weights": _plot_weights,
    "history": _plot_history, "bench": _plot_bench,
}


def _cmd_plot(args: argparse.Namespace) -> int:
    if args.file and args.source and args.file != args.source:
        raise CLIError("give the input file once, either as FILE or with --model/--history/--json")
    args.source = args.file or args.source
    if args.source and args.kind in ("sigmoid", "xor"):
        raise CLIError(f"the {args.kind} plot takes no input file")
    out = _check_writable(args.out)
    fmt = Path(out).suffix.lstrip(".").lower() or "png"
    if args.source:  # a missing input is the first thing to say, matplotlib or not
        _require_file(args.source, "input file")
    plt = _pyplot()
    fig = _PLOTS[args.kind](plt, args)
    try:
        if fmt not in fig.canvas.get_supported_filetypes():
            raise CLIError(f"--out {out}: unsupported image format {fmt!r} (use .png, .svg, .pdf)")
        _write_atomic(out, lambda f: fig.savefig(f, format=fmt, dpi=args.dpi))
    finally:
        plt.close(fig)
    print(f"saved the {args.kind} plot to {out}")
    return 0


# -- helpers --------------------------------------------------------------------------------


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _version() -> str:
    from . import __version__

    return __version__


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Compiled multi-layer sigmoid networks: train, predict, benchmark, plot.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="XOR, digits and an inference timing, offline")
    p.add_argument("--quick", action="store_true", help="3 epochs on 2,000 digits")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none when stderr is not a terminal)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("info", help="build and run-time facts (dlfr.show_config())")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "train", help="train a network and save it",
        description="Train by mini-batch SGD. Data: the bundled digits (default), a folder of "
        "MNIST IDX files, an .npz holding X and y, or X (.npy, .csv, IDX) with --labels.",
    )
    p.add_argument("--sizes", type=_sizes, default=[784, 16, 10], metavar="N,N,...",
                   help="layer sizes, input first (default 784,16,10)")
    p.add_argument("--data", metavar="DIR|FILE", help="MNIST folder, .npz, or X file")
    p.add_argument("--labels", metavar="FILE", help="labels for --data X.npy (.npy, .csv, IDX)")
    p.add_argument("--kind", help="IDX file prefix in an MNIST folder (default: train, t10k)")
    p.add_argument("--epochs", type=_positive_int, default=30, metavar="N",
                   help="passes over the training data (default 30)")
    p.add_argument("--batch-size", type=_positive_int, default=10, metavar="N",
                   help="samples per SGD step (default 10)")
    p.add_argument("--learning-rate", type=_positive_float, default=3.0, metavar="RATE",
                   help="SGD step size (default 3.0)")
    p.add_argument("--loss", choices=LOSSES, default="mse",
                   help="mse or cross_entropy (default mse; softmax outputs need "
                   "cross_entropy)")
    p.add_argument("--activation", choices=ACTIVATIONS, default="sigmoid",
                   help="hidden layers' activation (default sigmoid)")
    p.add_argument("--output-activation", choices=OUTPUT_ACTIVATIONS, default=None,
                   help="output layer's activation (default: as --activation)")
    p.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="weights and arithmetic (default float32)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights and of the shuffling (default 0)")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="use the first N samples")
    p.add_argument("--val-split", type=_fraction, default=None, metavar="F",
                   help="hold out the last fraction F for validation "
                   "(default 0.2 for the bundled digits, else 0)")
    p.add_argument("--history", metavar="FILE.json", help="also write the history as JSON")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none when stderr is not a terminal)")
    p.add_argument("--out", required=True, metavar="MODEL.npz", help="where to save the model")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="labels or probabilities from a saved model")
    p.add_argument("model", metavar="MODEL.npz")
    p.add_argument("input", metavar="INPUT", help=".npy array, IDX images file, or CSV")
    p.add_argument("--out", metavar="FILE", help="write .npy (or .csv) instead of printing")
    p.add_argument("--proba", action="store_true", help="output activations, not labels")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="threads for the forward pass (default: all cores)")
    p.add_argument("--no-check-finite", action="store_true",
                   help="compute rows holding NaN or inf (NaN propagates) instead of refusing")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("bench", help="inference throughput: dlfr vs NumPy and peers")
    p.add_argument("--sizes", type=_sizes, default=[784, 16, 10], metavar="N,N,...")
    p.add_argument("--batch", type=_batches, default=[1, 16, 256, 4096], metavar="N,N,...")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="threads for every implementation (default: all cores)")
    p.add_argument("--dtype", choices=DTYPES, default="float32")
    p.add_argument("--repeat", type=_positive_int, default=5)
    p.add_argument("--min-time", type=_positive_float, default=0.01, metavar="SECONDS",
                   help="each timing runs calls for at least this long (default 0.01)")
    p.add_argument("--peers", type=_peers, default=list(PEERS), metavar="LIST",
                   help=f"all (default), none, or some of {','.join(PEERS)}")
    p.add_argument("--simd", metavar="LEVEL", default=None,
                   help="SIMD level of dlfr's kernels for this run: auto (the best this CPU "
                   "has) or a level name such as generic, avx2, avx512 (default: DLFR_SIMD's "
                   "choice, else auto)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("plot", help="figures (needs matplotlib)")
    p.add_argument("kind", choices=PLOT_KINDS)
    p.add_argument("file", nargs="?", metavar="FILE",
                   help="input: model (weights), history JSON (history), bench JSON (bench)")
    p.add_argument("--model", "--history", "--json", dest="source", metavar="FILE",
                   help="the same input file, by name")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--dpi", type=_positive_int, default=100)
    p.set_defaults(func=_cmd_plot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dlfr`` command; return its exit status."""
    debug = bool(os.environ.get("DLFR_DEBUG"))
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (CLIError, ValueError, TypeError, OSError) as exc:
        if debug:
            raise
        if isinstance(exc, FileNotFoundError) and exc.filename:
            message = f"no such file or folder: {exc.filename}"
        elif isinstance(exc, OSError) and exc.filename and exc.strerror:
            message = f"{exc.filename}: {exc.strerror}"
        else:
            message = str(exc)
        print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
        return 2
