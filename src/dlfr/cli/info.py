"""``dlfr info``: build and run-time facts (:func:`dlfr.show_config`)."""

from __future__ import annotations

import argparse
import json

from .._config import show_config


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("info", help="build and run-time facts (dlfr.show_config())")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> None:
    info(as_json=args.json)


def info(as_json: bool = False) -> None:
    """Print the build facts, as ``name : value`` lines or as JSON."""
    if as_json:
        print(json.dumps(show_config("dicts"), indent=1, default=str))
    else:
        show_config()
