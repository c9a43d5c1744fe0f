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
# call. libgomp reads the variable once, when it loads with the compiled
# module; it is then taken out of os.environ again, so that child processes
# do not inherit it. The user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
# (A libgomp that another module loaded before dlfr keeps its own setting.)
_omp_wait: str | None = None
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    _omp_wait = "GOMP_SPINCOUNT=1000 (dlfr's OpenMP runtime only)"
    os.environ["GOMP_SPINCOUNT"] = "1000"


def _run_as_command() -> bool:
    """True when this import is the ``dlfr`` command's (its script, or ``python -m dlfr``)."""
    import sys

    script = os.path.splitext(os.path.basename(sys.argv[0] if sys.argv else ""))[0]
    if script in ("dlfr", "dlfr-script"):
        return True
    argv = list(getattr(sys, "orig_argv", []))
    pairs = zip(argv, argv[1:], strict=False)
    return any(a == "-m" and b == "dlfr" for a, b in pairs) or "-mdlfr" in argv


try:
    from . import _kernels  # noqa: E402, F401  (fails loudly when the extension is missing)
except ValueError as _exc:
    # DLFR_SIMD names no level: read when the compiled module loads, before the
    # command's main() could catch it. The command reports it as the bad input
    # it is (one line, exit status 2); `import dlfr` itself still raises.
    if _run_as_command() and not os.environ.get("DLFR_DEBUG"):
        import sys

        print(f"dlfr: error: {_exc}", file=sys.stderr)
        raise SystemExit(2) from None
    raise
finally:
    if _omp_wait is not None:
        os.environ.pop("GOMP_SPINCOUNT", None)

from . import datasets, kernels, optimizers  # noqa: E402
from ._config import show_config  # noqa: E402
from .layers import Dense  # noqa: E402
from .network import Network  # noqa: E402
from .perceptron import Perceptron  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Dense", "Network", "Perceptron", "__version__", "datasets", "kernels", "optimizers",
    "show_config",
]
