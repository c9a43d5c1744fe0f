"""Tests of early stopping, validation_fraction, callbacks and the History
(``Network.fit``, :mod:`dlfr.training`, :mod:`dlfr._early_stopping`).

Early stopping must leave the network with exactly the weights of its best
epoch: those of a run of that many epochs from the same seed, bit for bit.
When it stops and which epoch is best are checked against a plain
re-statement of the rule (``expected_stop``) over the history's values.
"""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from conftest import DTYPES, dtype_id
from test_training import assert_bit_identical, weights_of

import dlfr
from dlfr import Network
from dlfr._early_stopping import EarlyStopping, row_classes, split_rows
from dlfr._validation import targets
from dlfr.training import History

# ---- an overfitting problem ------------------------------------------------------------

#: A 10-30-3 network learning random labels: the validation metrics get
#: worse after a few epochs, so early stopping stops well before EPOCHS.
EPOCHS = 100
FIT = {"epochs": EPOCHS, "batch_size": 5, "learning_rate": 1.0, "seed": 1}


def noise(n=80, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, 10)), rng.integers(0, 3, n)


def validation_kwargs(style, X, y):
    """(X, y to train on, fit's validation arguments) for a validation style."""
    if style == "data":
        return X[:60], y[:60], {"validation_data": (X[60:], y[60:])}
    return X, y, {"validation_fraction": 0.25}


def expected_stop(values, monitor, patience, min_delta):
    """(stopped epoch or None, best epoch) by the documented rule, restated."""
    sign = 1 if monitor == "val_loss" else -1
    best, best_epoch, wait = math.inf, None, 0
    for epoch, value in enumerate(values):
        score = sign * value
        wait = 0 if score < best - min_delta else wait + 1
        if score < best:
            best, best_epoch = score, epoch
        if wait >= patience:
            return epoch, best_epoch
    return None, best_epoch


# ---- early stopping --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
@pytest.mark.parametrize("style", ["data", "fraction"])
def test_early_stopping_restores_exactly_the_best_epoch(style, monitor, dtype):
    X, y = noise()
    Xt, yt, val = validation_kwargs(style, X, y)
    net = Network([10, 30, 3], dtype=dtype, seed=0)
    history = net.fit(Xt, yt, **FIT, **val, early_stopping=True, monitor=monitor, patience=4)
    stopped, best = history.stopped_epoch, history.best_epoch
    assert stopped is not None and 0 < best < stopped, (best, stopped)  # a real test
    assert all(len(v) == stopped + 1 for v in history.values())
    assert (stopped, best) == expected_stop(history[monitor], monitor, 4, 1e-4)

    # the same seed, exactly best + 1 epochs, no early stopping: the same weights
    short = Network([10, 30, 3], dtype=dtype, seed=0)
    short_history = short.fit(Xt, yt, **{**FIT, "epochs": best + 1}, **val)
    assert_bit_identical(net, weights_of(short))
    assert {k: v[: best + 1] for k, v in history.items()} == short_history
    assert short_history.best_epoch is None and short_history.stopped_epoch is None
    # ... and not those of the last epoch run
    last = Network([10, 30, 3], dtype=dtype, seed=0)
    last.fit(Xt, yt, **{**FIT, "epochs": stopped + 1}, **val)
    assert not np.array_equal(last.layers[0].W, net.layers[0].W)
    # the restored network scores what the history says of its best epoch
    Xv, yv = (X[60:], y[60:]) if style == "data" else (None, None)
    if Xv is not None:
        assert net.evaluate(Xv, yv) == history["val_accuracy"][best]


@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
@pytest.mark.parametrize(("patience", "min_delta"), [(1, 0.0), (2, 1e-4), (3, 0.0), (3, 0.05),
                                                     (5, 1e-3)])
def test_stop_and_best_epoch_follow_patience_and_min_delta(monitor, patience, min_delta):
    X, y = noise(seed=3)
    net = Network([10, 30, 3], dtype="float64", seed=2)
    history = net.fit(X[:60], y[:60], **FIT, validation_data=(X[60:], y[60:]),
                      early_stopping=True, monitor=monitor, patience=patience,
                      min_delta=min_delta)
    expected = expected_stop(history[monitor], monitor, patience, min_delta)
    assert (history.stopped_epoch, history.best_epoch) == expected
    assert history.stopped_epoch is not None


