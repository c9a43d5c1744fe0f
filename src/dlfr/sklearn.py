"""scikit-learn estimators trained by dlfr: ``from dlfr.sklearn import MLPClassifier``.

Not imported by ``import dlfr`` (scikit-learn is an optional extra:
``pip install dlfr[sklearn]``). ``MLPClassifier`` and ``MLPRegressor`` take
scikit-learn's parameter names and meanings (``sklearn.neural_network``'s
MLPs, stochastic solvers) and train a :class:`dlfr.Network` with dlfr's
compiled epoch; the fitted network is ``network_``.

What is scikit-learn's, kept as its MLPs do it: the initial weights (Glorot's
uniform bound, drawn from ``random_state`` in the same order, so the same
seed starts from the same weights), the validation split of
``early_stopping`` (``train_test_split``, stratified for two classes),
``batch_size="auto"`` (min(200, n_samples)), the stopping
rule (``tol`` and ``n_iter_no_change`` on the training loss, or on the
validation score with early stopping, whose best weights are restored), the
learning-rate schedules of ``solver="sgd"`` (updated after each epoch),
what ``loss_curve_`` reports (the mean loss per sample over the epoch plus
the L2 term; for the regressor half the mean squared error per output), and
the output layers: softmax for several classes, one logistic output for two
(``predict_proba`` gives both columns), one logistic output per label for
multilabel targets, identity for regression. Without shuffling, in float64,
both take the same steps to rounding (tests/test_sklearn.py checks it).

Where they differ: the shuffling order is dlfr's own (the same
``random_state`` gives the same run, not scikit-learn's order); ``alpha``'s
L2 step is ``alpha * W`` divided by ``batch_size`` times the mean sample
weight in every mini-batch, where scikit-learn divides by the batch's own
summed weight (the same but for a last, smaller batch and uneven weights);
with sample weights the epoch's loss is the weighted mean over the epoch;
for a regressor of several outputs with ``alpha > 0``, ``loss_curve_``
divides the L2 term by ``n_outputs`` too (dlfr's epoch loss holds both terms
in one sum; scikit-learn divides the squared error only).

What is dlfr's: ``dtype`` (None: float32 input trains in float32, any other
in float64, as scikit-learn computes; or force one), ``n_threads`` (of
``predict`` and ``predict_proba``), ``class_weight`` (the classifier's
per-class sample weights), and dlfr's activation names besides
scikit-learn's ("sigmoid" is "logistic"). X is read as numbers: uint8 is not
scaled to [0, 1] as ``Network.forward`` reads pixels.

A call that fails leaves the estimator as it was (training runs on copies of
the fitted state). Ctrl-C during ``fit`` stops training after the last whole
epoch with a warning, as scikit-learn does, and ``fit`` returns.
"""

from __future__ import annotations

import copy
import numbers
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

# Absolute imports: the real scikit-learn, not this module.
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import training
from ._names import TRAINABLE_HIDDEN, ActivationName, LossName
from ._validation import F64, real_dtype, sample_weights
from .layers import Dense
from .network import Network

__all__ = ["MLPClassifier", "MLPRegressor"]

#: Hidden activations: scikit-learn's names and every one dlfr trains in a hidden layer.
ACTIVATIONS: dict[str, ActivationName] = {
    "logistic": "sigmoid", **{name: name for name in TRAINABLE_HIDDEN}}
SOLVERS = ("sgd", "adam")
LEARNING_RATES = ("constant", "invscaling", "adaptive")
#: scikit-learn's ``batch_size="auto"``: min(AUTO_BATCH, n_samples)
AUTO_BATCH = 200
#: ``learning_rate="adaptive"`` stops once the rate is at or below this (scikit-learn's floor)
ADAPTIVE_FLOOR = 1e-6


# -- parameters ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Settings:
    """An estimator's parameters, checked: what training reads."""

    hidden: list[int]
    activation: ActivationName
    batch_size: int | None  # None: "auto"
    alpha: float
    learning_rate_init: float
    power_t: float
    max_iter: int
    tol: float
    n_iter_no_change: float
    validation_fraction: float
    dtype: np.dtype | None


