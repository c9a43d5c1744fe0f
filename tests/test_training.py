"""Tests of training (``Network.fit``, :mod:`dlfr.training`).

The compiled epoch is checked three ways:

* against the documented losses themselves: one full-batch step must move
  every parameter by ``-learning_rate * dC/dparameter``, the gradient taken
  by central finite differences of the loss evaluated with the plain-NumPy
  forward pass (:func:`dlfr._reference.forward`);
* against a plain-NumPy twin of backpropagation and mini-batch gradient
  descent (``sgd_twin`` below), epoch for epoch, batch for batch;
* end to end: XOR with two hidden sigmoid neurons, and the 784-16-10
  digit network.

Then reproducibility, the history, every refused argument (the weights must
be bit-identical after a refused call) and the progress bar.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DTYPES, arch_id, dtype_id

import dlfr
from dlfr import Network
from dlfr import _reference as ref

#: dlfr's weights after training against the twin's (run in float64 from
#: the same starting weights).
TWIN_TOL = {
    np.float32: {"rtol": 1e-4, "atol": 1e-5},
    np.float64: {"rtol": 1e-10, "atol": 1e-12},
}
#: The per-epoch loss and accuracy of the history against the twin's.
HISTORY_TOL = {
    np.float32: {"rtol": 1e-5, "atol": 1e-6},
    np.float64: {"rtol": 1e-12, "atol": 1e-14},
}


# ---- the plain-NumPy twin ------------------------------------------------------


def cost(a, Y, loss, output):
    """The documented loss, summed over the rows (not yet divided by n)."""
    if loss == "mse":
        return 0.5 * np.sum((a - Y) ** 2)
    if output == "softmax":
        return -np.sum(Y * np.log(a))
    return -np.sum(Y * np.log(a) + (1 - Y) * np.log(1 - a))


def derivative(activation, a):
    """f'(z) of an activation, from its output a = f(z)."""
    if activation == "sigmoid":
        return a * (1 - a)
    if activation == "tanh":
        return 1 - a * a
    if activation == "relu":
        return (a > 0).astype(a.dtype)
    if activation == "leaky_relu":  # a has z's sign
        return np.where(a > 0, 1.0, 0.01).astype(a.dtype)
    if activation == "elu":  # e^z = a + 1 below 0
        return np.where(a > 0, 1.0, a + 1).astype(a.dtype)
    assert activation == "identity"
    return np.ones_like(a)


def snapshot(net):
    """Copies of the weights and biases, in float64, and the activations."""
    return (
        [layer.W.astype(np.float64) for layer in net.layers],
        [layer.b.astype(np.float64) for layer in net.layers],
        [layer.activation for layer in net.layers],
    )


def sgd_twin(net, X, Y, *, epochs, batch_size, learning_rate, loss):
    """Backpropagation and mini-batch SGD in plain NumPy (float64), rows in order.

    Returns the final weights and biases and, per epoch, the mean loss and the
    accuracy over the mini-batches, each taken before that batch's step.
    """
    Ws, bs, acts = snapshot(net)
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    n = len(X)
    history = {"loss": [], "accuracy": []}
    for _ in range(epochs):
        total, hits = 0.0, 0
        for start in range(0, n, batch_size):
            Xb, Yb = X[start:start + batch_size], Y[start:start + batch_size]
            m = len(Xb)
            outs = ref.forward(Xb, Ws, bs, acts, return_all=True)
            a = outs[-1]
            total += cost(a, Yb, loss, acts[-1])
            if a.shape[1] == 1:
                hits += int(np.sum((a[:, 0] >= 0.5) == (Yb[:, 0] >= 0.5)))
            else:
                hits += int(np.sum(a.argmax(axis=1) == Yb.argmax(axis=1)))
            delta = a - Yb
            if loss == "mse":
                delta = delta * derivative(acts[-1], a)
            for layer in range(len(Ws) - 1, -1, -1):
                inputs = outs[layer - 1] if layer > 0 else Xb
                grad_W = inputs.T @ delta / m
                grad_b = delta.sum(axis=0) / m
                if layer > 0:  # through the weights as they were before this step
                    delta = (delta @ Ws[layer].T) * derivative(acts[layer - 1], inputs)
                Ws[layer] = Ws[layer] - learning_rate * grad_W
                bs[layer] = bs[layer] - learning_rate * grad_b
        history["loss"].append(total / n)
        history["accuracy"].append(hits / n)
    return Ws, bs, history


