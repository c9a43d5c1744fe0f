"""ONNX tensors read from untrusted files: checked against their declared shape first.

A ``TensorProto`` declares its dims and holds its data in one of three places:
``raw_data`` (little-endian bytes), a typed field (``float_data``,
``int64_data``, ...), or an external file beside the model. Every tensor is
checked before anything is allocated for it: its data type is one dlfr reads,
its dims are sane, and the data it holds (or the external file's bytes it
points at) is exactly what the dims declare. A huge declared shape is
therefore refused by arithmetic, never by a failed allocation.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from . import io

# onnx.TensorProto.DataType values (fixed by the ONNX specification)
FLOAT, INT32, INT64, STRING, DOUBLE = 1, 6, 7, 8, 11
#: data type -> (name, little-endian NumPy dtype or None for strings, its typed field)
TYPES: dict[int, tuple[str, np.dtype | None, str]] = {
    FLOAT: ("float32", np.dtype("<f4"), "float_data"),
    DOUBLE: ("float64", np.dtype("<f8"), "double_data"),
    INT32: ("int32", np.dtype("<i4"), "int32_data"),
    INT64: ("int64", np.dtype("<i8"), "int64_data"),
    STRING: ("string", None, "string_data"),
}
_TYPED_FIELDS = ("float_data", "double_data", "int32_data", "int64_data", "uint64_data",
                 "string_data")
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
#: More dims than any tensor of an MLP has: refused before their product is taken.
_MAX_RANK = 8


def type_name(data_type: int) -> str:
    """"float32", "int64", ... or "data type N" for one dlfr does not read."""
    return TYPES[data_type][0] if data_type in TYPES else f"data type {data_type}"


class TensorError(ValueError):
    """What is wrong with one tensor (the caller says which tensor and file)."""


def check(t: Any, folder: str | None) -> None:
    """Check ``t`` against its declared dims without reading external data; see :func:`array`."""
    _plan(t, folder)


def array(t: Any, folder: str | None) -> np.ndarray:
    """The tensor ``t`` as a NumPy array (native byte order; strings as str).

    Parameters
    ----------
    t : onnx.TensorProto
    folder : str or None
        The model file's folder, where external data must live (None: the
        model came as bytes or a ModelProto, so external data is refused).

    Raises
    ------
    TensorError
        If the data type is not float32, float64, int32, int64 or string, the
        dims are negative or too many, the data is in more than one place or
        its length differs from what the dims declare, or external data is
        missing, outside ``folder`` or shorter than declared.
    """
    shape, count, place = _plan(t, folder)
    name, dtype, field = TYPES[t.data_type]
    if place == "raw":
        flat = np.frombuffer(t.raw_data, dtype=dtype, count=count)
    elif place == "field" and dtype is None:
        try:
            return np.array([s.decode("utf-8") for s in t.string_data], dtype=str).reshape(shape)
        except UnicodeDecodeError:
            raise TensorError("holds a string that is not UTF-8") from None
    elif place == "field":
        flat = np.array(getattr(t, field), dtype=dtype)
    else:
        assert dtype is not None
        path, offset = place
        nbytes = count * dtype.itemsize
        try:
            with io.open_regular(path, "external data file") as f:
                f.seek(offset)
                data = f.read(nbytes)
        except (OSError, ValueError) as exc:  # gone since the check, or not a regular file
            raise TensorError(str(exc)) from None
        if len(data) != nbytes:
            raise TensorError(f"external data file {path} is shorter than declared")
        flat = np.frombuffer(data, dtype=dtype, count=count)
    assert dtype is not None
    return flat.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def _plan(t: Any, folder: str | None) -> tuple[tuple[int, ...], int, Any]:
    """(shape, element count, where the data is: "raw", "field" or (path, offset))."""
    if t.data_type not in TYPES:
        raise TensorError(
            f"is of {type_name(t.data_type)}; dlfr reads float32, float64, int32, int64 and "
            "string tensors"
        )
    name, dtype, field = TYPES[t.data_type]
    if len(t.dims) > _MAX_RANK:
        raise TensorError(f"declares {len(t.dims)} dimensions (at most {_MAX_RANK} are read)")
    shape = tuple(int(d) for d in t.dims)
    if any(d < 0 for d in shape):
        raise TensorError(f"declares negative dimensions {list(shape)}")
    count = math.prod(shape)
    if t.HasField("segment"):
        raise TensorError("is a segment of a larger tensor, which dlfr does not read")
    held = [f for f in _TYPED_FIELDS if len(getattr(t, f))]
    has_raw = len(t.raw_data) > 0
    if t.data_location == _EXTERNAL:
        if held or has_raw:
            raise TensorError("is stored externally but also holds data in the file")
        if dtype is None:
            raise TensorError("is a string tensor stored externally")
        return shape, count, _external(t, folder, count * dtype.itemsize)
    if len(held) + has_raw > 1:
        raise TensorError(f"holds data in more than one field ({', '.join(held)}"
                          f"{', raw_data' if has_raw else ''})")
    if has_raw:
        if dtype is None:
            raise TensorError("is a string tensor in raw_data")
        if len(t.raw_data) != count * dtype.itemsize:
            raise TensorError(
                f"declares shape {list(shape)} of {name} ({count * dtype.itemsize:,} bytes) but "
                f"holds {len(t.raw_data):,} bytes"
            )
        return shape, count, "raw"
    if held and held[0] != field:
        raise TensorError(f"is {name} but holds its values in {held[0]}")
    if len(getattr(t, field)) != count:
        raise TensorError(
            f"declares shape {list(shape)} ({count:,} values) but holds "
            f"{len(getattr(t, field)):,} values"
        )
    return shape, count, "field"


def _external(t: Any, folder: str | None, nbytes: int) -> tuple[str, int]:
    """The external data file of ``t`` and the offset of its bytes, checked; see :func:`array`."""
    entries: dict[str, str] = {}
    for entry in t.external_data:
        if entry.key in entries:
            raise TensorError(f"names its external {entry.key!r} twice")
        entries[entry.key] = entry.value
    if folder is None:
        raise TensorError(
            "stores its data in an external file; open the model from its path (not bytes "
            "or a ModelProto) so the file beside it can be read"
        )
    location = entries.get("location", "")
    if not location:
        raise TensorError("is stored externally but names no location")
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, location))
    try:
        inside = os.path.commonpath([root, path]) == root and path != root
    except ValueError:  # another drive (Windows)
        inside = False
    if os.path.isabs(location) or not inside:
        raise TensorError(
            f"names external data {location!r} outside the model's folder, which is refused"
        )
    numbers = {}
    for key in ("offset", "length"):
        text = entries.get(key, "0" if key == "offset" else str(nbytes))
        if not (text.isascii() and text.isdigit()):
            raise TensorError(f"has external {key} {text!r}; expected a non-negative integer")
        numbers[key] = int(text)
    if numbers["length"] != nbytes:
        raise TensorError(
            f"declares {nbytes:,} bytes of data but its external length is {numbers['length']:,}"
        )
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise TensorError(f"external data file {path}: {exc.strerror or exc}") from None
    if numbers["offset"] + nbytes > size:
        raise TensorError(
            f"external data file {path} holds {size:,} bytes; the tensor needs bytes "
            f"{numbers['offset']:,} to {numbers['offset'] + nbytes:,}"
        )
    return path, numbers["offset"]