def _number(est: Any, name: str, low: float, high: float = np.inf, *, low_open: bool = False,
            high_open: bool = False, integer: bool = False) -> float:
    """The parameter ``name`` of ``est``: a real number (an integer if ``integer``)
    within the bounds, or ValueError naming it, the range and the value."""
    value = getattr(est, name)
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, (bool, np.bool_))
    if ok:
        x = float(value)
        ok = not np.isnan(x) and (x > low if low_open else x >= low) and (
            x < high if high_open else x <= high)
    if not ok:
        what = "an integer" if integer else "a number"
        left, right = "(" if low_open else "[", ")" if high_open or high == np.inf else "]"
        raise ValueError(f"{type(est).__name__}: {name} must be {what} in {left}{low:g}, "
                         f"{high:g}{right}; got {value!r}")
    return int(value) if integer else float(value)


def _flag(est: Any, name: str) -> bool:
    value = getattr(est, name)
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{type(est).__name__}: {name} must be True or False; got {value!r}")
    return bool(value)


def _choice(est: Any, name: str, choices: tuple[str, ...]) -> str:
    value = getattr(est, name)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{type(est).__name__}: {name} must be one of "
                         f"{', '.join(map(repr, choices))}; got {value!r}")
    return value


def _settings(est: _BaseMLP) -> _Settings:
    """Every parameter of ``est`` checked (as scikit-learn checks them, in fit)."""
    name = type(est).__name__
    sizes = est.hidden_layer_sizes
    hidden = list(sizes) if np.iterable(sizes) and not isinstance(sizes, str) else [sizes]
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, (bool, np.bool_))
               and int(n) > 0 for n in hidden):
        raise ValueError(f"{name}: hidden_layer_sizes must be a positive integer or a sequence "
                         f"of them; got {sizes!r}")
    activation = ACTIVATIONS[_choice(est, "activation", tuple(ACTIVATIONS))]
    _choice(est, "solver", SOLVERS)
    _choice(est, "learning_rate", LEARNING_RATES)
    batch_size = None
    if not (isinstance(est.batch_size, str) and est.batch_size == "auto"):
        try:
            batch_size = int(_number(est, "batch_size", 1, integer=True))
        except ValueError:
            raise ValueError(f"{name}: batch_size must be 'auto' or a positive integer; "
                             f"got {est.batch_size!r}") from None
    for flag in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
        _flag(est, flag)
    if not isinstance(est.verbose, (numbers.Integral, bool, np.bool_)):
        raise ValueError(f"{name}: verbose must be True, False or an integer; "
                         f"got {est.verbose!r}")
    _number(est, "momentum", 0, 1)
    _number(est, "beta_1", 0, 1, high_open=True)
    _number(est, "beta_2", 0, 1, high_open=True)
    _number(est, "epsilon", 0, low_open=True)
    if est.n_iter_no_change == np.inf:
        n_iter_no_change = np.inf
    else:
        try:
            n_iter_no_change = _number(est, "n_iter_no_change", 1, integer=True)
        except ValueError:
            raise ValueError(f"{name}: n_iter_no_change must be a positive integer or "
                             f"numpy.inf; got {est.n_iter_no_change!r}") from None
    if est.n_threads is not None:
        _number(est, "n_threads", 1, integer=True)
    try:
        dtype = None if est.dtype is None else real_dtype("dtype", est.dtype)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc} or None") from None
    return _Settings(
        hidden=[int(n) for n in hidden], activation=activation, batch_size=batch_size,
        alpha=_number(est, "alpha", 0), learning_rate_init=_number(
            est, "learning_rate_init", 0, low_open=True),
        power_t=_number(est, "power_t", 0), max_iter=int(_number(est, "max_iter", 1, integer=True)),
        tol=_number(est, "tol", 0), n_iter_no_change=n_iter_no_change,
        validation_fraction=_number(est, "validation_fraction", 0, 1, low_open=True,
                                    high_open=True),
        dtype=dtype,
    )


