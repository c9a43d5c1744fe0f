"""Small data sets: the bundled MNIST test digits, logic gates, and one-hot labels.

MNIST's 10,000 test digits ship inside the package (``dlfr/data``) in their
original IDX format; :func:`load_mnist` reads them, or any folder of IDX files.
:func:`read_idx` parses a single IDX file. The logic gates (:func:`xor`,
:func:`logic_gate`) are the classic four-sample problems for perceptrons and
small networks.
"""

from __future__ import annotations

import gzip
import importlib.resources
import math
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._names import DTypeSpec
from ._validation import class_labels, positive_int, real_dtype, refuse_non_real
from ._validation import one_hot as encode_one_hot

if TYPE_CHECKING:
    from importlib.abc import Traversable

__all__ = ["load_mnist", "read_idx", "xor", "logic_gate", "one_hot", "LOGIC_GATES"]

# IDX type code -> big-endian element type, as the format defines them.
_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"

# The four inputs every two-input logic gate is defined on.
_GATE_INPUTS = ((0, 0), (0, 1), (1, 0), (1, 1))

#: Truth tables of the supported gates, in the order of the inputs
#: ``(0, 0), (0, 1), (1, 0), (1, 1)``.
LOGIC_GATES = {
    "and": (0, 0, 0, 1),
    "or": (0, 1, 1, 1),
    "xor": (0, 1, 1, 0),
    "nand": (1, 1, 1, 0),
}

# MNIST images are 28 x 28 pixels, flattened row by row.
_MNIST_SHAPE = (28, 28)
_N_DIGITS = 10