def assert_weights(net, Ws, bs, tol):
    for layer, W, b in zip(net.layers, Ws, bs, strict=True):
        np.testing.assert_allclose(layer.W, W, **tol)
        np.testing.assert_allclose(layer.b, b, **tol)


def weights_of(net):
    return [(layer.W.copy(), layer.b.copy()) for layer in net.layers]


def assert_bit_identical(net, saved):
    for layer, (W, b) in zip(net.layers, saved, strict=True):
        assert np.array_equal(layer.W, W) and np.array_equal(layer.b, b)


# ---- the gradient, by finite differences of the documented loss ----------------

GRADIENT_LOSSES = [
    ("mse", "sigmoid"),
    ("mse", "identity"),
    ("mse", "tanh"),
    ("mse", "leaky_relu"),
    ("mse", "elu"),
    ("cross_entropy", "sigmoid"),
    ("cross_entropy", "softmax"),
]
GRADIENT_SIZES = {1: [3, 4, 2], 2: [3, 4, 3, 2], 3: [3, 4, 3, 4, 2]}
#: Finite-difference step. The fourth-order central difference
#: (-C(p+2h) + 8C(p+h) - 8C(p-h) + C(p-2h)) / 12h has truncation error
#: O(h^4) ~ 1e-16 and rounding error ~ eps/h ~ 1e-12 here. (The plain
#: (C(p+h) - C(p-h)) / 2h with h = 1e-6 has rounding errors up to 3e-7 of
#: the smallest gradients of these deep sigmoid networks: too close to 1e-6.)
FD_STEP = 1e-4
#: Pre-activations of these must be this far from 0, where f' (ReLU, leaky ReLU)
#: or f'' (ELU) jumps and a finite difference across it would be off.
KINKED = ("relu", "leaky_relu", "elu")
KINK_MARGIN = 0.05


def mean_cost(X, Y, Ws, bs, acts, loss):
    return cost(ref.forward(X, Ws, bs, acts), Y, loss, acts[-1]) / len(X)


def finite_difference_gradient(X, Y, Ws, bs, acts, loss):
    grads = []
    for params in (*Ws, *bs):
        grad = np.zeros_like(params)
        for idx in np.ndindex(params.shape):
            original = params[idx]
            values = []
            for k in (2, 1, -1, -2):
                params[idx] = original + k * FD_STEP
                values.append(mean_cost(X, Y, Ws, bs, acts, loss))
            params[idx] = original
            grad[idx] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * FD_STEP)
        grads.append(grad)
    return grads[: len(Ws)], grads[len(Ws):]


def clear_of_kinks(net, X):
    """No pre-activation of a KINKED layer within KINK_MARGIN of 0, and some of
    each layer on either side of it (a ReLU alive, the other branch taken)."""
    a = X
    for layer in net.layers:
        z = a @ layer.W + layer.b
        if layer.activation in KINKED and (np.abs(z).min() < KINK_MARGIN
                                           or np.all(z < 0) or np.all(z > 0)):
            return False
        a = ref.ACTIVATIONS[layer.activation](z)
    return True


def gradient_problem(n_hidden, hidden, output, loss):
    """A small float64 network and 5 samples, the targets to suit the loss."""
    sizes = GRADIENT_SIZES[n_hidden]
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        net = Network(sizes, activation=hidden, output_activation=output,
                      dtype="float64", seed=seed)
        X = rng.normal(0.0, 1.0, (5, sizes[0]))
        if clear_of_kinks(net, X):
            break
    else:  # pragma: no cover
        raise AssertionError("no sample clear of the kinks")
    if output == "softmax":
        Y = dlfr.datasets.one_hot(rng.integers(0, 2, 5), 2, dtype="float64")
    elif output == "sigmoid":
        Y = rng.uniform(0.05, 0.95, (5, 2))  # cross-entropy takes soft targets
    else:
        Y = rng.uniform(-0.9, 0.9, (5, 2))
    return net, X, Y


