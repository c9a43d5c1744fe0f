"""The dlfr model file format: an uncompressed .npz with a JSON header, no pickle.

A model file is a zip archive written by :func:`numpy.savez` holding

``header``
    A 1-D uint8 array: UTF-8 JSON ``{"format": "dlfr-model",
    "format_version": 1, "sizes": [...], "activations": [...],
    "dtype": "float32" | "float64", ...}``; ``activations`` has one name per
    layer, further keys (``dlfr_version``, ...) are free.
``W0, b0, W1, b1, ...``
    Layer ``i``'s weights, shape ``(sizes[i], sizes[i + 1])``, and biases,
    shape ``(sizes[i + 1],)``, all of the header's dtype.

:func:`load_model` reads it without pickle and checks every part (the zip's
members stored uncompressed and unencrypted, each name once, their declared
sizes within the file); anything unexpected raises :class:`ValueError`
naming the file.
"""

from __future__ import annotations

import io as _io
import json
import math
import os
import secrets
import stat
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from ._names import ACTIVATIONS, DTYPES, DTypeSpec
from ._names import dtype_name as _dtype_name

__all__ = ["ACTIVATIONS", "FORMAT", "FORMAT_VERSION", "ModelFile", "load_model", "save_model"]

#: The value of the header's ``format`` key.
FORMAT = "dlfr-model"
#: The format version this module writes and the only one it reads.
FORMAT_VERSION = 1
# ACTIVATIONS (from dlfr._names): the activation names a model file may
# name, unless the caller allows others.

_HEADER = "header"
# Header keys this module writes itself; ``extra`` may not override them.
_RESERVED = ("format", "format_version", "sizes", "activations", "dtype")
# A zip archive starts with a local file header, or is an empty archive.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class ModelFile:
    """The checked content of a model file.

    Attributes
    ----------
    sizes : list of int
        Units per layer, input first: ``[784, 16, 10]``.
    activations : list of str
        One activation name per layer (``len(sizes) - 1`` of them).
    weights : list of numpy.ndarray
        ``weights[i]`` has shape ``(sizes[i], sizes[i + 1])``, C-contiguous.
    biases : list of numpy.ndarray
        ``biases[i]`` has shape ``(sizes[i + 1],)``.
    dtype : numpy.dtype
        float32 or float64; every array has it.
    header : dict
        The whole JSON header, including any extra keys.
    """

    sizes: list[int]
    activations: list[str]
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    dtype: np.dtype
    header: dict


