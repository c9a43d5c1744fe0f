# Type stubs for dlfr._trainer (see _trainer.pyx): an epoch of mini-batch gradient
# descent (optionally with per-sample weights).
import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

LOSS_MSE: int
LOSS_CROSS_ENTROPY: int
RULE_SGD: int
RULE_MOMENTUM: int
RULE_NESTEROV: int
RULE_ADAM: int

_Float = npt.NDArray[np.float32] | npt.NDArray[np.float64]

@disjoint_base
class Update:
    @property
    def rule(self) -> int: ...
    @property
    def momentum(self) -> float: ...
    @property
    def beta_1(self) -> float: ...
    @property
    def beta_2(self) -> float: ...
    @property
    def epsilon(self) -> float: ...
    @property
    def decay(self) -> float: ...
    @property
    def clip_norm(self) -> float: ...
    @property
    def first(self) -> tuple[_Float, ...] | None: ...
    @property
    def second(self) -> tuple[_Float, ...] | None: ...
    steps: int
    def __new__(
        cls,
        rule: int,
        *,
        momentum: float = 0,
        beta_1: float = 0,
        beta_2: float = 0,
        epsilon: float = 0,
        decay: float = 0,
        clip_norm: float = 0,
        first: list[_Float] | tuple[_Float, ...] | None = None,
        second: list[_Float] | tuple[_Float, ...] | None = None,
        steps: int = 0,
    ) -> Update: ...

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
        update: Update | None = None,
        sample_weight: object = None,
    ) -> tuple[float, float]: ...
