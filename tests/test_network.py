"""Tests of :class:`dlfr.Network`: construction, inference, files, pickling.

Every forward pass is compared with :func:`dlfr._reference.forward`, the
plain-NumPy twin, evaluated in float64 on the network's own weights, over
networks of one to four layers, every activation, both dtypes, batch sizes
from 0 to 4097 and layer widths on both sides of ``n_out <= 64``, where
layers leave the narrow kernels (for AVX-512's wide kernel, or for BLAS at
the other SIMD levels). Training has its own module (test_training).
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import re
import threading
import time
from typing import Any

import numpy as np
import pytest
from conftest import DTYPES, arch_id, dtype_id

import dlfr
from dlfr import Dense, Network, _kernels
from dlfr import _reference as ref

#: every test here runs at each SIMD level this CPU has (conftest.py)
pytestmark = pytest.mark.usefixtures("simd_level")

#: dlfr (in the network's dtype) against the float64 oracle on the same weights.
FORWARD_TOL = {
    np.float32: {"rtol": 1e-4, "atol": 2e-5},
    np.float64: {"rtol": 1e-11, "atol": 1e-12},
}
#: |pre-activation| below which a step layer may flip between dlfr and the oracle.
STEP_MARGIN = {np.float32: 1e-4, np.float64: 1e-9}

HIDDEN = ["identity", "sigmoid", "tanh", "relu", "step", "leaky_relu", "elu"]
BATCHES = [0, 1, 7, 129, 4097]
#: Layer sizes (input first) of 1 to 4 layers. Together they put every width
#: of 1, 10, 16, 17, 64, 65, 100 and 256 on both the input and the output
#: side of a layer: 16 and 64 are whole panels, 17 and 65 one past, and
#: outputs wider than 64 go to BLAS.
ARCHITECTURES = [
    [17, 1],
    [1, 65],
    [10, 16, 17],
    [65, 100, 10],
    [16, 256, 64, 1],
    [64, 17, 65, 16],
    [100, 10, 1, 256, 10],
    [256, 64, 100, 65, 17],
]


def random_input(n, n_in, dtype, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (n, n_in)).astype(dtype)


def params64(net):
    return (
        [layer.W.astype(np.float64) for layer in net.layers],
        [layer.b.astype(np.float64) for layer in net.layers],
        [layer.activation for layer in net.layers],
    )


def oracle(net, X) -> np.ndarray:
    """The network's outputs by the plain-NumPy twin, in float64."""
    return ref.forward(np.asarray(X, np.float64), *params64(net))


def step_margin(net, X) -> np.ndarray:
    """Per row, the smallest |pre-activation| of any step layer (inf without one)."""
    a = np.asarray(X, np.float64)
    margin = np.full(len(a), np.inf)
    for W, b, act in zip(*params64(net), strict=True):
        z = ref.dense(a, W, b, "identity")
        if act == "step" and z.size:
            margin = np.minimum(margin, np.abs(z).min(axis=1))
        a = ref.ACTIVATIONS[act](z)
    return margin


def assert_matches_oracle(net, X, dtype, out=None):
    out = net.forward(X) if out is None else out
    assert out.dtype == dtype
    assert out.shape == (len(X), net.sizes[-1])
    expected = oracle(net, X)
    if not any(layer.activation == "step" for layer in net.layers):
        np.testing.assert_allclose(out, expected, **FORWARD_TOL[dtype])
        return
    keep = step_margin(net, X) > STEP_MARGIN[dtype]
    # a step may flip where its input is within rounding of 0: leave those
    # rows out, but never many of them
    assert keep.sum() >= 0.8 * len(X) - 1
    np.testing.assert_allclose(out[keep], expected[keep], **FORWARD_TOL[dtype])


# ---- construction -----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_construction_from_sizes(dtype):
    net = Network([784, 16, 10], dtype=dtype, seed=0)
    assert net.sizes == [784, 16, 10]
    assert net.dtype == dtype
    assert len(net.layers) == 2
    assert all(isinstance(layer, Dense) for layer in net.layers)
    for layer, (n_in, n_out) in zip(net.layers, [(784, 16), (16, 10)], strict=True):
        assert (layer.n_in, layer.n_out) == (n_in, n_out)
        assert layer.W.shape == (n_in, n_out)
        assert layer.b.shape == (n_out,)
        assert layer.W.dtype == dtype and layer.b.dtype == dtype
        assert layer.activation == "sigmoid"
    assert net.n_params == 784 * 16 + 16 + 16 * 10 + 10


def test_default_dtype_is_float32():
    assert Network([3, 2], seed=0).dtype == np.float32


