"""dlfr: compiled multi-layer sigmoid neural networks.

The compiled module is required: if it does not import, neither does dlfr
(there is no slow pure-Python fallback to land on silently).
"""

from __future__ import annotations

import os

# After a parallel region, libgomp's workers spin for a moment (1,000 checks,
# tens of microseconds: back-to-back calls find them awake) and then sleep,
# instead of libgomp's default 300,000 (milliseconds of a busy core after
# every call). Fully passive waiting would cost ~60 us to wake them on every
# call. Read once, when the OpenMP runtime loads; the user's own
# OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"

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
