"""Public, validated kernels: the building blocks of a sigmoid network.

Each function checks its arguments once (see dlfr._validation for the dtype
policy), then makes one call into the compiled module with the GIL released.
``out=`` receives the result when given: it must have exactly the result's
shape and dtype and be C-contiguous and writeable. Elementwise kernels accept
``out`` being the input itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import _kernels
from ._names import ACTIVATION_CODES, ACTIVATIONS, ActivationName, lookup
from ._validation import F32, F64, as_array, as_float_input, check_ndim, out_array

__all__ = [
    "ACTIVATIONS", "dense", "elu", "identity", "leaky_relu", "relu", "sigmoid",
    "sigmoid_backward", "sigmoid_prime", "softmax", "step", "tanh",
]


def _elementwise(z: Any, out: Any, kernel: Callable[..., None], *args: int) -> Any:
    """``kernel(z, out, *args)`` on the flattened arrays, out allocated if None."""
    arr = as_array(z, "z")
    res = out_array(out, arr.shape, arr.dtype, (arr,), (arr,))
    kernel(arr.reshape(-1), res.reshape(-1), *args)
    return res[()] if out is None and arr.ndim == 0 else res


def sigmoid(z: Any, out: Any = None) -> Any:
    """The logistic function 1 / (1 + e^-z), elementwise.

    Computed without overflow for every input (branch on the sign, no
    clipping): exactly 0.5 at 0, 0 and 1 at -inf and +inf, NaN stays NaN,
    within 4 ulp of scipy.special.expit.
    """
    return _elementwise(z, out, _kernels.activate, _kernels.SIGMOID)


def tanh(z: Any, out: Any = None) -> Any:
    """The hyperbolic tangent, elementwise."""
    return _elementwise(z, out, _kernels.activate, _kernels.TANH)


def relu(z: Any, out: Any = None) -> Any:
    """max(z, 0) elementwise; NaN stays NaN."""
    return _elementwise(z, out, _kernels.activate, _kernels.RELU)


def leaky_relu(z: Any, out: Any = None) -> Any:
    """0.01 * z where z < 0, else z, elementwise (PyTorch's default slope); NaN stays NaN."""
    return _elementwise(z, out, _kernels.activate, _kernels.LEAKY_RELU)


def elu(z: Any, out: Any = None) -> Any:
    """The exponential linear unit, alpha 1: e^z - 1 where z < 0, else z, elementwise.

    e^z - 1 is computed within about 1 ulp of expm1 however close z is to 0;
    -inf gives -1, NaN stays NaN.
    """
    return _elementwise(z, out, _kernels.activate, _kernels.ELU)


def step(z: Any, out: Any = None) -> Any:
    """The perceptron's activation: 1 where z >= 0, else 0; NaN stays NaN."""
    return _elementwise(z, out, _kernels.activate, _kernels.STEP)


def identity(z: Any, out: Any = None) -> Any:
    """z itself (a copy, or written into ``out``)."""
    return _elementwise(z, out, _kernels.activate, _kernels.IDENTITY)


def softmax(z: Any, out: Any = None) -> Any:
    """Row-wise softmax of a 2-D array: each row exponentiated and normalised."""
    arr = as_array(z, "z")
    check_ndim(arr, "z", 2, "(n_samples, n_classes)")
    res = out_array(out, arr.shape, arr.dtype, (arr,), (arr,))
    if res is not arr:
        res[...] = arr
    _kernels.softmax_rows(res)
    return res


def sigmoid_prime(z: Any, out: Any = None) -> Any:
    """The sigmoid's derivative sigma(z) * (1 - sigma(z)), from z, elementwise.

    Computed as e / (1 + e)^2 with e = exp(-|z|), so it stays accurate in
    the tails where 1 - sigma(z) rounds to 0.
    """
    return _elementwise(z, out, _kernels.sigmoid_prime)


def sigmoid_backward(grad: Any, a: Any, out: Any = None) -> Any:
    """Backpropagate through a sigmoid: grad * a * (1 - a), a = the sigmoid's output.

    ``grad`` and ``a`` must have the same shape. The result is float32 when
    both are float32, float64 otherwise.
    """
    g = as_array(grad, "grad")
    y = as_array(a, "a")
    if g.shape != y.shape:
        raise ValueError(
            f"grad and a must have the same shape; got grad {g.shape} and a {y.shape}"
        )
    dtype = F32 if (g.dtype is F32 and y.dtype is F32) else F64
    g, y = as_array(g, "grad", dtype), as_array(y, "a", dtype)
    res = out_array(out, g.shape, dtype, (g, y), (g, y))
    _kernels.sigmoid_backward(g.reshape(-1), y.reshape(-1), res.reshape(-1))
    return res[()] if out is None and g.ndim == 0 else res


def dense(X: Any, W: Any, b: Any, activation: ActivationName = "sigmoid",
          out: Any = None) -> np.ndarray:
    """One dense layer, fused: ``activation(X @ W + b)``.

    Parameters
    ----------
    X : array, shape (n_samples, n_in)
        uint8 X is read as pixels, value / 255, as ``Network.forward`` and
        ``Network.fit`` read it (other real dtypes are taken as they are).
    W : array, shape (n_in, n_out)
        Column j holds the weights of neuron j. Its dtype (float32 or float64;
        anything else becomes float64) is the dtype of the computation: X and
        b are converted to it.
    b : array, shape (n_out,)
    activation : {"identity", "sigmoid", "tanh", "relu", "step", "softmax", "leaky_relu", "elu"}
    out : array, shape (n_samples, n_out), optional
        Written in place and returned; must not overlap X, W or b.

    A big batch runs on every core OpenMP allows (threadpoolctl can limit
    it; never more than 4 threads per processor the process may use), or on
    BLAS's threads where BLAS computes the layer (see
    ``dlfr.show_config()``'s "gemm"). The GIL is released for all but tiny
    layers.
    """
    act = ACTIVATION_CODES.get(activation) if isinstance(activation, str) else None
    if act is not None:
        res = _kernels.dense_fast(X, W, b, out, act)
        if res is not None:
            return res
    act = lookup(ACTIVATION_CODES, activation, "activation")
    Wa = as_array(W, "W")
    check_ndim(Wa, "W", 2, "(n_in, n_out)")
    dtype = Wa.dtype
    Xa = as_float_input(X, "X", dtype)  # uint8: pixels, as Network.forward reads them
    check_ndim(Xa, "X", 2, "(n_samples, n_features)")
    ba = as_array(b, "b", dtype)
    check_ndim(ba, "b", 1, "(n_out,)")
    n_in, n_out = Wa.shape
    if Xa.shape[1] != n_in:
        raise ValueError(
            f"X has {Xa.shape[1]} features (shape {Xa.shape}) but W expects {n_in} "
            f"inputs (shape {Wa.shape})"
        )
    if ba.shape[0] != n_out:
        raise ValueError(
            f"b must have shape ({n_out},) to match W {Wa.shape}; got {ba.shape}"
        )
    res = out_array(out, (Xa.shape[0], n_out), dtype, (Xa, Wa, ba))
    _kernels.dense(Xa, Wa, ba, res, act)
    return res


