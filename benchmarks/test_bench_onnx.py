"""The drop-in comparison: one .onnx file, opened by ONNX Runtime and by dlfr.

A PyTorch user holding ``model.onnx`` (here written by ``torch.onnx.export``
from an ``nn.Sequential`` of Linear and Sigmoid layers) runs it either with
``onnxruntime.InferenceSession(path)`` or with ``dlfr.Network.from_onnx(path)``.
One group per (network, batch, threads, SIMD level: see conftest.py's
``--simd``), float32, each holding ONNX Runtime's session and dlfr on that
file and the plain NumPy expression on the file's weights (the baseline every
group has); each entry's output is checked against dlfr's. benchmarks/report.py
turns the groups into the table "the same .onnx file" (ONNX Runtime's median /
dlfr's). Needs onnx, onnxruntime and torch (``pip install ".[peers]"`` and
``pip install torch==2.13.0``)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src python -m pytest \\
        benchmarks/test_bench_onnx.py --simd avx2 --benchmark-json=onnx-avx2.json
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import dlfr
from dlfr import peers

NETWORKS = ((784, 16, 10), (784, 256, 128, 10))
BATCHES = (1, 16, 256, 4096, 65536)
CASES = [(sizes, batch, threads) for sizes in NETWORKS for batch in BATCHES
         for threads in (1, 2)]
IMPLS = ("numpy", "onnxruntime", "dlfr")
TOLERANCE = 1e-5
#: Seconds each entry waits before it is timed, for the previous entry's
#: threads to go idle (as in test_bench_inference.py).
SETTLE = 0.25


def case_id(case):
    sizes, batch, threads = case
    return f"{'-'.join(map(str, sizes))}-b{batch}-t{threads}"


@pytest.fixture(scope="session")
def onnx_file(tmp_path_factory):
    """sizes -> the path of model.onnx of those sizes (written once, by torch.onnx.export)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    folder = tmp_path_factory.mktemp("onnx")
    paths: dict = {}

    def path_of(sizes):
        if sizes not in paths:
            torch.manual_seed(0)
            layers: list = []
            for n_in, n_out in zip(sizes, sizes[1:], strict=False):
                layers += [torch.nn.Linear(n_in, n_out), torch.nn.Sigmoid()]
            module = torch.nn.Sequential(*layers).eval()
            path = folder / f"{'-'.join(map(str, sizes))}.onnx"
            with warnings.catch_warnings():
                # the TorchScript exporter (deprecated, quick); the default dynamo exporter
                # writes the same Gemm and Sigmoid nodes
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (torch.zeros(1, sizes[0]),), path, dynamo=False,
                                  input_names=["input"], output_names=["output"],
                                  dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
            paths[sizes] = path
        return paths[sizes]

    return path_of


def ort_runner(path, threads):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda X: session.run(None, {name: X})[0]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_onnx_file(benchmark, case, impl, simd, onnx_file):
    sizes, batch, threads = case
    path = onnx_file(sizes)
    net = dlfr.Network.from_onnx(path)
    X = np.random.default_rng(1).random((batch, sizes[0])).astype(np.float32)
    if impl == "dlfr":
        run = lambda X: net.forward(X, n_threads=threads)  # noqa: E731
    elif impl == "onnxruntime":
        run = ort_runner(path, threads)
    else:
        run = peers.numpy_forward([np.ascontiguousarray(layer.W) for layer in net.layers],
                                  [layer.b.copy() for layer in net.layers])
    name = "-".join(map(str, sizes))
    benchmark.group = f"onnx file {name} batch={batch} float32 threads={threads} simd={simd}"
    benchmark.extra_info.update(impl=impl, threads=threads, batch=batch, dtype="float32",
                                network=name, simd=simd, model="torch.onnx.export")
    with threadpool_limits(limits=threads):
        time.sleep(SETTLE)
        result = benchmark(run, X)
    np.testing.assert_allclose(result, net.forward(X), rtol=TOLERANCE, atol=TOLERANCE)
