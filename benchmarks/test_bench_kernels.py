"""Kernel benchmarks: dlfr against the plain NumPy expression, one thread.

One group per (kernel, shape, dtype, SIMD level: see conftest.py's ``--simd``).
Each group holds the naive NumPy
expression (``plain_*`` in :mod:`dlfr._reference`), dlfr's kernel allocating
its result, and dlfr's kernel writing into a preallocated ``out=`` (what a
fast caller does), all measured in the same run. Every benchmark checks the
value it returned against the reference.

How to run and summarise: see benchmarks/report.py.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from dlfr import _reference as ref
from dlfr import kernels

SEED = 0
DTYPES = ["float32", "float64"]
#: Entries of every group; "numpy" is the baseline the report divides by.
IMPLS = ["numpy", "dlfr", "dlfr out="]

SIGMOID_SIZE = 10_000_000
#: (batch, n_in, n_out): MNIST's 784 -> 16 layer and a wide 784 -> 256 layer over batch sizes.
DENSE_SHAPES = [
    (1, 784, 16),
    (16, 784, 16),
    (256, 784, 16),
    (4096, 784, 16),
    (65536, 784, 16),
    (1, 784, 256),
    (16, 784, 256),
    (256, 784, 256),
    (4096, 784, 256),
]

#: Tolerances against a float64 oracle; dense adds ``atol * sqrt(n_in)``.
TOL = {
    "float32": {"rtol": 1e-5, "atol": 1e-6},
    "float64": {"rtol": 1e-12, "atol": 1e-12},
}


def cases(items, case_id):
    """Every (case, impl) pair, the impls of one case next to each other."""
    return [
        pytest.param(item, impl, id=f"{case_id(item)}-{impl.replace(' out=', '-out')}")
        for item in items
        for impl in IMPLS
    ]


# Inputs are built once per case and kept while that case's entries run
# (cases are ordered so they are adjacent), which bounds memory.


@functools.lru_cache(maxsize=1)
def sigmoid_inputs(dtype):
    z = np.random.default_rng(SEED).normal(0.0, 4.0, SIGMOID_SIZE).astype(dtype)
    expected = ref.sigmoid(z.astype(np.float64))
    return z, expected


@functools.lru_cache(maxsize=1)
def dense_inputs(n, n_in, n_out, dtype):
    """Pixel-like X in [0, 1), W scaled by 1/sqrt(n_in), b standard normal."""
    rng = np.random.default_rng(SEED)
    X = rng.random((n, n_in), dtype=dtype)
    W = (rng.standard_normal((n_in, n_out)) / math.sqrt(n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    expected = ref.dense(*(v.astype(np.float64) for v in (X, W, b)), "sigmoid")
    return X, W, b, expected


def measure(benchmark, *, group, impl, function, args, out, expected, tol, **info):
    """Benchmark ``function(*args, out=out)`` (no `out` if None) in `group`.

    Then check the value it returned against `expected`. The thread count
    actually in force is recorded with the other facts in `info`.
    """
    benchmark.group = group
    threads = max((pool["num_threads"] for pool in threadpool_info()), default=1)
    benchmark.extra_info.update(impl=impl, threads=threads, **info)
    kwargs = {} if out is None else {"out": out}
    result = benchmark(function, *args, **kwargs)
    np.testing.assert_allclose(result, expected, **tol)


@pytest.mark.parametrize(("dtype", "impl"), cases(DTYPES, str))
def test_sigmoid(benchmark, dtype, impl, simd):
    z, expected = sigmoid_inputs(dtype)
    measure(
        benchmark,
        group=f"sigmoid n=10M {dtype} simd={simd}",
        impl=impl,
        function=ref.plain_sigmoid if impl == "numpy" else kernels.sigmoid,
        args=(z,),
        out=np.empty_like(z) if impl == "dlfr out=" else None,
        expected=expected,
        tol=TOL[dtype],
        kernel="sigmoid",
        size=z.size,
        dtype=dtype,
        simd=simd,
    )


DENSE_CASES = [(shape, dtype) for shape in DENSE_SHAPES for dtype in DTYPES]


def dense_id(case) -> str:
    (n, n_in, n_out), dtype = case
    return f"{n_in}x{n_out}-batch{n}-{dtype}"


@pytest.mark.parametrize(("case", "impl"), cases(DENSE_CASES, dense_id))
def test_dense_sigmoid(benchmark, case, impl, simd):
    (n, n_in, n_out), dtype = case
    X, W, b, expected = dense_inputs(n, n_in, n_out, dtype)
    measure(
        benchmark,
        group=f"dense sigmoid {n_in}->{n_out} batch={n} {dtype} simd={simd}",
        impl=impl,
        function=ref.plain_dense_sigmoid if impl == "numpy" else kernels.dense,
        args=(X, W, b),
        out=np.empty((n, n_out), dtype) if impl == "dlfr out=" else None,
        expected=expected,
        tol={"rtol": TOL[dtype]["rtol"], "atol": TOL[dtype]["atol"] * math.sqrt(n_in)},
        kernel="dense",
        activation="sigmoid",
        batch=n,
        n_in=n_in,
        n_out=n_out,
        dtype=dtype,
        simd=simd,
    )