def test_construction_from_dense_layers_keeps_them():
    layers = [Dense(2, 2, seed=1), Dense(2, 1, activation="identity", seed=2)]
    net = Network(layers)
    assert net.layers[0] is layers[0] and net.layers[1] is layers[1]
    assert net.sizes == [2, 2, 1]
    X = random_input(5, 2, np.float32)
    np.testing.assert_allclose(net(X), oracle(net, X), **FORWARD_TOL[np.float32])


@pytest.mark.parametrize("depth", [1, 2, 5, 12, 64])
def test_any_depth(depth):
    sizes = [3] + [5] * (depth - 1) + [2]
    net = Network(sizes, activation="tanh", dtype=np.float64, seed=depth)
    assert len(net.layers) == depth
    assert net.sizes == sizes
    X = random_input(9, 3, np.float64)
    np.testing.assert_allclose(net.forward(X), oracle(net, X), **FORWARD_TOL[np.float64])


def test_too_deep_is_refused_at_construction():
    limit = _kernels.MAX_NETWORK_LAYERS
    with pytest.raises(ValueError, match=rf"at most {limit} layers.*got {limit + 1}"):
        Network([3] * (limit + 2))
    with pytest.raises(ValueError, match=rf"at most {limit} layers"):
        Network([Dense(3, 3) for _ in range(limit + 1)])


def test_output_activation_and_repr():
    net = Network([4, 8, 3], activation="tanh", output_activation="softmax",
                  dtype="float64", seed=0)
    assert [layer.activation for layer in net.layers] == ["tanh", "softmax"]
    assert repr(net) == (
        "Network([4, 8, 3], activation='tanh', output_activation='softmax', dtype='float64')"
    )
    assert repr(Network([784, 16, 10], seed=0)) == (
        "Network([784, 16, 10], activation='sigmoid', dtype='float32')"
    )
    assert repr(Network([2, 2, 1], output_activation="sigmoid")) == (
        "Network([2, 2, 1], activation='sigmoid', dtype='float32')"
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("sizes", [[1, 1], [2, 2, 1], [784, 16, 10], [5, 65, 300, 1]],
                         ids=arch_id)
def test_initial_weights_are_random_and_finite(sizes, dtype):
    net = Network(sizes, dtype=dtype, seed=3)
    for layer in net.layers:
        assert np.all(np.isfinite(layer.W)) and np.all(np.isfinite(layer.b))
        assert np.any(layer.W != 0) and np.any(layer.b != 0)
        if layer.W.size >= 10:  # not a constant fill (float32 may repeat a few values)
            assert len(np.unique(layer.W)) > 0.99 * layer.W.size


def test_initial_weight_scale():
    """W ~ N(0, 1) / sqrt(n_in), b ~ N(0, 1) (the documented initialisation)."""
    layer = Network([400, 250], dtype="float64", seed=0).layers[0]
    assert abs(layer.W.std() * np.sqrt(400) - 1) < 0.02
    assert abs(layer.W.mean()) < 1e-3  # its standard error is 1.6e-4
    assert abs(layer.b.std() - 1) < 0.15


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_same_seed_same_weights(dtype):
    a = Network([10, 65, 3], dtype=dtype, seed=42)
    b = Network([10, 65, 3], dtype=dtype, seed=42)
    c = Network([10, 65, 3], dtype=dtype, seed=np.random.default_rng(42))
    d = Network([10, 65, 3], dtype=dtype, seed=np.random.default_rng(42))
    for la, lb, lc, ld in zip(a.layers, b.layers, c.layers, d.layers, strict=True):
        assert np.array_equal(la.W, lb.W) and np.array_equal(la.b, lb.b)
        assert np.array_equal(lc.W, ld.W) and np.array_equal(lc.b, ld.b)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_different_seeds_differ(dtype):
    a = Network([10, 65, 3], dtype=dtype, seed=1)
    b = Network([10, 65, 3], dtype=dtype, seed=2)
    c = Network([10, 65, 3], dtype=dtype)
    d = Network([10, 65, 3], dtype=dtype)
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert not np.array_equal(la.W, lb.W) and not np.array_equal(la.b, lb.b)
    assert not np.array_equal(c.layers[0].W, d.layers[0].W)


def test_layers_that_do_not_chain():
    with pytest.raises(ValueError, match=r"layer 0 has 4 outputs but layer 1 expects 5 inputs"):
        Network([Dense(3, 4), Dense(5, 1)])
    with pytest.raises(ValueError, match=r"layer 1 has 2 outputs but layer 2 expects 3 inputs"):
        Network([Dense(3, 4), Dense(4, 2), Dense(3, 1)])


def test_layers_of_different_dtypes():
    with pytest.raises(ValueError, match=r"one dtype.*float32.*float64"):
        Network([Dense(3, 4, dtype="float32"), Dense(4, 1, dtype="float64")])


@pytest.mark.parametrize(
    "sizes",
    [[], [3], [3, 0], [3, -2], [3, 2.0], [3, 2.5], [3, True], ["3", "2"], "ab", 5, None,
     [Dense(3, 4), 4]],
    ids=repr,
)
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match=r"sizes_or_layers"):
        Network(sizes)


