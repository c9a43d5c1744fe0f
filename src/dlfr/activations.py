"""The activation registry: each name's kernel code and its NumPy twin."""

from __future__ import annotations

from . import _kernels

#: name -> code understood by the compiled kernels
CODES: dict[str, int] = {
    "identity": _kernels.IDENTITY,
    "sigmoid": _kernels.SIGMOID,
    "tanh": _kernels.TANH,
    "relu": _kernels.RELU,
    "step": _kernels.STEP,
    "softmax": _kernels.SOFTMAX,
}
ACTIVATIONS: tuple[str, ...] = tuple(CODES)


def code(name: object, argument: str = "activation") -> int:
    """Return the kernel code of activation ``name``, or raise ValueError naming it."""
    try:
        return CODES[name]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ValueError(
            f"{argument} must be one of {', '.join(map(repr, ACTIVATIONS))}; got {name!r}"
        ) from None


def reference(name: str):
    """The plain-NumPy twin of activation ``name``."""
    from . import _reference  # only tests and benchmarks need it

    return _reference.ACTIVATIONS[name]
