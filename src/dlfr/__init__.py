"""dlfr: compiled multi-layer sigmoid neural networks.

The compiled module is required: if it does not import, neither does dlfr
(there is no slow pure-Python fallback to land on silently).
"""

from __future__ import annotations

import os

# OpenMP workers sleep as soon as a parallel region ends instead of spinning
# for a while (libgomp's default): no core is left busy after a call returns,
# and the workers do not fight other processes for the cores. Read once, when
# the OpenMP runtime loads; a value set by the user is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import (  # noqa: E402
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