@pytest.mark.parametrize(
    "dtype", ["float16", "int32", "complex64", np.uint8, object, None, "nonsense", bool]
)
def test_bad_dtype(dtype):
    with pytest.raises(ValueError, match=r"dtype must be 'float32' or 'float64'"):
        Network([3, 2], dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "f4", np.float32, "float64", "f8", np.double])
def test_dtype_spellings(dtype):
    assert Network([3, 2], dtype=dtype).dtype == np.dtype(dtype)


@pytest.mark.parametrize("activation", ["bogus", "Sigmoid", "", None, 1])
def test_bad_activation(activation):
    with pytest.raises(ValueError, match=r"activation must be one of"):
        Network([3, 2], activation=activation)
    with pytest.raises(ValueError, match=r"activation must be one of"):
        Network([3, 4, 2], output_activation=activation or "bogus")


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("sizes", [[5, 3, 2], [5, 70, 2], [5, 3, 100]], ids=arch_id)
def test_writing_into_weights_changes_the_next_forward(sizes, dtype):
    """The engine reads the layers' storage: in-place writes and assignments are seen."""
    net = Network(sizes, activation="tanh", output_activation="identity", dtype=dtype, seed=0)
    X = random_input(600, 5, dtype)  # enough rows for the threaded path too
    before = net.forward(X)

    net.layers[0].W[1, :] += 0.5  # in place, through the view
    after_inplace = net.forward(X)
    assert not np.allclose(after_inplace, before)
    np.testing.assert_allclose(after_inplace, oracle(net, X), **FORWARD_TOL[dtype])

    net.layers[-1].W = np.ones((sizes[1], sizes[2]))  # a new array, any real dtype
    after_assign = net.forward(X)
    assert np.array_equal(net.layers[-1].W, np.ones((sizes[1], sizes[2])))
    np.testing.assert_allclose(after_assign, oracle(net, X), **FORWARD_TOL[dtype])

    net.layers[-1].b[:] = -3.0
    np.testing.assert_allclose(net.forward(X), oracle(net, X), **FORWARD_TOL[dtype])
    net.layers[0].b = np.zeros(sizes[1], dtype=np.int64)
    np.testing.assert_allclose(net.forward(X), oracle(net, X), **FORWARD_TOL[dtype])


def test_assigning_a_bad_weight_array_is_refused():
    net = Network([3, 4, 2], seed=0)
    W = net.layers[0].W.copy()
    with pytest.raises(ValueError, match=r"W must have shape \(3, 4\)"):
        net.layers[0].W = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"W must be finite"):
        net.layers[0].W = np.full((3, 4), np.nan)
    with pytest.raises(ValueError, match=r"b must have shape \(4,\)"):
        net.layers[0].b = np.zeros(3)
    assert np.array_equal(net.layers[0].W, W)