def test_min_delta_larger_than_any_change_stops_after_patience_epochs():
    """Nothing improves by 10: stopped after epoch `patience`; the best epoch is
    still the one with the lowest loss among those run (not necessarily epoch 0)."""
    X, y = noise()
    net = Network([10, 30, 3], dtype="float64", seed=0)
    history = net.fit(X[:60], y[:60], **FIT, validation_data=(X[60:], y[60:]),
                      early_stopping=True, patience=3, min_delta=10.0)
    assert history.stopped_epoch == 3
    assert history.best_epoch == int(np.argmin(history["val_loss"]))
    assert history.best_epoch > 0  # the best need not have improved by min_delta


def test_patience_beyond_the_epochs_runs_them_all_and_keeps_the_best():
    X, y = noise()
    net = Network([10, 30, 3], dtype="float64", seed=0)
    history = net.fit(X[:60], y[:60], **{**FIT, "epochs": 15},
                      validation_data=(X[60:], y[60:]), early_stopping=True, patience=50)
    assert history.stopped_epoch is None and len(history["loss"]) == 15
    best = history.best_epoch
    assert best == int(np.argmin(history["val_loss"])) and best < 14
    short = Network([10, 30, 3], dtype="float64", seed=0)
    short.fit(X[:60], y[:60], **{**FIT, "epochs": best + 1}, validation_data=(X[60:], y[60:]))
    assert_bit_identical(net, weights_of(short))


def test_early_stopping_watch_in_isolation():
    watch = EarlyStopping("val_loss", patience=3, min_delta=1e-4)
    # 0 best; 1 improves; 2 worse; 3 better than 1 but by less than min_delta; 4 worse
    steps = [(1.0, True, 0), (0.9, True, 0), (0.95, False, 1), (0.89995, True, 2),
             (0.96, False, 3)]
    for epoch, (value, new_best, wait) in enumerate(steps):
        assert watch.update(epoch, value) is new_best
        assert watch.wait == wait
        assert watch.exhausted is (wait >= 3)
    assert watch.best_epoch == 3
    watch = EarlyStopping("val_accuracy", patience=1, min_delta=0.0)
    assert watch.update(0, 0.5) and watch.update(1, 0.6)
    assert not watch.update(2, 0.6) and watch.exhausted  # equal is no improvement
    assert watch.best_epoch == 1
    watch = EarlyStopping("val_loss", patience=2, min_delta=0.0)
    assert not watch.update(0, float("nan")) and watch.best_epoch is None


# ---- validation_fraction ---------------------------------------------------------------


def test_stratified_split_keeps_the_class_proportions():
    y = np.repeat([0, 1, 2], [60, 30, 10])
    Y = targets(y, 3, np.dtype(np.float64))
    train, val = split_rows(Y, 0.2, np.random.default_rng(0))
    assert np.bincount(y[val]).tolist() == [12, 6, 2]
    assert np.bincount(y[train]).tolist() == [48, 24, 8]
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(100))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    assert train.dtype == val.dtype == np.int64


def test_stratified_split_rounds_by_largest_remainder():
    y = np.repeat([0, 1, 2], [5, 3, 2])  # 3 rows of 10: quotas 1.5, 0.9, 0.6
    train, val = split_rows(targets(y, 3, np.dtype(np.float64)), 0.25,
                            np.random.default_rng(0))
    assert np.bincount(y[val], minlength=3).tolist() == [1, 1, 1]
    # one output, labels 0/1: also classes; 0.1 of 15 rows -> 2 (ceil)
    y = np.repeat([0, 1], [12, 3])
    train, val = split_rows(targets(y, 1, np.dtype(np.float64)), 0.1, np.random.default_rng(0))
    assert np.bincount(y[val], minlength=2).tolist() == [2, 0]
    train, val = split_rows(targets(y, 1, np.dtype(np.float64)), 0.2, np.random.default_rng(0))
    assert np.bincount(y[val], minlength=2).tolist() == [2, 1]


def test_split_is_decided_by_the_seed():
    Y = targets(np.arange(200) % 4, 4, np.dtype(np.float32))
    splits = [split_rows(Y, 0.3, np.random.default_rng(s))[1] for s in (7, 7, 8)]
    assert np.array_equal(splits[0], splits[1])
    assert not np.array_equal(splits[0], splits[2])
    assert np.bincount(np.arange(200)[splits[2]] % 4).tolist() == [15, 15, 15, 15]


