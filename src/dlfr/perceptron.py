"""Rosenblatt's perceptron: one step-function neuron and its learning rule."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ._names import DTypeSpec
from ._validation import real_dtype, refuse_non_real

__all__ = ["Perceptron"]


class Perceptron:
    """A single-layer perceptron with a step activation (Rosenblatt, 1958).

    The model is one neuron: ``predict(X) = 1 where X @ W + b >= 0, else 0``.
    :meth:`fit` applies the perceptron learning rule sample by sample,
    ``W += learning_rate * (y - y_hat) * x`` and
    ``b += learning_rate * (y - y_hat)``, which changes the weights only on
    mistakes. If the two classes can be split by a straight line (a
    hyperplane), the rule finds such a line after finitely many mistakes.

    So it learns AND, OR and NAND, but never XOR: no single line separates
    XOR's ones ``(0, 1), (1, 0)`` from its zeros ``(0, 0), (1, 1)``, so at
    least one of the four points is always misclassified. That takes a
    hidden layer (see :class:`dlfr.Network`).

    It is a teaching model: training is a plain NumPy loop over samples.

    Parameters
    ----------
    n_features : int
        Number of inputs (columns of ``X``).
    seed : int or numpy.random.Generator, optional
        Seeds the initial weights and, unless :meth:`fit` gets its own
        ``seed``, the order samples are visited in. The same seed gives the
        same weights and the same training run.
    dtype : {"float32", "float64"}, default "float32"
        The dtype of ``W`` and of the computation.

    Attributes
    ----------
    W : numpy.ndarray
        Shape (n_features,): the weights, small random numbers at first.
    b : float
        The bias.
    n_features : int
        Number of inputs.
    dtype : numpy.dtype
        float32 or float64.
    converged_ : bool
        True once :meth:`fit` completed an epoch without a mistake.

    Examples
    --------
    >>> from dlfr.datasets import logic_gate
    >>> X, y = logic_gate("and")
    >>> p = Perceptron(2, seed=0)
    >>> history = p.fit(X, y)
    >>> p.converged_, p.predict(X).tolist()
    (True, [0, 0, 0, 1])
    """

    W: np.ndarray
    b: float
    n_features: int
    dtype: np.dtype
    converged_: bool

    def __init__(self, n_features: int, seed: Any = None, dtype: DTypeSpec = "float32") -> None:
        if isinstance(n_features, bool) or not isinstance(n_features, numbers.Integral):
            raise TypeError(f"n_features must be an int, got {type(n_features).__name__}")
        if n_features < 1:
            raise ValueError(f"n_features must be at least 1, got {n_features}")
        self.n_features = int(n_features)
        self.dtype = real_dtype("dtype", dtype)
        self._rng = np.random.default_rng(seed)
        # Small random weights: the rule works from any start, these break symmetry.
        self.W = self._rng.normal(0.0, 0.01, size=self.n_features).astype(self.dtype)
        self.b = float(self._rng.normal(0.0, 0.01))
        self.converged_ = False

    def __repr__(self) -> str:
        return f"Perceptron(n_features={self.n_features}, dtype='{self.dtype.name}')"

    def _check_X(self, X: Any) -> np.ndarray:
        """Validate inputs and convert them to the model's dtype.

        Parameters
        ----------
        X : array_like
            Shape (n_samples, n_features), real numbers, finite.

        Returns
        -------
        numpy.ndarray
            ``X`` as a C-contiguous array of ``self.dtype``.
        """
        X = np.asarray(X)
        refuse_non_real("X", X.dtype)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"X must have shape (n_samples, {self.n_features}), got shape {X.shape}"
            )
        # A float64 beyond float32's range becomes inf here; the check below catches it.
        with np.errstate(over="ignore"):
            X = np.ascontiguousarray(X, dtype=self.dtype)
        if not np.isfinite(X).all():
            raise ValueError(f"X holds NaN or infinity, or values too large for {self.dtype}")
        return X

    def _check_y(self, y: Any, n_samples: int) -> np.ndarray:
        """Validate 0/1 targets; return them as int64."""
        y = np.asarray(y)
        refuse_non_real("y", y.dtype)
        if y.shape != (n_samples,):
            raise ValueError(f"y must have shape ({n_samples},) to match X, got shape {y.shape}")
        bad = np.flatnonzero((y != 0) & (y != 1))
        if bad.size:
            raise ValueError(f"y must hold only 0 and 1, got y[{bad[0]}] = {y[bad[0]].item()!r}")
        return y.astype(np.int64)

    def fit(
        self,
        X: Any,
        y: Any,
        epochs: int = 100,
        learning_rate: float = 1.0,
        shuffle: bool = True,
        seed: Any = None,
    ) -> list[int]:
        """Train with the perceptron learning rule.

        Each epoch visits every sample once (in a random order if
        ``shuffle``) and, on a mistake, moves the weights towards the
        sample (target 1) or away from it (target 0). Training stops early
        after an epoch without mistakes. The weights are only replaced when
        training finishes; a refused call leaves them unchanged.

        Parameters
        ----------
        X : array_like
            Shape (n_samples, n_features): real, finite inputs.
        y : array_like
            Shape (n_samples,): targets, each 0 or 1.
        epochs : int, default 100
            Maximum number of passes over the data, at least 1.
        learning_rate : float, default 1.0
            Step size, positive and finite.
        shuffle : bool, default True
            Visit the samples in a new random order each epoch.
        seed : int or numpy.random.Generator, optional
            Seeds the visiting order; without it, the generator seeded in
            the constructor is used (and advanced).

        Returns
        -------
        list of int
            Mistakes made in each epoch; its length is the number of epochs
            run. A last entry of 0 means the data are classified perfectly.

        Raises
        ------
        TypeError
            If ``X`` or ``y`` has a bool, complex, object or string dtype,
            or ``epochs`` is not an integer.
        ValueError
            If ``X`` or ``y`` has the wrong shape, ``X`` holds NaN or
            infinity, ``y`` holds values other than 0 and 1, ``X`` is empty,
            or ``epochs`` or ``learning_rate`` is not positive.
        """
        X = self._check_X(X)
        if len(X) == 0:
            raise ValueError("X must hold at least one sample, got shape (0, ...)")
        y = self._check_y(y, len(X))
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral):
            raise TypeError(f"epochs must be an int, got {type(epochs).__name__}")
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        if (
            isinstance(learning_rate, bool)
            or not isinstance(learning_rate, numbers.Real)
            or not math.isfinite(learning_rate)
            or learning_rate <= 0
        ):
            raise ValueError(
                f"learning_rate must be a positive finite number, got {learning_rate!r}"
            )
        rng = self._rng if seed is None else np.random.default_rng(seed)

        # Work on copies and publish them at the end.
        W = self.W.copy()
        b = self.b
        lr = float(learning_rate)
        history = []
        converged = False
        for _ in range(int(epochs)):
            order = rng.permutation(len(X)) if shuffle else range(len(X))
            mistakes = 0
            for i in order:
                x = X[i]
                error = y[i] - (1 if x @ W + b >= 0 else 0)
                if error:
                    W += (lr * error) * x
                    b += lr * error
                    mistakes += 1
            history.append(mistakes)
            if mistakes == 0:
                converged = True
                break
        self.W, self.b, self.converged_ = W, float(b), converged
        return history

    def decision_function(self, X: Any) -> np.ndarray:
        """The neuron's weighted sum ``X @ W + b``.

        Parameters
        ----------
        X : array_like
            Shape (n_samples, n_features): real, finite inputs.

        Returns
        -------
        numpy.ndarray
            Shape (n_samples,), in the model's dtype.
        """
        return self._decision(self._check_X(X))

    def _decision(self, X: np.ndarray) -> np.ndarray:
        """decision_function for an X already checked by _check_X."""
        return X @ self.W + self.dtype.type(self.b)

    def _labels(self, X: np.ndarray) -> np.ndarray:
        """predict for an X already checked by _check_X."""
        return (self._decision(X) >= 0).astype(np.int64)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels: 1 where ``X @ W + b >= 0``, else 0.

        Parameters
        ----------
        X : array_like
            As for :meth:`decision_function`.

        Returns
        -------
        numpy.ndarray
            Shape (n_samples,), int64 labels 0 or 1.
        """
        return self._labels(self._check_X(X))

    def evaluate(self, X: Any, y: Any) -> float:
        """Accuracy: the fraction of samples classified correctly.

        Parameters
        ----------
        X : array_like
            As for :meth:`decision_function`.
        y : array_like
            Shape (n_samples,): targets, each 0 or 1.

        Returns
        -------
        float
            Accuracy in [0, 1].
        """
        X = self._check_X(X)
        if len(X) == 0:
            raise ValueError("X must hold at least one sample, got shape (0, ...)")
        y = self._check_y(y, len(X))
        return float(np.mean(self._labels(X) == y))
