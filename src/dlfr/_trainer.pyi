# Type stubs for dlfr._trainer (see _trainer.pyx): an epoch of mini-batch SGD
# (optionally with per-sample weights).
import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

LOSS_MSE: int
LOSS_CROSS_ENTROPY: int

_Float = npt.NDArray[np.float32] | npt.NDArray[np.float64]

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
        sample_weight: object = None,
    ) -> tuple[float, float]: ...
