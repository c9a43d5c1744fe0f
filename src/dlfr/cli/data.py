"""Arrays from the user's files: .npy, CSV and IDX arrays, an .npz holding X and y, or a folder
of MNIST IDX files. IDX and MNIST folders are read by :mod:`dlfr.datasets`; .npy headers are
checked by :mod:`dlfr.io` before anything is allocated."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import datasets
from .._names import DTypeName
from ..io import npy_header, open_regular
from .errors import CLIError
from .files import require_file

# A zip archive (an .npz) starts with a local file header, or is an empty archive.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def read_array(path: str, what: str) -> np.ndarray:
    """An array from an .npy file, a CSV of numbers, or an IDX file (gzipped or not)."""
    require_file(path, what)
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        with open_regular(path, what) as f:
            if f.read(4) in _ZIP_MAGIC:
                raise CLIError(f"{what} {path} is not an .npy array (it is an .npz archive)")
            f.seek(0)
            size = os.fstat(f.fileno()).st_size
            try:
                # the declared shape must match the file's size before anything is allocated
                npy_header(f, size)
                f.seek(0)
                array = np.load(f, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise CLIError(f"{what} {path} is not a readable .npy array: {exc}") from None
        return array
    if suffix in (".csv", ".txt"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # an empty file warns; make it an error
                return np.loadtxt(path, delimiter=",", ndmin=2)
        except (ValueError, UserWarning) as exc:
            raise CLIError(f"{what} {path} is not a CSV of numbers ({exc})") from None
    # Anything else is read as IDX, the MNIST format; read_idx names the file when it is not.
    return datasets.read_idx(path)


def features(X: np.ndarray, name: str) -> np.ndarray:
    """Samples as rows; a 1-D array is one sample. Only IDX images, (n, rows, cols)
    by the format's definition, are flattened: a 3-D .npy or CSV is refused, as
    the library refuses it."""
    if X.ndim == 0:
        raise CLIError(f"{name} holds a single number, not samples")
    if X.ndim == 1:
        return X.reshape(1, -1)
    if X.ndim > 2:
        if Path(name).suffix.lower() in (".npy", ".csv", ".txt", ".npz"):
            raise CLIError(
                f"{name} holds an array of shape {X.shape}; expected 2-D "
                "(n_samples, n_features)"
            )
        return X.reshape(len(X), -1)
    return X


def labels_from(y: np.ndarray, name: str) -> np.ndarray:
    """1-D labels (a single column counts as labels) or 2-D target rows."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim not in (1, 2):
        raise CLIError(f"{name} must hold 1-D labels or 2-D target rows, got shape {y.shape}")
    return y


@dataclass(frozen=True)
class TrainingData:
    """Samples and their labels, where they came from, and whether they are the bundled digits."""

    X: np.ndarray
    y: np.ndarray
    source: str
    bundled: bool


def training_data(
    data: str | None, labels: str | None, kind: str | None, dtype: DTypeName
) -> TrainingData:
    """What ``dlfr train`` trains on.

    Parameters
    ----------
    data : str or None
        None for the bundled MNIST digits; else a folder of MNIST IDX files, an .npz holding
        ``X`` and ``y``, or a file of samples (.npy, CSV, IDX) whose labels are in ``labels``.
    labels : str or None
        The labels' file, only with a file of samples.
    kind : str or None
        The IDX file prefix in an MNIST folder (default: ``train``, then ``t10k``).
    dtype : {"float32", "float64"}
        The dtype the MNIST readers scale pixels to; other files' arrays come as stored.
    """
    if data is None:
        if labels is not None:
            raise CLIError("--labels needs --data X.npy (the features the labels belong to)")
        X, y = datasets.load_mnist(dtype=dtype)
        return TrainingData(X, y, "bundled MNIST digits", bundled=True)
    if os.path.isdir(data):
        if labels is not None:
            raise CLIError("--labels cannot be used with an MNIST folder (it holds its labels)")
        for prefix in [kind] if kind else ["train", "t10k"]:
            try:
                X, y = datasets.load_mnist(data, kind=prefix, dtype=dtype)
                return TrainingData(X, y, f"MNIST {prefix} files in {data}", bundled=False)
            except FileNotFoundError as exc:
                missing = exc
        raise CLIError(str(missing))
    require_file(data, "data file")
    if Path(data).suffix.lower() == ".npz":
        if labels is not None:
            raise CLIError("--labels cannot be used with an .npz file (it holds y)")
        X, y = _read_npz(data)
    else:
        if labels is None:
            raise CLIError(
                f"--labels y.npy is required with --data {data} (or pass an .npz holding X and y)"
            )
        X = read_array(data, "data file")
        y = read_array(labels, "labels file")
    # raw uint8 pixels (as in IDX files) stay as they are: fit, evaluate and
    # predict all read them scaled by 1/255, the same numbers everywhere
    X = features(X, data)
    y = labels_from(y, labels or data)
    if len(X) != len(y):
        raise CLIError(f"{data} has {len(X)} samples but the labels number {len(y)}")
    return TrainingData(X, y, data, bundled=False)


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The arrays ``X`` and ``y`` of an .npz archive (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            absent = [k for k in ("X", "y") if k not in npz.files]
            if absent:
                raise CLIError(f"{path} must hold arrays X and y; it holds {sorted(npz.files)}")
            return npz["X"], npz["y"]
    except (ValueError, OSError, EOFError) as exc:
        raise CLIError(f"{path} is not a readable .npz archive ({exc})") from None
