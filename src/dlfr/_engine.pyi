# Type stubs for dlfr._engine (see _engine.pyx): a network's forward pass.
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

PARALLEL_MIN_ROWS: int
MAX_NETWORK_LAYERS: int

_Float = npt.NDArray[np.float32] | npt.NDArray[np.float64]

def decide_rows(a: _Float, labels: npt.NDArray[np.int64]) -> None: ...
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
