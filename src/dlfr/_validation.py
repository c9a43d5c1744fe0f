"""Every input check of dlfr's public calls, in one place.

Policy (docs/design.md): float32 stays float32, float64 stays float64, other real
numbers are converted; bool, complex, object, string and other non-numeric
dtypes raise TypeError naming the argument and the dtype. Messages name the
argument, what was expected and what was given. Checks run once, at the
public boundary; the compiled kernels never see a bad shape or a
non-contiguous buffer.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)


def real_dtype(name: str, dtype: Any) -> np.dtype:
    """The network dtype named by ``dtype`` (float32 or float64), or ValueError."""
    try:
        dt = None if dtype is None else np.dtype(dtype)  # np.dtype(None) is float64
    except TypeError:
        dt = None
    if dt is None or dt.type not in (F32.type, F64.type):
        raise ValueError(f"{name} must be 'float32' or 'float64'; got {dtype!r}")
    return F32 if dt.type is np.float32 else F64  # native byte order


def refuse_non_real(name: str, dt: Any) -> None:
    """TypeError unless ``dt`` holds real numbers (numpy and pandas' extension dtypes)."""
    if getattr(dt, "kind", "O") not in "iuf":
        raise TypeError(
            f"{name} must hold real numbers (float32, float64 or integers); got dtype {dt}"
        )


def as_array(x: Any, name: str, dtype: np.dtype | None = None) -> np.ndarray:
    """``x`` as a C-contiguous, native-order array of ``dtype``.

    Without ``dtype``, float32 and float64 are kept and other real dtypes
    become float64. The input is never modified; a copy is made only when
    its dtype, order or layout requires one.
    """
    # Fast path: already what the kernels want (the usual case on hot paths).
    if type(x) is np.ndarray and x.flags.c_contiguous and x.flags.aligned:
        dt = x.dtype
        if (dt is dtype) if dtype is not None else (dt is F32 or dt is F64):
            return x
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be an array of real numbers: {exc}") from None
    dt = arr.dtype
    refuse_non_real(name, dt)
    if dtype is None:
        # float32/float64 keep their width (big-endian too); the rest -> float64
        dtype = F32 if (dt.kind == "f" and dt.itemsize == 4) else F64
    out = np.asarray(arr, dtype=dtype, order="C")  # keeps 0-d arrays 0-d
    # e.g. arrays that arrived in a byte buffer (pickle, dask): the kernels
    # read whole elements, so they get an aligned copy
    return out if out.flags.aligned else out.copy()


def check_ndim(x: np.ndarray, name: str, ndim: int, what: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {what}; got shape {x.shape}")


def out_array(
    out: Any, shape: tuple[int, ...], dtype: np.dtype, inputs: tuple[np.ndarray, ...] = (),
    may_alias: tuple[np.ndarray, ...] = (),
) -> np.ndarray:
    """``out`` checked for a kernel to write into, or a new empty array.

    ``out`` must be an ndarray of exactly ``shape`` and ``dtype``, C-contiguous
    and writeable: dlfr never writes into a silent copy. It may be one of
    ``may_alias`` exactly (an elementwise kernel in place) but must not
    otherwise overlap any of ``inputs``.
    """
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise ValueError(f"out must be a numpy.ndarray; got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}; got {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"out must have dtype {dtype}; got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous (dlfr does not write into copies)")
    if not out.flags.writeable:
        raise ValueError("out must be writeable; got a read-only array")
    for x in inputs:
        if np.may_share_memory(out, x):
            same = any(
                out.__array_interface__["data"][0] == a.__array_interface__["data"][0]
                and out.strides == a.strides
                for a in may_alias
                if a is x
            )
            if not same and np.shares_memory(out, x):
                raise ValueError("out must not overlap the inputs (other than being one of them)")
    return out


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def positive_float(value: Any, name: str) -> float:
    """``value`` as a float, or ValueError unless it is a finite real number > 0
    (not a string, bool, complex or NaN)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    number = float(value)
    if not (np.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return number


def targets(y: Any, n_out: int, dtype: np.dtype, name: str = "y") -> np.ndarray:
    """Target rows (n, n_out) from integer labels or from rows given as they are.

    The one check of labels and targets: ``fit`` trains on what it returns and
    ``evaluate`` takes the labels of it, so both refuse the same ``y``.
    """
    arr = np.asarray(y)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold integer labels or target rows; got dtype {arr.dtype}")
    if arr.ndim == 1:
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise ValueError(f"{name} holds labels that are not whole numbers")
        labels = arr.astype(np.int64)
        if n_out == 1:
            if labels.size and not np.all((labels == 0) | (labels == 1)):
                raise ValueError(f"{name} must hold labels 0 or 1 for a network with one output")
            return labels.astype(dtype).reshape(-1, 1)
        if labels.size and (labels.min() < 0 or labels.max() >= n_out):
            bad = labels[(labels < 0) | (labels >= n_out)][0]
            raise ValueError(
                f"{name} holds label {bad}, outside 0..{n_out - 1} for a network with "
                f"{n_out} outputs"
            )
        out = np.zeros((labels.size, n_out), dtype=dtype)
        out[np.arange(labels.size), labels] = 1
        return out
    if arr.ndim == 2:
        if arr.shape[1] != n_out:
            raise ValueError(
                f"{name} has {arr.shape[1]} columns but the network has {n_out} outputs"
            )
        out = np.ascontiguousarray(arr, dtype=dtype)
        if not np.all(np.isfinite(out)):
            raise ValueError(f"{name} contains NaN or inf")
        return out
    raise ValueError(f"{name} must be 1-D labels or 2-D target rows; got shape {arr.shape}")
