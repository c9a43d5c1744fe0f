"""The ``dlfr`` command's entry point: one parser wiring every command's own, and how a
failure is reported."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from . import bench, convert, demo, info, plot, predict, train
from .errors import CLIError

PROG = "dlfr"
#: The commands, in the order ``dlfr --help`` lists them; each module's ``register``
#: adds its sub-parser.
COMMANDS = (demo, info, train, predict, convert, bench, plot)

#: What bad input raises, reported as one line with exit status 2: the command's own
#: CLIError, the ValueError and TypeError the library raises for a bad value or type, and
#: the OSError of a file that cannot be read or written. Any other exception is a bug and
#: keeps its traceback.
USER_ERRORS = (CLIError, ValueError, TypeError, OSError)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one line on stderr (via CLIError)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise CLIError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Compiled multi-layer sigmoid networks: train, predict, benchmark, plot.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dlfr`` command; return its exit status.

    Bad input (USER_ERRORS) is one line on stderr, ``dlfr: error: ...``, and exit status 2
    (the traceback instead when the environment sets ``DLFR_DEBUG``); Ctrl-C is 130, a
    closed stdout 1; anything else propagates with its traceback.
    """
    try:
        args = build_parser().parse_args(argv)
        args.run(args)
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except USER_ERRORS as exc:
        if os.environ.get("DLFR_DEBUG"):
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    """The error's message on one line; an OSError says which file."""
    if isinstance(exc, FileNotFoundError) and exc.filename:
        message = f"no such file or folder: {exc.filename}"
    elif isinstance(exc, OSError) and exc.filename and exc.strerror:
        message = f"{exc.filename}: {exc.strerror}"
    else:
        message = str(exc)
    return " ".join(message.split())
