"""Activation names, their kernel codes and their NumPy twins.

The names and codes live in the registry, :mod:`dlfr._names`; ``CODES`` and
``ACTIVATIONS`` are its tables under the names this module has always given them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import _reference
from ._names import ACTIVATION_CODES as CODES
from ._names import ACTIVATIONS, ActivationName, lookup

__all__ = ["ACTIVATIONS", "CODES", "code", "reference"]


def code(name: object, argument: str = "activation") -> int:
    """Return the kernel code of activation ``name``, or raise ValueError naming it."""
    return lookup(CODES, name, argument)


def reference(name: ActivationName) -> Callable[[np.ndarray], np.ndarray]:
    """The plain-NumPy twin of activation ``name``."""
    return _reference.ACTIVATIONS[name]
