"""dlfr.sklearn: scikit-learn's own estimator checks, scikit-learn's tools around
the estimators, and the estimators as twins of scikit-learn's MLPs.

The twins: with the same parameters, random_state and ``shuffle=False``,
float64, dlfr's estimators start from scikit-learn's initial weights and take
the same steps, so ``loss_curve_``, ``validation_scores_``, ``n_iter_`` and
the predictions agree to rounding (what differs is the order of sums).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn import neural_network  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import dlfr  # noqa: E402
from dlfr.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

#: Checks the estimators are expected to fail, and why (the goal is none).
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {"MLPClassifier": {}, "MLPRegressor": {}}


@parametrize_with_checks(
    [MLPClassifier(max_iter=100, random_state=0), MLPRegressor(max_iter=100, random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS[type(est).__name__],
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_scikit_learn_checks(estimator, check):
    check(estimator)


# -- the twins of scikit-learn's MLPs --------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    X, y = dlfr.datasets.load_mnist(dtype="float64")
    return X[:600], y[:600]


def fit_both(ours, theirs, X, y, **params):
    """Fit dlfr's and scikit-learn's estimator with the same parameters (float64,
    no shuffling, random_state 0)."""
    params = dict(dict(shuffle=False, random_state=0, max_iter=6, batch_size=50), **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ours(**params).fit(X, y), theirs(**params).fit(X, y)


def assert_twins(a, b, X, rtol=1e-9):
    assert a.n_iter_ == b.n_iter_
    assert a.t_ == b.t_
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=rtol)
    if b.validation_scores_ is None:
        assert a.validation_scores_ is None and a.best_validation_score_ is None
        np.testing.assert_allclose(a.best_loss_, b.best_loss_, rtol=rtol)
    else:
        np.testing.assert_allclose(a.validation_scores_, b.validation_scores_, rtol=rtol)
        np.testing.assert_allclose(a.best_validation_score_, b.best_validation_score_, rtol=rtol)
        assert a.best_loss_ is None and b.best_loss_ is None
    for ours, theirs in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-10)
    if hasattr(b, "predict_proba"):
        np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-7,
                                   atol=1e-10)
        np.testing.assert_array_equal(a.classes_, b.classes_)
        np.testing.assert_array_equal(a.predict(X), b.predict(X))
    else:
        np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-7, atol=1e-10)


def plain_sgd(**params):
    return dict(dict(solver="sgd", momentum=0.0, alpha=0.0, learning_rate_init=0.1), **params)


TARGETS = {
    "multiclass": lambda y: y,
    "binary": lambda y: np.where(y % 2, "odd", "even"),
    "multilabel": lambda y: np.c_[y % 2, y % 3 == 0, y > 6].astype(int),
}


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("activation", ["logistic", "tanh", "relu", "identity"])
def test_classifier_is_scikit_learns_twin(digits, target, activation):
    X, y = digits
    y = TARGETS[target](y)
    a, b = fit_both(MLPClassifier, neural_network.MLPClassifier, X, y,
                    **plain_sgd(activation=activation, hidden_layer_sizes=(20, 10)))
    assert a.out_activation_ == ("softmax" if target == "multiclass" else "sigmoid")
    assert_twins(a, b, X)


#: The solvers with L2 (600 rows, mini-batches of 50: L2's step is scikit-learn's in each).
SOLVERS = {
    "momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
    "nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
    "adam": dict(solver="adam", beta_1=0.8, beta_2=0.99, epsilon=1e-7),
}


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_solvers_and_alpha_are_scikit_learns(digits, solver, target):
    X, y = digits
    a, b = fit_both(MLPClassifier, neural_network.MLPClassifier, X, TARGETS[target](y),
                    alpha=0.01, learning_rate_init=0.01, **SOLVERS[solver])
    assert_twins(a, b, X)


@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("solver", ["plain", "adam"])
def test_regressor_is_scikit_learns_twin(digits, n_outputs, solver):
    X, _ = digits
    y = X[:, 300:300 + n_outputs] * 2 + X[:, 400:400 + n_outputs]
    y = y.ravel() if n_outputs == 1 else y
    params = (plain_sgd(learning_rate_init=0.01) if solver == "plain"
              else dict(solver="adam", alpha=0.01))
    a, b = fit_both(MLPRegressor, neural_network.MLPRegressor, X, y, **params)
    assert a.predict(X).shape == y.shape
    if n_outputs > 1 and solver == "adam":
        # documented: with alpha > 0 the L2 term of loss_curve_ is divided by
        # n_outputs too (scikit-learn divides the squared error only)
        a.loss_curve_ = b.loss_curve_
        a.best_loss_ = b.best_loss_
    assert_twins(a, b, X)


@pytest.mark.parametrize("schedule", ["invscaling", "adaptive"])
def test_learning_rate_schedules_are_scikit_learns(digits, schedule):
    X, y = digits
    # a large tol makes the adaptive rate drop, then stop
    a, b = fit_both(MLPClassifier, neural_network.MLPClassifier, X, y, max_iter=40,
                    solver="sgd", learning_rate=schedule, tol=0.05, n_iter_no_change=2,
                    learning_rate_init=0.05)
    assert_twins(a, b, X)
    if schedule == "adaptive":
        assert a.n_iter_ < 40


@pytest.mark.parametrize("target", ["multiclass", "binary"])
def test_early_stopping_is_scikit_learns_and_keeps_the_best_epoch(digits, target):
    X, y = digits
    y = TARGETS[target](y)
    # 480 rows trained on, in mini-batches of 48 (L2's step is scikit-learn's in each)
    a, b = fit_both(MLPClassifier, neural_network.MLPClassifier, X, y, max_iter=60,
                    solver="sgd", early_stopping=True, validation_fraction=0.2,
                    batch_size=48, learning_rate_init=0.05, n_iter_no_change=3)
    assert a.n_iter_ < 60
    assert_twins(a, b, X)
    # the weights kept are the best epoch's, not the last one's
    assert np.argmax(a.validation_scores_) < len(a.validation_scores_) - 1


def test_sample_and_class_weights_are_scikit_learns(digits):
    X, y = digits
    sw = np.random.default_rng(0).uniform(0, 3, len(y))
    class_weight = {label: 1 + label / 4 for label in range(10)}
    # one mini-batch per epoch: scikit-learn's epoch loss is then the weighted mean too
    params = dict(shuffle=False, random_state=0, max_iter=6, batch_size=len(y),
                  **plain_sgd(learning_rate_init=0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(class_weight=class_weight, **params).fit(X, y, sample_weight=sw)
        b = neural_network.MLPClassifier(**params).fit(
            X, y, sample_weight=sw * np.array([class_weight[label] for label in y]))
    assert_twins(a, b, X)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_partial_fit_is_scikit_learns(digits, solver):
    """The optimizer's state (velocity, Adam's moments and step count) carries over."""
    X, y = digits
    params = dict(shuffle=False, random_state=0, batch_size=50, learning_rate_init=0.01,
                  **SOLVERS[solver])
    a, b = MLPClassifier(**params), neural_network.MLPClassifier(**params)
    classes = np.arange(10)
    for start in range(0, 600, 200):
        a.partial_fit(X[start:start + 200], y[start:start + 200], classes=classes)
        b.partial_fit(X[start:start + 200], y[start:start + 200], classes=classes)
    assert a.n_iter_ == 1
    assert_twins(a, b, X)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_warm_start_continues_and_appends(digits, solver):
    """As scikit-learn's: the weights carry over, the optimizer starts afresh."""
    X, y = digits
    params = dict(shuffle=False, random_state=0, batch_size=50, max_iter=3, warm_start=True,
                  learning_rate_init=0.01, **SOLVERS[solver])
    a, b = MLPClassifier(**params), neural_network.MLPClassifier(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for est in (a, b):
            est.fit(X, y)
            est.fit(X, y)
    assert len(a.loss_curve_) == 6
    assert_twins(a, b, X)


# -- scikit-learn's tools ----------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    X, y = dlfr.datasets.load_mnist(dtype="float64")
    return X[:300], y[:300]


def quick(cls, **params):
    return cls(**dict(dict(hidden_layer_sizes=(16,), batch_size=32, max_iter=20, random_state=0),
                      **params))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pipeline_grid_search_and_cross_validation(small):
    X, y = small
    pipe = make_pipeline(StandardScaler(), quick(MLPClassifier))
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.8
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(8,), (16,)],
                               "mlpclassifier__activation": ["logistic", "relu"]}, cv=3)
    grid.fit(X, y)
    assert set(grid.best_params_) == {"mlpclassifier__hidden_layer_sizes",
                                      "mlpclassifier__activation"}
    assert grid.best_estimator_[-1].network_.sizes[1] == grid.best_params_[
        "mlpclassifier__hidden_layer_sizes"][0]
    scores = cross_val_score(quick(MLPRegressor), X, X[:, 400], cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_clone_and_pickle(small, cls):
    X, y = small
    est = quick(cls, dtype="float32")
    unfitted = clone(est)
    assert unfitted.get_params() == est.get_params()
    assert not hasattr(unfitted, "network_")
    est.fit(X, y)
    copy = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(copy.predict(X), est.predict(X))
    assert copy.network_.dtype == np.float32
    assert copy.loss_curve_ == est.loss_curve_
    # the copy keeps training as the original does
    copy.partial_fit(X, y)
    est.partial_fit(X, y)
    np.testing.assert_array_equal(copy.predict(X), est.predict(X))
    assert not hasattr(clone(est), "network_")


# -- dlfr's own parameters and attributes -------------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype, X_dtype, expected", [
    (None, np.float32, np.float32), (None, np.float64, np.float64), (None, np.int64, np.float64),
    ("float32", np.float64, np.float32), ("float64", np.float32, np.float64),
])
def test_dtype(small, dtype, X_dtype, expected):
    X, y = small
    est = quick(MLPClassifier, dtype=dtype).fit((X * 255).astype(X_dtype), y)
    assert est.network_.dtype == expected
    assert est.coefs_[0].dtype == expected
    assert est.predict_proba(X).dtype == expected


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_uint8_is_read_as_numbers_not_pixels(small):
    X, y = small
    pixels = np.round(X * 255).astype(np.uint8)
    est = quick(MLPClassifier).fit(pixels, y)
    np.testing.assert_array_equal(est.predict_proba(pixels),
                                  est.predict_proba(pixels.astype(np.float64)))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_network_is_the_model(small):
    X, y = small
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                       "nine"])[y]
    est = quick(MLPClassifier, hidden_layer_sizes=(12, 8)).fit(X, labels)
    net = est.network_
    assert isinstance(net, dlfr.Network)
    assert net.sizes == [784, 12, 8, 10]
    assert [layer.activation for layer in net.layers] == ["relu", "relu", "softmax"]
    np.testing.assert_array_equal(net.forward(X), est.predict_proba(X))
    np.testing.assert_array_equal(net.classes[net.predict(X)], est.predict(X))
    assert est.n_layers_ == 4 and est.n_outputs_ == 10 and est.n_features_in_ == 784