@pytest.mark.parametrize(("loss", "output"), GRADIENT_LOSSES)
@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "identity", "leaky_relu", "elu"])
@pytest.mark.parametrize("n_hidden", [1, 2, 3])
def test_one_step_follows_the_gradient_of_the_loss(n_hidden, hidden, output, loss):
    """One full-batch step moves every parameter by -lr * dC/dp (1e-6 relative)."""
    net, X, Y = gradient_problem(n_hidden, hidden, output, loss)
    Ws, bs, acts = snapshot(net)
    grad_W, grad_b = finite_difference_gradient(X, Y, [W.copy() for W in Ws],
                                                [b.copy() for b in bs], acts, loss)
    lr = 0.5
    history = net.fit(X, Y, epochs=1, batch_size=len(X), shuffle=False,
                      learning_rate=lr, loss=loss)
    for layer, W0, b0, gW, gb in zip(net.layers, Ws, bs, grad_W, grad_b, strict=True):
        for name, moved, grad in (("W", layer.W - W0, gW), ("b", layer.b - b0, gb)):
            expected = -lr * grad
            scale = np.abs(expected).max()
            assert scale > 1e-8, f"{name}: a vanishing gradient checks nothing"
            np.testing.assert_allclose(moved, expected, rtol=1e-6, atol=1e-6 * scale,
                                       err_msg=name)
    # the epoch's loss is the documented loss at the starting weights
    np.testing.assert_allclose(history["loss"][0], mean_cost(X, Y, Ws, bs, acts, loss),
                               rtol=1e-12)


# ---- against the NumPy twin -------------------------------------------------------

#: (sizes, hidden activation, output activation, loss): narrow and wide
#: layers (n_out > 64 goes to BLAS), widths of 1 and one past a panel.
#: (Float32 needs well-conditioned cases: a tanh output saturated at -0.997
#: makes 1 - a^2 lose digits, and a NumPy float32 twin then drifts from the
#: float64 one by 1e-4 within 9 steps, more than dlfr does.)
TWIN_CASES = [
    ([2, 2, 1], "sigmoid", "sigmoid", "mse"),
    ([784, 16, 10], "sigmoid", "sigmoid", "mse"),
    ([5, 17, 65, 3], "tanh", "softmax", "cross_entropy"),
    ([4, 64, 65, 1], "relu", "sigmoid", "mse"),
    ([6, 100, 1, 4], "sigmoid", "tanh", "mse"),
    ([3, 70, 16, 2], "sigmoid", "sigmoid", "cross_entropy"),
    ([7, 33, 5], "identity", "sigmoid", "mse"),
    ([5, 17, 65, 3], "leaky_relu", "softmax", "cross_entropy"),
    ([4, 20, 18, 2], "elu", "elu", "mse"),
    ([6, 33, 3], "elu", "leaky_relu", "mse"),
]


def twin_problem(sizes, output, dtype, n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, (n, sizes[0])).astype(dtype)
    if output in ("identity", "tanh", "leaky_relu", "elu"):
        y = rng.uniform(-0.5, 0.5, (n, sizes[-1])).astype(dtype)  # regression rows
        Y = y
    else:
        y = rng.integers(0, max(sizes[-1], 2), n)  # integer labels
        Y = y.reshape(-1, 1) if sizes[-1] == 1 else dlfr.datasets.one_hot(y, sizes[-1])
    return X, y, np.asarray(Y, np.float64)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize(("sizes", "hidden", "output", "loss"), TWIN_CASES,
                         ids=[arch_id(c[0]) for c in TWIN_CASES])
def test_full_batch_epoch_is_one_gradient_step(sizes, hidden, output, loss, dtype):
    net = Network(sizes, activation=hidden, output_activation=output, dtype=dtype, seed=1)
    X, y, Y = twin_problem(sizes, output, dtype, n=40)
    Ws, bs, twin_history = sgd_twin(net, X, Y, epochs=1, batch_size=40, learning_rate=0.5,
                                    loss=loss)
    history = net.fit(X, y, epochs=1, batch_size=40, learning_rate=0.5, loss=loss,
                      shuffle=False)
    assert_weights(net, Ws, bs, TWIN_TOL[dtype])
    np.testing.assert_allclose(history["loss"], twin_history["loss"], **HISTORY_TOL[dtype])
    assert history["accuracy"] == twin_history["accuracy"]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize(("sizes", "hidden", "output", "loss"), TWIN_CASES,
                         ids=[arch_id(c[0]) for c in TWIN_CASES])