def _read_bytes(source: Path | Traversable) -> bytes:
    """Read a file's content, decompressing it if it is gzipped.

    Gzip is recognised by its magic bytes, not by the file name, so a plain
    IDX file named ``.gz`` (or a gzipped one without the suffix) still loads.

    Parameters
    ----------
    source : pathlib.Path or importlib.resources.abc.Traversable
        The file; anything with an ``open("rb")`` method.

    Returns
    -------
    bytes
        The (decompressed) content.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is gzipped but the gzip stream is truncated or corrupt.
    """
    with source.open("rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        # A truncated stream raises EOFError, a bad CRC or trailer OSError.
        raise ValueError(f"{source}: corrupt or truncated gzip data ({exc})") from exc


def _parse_idx(data: bytes, name: str) -> np.ndarray:
    """Parse the bytes of an IDX file into an array.

    Parameters
    ----------
    data : bytes
        The whole (uncompressed) file.
    name : str
        The file's name, for error messages.

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order with the file's shape.

    Raises
    ------
    ValueError
        On a bad magic number, an unknown type code, or a data section
        shorter or longer than the dimensions say.
    """
    if len(data) < 4:
        raise ValueError(f"{name}: not an IDX file (only {len(data)} bytes, header needs 4)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{name}: not an IDX file (bad magic number 0x{data[:4].hex()}, "
            "the first two bytes must be zero)"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_TYPES:
        known = ", ".join(f"0x{code:02X}" for code in _IDX_TYPES)
        raise ValueError(f"{name}: unknown IDX type code 0x{type_code:02X} (known: {known})")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"{name}: truncated IDX header ({len(data)} bytes, {ndim} dimensions "
            f"need {header_size})"
        )
    # Dimensions are big-endian uint32; Python ints keep the product exact.
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    item = _IDX_TYPES[type_code]
    expected = math.prod(shape) * item.itemsize
    actual = len(data) - header_size
    if actual < expected:
        raise ValueError(
            f"{name}: truncated IDX data (shape {shape} needs {expected} bytes, file has {actual})"
        )
    if actual > expected:
        raise ValueError(
            f"{name}: {actual - expected} trailing bytes after the IDX data of shape {shape}"
        )
    flat = np.frombuffer(data, dtype=item, offset=header_size)
    # astype copies: the result is writable and in native byte order.
    return flat.astype(item.newbyteorder("="), copy=True).reshape(shape)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the format MNIST is distributed in).

    An IDX file is a 4-byte magic number (two zero bytes, a type code, the
    number of dimensions), one big-endian uint32 per dimension, then the
    data in C order, big-endian. The file may be gzipped.

    Parameters
    ----------
    path : str or os.PathLike
        The file, gzipped or plain (recognised by content, not by name).

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order. Its dtype follows the type
        code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
        0x0E float64.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not valid IDX (bad magic, unknown type code,
        truncated or trailing data) or its gzip stream is corrupt; the
        message names the file.

    Examples
    --------
    >>> labels = read_idx("t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
    >>> labels.shape, labels.dtype  # doctest: +SKIP
    ((10000,), dtype('uint8'))
    """
    source = Path(path)
    return _parse_idx(_read_bytes(source), str(source))


def _find_idx(folder: Path, kind: str, part: str, dims: int) -> Path:
    """Find the IDX file of ``kind`` and ``part`` in a folder.

    Parameters
    ----------
    folder : pathlib.Path
        The folder to look in.
    kind : str
        The set's prefix, e.g. ``"t10k"`` or ``"train"``.
    part : {"images", "labels"}
        Which file.
    dims : int
        Dimensions in the file name (3 for images, 1 for labels).

    Returns
    -------
    pathlib.Path
        The first candidate that exists.

    Raises
    ------
    FileNotFoundError
        If none of the accepted spellings exists; the message lists them.
    """
    candidates = []
    # Both the original "-idx3-ubyte" and the common ".idx3-ubyte" spelling.
    for stem in (f"{kind}-{part}-idx{dims}-ubyte", f"{kind}-{part}.idx{dims}-ubyte"):
        candidates += [stem, stem + ".gz"]
    for candidate in candidates:
        if (folder / candidate).is_file():
            return folder / candidate
    raise FileNotFoundError(
        f"no MNIST {part} file for kind={kind!r} in {folder}; looked for: " + ", ".join(candidates)
    )


def load_mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    kind: str = "t10k",
    dtype: DTypeSpec = "float32",
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST digits: the bundled test set, or IDX files from a folder.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A folder holding ``{kind}-images-idx3-ubyte`` and
        ``{kind}-labels-idx1-ubyte``, each optionally gzipped (``.gz``);
        the ``{kind}-images.idx3-ubyte`` spelling is accepted too. Without
        it, the 10,000 test digits bundled with dlfr are loaded.
    kind : str, default "t10k"
        The file prefix, e.g. ``"t10k"`` or ``"train"``. Only ``"t10k"`` is
        bundled.
    dtype : {"float32", "float64"}, default "float32"
        The dtype of ``X``.

    Returns
    -------
    X : numpy.ndarray
        Shape (n_samples, 784): each 28 x 28 image flattened row by row,
        pixels scaled from 0-255 to [0, 1].
    y : numpy.ndarray
        Shape (n_samples,), int64 labels 0-9.

    Raises
    ------
    ValueError
        If ``dtype`` is not float32 or float64, if ``kind`` is not
        ``"t10k"`` without a path, or if the files are corrupt, are not
        28 x 28 uint8 images and uint8 labels, hold different numbers of
        samples, or have labels outside 0-9 (the message names the file).
    FileNotFoundError
        If the folder or a file in it is missing; the message lists the
        file names looked for.

    Notes
    -----
    MNIST is by Yann LeCun and Corinna Cortes and is available under
    CC BY-SA 3.0. The bundled test set's label counts for digits 0-9 are
    980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009.

    Examples
    --------
    >>> X, y = load_mnist()  # doctest: +SKIP
    >>> X.shape, X.dtype, y[:5]  # doctest: +SKIP
    ((10000, 784), dtype('float32'), array([7, 2, 1, 0, 4]))
    """
    out_dtype = real_dtype("dtype", dtype)
    if path is None:
        if kind != "t10k":
            raise ValueError(
                f"only kind='t10k' is bundled, got kind={kind!r}; pass path= to a folder "
                "holding the other IDX files"
            )
        data = importlib.resources.files("dlfr") / "data"
        images_file = data / "t10k-images-idx3-ubyte.gz"
        labels_file = data / "t10k-labels-idx1-ubyte.gz"
    else:
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"MNIST folder {folder} does not exist or is not a folder")
        images_file = _find_idx(folder, kind, "images", 3)
        labels_file = _find_idx(folder, kind, "labels", 1)
    images = _parse_idx(_read_bytes(images_file), str(images_file))
    labels = _parse_idx(_read_bytes(labels_file), str(labels_file))

    if images.dtype != np.uint8 or images.shape[1:] != _MNIST_SHAPE:
        raise ValueError(
            f"{images_file}: expected uint8 images of shape (n, 28, 28), "
            f"got {images.dtype} of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_file}: expected a 1-D uint8 array of labels, "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{images_file} holds {len(images)} images but {labels_file} holds {len(labels)} labels"
        )
    bad = np.flatnonzero(labels >= _N_DIGITS)
    if bad.size:
        raise ValueError(f"{labels_file}: label {labels[bad[0]]} at index {bad[0]} is outside 0-9")

    X = images.reshape(len(images), -1).astype(out_dtype)
    X /= out_dtype.type(255)
    return X, labels.astype(np.int64)


