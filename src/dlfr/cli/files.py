"""The files a command reads and writes: checked before any work, written whole or not at all."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import IO, Any

from ..io import open_regular, write_atomically
from .errors import CLIError


def check_writable(path: str | os.PathLike[str]) -> str:
    """Refuse an output path whose folder is missing, before any work is done."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise CLIError(f"cannot write {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"cannot write {path}: it is a folder")
    return path


def refuse_overwriting(out: str | None, flag: str, inputs: Sequence[tuple[str, str]]) -> None:
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


def require_file(path: str, what: str) -> None:
    """Refuse a missing path, and anything but a regular file (a FIFO would block)."""
    if not os.path.exists(path):
        raise CLIError(f"{what} {path} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"{what} {path} is a folder, expected a file")
    with open_regular(path, what):  # ValueError naming it unless it is a regular file
        pass


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> None:
    """Write a file through ``write(f)``, whole or not at all (see dlfr.io)."""
    write_atomically(check_writable(path), write)


def write_json(path: str, data: Any) -> None:
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def read_json(path: str, what: str) -> Any:
    require_file(path, what)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CLIError(f"{what} {path} is not a JSON file ({exc})") from None