def test_mini_batch_epochs_are_sequential_steps(sizes, hidden, output, loss, dtype):
    """Batches of 3 from 8 rows in order (3, 3, then 2), for three epochs."""
    net = Network(sizes, activation=hidden, output_activation=output, dtype=dtype, seed=2)
    X, y, Y = twin_problem(sizes, output, dtype, n=8, seed=1)
    Ws, bs, twin_history = sgd_twin(net, X, Y, epochs=3, batch_size=3, learning_rate=0.3,
                                    loss=loss)
    history = net.fit(X, y, epochs=3, batch_size=3, learning_rate=0.3, loss=loss,
                      shuffle=False)
    assert_weights(net, Ws, bs, TWIN_TOL[dtype])
    np.testing.assert_allclose(history["loss"], twin_history["loss"], **HISTORY_TOL[dtype])
    assert history["accuracy"] == twin_history["accuracy"]
    # after training, the forward pass still agrees with the oracle
    np.testing.assert_allclose(net.forward(X), ref.forward(X.astype(np.float64), Ws, bs,
                               [layer.activation for layer in net.layers]),
                               **TWIN_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_batch_larger_than_the_data_is_one_batch(dtype):
    sizes = [4, 6, 3]
    a = Network(sizes, dtype=dtype, seed=0)
    b = Network(sizes, dtype=dtype, seed=0)
    X, y, _ = twin_problem(sizes, "sigmoid", dtype, n=10)
    a.fit(X, y, epochs=2, batch_size=10, learning_rate=1.0, shuffle=False)
    b.fit(X, y, epochs=2, batch_size=1000, learning_rate=1.0, shuffle=False)
    assert_bit_identical(b, weights_of(a))


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_shuffling_a_full_batch_changes_only_rounding(dtype):
    sizes = [5, 20, 3]
    a = Network(sizes, dtype=dtype, seed=0)
    b = Network(sizes, dtype=dtype, seed=0)
    X, y, _ = twin_problem(sizes, "sigmoid", dtype, n=30)
    a.fit(X, y, epochs=1, batch_size=30, learning_rate=1.0, shuffle=False)
    b.fit(X, y, epochs=1, batch_size=30, learning_rate=1.0, shuffle=True, seed=5)
    for la, lb in zip(a.layers, b.layers, strict=True):
        np.testing.assert_allclose(lb.W, la.W, **TWIN_TOL[dtype])
        np.testing.assert_allclose(lb.b, la.b, **TWIN_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_labels_one_hot_rows_and_float_labels_train_alike(dtype):
    sizes = [6, 9, 4]
    X, y, _ = twin_problem(sizes, "sigmoid", dtype, n=25)
    results = []
    for targets in (y, dlfr.datasets.one_hot(y, 4), y.astype(np.float64), list(y)):
        net = Network(sizes, dtype=dtype, seed=3)
        history = net.fit(X, targets, epochs=2, batch_size=4, learning_rate=1.0, seed=0)
        results.append((weights_of(net), history))
    for weights, history in results[1:]:
        assert history == results[0][1]
        for (W, b), (W0, b0) in zip(weights, results[0][0], strict=True):
            assert np.array_equal(W, W0) and np.array_equal(b, b0)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_uint8_input_trains_on_pixels_over_255(dtype):
    """fit reads uint8 X as forward does: multiplied by 1/255."""
    sizes = [12, 5, 3]
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 12), dtype=np.uint8)
    y = rng.integers(0, 3, 20)
    a = Network(sizes, dtype=dtype, seed=0)
    b = Network(sizes, dtype=dtype, seed=0)
    ha = a.fit(pixels, y, epochs=2, batch_size=5, learning_rate=1.0, seed=1,
               validation_data=(pixels, y))
    hb = b.fit(pixels.astype(dtype) * np.dtype(dtype).type(1 / 255), y, epochs=2,
               batch_size=5, learning_rate=1.0, seed=1,
               validation_data=(pixels.astype(np.float64) / 255, y))
    assert_bit_identical(b, weights_of(a))
    assert ha["loss"] == hb["loss"] and ha["accuracy"] == hb["accuracy"]
    np.testing.assert_allclose(ha["val_loss"], hb["val_loss"], **HISTORY_TOL[dtype])
    assert ha["val_accuracy"][-1] == a.evaluate(pixels, y)


