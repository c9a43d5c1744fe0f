"""Every input check of dlfr's public Python calls, in one place.

Policy (docs/design.md): float32 stays float32, float64 stays float64, other real
numbers are converted; bool, complex, object, string and other non-numeric
dtypes raise TypeError naming the argument and the dtype. Messages name the
argument, what was expected and what was given. Checks run once, at the
public boundary; the compiled kernels never see a bad shape or a
non-contiguous buffer. (The compiled engine's entry points repeat the
hot-path checks of X in C, with the same messages: see docs/architecture.md.)
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._names import DTYPES, dtype_name

F32 = DTYPES["float32"]
F64 = DTYPES["float64"]
U8 = np.dtype(np.uint8)
#: uint8 input is pixels everywhere (forward, predict, fit, kernels.dense): value / 255
U8_SCALE = 1.0 / 255.0


def real_dtype(name: str, dtype: Any) -> np.dtype:
    """The network dtype named by ``dtype`` (float32 or float64), or ValueError."""
    found = dtype_name(dtype)
    if found is None:
        choices = " or ".join(map(repr, DTYPES))
        raise ValueError(f"{name} must be {choices}; got {dtype!r}")
    return DTYPES[found]  # native byte order


def refuse_non_real(
    name: str, dt: Any, what: str = "real numbers (float32, float64 or integers)"
) -> None:
    """TypeError unless ``dt`` holds real numbers (numpy and pandas' extension dtypes).

    The one refusal of bool, complex, object and string dtypes; ``what`` says
    what ``name`` should have held.
    """
    if getattr(dt, "kind", "O") not in "iuf":
        raise TypeError(f"{name} must hold {what}; got dtype {dt}")


def ready(x: Any, dtypes: tuple[np.dtype, ...]) -> bool:
    """True for an ndarray the kernels read as it is: C-contiguous, aligned and
    of one of ``dtypes`` (native byte order). The one test of "ready" in Python."""
    return (type(x) is np.ndarray and x.flags.c_contiguous and x.flags.aligned
            and x.dtype in dtypes)


def as_ndarray(x: Any, name: str) -> np.ndarray:
    """``np.asarray(x)``, or TypeError naming ``name`` for what NumPy cannot read
    as one array (ragged rows, say)."""
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be an array of real numbers: {exc}") from None


def as_array(x: Any, name: str, dtype: np.dtype | None = None) -> np.ndarray:
    """``x`` as a C-contiguous, native-order array of ``dtype``.

    Without ``dtype``, float32 and float64 are kept and other real dtypes
    become float64. The input is never modified; a copy is made only when
    its dtype, order or layout requires one.
    """
    # Fast path: already what the kernels want (the usual case on hot paths).
    if ready(x, (F32, F64) if dtype is None else (dtype,)):
        return x
    arr = as_ndarray(x, name)
    dt = arr.dtype
    refuse_non_real(name, dt)
    if dtype is None:
        # float32/float64 keep their width (big-endian too); the rest -> float64
        dtype = F32 if (dt.kind == "f" and dt.itemsize == 4) else F64
    out = np.asarray(arr, dtype=dtype, order="C")  # keeps 0-d arrays 0-d
    # e.g. arrays that arrived in a byte buffer (pickle, dask): the kernels
    # read whole elements, so they get an aligned copy
    return out if out.flags.aligned else out.copy()


def as_float_input(x: Any, name: str, dtype: np.dtype) -> np.ndarray:
    """``x`` as ``as_array`` makes it, uint8 read as pixels (value / 255): X as
    ``fit`` and ``kernels.dense`` compute with it."""
    arr = as_ndarray(x, name)
    out = as_array(arr, name, dtype)
    if arr.dtype == U8:
        out *= dtype.type(U8_SCALE)  # as_array made a float copy already
    return out


def network_input(x: Any, dtype: np.dtype, n_in: int) -> np.ndarray:
    """X as a network's forward pass takes it: (n, n_in), of ``dtype`` or uint8
    (raw pixels, which the engine scales itself)."""
    if not (ready(x, (dtype, U8)) and x.ndim == 2):
        arr = as_ndarray(x, "X")
        x = as_array(arr, "X", U8 if arr.dtype == U8 else dtype)
        check_ndim(x, "X", 2, "(n_samples, n_features)")
    check_features(x, "X", n_in)
    return x


def check_ndim(x: np.ndarray, name: str, ndim: int, what: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {what}; got shape {x.shape}")


def check_features(x: np.ndarray, name: str, n_in: int) -> None:
    """ValueError unless the 2-D ``x`` has the network's ``n_in`` columns."""
    if x.shape[1] != n_in:
        raise ValueError(
            f"{name} has {x.shape[1]} features (shape {x.shape}) but the network expects {n_in}"
        )


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


def real_number(value: Any, name: str, low: float, high: float = np.inf,
                low_open: bool = False, high_open: bool = True) -> float:
    """``value`` as a float, or ValueError unless it is a real number (not a
    string, bool, complex or NaN) in the interval from ``low`` to ``high``,
    each end open or closed as asked; the message says which interval."""
    inside = False
    if not isinstance(value, bool) and isinstance(value, numbers.Real):
        number = float(value)
        inside = ((low < number if low_open else low <= number)
                  and (number < high if high_open else number <= high))
    if not inside:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        upper = "inf" if high == np.inf else f"{high:g}"
        raise ValueError(f"{name} must be a real number in {left}{low:g}, {upper}{right}; "
                         f"got {value!r}")
    return number


def non_negative_float(value: Any, name: str) -> float:
    """``value`` as a float, or ValueError unless it is a finite real number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a non-negative finite number; got {value!r}")
    number = float(value)
    if not (np.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be a non-negative finite number; got {value!r}")
    return number


def open_fraction(value: Any, name: str) -> float:
    """``value`` as a float, or ValueError unless it is a real number strictly
    between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < 1:
        raise ValueError(f"{name} must be a number strictly between 0 and 1; got {value!r}")
    return float(value)


def flag(value: Any, name: str) -> bool:
    """``value`` as a bool, or ValueError unless it is True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def sample_weights(w: Any, n: int, dtype: np.dtype, name: str = "sample_weight") -> np.ndarray:
    """Per-sample weights as a C-contiguous (n,) array of ``dtype``: real numbers,
    finite, non-negative, not all zero (also after rounding to ``dtype``). A
    refusal names the first bad weight and where it is."""
    arr = as_ndarray(w, name)
    refuse_non_real(name, arr.dtype, "real numbers (one weight per sample)")
    if arr.shape != (n,):
        raise ValueError(f"{name} must be 1-D with one weight per sample, shape ({n},); "
                         f"got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name} must hold finite weights >= 0; {name}[{i}] = {arr[i].item()!r}")
    with np.errstate(over="ignore"):  # a weight too large for float32: refused below
        out = np.ascontiguousarray(arr, dtype=dtype)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}] = {arr[i].item()!r} is too large for {dtype}")
    if not out.any():
        raise ValueError(f"{name} is all zero (in {dtype}): there is nothing to train on")
    return out if out.flags.aligned else out.copy()


def class_labels(y: np.ndarray, name: str, n_classes: int | None, limit: str) -> np.ndarray:
    """The 1-D labels ``y`` (of a real dtype) as intp: whole numbers from 0, and
    below ``n_classes`` unless it is None. ``limit`` says where n_classes comes
    from ("for a network with 10 outputs"); a refusal names the first bad label
    and where it is."""

    def first(bad: np.ndarray) -> int | None:
        where = np.flatnonzero(bad)
        return int(where[0]) if where.size else None

    if y.dtype.kind == "f":
        i = first(~np.isfinite(y) | (y != np.floor(y)))
        if i is not None:
            raise ValueError(f"{name} holds labels that are not whole numbers "
                             f"({name}[{i}] = {y[i].item()!r})")
    i = first(y < 0)
    if i is not None:
        raise ValueError(f"{name} holds label {int(y[i])}, below 0 (at {name}[{i}])")
    if n_classes is not None:
        i = first(y >= n_classes)
        if i is not None:
            raise ValueError(f"{name} holds label {int(y[i])}, outside 0..{n_classes - 1} "
                             f"{limit} (at {name}[{i}])")
    return y.astype(np.intp)


def one_hot(labels: np.ndarray, n_classes: int, dtype: np.dtype) -> np.ndarray:
    """Rows (len(labels), n_classes) of ``dtype``, row i 1 in column labels[i]: the
    one one-hot encoding (``datasets.one_hot``, ``targets``), of labels that
    ``class_labels`` checked."""
    rows = np.zeros((labels.size, n_classes), dtype=dtype)
    rows[np.arange(labels.size), labels] = 1
    return rows


def targets(y: Any, n_out: int, dtype: np.dtype, name: str = "y") -> np.ndarray:
    """Target rows (n, n_out) from integer labels or from rows given as they are.

    The one check of labels and targets: ``fit`` trains on what it returns and
    ``evaluate`` takes the labels of it, so both refuse the same ``y``.
    """
    arr = np.asarray(y)
    refuse_non_real(name, arr.dtype, "integer labels or target rows")
    if arr.ndim == 1:
        if n_out == 1:
            if arr.size and not np.all((arr == 0) | (arr == 1)):
                raise ValueError(f"{name} must hold labels 0 or 1 for a network with one output")
            return arr.astype(dtype).reshape(-1, 1)
        labels = class_labels(arr, name, n_out, f"for a network with {n_out} outputs")
        return one_hot(labels, n_out, dtype)
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
