"""Tests of :mod:`dlfr.kernels` against the plain-NumPy twins in :mod:`dlfr._reference`.

Every kernel is compared with its twin over odd shapes and both float dtypes,
the sigmoid additionally in units in the last place against
``scipy.special.expit`` evaluated in higher precision. Then the dtype policy,
the accepted input layouts, ``out=`` and every refused call.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import itertools
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import DTYPES, dtype_id
from scipy.special import expit

from dlfr import _kernels, kernels
from dlfr import _reference as ref

#: every test here runs at each SIMD level this CPU has (conftest.py)
pytestmark = pytest.mark.usefixtures("simd_level")

#: Elementwise kernels against their twins (a few ulp apart at most).
ELEMENTWISE_TOL = {
    np.float32: {"rtol": 2e-6, "atol": 1e-7},
    np.float64: {"rtol": 1e-12, "atol": 1e-15},
}
#: Dense layers on exactly summable data: only the activation differs.
DENSE_TOL = {
    np.float32: {"rtol": 1e-5, "atol": 1e-6},
    np.float64: {"rtol": 1e-12, "atol": 1e-12},
}

#: Elementwise kernels of one argument (identity is public beyond the contract).
UNARY = ["sigmoid", "sigmoid_prime", "step", "tanh", "relu", "identity", "leaky_relu", "elu"]
ACTIVATION_NAMES = ("identity", "sigmoid", "tanh", "relu", "step", "softmax", "leaky_relu",
                    "elu")

#: Scalars, single rows and columns, tall and wide, empty, 3-D, and every
#: length from 1 to 67 so each SIMD width and every remainder is crossed.
SHAPES = [
    (),
    (1, 1),
    (1, 31),
    (1, 67),
    (1000, 3),
    (3, 1000),
    (0,),
    (3, 0),
    (2, 3, 5),
    (4, 1, 17),
    *[(n,) for n in range(1, 68)],
]

#: (n, n_in, n_out) of dense layers: MNIST's first layer at batch 1, 4097
#: (one past a power of two) and 0; a wide layer; small odd layers; n_in = 1.
DENSE_SHAPES = [
    (1, 784, 16),
    (7, 5, 3),
    (0, 784, 16),
    (4097, 784, 16),
    (64, 784, 256),
    (5, 1, 4),
]
#: Row counts and widths around register-block sizes (8 rows, 16 columns);
#: then long sums with 0-3 products left over, in row blocks of 12, 4, 2 and
#: 1 and one to three panels (AVX-512 float32 takes products two at a time).
ODD_DENSE_SHAPES = [(n, 13, m) for n in (1, 7, 8, 9, 17) for m in (1, 7, 15, 16, 17, 31, 33)]
ODD_DENSE_SHAPES += [(n, k, m) for n in (1, 5, 6, 12, 13, 23) for k in (96, 97, 98, 99)
                     for m in (16, 48)]
#: Around the wide kernel's blocks (6 rows x 64 float32 / 32 float64 columns,
#: two products a step): its row blocks of 6, 4, 2 and 1, odd k, and widths
#: that leave 16-column panels to the narrow kernel.
ODD_DENSE_SHAPES += [(n, k, m) for n in (1, 5, 6, 7, 13) for k in (1, 2, 3, 97)
                     for m in (64, 80, 96, 144)]

#: dtypes the policy refuses with a TypeError.
BAD_DTYPES = [np.bool_, np.complex64, np.complex128, np.object_, np.str_, np.bytes_]
#: Real dtypes converted to float64.
OTHER_REAL_DTYPES = [np.int8, np.int32, np.int64, np.uint8, np.float16]


def shape_id(shape) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def ulp_error(actual, z, dtype) -> np.ndarray:
    """Error of `actual` = sigmoid(`z`) in units in the last place of `dtype`.

    The oracle is ``scipy.special.expit`` evaluated in a wider float
    (float64 for float32; long double for float64), rounded to `dtype` only
    to find the ulp. This also covers denormal results, where expit in the
    same dtype overflows ``exp(-z)`` and returns 0.
    """
    wide = np.float64 if np.dtype(dtype) == np.float32 else np.longdouble
    if np.finfo(wide).eps >= np.finfo(dtype).eps:
        pytest.skip(f"no float wider than {np.dtype(dtype)} on this platform")
    exact = expit(np.asarray(z, dtype=wide))
    ulp = np.spacing(np.abs(exact.astype(dtype))).astype(wide)
    return np.abs(np.asarray(actual).astype(wide) - exact) / ulp


def random_array(shape, dtype, seed=0, scale=4.0) -> np.ndarray:
    """Normal values of both signs, some far into the sigmoid's flat tails."""
    return np.random.default_rng(seed).normal(0.0, scale, shape).astype(dtype)