def _is_int(value: Any) -> bool:
    """True for a Python or NumPy integer that is not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_structure(
    sizes: Any, activations: Any, dtype_name: Any, allowed: Iterable[str]
) -> str | None:
    """Check the header fields that describe the network.

    Parameters
    ----------
    sizes, activations, dtype_name : object
        The values to check, as read from a header or passed to save.
    allowed : iterable of str
        Accepted activation names.

    Returns
    -------
    str or None
        A description of the first problem, or None if all is well.
    """
    if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
        return f"sizes must be a list of at least 2 layer sizes, got {sizes!r}"
    if not all(_is_int(n) and n >= 1 for n in sizes):
        return f"sizes must be positive integers, got {sizes!r}"
    if not isinstance(activations, (list, tuple)) or len(activations) != len(sizes) - 1:
        return (
            f"activations must list one name per layer ({len(sizes) - 1} for sizes "
            f"{list(sizes)}), got {activations!r}"
        )
    allowed = tuple(allowed)
    for name in activations:
        if not isinstance(name, str) or name not in allowed:
            return f"unknown activation {name!r} (allowed: {', '.join(allowed)})"
    if not isinstance(dtype_name, str) or dtype_name not in DTYPES:
        return f"dtype must be {' or '.join(map(repr, DTYPES))}, got {dtype_name!r}"
    return None


def _check_array(
    array: np.ndarray, name: str, shape: tuple[int, ...], dtype: np.dtype
) -> str | None:
    """Describe what is wrong with one weight or bias array, or return None."""
    if array.dtype != dtype:
        return f"{name} has dtype {array.dtype}, expected {dtype}"
    if array.shape != shape:
        return f"{name} has shape {array.shape}, expected {shape}"
    if not np.isfinite(array).all():
        return f"{name} holds non-finite values (NaN or infinity)"
    return None


def _check_layers(
    sizes: list[int], weights: list[np.ndarray], biases: list[np.ndarray], dtype: np.dtype
) -> str | None:
    """Check every layer's arrays against ``sizes`` and ``dtype``.

    Parameters
    ----------
    sizes : list of int
        Units per layer, already checked by :func:`_check_structure`.
    weights, biases : list of numpy.ndarray
        The arrays, layer by layer.
    dtype : numpy.dtype
        The dtype every array must have.

    Returns
    -------
    str or None
        A description of the first problem, or None if all is well.
    """
    n_layers = len(sizes) - 1
    if len(weights) != n_layers or len(biases) != n_layers:
        return (
            f"{n_layers} layers need {n_layers} weights and biases, "
            f"got {len(weights)} and {len(biases)}"
        )
    for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
        problem = _check_array(W, f"W{i}", (sizes[i], sizes[i + 1]), dtype) or _check_array(
            b, f"b{i}", (sizes[i + 1],), dtype
        )
        if problem:
            return problem
    return None


def save_model(
    path: str | os.PathLike[str],
    *,
    sizes: Sequence[int],
    activations: Sequence[str],
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    dtype: DTypeSpec,
    extra: dict[str, Any] | None = None,
    allowed_activations: Iterable[str] = ACTIVATIONS,
) -> None:
    """Write a model file.

    Everything is checked before anything is written, with the same rules
    :func:`load_model` applies, so a saved file always loads. The file is
    written to a temporary file in the same folder and then renamed over
    ``path``: a failed save leaves no partial file and an existing file at
    ``path`` intact.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write, exactly as given: unlike :func:`numpy.savez`, no
        ``.npz`` is appended.
    sizes : sequence of int
        Units per layer, input first, at least two.
    activations : sequence of str
        One activation name per layer.
    weights : sequence of numpy.ndarray
        ``weights[i]`` of shape ``(sizes[i], sizes[i + 1])``.
    biases : sequence of numpy.ndarray
        ``biases[i]`` of shape ``(sizes[i + 1],)``.
    dtype : {"float32", "float64"}
        The dtype every array must already have (nothing is converted).
    extra : dict, optional
        More JSON-serialisable header entries, e.g. ``{"dlfr_version": "0.1.0"}``.
        They may not replace the keys this function writes.
    allowed_activations : iterable of str, default ACTIVATIONS
        Accepted activation names.

    Raises
    ------
    ValueError
        If the structure, an array's shape, dtype or values, or ``extra``
        is invalid (the message names the file and the problem).
    TypeError
        If ``extra`` is not a dict or cannot be written as JSON.
    OSError
        If the file cannot be written.
    """
    path = os.fspath(path)
    dtype_name = _dtype_name(dtype)
    sizes, activations = list(sizes), list(activations)
    weights, biases = list(weights), list(biases)

    problem = _check_structure(sizes, activations, dtype_name or dtype, allowed_activations)
    if problem is None:
        weights = [np.asarray(W) for W in weights]
        biases = [np.asarray(b) for b in biases]
        problem = _check_layers(sizes, weights, biases, np.dtype(dtype_name))
    if problem:
        raise ValueError(f"cannot save model to {path}: {problem}")
    arrays: dict[str, Any] = {}
    for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
        arrays[f"W{i}"], arrays[f"b{i}"] = W, b

    extra = {} if extra is None else extra
    if not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict, got {type(extra).__name__}")
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise ValueError(f"cannot save model to {path}: extra may not set {clash}")
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sizes": [int(n) for n in sizes],
        "activations": activations,
        "dtype": dtype_name,
        **extra,
    }
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot save model to {path}: extra is not plain JSON ({exc})") from exc
    arrays[_HEADER] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    # Writing to a file object stops numpy from appending ".npz".
    write_atomically(path, lambda f: np.savez(f, **arrays))


def write_atomically(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> None:
    """Write a file at exactly ``path`` through ``write(f)``, all or nothing.

    The bytes go to a hidden, random name beside the target (so os.replace
    stays on one filesystem), are synced, and then renamed over the target;
    on any error, KeyboardInterrupt included, the temporary file is removed
    and ``path`` is left as it was. A symlink at ``path`` is written through
    (its target is replaced, the link stays); an existing file keeps its
    permission bits. Errors name ``path``, never the temporary file.
    """
    path = os.fspath(path)
    # write through a symlink: the file replaced is its target, in the target's folder
    target = os.path.realpath(path) if os.path.islink(path) else path
    folder, base = os.path.split(target)
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, _temporary_name(folder, base))
        try:
            # 0o666 lets the umask decide the final permissions, as open() would.
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise _naming(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None and not hasattr(os, "fchmod"):
            os.chmod(tmp, mode)
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise _naming(exc, path) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _temporary_name(folder: str, base: str) -> str:
    """A hidden random name for a file about to become ``base``, within NAME_MAX."""
    token = secrets.token_hex(4)
    name = f".{base}.{token}.tmp"
    try:
        name_max = os.pathconf(folder or ".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or no answer
        name_max = 255
    if len(os.fsencode(name)) > name_max:
        name = f".{token}.tmp"  # the target's name is near the limit: a short name of its own
    return name


def _naming(exc: OSError, path: str) -> OSError:
    """``exc`` about ``path`` instead of the temporary file it came from."""
    exc.filename, exc.filename2 = path, None
    return exc


#: What parsing untrusted zip and .npy structures may raise; all mean "corrupt file".
_PARSE_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
    OverflowError, struct.error, UnicodeDecodeError, NotImplementedError, RuntimeError,
    SyntaxError, TypeError, KeyError, IndexError, MemoryError, tokenize.TokenError,
)
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a zip local file header, 30 bytes
_ENCRYPTED = 0x1 | 0x40  # general purpose flags: encrypted, strong encryption
_TOO_BIG = "declares more bytes than the file holds"


def open_regular(path: str | os.PathLike[str], what: str = "") -> IO[bytes]:
    """Open an existing regular file for reading, binary; anything else is refused.

    A FIFO, a device or a socket would block or never end: ``os.stat`` says
    what the path is before anything opens it, and the file is opened without
    blocking and checked again (it could have been swapped in between).

    Raises
    ------
    FileNotFoundError
        If nothing is at ``path``.
    ValueError
        If ``path`` is not a regular file (the message names it and says what it is).
    """
    name = os.fspath(path)
    prefix = f"{what} " if what else ""

    def refuse(mode: int) -> ValueError:
        kind = (
            "a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
        )
        return ValueError(f"{prefix}{name} is {kind}; expected a regular file")

    mode = os.stat(name).st_mode
    if not stat.S_ISREG(mode):
        raise refuse(mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(name, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise refuse(mode)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def npy_header(f: IO[bytes], size: int) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Read and check an .npy header at ``f``'s position; ``size`` bytes follow it in all.

    Returns the shape, whether it is in Fortran order, the dtype, and the
    offset of the data from where the header started. The data must be
    exactly ``prod(shape) * itemsize`` bytes, so what the header declares is
    checked against what the file holds before anything is allocated.

    Raises
    ------
    ValueError
        Without the file's name (the caller adds it).
    """
    start = f.tell()
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except _PARSE_ERRORS as exc:
        if isinstance(exc, ValueError) and "pickle" in str(exc):
            raise
        raise ValueError(f"not a .npy array ({type(exc).__name__}: {str(exc)[:200]})") from None
    if dtype.hasobject:
        raise ValueError("a pickled object array, which is refused")
    if not all(_is_int(n) and n >= 0 for n in shape):
        raise ValueError(f"not a .npy array (shape {shape})")
    offset = f.tell() - start
    need = math.prod(shape) * dtype.itemsize
    if need != size - offset:
        raise ValueError(
            f"an array declaring shape {shape} of {dtype} ({need:,} bytes) but holding "
            f"{max(size - offset, 0):,} bytes of data"
        )
    return tuple(shape), bool(fortran), dtype, offset


