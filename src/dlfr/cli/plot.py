"""``dlfr plot``: the figures of :mod:`dlfr.plotting`, from a model, a history or a bench
result file, saved as an image."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .. import plotting
from ..network import Network
from .errors import CLIError
from .files import check_writable, read_json, require_file, write_atomic
from .options import positive_int
from .recipes import N_DIGITS_TRAIN, train_digits, train_xor

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plot", help="figures (needs matplotlib)")
    p.add_argument("kind", choices=tuple(FIGURES))
    p.add_argument("file", nargs="?", metavar="FILE",
                   help="input: model (weights), history JSON (history), bench JSON (bench)")
    p.add_argument("--model", "--history", "--json", dest="source", metavar="FILE",
                   help="the same input file, by name")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--dpi", type=positive_int, default=100)
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> None:
    if args.file and args.source and args.file != args.source:
        raise CLIError("give the input file once, either as FILE or with --model/--history/--json")
    plot(args.kind, args.out, source=args.file or args.source, dpi=args.dpi)


def plot(kind: str, out: str, source: str | None = None, dpi: int = 100) -> None:
    """Draw the ``kind`` figure (from the file ``source`` where it takes one) into ``out``;
    the image format is ``out``'s suffix (.png when it has none)."""
    if source and kind in ("sigmoid", "xor"):
        raise CLIError(f"the {kind} plot takes no input file")
    out = check_writable(out)
    fmt = Path(out).suffix.lstrip(".").lower() or "png"
    if source:  # a missing input is the first thing to say, matplotlib or not
        require_file(source, "input file")
    try:
        plotting.check_matplotlib()
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    fig = FIGURES[kind](source)
    if fmt not in fig.canvas.get_supported_filetypes():
        raise CLIError(f"--out {out}: unsupported image format {fmt!r} (use .png, .svg, .pdf)")
    write_atomic(out, lambda f: fig.savefig(f, format=fmt, dpi=dpi))
    print(f"saved the {kind} plot to {out}")


def _sigmoid(source: str | None) -> Figure:
    return plotting.sigmoid_figure()


def _xor(source: str | None) -> Figure:
    return plotting.xor_figure(train_xor()[0])


def _weights(source: str | None) -> Figure:
    if source:
        net = Network.load(source)
        origin = source
    else:
        net = train_digits(N_DIGITS_TRAIN, 3, verbose=False)[0]
        origin = "a 784-16-10 network trained for 3 epochs on the bundled digits"
    if net.sizes[0] != 784:
        raise CLIError(f"a weights plot needs a model with 784 inputs (28x28 images); "
                       f"{origin} has {net.sizes[0]}")
    return plotting.weights_figure(net)


def _history(source: str | None) -> Figure:
    if not source:
        raise CLIError("a history plot needs --history FILE.json (from dlfr train --history)")
    data = read_json(source, "history file")
    history = data.get("history", data) if isinstance(data, dict) else None
    if not (isinstance(history, dict) and isinstance(history.get("loss"), list)
            and history["loss"]):
        raise CLIError(f"{source} is not a training history (no 'loss' list)")
    title = None
    if isinstance(data, dict) and "sizes" in data:  # as dlfr train --history writes it
        title = (f"Training {'-'.join(map(str, data['sizes']))} "
                 f"({data.get('loss', '')}, lr {data.get('learning_rate', '')}, "
                 f"batch {data.get('batch_size', '')})")
    return plotting.history_figure(history, title)


def _bench(source: str | None) -> Figure:
    if not source:
        raise CLIError("a bench plot needs --json FILE.json (from dlfr bench --json)")
    data = read_json(source, "bench file")
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise CLIError(f"{source} is not a dlfr bench result (no 'results' list)")
    if not any(isinstance(r, dict) and "samples_per_s" in r for r in results):
        raise CLIError(f"{source} holds no timed results")
    return plotting.bench_figure(data)


#: Each kind of plot: its figure from the input file (None when none was given).
FIGURES: dict[str, Callable[[str | None], Figure]] = {
    "sigmoid": _sigmoid, "xor": _xor, "weights": _weights, "history": _history,
    "bench": _bench,
}
