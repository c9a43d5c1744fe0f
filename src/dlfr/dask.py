"""Batch inference on dask arrays and dask DataFrames: ``import dlfr.dask``.

Not imported by ``import dlfr`` (dask is an optional extra:
``pip install dlfr[dask]``). Every check runs here, when the graph is built,
before any task is submitted; the blocks then run ``Network.forward`` /
``Network.predict`` unchanged. A row's result is the in-memory one bit for
bit, however the rows are chunked: dlfr's forward pass is batch-invariant
(each output is the same arithmetic whatever batch its row is in), except
in layers it leaves to BLAS (over 64 units at a SIMD level without
AVX-512), which agree to rounding only.

The network enters the graph once, as a single key that every block depends
on (``dask.delayed(net)``), not copied into each block's task: on a
distributed cluster it is sent to each worker once per graph and kept there
while the graph runs.

Threads: each block limits dlfr's own threads to its share of the worker, so
that tasks running side by side do not oversubscribe the cores. On a
distributed worker the share is the worker's ``nthreads`` divided among the
tasks it is executing at that moment (1 when every thread is busy); under the
local threaded or process schedulers it is 1, since dask already runs one
block per core. ``n_threads=`` overrides this.
"""

from __future__ import annotations

import numbers
from typing import Any

# Absolute imports: these are the real dask packages, not this module.
import dask
import dask.array as da
import numpy as np

from ._validation import refuse_non_real
from .network import Network

_U8 = np.dtype(np.uint8)
_I64 = np.dtype(np.int64)


# -- checks at graph-construction time ------------------------------------------
def _check_network(net: Any) -> Network:
    if not isinstance(net, Network):
        raise TypeError(f"net must be a dlfr.Network; got {type(net).__name__}")
    return net


def _check_n_threads(n_threads: Any) -> int | None:
    if n_threads is None:
        return None
    if isinstance(n_threads, numbers.Integral) and not isinstance(n_threads, bool) \
            and int(n_threads) >= 1:
        return int(n_threads)
    raise ValueError(f"n_threads must be None or a positive integer; got {n_threads!r}")


def _check_n_features(net: Network, n_features: Any, what: str) -> None:
    n_in = net.layers[0].n_in
    if n_features != n_in:
        raise ValueError(f"{what} has {n_features} features but the network expects {n_in}")


