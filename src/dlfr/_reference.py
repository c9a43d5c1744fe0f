"""Plain-NumPy twin of every kernel in :mod:`dlfr.kernels`.

This module is the oracle of the tests and the baseline of the benchmarks.
It favours clarity over speed and computes with nothing but NumPy (the
activation names come from the registry, :mod:`dlfr._names`). Every function
computes in the dtype of its input (float32 stays float32, float64 stays
float64, any other real dtype becomes float64), exactly as the kernels do, so
it can be compared with them dtype for dtype. Tests that want a more precise
oracle pass float64 copies of their inputs.

``plain_sigmoid``, ``plain_dense_sigmoid`` and ``plain_forward`` are the naive
expressions people write by hand: the NumPy baseline that the benchmarks and
``dlfr bench`` (through ``peers.numpy_forward``) measure dlfr against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from . import _names
from ._names import ActivationName

__all__ = [
    "ACTIVATIONS",
    "dense",
    "elu",
    "forward",
    "identity",
    "leaky_relu",
    "plain_dense_sigmoid",
    "plain_forward",
    "plain_sigmoid",
    "relu",
    "sigmoid",
    "sigmoid_backward",
    "sigmoid_prime",
    "softmax",
    "step",
    "tanh",
]


def _float_dtype(dtype) -> np.dtype:
    """The dtype a kernel computes in for an input of `dtype`.

    float32 and float64 (of either byte order) are kept, in native byte order;
    every other real dtype becomes float64.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize in (4, 8):
        return np.dtype(f"f{dtype.itemsize}")
    return np.dtype(np.float64)


def _as_float(x, dtype=None) -> np.ndarray:
    """Return `x` as an array of `dtype`, or of ``_float_dtype(x.dtype)`` if None."""
    x = np.asarray(x)
    return x.astype(_float_dtype(x.dtype) if dtype is None else dtype, copy=False)


def sigmoid(z) -> np.ndarray:
    """Logistic function ``1 / (1 + exp(-z))`` without overflow.

    Branches on the sign of `z` and only ever exponentiates ``-|z|``, so the
    exponential lies in [0, 1]: ``1 / (1 + e)`` for ``z >= 0`` and
    ``e / (1 + e)`` for ``z < 0``. No clipping; NaN propagates.
    """
    z = _as_float(z)
    one = z.dtype.type(1)  # a typed 1: NumPy 1.x made float32 scalars + 1 float64
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, one / (one + e), e / (one + e))


def sigmoid_prime(z) -> np.ndarray:
    """Derivative of the sigmoid, ``sigma(z) * (1 - sigma(z))``, from `z`.

    Written as ``e / (1 + e)**2`` with ``e = exp(-|z|)`` (the derivative is
    even in `z`), which stays accurate for large ``|z|`` where ``1 - sigma(z)``
    would cancel.
    """
    z = _as_float(z)
    one = z.dtype.type(1)
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(z))
        return e / ((one + e) * (one + e))


def sigmoid_backward(grad, a) -> np.ndarray:
    """Backward pass of the sigmoid: ``grad * a * (1 - a)``, `a` being its output.

    The result is float32 only if both inputs are float32, float64 otherwise.
    `grad` and `a` must have the same shape (no broadcasting).
    """
    grad, a = np.asarray(grad), np.asarray(a)
    if grad.shape != a.shape:
        raise ValueError(f"grad has shape {grad.shape} but a has shape {a.shape}")
    both_f32 = _float_dtype(grad.dtype) == _float_dtype(a.dtype) == np.float32
    dtype = np.float32 if both_f32 else np.float64
    grad, a = _as_float(grad, dtype), _as_float(a, dtype)
    return grad * a * (a.dtype.type(1) - a)


def step(z) -> np.ndarray:
    """Heaviside step of the perceptron: 1 where ``z >= 0``, else 0; NaN stays NaN."""
    z = _as_float(z)
    return np.where(np.isnan(z), z, (z >= 0).astype(z.dtype))


def tanh(z) -> np.ndarray:
    """Hyperbolic tangent."""
    return np.tanh(_as_float(z))


def relu(z) -> np.ndarray:
    """Rectifier: 0 where ``z < 0``, else `z`; NaN stays NaN."""
    z = _as_float(z)
    return np.where(z < 0, z.dtype.type(0), z)