# ---- forward, predict, evaluate -----------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize(
    ("sizes", "output"),
    [(sizes, output) for sizes in ARCHITECTURES for output in ("same", "softmax")
     if not (output == "softmax" and sizes[-1] == 1)],  # softmax of one output is 1
    ids=lambda v: arch_id(v) if isinstance(v, list) else v,
)
def test_forward_matches_reference(sizes, output, activation, dtype):
    net = Network(sizes, activation=activation,
                  output_activation=None if output == "same" else "softmax",
                  dtype=dtype, seed=len(sizes))
    inputs = [random_input(n, sizes[0], dtype, seed=n) for n in BATCHES]
    # every dlfr call first, then the oracle: two BLAS libraries (scipy's,
    # which dlfr uses for wide layers, and NumPy's) taking turns on two cores
    # slow each other down
    outputs = [net.forward(X) for X in inputs]
    labels = [net.predict(X) for X in inputs]  # taken inside the forward pass
    for X, out, got in zip(inputs, outputs, labels, strict=True):
        assert_matches_oracle(net, X, dtype, out)
        expected = out.argmax(axis=1) if out.shape[1] > 1 else (out[:, 0] >= 0.5).astype(int)
        assert got.dtype == np.int64 and np.array_equal(got, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_call_is_forward(dtype):
    net = Network([6, 20, 4], dtype=dtype, seed=0)
    X = random_input(33, 6, dtype)
    assert np.array_equal(net(X), net.forward(X))


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("sizes", [[784, 16, 10], [30, 100, 65, 3], [20, 17, 1]], ids=arch_id)
def test_threads_agree(sizes, dtype):
    net = Network(sizes, dtype=dtype, seed=0)
    X = random_input(4097, sizes[0], dtype)
    one = net.forward(X, n_threads=1)
    np.testing.assert_allclose(net.forward(X, n_threads=2), one, **FORWARD_TOL[dtype])
    np.testing.assert_allclose(net.forward(X), one, **FORWARD_TOL[dtype])
    np.testing.assert_allclose(one, oracle(net, X), **FORWARD_TOL[dtype])
    assert np.array_equal(net.predict(X, n_threads=2), net.predict(X, n_threads=1))


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("sizes", [[784, 16, 10], [30, 40, 3], [20, 17, 1], [99, 20, 3],
                                   [784, 256, 128, 10], [30, 100, 65, 3]],
                         ids=arch_id)
def test_results_do_not_depend_on_batching(sizes, dtype):
    """Each row's outputs are bit-identical however the rows are batched.

    dlfr's GEMM computes every output element with the same arithmetic
    whichever register block its row falls in, so one row alone, a chunk
    of odd size, two threads or the whole batch all agree exactly (what
    makes dlfr.dask's predictions equal the in-memory ones); 784 inputs x
    4099 rows is over 8 MB, so the whole batch's first layer takes
    gemm_stream and the slices gemm. BLAS, which runs wide layers at the
    generic level, promises no such thing.
    """
    if max(sizes[1:]) > _kernels.NARROW_MAX and not _kernels.gemm_wide():
        pytest.skip("layers this wide go to BLAS at this SIMD level")
    net = Network(sizes, dtype=dtype, seed=0)
    X = random_input(4099, sizes[0], dtype)
    whole = net.forward(X, n_threads=1)
    assert np.array_equal(net.forward(X, n_threads=2), whole)
    for start, stop in [(0, 1), (1, 8), (8, 37), (37, 1000), (1000, 4099)]:
        assert np.array_equal(net.forward(X[start:stop]), whole[start:stop])
    for row in (0, 5, 4098):
        assert np.array_equal(net.forward(X[row:row + 1]), whole[row:row + 1])


@pytest.mark.skipif(dlfr._omp_wait is None or _kernels.max_threads() < 2,
                    reason="the user chose the OpenMP wait policy, or one core")
def test_no_core_left_spinning_after_a_call():
    """After predict returns, OpenMP's workers go to sleep (within microseconds).

    libgomp's default would keep them busy-waiting for milliseconds after
    every call; dlfr sets GOMP_SPINCOUNT=1000 for its own runtime at import
    (unless the user set a policy). CPU time used outside this thread while it sleeps must stay
    far below the sleep itself.
    """
    net = Network([784, 16, 10], seed=0)
    X = random_input(4096, 784, np.float32)
    net.forward(X, n_threads=2)
    rounds, pause = 10, 0.02
    process, thread = time.process_time(), time.thread_time()
    for _ in range(rounds):
        net.forward(X, n_threads=2)
        time.sleep(pause)
    elsewhere = (time.process_time() - process) - (time.thread_time() - thread)
    # the worker's share of the work itself is ~0.3 ms a call
    assert elsewhere < 0.25 * rounds * pause, f"other threads used {elsewhere:.3f} s of CPU"


def unaligned_copy(X):
    """X's values in a C-contiguous array whose data is not aligned to its items."""
    raw = np.zeros(X.nbytes + 1, dtype=np.uint8)[1:]
    out = raw.view(X.dtype).reshape(X.shape)
    out[...] = X
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_unaligned_input(dtype):
    """Arrays that arrive unaligned (from a byte buffer, e.g. dask's transport) work."""
    net = Network([784, 16, 10], dtype=dtype, seed=0)
    X = random_input(300, 784, dtype)
    assert np.array_equal(net.forward(unaligned_copy(X)), net.forward(X))
    layer = net.layers[0]
    np.testing.assert_array_equal(
        dlfr.kernels.dense(unaligned_copy(X), layer.W, layer.b),
        dlfr.kernels.dense(X, layer.W, layer.b))


@pytest.mark.parametrize("n_threads", [0, -1, 1.5, "2", True])
def test_bad_n_threads(n_threads):
    net = Network([3, 2], seed=0)
    with pytest.raises(ValueError, match=r"n_threads must be None or a positive integer"):
        net.forward(np.zeros((2, 3), np.float32), n_threads=n_threads)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("sizes", [[784, 16, 10], [50, 100, 3]], ids=arch_id)
def test_concurrent_predict_from_python_threads(sizes, dtype):
    """8 threads predicting on one network at once each get what one call gets."""
    net = Network(sizes, dtype=dtype, seed=0)
    X = random_input(3000, sizes[0], dtype)
    expected_out, expected_labels = net.forward(X), net.predict(X)
    barrier = threading.Barrier(8)
    results: list = [None] * 8
    errors: list = []

    def work(i):
        try:
            barrier.wait()
            results[i] = [(net.forward(X), net.predict(X)) for _ in range(3)]
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for per_thread in results:
        for out, labels in per_thread:
            assert np.array_equal(out, expected_out)
            assert np.array_equal(labels, expected_labels)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("n", [1, 7, 600])
def test_uint8_input_is_scaled(n, dtype):
    net = Network([784, 16, 10], dtype=dtype, seed=0)
    pixels = np.random.default_rng(0).integers(0, 256, (n, 784), dtype=np.uint8)
    as_float = pixels.astype(np.float64) / 255
    np.testing.assert_allclose(net.forward(pixels), net.forward(as_float), **FORWARD_TOL[dtype])
    np.testing.assert_allclose(net.forward(pixels), oracle(net, as_float), **FORWARD_TOL[dtype])
    np.testing.assert_allclose(
        net.forward(pixels, scale=0.5), oracle(net, pixels * 0.5), **FORWARD_TOL[dtype]
    )
    assert np.array_equal(net.predict(pixels), net.predict(as_float.astype(dtype)))
    # non-contiguous uint8 input is read the same way
    wide = np.zeros((n, 2 * 784), np.uint8)
    wide[:, ::2] = pixels
    assert np.array_equal(net.forward(wide[:, ::2]), net.forward(pixels))


def test_scale_is_for_uint8_only():
    net = Network([3, 2], seed=0)
    with pytest.raises(ValueError, match=r"scale applies to uint8 input only"):
        net.forward(np.ones((2, 3), np.float32), scale=0.5)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_input_conversions(dtype):
    net = Network([20, 17, 3], dtype=dtype, seed=0)
    X64 = random_input(50, 20, np.float32).astype(np.float64)  # exact in both widths
    X = X64.astype(dtype)
    expected = net.forward(X)
    other = np.float64 if dtype == np.float32 else np.float32
    X_other = X.astype(other)
    cases = {
        "other float width": X_other,
        "big-endian": X.astype(np.dtype(dtype).newbyteorder(">")),
        "Fortran order": np.asfortranarray(X),
        "every other column": np.repeat(X, 2, axis=1)[:, ::2],
        "every other row": np.repeat(X, 2, axis=0)[::2],
        "list of lists": X.tolist(),
    }
    for name, variant in cases.items():
        assert np.array_equal(net.forward(variant), expected), name
    ints = np.random.default_rng(1).integers(0, 4, (50, 20))
    for int_dtype in (np.int8, np.int32, np.int64, np.uint16):
        got = net.forward(ints.astype(int_dtype))
        assert np.array_equal(got, net.forward(ints.astype(dtype))), int_dtype
    negative = -ints.astype(np.int32)
    assert np.array_equal(net.forward(negative), net.forward(negative.astype(dtype)))
    # X itself is left alone
    X_copy = X64.copy()
    net.forward(X64)
    assert np.array_equal(X64, X_copy)


BAD_X_SHAPE = [
    (np.zeros(20), r"X must be 2-D.*\(20,\)"),
    (np.zeros((2, 20, 1)), r"X must be 2-D.*\(2, 20, 1\)"),
    (np.zeros((2, 19)), r"X has 19 features.*expects 20"),
    (np.zeros((2, 21), np.uint8), r"X has 21 features.*expects 20"),
    (np.zeros((0, 3)), r"X has 3 features.*expects 20"),
]
BAD_X_DTYPE = [
    np.zeros((2, 20), complex),
    np.zeros((2, 20), bool),
    np.zeros((2, 20), object),
    np.full((2, 20), "a"),
]


@pytest.mark.parametrize("method", ["forward", "predict", "evaluate"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_bad_x_is_refused(method, dtype):
    net = Network([20, 4, 3], dtype=dtype, seed=0)

    def call(X):
        if method == "evaluate":
            return net.evaluate(X, np.zeros(len(X), np.int64))
        return getattr(net, method)(X)

    for X, pattern in BAD_X_SHAPE:
        with pytest.raises(ValueError, match=pattern):
            call(X)
    for X in BAD_X_DTYPE:
        with pytest.raises(TypeError, match=rf"\bX\b.*{re.escape(str(X.dtype))}"):
            call(X)
    with pytest.raises((TypeError, ValueError), match=r"\bX\b"):
        call([[0.0] * 20, [0.0] * 19])  # ragged


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_predict_argmax(dtype):
    net = Network([8, 30, 5], activation="tanh", dtype=dtype, seed=1)
    X = random_input(4097, 8, dtype)
    labels = net.predict(X)
    assert labels.shape == (4097,) and labels.dtype.kind == "i"
    assert np.array_equal(labels, net.forward(X).argmax(axis=1))
    assert set(np.unique(labels)) <= set(range(5))
    assert len(np.unique(labels)) >= 4
    assert net.predict(X[:0]).shape == (0,)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("cols", [1, 2, 3, 10, 17])
def test_decide_rows_is_numpys_argmax(cols, dtype):
    """The compiled rule behind predict's labels picks what NumPy does: the
    first of tied maxima, the first NaN in a row, -inf and +inf as numbers;
    with one column, a >= 0.5 (NaN: 0)."""
    rng = np.random.default_rng(cols)
    a = rng.integers(-2, 3, size=(2000, cols)).astype(dtype) / 2  # ties, and 0.5 itself
    for value, share in ((np.nan, 0.05), (np.inf, 0.03), (-np.inf, 0.1)):
        a[rng.random(a.shape) < share] = value
    a[0] = np.nan
    a[1] = -np.inf
    a[2, -1] = np.nan  # a NaN after the maximum
    labels = np.full(len(a), -1, dtype=np.int64)
    _kernels.decide_rows(a, labels)
    expected = a.argmax(axis=1) if cols > 1 else (a[:, 0] >= 0.5).astype(np.int64)
    assert np.array_equal(labels, expected)
    empty = np.empty(0, dtype=np.int64)
    _kernels.decide_rows(a[:0], empty)
    assert empty.shape == (0,)
    with pytest.raises(ValueError, match="labels has 1999 entries for 2000 rows"):
        _kernels.decide_rows(a, labels[1:])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_predict_labels_ties_nan_and_inf(n_threads, dtype):
    """Labels taken inside the engine, on its threads, match NumPy's argmax of
    the outputs where rows tie, hold NaN or overflow to inf."""
    net = Network([3, 4], activation="identity", dtype=dtype, seed=0)
    net.layers[0].W[:, 2] = net.layers[0].W[:, 1]  # columns 1 and 2 always tie
    net.layers[0].b[2] = net.layers[0].b[1]
    X = random_input(1000, 3, dtype)
    X[::7] = np.nan
    X[3::11, 0] = np.inf
    X[5::13] = 0  # every output the bias alone
    out = net.forward(X, n_threads=n_threads, check_finite=False)
    assert np.isnan(out).any() and np.isinf(out).any()
    kw = {"n_threads": n_threads, "check_finite": False}
    assert np.array_equal(net.predict(X, **kw), out.argmax(axis=1))
    one = Network([3, 1], dtype=dtype, seed=0)
    assert np.array_equal(one.predict(X, **kw), (one.forward(X, **kw)[:, 0] >= 0.5).astype(int))
    pixels = np.random.default_rng(1).integers(0, 256, (600, 3), dtype=np.uint8)
    assert np.array_equal(net.predict(pixels, **kw), net.forward(pixels, **kw).argmax(axis=1))


def test_predict_follows_an_overridden_forward():
    """A subclass that changes forward gets the labels of its own outputs."""

    class Flipped(Network):
        def forward(self, X, n_threads=None, scale=None):
            return 1 - super().forward(X, n_threads, scale)

    net = Flipped([4, 3], seed=0)
    X = random_input(300, 4, np.float32)
    assert np.array_equal(net.predict(X), net.forward(X).argmax(axis=1))
    assert not np.array_equal(net.predict(X), Network([4, 3], seed=0).predict(X))


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_predict_threshold_for_one_output(dtype):
    net = Network([4, 6, 1], dtype=dtype, seed=0)
    X = random_input(1000, 4, dtype, seed=1)
    labels = net.predict(X)
    assert labels.shape == (1000,) and labels.dtype.kind == "i"
    assert np.array_equal(labels, (net.forward(X)[:, 0] >= 0.5).astype(int))
    # sigmoid(0) = 0.5 exactly: on the threshold counts as 1
    zero = Network([Dense(2, 1, dtype=dtype)])
    zero.layers[0].W[:] = 0
    zero.layers[0].b[:] = 0
    assert np.array_equal(zero.predict(np.ones((3, 2), dtype)), [1, 1, 1])
    zero.layers[0].b[:] = -1e-3
    assert np.array_equal(zero.predict(np.ones((3, 2), dtype)), [0, 0, 0])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_evaluate_labels_and_one_hot(dtype):
    net = Network([8, 30, 5], activation="tanh", dtype=dtype, seed=1)
    X = random_input(200, 8, dtype)
    y = net.predict(X).copy()
    assert net.evaluate(X, y) == 1.0
    y[:50] = (y[:50] + 1) % 5  # a quarter wrong
    assert net.evaluate(X, y) == 0.75
    assert net.evaluate(X, dlfr.datasets.one_hot(y, 5)) == 0.75
    assert net.evaluate(X, y.astype(np.float64)) == 0.75
    assert net.evaluate(X.astype(np.float64), y.tolist()) == 0.75


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_evaluate_one_output(dtype):
    X, y = dlfr.datasets.xor(dtype)
    net = Network([Dense(2, 1, dtype=dtype)])
    net.layers[0].W = [[1.0], [1.0]]  # OR gate: wrong only on (1, 1) for XOR
    net.layers[0].b = [-0.5]
    assert net.evaluate(X, y) == 0.75
    assert net.evaluate(X, y.reshape(-1, 1).astype(dtype)) == 0.75


def test_evaluate_refusals():
    net = Network([3, 4, 2], seed=0)
    X = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"X has 4 rows but y has 3"):
        net.evaluate(X, [0, 1, 0])
    with pytest.raises(ValueError, match=r"y has 3 columns but the network has 2 outputs"):
        net.evaluate(X, np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"empty"):
        net.evaluate(X[:0], [])
    with pytest.raises(TypeError, match=r"\by\b"):
        net.evaluate(X, np.zeros(4, complex))
    with pytest.raises(ValueError, match=r"\by\b.*shape"):
        net.evaluate(X, np.zeros((4, 2, 1)))


# ---- save and load -----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    ("sizes", "activation", "output"),
    [([784, 16, 10], "sigmoid", None), ([5, 70, 17, 3], "relu", "softmax"),
     ([3, 8, 1], "tanh", "identity")],
)
def test_save_load_round_trip(tmp_path, sizes, activation, output, dtype):
    net = Network(sizes, activation=activation, output_activation=output, dtype=dtype, seed=0)
    path = tmp_path / "model.npz"
    net.save(path)
    loaded = Network.load(path)
    assert repr(loaded) == repr(net)
    assert loaded.dtype == dtype
    for a, b in zip(net.layers, loaded.layers, strict=True):
        assert a.activation == b.activation
        assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)
    X = random_input(700, sizes[0], dtype)
    assert np.array_equal(loaded.forward(X), net.forward(X))
    assert np.array_equal(loaded.predict(X), net.predict(X))
    loaded2 = Network.load(str(path))  # str paths too
    assert np.array_equal(loaded2.forward(X), net.forward(X))


