"""``dlfr convert``: a model file from dlfr's .npz to ONNX and back."""

from __future__ import annotations

import argparse

from .._onnx import DEFAULT_OPSET, MIN_OPSET
from .errors import CLIError
from .files import check_writable, refuse_overwriting, require_file
from .models import SUFFIXES, is_onnx, read_model, require_onnx, write_model
from .options import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a model between .npz and .onnx",
        description="Read a model (dlfr's .npz, or an ONNX multi-layer perceptron, e.g. from "
        "torch.onnx.export or skl2onnx) and write it in the format OUT's suffix names: .onnx "
        "(one Gemm per layer and its activation; input X, output Y, and label for a model "
        "with class labels) or .npz. The same format on both sides rewrites the model as "
        "dlfr writes it. Class labels are kept; ONNX needs the onnx extra.",
    )
    p.add_argument("input", metavar="IN", help="the model: .npz or .onnx")
    p.add_argument("output", metavar="OUT", help="where to write it: .onnx or .npz")
    p.add_argument("--opset", type=positive_int, default=None, metavar="N",
                   help=f"ONNX opset of an .onnx OUT (default {DEFAULT_OPSET}; "
                   f"{MIN_OPSET} to the newest the installed onnx knows)")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> None:
    convert(args.input, args.output, opset=args.opset)


def convert(input_path: str, output_path: str, *, opset: int | None = None) -> None:
    """Write the model in ``input_path`` to ``output_path``, as ONNX or as dlfr's .npz by
    ``output_path``'s suffix, atomically; refuse an output that is the input file."""
    output_path = check_writable(output_path)
    if not output_path.lower().endswith(SUFFIXES):
        raise CLIError(f"OUT {output_path}: write a model to .onnx or .npz")
    if opset is not None and not is_onnx(output_path):
        raise CLIError(f"--opset applies to an .onnx OUT, not {output_path}")
    require_file(input_path, "model file")
    refuse_overwriting(output_path, "OUT", [("model file", input_path)])
    require_onnx(input_path, output_path)
    net = read_model(input_path)
    write_model(net, output_path, opset)
    written = (f"ONNX, opset {opset or DEFAULT_OPSET}" if is_onnx(output_path)
               else "dlfr's .npz")
    labels = "" if net.classes is None else f" and its {len(net.classes)} class labels"
    print(f"wrote {net!r}{labels} to {output_path} ({written})")