def leaky_relu(z) -> np.ndarray:
    """Leaky rectifier: ``slope * z`` where ``z < 0`` (slope 0.01, in z's dtype), else `z`."""
    z = _as_float(z)
    return np.where(z < 0, z * z.dtype.type(_names.LEAKY_RELU_SLOPE), z)


def elu(z) -> np.ndarray:
    """Exponential linear unit, alpha 1: ``expm1(z)`` where ``z < 0``, else `z`.

    -inf gives -1; NaN stays NaN (``expm1`` only ever sees ``min(z, 0)``, so
    large `z` does not overflow it).
    """
    z = _as_float(z)
    return np.where(z < 0, np.expm1(np.minimum(z, z.dtype.type(0))), z)


def identity(z) -> np.ndarray:
    """Identity (a linear layer): a float copy of `z`."""
    return _as_float(z).copy()


def softmax(z) -> np.ndarray:
    """Softmax over the last axis (row-wise for a batch), max-subtracted."""
    z = _as_float(z)
    with np.errstate(under="ignore"):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


#: Activation name -> reference function: for every name in the registry, the
#: function of that name above (a name without one fails this import).
ACTIVATIONS: dict[ActivationName, Callable[[np.ndarray], np.ndarray]] = {
    name: globals()[name] for name in _names.ACTIVATIONS
}


def _dense_dtype(W) -> np.dtype:
    """Result dtype of a dense layer: W's if float32/float64, else float64."""
    return _float_dtype(np.asarray(W).dtype)


def dense(X, W, b, activation: ActivationName = "sigmoid") -> np.ndarray:
    """Dense layer ``activation(X @ W + b)``.

    `X` is (n, n_in), `W` (n_in, n_out), `b` (n_out,). The computation runs in
    W's dtype if that is float32 or float64 (else float64); X and b are
    converted to it. uint8 X is read as pixels, value / 255, as dlfr reads it.
    """
    dtype = _dense_dtype(W)
    pixels = np.asarray(X).dtype == np.uint8
    X, W, b = (_as_float(v, dtype) for v in (X, W, b))
    if pixels:
        X = X * dtype.type(1.0 / 255.0)
    return ACTIVATIONS[activation](X @ W + b)


def forward(
    X,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    activations: ActivationName | Sequence[ActivationName] = "sigmoid",
    *,
    return_all: bool = False,
) -> np.ndarray | list[np.ndarray]:
    """Forward pass of a whole network, one :func:`dense` per layer.

    Parameters
    ----------
    X : array_like, shape (n, n_in)
        Input batch.
    weights, biases : sequences of arrays
        ``weights[i]`` is (n_i, n_{i+1}) and ``biases[i]`` is (n_{i+1},).
    activations : str or sequence of str
        One name for every layer, or one name per layer.
    return_all : bool
        If true, return the list of every layer's output (not the input);
        otherwise only the last layer's output.
    """
    if len(weights) != len(biases):
        raise ValueError(f"{len(weights)} weight matrices but {len(biases)} bias vectors")
    if isinstance(activations, str):
        activations = [activations] * len(weights)
    if len(activations) != len(weights):
        raise ValueError(f"{len(weights)} layers but {len(activations)} activations")
    outputs = []
    a = X
    for W, b, name in zip(weights, biases, activations, strict=True):
        a = dense(a, W, b, name)
        outputs.append(a)
    return outputs if return_all else a


def plain_sigmoid(z) -> np.ndarray:
    """The naive ``1 / (1 + np.exp(-z))`` (overflows to inf for very negative z)."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-z))


def plain_dense_sigmoid(X, W, b) -> np.ndarray:
    """The naive sigmoid layer ``1 / (1 + np.exp(-(X @ W + b)))``."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-(X @ W + b)))


def plain_forward(
    X,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    activations: Sequence[ActivationName] | None = None,
) -> np.ndarray:
    """The naive network: ``a = 1 / (1 + np.exp(-(a @ W + b)))`` layer by layer.

    ``activations`` (one name per layer; default sigmoid for all) gives a layer
    another activation, computed as :data:`ACTIVATIONS` computes it.
    """
    if activations is None:
        activations = ["sigmoid"] * len(weights)
    a = X
    with np.errstate(over="ignore"):  # exp(-z) overflowing to inf gives the right 0
        for W, b, name in zip(weights, biases, activations, strict=True):
            z = a @ W + b
            a = 1 / (1 + np.exp(-z)) if name == "sigmoid" else ACTIVATIONS[name](z)
    return a