def dense_inputs(n, n_in, n_out, dtype, seed=0):
    """X, W, b of a dense layer whose ``X @ W + b`` is exact in float32 and float64.

    X holds pixel-like multiples of 1/256 in [0, 1), W multiples of 1/32 in
    [-1/4, 1/4], b multiples of 1/32 in [-2, 2): every product and partial sum
    is a multiple of 2**-13 below 2**11 (for n_in <= 784), so any summation
    order gives the same z and the comparison sees only the activation.
    """
    rng = np.random.default_rng(seed)
    X = (rng.integers(0, 256, (n, n_in)) / 256).astype(dtype)
    W = (rng.integers(-8, 9, (n_in, n_out)) / 32).astype(dtype)
    b = (rng.integers(-64, 64, n_out) / 32).astype(dtype)
    return X, W, b


def message(*patterns) -> str:
    """A regex for ``pytest.raises(match=...)`` requiring every pattern, in any order."""
    return "(?s)" + "".join(f"(?=.*(?:{p}))" for p in patterns)


def arg(name) -> str:
    """Pattern for an argument's name as a word."""
    return rf"\b{re.escape(name)}\b"


def dtype_pattern(dtype) -> str:
    """Pattern for any usual spelling of `dtype` (``str``, ``name``, no byte-order mark)."""
    dtype = np.dtype(dtype)
    spellings = {str(dtype), dtype.name, str(dtype).lstrip("<>|=")}
    return "|".join(re.escape(s) for s in sorted(spellings, key=len, reverse=True))


def shape_pattern(shape) -> str:
    return re.escape(str(tuple(shape)))


def refused(dtype, shape) -> tuple[np.ndarray, str]:
    """An array of a refused dtype, and the pattern of that dtype's name."""
    array = np.zeros(shape, dtype=dtype)
    return array, dtype_pattern(array.dtype)


# --------------------------------------------------------------------------- build


def test_compiled_modules_are_extensions():
    """Each module _kernels gathers is compiled (no Python module of its name
    to fall back on), and _kernels itself is the Python module that gathers
    them, not an extension left from an older build."""
    for name in _kernels.MODULES:
        path = Path(importlib.import_module(f"dlfr.{name}").__file__)
        assert path.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), path
        assert not (path.parent / f"{name}.py").exists()
    assert Path(_kernels.__file__).name == "_kernels.py", _kernels.__file__


def test_activation_names():
    assert kernels.ACTIVATIONS == ACTIVATION_NAMES
    assert tuple(ref.ACTIVATIONS) == ACTIVATION_NAMES


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", UNARY)
def test_unary_matches_reference(name, dtype, shape):
    z = random_array(shape, dtype)
    result = getattr(kernels, name)(z)
    assert np.shape(result) == shape
    assert result.dtype == dtype
    np.testing.assert_allclose(result, getattr(ref, name)(z), **ELEMENTWISE_TOL[dtype])


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_sigmoid_backward_matches_reference(dtype, shape):
    grad = random_array(shape, dtype, seed=1, scale=1.0)
    a = ref.sigmoid(random_array(shape, dtype, seed=2))
    result = kernels.sigmoid_backward(grad, a)
    assert np.shape(result) == shape
    assert result.dtype == dtype
    np.testing.assert_allclose(
        result, ref.sigmoid_backward(grad, a), **ELEMENTWISE_TOL[dtype]
    )


@pytest.mark.parametrize(
    ("dtype", "low", "high"),
    [(np.float32, -110.0, 90.0), (np.float64, -750.0, 40.0)],
    ids=["float32", "float64"],
)
@pytest.mark.parametrize("implementation", [kernels.sigmoid, ref.sigmoid], ids=["dlfr", "ref"])
def test_sigmoid_within_4_ulp_over_whole_range(implementation, dtype, low, high):
    # The ranges run from below the smallest denormal result to saturation at 1.
    finfo = np.finfo(dtype)
    specials = [0.0, -0.0, finfo.max, -finfo.max, finfo.smallest_subnormal,
                -finfo.smallest_subnormal, finfo.tiny, -finfo.tiny, np.inf, -np.inf]
    z = np.concatenate([np.linspace(low, high, 1_000_001, dtype=dtype),
                        np.array(specials, dtype=dtype)])
    errors = ulp_error(implementation(z), z, dtype)
    worst = int(np.argmax(errors))
    assert errors[worst] <= 4, f"{float(errors[worst]):.2f} ulp at z = {z[worst]!r}"


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_sigmoid_special_values(dtype):
    finfo = np.finfo(dtype)
    cases = [
        (0.0, 0.5),
        (-0.0, 0.5),
        (finfo.smallest_subnormal, 0.5),
        (-finfo.smallest_subnormal, 0.5),
        (np.inf, 1.0),
        (-np.inf, 0.0),
        (finfo.max, 1.0),
        (-finfo.max, 0.0),
        (np.nan, np.nan),
    ]
    z, expected = (np.array(v, dtype=dtype) for v in zip(*cases, strict=True))
    np.testing.assert_array_equal(kernels.sigmoid(z), expected)  # NaN equals NaN here
    assert kernels.sigmoid(dtype(0.0)) == 0.5


