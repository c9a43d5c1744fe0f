"""dlfr.dask: predictions on dask arrays and DataFrames equal the in-memory ones.

Runs every computation twice: on a LocalCluster of two worker processes (one
thread each) and on dask's local threaded scheduler. Data are generated inside
the graph (dask.array.random), so no large array is embedded in a graph, and
computed once more in memory for the comparison: the same seed and chunks give
the same numbers on any scheduler.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")

from conftest import DTYPES, dtype_id  # noqa: E402

import dlfr  # noqa: E402
import dlfr.dask as dlfr_dask  # noqa: E402
from dlfr import Network  # noqa: E402

SCHEDULERS = ["distributed", "threads"]
TIMEOUT = 60  # seconds: a failing or stuck graph must not hang the suite
# uneven row chunks, one of them empty
ROW_CHUNKS = (50_000, 0, 130_000, 120_000)
N_ROWS = sum(ROW_CHUNKS)


@pytest.fixture(scope="module")
def client():
    # dashboard off: it needs bokeh and a free port, neither of which is tested here
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster, set_as_default=False) as c:
        yield c


def compute(obj, scheduler, client):
    if scheduler == "distributed":
        return client.compute(obj).result(timeout=TIMEOUT)
    (result,) = dask.compute(obj, scheduler="threads")
    return result


def random_X(n_features, chunks, dtype, seed=0, nan_every=None):
    """A dask array of uniform numbers in [-2, 2), made by the graph itself."""
    rng = da.random.default_rng(seed)
    X = rng.random((sum(chunks), n_features), dtype=dtype, chunks=(chunks, (n_features,)))
    X = X * 4 - 2
    if nan_every:
        rows = da.arange(X.shape[0], chunks=(chunks,))
        X = da.where((rows % nan_every == 7)[:, None], np.nan, X)
    return X.astype(dtype)


# ---- packaging ------------------------------------------------------------------


def test_import_dlfr_does_not_import_dask():
    code = ("import sys, dlfr; assert 'dask' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith(('dask', 'distributed')))")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=TIMEOUT)


def test_the_real_dask_is_imported_inside_the_package():
    assert dlfr_dask.da is da and dlfr_dask.dask is dask
    assert dlfr.dask is dlfr_dask


# ---- arrays: equal to the in-memory results, bit for bit -------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_predict_equals_in_memory(client, scheduler, dtype):
    net = Network([20, 16, 3], dtype=dtype, seed=1)
    X = random_X(20, ROW_CHUNKS, dtype, nan_every=50_000)  # a few NaN rows propagate
    Xn = compute(X, "threads", None)
    labels = dlfr_dask.predict(net, X, check_finite=False)
    proba = dlfr_dask.predict(net, X, proba=True, check_finite=False)
    assert labels.dtype == np.int64 and labels.chunks == (ROW_CHUNKS,)
    assert proba.dtype == net.dtype and proba.chunks == (ROW_CHUNKS, (3,))
    assert labels._meta.shape == (0,) and proba._meta.shape == (0, 0)
    got_labels, got_proba = compute(labels, scheduler, client), compute(proba, scheduler, client)
    assert got_labels.dtype == np.int64 and got_proba.dtype == net.dtype
    want = net.forward(Xn, check_finite=False)
    assert np.isnan(want).any() and not np.isnan(want).all()
    np.testing.assert_array_equal(got_proba, want)
    np.testing.assert_array_equal(got_labels, net.predict(Xn, check_finite=False))
    # and with one thread in memory
    np.testing.assert_array_equal(net.forward(Xn, n_threads=1, check_finite=False), want)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_mnist_sized_network_with_columns_split_over_chunks(client, scheduler, dtype):
    net = Network([784, 16, 10], dtype=dtype, seed=2)
    chunks = (5_000, 0, 3_000, 2_000)
    X = random_X(784, chunks, dtype, seed=3).rechunk({1: (300, 484)})
    Xn = compute(X, "threads", None)
    proba = dlfr_dask.predict(net, X, proba=True)
    assert proba.chunks == (chunks, (10,))
    np.testing.assert_array_equal(compute(proba, scheduler, client), net.forward(Xn))
    np.testing.assert_array_equal(compute(dlfr_dask.predict(net, X), scheduler, client),
                                  net.predict(Xn))


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_uint8_pixels_are_scaled_as_in_memory(client, scheduler):
    net = Network([784, 16, 10], seed=4)
    X = da.random.default_rng(5).integers(0, 256, size=(6_000, 784), dtype=np.uint8,
                                          chunks=(2_400, 784))
    Xn = compute(X, "threads", None)
    assert Xn.dtype == np.uint8
    np.testing.assert_array_equal(
        compute(dlfr_dask.predict(net, X, proba=True), scheduler, client), net.forward(Xn))


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_one_output_and_integer_input(client, scheduler):
    net = Network([2, 2, 1], dtype="float64", seed=6)
    X = da.arange(-5_000, 5_000, chunks=1_000).reshape(5_000, 2)  # int64: converted
    Xn = X.compute(scheduler="threads")
    labels = compute(dlfr_dask.predict(net, X), scheduler, client)
    np.testing.assert_array_equal(labels, net.predict(Xn))
    assert set(np.unique(labels)) <= {0, 1}


def test_results_stay_lazy_and_empty_input_works():
    net = Network([4, 3, 2], seed=0)
    X = da.zeros((0, 4), chunks=((0,), (4,)), dtype=np.float32)
    assert dlfr_dask.predict(net, X).compute(scheduler="threads").shape == (0,)
    assert dlfr_dask.predict(net, X, proba=True).compute(scheduler="threads").shape == (0, 2)


def test_unknown_row_chunks_are_fine():
    net = Network([3, 2], seed=0)
    X = da.random.default_rng(0).random((1_000, 3), chunks=(300, 3))
    X = X[X[:, 0] > 0.5]  # rows per chunk unknown until computed
    assert np.isnan(X.shape[0])
    Xn = X.compute(scheduler="threads")
    got = dlfr_dask.predict(net, X, proba=True).compute(scheduler="threads")
    # blocks of arbitrary length: equal to rounding, see test_rows_do_not_depend_on_batching
    np.testing.assert_allclose(got, net.forward(Xn), rtol=1e-6, atol=0)


# ---- DataFrames ------------------------------------------------------------------


@pytest.mark.parametrize("proba", [False, True])
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_predict_partitions_equals_in_memory(client, scheduler, proba):
    net = Network([20, 16, 3], seed=7)
    X = random_X(20, (40_000, 0, 35_000, 25_000), "float32", seed=8)
    df = dd.from_dask_array(X, columns=[f"x{i}" for i in range(20)])
    pdf = compute(df, "threads", None)
    out = dlfr_dask.predict_partitions(net, df, proba=proba)
    got = compute(out, scheduler, client)
    pd.testing.assert_index_equal(got.index, pdf.index)
    if proba:
        assert isinstance(got, pd.DataFrame) and list(got.columns) == [0, 1, 2]
        assert (got.dtypes == np.float32).all()
        np.testing.assert_array_equal(got.to_numpy(), net.forward(pdf.to_numpy()))
    else:
        assert isinstance(got, pd.Series) and got.dtype == np.int64 and got.name == "label"
        np.testing.assert_array_equal(got.to_numpy(), net.predict(pdf.to_numpy()))


def test_predict_partitions_converts_integers_and_nullable_columns():
    net = Network([3, 4, 2], dtype="float64", seed=9)
    pdf = pd.DataFrame({
        "a": np.arange(12, dtype=np.int32),
        "b": pd.array([0.5, None] + [1.5] * 10, dtype="Float64"),  # NA becomes NaN
        "c": np.linspace(-1, 1, 12, dtype=np.float32),
    })
    df = dd.from_pandas(pdf, npartitions=3)
    got = dlfr_dask.predict_partitions(net, df, proba=True,
                                       check_finite=False).compute(scheduler="threads")
    want = net.forward(pdf.to_numpy(dtype=np.float64, na_value=np.nan), check_finite=False)
    assert np.isnan(want[1]).all()
    np.testing.assert_array_equal(got.to_numpy(), want)


# ---- refusals, at graph-construction time ------------------------------------------


def test_wrong_feature_count_is_refused():
    net = Network([20, 16, 3], seed=0)
    X = da.zeros((100, 19), chunks=(50, 19))
    with pytest.raises(ValueError, match=r"X \(shape \(100, 19\)\) has 19 features but the "
                                         r"network expects 20"):
        dlfr_dask.predict(net, X)
    df = dd.from_dask_array(X)
    with pytest.raises(ValueError, match="has 19 features but the network expects 20"):
        dlfr_dask.predict_partitions(net, df)


@pytest.mark.parametrize("dtype", [object, "U3", "S3", bool, np.complex64, "datetime64[s]"])
def test_non_numeric_arrays_are_refused(dtype):
    net = Network([3, 2], seed=0)
    X = da.from_array(np.zeros((4, 3), dtype=dtype), chunks=2)
    message = ("X must hold real numbers (float32, float64 or integers); "
               f"got dtype {np.dtype(dtype)}")
    with pytest.raises(TypeError, match=re.escape(message)):
        dlfr_dask.predict(net, X)


@pytest.mark.parametrize("column", [["a", "b"], [True, False], pd.Categorical(["a", "b"]),
                                    pd.to_datetime(["2024-01-01", "2024-01-02"])],
                         ids=["str", "bool", "category", "datetime"])
def test_non_numeric_columns_are_refused_by_name(column):
    net = Network([2, 2], seed=0)
    df = dd.from_pandas(pd.DataFrame({"ok": [1.0, 2.0], "bad": column}), npartitions=1)
    with pytest.raises(TypeError, match=r"df column 'bad' must hold real numbers"):
        dlfr_dask.predict_partitions(net, df)


def test_other_bad_arguments_are_refused():
    net = Network([3, 2], seed=0)
    X = da.zeros((4, 3), chunks=2)
    with pytest.raises(TypeError, match="net must be a dlfr.Network; got str"):
        dlfr_dask.predict("net", X)
    with pytest.raises(TypeError, match="net must be a dlfr.Network; got Dense"):
        dlfr_dask.predict_partitions(dlfr.Dense(3, 2), dd.from_dask_array(X))
    with pytest.raises(ValueError, match=r"X must be 2-D .* got shape \(12,\)"):
        dlfr_dask.predict(net, X.ravel())
    with pytest.raises(ValueError, match=r"X must be 2-D .* got shape \(4, 3, 1\)"):
        dlfr_dask.predict(net, X[:, :, None])
    with pytest.raises(TypeError, match="X must be a dask.array.Array; got ndarray"):
        dlfr_dask.predict(net, np.zeros((4, 3)))
    with pytest.raises(TypeError, match="df must be a dask DataFrame; got Array"):
        dlfr_dask.predict_partitions(net, X)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="n_threads must be None or a positive integer"):
            dlfr_dask.predict(net, X, n_threads=bad)


# ---- failures on the workers surface, with the original error ------------------------


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_a_failing_block_raises_its_own_error(client, scheduler):
    class FailsOnNegativeRows(Network):  # local: pickled by value for the workers
        def forward(self, X, n_threads=None, scale=None):
            if len(X) and X[0, 0] < 0:
                raise ZeroDivisionError(f"block of {len(X)} rows starts negative")
            return super().forward(X, n_threads, scale)

    net = FailsOnNegativeRows([2, 2], seed=0)
    X = da.from_array(np.arange(-20.0, 20.0).reshape(-1, 2)[::-1].copy(), chunks=(5, 2))
    y = dlfr_dask.predict(net, X)
    with pytest.raises(ZeroDivisionError, match="block of 5 rows starts negative"):
        compute(y, scheduler, client)


# ---- threads and shipping -----------------------------------------------------------


def test_blocks_take_their_share_of_threads(client, monkeypatch):
    # one thread per worker process, one per block under the threaded scheduler
    assert client.submit(dlfr_dask.task_threads, pure=False).result(timeout=TIMEOUT) == 1
    assert dlfr_dask.task_threads() == 1
    seen = []
    forward = Network.forward

    def spy(self, X, n_threads=None, scale=None):
        seen.append(n_threads)
        return forward(self, X, n_threads, scale)

    monkeypatch.setattr(Network, "forward", spy)
    net = Network([3, 2], seed=0)
    X = da.zeros((600, 3), chunks=200)
    dlfr_dask.predict(net, X).compute(scheduler="threads")
    assert seen == [1, 1, 1]
    seen.clear()
    dlfr_dask.predict(net, X, n_threads=3).compute(scheduler="threads")
    assert seen == [3, 3, 3]


def test_the_network_is_one_key_of_the_graph_and_unpickled_once_per_worker(client):
    net = Network([20, 16, 3], seed=0)
    X = random_X(20, (1_000,) * 40, "float32")
    y = dlfr_dask.predict(net, X)
    added = set(y.__dask_graph__()) - set(X.__dask_graph__())
    assert len(added) == 40 + 1  # the predictions and one key holding the network

    def count_unpickling():  # nested: pickled by value, runs on each worker
        import dlfr.network

        cls = dlfr.network.Network
        if not hasattr(cls, "_unpickled"):
            setstate = cls.__setstate__

            def counting(self, state):
                type(self)._unpickled += 1
                setstate(self, state)

            cls.__setstate__ = counting
        cls._unpickled = 0

    def unpickled():
        import dlfr.network

        return dlfr.network.Network._unpickled

    client.run(count_unpickling)
    np.testing.assert_array_equal(compute(y, "distributed", client),
                                  net.predict(compute(X, "threads", None)))
    counts = client.run(unpickled)
    assert len(counts) == 2 and all(1 <= n <= 4 for n in counts.values()), counts  # not 40


# ---- batching ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_rows_do_not_depend_on_batching(dtype):
    """Odd chunk sizes give bit-identical results: the GEMM is batch-invariant."""
    net = Network([784, 16, 10], dtype=dtype, seed=2)
    Xn = random_X(784, (2_002,), dtype, seed=3).compute(scheduler="threads")
    want = net.forward(Xn[:2_000])
    X = da.from_array(Xn[:2_000], chunks=((1_001, 999), (784,)))
    np.testing.assert_array_equal(dlfr_dask.predict(net, X, proba=True)
                                  .compute(scheduler="threads"), want)