def test_regression_and_multi_label_targets_split_at_random():
    rng = np.random.default_rng(0)
    regression = rng.uniform(-1, 1, (50, 2))
    multi_label = (rng.uniform(size=(50, 3)) > 0.5).astype(np.float64)
    multi_label[:, 0] = 1  # every row has a 1, several have more
    assert row_classes(regression) is None and row_classes(multi_label) is None
    assert row_classes(np.eye(3)[[0, 2, 1]]).tolist() == [0, 2, 1]
    for Y in (regression, multi_label):
        a = split_rows(Y, 0.3, np.random.default_rng(5))
        b = split_rows(Y, 0.3, np.random.default_rng(5))
        c = split_rows(Y, 0.3, np.random.default_rng(6))
        assert len(a[1]) == 15 and len(a[0]) == 35
        assert np.array_equal(a[1], b[1]) and not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("one_hot", [False, True])
def test_fit_with_validation_fraction_is_fit_on_the_carved_parts(one_hot, dtype):
    """validation_fraction = validation_data of the carved rows (same seed, rows
    in order): the same weights and history, bit for bit; labels and one-hot
    rows carve the same rows."""
    X, y = noise(n=50)
    targets_given = dlfr.datasets.one_hot(y, 3) if one_hot else y
    Y = targets(y, 3, np.dtype(dtype))
    train, val = split_rows(Y, 0.3, np.random.default_rng(4))
    a = Network([10, 8, 3], dtype=dtype, seed=0)
    ha = a.fit(X, targets_given, epochs=3, batch_size=4, learning_rate=0.5, seed=4,
               shuffle=False, validation_fraction=0.3)
    b = Network([10, 8, 3], dtype=dtype, seed=0)
    hb = b.fit(X[train], y[train], epochs=3, batch_size=4, learning_rate=0.5, shuffle=False,
               validation_data=(X[val], y[val]))
    assert ha == hb and list(ha) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert_bit_identical(a, weights_of(b))


def test_same_seed_same_validation_fraction_run():
    X, y = noise()
    runs = []
    for seed in (3, 3, 4):
        net = Network([10, 30, 3], seed=0)
        runs.append(net.fit(X, y, **{**FIT, "seed": seed}, validation_fraction=0.25,
                            early_stopping=True, patience=3))
    assert runs[0] == runs[1] and runs[0].best_epoch == runs[1].best_epoch
    assert runs[0]["val_loss"] != runs[2]["val_loss"]


# ---- callbacks -------------------------------------------------------------------------


def test_callbacks_see_the_history_after_each_epoch_and_can_stop():
    X, y = noise()
    seen, also_seen = [], []

    def watch(epoch, history):
        assert isinstance(history, History)
        assert all(len(v) == epoch + 1 for v in history.values())
        seen.append((epoch, history["val_loss"][-1]))
        return epoch == 2

    def quiet(epoch, history):
        also_seen.append(epoch)  # returns None: never stops

    net = Network([10, 30, 3], seed=0)
    history = net.fit(X[:60], y[:60], **FIT, validation_data=(X[60:], y[60:]),
                      callbacks=[watch, quiet])
    assert [e for e, _ in seen] == [0, 1, 2] and also_seen == [0, 1, 2]  # each called
    assert [v for _, v in seen] == history["val_loss"]
    assert history.stopped_epoch == 2 and history.best_epoch is None
    short = Network([10, 30, 3], seed=0)
    short.fit(X[:60], y[:60], **{**FIT, "epochs": 3}, validation_data=(X[60:], y[60:]))
    assert_bit_identical(net, weights_of(short))


def test_a_callback_stop_with_early_stopping_keeps_the_best_epoch():
    X, y = noise()
    net = Network([10, 30, 3], seed=0)
    history = net.fit(X[:60], y[:60], **FIT, validation_data=(X[60:], y[60:]),
                      early_stopping=True, patience=50,
                      callbacks=(lambda epoch, history: epoch == 9,))
    assert history.stopped_epoch == 9
    best = history.best_epoch
    assert best == int(np.argmin(history["val_loss"])) and best < 9
    short = Network([10, 30, 3], seed=0)
    short.fit(X[:60], y[:60], **{**FIT, "epochs": best + 1}, validation_data=(X[60:], y[60:]))
    assert_bit_identical(net, weights_of(short))


def test_an_exception_in_a_callback_propagates():
    X, y = noise()

    def broken(epoch, history):
        raise RuntimeError("from the callback")

    net = Network([10, 30, 3], seed=0)
    with pytest.raises(RuntimeError, match="from the callback"):
        net.fit(X, y, **FIT, callbacks=[broken])
    one = Network([10, 30, 3], seed=0)
    one.fit(X, y, **{**FIT, "epochs": 1})
    assert_bit_identical(net, weights_of(one))  # the weights of the first epoch


