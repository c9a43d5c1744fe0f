"""The names dlfr understands, each listed once: activations, losses, optimizers,
learning-rate schedules, dtypes, early stopping's monitors.

The ``Literal`` types give the choices to signatures, stubs and type
checkers; the tables say what a name means to the compiled kernels (its code,
from the C headers through ``dlfr._kernels``) or to NumPy (its dtype). Every
module that takes such a name (kernels, layers, network, training, model
files, the command line, the NumPy references) looks it up here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast, get_args

import numpy as np

from . import _kernels

ActivationName = Literal[
    "identity", "sigmoid", "tanh", "relu", "step", "softmax", "leaky_relu", "elu"]
LossName = Literal["mse", "cross_entropy"]
OptimizerName = Literal["sgd", "momentum", "nesterov", "adam"]
ScheduleName = Literal["constant", "invscaling", "adaptive"]
#: What early stopping watches: a history key, measured after each epoch.
MonitorName = Literal["val_loss", "val_accuracy"]
DTypeName = Literal["float32", "float64"]
#: A dtype argument: a name, or the NumPy dtype or scalar type it names.
DTypeSpec = DTypeName | np.dtype[Any] | type[np.float32] | type[np.float64]

#: Every activation, in the order of the kernel codes.
ACTIVATIONS: tuple[ActivationName, ...] = get_args(ActivationName)
#: Activation name -> the compiled kernels' code for it.
ACTIVATION_CODES: dict[ActivationName, int] = {
    "identity": _kernels.IDENTITY,
    "sigmoid": _kernels.SIGMOID,
    "tanh": _kernels.TANH,
    "relu": _kernels.RELU,
    "step": _kernels.STEP,
    "softmax": _kernels.SOFTMAX,
    "leaky_relu": _kernels.LEAKY_RELU,
    "elu": _kernels.ELU,
}
#: leaky_relu's slope below 0 (PyTorch's default; the kernels take it in the
#: dtype's precision: float32(0.01) in float32).
LEAKY_RELU_SLOPE: float = _kernels.LEAKY_RELU_SLOPE
#: elu's alpha: e^z - 1 below 0, so its derivative is the output + 1 there.
ELU_ALPHA = 1.0
#: What backpropagation trains in a hidden layer: not the step (it has no
#: gradient; dlfr.Perceptron learns it), not softmax (it normalises an output).
TRAINABLE_HIDDEN: tuple[ActivationName, ...] = tuple(
    name for name in ACTIVATIONS if name not in ("step", "softmax"))
#: What backpropagation trains in the output layer: all but the step.
TRAINABLE_OUTPUT: tuple[ActivationName, ...] = tuple(
    name for name in ACTIVATIONS if name != "step")

#: Every loss ``fit`` minimises.
LOSSES: tuple[LossName, ...] = get_args(LossName)
#: Loss name -> the compiled trainer's code for it.
LOSS_CODES: dict[LossName, int] = {
    "mse": _kernels.LOSS_MSE,
    "cross_entropy": _kernels.LOSS_CROSS_ENTROPY,
}

#: Every optimizer ``fit`` takes by name (dlfr.optimizers: plain SGD, SGD with
#: momentum 0.9, with Nesterov momentum 0.9, Adam).
OPTIMIZERS: tuple[OptimizerName, ...] = get_args(OptimizerName)
#: Every learning-rate schedule (scikit-learn's ``learning_rate`` choices).
SCHEDULES: tuple[ScheduleName, ...] = get_args(ScheduleName)
#: Every metric early stopping can watch.
MONITORS: tuple[MonitorName, ...] = get_args(MonitorName)

#: Dtype name -> the NumPy dtype (native byte order) of weights and arithmetic.
DTYPES: dict[DTypeName, np.dtype] = {
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}

_Value = TypeVar("_Value")


def lookup(table: Mapping[Any, _Value], name: object, argument: str) -> _Value:
    """``table[name]``, or ValueError naming ``argument``, the choices and ``name``."""
    try:
        return table[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise ValueError(
            f"{argument} must be one of {', '.join(map(repr, table))}; got {name!r}"
        ) from None


def dtype_name(dtype: Any) -> DTypeName | None:
    """The name of ``dtype`` (a name, NumPy dtype or scalar type, either byte order)
    if it is one of ``DTYPES``, else None."""
    if dtype is None:  # np.dtype(None) would mean float64
        return None
    try:
        name = np.dtype(dtype).name
    except (TypeError, ValueError):
        return None
    return cast(DTypeName, name) if name in DTYPES else None
