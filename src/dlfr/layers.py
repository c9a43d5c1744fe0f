"""``Dense``: one fully connected layer, ``activation(X @ W + b)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _kernels
from ._names import ACTIVATION_CODES, ActivationName, DTypeSpec, lookup
from ._validation import as_array, positive_int, real_dtype


def _padded_width(n_out: int) -> int:
    """n_out rounded up to the GEMM's panel width."""
    return -(-n_out // _kernels.PANEL) * _kernels.PANEL


#: Bytes per cache line: the GEMM loads W a whole panel row (64 bytes in
#: float32) at a time, and a row that straddles two lines costs two loads.
CACHE_LINE = _kernels.CACHE_LINE


def _aligned_zeros(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Zeros whose first element starts a cache line (NumPy only promises 16 bytes)."""
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(nbytes + CACHE_LINE, dtype=np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class Dense:
    """A dense layer of ``n_out`` neurons, each seeing all ``n_in`` inputs.

    ``W`` has shape (n_in, n_out): column j holds neuron j's weights
    (scikit-learn's ``coefs_`` layout); ``b`` has shape (n_out,).
    Initialisation: W ~ N(0, 1) / sqrt(n_in) and b ~ N(0, 1) (Nielsen's
    choice for sigmoid neurons: it keeps the weighted inputs of a fresh layer
    out of the sigmoid's flat tails). The same ``seed`` gives the same weights.

    The weights live in arrays padded with zero columns to the kernels' panel
    width; ``W`` and ``b`` are views of them, so writing into ``W`` in place
    (or assigning a new array to it) is seen by the very next forward pass,
    with nothing repacked.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        activation: ActivationName = "sigmoid",
        dtype: DTypeSpec = "float32",
        seed: int | np.random.Generator | None = None,
    ) -> None:
        self._allocate(n_in, n_out, activation, dtype)
        rng = np.random.default_rng(seed)
        self._W[:, : self.n_out] = rng.standard_normal((self.n_in, self.n_out)) / np.sqrt(
            self.n_in)
        self._b[: self.n_out] = rng.standard_normal(self.n_out)

    def _allocate(self, n_in: int, n_out: int, activation: ActivationName,
                  dtype: DTypeSpec) -> None:
        """Check the configuration and set up zeroed, padded, aligned storage."""
        n_in = positive_int(n_in, "n_in")
        n_out = positive_int(n_out, "n_out")
        self._act = lookup(ACTIVATION_CODES, activation, "activation")
        self.activation: ActivationName = activation
        self.dtype: np.dtype = real_dtype("dtype", dtype)
        self.n_in, self.n_out = n_in, n_out
        ld = _padded_width(n_out)
        self._W = _aligned_zeros((n_in, ld), self.dtype)
        self._b = _aligned_zeros((ld,), self.dtype)

    @classmethod
    def from_params(cls, W: Any, b: Any, activation: ActivationName, dtype: DTypeSpec) -> Dense:
        """A layer holding W (n_in, n_out) and b, checked by their setters (no random draw)."""
        n_in, n_out = np.shape(W)
        layer = cls.__new__(cls)
        layer._allocate(n_in, n_out, activation, dtype)
        layer.W, layer.b = W, b
        return layer

    @property
    def W(self) -> np.ndarray:
        """Weights, shape (n_in, n_out): a writeable view of the layer's storage."""
        return self._W[:, : self.n_out]

    @W.setter
    def W(self, value: Any) -> None:
        arr = as_array(value, "W", self.dtype)
        if arr.shape != (self.n_in, self.n_out):
            raise ValueError(f"W must have shape {(self.n_in, self.n_out)}; got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("W must be finite (no NaN or inf)")
        self._W[:, : self.n_out] = arr

    @property
    def b(self) -> np.ndarray:
        """Biases, shape (n_out,): a writeable view of the layer's storage."""
        return self._b[: self.n_out]

    @b.setter
    def b(self, value: Any) -> None:
        arr = as_array(value, "b", self.dtype)
        if arr.shape != (self.n_out,):
            raise ValueError(f"b must have shape ({self.n_out},); got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("b must be finite (no NaN or inf)")
        self._b[: self.n_out] = arr

    @property
    def n_params(self) -> int:
        return self.n_in * self.n_out + self.n_out

    # Pickle (and deepcopy) the configuration and the weights without the
    # panel padding: small and plain (NumPy arrays, str, int) to ship to
    # workers; the padded storage is rebuilt on load.
    def __getstate__(self) -> dict[str, Any]:
        return {
            "n_in": self.n_in, "n_out": self.n_out, "activation": self.activation,
            "dtype": self.dtype.name, "W": np.ascontiguousarray(self.W), "b": self.b.copy(),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._allocate(state["n_in"], state["n_out"], state["activation"], state["dtype"])
        self._W[:, : self.n_out] = state["W"]
        self._b[: self.n_out] = state["b"]

    def __repr__(self) -> str:
        return (
            f"Dense({self.n_in}, {self.n_out}, activation={self.activation!r}, "
            f"dtype={self.dtype.name!r})"
        )


class KernelLayers(NamedTuple):
    """A stack of layers as the compiled engine and trainer take them.

    The arrays are the layers' own storage, not copies: training updates them
    in place, and ``W``/``b`` (views of them) see every change. Each weight
    array is (n_in, n_out padded to the GEMM's panel width), each bias array
    (n_out padded); the padding columns stay zero.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    n_outs: list[int]
    #: each layer's activation code (``dlfr._names.ACTIVATION_CODES``)
    acts: list[int]


def kernel_layers(layers: Sequence[Dense]) -> KernelLayers:
    """``layers`` as the compiled engine and trainer take them (see KernelLayers)."""
    return KernelLayers(
        [layer._W for layer in layers], [layer._b for layer in layers],
        [layer.n_out for layer in layers], [layer._act for layer in layers],
    )