class _Archive:
    """The members of a checked model archive, read one at a time."""

    def __init__(self, zf: zipfile.ZipFile, name: str) -> None:
        self._zf, self._name = zf, name
        self.members = {_key(info.filename): info for info in zf.infolist()}
        self.files = list(self.members)

    def __getitem__(self, key: str) -> np.ndarray:
        info = self.members[key]
        with self._zf.open(info) as member:
            raw = member.read(info.file_size + 1)  # at most what the file holds (checked)
        if len(raw) != info.file_size:
            raise EOFError(f"{len(raw)} of {info.file_size} bytes")
        if not info.filename.endswith(".npy"):
            raise ValueError("not a .npy array")
        buffer = _io.BytesIO(raw)
        shape, fortran, dtype, offset = npy_header(buffer, len(raw))
        flat = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=offset)
        return flat.reshape(shape, order="F" if fortran else "C")


def _key(member: str) -> str:
    """A member's array name, as numpy.load names it: ``W0.npy`` -> ``W0``."""
    return member[: -len(".npy")] if member.endswith(".npy") else member


def _open_archive(f: IO[bytes], size: int, name: str) -> zipfile.ZipFile:
    """The zip archive in ``f`` (``size`` bytes), with every member checked before use.

    The format is numpy.savez's: stored (uncompressed), unencrypted members,
    each name once, and every member's declared sizes within the file.
    """
    try:
        zf = zipfile.ZipFile(f)
    except _PARSE_ERRORS as exc:
        raise ValueError(f"{name}: not a readable .npz archive ({exc})") from None
    try:
        seen: set[str] = set()
        total = 0
        for info in zf.infolist():
            member = info.filename
            key = _key(member)
            if key in seen:
                raise ValueError(f"{name}: the archive holds {key!r} more than once")
            seen.add(key)
            if info.flag_bits & _ENCRYPTED:
                raise ValueError(f"{name}: member {member!r} is encrypted")
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(
                    f"{name}: member {member!r} is compressed (zip method "
                    f"{info.compress_type}); a model file is an uncompressed .npz"
                )
            if info.file_size != info.compress_size:
                raise ValueError(
                    f"{name}: member {member!r} declares {info.file_size:,} bytes stored "
                    f"in {info.compress_size:,}"
                )
            total += info.compress_size
            if total > size or not 0 <= info.header_offset <= size - _LOCAL_HEADER.size:
                raise ValueError(f"{name}: member {member!r} {_TOO_BIG}")
            f.seek(info.header_offset)
            local = f.read(_LOCAL_HEADER.size)
            if len(local) != _LOCAL_HEADER.size:
                raise ValueError(f"{name}: member {member!r} has no local header")
            fields = _LOCAL_HEADER.unpack(local)
            signature, flags, method = fields[0], fields[3], fields[4]
            name_len, extra_len = fields[10], fields[11]
            if signature != b"PK\x03\x04":
                raise ValueError(f"{name}: member {member!r} has a bad local header")
            if flags & _ENCRYPTED:
                raise ValueError(f"{name}: member {member!r} is encrypted")
            if method != zipfile.ZIP_STORED:
                raise ValueError(
                    f"{name}: member {member!r} is compressed (zip method {method}); "
                    "a model file is an uncompressed .npz"
                )
            end = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
            if end + info.compress_size > size:
                raise ValueError(f"{name}: member {member!r} {_TOO_BIG}")
    except BaseException:
        zf.close()
        raise
    return zf