def test_save_after_training_and_in_place_edits(tmp_path):
    X, y = dlfr.datasets.xor("float64")
    net = Network([2, 3, 1], dtype="float64", seed=0)
    net.fit(X, y, epochs=5, batch_size=4, learning_rate=1.0)
    net.layers[0].W[0, 0] = 0.125
    net.save(tmp_path / "m.npz")
    loaded = Network.load(tmp_path / "m.npz")
    assert loaded.layers[0].W[0, 0] == 0.125
    assert np.array_equal(loaded.forward(X), net.forward(X))


def _rewrite_header(src, dst, **changes):
    with np.load(src, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    header = json.loads(arrays["header"].tobytes().decode("utf-8"))
    header.update(changes)
    arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), np.uint8)
    np.savez(dst, **arrays)


@pytest.mark.parametrize(
    "changes",
    [{"format_version": 99}, {"format": "other"}, {"sizes": [3, 5, 2]},
     {"activations": ["sigmoid", "bogus"]}, {"dtype": "float16"}, {"dtype": "float64"}],
    ids=lambda c: next(iter(c)) + "=" + str(next(iter(c.values()))),
)
def test_load_tampered_header(tmp_path, changes):
    path = tmp_path / "good.npz"
    Network([3, 4, 2], seed=0).save(path)
    bad = tmp_path / "tampered.npz"
    _rewrite_header(path, bad, **changes)
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        Network.load(bad)


