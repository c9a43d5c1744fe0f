"""Model files the commands read and write: dlfr's .npz, or ONNX for a path ending in .onnx
(through :func:`dlfr.network.load_any` and :func:`dlfr.network.save_any`)."""

from __future__ import annotations

from .. import _onnx
from ..network import Network, _is_onnx, load_any
from .errors import CLIError
from .files import require_file

#: The suffixes a model file written by a command may have.
SUFFIXES = (".npz", ".onnx")


def is_onnx(path: str) -> bool:
    """Whether ``path`` is read and written as ONNX (as load_any and save_any decide)."""
    return _is_onnx(path)


def require_onnx(*paths: str) -> None:
    """Refuse, before any work, to read or write an .onnx among ``paths`` without onnx
    installed; the message says what to install."""
    if any(is_onnx(path) for path in paths):
        try:
            _onnx.require_onnx()
        except ImportError as exc:
            raise CLIError(str(exc)) from None


def read_model(path: str, what: str = "model file") -> Network:
    """The network in a model file: ONNX for an .onnx path, else dlfr's .npz. A file that
    is not a model, or a graph dlfr does not run, raises the library's ValueError naming
    the file."""
    require_file(path, what)
    require_onnx(path)
    return load_any(path)


def write_model(net: Network, path: str, opset: int | None = None) -> None:
    """Write ``net`` atomically as ONNX (an .onnx path, at ``opset``: default dlfr's) or
    as dlfr's .npz."""
    if is_onnx(path):
        net.to_onnx(path, opset=opset)
    else:
        net.save(path)