def logic_gate(name: str, dtype: DTypeSpec = "float32") -> tuple[np.ndarray, np.ndarray]:
    """The truth table of a two-input logic gate as a data set.

    Parameters
    ----------
    name : {"and", "or", "xor", "nand"}
        The gate (case-insensitive).
    dtype : {"float32", "float64"}, default "float32"
        The dtype of ``X``.

    Returns
    -------
    X : numpy.ndarray
        Shape (4, 2): the inputs ``[[0, 0], [0, 1], [1, 0], [1, 1]]``.
    y : numpy.ndarray
        Shape (4,), int64: the gate's output for each input.

    Raises
    ------
    ValueError
        For an unknown gate name or a dtype other than float32/float64.

    Examples
    --------
    >>> X, y = logic_gate("and")
    >>> y
    array([0, 0, 0, 1])
    """
    out_dtype = real_dtype("dtype", dtype)
    key = name.lower() if isinstance(name, str) else name
    if key not in LOGIC_GATES:
        raise ValueError(f"unknown logic gate {name!r}; choose one of {sorted(LOGIC_GATES)}")
    X = np.array(_GATE_INPUTS, dtype=out_dtype)
    y = np.array(LOGIC_GATES[key], dtype=np.int64)
    return X, y


def xor(dtype: DTypeSpec = "float32") -> tuple[np.ndarray, np.ndarray]:
    """The XOR problem: four points no single straight line separates.

    Parameters
    ----------
    dtype : {"float32", "float64"}, default "float32"
        The dtype of ``X``.

    Returns
    -------
    X : numpy.ndarray
        Shape (4, 2): ``[[0, 0], [0, 1], [1, 0], [1, 1]]``.
    y : numpy.ndarray
        Shape (4,), int64: ``[0, 1, 1, 0]``.

    See Also
    --------
    logic_gate : AND, OR, NAND and XOR.

    Examples
    --------
    >>> X, y = xor()
    >>> y
    array([0, 1, 1, 0])
    """
    return logic_gate("xor", dtype)


def one_hot(y: Any, n_classes: int | None = None, dtype: DTypeSpec = "float32") -> np.ndarray:
    """Encode integer class labels as one-hot rows.

    Parameters
    ----------
    y : array_like
        1-D class labels: integers, or floats holding whole numbers.
    n_classes : int, optional
        The number of classes (columns). Defaults to ``max(y) + 1``.
    dtype : {"float32", "float64"}, default "float32"
        The dtype of the result.

    Returns
    -------
    numpy.ndarray
        Shape (len(y), n_classes): row i is 1 in column ``y[i]``, 0 elsewhere.

    Raises
    ------
    TypeError
        If ``y`` has a bool, complex, object, string or other non-real dtype.
    ValueError
        If ``y`` is not 1-D, holds a negative, non-whole or non-finite
        label, or a label ``>= n_classes``; if ``n_classes`` is not a
        positive integer; if ``y`` is empty and ``n_classes`` is not given.

    Examples
    --------
    >>> one_hot([0, 2, 1])
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    """
    out_dtype = real_dtype("dtype", dtype)
    labels = np.asarray(y)
    refuse_non_real("y", labels.dtype, "integer class labels")
    if labels.ndim != 1:
        raise ValueError(f"y must be 1-D class labels, got shape {labels.shape}")
    if n_classes is not None:
        n_classes = positive_int(n_classes, "n_classes")
    checked = class_labels(labels, "y", n_classes, f"for n_classes={n_classes}")
    if n_classes is None:
        if labels.size == 0:
            raise ValueError("y is empty: pass n_classes to say how many columns to make")
        n_classes = int(labels.max()) + 1
    return encode_one_hot(checked, n_classes, out_dtype)