@pytest.mark.parametrize(
    ("dtype", "limit", "rtol"),
    [(np.float32, 85.0, 1e-5), (np.float64, 700.0, 1e-12)],
    ids=["float32", "float64"],
)
def test_sigmoid_prime_accurate_for_large_z(dtype, limit, rtol):
    # Up to |z| = limit the derivative is still a normal number of `dtype`.
    z = np.linspace(-limit, limit, 200_001, dtype=dtype)
    z64 = z.astype(np.float64)
    expected = expit(z64) * expit(-z64)
    np.testing.assert_allclose(kernels.sigmoid_prime(z), expected, rtol=rtol, atol=0)


#: Exact results of each kernel for special inputs, per float dtype.
def special_cases(dtype):
    finfo = np.finfo(dtype)
    big, tiny = float(finfo.max), float(finfo.smallest_subnormal)
    return {
        "sigmoid_prime": [(0.0, 0.25), (-0.0, 0.25), (np.inf, 0.0), (-np.inf, 0.0),
                          (big, 0.0), (-big, 0.0), (np.nan, np.nan)],
        "step": [(0.0, 1.0), (-0.0, 1.0), (tiny, 1.0), (-tiny, 0.0), (np.inf, 1.0),
                 (-np.inf, 0.0), (big, 1.0), (-big, 0.0), (np.nan, np.nan)],
        "relu": [(0.0, 0.0), (-0.0, 0.0), (tiny, tiny), (-tiny, 0.0), (np.inf, np.inf),
                 (-np.inf, 0.0), (big, big), (-big, 0.0), (np.nan, np.nan)],
        "tanh": [(0.0, 0.0), (-0.0, -0.0), (np.inf, 1.0), (-np.inf, -1.0),
                 (big, 1.0), (-big, -1.0), (np.nan, np.nan)],
        "leaky_relu": [(0.0, 0.0), (-0.0, -0.0), (tiny, tiny), (-tiny, -0.0),
                       (np.inf, np.inf), (-np.inf, -np.inf), (big, big),
                       (-big, -big * float(dtype(0.01))),
                       (-100.0, float(dtype(-100) * dtype(0.01))), (np.nan, np.nan)],
        "elu": [(0.0, 0.0), (-0.0, -0.0), (tiny, tiny), (-tiny, -tiny), (np.inf, np.inf),
                (-np.inf, -1.0), (big, big), (-big, -1.0), (-1000.0, -1.0), (np.nan, np.nan)],
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", ["sigmoid_prime", "step", "relu", "tanh", "leaky_relu", "elu"])
def test_special_values(name, dtype):
    z, expected = (np.array(v, dtype=dtype) for v in zip(*special_cases(dtype)[name], strict=True))
    result = getattr(kernels, name)(z)
    np.testing.assert_array_equal(result, expected)  # NaN equals NaN here
    np.testing.assert_array_equal(getattr(ref, name)(z), expected)


@pytest.mark.parametrize(
    ("dtype", "low"), [(np.float32, -20.0), (np.float64, -40.0)], ids=["float32", "float64"]
)
def test_elu_within_2_ulp_of_expm1(dtype, low):
    # From where e^z - 1 rounds to -1 up to 0, densely near 0 (where e^z - 1
    # cancels), and the positive side, which is z itself.
    finfo = np.finfo(dtype)
    near_zero = -np.logspace(np.log10(float(finfo.smallest_subnormal)), -1, 200_001)
    z = np.concatenate([np.linspace(low, 1.0, 1_000_001), near_zero]).astype(dtype)
    wide = np.float64 if dtype == np.float32 else np.longdouble
    if np.finfo(wide).eps >= finfo.eps:
        pytest.skip(f"no float wider than {np.dtype(dtype)} on this platform")
    exact = np.where(z < 0, np.expm1(z.astype(wide)), z.astype(wide))
    ulp = np.spacing(np.abs(exact.astype(dtype))).astype(wide)
    errors = np.abs(kernels.elu(z).astype(wide) - exact) / ulp
    worst = int(np.argmax(errors))
    assert errors[worst] <= 2, f"{float(errors[worst]):.2f} ulp at z = {z[worst]!r}"


def extreme_values(dtype):
    finfo = np.finfo(dtype)
    return np.array(
        [0.0, -0.0, 1.0, -1.0, 88.7, -88.7, 103.9, -104.0, 709.8, -745.2, finfo.max, -finfo.max,
         finfo.tiny, -finfo.tiny, finfo.smallest_subnormal, -finfo.smallest_subnormal,
         np.inf, -np.inf, np.nan],
        dtype=dtype,
    )


def no_warnings():
    """Turn every warning, and NumPy's floating-point warnings but underflow, into errors."""
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("error")
    stack.enter_context(np.errstate(all="warn", under="ignore"))
    return stack


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", [*UNARY, "sigmoid_backward"])
def test_no_floating_point_warnings(name, dtype):
    z = extreme_values(dtype)
    # sigmoid_backward takes a sigmoid output: extremes in grad, [0, 1] in a.
    args = (z, ref.sigmoid(z)) if name == "sigmoid_backward" else (z,)
    with no_warnings():
        result = getattr(kernels, name)(*args)
    assert np.isfinite(result[np.isfinite(z)]).all()
    assert np.isnan(result[np.isnan(z)]).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_dense_no_floating_point_warnings(activation, dtype):
    # z reaches +-1e4: far past every saturation and exp overflow.
    X = np.array([[1e3, -1e3, 0.5], [-1e3, 1e3, 0.0], [0.0, 0.0, 0.0]], dtype=dtype)
    W = np.array([[10.0, -10.0], [0.0, 0.0], [1.0, -1.0]], dtype=dtype)
    b = np.zeros(2, dtype=dtype)
    with no_warnings():
        result = kernels.dense(X, W, b, activation)
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result, ref.dense(X, W, b, activation), **DENSE_TOL[dtype])