def test_load_not_a_model(tmp_path):
    bad = tmp_path / "garbage.npz"
    bad.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        Network.load(bad)


# ---- pickle and deepcopy -----------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_copies_predict_the_same_and_are_independent(how, dtype):
    net = Network([6, 70, 4], activation="tanh", output_activation="softmax",
                  dtype=dtype, seed=0)
    other = pickle.loads(pickle.dumps(net)) if how == "pickle" else copy.deepcopy(net)
    assert isinstance(other, Network)
    assert repr(other) == repr(net)
    X = random_input(600, 6, dtype)
    before = net.forward(X)
    assert np.array_equal(other.forward(X), before)
    assert np.array_equal(other.predict(X), net.predict(X))
    for a, b in zip(net.layers, other.layers, strict=True):
        assert not np.shares_memory(a.W, b.W) and not np.shares_memory(a.b, b.b)

    other.layers[0].W[:] += 1.0
    other.layers[1].b = np.zeros(4)
    other.fit(X, np.arange(600) % 4, epochs=1, batch_size=50, learning_rate=0.5,
              loss="cross_entropy")
    assert np.array_equal(net.forward(X), before)
    assert not np.allclose(other.forward(X), before)
    net.layers[1].W[:] = 0
    assert not np.array_equal(other.layers[1].W, net.layers[1].W)
    # the copy's engine reads the copy's own storage
    np.testing.assert_allclose(other.forward(X), oracle(other, X), **FORWARD_TOL[dtype])
    np.testing.assert_allclose(net.forward(X), oracle(net, X), **FORWARD_TOL[dtype])