# -- the estimators -----------------------------------------------------------------
class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, training, prediction."""

    #: the loss of dlfr's fit, set by each estimator
    _loss: LossName
    # fitted state (set by fit; scikit-learn's convention: never in __init__)
    network_: Network
    n_outputs_: int
    n_layers_: int
    out_activation_: ActivationName
    n_iter_: int
    t_: int
    loss_: float
    loss_curve_: list[float]
    best_loss_: float | None
    validation_scores_: list[float] | None
    best_validation_score_: float | None
    _optimizer: Any
    _learning_rate: float
    _no_improvement_count: int
    _best_params: list[tuple[np.ndarray, np.ndarray]] | None

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        dtype: Any = None,
        n_threads: int | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype
        self.n_threads = n_threads

    # -- what each estimator says about its targets ----------------------------------
    def _targets(self, y: np.ndarray, incremental: bool, classes: Any) -> np.ndarray:
        """The network's target rows (n_samples, n_outputs) for the checked y."""
        raise NotImplementedError

    def _output_activation(self) -> ActivationName:
        raise NotImplementedError

    def _row_weights(self, y: np.ndarray, incremental: bool) -> np.ndarray | None:
        """Per-sample weights the estimator adds itself (the classifier's class_weight)."""
        return None

    def _check_weighted(self, y: np.ndarray, sw: np.ndarray | None) -> None:
        """Refuse targets that weights make meaningless (one class left, say)."""

    def _score_values(self, y: np.ndarray, outputs: np.ndarray,
                      sample_weight: np.ndarray | None) -> float:
        """The validation score of ``outputs`` against ``y`` (as ``score`` computes it)."""
        raise NotImplementedError

    def _stratify(self, y: np.ndarray) -> np.ndarray | None:
        """The labels a validation split keeps in proportion, or None."""
        return None

    # -- fitting ---------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        """Train the network on X and y (``max_iter`` epochs at most).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (the classifier; a 0/1 indicator matrix for
            multilabel targets) or target values (the regressor).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; the loss and its gradient are weighted means.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool,
             classes: Any = None) -> Any:
        saved = dict(self.__dict__)
        try:
            self._train(X, y, sample_weight, incremental, classes)
        except BaseException:
            # nothing half written: the fitted state is as before the call
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        return self

    def _train(self, X: Any, y: Any, sample_weight: Any, incremental: bool,
               classes: Any = None) -> None:
        s = _settings(self)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not hasattr(self, "network_") or (not self.warm_start and not incremental)
        dtype = s.dtype if first else self.network_.dtype
        X, y = validate_data(self, X, y, reset=first, order="C", multi_output=True,
                             y_numeric=self._loss == "mse",
                             dtype=(np.float64, np.float32) if dtype is None else dtype)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = self._targets(y, incremental, classes).astype(X.dtype)
        sw = None if sample_weight is None else sample_weights(sample_weight, len(X), F64)
        extra = self._row_weights(y, incremental)
        if extra is not None:
            sw = extra if sw is None else sw * extra
            if not sw.any():
                raise ValueError("sample_weight and class_weight give every sample zero weight")
        if not incremental:
            self._check_weighted(y, sw)
        rs = check_random_state(self.random_state)
        if first:
            self._initialize(s, X.shape[1], Y.shape[1], X.dtype, rs)
        elif Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} outputs but this {type(self).__name__} was "
                             f"fitted with {self.n_outputs_}")
        # training runs on copies: the fitted state changes only if the call succeeds
        self.network_ = copy.deepcopy(self.network_)
        self.loss_curve_ = list(self.loss_curve_)
        if self.validation_scores_ is not None:
            self.validation_scores_ = list(self.validation_scores_)
        if incremental and hasattr(self, "_optimizer"):
            self._optimizer = copy.deepcopy(self._optimizer)
        else:
            self._optimizer = self._new_optimizer()
            self._learning_rate = s.learning_rate_init
        self._epochs(s, X, Y, y, sw, rs, incremental)

    def _initialize(self, s: _Settings, n_features: int, n_outputs: int, dtype: np.dtype,
                    rs: np.random.RandomState) -> None:
        """A new network with scikit-learn's initial weights, and fresh training records."""
        sizes = [n_features, *s.hidden, n_outputs]
        acts: list[ActivationName] = [s.activation] * len(s.hidden) + [self._output_activation()]
        # Glorot's uniform bound, drawn as scikit-learn draws it: the same
        # random_state gives the same initial weights
        factor = 2.0 if s.activation == "sigmoid" else 6.0
        layers = []
        for n_in, n_out, act in zip(sizes, sizes[1:], acts, strict=False):
            bound = np.sqrt(factor / (n_in + n_out))
            W = rs.uniform(-bound, bound, (n_in, n_out))
            b = rs.uniform(-bound, bound, n_out)
            layers.append(Dense.from_params(W, b, act, dtype))
        self.network_ = Network(layers)
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(sizes)
        self.out_activation_ = acts[-1]
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_: float | None = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf
        self._best_params = None

    def _new_optimizer(self) -> Any:
        """dlfr's optimizer for ``solver`` and its parameters."""
        from . import optimizers

        if self.solver == "adam":
            return optimizers.Adam(beta_1=self.beta_1, beta_2=self.beta_2,
                                   epsilon=self.epsilon)
        return optimizers.SGD(momentum=self.momentum,
                              nesterov=bool(self.nesterovs_momentum and self.momentum > 0))

    def _epochs(self, s: _Settings, X: np.ndarray, Y: np.ndarray, y_scored: np.ndarray,
                sw: np.ndarray | None, rs: np.random.RandomState, incremental: bool) -> None:
        """scikit-learn's stochastic training loop, one compiled epoch per step."""
        val = None
        if self.early_stopping:
            parts = [X, Y, y_scored] + ([] if sw is None else [sw])
            split = train_test_split(*parts, random_state=rs, test_size=s.validation_fraction,
                                     stratify=self._stratify(y_scored))
            X, Xv, Y, _, _, yv = split[:6]
            sw, swv = (split[6], split[7]) if sw is not None else (None, None)
            if len(Xv) < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            val = (Xv, yv, swv)
        n = len(X)
        if s.batch_size is None:
            batch = min(AUTO_BATCH, n)
        else:
            if s.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=4)
            batch = min(s.batch_size, n)
        # scikit-learn's L2 step is alpha * W over the batch's summed weight; dlfr's
        # l2 / n_samples * W: the same for a batch of the mean weight
        mean_weight = 1.0 if sw is None else float(np.mean(sw))
        if sw is not None and mean_weight == 0:
            raise ValueError("sample_weight holds only zeros in the training part of the "
                             "data: at least one sample needs a non-zero weight")
        l2 = s.alpha * n / (batch * mean_weight)
        shuffling = np.random.default_rng(rs.randint(np.iinfo(np.int32).max))
        progress = _progress(1 if incremental else s.max_iter, self.verbose)
        self.n_iter_ = 0
        for _ in progress:
            try:
                history = training.fit(
                    self.network_, X, Y, epochs=1, batch_size=batch,
                    learning_rate=self._learning_rate, loss=self._loss, seed=shuffling,
                    shuffle=self.shuffle, optimizer=self._optimizer, l2=l2, sample_weight=sw,
                )
            except KeyboardInterrupt:
                # as scikit-learn: keep what the completed epochs learnt
                warnings.warn("Training interrupted by user.", stacklevel=4)
                break
            self.n_iter_ += 1
            self.t_ += n
            self.loss_ = self._reported_loss(history["loss"][-1])
            self.loss_curve_.append(self.loss_)
            stop = self._after_epoch(s, val)
            if self.verbose:
                progress.set_postfix(loss=f"{self.loss_:.6f}")
            if stop or incremental:
                break
            if self.n_iter_ == s.max_iter:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({s.max_iter}) reached "
                              "and the optimization hasn't converged yet.", ConvergenceWarning,
                              stacklevel=4)
        if self.early_stopping and self._best_params is not None:
            for layer, (W, b) in zip(self.network_.layers, self._best_params, strict=True):
                layer.W, layer.b = W, b
        self._name_classes()

    def _reported_loss(self, loss: float) -> float:
        """The loss as scikit-learn's loss_curve_ reports it, from dlfr's epoch loss."""
        return float(loss)

    def _after_epoch(self, s: _Settings, val: tuple | None) -> bool:
        """Count epochs without improvement, keep the best weights, update the
        learning rate; True when training should stop (scikit-learn's rules)."""
        if val is not None:
            Xv, yv, swv = val
            outputs = self.network_.forward(Xv, self.n_threads, check_finite=False)
            score = (self._score_values(yv, outputs, swv) if np.isfinite(outputs).all()
                     else np.nan)
            assert self.validation_scores_ is not None
            self.validation_scores_.append(score)
            best = cast(float, self.best_validation_score_)
            self._no_improvement_count = (self._no_improvement_count + 1
                                          if not score >= best + s.tol else 0)
            if score > best:
                self.best_validation_score_ = score
                self._best_params = [(layer.W.copy(), layer.b.copy())
                                     for layer in self.network_.layers]
        else:
            best = cast(float, self.best_loss_)
            self._no_improvement_count = (self._no_improvement_count + 1
                                          if self.loss_ > best - s.tol else 0)
            self.best_loss_ = min(best, self.loss_)
        sgd = self.solver == "sgd"
        if sgd and self.learning_rate == "invscaling":
            self._learning_rate = s.learning_rate_init / (self.t_ + 1) ** s.power_t
        if self._no_improvement_count > s.n_iter_no_change:
            if sgd and self.learning_rate == "adaptive" and self._learning_rate > ADAPTIVE_FLOOR:
                self._learning_rate /= 5
                self._no_improvement_count = 0
                return False
            return True
        return False

    def _name_classes(self) -> None:
        """Nothing for the regressor; the classifier's network learns its labels."""

    # -- prediction ------------------------------------------------------------------
    def _outputs(self, X: Any) -> np.ndarray:
        """The network's outputs for X, checked as scikit-learn checks it."""
        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, order="C", dtype=self.network_.dtype)
        return self.network_.forward(X, self.n_threads, check_finite=False)

    @property
    def coefs_(self) -> list[np.ndarray]:
        """The layers' weights, (n_in, n_out) each: views of ``network_``'s."""
        check_is_fitted(self, "network_")
        return [layer.W for layer in self.network_.layers]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """The layers' biases: views of ``network_``'s."""
        check_is_fitted(self, "network_")
        return [layer.b for layer in self.network_.layers]


