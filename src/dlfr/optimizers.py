"""Optimizers and learning-rate schedules: how ``fit`` moves the weights with
each mini-batch's gradient.

The update rules are scikit-learn's (``sklearn/neural_network/
_stochastic_optimizers.py``) and run inside the compiled epoch, one
``optimizer_step`` kernel per parameter array (docs/architecture.md); this
module holds their parameters and their state. With ``g`` a mini-batch's mean
gradient (L2's term and clipping included, see :func:`dlfr.training.fit`)
and ``lr`` the epoch's learning rate:

* ``SGD(momentum=0.0, nesterov=False)``: ``v = momentum v - lr g``, then
  ``w += v``, or with Nesterov's momentum ``w += momentum v - lr g``.
  Momentum 0 is plain SGD, ``w -= lr g``.
* ``Adam(beta_1=0.9, beta_2=0.999, epsilon=1e-8)``: ``m = beta_1 m + (1 -
  beta_1) g``, ``s = beta_2 s + (1 - beta_2) g^2``, ``w -= lr_t m / (sqrt(s)
  + epsilon)`` with the bias-corrected step ``lr_t = lr sqrt(1 - beta_2^t) /
  (1 - beta_1^t)`` at step t (1, 2, ...).

``fit`` also takes the names "sgd" (``SGD()``), "momentum" (``SGD(0.9)``),
"nesterov" (``SGD(0.9, nesterov=True)``) and "adam" (``Adam()``): the
momentum is scikit-learn's default. The learning rate is ``fit``'s; Adam's
usual one is 0.001 (scikit-learn's and the Adam paper's default).

State. An optimizer object holds what training carries from one mini-batch
to the next: its slots (the velocity; Adam's two moments), ``steps`` (the
mini-batch steps taken: Adam's t), ``samples_seen`` (invscaling's t) and the
adaptive schedule's progress. ``fit`` given a name starts a fresh optimizer
for that call. Given an object, it continues from the object's state and
leaves it updated, so the same object passed to the next ``fit`` of the same
network is a warm start (as scikit-learn's ``partial_fit`` keeps its
optimizer); ``reset()`` forgets the state. The slots have the shapes of one
network's parameters: an optimizer holding slots for other shapes or another
dtype is refused. When ``fit`` stops on Ctrl-C or refuses non-finite data it
puts the optimizer's state back with the weights.

Schedules (``fit``'s ``lr_schedule``), as scikit-learn's MLP defines its
``learning_rate``; the rate changes between epochs, never within one:

* "constant": ``lr`` every epoch.
* "invscaling": ``lr / (t + 1)^power_t``, t the samples trained on before
  the epoch (so the first epoch of a fresh optimizer runs at ``lr``).
* "adaptive": ``lr`` while the watched value keeps falling (``fit``'s
  training loss, or with early stopping the monitored validation value,
  accuracy negated). An epoch whose value is not below the best so far by
  more than ``min_delta`` counts as one without improvement; after
  ``patience`` of them in a row, the rate is divided by 5 (and the count
  starts again), unless it is 1e-6 or less already: then training stops.
  ``patience`` and ``min_delta`` are ``fit``'s, counted as early stopping
  counts; scikit-learn's ``n_iter_no_change`` acts after one epoch more
  (n_iter_no_change = patience - 1, ``tol`` = min_delta).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _kernels
from ._names import OPTIMIZERS, SCHEDULES, OptimizerName, ScheduleName
from ._validation import real_number

__all__ = ["BY_NAME", "OPTIMIZERS", "SCHEDULES", "SGD", "Adam", "Optimizer", "resolve"]

#: The adaptive schedule's divisor, and the rate at or below which it stops training.
ADAPTIVE_DIVISOR = 5.0
ADAPTIVE_FLOOR = 1e-6


class Optimizer:
    """The training state every optimizer holds (see the module docstring)."""

    #: State arrays per parameter array (the velocity; Adam's two moments).
    _slot_count = 0

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the training state: the next ``fit`` starts as with a new optimizer."""
        #: Mini-batch steps taken (Adam's t).
        self.steps = 0
        #: Samples trained on (invscaling's t).
        self.samples_seen = 0
        self._slots: list[list[np.ndarray]] = []
        self._rate_cuts = 0  # adaptive: divisions of the rate so far
        self._best_loss = math.inf
        self._stale_epochs = 0

    # -- what fit calls --------------------------------------------------------
    def prepare(self, params: list[np.ndarray], decay: float,
                clip_norm: float | None) -> _kernels.Update | None:
        """The compiled step for a fit of the parameter arrays ``params`` (W0,
        b0, W1, b1, ...: a network's padded storage) with L2's ``decay``
        (lambda/n) and ``clip_norm``; None for plain SGD without either, which
        the epoch folds into its GEMMs. A fresh optimizer's slots are made
        here (zeros); held ones must have the arrays' shapes and dtype, else
        ValueError (nothing has changed then)."""
        if not self._slots:
            self._slots = [[np.zeros_like(p) for p in params] for _ in range(self._slot_count)]
        held = [(a.shape, a.dtype) for a in self._slots[0]] if self._slots else None
        wanted = [(p.shape, p.dtype) for p in params]
        if held is not None and held != wanted:
            raise ValueError(
                f"optimizer: this {type(self).__name__} holds the state of a network with "
                f"parameter arrays {_describe(held)}, not {_describe(wanted)}; "
                "pass a new optimizer or call its reset()"
            )
        rule = self._rule()
        if rule == _kernels.RULE_SGD and decay == 0 and clip_norm is None:
            return None
        first, second = (self._slots + [None, None])[:2]  # None: a slot the rule lacks
        return _kernels.Update(rule, decay=decay, clip_norm=clip_norm or 0.0, first=first,
                               second=second, steps=self.steps, **self._coefficients())

    def _rule(self) -> int:
        raise NotImplementedError

    def _coefficients(self) -> dict[str, float]:
        return {}

    # -- saving and restoring (Ctrl-C, refused data) -------------------------
    def snapshot(self) -> tuple[Any, ...]:
        """A copy of the training state, for ``restore``."""
        return (self.steps, self.samples_seen, self._rate_cuts, self._best_loss,
                self._stale_epochs, [a.copy() for slot in self._slots for a in slot])

    def restore(self, saved: tuple[Any, ...]) -> None:
        """Back to a ``snapshot``, in place (a compiled Update holds the arrays)."""
        (self.steps, self.samples_seen, self._rate_cuts, self._best_loss,
         self._stale_epochs, arrays) = saved
        for a, a0 in zip([a for slot in self._slots for a in slot], arrays, strict=True):
            np.copyto(a, a0)

    # -- the learning-rate schedules -------------------------------------------
    def epoch_rate(self, learning_rate: float, schedule: ScheduleName, power_t: float) -> float:
        """The rate of the next epoch under ``schedule``, from ``learning_rate``."""
        if schedule == "invscaling":
            return learning_rate / (self.samples_seen + 1) ** power_t
        rate = learning_rate
        if schedule == "adaptive":
            for _ in range(self._rate_cuts):  # divided again and again, as scikit-learn does
                rate /= ADAPTIVE_DIVISOR
        return rate

    def end_epoch(self, score: float, samples: int, learning_rate: float,
                  schedule: ScheduleName, min_delta: float, patience: int) -> bool:
        """Count an epoch of ``samples`` whose watched value (lower is better)
        was ``score``; True when the adaptive schedule ends training (its
        rate at the floor)."""
        self.samples_seen += samples
        if schedule != "adaptive":
            return False
        improved = score < self._best_loss - min_delta
        self._stale_epochs = 0 if improved else self._stale_epochs + 1
        self._best_loss = min(self._best_loss, score)
        if self._stale_epochs < patience:
            return False
        if self.epoch_rate(learning_rate, schedule, 0.0) <= ADAPTIVE_FLOOR:
            return True
        self._rate_cuts += 1
        self._stale_epochs = 0
        return False