# ---- seeds and the history ----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_same_seed_same_run(dtype):
    sizes = [8, 20, 70, 3]
    X, y, _ = twin_problem(sizes, "softmax", dtype, n=50)
    runs = []
    for fit_seed in (7, 7, np.random.default_rng(7), 8):
        net = Network(sizes, activation="tanh", output_activation="softmax", dtype=dtype,
                      seed=11)
        history = net.fit(X, y, epochs=3, batch_size=7, learning_rate=0.2,
                          loss="cross_entropy", seed=fit_seed,
                          validation_data=(X[:10], y[:10]))
        runs.append((weights_of(net), history))
    for weights, history in runs[1:3]:
        assert history == runs[0][1]
        for (W, b), (W0, b0) in zip(weights, runs[0][0], strict=True):
            assert np.array_equal(W, W0) and np.array_equal(b, b0)
    assert runs[3][1] != runs[0][1]
    assert not np.array_equal(runs[3][0][0][0], runs[0][0][0][0])


def test_history_keys_and_lengths():
    X, y = dlfr.datasets.xor("float64")
    net = Network([2, 3, 1], dtype="float64", seed=0)
    history = net.fit(X, y, epochs=4, batch_size=2, learning_rate=1.0, seed=0)
    assert list(history) == ["loss", "accuracy"]
    assert all(len(v) == 4 for v in history.values())
    assert all(isinstance(v, float) for values in history.values() for v in values)
    assert all(0 <= v <= 1 for v in history["accuracy"])
    assert all(np.isfinite(v) and v > 0 for v in history["loss"])

    Xv, yv = X[::-1].copy(), y[::-1].copy()
    history = net.fit(X, y, epochs=3, batch_size=4, learning_rate=1.0,
                      validation_data=(Xv, yv))
    assert list(history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(v) == 3 for v in history.values())
    # after the last epoch: the documented loss and the accuracy of the final weights
    Ws, bs, acts = snapshot(net)
    expected = mean_cost(Xv, yv.reshape(-1, 1).astype(np.float64), Ws, bs, acts, "mse")
    np.testing.assert_allclose(history["val_loss"][-1], expected, rtol=1e-12)
    assert history["val_accuracy"][-1] == net.evaluate(Xv, yv)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_cross_entropy_validation_loss(dtype):
    sizes = [5, 7, 3]
    X, y, Y = twin_problem(sizes, "softmax", dtype, n=30)
    for output in ("softmax", "sigmoid"):
        net = Network(sizes, output_activation=output, dtype=dtype, seed=0)
        history = net.fit(X, y, epochs=2, batch_size=8, learning_rate=0.5,
                          loss="cross_entropy", validation_data=(X, Y))
        Ws, bs, acts = snapshot(net)
        np.testing.assert_allclose(
            history["val_loss"][-1], mean_cost(X.astype(np.float64), Y, Ws, bs, acts,
                                               "cross_entropy"),
            rtol=1e-5 if dtype == np.float32 else 1e-12,
        )


# ---- end to end ------------------------------------------------------------------------

#: XOR with the recipe: seeds 0-19 of float32 2-2-1 sigmoid networks solved
#: (4/4 right). Measured: 16 of 20 (seeds 2, 6, 13 and 14 stay in a local
#: minimum), the same 16 in float64.
XOR_SOLVED_MEASURED = 16
XOR_SOLVED_REQUIRED = 15


