"""dlfr.dask.predict with the 784-16-10 network: 1 vs 2 worker processes, and threads.

The data are made on the workers, inside the graph (dask.array.random, float32,
chunks of 100,000 rows), so nothing but the graph and the label counts crosses
the wire. Three ways to run the same graph, one benchmark group:

- a LocalCluster of 1 worker process, 1 thread;
- a LocalCluster of 2 worker processes, 1 thread each;
- dask's threaded scheduler in this process (2 threads).

Making the random numbers costs about ten times the prediction, so each way is
also timed on a graph that makes the same data and only reduces it cheaply
("generate only"); the prediction's own cost is the difference. Each benchmark
checks its result: the label counts sum to the number of rows, and the first
chunk's labels equal ``net.predict`` on the same rows in memory.

    python -m pytest benchmarks/test_bench_dask.py --benchmark-json=dask.json
    DLFR_BENCH_DASK_ROWS=2000000 python -m pytest benchmarks/test_bench_dask.py

Rows default to 1,000,000 (3 GB of float32 made per run) to keep a run short.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import dlfr  # noqa: E402
import dlfr.dask  # noqa: E402

N = int(os.environ.get("DLFR_BENCH_DASK_ROWS", "1000000"))
CHUNK = 100_000
N_FEATURES = 784
N_CLASSES = 10
SEED = 0
TIMEOUT = 600
GROUP = f"dask predict 784-16-10 float32 {N}x{N_FEATURES} chunks of {CHUNK}"
WAYS = ["1 process", "2 processes", "threads"]


def make_X():
    rng = da.random.default_rng(SEED)
    return rng.random((N, N_FEATURES), dtype=np.float32, chunks=(CHUNK, N_FEATURES))


@pytest.fixture(scope="module")
def net():
    return dlfr.Network([784, 16, 10], dtype="float32", seed=0)


@pytest.fixture(scope="module", params=WAYS)
def run(request, simd):
    """compute(graph) the way the parameter names.

    Needs `simd` so a cluster is started anew for each SIMD level: its worker
    processes read DLFR_SIMD, which conftest.py sets to the level, at import.
    """
    way = request.param
    if way == "threads":
        yield way, lambda graph: dask.compute(graph, scheduler="threads", num_workers=2)[0]
        return
    n_workers = int(way.split()[0])
    with distributed.LocalCluster(n_workers=n_workers, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        yield way, lambda graph: client.compute(graph).result(timeout=TIMEOUT)


def test_generate_only(benchmark, run, simd):
    way, compute = run
    benchmark.group = f"{GROUP} simd={simd}"
    benchmark.name = f"generate only, {way}"
    X = make_X()
    # makes every chunk and returns its length: nothing else is computed
    graph = X.map_blocks(lambda block: np.full(1, len(block)), chunks=((1,) * X.numblocks[0],),
                         drop_axis=1, dtype=np.int64, meta=np.empty(0, np.int64)).sum()
    count = benchmark.pedantic(compute, args=(graph,), rounds=3, warmup_rounds=1)
    assert count == N


def test_predict(benchmark, run, net, simd):
    way, compute = run
    benchmark.group = f"{GROUP} simd={simd}"
    benchmark.name = f"generate + predict, {way}"
    X = make_X()
    graph = da.bincount(dlfr.dask.predict(net, X), minlength=N_CLASSES)
    counts = benchmark.pedantic(compute, args=(graph,), rounds=3, warmup_rounds=1)
    assert counts.shape == (N_CLASSES,) and counts.sum() == N
    first = X[:CHUNK]
    np.testing.assert_array_equal(compute(dlfr.dask.predict(net, first)),
                                  net.predict(dask.compute(first, scheduler="threads")[0]))
    benchmark.extra_info.update(rows=N, chunk=CHUNK, way=way)