def test_activation_names(small):
    X, y = small
    names = [("logistic", "sigmoid"), ("sigmoid", "sigmoid"), ("tanh", "tanh"),
             ("leaky_relu", "leaky_relu"), ("elu", "elu")]
    for name, expected in names:
        est = quick(MLPClassifier, activation=name, max_iter=1)
        with pytest.warns(ConvergenceWarning):
            est.fit(X, y)
        assert est.network_.layers[0].activation == expected


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_feature_names(small):
    pd = pytest.importorskip("pandas")
    X, y = small
    frame = pd.DataFrame(X[:, :20], columns=[f"pixel{i}" for i in range(20)])
    est = quick(MLPClassifier).fit(frame, y)
    np.testing.assert_array_equal(est.feature_names_in_, frame.columns)
    with pytest.warns(UserWarning, match="feature names"):
        est.predict(X[:, :20])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_failed_call_leaves_the_estimator_as_it_was(small):
    X, y = small
    est = quick(MLPClassifier, **plain_sgd()).fit(X, y)
    state = pickle.dumps(est)
    before = est.predict_proba(X)
    with pytest.raises(ValueError, match="classes"):
        est.partial_fit(X, y + 10)
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X[:, :-1], y)
    huge = X * 1e300  # diverges: dlfr refuses and puts the weights back
    with pytest.raises(ValueError, match="diverged"):
        est.set_params(learning_rate_init=10.0).partial_fit(huge, y)
    np.testing.assert_array_equal(est.predict_proba(X), before)
    assert pickle.dumps(est.set_params(learning_rate_init=0.1)) == state


