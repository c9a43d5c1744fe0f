"""Tests for dlfr.perceptron: the step-function perceptron and its learning rule."""

import numpy as np
import pytest
from conftest import DTYPES

from dlfr.datasets import logic_gate, xor
from dlfr.perceptron import Perceptron

SEEDS = range(10)


@pytest.mark.parametrize("gate", ["and", "or", "nand"])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_learns_linearly_separable_gates(gate, seed, dtype):
    X, y = logic_gate(gate, dtype=dtype)
    p = Perceptron(2, seed=seed, dtype=dtype)
    history = p.fit(X, y)
    assert p.converged_
    assert history[-1] == 0
    assert all(m > 0 for m in history[:-1])
    assert p.predict(X).tolist() == y.tolist()
    assert p.evaluate(X, y) == 1.0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shuffle", [True, False])
def test_never_learns_xor(seed, shuffle):
    X, y = xor()
    p = Perceptron(2, seed=seed)
    history = p.fit(X, y, epochs=1000, shuffle=shuffle)
    assert not p.converged_
    assert len(history) == 1000
    assert min(history) > 0
    assert p.evaluate(X, y) < 1.0
    assert (p.predict(X) != y).any()


def test_attributes_and_initialisation():
    p = Perceptron(5, seed=0)
    assert p.W.shape == (5,)
    assert p.W.dtype == np.float32
    assert isinstance(p.b, float)
    assert p.n_features == 5
    assert p.converged_ is False
    # Small random numbers, not zeros and not all equal.
    assert np.abs(p.W).max() < 0.1
    assert len(set(p.W.tolist())) == 5
    assert Perceptron(3, dtype="float64").W.dtype == np.float64


def test_predict_is_step_of_weighted_sum():
    p = Perceptron(3, seed=1, dtype="float64")
    p.W = np.array([1.0, -2.0, 0.5])
    p.b = -0.5
    X = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.0, 0.0]])
    # Sums: 0.5, -2.5, 0.0, 0.0 -> step gives 1 at exactly zero.
    np.testing.assert_array_equal(p.decision_function(X), [0.5, -2.5, 0.0, 0.0])
    result = p.predict(X)
    assert result.dtype == np.int64
    assert result.tolist() == [1, 0, 1, 1]
    assert p.evaluate(X, [1, 0, 0, 1]) == 0.75


def test_one_update_follows_the_rule():
    # A single mistake on one sample: W += lr * (y - yhat) * x, b += lr * (y - yhat).
    p = Perceptron(2, seed=0, dtype="float64")
    p.W = np.array([0.0, 0.0])
    p.b = 0.0  # predicts 1 for everything
    x = np.array([[2.0, 3.0]])
    history = p.fit(x, [0], epochs=1, learning_rate=0.5)
    assert history == [1]
    np.testing.assert_array_equal(p.W, [-1.0, -1.5])
    assert p.b == -0.5
    assert p.converged_ is False
    # The next epoch makes no mistake and stops.
    assert p.fit(x, [0], epochs=5) == [0]
    assert p.converged_ is True


def test_converged_means_training_data_are_classified():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 4))
    w_true = np.array([1.0, -2.0, 0.5, 3.0])
    margin = X @ w_true + 0.3
    keep = np.abs(margin) > 0.5  # a clear gap between the classes
    X, y = X[keep], (margin[keep] > 0).astype(int)
    for dtype in DTYPES:
        p = Perceptron(4, seed=0, dtype=dtype)
        p.fit(X, y, epochs=1000)
        assert p.converged_
        assert p.evaluate(X, y) == 1.0


def test_same_seed_same_run():
    X, y = logic_gate("or")
    runs = []
    for _ in range(2):
        p = Perceptron(2, seed=42)
        history = p.fit(X, y)
        runs.append((p.W.copy(), p.b, history))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1:] == runs[1][1:]


def test_generator_seed():
    a = Perceptron(4, seed=np.random.default_rng(7))
    b = Perceptron(4, seed=7)
    np.testing.assert_array_equal(a.W, b.W)
    assert a.b == b.b
    assert not np.array_equal(Perceptron(4, seed=8).W, b.W)


def test_fit_seed_fixes_the_order():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    results = []
    for init in (0, 1):
        p = Perceptron(3, seed=5)
        history = p.fit(X, y, epochs=3, seed=init)
        results.append((p.W.copy(), history))
    again = Perceptron(3, seed=5)
    history = again.fit(X, y, epochs=3, seed=0)
    np.testing.assert_array_equal(again.W, results[0][0])
    assert history == results[0][1]


def test_int_inputs_are_converted():
    p = Perceptron(2, seed=0, dtype="float64")
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    p.fit(X, [0, 0, 0, 1])
    assert p.W.dtype == np.float64
    assert p.predict(X).tolist() == [0, 0, 0, 1]


