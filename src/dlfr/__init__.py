"""dlfr: compiled multi-layer sigmoid neural networks.

The compiled module is required: if it does not import, neither does dlfr
(there is no slow pure-Python fallback to land on silently).
"""

from __future__ import annotations

from . import (
    _kernels,  # noqa: F401  (fails loudly when the extension is missing)
    datasets,
    kernels,
)
from ._config import show_config
from .layers import Dense
from .network import Network
from .perceptron import Perceptron

__version__ = "0.1.0"

__all__ = ["Dense", "Network", "Perceptron", "__version__", "datasets", "kernels", "show_config"]