class SGD(Optimizer):
    """Stochastic gradient descent, with momentum (optionally Nesterov's) or without.

    Parameters
    ----------
    momentum : float in [0, 1)
        The velocity's decay per step; 0 is plain SGD (no velocity kept).
    nesterov : bool
        Nesterov's momentum: each step looks ahead along the new velocity.
    """

    def __init__(self, momentum: float = 0.0, nesterov: bool = False) -> None:
        self._momentum = real_number(momentum, "momentum", 0.0, 1.0)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise ValueError(f"nesterov must be True or False; got {nesterov!r}")
        self._nesterov = bool(nesterov)
        self._slot_count = 1 if self._momentum > 0 else 0
        super().__init__()

    @property
    def momentum(self) -> float:
        return self._momentum

    @property
    def nesterov(self) -> bool:
        return self._nesterov

    def _rule(self) -> int:
        if self._momentum == 0:
            return _kernels.RULE_SGD
        return _kernels.RULE_NESTEROV if self._nesterov else _kernels.RULE_MOMENTUM

    def _coefficients(self) -> dict[str, float]:
        return {"momentum": self._momentum}

    def __repr__(self) -> str:
        return f"SGD(momentum={self._momentum!r}, nesterov={self._nesterov!r})"


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2014), with scikit-learn's defaults and bias correction.

    Parameters
    ----------
    beta_1, beta_2 : float in [0, 1)
        Decay rates of the first and second moment estimates.
    epsilon : float > 0
        Added to the second moment's square root, so no step divides by zero.
    """

    _slot_count = 2

    def __init__(self, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8) -> None:
        self._beta_1 = real_number(beta_1, "beta_1", 0.0, 1.0)
        self._beta_2 = real_number(beta_2, "beta_2", 0.0, 1.0)
        self._epsilon = real_number(epsilon, "epsilon", 0.0, low_open=True)
        super().__init__()

    @property
    def beta_1(self) -> float:
        return self._beta_1

    @property
    def beta_2(self) -> float:
        return self._beta_2

    @property
    def epsilon(self) -> float:
        return self._epsilon

    def _rule(self) -> int:
        return _kernels.RULE_ADAM

    def _coefficients(self) -> dict[str, float]:
        return {"beta_1": self._beta_1, "beta_2": self._beta_2, "epsilon": self._epsilon}

    def __repr__(self) -> str:
        return f"Adam(beta_1={self._beta_1!r}, beta_2={self._beta_2!r}, epsilon={self._epsilon!r})"


#: Each name ``fit`` takes -> a new optimizer of that kind (in OPTIMIZERS' order).
BY_NAME: dict[OptimizerName, Callable[[], Optimizer]] = {
    "sgd": SGD,
    "momentum": lambda: SGD(momentum=0.9),
    "nesterov": lambda: SGD(momentum=0.9, nesterov=True),
    "adam": Adam,
}


def resolve(optimizer: OptimizerName | Optimizer) -> Optimizer:
    """The optimizer an argument names (a new one), or the object itself."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    try:
        return BY_NAME[optimizer]()  # type: ignore[index]
    except (KeyError, TypeError):  # TypeError: unhashable
        raise ValueError(
            f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))} or a "
            f"dlfr.optimizers.SGD or Adam; got {optimizer!r}"
        ) from None


def _describe(shapes: list[tuple[tuple[int, ...], np.dtype]]) -> str:
    return ", ".join(f"{shape} {dtype}" for shape, dtype in shapes)