# --------------------------------------------------------------------------- dense


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_dense_matches_reference(activation, dtype, shape):
    n, n_in, n_out = shape
    X, W, b = dense_inputs(n, n_in, n_out, dtype)
    result = kernels.dense(X, W, b, activation)
    assert result.shape == (n, n_out)
    assert result.dtype == dtype
    np.testing.assert_allclose(result, ref.dense(X, W, b, activation), **DENSE_TOL[dtype])


@pytest.mark.parametrize("shape", ODD_DENSE_SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("activation", ["identity", "sigmoid"])
def test_dense_odd_sizes(activation, dtype, shape):
    X, W, b = dense_inputs(*shape, dtype, seed=3)
    result = kernels.dense(X, W, b, activation)
    np.testing.assert_allclose(result, ref.dense(X, W, b, activation), **DENSE_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("n_out", [16, 64, 80, 256])
def test_dense_rows_do_not_depend_on_batching(n_out, dtype):
    """A row's outputs are bit-identical in any batch: dlfr's GEMM gives each
    the same arithmetic in every row block, chunk and thread."""
    if n_out > _kernels.NARROW_MAX and not _kernels.gemm_wide():
        pytest.skip("layers this wide go to BLAS at this SIMD level")
    # 301 rows x 784 inputs: enough work for dense to run its 120-row chunks
    # on every thread at every width here (from 256 rows and 2M multiply-adds)
    X, W, b = dense_inputs(301, 784, n_out, dtype, seed=7)
    whole = kernels.dense(X, W, b, "sigmoid")
    for start, stop in [(0, 1), (1, 7), (7, 13), (13, 140), (140, 301)]:
        np.testing.assert_array_equal(kernels.dense(X[start:stop], W, b, "sigmoid"),
                                      whole[start:stop])


def placed(W0, offset):
    """A copy of W0 whose data starts `offset` bytes (rounded down to an item)
    past a cache line."""
    itemsize = W0.dtype.itemsize
    raw = np.zeros(W0.nbytes + 128, dtype=np.uint8)
    start = -raw.ctypes.data % 64 + offset - offset % itemsize
    W = raw[start:start + W0.nbytes].view(W0.dtype).reshape(W0.shape)
    W[...] = W0
    return W


@pytest.mark.parametrize("offset", [4, 8, 16, 32, 48, 60])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize(
    ("n", "n_in", "n_out"),
    # small batches read W where it is (split loads); n_in 37 and 38 leave
    # 1 and 2 products after the 3-way split of the panel kernel (float64 on
    # AVX-512, and every dtype below it) and odd and even k to the pair
    # kernel (AVX-512 float32). A batch of 256 rows or more copies W to an
    # aligned buffer first.
    [(1, 37, 16), (9, 38, 16), (16, 784, 16), (300, 37, 16), (300, 37, 32)],
)
def test_dense_weights_off_a_cache_line(n, n_in, n_out, dtype, offset):
    # the same products as with W on a line: the same result, and W unchanged
    X, W0, b = dense_inputs(n, n_in, n_out, dtype, seed=5)
    W = placed(W0, offset)
    result = kernels.dense(X, W, b, "sigmoid")
    np.testing.assert_array_equal(result, kernels.dense(X, placed(W0, 0), b, "sigmoid"))
    np.testing.assert_allclose(result, ref.dense(X, W0, b, "sigmoid"), **DENSE_TOL[dtype])
    np.testing.assert_array_equal(W, W0)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("activation", ["identity", "sigmoid"])
def test_dense_general_floats(activation, dtype):
    # Unrounded data: the rounding of X @ W grows with n_in, and so does the
    # tolerance. The oracle runs in float64.
    n, n_in, n_out = 4097, 784, 16
    rng = np.random.default_rng(4)
    X = rng.random((n, n_in)).astype(dtype)
    W = (rng.normal(size=(n_in, n_out)) / math.sqrt(n_in)).astype(dtype)
    b = rng.normal(size=n_out).astype(dtype)
    expected = ref.dense(*(v.astype(np.float64) for v in (X, W, b)), activation)
    tol = DENSE_TOL[dtype]
    np.testing.assert_allclose(
        kernels.dense(X, W, b, activation), expected,
        rtol=tol["rtol"], atol=tol["atol"] * math.sqrt(n_in),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_dense_softmax_rows_sum_to_one(dtype):
    X, W, b = dense_inputs(50, 20, 10, dtype)
    result = kernels.dense(X, W, b, "softmax")
    np.testing.assert_allclose(result.sum(axis=1), 1.0, rtol=DENSE_TOL[dtype]["rtol"])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_chained_dense_matches_reference_forward(dtype):
    # The 784-16-10 network, sigmoid hidden layer, softmax output.
    sizes, activations = [784, 16, 10], ["sigmoid", "softmax"]
    X, _, _ = dense_inputs(33, sizes[0], 1, dtype)
    layers = [dense_inputs(1, n_in, n_out, dtype, seed=i)[1:]
              for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes))]
    weights, biases = zip(*layers, strict=True)
    hidden, output = ref.forward(X, weights, biases, activations, return_all=True)
    a = X
    for (W, b), activation in zip(layers, activations, strict=True):
        a = kernels.dense(a, W, b, activation)
    np.testing.assert_allclose(a, output, **DENSE_TOL[dtype])
    np.testing.assert_array_equal(ref.forward(X, weights, biases, activations), output)
    assert hidden.shape == (33, 16)


SOFTMAX_SHAPES = [(1, 1), (1, 67), (1000, 3), (3, 1000), (0, 5), *[(3, n) for n in range(1, 18)]]


@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_softmax_matches_reference(dtype, shape):
    z = random_array(shape, dtype, scale=30.0)  # spreads far beyond exp's range
    with no_warnings():
        result = kernels.softmax(z)
    assert result.shape == shape
    assert result.dtype == dtype
    np.testing.assert_allclose(result, ref.softmax(z), **ELEMENTWISE_TOL[dtype])


@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4)], ids=shape_id)
def test_softmax_refuses_other_than_2d(shape):
    with pytest.raises(ValueError, match=message(arg("z"), shape_pattern(shape))):
        kernels.softmax(np.zeros(shape))


