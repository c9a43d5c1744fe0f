"""Batch inference: dlfr's Network.forward against plain NumPy and the peers.

One group per (network, batch, dtype, threads, SIMD level: see conftest.py's
``--simd``). Every group holds the plain
NumPy expression (per layer ``1/(1+np.exp(-(X@W+b)))``, the baseline),
dlfr, and onnxruntime, PyTorch and scikit-learn when they are installed
(``pip install ".[peers]"`` and ``pip install torch==2.13.0``), all running the
same weights; each entry's output is checked against dlfr's before it is
timed. Threads: each group sets BLAS, OpenMP and the peers' own pools to the
group's thread count (the session default in conftest.py is one).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest \\
        benchmarks/test_bench_inference.py --simd avx2 --benchmark-json=avx2.json
    python benchmarks/report.py avx2.json

(more levels, one file each, and the report: see benchmarks/report.py).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import dlfr
from dlfr import peers

NARROW = (784, 16, 10)
WIDE = (784, 256, 128, 10)
BATCHES = (1, 16, 256, 4096, 65536)
#: Every network, batch, dtype and thread count, but the wide network at 65536
#: rows in float32 only: in float64 one call of each entry takes 1-4 s (2 cores,
#: measured), minutes per group.
CASES = [(sizes, batch, dtype, threads)
         for sizes in (NARROW, WIDE)
         for dtype in ("float32", "float64")
         for batch in BATCHES
         for threads in (1, 2)
         if not (sizes == WIDE and batch == 65536 and dtype == "float64")]
IMPLS = ("numpy", "dlfr", "onnxruntime", "torch", "sklearn")
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
#: Seconds each entry waits before it is timed. A thread pool keeps its
#: workers spinning for a while after a call (OpenBLAS: about 0.1 s, measured),
#: and on two cores a spinning worker slows a two-thread entry timed just after
#: it by 2x; each entry is timed once the previous one's threads are idle.
SETTLE = 0.25


def case_id(case):
    sizes, batch, dtype, threads = case
    return f"{'-'.join(map(str, sizes))}-b{batch}-{dtype}-t{threads}"


_networks: dict = {}


def network(sizes, dtype, simd):
    """The network of these sizes and dtype, built once per SIMD level (same weights)."""
    key = (sizes, dtype, simd)
    if key not in _networks:
        _networks[key] = dlfr.Network(list(sizes), dtype=dtype, seed=0)
    return _networks[key]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_inference(benchmark, case, impl, simd):
    sizes, batch, dtype, threads = case
    net = network(sizes, dtype, simd)
    Ws = [np.ascontiguousarray(layer.W) for layer in net.layers]
    bs = [layer.b.copy() for layer in net.layers]
    X = np.random.default_rng(1).random((batch, sizes[0])).astype(dtype)
    if impl == "dlfr":
        run = lambda X: net.forward(X, n_threads=threads)  # noqa: E731
    elif impl == "numpy":
        run = peers.numpy_forward(Ws, bs)
    else:
        pytest.importorskip({"onnxruntime": "onnxruntime", "torch": "torch",
                             "sklearn": "sklearn"}[impl])
        run = peers.RUNNERS[impl](Ws, bs, threads)
    name = "-".join(map(str, sizes))
    benchmark.group = f"inference {name} batch={batch} {dtype} threads={threads} simd={simd}"
    benchmark.extra_info.update(impl=impl, threads=threads, batch=batch, dtype=dtype,
                                network=name, simd=simd)
    with threadpool_limits(limits=threads):
        time.sleep(SETTLE)
        result = benchmark(run, X)
    np.testing.assert_allclose(result, net.forward(X), rtol=TOLERANCE[dtype],
                               atol=TOLERANCE[dtype])
