"""Early stopping and the validation set it watches.

``split_rows`` carves the validation rows that ``fit(validation_fraction=...)``
asks for out of the training data: stratified by class for classification
targets, a random choice of rows for regression targets. ``EarlyStopping``
watches one validation metric epoch by epoch, remembers the best epoch and
says when ``patience`` epochs in a row have not improved on it.
"""

from __future__ import annotations

import math

import numpy as np

from ._labels import decide
from ._names import MonitorName


def row_classes(Y: np.ndarray) -> np.ndarray | None:
    """The class of each target row, or None for regression targets.

    Rows are classes when every target is 0 or 1 and, with several outputs,
    each row holds exactly one 1 (one-hot; integer labels arrive as such rows).
    Multi-label rows and any other values are regression targets.
    """
    if not np.all((Y == 0) | (Y == 1)):
        return None
    if Y.shape[1] > 1 and not np.all(Y.sum(axis=1) == 1):
        return None
    return decide(Y)


def split_rows(Y: np.ndarray, fraction: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows) of the targets Y, each sorted, as int64 indices.

    ceil(fraction * n) rows go to validation (as scikit-learn's
    ``train_test_split`` counts them). For classification targets
    (:func:`row_classes`) each class gives its share, the rounding settled by
    largest remainder, so the validation set keeps the classes' proportions;
    which rows of a class go is drawn from ``rng``. For regression targets the
    rows are drawn from ``rng`` at random.
    """
    n = len(Y)
    n_val = math.ceil(fraction * n)
    if n_val >= n:
        raise ValueError(f"validation_fraction={fraction} of {n} samples leaves no training "
                         "samples; use a smaller fraction or more data")
    classes = row_classes(Y)
    if classes is None:
        val = rng.permutation(n)[:n_val]
    else:
        labels, counts = np.unique(classes, return_counts=True)
        # class k's quota is n_val * counts[k] / n rows, in whole numbers: the
        # floor, then the rows still to place to the largest remainders (ties
        # to the earlier class, by a stable sort)
        shares, remainders = np.divmod(n_val * counts, n)
        rest = np.argsort(-remainders, kind="stable")[: n_val - int(shares.sum())]
        shares[rest] += 1
        val = np.concatenate([
            rng.permutation(np.flatnonzero(classes == label))[:share]
            for label, share in zip(labels, shares, strict=True)
        ])
    is_val = np.zeros(n, dtype=bool)
    is_val[val] = True
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)


class EarlyStopping:
    """The watch over one validation metric: the best epoch so far, and when to stop.

    An epoch improves when its value beats the best so far by more than
    ``min_delta`` (lower for "val_loss", higher for "val_accuracy"); after
    ``patience`` epochs in a row without improvement, ``exhausted`` is True.
    The best epoch is the one with the best value (the earliest of equals),
    whether or not it beat its predecessor by ``min_delta``: its weights are
    the ones to keep.
    """

    def __init__(self, monitor: MonitorName, patience: int, min_delta: float) -> None:
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self._sign = 1.0 if monitor == "val_loss" else -1.0  # lower is better after the sign
        self._best = math.inf
        self.best_epoch: int | None = None
        self.wait = 0  # epochs since the last improvement

    def update(self, epoch: int, value: float) -> bool:
        """Take ``epoch``'s value of the metric; True when it is the new best epoch.

        A NaN value never improves and is never the best.
        """
        score = self.score(value)
        if score < self._best - self.min_delta:
            self.wait = 0
        else:
            self.wait += 1
        if score < self._best:
            self._best = score
            self.best_epoch = epoch
            return True
        return False

    def score(self, value: float) -> float:
        """A value of the metric as a score where lower is better (accuracy negated)."""
        return self._sign * value

    @property
    def exhausted(self) -> bool:
        """``patience`` epochs in a row have not improved: time to stop."""
        return self.wait >= self.patience