def _load_member(npz: Any, key: str, name: str) -> np.ndarray:
    """Read one array of an open archive, turning every failure into ValueError."""
    try:
        return npz[key]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ValueError(f"{name}: {key} is a pickled object array, which is refused") from None
        raise ValueError(f"{name}: {key} is {exc}") from None
    except _PARSE_ERRORS as exc:
        raise ValueError(f"{name}: {key} is corrupt ({type(exc).__name__}: {exc})") from None


def _parse_header(array: np.ndarray, name: str) -> dict:
    """Decode and check the JSON header; raise ValueError naming the file."""
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ValueError(
            f"{name}: header must be a 1-D uint8 array of JSON bytes, "
            f"got {array.dtype} of shape {array.shape}"
        )
    try:
        header = json.loads(array.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, too deep, huge numbers
        raise ValueError(f"{name}: header is not UTF-8 JSON ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{name}: header is not a JSON object")
    if header.get("format") != FORMAT:
        raise ValueError(
            f"{name}: not a dlfr model file (header format is {header.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    version = header.get("format_version")
    if not _is_int(version):
        raise ValueError(f"{name}: format_version must be an integer, got {version!r}")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{name}: unknown format_version {version} (this dlfr reads version {FORMAT_VERSION})"
        )
    return header


def load_model(
    path: str | os.PathLike[str],
    *,
    allowed_activations: Iterable[str] = ACTIVATIONS,
) -> ModelFile:
    """Read and check a model file written by :func:`save_model`.

    Nothing is unpickled; nothing in it is
    executed. Every part is checked: the header exists, parses, and names a
    known format and version; sizes, activations and dtype are valid; the
    archive holds exactly ``header, W0, b0, ...``; every array has the
    header's dtype, the shape the sizes imply, and finite values.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    allowed_activations : iterable of str, default ACTIVATIONS
        Accepted activation names.

    Returns
    -------
    ModelFile
        The sizes, activations, arrays, dtype and header.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the path is not a regular file (a FIFO, a folder: nothing blocks),
        the file is not a readable zip, its members are compressed, encrypted,
        named twice or declare more bytes than the file holds, it is not a
        dlfr model, or any check fails; the message names the file and the
        problem. Declared sizes and shapes are checked against the file's size
        before anything is allocated.
    """
    name = os.fspath(path)
    with open_regular(name) as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(4) not in _ZIP_MAGIC:
            raise ValueError(f"{name}: not a dlfr model file (not an .npz zip archive)")
        f.seek(0)
        with _open_archive(f, size, name) as zf:
            return _read_model(_Archive(zf, name), name, tuple(allowed_activations))


def _read_model(npz: Any, name: str, allowed: tuple[str, ...]) -> ModelFile:
    """Check and read the content of an open .npz; see :func:`load_model`."""
    members = set(npz.files)
    if _HEADER not in members:
        raise ValueError(f"{name}: not a dlfr model file (no header array)")
    header = _parse_header(_load_member(npz, _HEADER, name), name)
    sizes: Any = header.get("sizes")
    activations: Any = header.get("activations")
    problem = _check_structure(sizes, activations, header.get("dtype"), allowed)
    if problem:
        raise ValueError(f"{name}: {problem}")

    n_layers = len(sizes) - 1
    expected = {_HEADER} | {f"{p}{i}" for i in range(n_layers) for p in "Wb"}
    if members != expected:
        missing, unexpected = sorted(expected - members), sorted(members - expected)
        raise ValueError(
            f"{name}: arrays do not match sizes {sizes}: missing {missing}, unexpected {unexpected}"
        )

    weights = [_load_member(npz, f"W{i}", name) for i in range(n_layers)]
    biases = [_load_member(npz, f"b{i}", name) for i in range(n_layers)]
    dtype = np.dtype(header["dtype"])
    problem = _check_layers(sizes, weights, biases, dtype)
    if problem:
        raise ValueError(f"{name}: {problem}")
    return ModelFile(
        sizes=[int(n) for n in sizes],
        activations=list(activations),
        # Arrays saved in Fortran order load that way; kernels want C order.
        weights=[np.ascontiguousarray(W) for W in weights],
        biases=[np.ascontiguousarray(b) for b in biases],
        dtype=dtype,
        header=header,
    )
