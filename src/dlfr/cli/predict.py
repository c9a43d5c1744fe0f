"""``dlfr predict``: labels or output activations of a saved model for the samples in a file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..network import Network
from .data import features, read_array
from .errors import CLIError
from .files import check_writable, refuse_overwriting, require_file, write_atomic
from .options import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="labels or probabilities from a saved model")
    p.add_argument("model", metavar="MODEL.npz")
    p.add_argument("input", metavar="INPUT", help=".npy array, IDX images file, or CSV")
    p.add_argument("--out", metavar="FILE", help="write .npy (or .csv) instead of printing")
    p.add_argument("--proba", action="store_true", help="output activations, not labels")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="threads for the forward pass (default: all cores)")
    p.add_argument("--no-check-finite", action="store_true",
                   help="compute rows holding NaN or inf (NaN propagates) instead of refusing")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> None:
    predict(args.model, args.input, out=args.out, proba=args.proba, threads=args.threads,
            check_finite=not args.no_check_finite)


def predict(
    model_path: str,
    input_path: str,
    *,
    out: str | None = None,
    proba: bool = False,
    threads: int | None = None,
    check_finite: bool = True,
) -> None:
    """Labels (or, with ``proba``, output activations) of the samples in ``input_path`` by
    the model in ``model_path``: printed, or written to ``out`` (.npy, .csv or .txt)."""
    if out is not None:
        out = check_writable(out)
        if Path(out).suffix.lower() not in (".npy", ".csv", ".txt"):
            raise CLIError(f"--out {out}: write .npy, .csv or .txt")
    require_file(model_path, "model file")
    require_file(input_path, "input")
    refuse_overwriting(out, "--out", [("input", input_path), ("model file", model_path)])
    net = Network.load(model_path)
    X = features(read_array(input_path, "input"), input_path)
    if X.shape[1] != net.sizes[0]:
        raise CLIError(
            f"the model {model_path} expects {net.sizes[0]} input features but {input_path} "
            f"has {X.shape[1]} (shape {X.shape})"
        )
    if len(X) == 0:
        raise CLIError(f"{input_path} holds no samples")
    result = (net.forward(X, threads, check_finite=check_finite) if proba
              else net.predict(X, threads, check_finite=check_finite))
    if out is None:
        if proba:
            np.savetxt(sys.stdout, result, fmt="%.6g", delimiter=",")
        else:
            sys.stdout.write("\n".join(map(str, result.tolist())) + "\n")
        return
    if Path(out).suffix.lower() == ".npy":
        write_atomic(out, lambda f: np.save(f, result, allow_pickle=False))
    else:
        fmt = "%.6g" if proba else "%d"
        write_atomic(out, lambda f: np.savetxt(f, result, fmt=fmt, delimiter=","))
    what = "probabilities" if proba else "labels"
    print(f"wrote {len(result):,} {what} to {out}")
