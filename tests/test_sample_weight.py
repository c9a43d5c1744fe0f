"""Tests of ``fit(sample_weight=...)``: per-sample weights in the compiled epoch.

Each mini-batch's loss and gradient are the weighted mean over its rows (the
step divided by the batch's weight sum, as scikit-learn's MLP does). Checked
against finite differences of that weighted loss, against a plain-NumPy
weighted twin of mini-batch SGD (rows in order and shuffled, where the
compiled trainer gathers the weights with the rows), and by the
equivalences scikit-learn's checks rely on: weights of all ones are no
weights (bit for bit), integer weights are repeated samples and a zero weight
a removed one (one full-batch step), and scaling every weight changes nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DTYPES, arch_id, dtype_id
from test_training import (
    FD_STEP,
    GRADIENT_LOSSES,
    HISTORY_TOL,
    TWIN_CASES,
    TWIN_TOL,
    assert_bit_identical,
    assert_weights,
    cost,
    derivative,
    gradient_problem,
    snapshot,
    twin_problem,
    weights_of,
)

from dlfr import Network
from dlfr import _reference as ref
from dlfr._early_stopping import split_rows
from dlfr._validation import targets

#: Weights with zeros, whole numbers and binary fractions (exact in float32 too).
WEIGHTS = np.array([0.0, 0.0, 1.0, 2.0, 0.5, 3.0, 1.0, 0.25, 4.0, 0.0, 1.5])


def row_costs(a, Y, loss, output):
    return np.array([cost(a[i:i + 1], Y[i:i + 1], loss, output) for i in range(len(a))])


def weighted_mean_cost(X, Y, w, Ws, bs, acts, loss):
    """sum_i w_i C_i / sum_i w_i, with the plain-NumPy forward pass."""
    return np.sum(w * row_costs(ref.forward(X, Ws, bs, acts), Y, loss, acts[-1])) / np.sum(w)


def weighted_sgd_twin(net, X, Y, w, *, orders, batch_size, learning_rate, loss):
    """Weighted mini-batch SGD in plain NumPy (float64), one row order per epoch.

    Each batch: delta rows scaled by their weights, the step divided by the
    batch's weight sum; a batch of zero weights takes no step. Returns the
    final weights and biases and the weighted per-epoch loss and accuracy.
    """
    Ws, bs, acts = snapshot(net)
    X, Y, w = (np.asarray(v, np.float64) for v in (X, Y, w))
    history = {"loss": [], "accuracy": []}
    for order in orders:
        total = hits = 0.0
        for start in range(0, len(X), batch_size):
            rows = order[start:start + batch_size]
            Xb, Yb, wb = X[rows], Y[rows], w[rows]
            outs = ref.forward(Xb, Ws, bs, acts, return_all=True)
            a = outs[-1]
            total += np.sum(wb * row_costs(a, Yb, loss, acts[-1]))
            if a.shape[1] == 1:
                hit = (a[:, 0] >= 0.5) == (Yb[:, 0] >= 0.5)
            else:
                hit = a.argmax(axis=1) == Yb.argmax(axis=1)
            hits += np.sum(wb * hit)
            if wb.sum() == 0:
                continue
            delta = (a - Yb) * wb[:, None]
            if loss == "mse":
                delta = delta * derivative(acts[-1], a)
            for layer in range(len(Ws) - 1, -1, -1):
                inputs = outs[layer - 1] if layer > 0 else Xb
                grad_W = inputs.T @ delta / wb.sum()
                grad_b = delta.sum(axis=0) / wb.sum()
                if layer > 0:
                    delta = (delta @ Ws[layer].T) * derivative(acts[layer - 1], inputs)
                Ws[layer] = Ws[layer] - learning_rate * grad_W
                bs[layer] = bs[layer] - learning_rate * grad_b
        history["loss"].append(total / w.sum())
        history["accuracy"].append(hits / w.sum())
    return Ws, bs, history


def weights_for(n):
    return np.resize(WEIGHTS, n)


# ---- the gradient of the weighted loss -------------------------------------------------


def fd_gradient(loss_of, params):
    """Fourth-order central differences of ``loss_of()`` in every entry of ``params``."""
    grads = []
    for p in params:
        grad = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            original = p[idx]
            values = []
            for k in (2, 1, -1, -2):
                p[idx] = original + k * FD_STEP
                values.append(loss_of())
            p[idx] = original
            grad[idx] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * FD_STEP)
        grads.append(grad)
    return grads


@pytest.mark.parametrize(("loss", "output"), GRADIENT_LOSSES)
@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu"])
def test_weighted_step_follows_the_gradient_of_the_weighted_loss(hidden, output, loss):
    net, X, Y = gradient_problem(2, hidden, output, loss)
    w = np.array([0.5, 2.0, 0.0, 1.25, 3.0])
    Ws, bs, acts = snapshot(net)
    Wc, bc = [W.copy() for W in Ws], [b.copy() for b in bs]
    grads = fd_gradient(lambda: weighted_mean_cost(X, Y, w, Wc, bc, acts, loss), Wc + bc)
    lr = 0.5
    history = net.fit(X, Y, epochs=1, batch_size=len(X), shuffle=False, learning_rate=lr,
                      loss=loss, sample_weight=w)
    moved = [layer.W - W0 for layer, W0 in zip(net.layers, Ws, strict=True)]
    moved += [layer.b - b0 for layer, b0 in zip(net.layers, bs, strict=True)]
    for step, grad in zip(moved, grads, strict=True):
        expected = -lr * grad
        scale = np.abs(expected).max()
        assert scale > 1e-8, "a vanishing gradient checks nothing"
        np.testing.assert_allclose(step, expected, rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(history["loss"][0],
                               weighted_mean_cost(X, Y, w, Ws, bs, acts, loss), rtol=1e-12)
    # not the unweighted gradient
    unweighted = Network(net.sizes, activation=hidden, output_activation=output,
                         dtype="float64", seed=0)
    for layer, W0, b0 in zip(unweighted.layers, Ws, bs, strict=True):
        layer.W[...], layer.b[...] = W0, b0
    unweighted.fit(X, Y, epochs=1, batch_size=len(X), shuffle=False, learning_rate=lr,
                   loss=loss)
    assert not np.allclose(unweighted.layers[0].W, net.layers[0].W, rtol=1e-6, atol=0)


# ---- against the weighted NumPy twin ---------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize(("sizes", "hidden", "output", "loss"), TWIN_CASES,
                         ids=[arch_id(c[0]) for c in TWIN_CASES])
def test_weighted_mini_batches_match_the_twin(sizes, hidden, output, loss, shuffle, dtype):
    """Batches of 2 from 11 rows for three epochs; the first batch (rows in
    order) has weights 0 and 0 and takes no step."""
    net = Network(sizes, activation=hidden, output_activation=output, dtype=dtype, seed=2)
    X, y, Y = twin_problem(sizes, output, dtype, n=11, seed=1)
    w = weights_for(11)
    rng = np.random.default_rng(9)
    orders = [rng.permutation(11) if shuffle else np.arange(11) for _ in range(3)]
    Ws, bs, twin_history = weighted_sgd_twin(net, X, Y, w, orders=orders, batch_size=2,
                                             learning_rate=0.3, loss=loss)
    history = net.fit(X, y, epochs=3, batch_size=2, learning_rate=0.3, loss=loss,
                      shuffle=shuffle, seed=9, sample_weight=w)
    assert_weights(net, Ws, bs, TWIN_TOL[dtype])
    np.testing.assert_allclose(history["loss"], twin_history["loss"], **HISTORY_TOL[dtype])
    np.testing.assert_allclose(history["accuracy"], twin_history["accuracy"], rtol=1e-15)


# ---- the equivalences ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize(("sizes", "hidden", "output", "loss"), TWIN_CASES[1:4],
                         ids=[arch_id(c[0]) for c in TWIN_CASES[1:4]])
def test_weights_of_all_ones_are_no_weights_bit_for_bit(sizes, hidden, output, loss, dtype):
    X, y, _ = twin_problem(sizes, output, dtype, n=23)
    runs = []
    for weights in (None, np.ones(23), np.ones(23, np.int64), [1.0] * 23):
        net = Network(sizes, activation=hidden, output_activation=output, dtype=dtype, seed=3)
        history = net.fit(X, y, epochs=3, batch_size=5, learning_rate=0.2, loss=loss, seed=4,
                          validation_data=(X[:7], y[:7]), sample_weight=weights)
        runs.append((weights_of(net), history))
    for weights, history in runs[1:]:
        assert history == runs[0][1]
        for (W, b), (W0, b0) in zip(weights, runs[0][0], strict=True):
            assert np.array_equal(W, W0) and np.array_equal(b, b0)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_scaling_every_weight_changes_nothing(dtype):
    """By a power of two, bit for bit (every product and quotient scales
    exactly); by 3, to rounding."""
    X, y, _ = twin_problem([6, 12, 3], "sigmoid", dtype, n=20)
    w = weights_for(20)
    runs = []
    for factor in (1, 4, 3):
        net = Network([6, 12, 3], dtype=dtype, seed=0)
        history = net.fit(X, y, epochs=2, batch_size=6, learning_rate=1.0, seed=2,
                          sample_weight=w * factor)
        runs.append((net, history))
    assert runs[1][1] == runs[0][1]
    assert_bit_identical(runs[1][0], weights_of(runs[0][0]))
    for la, lb in zip(runs[2][0].layers, runs[0][0].layers, strict=True):
        np.testing.assert_allclose(la.W, lb.W, **TWIN_TOL[dtype])
    np.testing.assert_allclose(runs[2][1]["loss"], runs[0][1]["loss"], **HISTORY_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize(("sizes", "hidden", "output", "loss"), TWIN_CASES,
                         ids=[arch_id(c[0]) for c in TWIN_CASES])
def test_integer_weights_are_repeated_samples_in_a_full_batch_step(sizes, hidden, output, loss,
                                                                   dtype):
    """Weight k: the row k times; weight 0: the row left out (one full-batch step)."""
    X, y, _ = twin_problem(sizes, output, dtype, n=12, seed=3)
    counts = np.array([0, 1, 2, 3, 1, 0, 2, 1, 4, 1, 0, 2])
    weighted = Network(sizes, activation=hidden, output_activation=output, dtype=dtype, seed=5)
    repeated = Network(sizes, activation=hidden, output_activation=output, dtype=dtype, seed=5)
    hw = weighted.fit(X, y, epochs=1, batch_size=100, learning_rate=0.5, loss=loss,
                      shuffle=False, sample_weight=counts)
    hr = repeated.fit(np.repeat(X, counts, axis=0), np.repeat(y, counts, axis=0), epochs=1,
                      batch_size=100, learning_rate=0.5, loss=loss, shuffle=False)
    for lw, lr_ in zip(weighted.layers, repeated.layers, strict=True):
        np.testing.assert_allclose(lw.W, lr_.W, **TWIN_TOL[dtype])
        np.testing.assert_allclose(lw.b, lr_.b, **TWIN_TOL[dtype])
    np.testing.assert_allclose(hw["loss"], hr["loss"], **HISTORY_TOL[dtype])
    assert hw["accuracy"] == pytest.approx(hr["accuracy"], rel=1e-15)


# ---- weighted validation ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_validation_weights_weigh_the_validation_metrics(dtype):
    X, y, Y = twin_problem([5, 7, 3], "softmax", dtype, n=30)
    wv = weights_for(30)
    net = Network([5, 7, 3], output_activation="softmax", dtype=dtype, seed=0)
    history = net.fit(X, y, epochs=2, batch_size=8, learning_rate=0.5, loss="cross_entropy",
                      validation_data=(X, y, wv))
    Ws, bs, acts = snapshot(net)
    np.testing.assert_allclose(
        history["val_loss"][-1],
        weighted_mean_cost(X.astype(np.float64), Y, wv, Ws, bs, acts, "cross_entropy"),
        rtol=1e-5 if dtype == np.float32 else 1e-12)
    hits = net.predict(X) == y
    assert history["val_accuracy"][-1] == pytest.approx(np.sum(wv * hits) / np.sum(wv),
                                                        rel=1e-15)
    assert history["val_accuracy"][-1] != pytest.approx(np.mean(hits), rel=1e-3)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_validation_fraction_carves_the_weights_with_the_rows(dtype):
    X, y, _ = twin_problem([5, 7, 3], "softmax", dtype, n=40)
    w = weights_for(40)
    train, val = split_rows(targets(y, 3, np.dtype(dtype)), 0.25, np.random.default_rng(6))
    a = Network([5, 7, 3], dtype=dtype, seed=0)
    ha = a.fit(X, y, epochs=2, batch_size=4, learning_rate=0.5, seed=6, shuffle=False,
               validation_fraction=0.25, sample_weight=w)
    b = Network([5, 7, 3], dtype=dtype, seed=0)
    hb = b.fit(X[train], y[train], epochs=2, batch_size=4, learning_rate=0.5, shuffle=False,
               validation_data=(X[val], y[val], w[val]), sample_weight=w[train])
    assert ha == hb
    assert_bit_identical(a, weights_of(b))


# ---- refused weights -------------------------------------------------------------------


def refusals():
    rng = np.random.default_rng(0)
    X, y = rng.uniform(size=(8, 3)), np.array([0, 1, 2, 0, 1, 2, 0, 1])
    ones = np.ones(8)
    nan_X = X.copy()
    nan_X[1, 1] = np.nan
    _, val = split_rows(targets(y, 3, np.dtype(np.float64)), 0.375, np.random.default_rng(0))
    on_val = np.isin(np.arange(8), val).astype(np.float64)  # weight 1 on the carved rows only

    def with_weight(i, value):
        w = ones.copy()
        w[i] = value
        return w

    def case(name, changes, pattern, exc=ValueError, data=(X, y), dtypes=DTYPES):
        return [pytest.param(data, changes, exc, pattern, dtype, id=f"{name}-{dtype_id(dtype)}")
                for dtype in dtypes]

    return [
        *case("negative", {"sample_weight": with_weight(3, -1.0)},
              r"sample_weight must hold finite weights >= 0; sample_weight\[3\] = -1.0"),
        *case("nan", {"sample_weight": with_weight(5, np.nan)}, r"sample_weight\[5\] = nan"),
        *case("inf", {"sample_weight": with_weight(0, np.inf)}, r"sample_weight\[0\] = inf"),
        *case("too-short", {"sample_weight": ones[:7]},
              r"sample_weight must be 1-D with one weight per sample, shape \(8,\); "
              r"got shape \(7,\)"),
        *case("2-d", {"sample_weight": ones.reshape(8, 1)}, r"got shape \(8, 1\)"),
        *case("scalar", {"sample_weight": 1.0}, r"got shape \(\)"),
        *case("all-zero", {"sample_weight": np.zeros(8)}, r"sample_weight is all zero"),
        *case("underflows-to-zero", {"sample_weight": np.full(8, 1e-50)},
              r"sample_weight is all zero \(in float32\)", dtypes=[np.float32]),
        *case("too-large-for-float32", {"sample_weight": with_weight(2, 1e39)},
              r"sample_weight\[2\] = 1e\+39 is too large for float32", dtypes=[np.float32]),
        *case("complex", {"sample_weight": ones.astype(complex)}, r"sample_weight.*complex",
              exc=TypeError),
        *case("bool", {"sample_weight": ones > 0}, r"sample_weight.*bool", exc=TypeError),
        *case("strings", {"sample_weight": ["1"] * 8}, r"sample_weight", exc=TypeError),
        *case("nan-X-in-a-zero-weight-batch",
              {"sample_weight": with_weight(1, 0.0) * with_weight(0, 0.0), "shuffle": False},
              r"X contains NaN or inf", data=(nan_X, y)),
        *case("validation-weights-negative",
              {"validation_data": (X, y, with_weight(2, -3.0))},
              r"validation_data sample_weight must hold finite weights >= 0"),
        *case("validation-weights-length", {"validation_data": (X, y, ones[:3])},
              r"validation_data sample_weight must be 1-D"),
        *case("carved-training-weights-all-zero",
              {"sample_weight": on_val, "validation_fraction": 0.375, "seed": 0},
              r"the training rows validation_fraction leaves all have sample_weight 0"),
        *case("carved-validation-weights-all-zero",
              {"sample_weight": 1.0 - on_val, "validation_fraction": 0.375, "seed": 0},
              r"the validation rows validation_fraction leaves all have sample_weight 0"),
    ]


@pytest.mark.parametrize(("data", "kwargs", "exc", "pattern", "dtype"), refusals())
def test_refused_weights_change_nothing(data, kwargs, exc, pattern, dtype):
    net = Network([3, 4, 3], dtype=dtype, seed=0)
    saved = weights_of(net)
    with pytest.raises(exc, match=pattern):
        net.fit(*data, epochs=2, batch_size=2, learning_rate=0.5, **kwargs)
    assert_bit_identical(net, saved)


def test_float64_takes_weights_too_large_for_float32():
    X, y = np.random.default_rng(0).uniform(size=(4, 3)), np.array([0, 1, 2, 0])
    net = Network([3, 4, 3], dtype="float64", seed=0)
    history = net.fit(X, y, epochs=1, batch_size=4, learning_rate=0.5,
                      sample_weight=[1e39, 1e39, 2e39, 1e39])
    assert np.isfinite(history["loss"][0])


def test_the_compiled_epoch_refuses_weights_it_cannot_read():
    # fit never passes these; the compiled entry point must still refuse them
    from dlfr import _kernels

    net = Network([4, 3, 2], seed=0)
    weights, biases, n_outs, acts = net.kernel_layers
    trainer = _kernels.Trainer([4, 3], [16, 16], 2, 2, 4)
    X, Y, order = np.zeros((5, 4), np.float32), np.zeros((5, 2), np.float32), np.arange(5)
    before = [p.copy() for p in weights + biases]
    for w in (np.ones(4, np.float32), np.ones(5, np.float64), np.ones((5, 1), np.float32),
              np.ones(10, np.float32)[::2], [1.0] * 5):
        with pytest.raises(ValueError, match="sample_weight must be a C-contiguous"):
            trainer.epoch(weights, biases, n_outs, acts, X, Y, order, 0.1, 0, None, w)
    for p, p0 in zip(weights + biases, before, strict=True):
        np.testing.assert_array_equal(p, p0)
