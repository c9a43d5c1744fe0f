"""How output rows become labels: the one decision rule (the argmax, or
output >= 0.5 for a single output).

``predict`` (for a subclass's own ``forward``), ``evaluate`` and ``fit``'s
validation accuracy decide through :func:`decide`; the compiled engine applies
the same rule (the same C function) inside ``predict``.
"""

from __future__ import annotations

import numpy as np

from . import _kernels
from ._validation import F32, F64, ready


def decide(a: np.ndarray) -> np.ndarray:
    """int64 labels of 2-D output (or one-hot) rows: the argmax, or a >= 0.5 for one column."""
    if ready(a, (F32, F64)) and a.shape[1] > 0:
        labels = np.empty(a.shape[0], dtype=np.int64)
        _kernels.decide_rows(a, labels)  # as below, without NumPy's per-row calls
        return labels
    if a.shape[1] == 1:
        return (a[:, 0] >= 0.5).astype(np.int64)
    return a.argmax(axis=1)