# ---- the history -----------------------------------------------------------------------


def test_history_is_a_plain_dict_of_lists_with_two_attributes():
    X, y = noise()
    net = Network([10, 30, 3], seed=0)
    history = net.fit(X, y, **{**FIT, "epochs": 3})
    assert isinstance(history, dict) and list(history) == ["loss", "accuracy"]
    assert history.best_epoch is None and history.stopped_epoch is None
    assert json.loads(json.dumps(history)) == history
    history = net.fit(X, y, **FIT, validation_fraction=0.25, early_stopping=True, patience=2)
    copy = pickle.loads(pickle.dumps(history))
    assert copy == history and (copy.best_epoch, copy.stopped_epoch) == (
        history.best_epoch, history.stopped_epoch)


# ---- refused calls ---------------------------------------------------------------------


def refusals():
    X, y = noise(n=20)
    nan_X = X.copy()
    nan_X[3, 2] = np.nan

    def case(name, changes, pattern, exc=ValueError, data=(X, y)):
        return pytest.param(data, changes, exc, pattern, id=name)

    return [
        case("early-stopping-without-validation", {"early_stopping": True},
             r"early_stopping=True.*validation_data or validation_fraction"),
        case("early-stopping-not-a-bool", {"early_stopping": "yes"},
             r"early_stopping must be True or False"),
        case("early-stopping-none", {"early_stopping": None}, r"early_stopping must be"),
        case("both-validations", {"validation_data": (X, y), "validation_fraction": 0.2},
             r"validation_data or validation_fraction, not both"),
        case("fraction-0", {"validation_fraction": 0}, r"validation_fraction must be .*between"),
        case("fraction-1", {"validation_fraction": 1.0}, r"validation_fraction must be"),
        case("fraction-negative", {"validation_fraction": -0.2}, r"validation_fraction must be"),
        case("fraction-1.5", {"validation_fraction": 1.5}, r"validation_fraction must be"),
        case("fraction-nan", {"validation_fraction": float("nan")},
             r"validation_fraction must be"),
        case("fraction-str", {"validation_fraction": "0.2"}, r"validation_fraction must be"),
        case("fraction-bool", {"validation_fraction": True}, r"validation_fraction must be"),
        case("fraction-leaves-nothing", {"validation_fraction": 0.99},
             r"validation_fraction=0.99 of 20 samples leaves no training samples"),
        case("fraction-carves-nan-rows", {"validation_fraction": 0.5, "seed": 0},
             r"X contains NaN or inf", data=(nan_X, y)),
        case("patience-0", {"patience": 0}, r"patience must be a positive integer"),
        case("patience-negative", {"patience": -2}, r"patience must be"),
        case("patience-float", {"patience": 2.5}, r"patience must be"),
        case("min-delta-negative", {"min_delta": -1e-3}, r"min_delta must be a non-negative"),
        case("min-delta-nan", {"min_delta": float("nan")}, r"min_delta must be"),
        case("min-delta-inf", {"min_delta": float("inf")}, r"min_delta must be"),
        case("min-delta-str", {"min_delta": "0"}, r"min_delta must be"),
        case("monitor-unknown", {"monitor": "loss"},
             r"monitor must be one of 'val_loss', 'val_accuracy'; got 'loss'"),
        case("monitor-none", {"monitor": None}, r"monitor must be one of"),
        case("callbacks-not-callable", {"callbacks": [print, 3]},
             r"callbacks\[1\] must be callable"),
        case("callbacks-one-function", {"callbacks": print}, r"callbacks=\[cb\]"),
        case("callbacks-str", {"callbacks": "print"}, r"callbacks must be a sequence"),
        case("callbacks-number", {"callbacks": 3}, r"callbacks must be a sequence"),
        case("validation-data-four", {"validation_data": (X, y, y, y)},
             r"validation_data must be a pair \(X_val, y_val\) or a triple"),
    ]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize(("data", "kwargs", "exc", "pattern"), refusals())
def test_refused_fit_changes_nothing(data, kwargs, exc, pattern, dtype):
    net = Network([10, 4, 3], dtype=dtype, seed=0)
    saved = weights_of(net)
    with pytest.raises(exc, match=pattern):
        net.fit(*data, epochs=2, batch_size=4, learning_rate=0.5, **kwargs)
    assert_bit_identical(net, saved)