def test_float_targets_of_zero_and_one():
    X, y = logic_gate("and")
    p = Perceptron(2, seed=0)
    p.fit(X, y.astype(np.float64))
    assert p.evaluate(X, y.astype(np.float32)) == 1.0


def test_repr():
    assert repr(Perceptron(3)) == "Perceptron(n_features=3, dtype='float32')"


# --- refused calls leave the model unchanged -----------------------------------

X4, Y4 = logic_gate("and")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"X": X4[:, :1]}, ValueError, r"X must have shape \(n_samples, 2\)"),
        ({"X": X4[0]}, ValueError, r"X must have shape .* got shape \(2,\)"),
        ({"X": X4[None]}, ValueError, "X must have shape"),
        ({"X": np.where(X4 == 1, np.nan, X4)}, ValueError, "X holds NaN or infinity"),
        ({"X": np.where(X4 == 1, np.inf, X4)}, ValueError, "X holds NaN or infinity"),
        ({"X": np.full((4, 2), 1e300)}, ValueError, "too large for float32"),
        ({"X": X4.astype(bool)}, TypeError, r"X must hold real numbers .*; got dtype bool"),
        ({"X": X4.astype(complex)}, TypeError, "X .* complex128"),
        ({"X": X4.astype(object)}, TypeError, "X .* object"),
        ({"X": np.zeros((0, 2))}, ValueError, "X must hold at least one sample"),
        ({"y": Y4[:3]}, ValueError, r"y must have shape \(4,\)"),
        ({"y": Y4[:, None]}, ValueError, r"y must have shape \(4,\)"),
        ({"y": np.array([0, 1, 2, 0])}, ValueError, r"y must hold only 0 and 1, got y\[2\] = 2"),
        ({"y": np.array([0, -1, 1, 0])}, ValueError, r"y\[1\] = -1"),
        ({"y": np.array([0, 0.5, 1, 0])}, ValueError, r"y\[1\] = 0.5"),
        ({"y": np.array([0, np.nan, 1, 0])}, ValueError, r"y\[1\] = nan"),
        ({"y": Y4.astype(bool)}, TypeError, "y .* bool"),
        ({"y": Y4.astype(str)}, TypeError, "y .* <U"),
        ({"epochs": 0}, ValueError, "epochs must be at least 1"),
        ({"epochs": -5}, ValueError, "epochs"),
        ({"epochs": 2.5}, TypeError, "epochs must be an int"),
        ({"epochs": True}, TypeError, "epochs"),
        ({"learning_rate": 0}, ValueError, "learning_rate"),
        ({"learning_rate": -0.1}, ValueError, "learning_rate"),
        ({"learning_rate": float("nan")}, ValueError, "learning_rate"),
        ({"learning_rate": float("inf")}, ValueError, "learning_rate"),
        ({"learning_rate": "1"}, ValueError, "learning_rate"),
    ],
)
def test_refused_fit_leaves_weights_unchanged(kwargs, error, match):
    p = Perceptron(2, seed=0)
    W, b = p.W.copy(), p.b
    call = {"X": X4, "y": Y4, **kwargs}
    with pytest.raises(error, match=match):
        p.fit(**call)
    np.testing.assert_array_equal(p.W, W)
    assert p.b == b
    assert p.converged_ is False


def test_refused_fit_keeps_a_trained_model():
    p = Perceptron(2, seed=0)
    p.fit(X4, Y4)
    W, b = p.W.copy(), p.b
    with pytest.raises(ValueError):
        p.fit(X4, [0, 0, 0, 3])
    np.testing.assert_array_equal(p.W, W)
    assert p.b == b
    assert p.converged_ is True


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [
        (np.zeros((3, 3)), ValueError, r"X must have shape \(n_samples, 2\), got shape \(3, 3\)"),
        (np.array([[0.0, np.nan]]), ValueError, "X holds NaN"),
        (np.array([["a", "b"]]), TypeError, "X must hold real numbers"),
    ],
)
def test_predict_validates(X, error, match):
    p = Perceptron(2, seed=0)
    with pytest.raises(error, match=match):
        p.predict(X)


def test_evaluate_validates_y():
    p = Perceptron(2, seed=0)
    with pytest.raises(ValueError, match=r"y must have shape \(4,\)"):
        p.evaluate(X4, [0, 1])


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((0,), ValueError),
        ((-1,), ValueError),
        ((2.0,), TypeError),
        ((True,), TypeError),
        ((2, None, "float16"), ValueError),
        ((2, None, "int32"), ValueError),
        ((2, None, None), ValueError),
    ],
)
def test_constructor_validates(args, error):
    with pytest.raises(error):
        Perceptron(*args)
