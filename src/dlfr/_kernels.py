"""dlfr's compiled layer under the one name the Python modules use.

The compiled code is split along its seams, one extension module each (see
docs/architecture.md): ``_dispatch`` (the C kernels, their SIMD level and
the thread cap: process-wide state, in that module alone), ``_blas``,
``_ops`` (elementwise kernels and the dense layer), ``_engine`` (a
network's forward pass) and ``_trainer`` (an epoch of training). This module
gathers the names the rest of dlfr and its tests call; importing it imports
every compiled module, so a missing one fails here, loudly.
"""

from ._blas import set_blas_max_rows
from ._dispatch import (
    CACHE_LINE,
    ELU,
    FEW_ROWS_OWN,
    IDENTITY,
    LEAKY_RELU,
    LEAKY_RELU_SLOPE,
    NARROW_MAX,
    PANEL,
    RELU,
    SIGMOID,
    SIMD_LEVELS,
    SOFTMAX,
    STEP,
    TANH,
    THREAD_CAP,
    build_info,
    gemm_wide,
    max_threads,
    select_simd,
)
from ._engine import MAX_NETWORK_LAYERS, PARALLEL_MIN_ROWS, Engine, decide_rows
from ._ops import (
    PARALLEL_MIN_ELEMENTS,
    activate,
    dense,
    dense_fast,
    sigmoid_backward,
    sigmoid_prime,
    softmax_rows,
)
from ._trainer import (
    LOSS_CROSS_ENTROPY,
    LOSS_MSE,
    RULE_ADAM,
    RULE_MOMENTUM,
    RULE_NESTEROV,
    RULE_SGD,
    Trainer,
    Update,
)

#: The compiled modules; each cimports only modules listed before it.
MODULES = ("_dispatch", "_blas", "_ops", "_engine", "_trainer")

__all__ = [
    "CACHE_LINE", "ELU", "FEW_ROWS_OWN", "IDENTITY", "LEAKY_RELU", "LEAKY_RELU_SLOPE",
    "LOSS_CROSS_ENTROPY", "LOSS_MSE", "MAX_NETWORK_LAYERS", "MODULES", "NARROW_MAX", "PANEL",
    "PARALLEL_MIN_ELEMENTS", "PARALLEL_MIN_ROWS", "RELU", "RULE_ADAM", "RULE_MOMENTUM",
    "RULE_NESTEROV", "RULE_SGD", "SIGMOID", "SIMD_LEVELS", "SOFTMAX", "STEP", "TANH",
    "THREAD_CAP", "Engine", "Trainer", "Update", "activate", "build_info", "decide_rows",
    "dense",
    "dense_fast", "gemm_wide", "max_threads", "select_simd", "set_blas_max_rows",
    "sigmoid_backward", "sigmoid_prime", "softmax_rows",
]