@pytest.mark.slow
def test_xor_with_two_hidden_sigmoid_neurons():
    """2-2-1 sigmoid, mse, 5000 epochs of batch 4 at learning rate 5.0.

    Measured: 16 of the seeds 0-19 reach 4/4 (seeds 2, 6, 13 and 14 do
    not); at least 15 are required.
    """
    X, y = dlfr.datasets.xor()
    solved = []
    for seed in range(20):
        net = Network([2, 2, 1], seed=seed)
        history = net.fit(X, y, epochs=5000, batch_size=4, learning_rate=5.0, loss="mse",
                          seed=seed)
        assert len(history["loss"]) == 5000
        if net.evaluate(X, y) == 1.0:
            assert np.array_equal(net.predict(X), y)
            solved.append(seed)
    assert len(solved) >= XOR_SOLVED_REQUIRED, solved


@pytest.mark.slow
def test_mnist_digits_784_16_10():
    """The full recipe: 30 epochs, batch 10, lr 3.0, mse, float32 (about 0.3 s).

    Trained on the first 8,000 bundled digits, tested on the last 2,000.
    Measured with the AVX-512 kernels: 0.9465 test accuracy (seed 0; seeds
    1-4 give 0.9325-0.9435, float64 0.935-0.9405); at least 0.92 is required.
    """
    X, y = dlfr.datasets.load_mnist()
    assert X.dtype == np.float32 and X.shape == (10000, 784)
    net = Network([784, 16, 10], seed=0)
    history = net.fit(X[:8000], y[:8000], epochs=30, batch_size=10, learning_rate=3.0,
                      loss="mse", seed=0, validation_data=(X[8000:], y[8000:]))
    accuracy = net.evaluate(X[8000:], y[8000:])
    assert accuracy >= 0.92
    assert history["val_accuracy"][-1] == accuracy
    assert history["loss"][-1] < history["loss"][0]
    assert history["accuracy"][-1] > 0.9


@pytest.mark.parametrize("activation", ["leaky_relu", "elu"])
def test_digits_learnt_with_leaky_relu_and_elu_hidden_layers(activation):
    """784-32-10, softmax and cross-entropy, 5 epochs of batch 10 at lr 0.1 on
    the first 2,000 bundled digits (about 0.1 s).

    Measured on the last 2,000 (seeds 0-2): leaky_relu 0.8915, 0.8835,
    0.8815; elu 0.886, 0.884, 0.884 (relu 0.891, sigmoid 0.8785); at least
    0.85 is required with seed 0.
    """
    X, y = dlfr.datasets.load_mnist()
    net = Network([784, 32, 10], activation=activation, output_activation="softmax", seed=0)
    history = net.fit(X[:2000], y[:2000], epochs=5, batch_size=10, learning_rate=0.1,
                      loss="cross_entropy", seed=0)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert net.evaluate(X[8000:], y[8000:]) >= 0.85


# ---- refused calls ------------------------------------------------------------------------