def test_unfitted(small):
    X, _ = small
    for est in (MLPClassifier(), MLPRegressor()):
        with pytest.raises(NotFittedError):
            est.predict(X)
        assert not hasattr(est, "coefs_")


def test_single_class_and_partial_fit_classes(small):
    X, y = small
    with pytest.raises(ValueError, match="at least 2 classes"):
        quick(MLPClassifier).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="classes must be passed"):
        quick(MLPClassifier).partial_fit(X, y)
    est = quick(MLPClassifier).partial_fit(X[:40], y[:40], classes=np.arange(10))
    np.testing.assert_array_equal(est.classes_, np.arange(10))
    with pytest.raises(ValueError, match="not the same"):
        est.partial_fit(X, y, classes=np.arange(11))
    with pytest.raises(ValueError, match="early_stopping"):
        quick(MLPClassifier, early_stopping=True).partial_fit(X, y, classes=np.arange(10))


@pytest.mark.parametrize("params, message", [
    (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes must be a positive integer"),
    (dict(hidden_layer_sizes="10"), "hidden_layer_sizes"),
    (dict(activation="softmax"), "activation must be one of"),
    (dict(activation="logisitc"), "activation must be one of"),
    (dict(solver="lbfgs"), "solver must be one of 'sgd', 'adam'; got 'lbfgs'"),
    (dict(alpha=-1.0), r"alpha must be a number in \[0, inf\); got -1.0"),
    (dict(batch_size=0), "batch_size must be 'auto' or a positive integer; got 0"),
    (dict(batch_size="big"), "batch_size"),
    (dict(learning_rate="cyclic"), "learning_rate must be one of"),
    (dict(learning_rate_init=0), r"learning_rate_init must be a number in \(0, inf\)"),
    (dict(power_t=-0.5), "power_t"),
    (dict(max_iter=0), "max_iter must be an integer"),
    (dict(max_iter=2.5), "max_iter must be an integer"),
    (dict(shuffle="yes"), "shuffle must be True or False"),
    (dict(tol=float("nan")), "tol"),
    (dict(momentum=1.5), r"momentum must be a number in \[0, 1\]"),
    (dict(beta_1=1.0), r"beta_1 must be a number in \[0, 1\)"),
    (dict(epsilon=0.0), "epsilon"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(n_iter_no_change=0), "n_iter_no_change must be a positive integer or numpy.inf"),
    (dict(dtype="float16"), "dtype must be 'float32' or 'float64'"),
    (dict(n_threads=0), "n_threads"),
    (dict(verbose="loud"), "verbose"),
    (dict(random_state="seed"), "seed"),
])
def test_bad_parameters_are_named(small, params, message):
    X, y = small
    for cls in (MLPClassifier, MLPRegressor):
        est = cls(**params)  # never refused before fit (scikit-learn's rule)
        with pytest.raises(ValueError, match=message):
            est.fit(X, y)
        assert not hasattr(est, "network_")


def test_bad_class_weight_and_sample_weight(small):
    X, y = small
    with pytest.raises(ValueError, match="class_weight must be None, 'balanced' or a dict"):
        MLPClassifier(class_weight="even").fit(X, y)
    with pytest.raises(ValueError, match=r"class_weight\[3\] must be a finite non-negative"):
        MLPClassifier(class_weight={3: -1.0}).fit(X, y)
    with pytest.raises(ValueError, match="not supported by partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=np.arange(10))
    with pytest.raises(ValueError, match="multilabel"):
        MLPClassifier(class_weight="balanced").fit(X, TARGETS["multilabel"](y))
    with pytest.raises(ValueError, match=r"sample_weight must be 1-D .* shape \(300,\)"):
        MLPClassifier().fit(X, y, sample_weight=np.ones(299))
    with pytest.raises(ValueError, match=r"finite weights >= 0; sample_weight\[0\] = -1.0"):
        MLPClassifier().fit(X, y, sample_weight=-np.ones(300))
    with pytest.raises(ValueError, match="all zero"):
        MLPClassifier().fit(X, y, sample_weight=np.zeros(300))
    with pytest.raises(ValueError, match="only class 1 has any"):
        MLPClassifier().fit(X, y, sample_weight=(y == 1).astype(float))


def test_batch_size_larger_than_the_data_is_clipped(small):
    X, y = small
    est = quick(MLPClassifier, batch_size=1000, max_iter=1)
    with pytest.warns(UserWarning, match="clipped"), pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    assert est.n_iter_ == 1


def test_import_dlfr_does_not_import_scikit_learn():
    code = "import sys, dlfr; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_digits_accuracy_matches_scikit_learns():
    """Issue 17's configuration: 784-100-10, Adam, batch 32, 30 epochs on the first
    8,000 bundled digits, scored on the last 2,000 (scikit-learn: about 0.963)."""
    X, y = dlfr.datasets.load_mnist()
    params = dict(hidden_layer_sizes=(100,), solver="adam", batch_size=32, max_iter=30,
                  random_state=0)
    ours = MLPClassifier(**params).fit(X[:8000], y[:8000])
    theirs = neural_network.MLPClassifier(**params).fit(X[:8000], y[:8000])
    assert ours.n_iter_ == theirs.n_iter_ == 30
    ours_score, theirs_score = ours.score(X[8000:], y[8000:]), theirs.score(X[8000:], y[8000:])
    assert ours_score >= 0.96
    assert abs(ours_score - theirs_score) <= 0.005, (ours_score, theirs_score)


def test_ctrl_c_keeps_the_completed_epochs(small, monkeypatch):
    """As scikit-learn: Ctrl-C ends fit with a warning, keeping the epochs done
    (dlfr's fit puts back the interrupted epoch's start)."""
    X, y = small
    calls = []
    fit = dlfr.training.fit

    def interrupted_third_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return fit(*args, **kwargs)

    monkeypatch.setattr(dlfr.training, "fit", interrupted_third_epoch)
    with pytest.warns(UserWarning, match="interrupted"):
        est = quick(MLPClassifier, max_iter=10).fit(X, y)
    assert est.n_iter_ == 2 and len(est.loss_curve_) == 2


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_verbose_shows_progress(small, capsys):
    X, y = small
    quick(MLPClassifier, max_iter=3, verbose=True).fit(X, y)
    err = capsys.readouterr().err
    assert "epochs" in err and "loss=" in err