class _RecordingUnpickler(pickle.Unpickler):
    """Unpickles while recording every (module, name) the pickle asks for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.globals: set[tuple[str, str]] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.globals.add((module, name))
        return super().find_class(module, name)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("sizes", [[20, 16, 3], [784, 16, 10], [2, 2, 1]])
def test_pickle_is_the_weights_and_the_config(sizes, dtype):
    # what dlfr.dask ships to workers: the weights without the kernels' panel
    # padding, plus a few hundred bytes of configuration; nothing compiled
    net = Network(sizes, output_activation="softmax", dtype=dtype, seed=0)
    data = pickle.dumps(net, protocol=pickle.HIGHEST_PROTOCOL)
    weights = sum(layer.W.nbytes + layer.b.nbytes for layer in net.layers)
    assert weights < len(data) <= weights + 1024
    unpickler = _RecordingUnpickler(data)
    other = unpickler.load()
    modules = {module for module, _ in unpickler.globals}
    assert {m for m in modules if m.split(".")[0] != "numpy"} == {
        "dlfr.network", "dlfr.layers"}, modules
    assert ("dlfr.network", "Network") in unpickler.globals
    X = random_input(300, sizes[0], dtype)
    assert np.array_equal(other.forward(X), net.forward(X))
    assert [layer.activation for layer in other.layers] == ["sigmoid", "softmax"]
    for layer in other.layers:
        assert layer.W.base is not None and layer.W.base.flags.c_contiguous  # padded storage
        assert layer.dtype == np.dtype(dtype)


def test_deepcopy_of_a_dense_layer_keeps_its_padding_and_values():
    layer = Dense(5, 3, activation="tanh", dtype="float64", seed=1)
    other = copy.deepcopy(layer)
    assert other._W.shape == layer._W.shape and np.array_equal(other._W, layer._W)
    assert np.array_equal(other._b, layer._b) and other.activation == "tanh"
    assert not np.shares_memory(other._W, layer._W)


def test_weights_start_on_a_cache_line():
    # the GEMM loads W a panel row (64 bytes in float32) at a time: a row
    # that straddled two cache lines would cost two loads
    for seed in range(4):
        for dtype in ("float32", "float64"):
            net = dlfr.Network([5, 3, 17, 2], dtype=dtype, seed=seed)
            for layer in net.layers + pickle.loads(pickle.dumps(net)).layers:
                assert layer._W.ctypes.data % 64 == 0
                assert layer._b.ctypes.data % 64 == 0
                assert layer._W.flags.c_contiguous and layer._W.flags.writeable


@pytest.mark.parametrize(
    ("sizes", "y", "match"),
    [
        ([3, 4, 10], [99] * 4, r"y holds label 99, outside 0\.\.9"),
        ([3, 4, 10], [-1] * 4, r"y holds label -1"),
        ([3, 4, 10], [1.5] * 4, r"y holds labels that are not whole numbers"),
        ([3, 4, 10], [np.nan] * 4, r"y holds labels that are not whole numbers"),
        ([3, 4, 10], [np.inf] * 4, r"y holds labels that are not whole numbers"),
        ([3, 4, 2], np.full((4, 2), np.nan), r"y contains NaN or inf"),
        ([3, 4, 2], [[np.inf, 0.0]] * 4, r"y contains NaN or inf"),
        ([3, 4, 1], [2, 0, 1, 0], r"y must hold labels 0 or 1"),
    ],
)
def test_evaluate_refuses_what_fit_refuses(sizes, y, match):
    # a label the network cannot output used to count as a miss (accuracy 0.0), and
    # one-hot rows of NaN as label 0; fit refused both, evaluate now says the same
    net = Network(sizes, seed=0)
    X = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=match) as from_fit:
        net.fit(X, y, epochs=1)
    with pytest.raises(ValueError, match=match) as from_evaluate:
        net.evaluate(X, y)
    assert str(from_evaluate.value) == str(from_fit.value)