def refusals():
    """(description, network factory, fit keyword arguments, exception, pattern)."""
    X = np.random.default_rng(0).uniform(size=(6, 3))
    y = np.array([0, 1, 2, 0, 1, 2])
    base = {"X": X, "y": y, "epochs": 2, "batch_size": 2, "learning_rate": 0.5}
    sig = {"sizes_or_layers": [3, 4, 3]}

    def case(name, changes, exc, pattern, net=sig):
        return pytest.param(net, {**base, **changes}, exc, pattern, id=name)

    nan_X = X.copy()
    nan_X[2, 1] = np.nan
    inf_X = X.copy()
    inf_X[0, 0] = -np.inf
    both_X = inf_X.copy()
    both_X[1, 1] = np.inf  # their sum is NaN
    return [
        case("X-y-lengths", {"y": y[:5]}, ValueError, r"X has 6 rows but y has 5"),
        case("label-too-big", {"y": [0, 1, 3, 0, 1, 2]}, ValueError, r"\by\b.*label 3"),
        case("label-negative", {"y": [0, 1, -1, 0, 1, 2]}, ValueError, r"\by\b.*label -1"),
        case("label-not-whole", {"y": [0, 1, 1.5, 0, 1, 2]}, ValueError, r"\by\b.*whole"),
        case("label-2-for-one-output", {"y": [0, 1, 2, 0, 1, 1]}, ValueError,
             r"\by\b.*0 or 1", net={"sizes_or_layers": [3, 4, 1]}),
        case("y-columns", {"y": np.zeros((6, 2))}, ValueError, r"\by\b has 2 columns"),
        case("y-3d", {"y": np.zeros((6, 3, 1))}, ValueError, r"\by\b.*shape"),
        case("y-nan-rows", {"y": np.full((6, 3), np.nan)}, ValueError, r"\by\b.*NaN"),
        case("y-complex", {"y": y.astype(complex)}, TypeError, r"\by\b.*complex"),
        case("features", {"X": X[:, :2]}, ValueError, r"X has 2 features.*expects 3"),
        case("X-1d", {"X": X[:, 0]}, ValueError, r"X must be 2-D"),
        case("X-nan", {"X": nan_X}, ValueError, r"X contains NaN or inf"),
        case("X-inf", {"X": inf_X}, ValueError, r"X contains NaN or inf"),
        case("X-inf-both-signs", {"X": both_X}, ValueError, r"X contains NaN or inf"),
        case("X-complex", {"X": X.astype(complex)}, TypeError, r"\bX\b.*complex"),
        case("X-bool", {"X": X > 0.5}, TypeError, r"\bX\b.*bool"),
        case("X-object", {"X": X.astype(object)}, TypeError, r"\bX\b.*object"),
        case("X-empty", {"X": X[:0], "y": y[:0]}, ValueError, r"\bX\b.*empty"),
        case("epochs-0", {"epochs": 0}, ValueError, r"epochs must be a positive integer"),
        case("epochs-negative", {"epochs": -3}, ValueError, r"epochs must be"),
        case("epochs-float", {"epochs": 2.0}, ValueError, r"epochs must be"),
        case("epochs-str", {"epochs": "2"}, ValueError, r"epochs must be"),
        case("epochs-bool", {"epochs": True}, ValueError, r"epochs must be"),
        case("epochs-none", {"epochs": None}, ValueError, r"epochs must be"),
        case("batch-0", {"batch_size": 0}, ValueError, r"batch_size must be a positive"),
        case("batch-float", {"batch_size": 2.5}, ValueError, r"batch_size must be"),
        case("batch-str", {"batch_size": "2"}, ValueError, r"batch_size must be"),
        case("lr-0", {"learning_rate": 0}, ValueError, r"learning_rate must be a positive"),
        case("lr-negative", {"learning_rate": -0.1}, ValueError, r"learning_rate must be"),
        case("lr-nan", {"learning_rate": float("nan")}, ValueError, r"learning_rate must be"),
        case("lr-inf", {"learning_rate": float("inf")}, ValueError, r"learning_rate must be"),
        case("lr-str", {"learning_rate": "0.5"}, ValueError, r"learning_rate must be"),
        case("lr-none", {"learning_rate": None}, ValueError, r"learning_rate must be"),
        case("lr-complex", {"learning_rate": 0.5j}, ValueError, r"learning_rate must be"),
        case("loss-unknown", {"loss": "hinge"}, ValueError, r"loss must be one of.*hinge"),
        case("loss-none", {"loss": None}, ValueError, r"loss must be one of"),
        case("cross-entropy-identity", {"loss": "cross_entropy"}, ValueError,
             r"cross_entropy.*'identity'",
             net={"sizes_or_layers": [3, 4, 3], "output_activation": "identity"}),
        case("cross-entropy-tanh", {"loss": "cross_entropy"}, ValueError,
             r"cross_entropy.*'tanh'", net={"sizes_or_layers": [3, 4, 3], "activation": "tanh"}),
        case("mse-softmax", {"loss": "mse"}, ValueError, r"softmax.*cross_entropy",
             net={"sizes_or_layers": [3, 4, 3], "output_activation": "softmax"}),
        case("step-hidden", {}, ValueError, r"step",
             net={"sizes_or_layers": [3, 4, 3], "activation": "step",
                  "output_activation": "sigmoid"}),
        case("step-output", {}, ValueError, r"step",
             net={"sizes_or_layers": [3, 4, 3], "output_activation": "step"}),
        case("softmax-hidden", {"loss": "cross_entropy"}, ValueError, r"softmax.*output",
             net={"sizes_or_layers": [3, 4, 3], "activation": "softmax"}),
        case("validation-not-a-pair", {"validation_data": (X,)}, ValueError,
             r"validation_data must be a pair"),
        case("validation-features", {"validation_data": (X[:, :2], y)}, ValueError,
             r"validation_data X has 2 features"),
        case("validation-labels", {"validation_data": (X, [5] * 6)}, ValueError,
             r"validation_data y.*label 5"),
        case("validation-lengths", {"validation_data": (X, y[:4])}, ValueError,
             r"validation_data X has 6 rows but validation_data y has 4"),
    ]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize(("net_args", "kwargs", "exc", "pattern"), refusals())
