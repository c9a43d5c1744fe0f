"""``dlfr train``: train a network by mini-batch SGD and save it."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .._names import ActivationName, DTypeName, LossName
from .._validation import targets
from ..network import Network
from ..training import History
from .data import training_data
from .errors import CLIError
from .files import check_writable, refuse_overwriting, write_json
from .options import (
    ACTIVATIONS,
    DTYPES,
    LOSSES,
    OUTPUT_ACTIVATIONS,
    add_no_progress,
    fraction,
    layer_sizes,
    positive_float,
    positive_int,
    progress_wanted,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a network and save it",
        description="Train by mini-batch SGD. Data: the bundled digits (default), a folder of "
        "MNIST IDX files, an .npz holding X and y, or X (.npy, .csv, IDX) with --labels.",
    )
    p.add_argument("--sizes", type=layer_sizes, default=[784, 16, 10], metavar="N,N,...",
                   help="layer sizes, input first (default 784,16,10)")
    p.add_argument("--data", metavar="DIR|FILE", help="MNIST folder, .npz, or X file")
    p.add_argument("--labels", metavar="FILE", help="labels for --data X.npy (.npy, .csv, IDX)")
    p.add_argument("--kind", help="IDX file prefix in an MNIST folder (default: train, t10k)")
    p.add_argument("--epochs", type=positive_int, default=30, metavar="N",
                   help="passes over the training data (default 30)")
    p.add_argument("--batch-size", type=positive_int, default=10, metavar="N",
                   help="samples per SGD step (default 10)")
    p.add_argument("--learning-rate", type=positive_float, default=3.0, metavar="RATE",
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
    p.add_argument("--limit", type=positive_int, metavar="N", help="use the first N samples")
    p.add_argument("--val-split", type=fraction, default=None, metavar="F",
                   help="hold out the last fraction F for validation "
                   "(default 0.2 for the bundled digits, else 0)")
    p.add_argument("--early-stopping", action="store_true",
                   help="stop when the validation loss has not improved for --patience "
                   "epochs, keeping the best epoch's weights (needs --val-split)")
    p.add_argument("--patience", type=positive_int, default=10, metavar="N",
                   help="epochs without improvement before --early-stopping stops (default 10)")
    p.add_argument("--history", metavar="FILE.json", help="also write the history as JSON")
    add_no_progress(p)
    p.add_argument("--out", required=True, metavar="MODEL.npz", help="where to save the model")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> None:
    train(
        args.out, sizes=args.sizes, data=args.data, labels=args.labels, kind=args.kind,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        loss=args.loss, activation=args.activation, output_activation=args.output_activation,
        dtype=args.dtype, seed=args.seed, limit=args.limit, val_split=args.val_split,
        history_path=args.history, progress=progress_wanted(args.no_progress),
        early_stopping=args.early_stopping, patience=args.patience,
    )


def train(
    out: str,
    *,
    sizes: list[int],
    data: str | None = None,
    labels: str | None = None,
    kind: str | None = None,
    epochs: int = 30,
    batch_size: int = 10,
    learning_rate: float = 3.0,
    loss: LossName = "mse",
    activation: ActivationName = "sigmoid",
    output_activation: ActivationName | None = None,
    dtype: DTypeName = "float32",
    seed: int = 0,
    limit: int | None = None,
    val_split: float | None = None,
    history_path: str | None = None,
    progress: bool = False,
    early_stopping: bool = False,
    patience: int = 10,
) -> None:
    """Train a network on ``data`` (see :func:`dlfr.cli.data.training_data`), save it to
    ``out`` and, with ``history_path``, its history and recipe as JSON.

    Everything that can be checked before training is: the output paths, the data against
    ``sizes``, the labels against the output width. ``val_split`` (default 0.2 for the
    bundled digits, else 0) holds out the last fraction of the samples for validation;
    ``early_stopping`` stops on its loss (see :meth:`dlfr.Network.fit`).
    """
    out = check_writable(out)
    if history_path:
        check_writable(history_path)
    sources = [("data file", data or ""), ("labels file", labels or "")]
    refuse_overwriting(out, "--out", sources)
    refuse_overwriting(history_path, "--history", sources)
    samples = training_data(data, labels, kind, dtype)
    X, y = samples.X, samples.y
    if X.shape[1] != sizes[0]:
        raise CLIError(
            f"--sizes {','.join(map(str, sizes))} expects {sizes[0]} input features but "
            f"{samples.source} has {X.shape[1]} (shape {X.shape})"
        )
    if limit is not None:
        X, y = X[:limit], y[:limit]
    if val_split is None:
        val_split = 0.2 if samples.bundled else 0.0
    n_val = int(round(len(X) * val_split))
    validation = None
    if early_stopping and not n_val:
        raise CLIError("--early-stopping needs validation samples: give --val-split F")
    if n_val:
        if n_val >= len(X):
            raise CLIError(f"--val-split {val_split} leaves no training samples of {len(X)}")
        X, y, validation = X[:-n_val], y[:-n_val], (X[-n_val:], y[-n_val:])
    # the labels against the output width, before the banner says training starts
    targets(y, sizes[-1], np.dtype(dtype))
    if validation is not None:
        targets(validation[1], sizes[-1], np.dtype(dtype), "validation_data y")

    net = Network(
        sizes, activation=activation, output_activation=output_activation, dtype=dtype,
        seed=seed,
    )
    print(f"training {net} on {len(X):,} samples from {samples.source}"
          + (f", validating on the last {n_val:,}" if n_val else ""))
    sys.stdout.flush()
    start = time.perf_counter()
    history = net.fit(
        X, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, loss=loss,
        seed=seed, validation_data=validation, verbose=progress,
        early_stopping=early_stopping, patience=patience,
    )
    seconds = time.perf_counter() - start
    _print_history(history)
    if history.stopped_epoch is not None:
        print(f"stopped early after epoch {history.stopped_epoch + 1}")
    if early_stopping and history.best_epoch is not None:
        print(f"kept the weights of epoch {history.best_epoch + 1} (best validation loss)")
    print(f"trained in {seconds:.2f} s")
    net.save(out)
    print(f"saved the model to {out}")
    if history_path:
        write_json(history_path, {
            "sizes": net.sizes,
            "activations": [layer.activation for layer in net.layers],
            "dtype": net.dtype.name,
            "epochs": epochs, "batch_size": batch_size,
            "learning_rate": learning_rate, "loss": loss, "seed": seed,
            "n_train": len(X), "n_validation": n_val, "seconds": seconds,
            "early_stopping": early_stopping, "patience": patience,
            "best_epoch": history.best_epoch, "stopped_epoch": history.stopped_epoch,
            "history": history,
        })
        print(f"saved the history to {history_path}")


def _print_history(history: History) -> None:
    keys = list(history)
    print("epoch  " + "  ".join(f"{k:>12}" for k in keys))
    for i in range(len(history[keys[0]])):
        print(f"{i + 1:5d}  " + "  ".join(f"{history[k][i]:12.4f}" for k in keys))