# -- what runs on the workers ---------------------------------------------------
def task_threads() -> int:
    """dlfr threads for one block: this task's share of its worker (see the module doc)."""
    try:
        from distributed import get_worker

        state = get_worker().state
    except (ImportError, ValueError, AttributeError):
        return 1  # not on a distributed worker: a local scheduler, one block per core
    try:
        busy = max(1, int(state.executing_count))
        return max(1, int(state.nthreads) // busy)
    except (AttributeError, TypeError, ValueError):
        return 1


def _run_block(X: np.ndarray, net: Network, proba: bool, n_threads: int | None,
               check_finite: bool) -> np.ndarray:
    threads = task_threads() if n_threads is None else n_threads
    if proba:
        return net.forward(X, n_threads=threads, check_finite=check_finite)
    return net.predict(X, n_threads=threads,
                       check_finite=check_finite).astype(_I64, copy=False)


def _predict_block(X: np.ndarray, net: Network, proba: bool, n_threads: int | None,
                   check_finite: bool = True, block_info: Any = None) -> np.ndarray:
    try:
        return _run_block(X, net, proba, n_threads, check_finite)
    except ValueError as exc:
        row = getattr(exc, "dlfr_row", None)
        if row is None or not block_info:
            raise
        start = block_info[0]["array-location"][0][0]  # the block's first row in X
        raise ValueError(f"X holds NaN or inf in row {start + row}; pass check_finite=False "
                         "to compute such rows anyway (NaN propagates)") from None


def _predict_partition(part: Any, net: Network, proba: bool, n_threads: int | None,
                       as_dtype: np.dtype, check_finite: bool = True) -> Any:
    import pandas as pd

    X = part.to_numpy(dtype=as_dtype, na_value=np.nan) if as_dtype.kind == "f" \
        else part.to_numpy(dtype=as_dtype)
    try:
        out = _run_block(X, net, proba, n_threads, check_finite)
    except ValueError as exc:
        row = getattr(exc, "dlfr_row", None)
        if row is None:
            raise
        label = part.index[row]
        label = label.item() if isinstance(label, np.generic) else label
        raise ValueError(f"df holds NaN or inf (or a missing value) in the row with index "
                         f"{label!r}; pass check_finite=False to compute such rows "
                         "anyway (NaN propagates)") from None
    if proba:
        return pd.DataFrame(out, index=part.index, columns=pd.RangeIndex(out.shape[1]))
    return pd.Series(out, index=part.index, name="label")


def _shipped(net: Network) -> Any:
    """The network as one graph key that the blocks depend on (sent once per worker)."""
    return dask.delayed(net, pure=True)


# -- public ---------------------------------------------------------------------
def predict(net: Network, X: Any, proba: bool = False, n_threads: int | None = None,
            check_finite: bool = True) -> Any:
    """Labels (int64, shape (n,)) or, with ``proba=True``, output activations
    (the network's dtype, shape (n, n_out)) of a 2-D dask array, lazily.

    ``X`` is chunked by rows; when its columns are split over several chunks
    it is rechunked to one chunk across the features first. Its dtype follows
    ``Network.forward``: floats are converted to the network's dtype, uint8
    is read as pixels scaled by 1/255. Results equal ``net.predict(X)`` /
    ``net.forward(X)`` on the same rows in memory, bit for bit.
    ``n_threads``: dlfr threads per block (default: the task's share of its
    worker, see the module doc). ``check_finite``: as for ``Network.predict``;
    computing a block holding NaN or inf raises ValueError naming the row in X.
    """
    net = _check_network(net)
    n_threads = _check_n_threads(n_threads)
    if not isinstance(X, da.Array):
        raise TypeError(
            f"X must be a dask.array.Array; got {type(X).__name__} "
            "(wrap a NumPy array with dask.array.from_array, or call net.predict on it)"
        )
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {X.shape}")
    refuse_non_real("X", X.dtype)
    _check_n_features(net, X.shape[1], f"X (shape {X.shape})")
    if len(X.chunks[1]) != 1:
        X = X.rechunk({1: -1})
    rows = X.chunks[0]
    token = "dlfr-predict-proba" if proba else "dlfr-predict"
    if proba:
        n_out = net.layers[-1].n_out
        return da.map_blocks(
            _predict_block, X, _shipped(net), proba, n_threads, bool(check_finite), token=token,
            dtype=net.dtype, chunks=(rows, (n_out,)), meta=np.empty((0, 0), dtype=net.dtype),
        )
    return da.map_blocks(
        _predict_block, X, _shipped(net), proba, n_threads, bool(check_finite), token=token,
        dtype=_I64, chunks=(rows,), drop_axis=1, meta=np.empty((0,), dtype=_I64),
    )


def predict_partitions(net: Network, df: Any, proba: bool = False,
                       n_threads: int | None = None, check_finite: bool = True) -> Any:
    """Labels (a dask Series of int64 named "label") or, with ``proba=True``,
    output activations (a dask DataFrame with columns 0 .. n_out - 1 of the
    network's dtype) of a dask DataFrame whose columns are the features, in
    order. The index is kept.

    Columns must be real numbers (integers, floats, pandas' nullable Int/Float,
    whose missing values become NaN: refused as NaN is with ``check_finite``,
    else they propagate); bool, object, strings,
    categories and dates raise TypeError naming the column. When every column
    is uint8 the rows are read as pixels scaled by 1/255, as
    ``net.forward(df.to_numpy())`` would; otherwise they are converted to the
    network's dtype.
    """
    import dask.dataframe as dd
    import pandas as pd

    net = _check_network(net)
    n_threads = _check_n_threads(n_threads)
    if not isinstance(df, dd.DataFrame):
        raise TypeError(f"df must be a dask DataFrame; got {type(df).__name__}")
    _check_n_features(net, len(df.columns), f"df (columns {list(df.columns)!r})"
                      if len(df.columns) <= 10 else f"df ({len(df.columns)} columns)")
    for column, dt in df.dtypes.items():
        refuse_non_real(f"df column {column!r}", dt)
    as_dtype = _U8 if all(dt == _U8 for dt in df.dtypes) else net.dtype
    index = pd.Index([], dtype=df.index.dtype)
    if proba:
        n_out = net.layers[-1].n_out
        meta: Any = pd.DataFrame(np.empty((0, n_out), dtype=net.dtype),
                                 columns=pd.RangeIndex(n_out), index=index)
    else:
        meta = pd.Series(np.empty(0, dtype=_I64), name="label", index=index)
    return df.map_partitions(_predict_partition, _shipped(net), proba, n_threads, as_dtype,
                             bool(check_finite), meta=meta, align_dataframes=False)


__all__ = ["predict", "predict_partitions", "task_threads"]