# --------------------------------------------------------------------------- dtype policy


@pytest.mark.parametrize("dtype", OTHER_REAL_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", UNARY)
def test_other_real_dtypes_become_float64(name, dtype):
    start = 0 if np.dtype(dtype).kind == "u" else -5
    z = np.arange(start, start + 11).astype(dtype)
    result = getattr(kernels, name)(z)
    assert result.dtype == np.float64
    np.testing.assert_allclose(
        result, getattr(ref, name)(z.astype(np.float64)), **ELEMENTWISE_TOL[np.float64]
    )


@pytest.mark.parametrize(
    ("grad_dtype", "a_dtype", "expected"),
    [
        (np.float32, np.float32, np.float32),
        (np.float64, np.float64, np.float64),
        (np.float32, np.float64, np.float64),
        (np.float64, np.float32, np.float64),
        (np.int32, np.float32, np.float64),
        (np.float32, np.float16, np.float64),
        (np.float16, np.float16, np.float64),
    ],
    ids=lambda d: np.dtype(d).name,
)
def test_sigmoid_backward_result_dtype(grad_dtype, a_dtype, expected):
    grad = np.arange(-3, 4).astype(grad_dtype)
    a = np.linspace(0, 1, 7).astype(a_dtype)
    result = kernels.sigmoid_backward(grad, a)
    assert result.dtype == expected
    np.testing.assert_allclose(
        result, ref.sigmoid_backward(grad, a), **ELEMENTWISE_TOL[np.dtype(expected).type]
    )


@pytest.mark.parametrize(
    ("x_dtype", "w_dtype", "b_dtype", "expected"),
    [
        (np.float64, np.float32, np.float64, np.float32),
        (np.float32, np.float64, np.float32, np.float64),
        (np.int64, np.float32, np.int64, np.float32),
        (np.uint8, np.float64, np.float32, np.float64),
        (np.float32, np.int32, np.float32, np.float64),
        (np.float32, np.float16, np.float32, np.float64),
    ],
    ids=lambda d: np.dtype(d).name,
)
def test_dense_result_dtype_follows_W(x_dtype, w_dtype, b_dtype, expected):
    rng = np.random.default_rng(5)
    X = rng.integers(0, 4, (6, 5)).astype(x_dtype)
    W = rng.integers(-2, 3, (5, 3)).astype(w_dtype)
    b = rng.integers(-2, 3, 3).astype(b_dtype)
    result = kernels.dense(X, W, b)
    assert result.dtype == expected
    np.testing.assert_allclose(
        result, ref.dense(X, W, b),  # uint8 X: pixels, / 255, in both
        **DENSE_TOL[np.dtype(expected).type],
    )


# --------------------------------------------------------------------------- accepted inputs


def noncontiguous(a):
    """The same values in a view with a stride of two elements along the last axis."""
    a = np.asarray(a)
    wide = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), dtype=a.dtype)
    wide[..., ::2] = a
    return wide[..., ::2]


