# Type stubs for the compiled module dlfr._kernels (see _kernels.pyx).
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

IDENTITY: int
SIGMOID: int
TANH: int
RELU: int
STEP: int
SOFTMAX: int
PANEL: int
CACHE_LINE: int
NARROW_MAX: int
FEW_ROWS_OWN: int
PARALLEL_MIN_ELEMENTS: int
PARALLEL_MIN_ROWS: int
MAX_NETWORK_LAYERS: int
THREAD_CAP: int
LOSS_MSE: int
LOSS_CROSS_ENTROPY: int
SIMD_LEVELS: dict[str, int]

_Float = npt.NDArray[np.float32] | npt.NDArray[np.float64]

def select_simd(level: int) -> int: ...
def build_info() -> dict[str, Any]: ...
def gemm_wide() -> bool: ...
def max_threads() -> int: ...
def set_blas_max_rows(rows: int) -> int: ...
def activate(z: _Float, out: _Float, act: int) -> None: ...
def sigmoid_prime(z: _Float, out: _Float) -> None: ...
def sigmoid_backward(grad: _Float, a: _Float, out: _Float) -> None: ...
def softmax_rows(y: _Float) -> None: ...
def decide_rows(a: _Float, labels: npt.NDArray[np.int64]) -> None: ...
def dense(X: _Float, W: _Float, b: _Float, out: _Float, act: int) -> None: ...
def dense_fast(X: object, W: object, b: object, out: object, act: int) -> _Float | None: ...
@disjoint_base
class Engine:
    dtype: np.dtype
    def __new__(
        cls, weights: list[_Float], biases: list[_Float], n_outs: list[int], acts: list[int]
    ) -> Engine: ...
    def run(
        self,
        X: object,
        n_threads: int | None = None,
        scale: float = 1.0,
        labels: bool = False,
        check_finite: bool = True,
    ) -> npt.NDArray[Any] | None: ...

@disjoint_base
class Trainer:
    def __new__(
        cls, n_ins: list[int], lds: list[int], n_targets: int, batch_size: int, itemsize: int
    ) -> Trainer: ...
    def epoch(
        self,
        weights: list[_Float],
        biases: list[_Float],
        n_outs: list[int],
        acts: list[int],
        X: object,
        Y: object,
        order: object,
        learning_rate: float,
        loss: int,
    ) -> tuple[float, int]: ...