def _progress(epochs: int, verbose: Any) -> Any:
    if not verbose:
        return range(epochs)
    from tqdm.auto import tqdm

    return tqdm(range(epochs), desc="epochs", unit="epoch")


_PARAMETERS = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Units of each hidden layer (an empty sequence: none).
    activation : str, default "relu"
        Of the hidden layers: scikit-learn's "logistic" (dlfr's "sigmoid"),
        "tanh", "relu", "identity", and dlfr's "leaky_relu" (slope 0.01) and
        "elu" (alpha 1): every activation dlfr trains in a hidden layer.
    solver : {"adam", "sgd"}, default "adam"
        dlfr's Adam, or SGD with ``momentum`` (Nesterov's if
        ``nesterovs_momentum``). scikit-learn's "lbfgs" is not offered.
    alpha : float, default 0.0001
        L2 penalty, as scikit-learn applies it: ``alpha * W`` divided by the
        mini-batch's size (its summed sample weight) added to W's gradient;
        biases are not penalised.
    batch_size : int or "auto", default "auto"
        Rows per mini-batch; "auto" is min(200, n_samples). Larger than
        n_samples: clipped, with a warning.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        The schedule of ``solver="sgd"``: constant; ``learning_rate_init /
        (t + 1) ** power_t`` after each epoch, t the samples seen; or divided
        by 5 whenever ``n_iter_no_change`` epochs in a row miss ``tol``
        (stopping once it is at most 1e-6).
    learning_rate_init : float, default 0.001
    power_t : float, default 0.5
    max_iter : int, default 200
        Epochs at most (``fit``); ``partial_fit`` runs one.
    shuffle : bool, default True
        Shuffle the rows before each epoch.
    random_state : None, int or numpy.random.RandomState
        Initial weights, the early-stopping split and the shuffling. The same
        int gives the same initial weights as scikit-learn's MLP.
    tol : float, default 1e-4
    n_iter_no_change : int or numpy.inf, default 10
        Training stops (or the adaptive rate drops) once the training loss
        has not fallen by ``tol`` (with ``early_stopping``: the validation
        score has not risen by ``tol``) for more than ``n_iter_no_change``
        epochs in a row.
    verbose : bool, default False
        A progress bar over the epochs, with the loss (tqdm).
    warm_start : bool, default False
        ``fit`` continues from the fitted network instead of a new one.
    momentum : float, default 0.9
    nesterovs_momentum : bool, default True
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the rows, score them after each
        epoch, stop as ``n_iter_no_change`` says and keep the best epoch's
        weights.
    validation_fraction : float, default 0.1
    beta_1, beta_2, epsilon : float, default 0.9, 0.999, 1e-8
        Adam's.
    dtype : None, "float32" or "float64", default None
        Of the network and its arithmetic; None: float32 for float32 X,
        float64 for any other.
    n_threads : int, optional
        Threads of ``predict`` / ``predict_proba`` (None: dlfr's default).
"""

_ATTRIBUTES = """
    network_ : dlfr.Network
        The trained network (its ``classes`` set where the labels allow).
    n_features_in_ : int
    feature_names_in_ : numpy.ndarray
        Where X had string column names.
    n_outputs_, n_layers_ : int
    out_activation_ : str
        dlfr's name of the output activation.
    coefs_, intercepts_ : list of numpy.ndarray
        Views of ``network_``'s weights and biases.
    loss_ : float
        The last epoch's loss (see ``loss_curve_``).
    loss_curve_ : list of float
        Per epoch: the mean loss over its samples, as the weights moved, plus
        the L2 term, as scikit-learn reports it. ``warm_start`` fits append.
    best_loss_ : float or None
        The lowest ``loss_curve_`` value; None with ``early_stopping``.
    validation_scores_ : list of float or None
        Per epoch, the held-out score (``score``'s), with ``early_stopping``.
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs the last ``fit`` (``partial_fit``: 1) ran.
    t_ : int
        Training samples seen, over every call.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = f"""A multi-layer perceptron classifier trained by dlfr (scikit-learn's API).

    Several classes: a softmax output and the cross-entropy; two: one
    logistic output (``predict_proba`` gives both columns); multilabel
    targets (a 0/1 indicator matrix): one logistic output per label. See
    ``dlfr.sklearn`` for what follows scikit-learn's ``MLPClassifier`` and
    what is dlfr's own.
    {_PARAMETERS}
    class_weight : None, "balanced" or dict, optional
        Each sample's weight times its class's: a dict of class label ->
        weight (absent classes weigh 1), or "balanced" (n_samples /
        (n_classes * count of the class); not with ``partial_fit``). Single-
        label targets only.

    Attributes
    ----------
    classes_ : numpy.ndarray
        The labels, as ``predict`` returns them (multilabel: the columns).
    {_ATTRIBUTES}"""

    _loss: LossName = "cross_entropy"
    classes_: np.ndarray
    _label_binarizer: LabelBinarizer

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        dtype: Any = None,
        n_threads: int | None = None,
        class_weight: Any = None,
    ) -> None:
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, dtype=dtype,
            n_threads=n_threads,
        )
        self.class_weight = class_weight

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
                    ) -> MLPClassifier:
        """One epoch over X and y, continuing from the fitted network (or a new one).

        ``classes``: every label of every call, required on the first call
        (not for multilabel targets); y need not hold them all.
        """
        return cast(MLPClassifier, self._fit(X, y, sample_weight, True, classes))

    def _multilabel(self) -> bool:
        return bool(self._label_binarizer.y_type_ == "multilabel-indicator")

    def _targets(self, y: np.ndarray, incremental: bool, classes: Any) -> np.ndarray:
        name = type(self).__name__
        check_classification_targets(y)
        if incremental and not hasattr(self, "classes_"):
            if classes is None and not type_of_target(y).startswith("multilabel"):
                raise ValueError("classes must be passed on the first call to partial_fit")
            self._label_binarizer = LabelBinarizer().fit(y if classes is None else classes)
            self.classes_ = self._label_binarizer.classes_
        elif not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"classes={classes!r} is not the same as on the first call to "
                                 f"partial_fit: {self.classes_!r}")
            found = unique_labels(y)
            if not incremental and set(found) != set(self.classes_):
                raise ValueError("warm_start can only be used where `y` has the same classes "
                                 f"as in the previous call to fit. Previously got "
                                 f"{self.classes_}, `y` has {found}")
            unknown = np.setdiff1d(found, self.classes_)
            if len(unknown):
                raise ValueError(f"y holds classes not in classes_ {self.classes_!r}: "
                                 f"{unknown!r}")
        if not self._multilabel() and len(self.classes_) < 2:
            raise ValueError(f"{name} needs samples of at least 2 classes; y holds one class "
                             f"only: {self.classes_.tolist()[0]!r}")
        return np.asarray(self._label_binarizer.transform(y))

    def _output_activation(self) -> ActivationName:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "sigmoid"

    def _row_weights(self, y: np.ndarray, incremental: bool) -> np.ndarray | None:
        weights = self.class_weight
        if weights is None:
            return None
        if self._multilabel():
            raise ValueError("class_weight is for single-label targets; y is multilabel")
        if isinstance(weights, str) and weights == "balanced":
            if incremental:
                raise ValueError("class_weight='balanced' is not supported by partial_fit: "
                                 "pass a dict, e.g. from sklearn.utils.class_weight."
                                 "compute_class_weight('balanced', classes=..., y=...)")
        elif isinstance(weights, Mapping):
            for label, weight in weights.items():
                ok = isinstance(weight, numbers.Real) and not isinstance(weight, bool)
                if not (ok and np.isfinite(weight) and weight >= 0):
                    raise ValueError(f"class_weight[{label!r}] must be a finite non-negative "
                                     f"number; got {weight!r}")
        else:
            raise ValueError("class_weight must be None, 'balanced' or a dict of class label "
                             f"-> weight; got {weights!r}")
        return np.asarray(compute_sample_weight(weights, y), dtype=np.float64)

    def _check_weighted(self, y: np.ndarray, sw: np.ndarray | None) -> None:
        if sw is None or self._multilabel():
            return
        weighted = unique_labels(y[sw > 0])
        if len(weighted) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes with "
                             f"a non-zero weight; only class {weighted.tolist()[0]!r} has any")

    def _stratify(self, y: np.ndarray) -> np.ndarray | None:
        # as scikit-learn's MLPClassifier: stratified for a single output (two classes)
        return y if self.n_outputs_ == 1 else None

    def _score_values(self, y: np.ndarray, outputs: np.ndarray,
                      sample_weight: np.ndarray | None) -> float:
        return float(accuracy_score(y, self._label_binarizer.inverse_transform(outputs),
                                    sample_weight=sample_weight))

    def _name_classes(self) -> None:
        labels = np.asarray(self.classes_)
        small_ints = labels.dtype.kind == "i" or (
            labels.dtype.kind == "u" and labels.max() <= np.iinfo(np.int64).max)
        strings = all(isinstance(c, str) for c in labels.tolist())
        if not self._multilabel() and (small_ints or strings):
            self.network_.classes = labels

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (multilabel: a 0/1 row per sample): the largest
        probability, or > 0.5 for one logistic output."""
        outputs = self._outputs(X)
        return np.asarray(self._label_binarizer.inverse_transform(outputs))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities (n_samples, n_classes), columns in ``classes_``' order."""
        outputs = self._outputs(X)
        if self.n_outputs_ == 1:
            return np.hstack([1 - outputs, outputs])
        return outputs

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """log(``predict_proba``)."""
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = f"""A multi-layer perceptron regressor trained by dlfr (scikit-learn's API).

    An identity output per target and the squared error (the gradient of
    half its sum over the outputs, averaged over the samples, as
    scikit-learn's ``squared_error``). See ``dlfr.sklearn`` for what follows
    scikit-learn's ``MLPRegressor`` and what is dlfr's own.
    {_PARAMETERS}
    Attributes
    ----------
    {_ATTRIBUTES}"""

    _loss: LossName = "mse"

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over X and y, continuing from the fitted network (or a new one)."""
        return cast(MLPRegressor, self._fit(X, y, sample_weight, True))

    def _targets(self, y: np.ndarray, incremental: bool, classes: Any) -> np.ndarray:
        return y.reshape(len(y), -1)

    def _output_activation(self) -> ActivationName:
        return "identity"

    def _reported_loss(self, loss: float) -> float:
        # dlfr's mse sums the outputs' squared errors, scikit-learn's averages them
        # (the L2 term, in the same sum, is divided too: see the module docstring)
        return float(loss) / self.n_outputs_

    def _score_values(self, y: np.ndarray, outputs: np.ndarray,
                      sample_weight: np.ndarray | None) -> float:
        return float(r2_score(y, outputs.reshape(y.shape), sample_weight=sample_weight))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values: (n_samples,) for one target, else (n_samples, n_outputs)."""
        outputs = self._outputs(X)
        return outputs.ravel() if self.n_outputs_ == 1 else outputs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
