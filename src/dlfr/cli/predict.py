"""``dlfr predict``: labels or output activations of a model file (dlfr's .npz or ONNX) for
the samples in a file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .data import features, read_array
from .errors import CLIError
from .files import check_writable, refuse_overwriting, require_file, write_atomic
from .models import read_model
from .options import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict", help="labels or probabilities from a model file (.npz or .onnx)",
        description="Labels (the argmax of the outputs, or output >= 0.5 for one output) or, "
        "with --proba, the output activations of a model for each sample. A model with class "
        "labels (a classifier read from ONNX, e.g. skl2onnx's, or a network given classes) "
        "gives its labels, classes[index], unless --indices is given; any other gives the "
        "index.",
    )
    p.add_argument("model", metavar="MODEL",
                   help="dlfr's .npz, or an .onnx file (needs the onnx extra)")
    p.add_argument("input", metavar="INPUT", help=".npy array, IDX images file, or CSV")
    p.add_argument("--out", metavar="FILE", help="write .npy (or .csv) instead of printing")
    p.add_argument("--proba", action="store_true", help="output activations, not labels")
    p.add_argument("--indices", action="store_true",
                   help="the output's index (0 to n_outputs - 1, or 0 and 1 for one output), "
                   "not the model's class labels")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="threads for the forward pass (default: all cores)")
    p.add_argument("--no-check-finite", action="store_true",
                   help="compute rows holding NaN or inf (NaN propagates) instead of refusing")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> None:
    predict(args.model, args.input, out=args.out, proba=args.proba, indices=args.indices,
            threads=args.threads, check_finite=not args.no_check_finite)


def predict(
    model_path: str,
    input_path: str,
    *,
    out: str | None = None,
    proba: bool = False,
    indices: bool = False,
    threads: int | None = None,
    check_finite: bool = True,
) -> None:
    """Labels (or, with ``proba``, output activations) of the samples in ``input_path`` by
    the model in ``model_path`` (.npz, or .onnx): printed, or written to ``out`` (.npy,
    .csv or .txt).

    A model with ``classes`` gives ``classes[net.predict(X)]``, its own labels, unless
    ``indices``; any other gives ``net.predict(X)``, indices.
    """
    if proba and indices:
        raise CLIError("--indices applies to labels, not to --proba's output activations")
    if out is not None:
        out = check_writable(out)
        if Path(out).suffix.lower() not in (".npy", ".csv", ".txt"):
            raise CLIError(f"--out {out}: write .npy, .csv or .txt")
    require_file(model_path, "model file")
    require_file(input_path, "input")
    refuse_overwriting(out, "--out", [("input", input_path), ("model file", model_path)])
    net = read_model(model_path)
    X = features(read_array(input_path, "input"), input_path)
    if X.shape[1] != net.sizes[0]:
        raise CLIError(
            f"the model {model_path} expects {net.sizes[0]} input features but {input_path} "
            f"has {X.shape[1]} (shape {X.shape})"
        )
    if len(X) == 0:
        raise CLIError(f"{input_path} holds no samples")
    if proba:
        result = net.forward(X, threads, check_finite=check_finite)
    else:
        result = net.predict(X, threads, check_finite=check_finite)
        if net.classes is not None and not indices:
            result = net.classes[result]
    if out is None:
        if proba:
            np.savetxt(sys.stdout, result, fmt="%.6g", delimiter=",")
        else:
            sys.stdout.write("\n".join(map(str, result.tolist())) + "\n")
        return
    if Path(out).suffix.lower() == ".npy":
        write_atomic(out, lambda f: np.save(f, result, allow_pickle=False))
    else:
        fmt = "%.6g" if proba else "%s"
        write_atomic(out, lambda f: np.savetxt(f, result, fmt=fmt, delimiter=","))
    what = "probabilities" if proba else "labels"
    print(f"wrote {len(result):,} {what} to {out}")