def test_refused_fit_changes_nothing(net_args, kwargs, exc, pattern, dtype):
    net = Network(**net_args, dtype=dtype, seed=0)
    saved = weights_of(net)
    kwargs = dict(kwargs)
    X, y = kwargs.pop("X"), kwargs.pop("y")
    with pytest.raises(exc, match=pattern):
        net.fit(X, y, **kwargs)
    assert_bit_identical(net, saved)


def test_large_finite_input_is_accepted_without_warnings():
    """X whose sum overflows float32 is still finite: fit takes it (warnings are errors)."""
    X = np.full((100, 2), 1e37, np.float32)
    X[:, 1] = 0
    y = np.arange(100) % 2
    net = Network([2, 3, 1], seed=0)
    history = net.fit(X, y, epochs=1, batch_size=100, learning_rate=0.1, shuffle=False)
    assert len(history["loss"]) == 1


# ---- progress -------------------------------------------------------------------------------


def test_quiet_by_default(capsys):
    X, y = dlfr.datasets.xor()
    Network([2, 2, 1], seed=0).fit(X, y, epochs=3, batch_size=4, learning_rate=1.0)
    Network([2, 2, 1], seed=0).fit(X, y, epochs=3, batch_size=4, learning_rate=1.0,
                                   verbose=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_shows_a_progress_bar(capsys):
    pytest.importorskip("tqdm")
    X, y = dlfr.datasets.xor()
    Network([2, 2, 1], seed=0).fit(X, y, epochs=3, batch_size=4, learning_rate=1.0,
                                   verbose=True, validation_data=(X, y))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "epochs" in captured.err and "3/3" in captured.err
    assert "100%" in captured.err
    assert "val_accuracy" in captured.err


def test_compiled_entry_points_refuse_what_they_cannot_read():
    # dlfr's own callers never pass these; the compiled entry points must
    # still refuse them rather than read past a buffer
    from dlfr import _kernels

    net = Network([4, 3, 2], seed=0)
    weights, biases, n_outs, acts = net.kernel_layers
    trainer = _kernels.Trainer([4, 3], [16, 16], 2, 2, 4)
    X, Y = np.zeros((5, 4), np.float32), np.zeros((5, 2), np.float32)
    before = [p.copy() for p in weights + biases]
    for order in (np.array([0, 1, 2, 3, 5]), np.array([0, 1, 2, 3, -1])):
        with pytest.raises(ValueError, match="order holds a row outside X"):
            trainer.epoch(weights, biases, n_outs, acts, X, Y, order, 0.1, 0)
    with pytest.raises(ValueError, match="int64"):
        trainer.epoch(weights, biases, n_outs, acts, X, Y, np.arange(5, dtype=np.int32), 0.1, 0)
    with pytest.raises(ValueError, match="dtype"):
        trainer.epoch(weights, biases, n_outs, acts, X.astype(np.float64), Y,
                      np.arange(5), 0.1, 0)
    for p, p0 in zip(weights + biases, before, strict=True):
        np.testing.assert_array_equal(p, p0)
    with pytest.raises(ValueError, match="itemsize must be 4 or 8"):
        _kernels.Trainer([4, 3], [16, 16], 2, 2, 2)
    with pytest.raises(ValueError, match="float32 or float64"):
        _kernels.Engine([np.zeros((4, 16), np.float16)], [np.zeros(16, np.float16)], [3], [1])
