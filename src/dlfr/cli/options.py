"""What the command's options accept: the names offered as choices and the parsers of values.

The choice lists are the library's registry of names (``dlfr._names``) for activations,
losses and dtypes.
"""

from __future__ import annotations

import argparse
import math
import sys

from .. import _names

# the library's registry: softmax only at the output, and step cannot be trained
ACTIVATIONS = _names.TRAINABLE_HIDDEN
OUTPUT_ACTIVATIONS = _names.TRAINABLE_OUTPUT
LOSSES = _names.LOSSES
OPTIMIZERS = _names.OPTIMIZERS
DTYPES = tuple(_names.DTYPES)


def int_list(text: str, *, what: str, minimum: int = 1, min_len: int = 1) -> list[int]:
    """Comma-separated integers, each at least ``minimum``, at least ``min_len`` of them."""
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


def layer_sizes(text: str) -> list[int]:
    return int_list(text, what="layer sizes", min_len=2)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _float(text: str) -> float:
    """``text`` as a number; NaN, which no range check lets through, when it is none."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def positive_float(text: str) -> float:
    value = _float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = _float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
    return value


def add_no_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (there is none when stderr is not a terminal)")


def progress_wanted(no_progress: bool) -> bool:
    """A progress bar only on a terminal: in a log its frames are hundreds of lines."""
    return not no_progress and sys.stderr.isatty()