def readonly(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


#: Ways to pass the same (or integer-valued) data that must all be accepted.
LAYOUTS = {
    "noncontiguous": noncontiguous,
    "fortran": np.asfortranarray,
    "readonly": readonly,
    "bigendian": lambda a: np.asarray(a).astype(np.asarray(a).dtype.newbyteorder(">")),
    "int": lambda a: np.round(a).astype(np.int64),
    "uint8": lambda a: np.clip(np.round(np.abs(a) * 4), 0, 255).astype(np.uint8),
    "list": lambda a: np.asarray(a).tolist(),
}


def expected_dtype(x) -> np.dtype:
    return ref._float_dtype(np.asarray(x).dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", UNARY)
def test_unary_accepts_any_layout(name, dtype, layout):
    z = LAYOUTS[layout](random_array((6, 5), dtype))
    result = getattr(kernels, name)(z)
    expected = getattr(ref, name)(z)
    assert result.dtype == expected_dtype(z)
    np.testing.assert_allclose(result, expected, **ELEMENTWISE_TOL[result.dtype.type])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("which", ["grad", "a"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_sigmoid_backward_accepts_any_layout(dtype, which, layout):
    args = {"grad": random_array((6, 5), dtype, seed=1), "a": random_array((6, 5), dtype, seed=2)}
    args[which] = LAYOUTS[layout](args[which])
    result = kernels.sigmoid_backward(**args)
    expected = ref.sigmoid_backward(**args)
    assert result.dtype == expected.dtype
    np.testing.assert_allclose(result, expected, **ELEMENTWISE_TOL[result.dtype.type])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("which", ["X", "W", "b"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_dense_accepts_any_layout(dtype, which, layout):
    X, W, b = dense_inputs(6, 5, 3, dtype)
    args = {"X": X * 8, "W": W * 8, "b": b}  # small integers and halves
    args[which] = LAYOUTS[layout](args[which])
    result = kernels.dense(**args, activation="identity")
    expected = ref.dense(**args, activation="identity")
    assert result.dtype == expected.dtype == expected_dtype(args["W"])
    np.testing.assert_allclose(result, expected, **DENSE_TOL[result.dtype.type])


#: Scalars of every kind (each keeps its shape ()) and nested lists.
SCALARS_AND_LISTS = {
    "float": 0.0,
    "negative-float": -2.5,
    "int": 3,
    "numpy-float32": np.float32(1.5),
    "numpy-int8": np.int8(-2),
    "0d-int": np.array(4),
    "0d-bigendian": np.array(-1.0, dtype=">f8"),
    "nested-list": [[-1.0, 0.0], [2.0, 40.0]],
}


@pytest.mark.parametrize("z", SCALARS_AND_LISTS.values(), ids=SCALARS_AND_LISTS)
@pytest.mark.parametrize("name", UNARY)
def test_scalars_and_lists_keep_their_shape(name, z):
    result = getattr(kernels, name)(z)
    expected = getattr(ref, name)(z)
    assert np.shape(result) == np.shape(z)
    assert result.dtype == expected.dtype == expected_dtype(z)
    np.testing.assert_allclose(result, expected, **ELEMENTWISE_TOL[result.dtype.type])


# --------------------------------------------------------------------------- out=


def call(name, dtype, shape=(4, 5), **kwargs):
    """Call kernel `name` on fresh inputs of `dtype`; return (result, reference)."""
    if name == "dense":
        X, W, b = dense_inputs(shape[0], 7, shape[1], dtype)
        return kernels.dense(X, W, b, **kwargs), ref.dense(X, W, b)
    if name == "sigmoid_backward":
        grad, a = random_array(shape, dtype, seed=1), random_array(shape, dtype, seed=2)
        return kernels.sigmoid_backward(grad, a, **kwargs), ref.sigmoid_backward(grad, a)
    z = random_array(shape, dtype)
    return getattr(kernels, name)(z, **kwargs), getattr(ref, name)(z)


ALL_KERNELS = [*UNARY, "sigmoid_backward", "dense"]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", ALL_KERNELS)
def test_out_is_written_and_returned(name, dtype):
    out = np.full((4, 5), 7.25, dtype=dtype)
    result, expected = call(name, dtype, out=out)
    assert result is out
    np.testing.assert_allclose(out, expected, **DENSE_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", UNARY)
def test_out_may_alias_the_input(name, dtype):
    z = random_array((3, 37), dtype)
    expected = getattr(ref, name)(z)
    result = getattr(kernels, name)(z, out=z)
    assert result is z
    np.testing.assert_allclose(z, expected, **ELEMENTWISE_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("which", ["grad", "a"])
def test_sigmoid_backward_out_may_alias_an_input(which, dtype):
    args = {"grad": random_array((3, 37), dtype, seed=1), "a": random_array((3, 37), dtype, seed=2)}
    expected = ref.sigmoid_backward(**args)
    result = kernels.sigmoid_backward(**args, out=args[which])
    assert result is args[which]
    np.testing.assert_allclose(result, expected, **ELEMENTWISE_TOL[dtype])


def other_dtype(dtype):
    return np.float64 if dtype == np.float32 else np.float32


#: Unusable `out` arrays for a result of shape (4, 5) and `dtype`.
BAD_OUTS = {
    "list": lambda dtype: np.zeros((4, 5)).tolist(),
    "wrong-shape": lambda dtype: np.zeros((4, 6), dtype),
    "transposed-shape": lambda dtype: np.zeros((5, 4), dtype),
    "flat": lambda dtype: np.zeros(20, dtype),
    "extra-axis": lambda dtype: np.zeros((1, 4, 5), dtype),
    "other-float": lambda dtype: np.zeros((4, 5), other_dtype(dtype)),
    "int": lambda dtype: np.zeros((4, 5), np.int64),
    "fortran": lambda dtype: np.zeros((4, 5), dtype, order="F"),
    "strided": lambda dtype: np.zeros((4, 10), dtype)[:, ::2],
    "readonly": lambda dtype: readonly(np.zeros((4, 5), dtype)),
    "byteswapped": lambda dtype: np.zeros((4, 5), np.dtype(dtype).newbyteorder("S")),
}


@pytest.mark.parametrize("bad", BAD_OUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", ALL_KERNELS)
def test_bad_out_is_refused_and_untouched(name, dtype, bad):
    out = BAD_OUTS[bad](dtype)
    if isinstance(out, np.ndarray) and out.flags.writeable:
        out[...] = 7.25
    before = np.array(out, copy=True)
    with pytest.raises(ValueError, match=arg("out")):
        call(name, dtype, out=out)
    np.testing.assert_array_equal(np.asarray(out), before)


# --------------------------------------------------------------------------- refused inputs


def sentinel_out(shape, dtype=np.float64):
    return np.full(shape, 7.25, dtype=dtype)


@pytest.mark.parametrize("bad_dtype", BAD_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", UNARY)
def test_unary_refuses_dtype(name, bad_dtype):
    z, dtype_name = refused(bad_dtype, (2, 3))
    out = sentinel_out((2, 3))
    with pytest.raises(TypeError, match=message(arg("z"), dtype_name)):
        getattr(kernels, name)(z, out=out)
    assert (out == 7.25).all()


@pytest.mark.parametrize("bad_dtype", BAD_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("which", ["grad", "a"])
def test_sigmoid_backward_refuses_dtype(which, bad_dtype):
    args = {"grad": np.ones((2, 3)), "a": np.full((2, 3), 0.5)}
    args[which], dtype_name = refused(bad_dtype, (2, 3))
    out = sentinel_out((2, 3))
    with pytest.raises(TypeError, match=message(arg(which), dtype_name)):
        kernels.sigmoid_backward(**args, out=out)
    assert (out == 7.25).all()


@pytest.mark.parametrize("bad_dtype", BAD_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("which", ["X", "W", "b"])
def test_dense_refuses_dtype(which, bad_dtype):
    args = {"X": np.ones((7, 5)), "W": np.ones((5, 3)), "b": np.ones(3)}
    args[which], dtype_name = refused(bad_dtype, args[which].shape)
    out = sentinel_out((7, 3))
    with pytest.raises(TypeError, match=message(arg(which), dtype_name)):
        kernels.dense(**args, out=out)
    assert (out == 7.25).all()


@pytest.mark.parametrize(
    ("grad_shape", "a_shape"),
    [((4, 5), (5, 4)), ((4, 5), (1, 5)), ((4, 5), (5,)), ((3,), (4,)), ((), (1,))],
    ids=shape_id,
)
def test_sigmoid_backward_refuses_different_shapes(grad_shape, a_shape):
    with pytest.raises(
        ValueError, match=message(shape_pattern(grad_shape), shape_pattern(a_shape))
    ):
        kernels.sigmoid_backward(np.ones(grad_shape), np.full(a_shape, 0.5))


#: (X shape, W shape, b shape, patterns the message must hold: the argument's
#: name, its actual shape, the expected size). The good call is X (7, 5),
#: W (5, 3), b (3,).
BAD_DENSE_SHAPES = {
    "X-1d": ((5,), (5, 3), (3,), [arg("X"), shape_pattern((5,))]),
    "X-3d": ((1, 7, 5), (5, 3), (3,), [arg("X"), shape_pattern((1, 7, 5))]),
    "X-0d": ((), (5, 3), (3,), [arg("X"), shape_pattern(())]),
    "W-1d": ((7, 5), (5,), (3,), [arg("W"), shape_pattern((5,))]),
    "W-3d": ((7, 5), (1, 5, 3), (3,), [arg("W"), shape_pattern((1, 5, 3))]),
    "n_in-mismatch": ((7, 4), (5, 3), (3,), [r"\b[XW]\b", r"\b4\b", r"\b5\b"]),
    "b-2d": ((7, 5), (5, 3), (1, 3), [arg("b"), shape_pattern((1, 3))]),
    "b-0d": ((7, 5), (5, 3), (), [arg("b"), shape_pattern(())]),
    "b-too-long": ((7, 5), (5, 3), (4,), [arg("b"), shape_pattern((4,)), r"\b3\b"]),
    "b-too-short": ((7, 5), (5, 3), (2,), [arg("b"), shape_pattern((2,)), r"\b3\b"]),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("case", BAD_DENSE_SHAPES)
def test_dense_refuses_shape(case, dtype):
    x_shape, w_shape, b_shape, patterns = BAD_DENSE_SHAPES[case]
    out = sentinel_out((7, 3), dtype)
    with pytest.raises(ValueError, match=message(*patterns)):
        kernels.dense(np.ones(x_shape, dtype), np.ones(w_shape, dtype), np.ones(b_shape, dtype),
                      out=out)
    assert (out == 7.25).all()


@pytest.mark.parametrize("activation", ["softplus", "Sigmoid ", "", "linear"])
def test_dense_refuses_unknown_activation(activation):
    X, W, b = dense_inputs(7, 5, 3, np.float64)
    out = sentinel_out((7, 3))
    with pytest.raises(ValueError, match=message(*map(re.escape, ACTIVATION_NAMES))):
        kernels.dense(X, W, b, activation, out=out)
    assert (out == 7.25).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_dense_empty_batch(activation, dtype):
    X, W, b = dense_inputs(0, 784, 16, dtype)
    result = kernels.dense(X, W, b, activation)
    assert result.shape == (0, 16)
    assert result.dtype == dtype
    out = np.empty((0, 16), dtype)
    assert kernels.dense(X, W, b, activation, out=out) is out
