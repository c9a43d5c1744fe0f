"""Tests of the optimizers, L2 weight decay, gradient clipping and learning-rate
schedules of ``fit`` (:mod:`dlfr.optimizers`, the compiled optimizer step).

* Plain SGD without any of them is today's epoch bit for bit: against
  digests of weights trained by the code before optimizers existed, and
  against every spelling of "plain SGD".
* Momentum, Nesterov and Adam, with and without L2 and clipping, under every
  schedule, follow ``optimizer_twin`` below (plain NumPy backpropagation in
  float64, with test_training's loss and derivatives, and scikit-learn's
  update formulas, written out here) over a few hundred steps, at every SIMD
  level; the twin's rules are checked against scikit-learn's own optimizer
  classes.
* L2's gradient against finite differences of the regularised loss; the
  clipped step's length; the schedules against scikit-learn's formulas.
* The optimizer's state: kept across epochs and (for an object) across fit
  calls, put back on Ctrl-C and refused data, refused for another network.
* Every bad argument: a ValueError naming it before any weight changes.
"""

from __future__ import annotations

import hashlib
import math
import signal

import numpy as np
import pytest
from conftest import DTYPES, dtype_id
from test_training import assert_bit_identical, assert_weights, cost, derivative, weights_of

import dlfr
from dlfr import Network, _kernels
from dlfr import _reference as ref
from dlfr.optimizers import SGD, Adam

#: dlfr's weights after a few hundred steps against the float64 twin's.
TWIN_TOL = {
    np.float32: {"rtol": 2e-3, "atol": 2e-4},
    np.float64: {"rtol": 1e-9, "atol": 1e-11},
}
LOSS_TOL = {np.float32: {"rtol": 1e-4}, np.float64: {"rtol": 1e-9}}

RULES = {  # fit's optimizer argument -> the twin's rule and coefficients
    "momentum": ("momentum", {"momentum": 0.9}),
    "nesterov": ("nesterov", {"momentum": 0.9}),
    "adam": ("adam", {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}),
}


# ---- the plain-NumPy twin ----------------------------------------------------------


def gradients(Ws, bs, acts, Xb, Yb, loss, l2, n, wb=None):
    """The batch's mean gradient of the regularised cost, and its summed data
    cost; with row weights wb, the weighted mean and the weighted sum."""
    outs = ref.forward(Xb, Ws, bs, acts, return_all=True)
    a, m = outs[-1], len(Xb) if wb is None else wb.sum()
    delta = a - Yb
    if loss == "mse":
        delta = delta * derivative(acts[-1], a)
    if wb is not None:
        delta = delta * wb[:, None]
        data_cost = sum(w * cost(a[r:r + 1], Yb[r:r + 1], loss, acts[-1])
                        for r, w in enumerate(wb))
    else:
        data_cost = cost(a, Yb, loss, acts[-1])
    gW, gb = [None] * len(Ws), [None] * len(Ws)
    for layer in range(len(Ws) - 1, -1, -1):
        inputs = outs[layer - 1] if layer else Xb
        gW[layer] = inputs.T @ delta / m + l2 / n * Ws[layer]
        gb[layer] = delta.sum(axis=0) / m
        if layer:
            delta = (delta @ Ws[layer].T) * derivative(acts[layer - 1], inputs)
    return gW, gb, data_cost


class TwinRule:
    """scikit-learn's update rules (_stochastic_optimizers.py), on a list of arrays."""

    def __init__(self, rule, params, momentum=0.0, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.rule, self.momentum = rule, momentum
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.v = [np.zeros_like(p) for p in params]
        self.m = [np.zeros_like(p) for p in params]
        self.t = 0

    def updates(self, grads, lr):
        if self.rule == "sgd":
            return [-lr * g for g in grads]
        if self.rule in ("momentum", "nesterov"):
            self.v = [self.momentum * v - lr * g for v, g in zip(self.v, grads, strict=True)]
            if self.rule == "momentum":
                return list(self.v)
            return [self.momentum * v - lr * g for v, g in zip(self.v, grads, strict=True)]
        self.t += 1
        self.m = [self.beta_1 * m + (1 - self.beta_1) * g
                  for m, g in zip(self.m, grads, strict=True)]
        self.v = [self.beta_2 * v + (1 - self.beta_2) * g ** 2
                  for v, g in zip(self.v, grads, strict=True)]
        step = lr * np.sqrt(1 - self.beta_2 ** self.t) / (1 - self.beta_1 ** self.t)
        return [-step * m / (np.sqrt(v) + self.epsilon)
                for m, v in zip(self.m, self.v, strict=True)]


def optimizer_twin(net, X, Y, *, epochs, batch_size, learning_rate, loss, rule="sgd", l2=0.0,
                   clip_norm=None, lr_schedule="constant", power_t=0.5, min_delta=1e-4,
                   patience=10, sample_weight=None, **coefficients):
    """Mini-batch training in plain NumPy (float64), rows in order, as fit defines it.

    Returns the weights, biases and the history's "loss" (with L2's term)
    and the rate of each epoch. With ``sample_weight`` each batch's gradient
    is the weighted mean and a batch of zero weights takes no step.
    """
    Ws = [layer.W.astype(np.float64) for layer in net.layers]
    bs = [layer.b.astype(np.float64) for layer in net.layers]
    acts = [layer.activation for layer in net.layers]
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    n = len(X)
    w = None if sample_weight is None else np.asarray(sample_weight, np.float64)
    total_weight = n if w is None else w.sum()
    twin = TwinRule(rule, Ws + bs, **coefficients)
    losses, rates = [], []
    seen, best, stale, rate = 0, math.inf, 0, learning_rate
    for _ in range(epochs):
        if lr_schedule == "invscaling":
            rate = learning_rate / (seen + 1) ** power_t
        rates.append(rate)
        total = 0.0
        for start in range(0, n, batch_size):
            Xb, Yb = X[start:start + batch_size], Y[start:start + batch_size]
            wb = None if w is None else w[start:start + batch_size]
            if wb is not None and not wb.any():
                continue
            rows = len(Xb) if wb is None else wb.sum()
            gW, gb, cost = gradients(Ws, bs, acts, Xb, Yb, loss, l2, n, wb)
            total += cost + rows * l2 / (2 * n) * sum(np.sum(W ** 2) for W in Ws)
            grads = gW + gb
            if clip_norm is not None:
                norm = math.sqrt(sum(np.sum(g ** 2) for g in grads))
                if norm > clip_norm:
                    grads = [g * (clip_norm / norm) for g in grads]
            steps = twin.updates(grads, rate)
            Ws = [W + d for W, d in zip(Ws, steps[:len(Ws)], strict=True)]
            bs = [b + d for b, d in zip(bs, steps[len(Ws):], strict=True)]
        losses.append(total / total_weight)
        seen += n
        if lr_schedule == "adaptive":  # patience epochs in a row not better by min_delta
            stale = 0 if losses[-1] < best - min_delta else stale + 1
            best = min(best, losses[-1])
            if stale >= patience:
                if rate <= 1e-6:
                    break
                rate /= 5.0
                stale = 0
    return Ws, bs, {"loss": losses, "rate": rates}


def problem(sizes, output, dtype, n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, (n, sizes[0])).astype(dtype)
    if output in ("identity", "tanh"):
        Y = rng.uniform(-0.5, 0.5, (n, sizes[-1]))
        return X, Y.astype(dtype), Y
    y = rng.integers(0, max(sizes[-1], 2), n)
    Y = y.reshape(-1, 1) if sizes[-1] == 1 else dlfr.datasets.one_hot(y, sizes[-1])
    return X, y, np.asarray(Y, np.float64)


def test_twin_rules_are_scikit_learns():
    """The twin's update formulas give what scikit-learn's optimizers give."""
    optimizers = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(4, 3)), rng.normal(size=3)]
    for rule, theirs in (
        ("momentum", lambda p: optimizers.SGDOptimizer(p, 0.05, momentum=0.9, nesterov=False)),
        ("nesterov", lambda p: optimizers.SGDOptimizer(p, 0.05, momentum=0.9, nesterov=True)),
        ("adam", lambda p: optimizers.AdamOptimizer(p, 0.05, 0.8, 0.99, 1e-7)),
    ):
        mine = [p.copy() for p in params]
        sk = [p.copy() for p in params]
        coefficients = {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-7} if rule == "adam" \
            else {"momentum": 0.9}
        twin = TwinRule(rule, mine, **coefficients)
        optimizer = theirs(sk)
        for _ in range(50):
            grads = [rng.normal(size=p.shape) for p in params]
            for p, d in zip(mine, twin.updates(grads, 0.05), strict=True):
                p += d
            optimizer.update_params(sk, grads)
        for p, q in zip(mine, sk, strict=True):
            np.testing.assert_allclose(p, q, rtol=1e-14, atol=1e-14)


# ---- plain SGD stays today's epoch -------------------------------------------------

#: sha256 (first 16 hex digits) of the weights after two training runs with
#: the compiled epoch as it was before optimizers existed (commit 3b187d7),
#: per SIMD level and dtype, with the digest of a forward pass through the
#: same build's kernels as the key that says the kernels are compiled alike
#: (another compiler may round differently, and the digests then say nothing).
BEFORE_OPTIMIZERS = {
    ("generic", "float32"): ("167222cabcd448f1", "9c153a3a5de08a0a", "00b9a355e73b8e9c"),
    ("generic", "float64"): ("83f13dd168541885", "cfdda7e6713e57aa", "ed9c34df678e7307"),
    ("avx2", "float32"): ("f5ee8da39e9eec38", "d063a89f23702af7", "0a2b25361ba257f3"),
    ("avx2", "float64"): ("c63ff4d523bb0741", "58aaa996c93c8f8b", "3b96b518b60ea0d4"),
}


def digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def flat(net):
    return [p for layer in net.layers for p in (layer.W, layer.b)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_plain_sgd_is_the_epoch_before_optimizers_bit_for_bit(simd_level, dtype):
    recorded = BEFORE_OPTIMIZERS.get((simd_level, dtype))
    if recorded is None:
        pytest.skip(f"no digest recorded at the {simd_level} level")
    X, y = dlfr.datasets.load_mnist()
    probe = digest([Network([784, 16, 10], dtype=dtype, seed=0).forward(X[:200])])
    if probe != recorded[0]:
        pytest.skip("the kernels are compiled differently from the recording build")
    a = Network([784, 16, 10], dtype=dtype, seed=0)
    a.fit(X[:1000], y[:1000], epochs=2, batch_size=10, learning_rate=3.0, seed=0)
    b = Network([784, 32, 10], activation="relu", output_activation="softmax", dtype=dtype,
                seed=1)
    b.fit(X[:600], y[:600], epochs=2, batch_size=32, learning_rate=0.1, loss="cross_entropy",
          shuffle=False)
    assert (digest(flat(a)), digest(flat(b))) == recorded[1:]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_every_spelling_of_plain_sgd_is_the_same_run(dtype):
    X, y, _ = problem([6, 20, 3], "sigmoid", dtype, n=50)
    runs = []
    for kwargs in ({}, {"optimizer": "sgd"}, {"optimizer": SGD()},
                   {"optimizer": SGD(0.0, nesterov=True)},
                   {"l2": 0.0, "clip_norm": None, "lr_schedule": "constant"}):
        net = Network([6, 20, 3], dtype=dtype, seed=3)
        history = net.fit(X, y, epochs=3, batch_size=7, learning_rate=0.8, seed=5, **kwargs)
        runs.append((weights_of(net), history))
    for saved, history in runs[1:]:
        for (W, b), (W0, b0) in zip(saved, runs[0][0], strict=True):
            assert np.array_equal(W, W0) and np.array_equal(b, b0)
        assert history == runs[0][1]


# ---- against the twin ----------------------------------------------------------------

#: (sizes, hidden, output, loss): narrow and wide layers (over 64 outputs: BLAS
#: at the generic level), a width one past a panel, one output.
CASES = [
    ([5, 17, 3], "sigmoid", "sigmoid", "mse"),
    ([4, 70, 10], "tanh", "softmax", "cross_entropy"),
    ([6, 16, 9, 1], "relu", "sigmoid", "cross_entropy"),
]
#: 60 rows in batches of 7 (the last one 4 rows): 9 steps an epoch.
N_ROWS, BATCH = 60, 7


def twin_case(case, dtype, seed=1):
    sizes, hidden, output, loss = case
    net = Network(sizes, activation=hidden, output_activation=output, dtype=dtype, seed=seed)
    X, y, Y = problem(sizes, output, dtype, n=N_ROWS, seed=seed)
    return net, X, y, Y, loss


def check_against_twin(net, X, y, Y, loss, dtype, *, epochs, learning_rate, rule="sgd",
                       coefficients=None, **kwargs):
    coefficients = coefficients or {}
    Ws, bs, twin = optimizer_twin(net, X, Y, epochs=epochs, batch_size=BATCH,
                                  learning_rate=learning_rate, loss=loss, rule=rule,
                                  **kwargs, **coefficients)
    make = {"momentum": SGD, "nesterov": lambda **c: SGD(**c, nesterov=True), "adam": Adam,
            "sgd": SGD}[rule]
    optimizer = make(**coefficients)
    history = net.fit(X, y, epochs=epochs, batch_size=BATCH, learning_rate=learning_rate,
                      loss=loss, shuffle=False, optimizer=optimizer, **kwargs)
    assert_weights(net, Ws, bs, TWIN_TOL[dtype])
    np.testing.assert_allclose(history["loss"], twin["loss"], **LOSS_TOL[dtype])
    weights = kwargs.get("sample_weight")
    batches = -(-N_ROWS // BATCH) if weights is None else sum(
        1 for start in range(0, N_ROWS, BATCH) if np.any(weights[start:start + BATCH]))
    assert optimizer.steps == len(history["loss"]) * batches
    assert optimizer.samples_seen == len(history["loss"]) * N_ROWS
    return history, twin


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("case", CASES, ids=["mse", "softmax", "deep"])
@pytest.mark.parametrize("rule", list(RULES))
def test_rules_follow_the_twin_for_hundreds_of_steps(simd_level, rule, case, dtype):
    """34 epochs of 9 steps: 306 steps of each rule, plain and with L2."""
    name, coefficients = RULES[rule]
    lr = 0.01 if rule == "adam" else 0.05
    for l2 in (0.0, 0.5):
        net, X, y, Y, loss = twin_case(case, dtype)
        check_against_twin(net, X, y, Y, loss, dtype, epochs=34, learning_rate=lr, rule=name,
                           coefficients=coefficients, l2=l2)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("rule", ["sgd", "momentum", "adam"])
def test_clipping_and_l2_follow_the_twin(simd_level, rule, dtype):
    """A clip short enough to bind on most steps, with L2's term in the norm."""
    name, coefficients = RULES.get(rule, ("sgd", {}))
    net, X, y, Y, loss = twin_case(CASES[1], dtype)
    check_against_twin(net, X, y, Y, loss, dtype, epochs=20, learning_rate=0.05, rule=name,
                       coefficients=coefficients, l2=2.0, clip_norm=0.3)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("rule", ["sgd", "nesterov", "adam"])
def test_invscaling_follows_the_twin(rule, dtype):
    name, coefficients = RULES.get(rule, ("sgd", {}))
    net, X, y, Y, loss = twin_case(CASES[0], dtype)
    check_against_twin(net, X, y, Y, loss, dtype, epochs=12, learning_rate=0.5, rule=name,
                       coefficients=coefficients, lr_schedule="invscaling", power_t=0.25)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_adaptive_follows_the_twin_through_its_cuts(dtype):
    """A rate too large to keep improving: the schedule cuts it (the twin
    records its rates; some epochs must run below the first)."""
    net, X, y, Y, loss = twin_case(CASES[0], dtype)
    _, twin = check_against_twin(net, X, y, Y, loss, dtype, epochs=30, learning_rate=5.0,
                                 lr_schedule="adaptive", min_delta=0.0, patience=2)
    assert max(twin["rate"]) == 5.0 and min(twin["rate"]) < 5.0


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("rule", ["sgd", "momentum", "adam"])
def test_sample_weights_follow_the_twin(simd_level, rule, dtype):
    """Weighted means with every rule, L2 (lambda/n, n the rows) and clipping;
    the second batch's weights are all zero: it takes no step (nor one of
    Adam's), and the history's loss is the weighted mean."""
    name, coefficients = RULES.get(rule, ("sgd", {}))
    weights = np.random.default_rng(5).uniform(0.0, 3.0, N_ROWS).astype(dtype)
    weights[BATCH:2 * BATCH] = 0
    for kwargs in ({}, {"l2": 0.5, "clip_norm": 0.3}):
        net, X, y, Y, loss = twin_case(CASES[0], dtype)
        check_against_twin(net, X, y, Y, loss, dtype, epochs=12, learning_rate=0.05, rule=name,
                           coefficients=coefficients, sample_weight=weights, **kwargs)


def test_weights_of_ones_train_an_optimizer_as_none_bit_for_bit():
    """And a batch of zero weights is as if it were not there (Adam's t too)."""
    X, y, _ = problem([5, 12, 3], "sigmoid", np.float64, n=20)
    kwargs = {"epochs": 3, "batch_size": 5, "learning_rate": 0.01, "shuffle": False}
    plain, ones = (Network([5, 12, 3], dtype="float64", seed=0) for _ in range(2))
    plain.fit(X, y, optimizer="adam", l2=0.3, **kwargs)
    ones.fit(X, y, optimizer="adam", l2=0.3, sample_weight=np.ones(20), **kwargs)
    assert_bit_identical(ones, weights_of(plain))
    keep = np.r_[0:5, 10:20]
    gapped, short = (Network([5, 12, 3], dtype="float64", seed=0) for _ in range(2))
    skipped, taken = Adam(), Adam()
    gapped.fit(X, y, optimizer=skipped, sample_weight=np.isin(np.arange(20), keep) * 1.0,
               **kwargs)
    short.fit(X[keep], y[keep], optimizer=taken, **kwargs)
    assert skipped.steps == taken.steps == 9
    assert_bit_identical(gapped, weights_of(short))


# ---- L2 and clipping against their definitions ---------------------------------------

FD_STEP = 1e-4


def regularised_cost(X, Y, Ws, bs, acts, loss, l2, n):
    a = ref.forward(X, Ws, bs, acts)
    return cost(a, Y, loss, acts[-1]) / len(X) + l2 / (2 * n) * sum(
        np.sum(W ** 2) for W in Ws)


def finite_difference_gradient(X, Y, Ws, bs, acts, loss, l2):
    """Fourth-order central differences of the regularised cost (test_training's)."""
    grads = []
    for params in (*Ws, *bs):
        grad = np.zeros_like(params)
        for idx in np.ndindex(params.shape):
            original = params[idx]
            values = []
            for k in (2, 1, -1, -2):
                params[idx] = original + k * FD_STEP
                values.append(regularised_cost(X, Y, Ws, bs, acts, loss, l2, len(X)))
            params[idx] = original
            grad[idx] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * FD_STEP)
        grads.append(grad)
    return grads


@pytest.mark.parametrize(("loss", "output"), [("mse", "sigmoid"), ("cross_entropy", "softmax")])
@pytest.mark.parametrize("l2", [0.3, 4.0])
def test_l2_step_follows_the_gradient_of_the_regularised_loss(l2, loss, output):
    """One full-batch step moves every parameter by -lr dC/dp, C with
    lambda/(2n) sum ||W||^2, by finite differences; the loss reported is C."""
    net = Network([3, 4, 3, 2], output_activation=output, dtype="float64", seed=4)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(5, 3))
    Y = dlfr.datasets.one_hot(rng.integers(0, 2, 5), 2, dtype="float64")
    Ws = [layer.W.copy() for layer in net.layers]
    bs = [layer.b.copy() for layer in net.layers]
    acts = [layer.activation for layer in net.layers]
    expected = finite_difference_gradient(X, Y, [W.copy() for W in Ws], [b.copy() for b in bs],
                                          acts, loss, l2)
    lr = 0.5
    history = net.fit(X, Y, epochs=1, batch_size=5, shuffle=False, learning_rate=lr, loss=loss,
                      l2=l2)
    moved = [layer.W - W for layer, W in zip(net.layers, Ws, strict=True)] + \
        [layer.b - b for layer, b in zip(net.layers, bs, strict=True)]
    for step, grad in zip(moved, expected, strict=True):
        scale = np.abs(grad).max()
        np.testing.assert_allclose(step, -lr * grad, rtol=1e-6, atol=1e-6 * lr * scale)
    np.testing.assert_allclose(history["loss"][0],
                               regularised_cost(X, Y, Ws, bs, acts, loss, l2, 5), rtol=1e-12)
    # the biases' share of the step is their data gradient alone: not decayed
    plain = Network([3, 4, 3, 2], output_activation=output, dtype="float64", seed=4)
    plain.fit(X, Y, epochs=1, batch_size=5, shuffle=False, learning_rate=lr, loss=loss)
    for a, b in zip(net.layers, plain.layers, strict=True):
        np.testing.assert_allclose(a.b, b.b, rtol=1e-13, atol=1e-15)


def test_validation_loss_includes_l2():
    X, y, _ = problem([5, 8, 3], "sigmoid", np.float64, n=30)
    net = Network([5, 8, 3], dtype="float64", seed=0)
    history = net.fit(X, y, epochs=2, batch_size=30, learning_rate=0.5, l2=3.0,
                      validation_data=(X[:10], y[:10]), shuffle=False)
    a = net.forward(X[:10])
    Y = dlfr.datasets.one_hot(y[:10], 3, dtype="float64")
    penalty = 3.0 / (2 * 30) * sum(np.sum(layer.W ** 2) for layer in net.layers)
    np.testing.assert_allclose(history["val_loss"][-1],
                               cost(a, Y, "mse", "sigmoid") / 10 + penalty, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("l2", [0.0, 1.5])
def test_a_clipped_step_has_the_clip_norm(l2, dtype):
    """Plain SGD, one full batch: the step is -lr g clip/||g|| when ||g|| is
    longer than the clip (the step's norm is then lr clip), else -lr g."""
    X, y, Y = problem([8, 20, 4], "sigmoid", dtype, n=12, seed=2)
    net = Network([8, 20, 4], dtype=dtype, seed=2)
    gW, gb, _ = gradients([layer.W.astype(np.float64) for layer in net.layers],
                          [layer.b.astype(np.float64) for layer in net.layers],
                          ["sigmoid", "sigmoid"], X.astype(np.float64), Y, "mse", l2, 12)
    norm = math.sqrt(sum(np.sum(g ** 2) for g in gW + gb))
    lr = 0.7
    for clip, scale in ((norm / 3, 1 / 3), (norm * 2, 1.0)):
        net = Network([8, 20, 4], dtype=dtype, seed=2)
        before = flat(net)
        before = [p.astype(np.float64) for p in before]
        net.fit(X, y, epochs=1, batch_size=12, learning_rate=lr, shuffle=False, l2=l2,
                clip_norm=clip)
        steps = [p - p0 for p, p0 in zip(flat(net), before, strict=True)]
        expected = [-lr * scale * g for pair in zip(gW, gb, strict=True) for g in pair]
        tol = {"rtol": 1e-4, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-10}
        for step, e in zip(steps, expected, strict=True):
            np.testing.assert_allclose(step, e, **tol)
        length = math.sqrt(sum(np.sum(s ** 2) for s in steps))
        np.testing.assert_allclose(length, lr * scale * norm, rtol=1e-4 if dtype == np.float32
                                   else 1e-10)


# ---- schedules against scikit-learn's formulas ----------------------------------------


def test_invscaling_rate_is_scikit_learns():
    """The rate of each epoch: learning_rate / (samples seen + 1)^power_t,
    scikit-learn's SGDOptimizer.iteration_ends(t_) after each epoch."""
    optimizers = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    sk = optimizers.SGDOptimizer([np.zeros(2)], 0.3, lr_schedule="invscaling", power_t=0.37)
    mine = SGD()
    for _ in range(6):
        assert mine.epoch_rate(0.3, "invscaling", 0.37) == sk.learning_rate
        mine.end_epoch(1.0, 250, 0.3, "invscaling", 1e-4, 10)
        sk.iteration_ends(mine.samples_seen)
    assert mine.samples_seen == 1500


def test_adaptive_rate_is_scikit_learns():
    """Losses whose improvements stall: the count, the cuts by 5 and the stop
    as scikit-learn's MLP counts (tol, n_iter_no_change) and its
    SGDOptimizer.trigger_stopping acts, with tol = min_delta and
    n_iter_no_change = patience - 1."""
    optimizers = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    rng = np.random.default_rng(0)
    losses = np.concatenate([np.linspace(1.0, 0.5, 5), 0.5 + rng.uniform(-1e-5, 1e-3, 60)])
    tol, patience, lr = 1e-4, 4, 3e-5
    n_iter_no_change = patience - 1  # scikit-learn acts after n_iter_no_change + 1 epochs
    sk = optimizers.SGDOptimizer([np.zeros(2)], lr, lr_schedule="adaptive")
    best, count, sk_rates, sk_stop = math.inf, 0, [], None
    for epoch, loss in enumerate(losses):  # _fit_stochastic's loop
        sk_rates.append(sk.learning_rate)
        count = count + 1 if loss > best - tol else 0
        best = min(best, loss)
        if count > n_iter_no_change:
            if sk.trigger_stopping("", False):
                sk_stop = epoch
                break
            count = 0
    mine, rates, stop = SGD(), [], None
    for epoch, loss in enumerate(losses):
        rates.append(mine.epoch_rate(lr, "adaptive", 0.5))
        if mine.end_epoch(float(loss), 10, lr, "adaptive", tol, patience):
            stop = epoch
            break
    assert stop == sk_stop is not None
    assert rates == sk_rates
    assert len(set(rates)) >= 3  # cut twice at least before the stop


def test_adaptive_stops_training_at_the_floor():
    """A rate of 1e-6 that cannot improve: the third epoch ends training (the
    first sets the best, then two without improvement make patience 2)."""
    X, y, _ = problem([4, 5, 2], "sigmoid", np.float64, n=20)
    history = Network([4, 5, 2], dtype="float64", seed=0).fit(
        X, y, epochs=50, batch_size=5, learning_rate=1e-6, lr_schedule="adaptive",
        min_delta=10.0, patience=2)
    assert len(history["loss"]) == 3 and history.stopped_epoch == 2


def test_with_early_stopping_a_stall_lowers_the_adaptive_rate_before_it_stops():
    """Every epoch after the first stalls (min_delta 10): patience 1 alone
    stops after epoch 1; the adaptive schedule cuts 1e-5 to 2e-6 and 4e-7
    first and stops at the floor, in epoch 3, keeping the best epoch."""
    X, y, _ = problem([4, 5, 2], "sigmoid", np.float64, n=40)
    kwargs = {"epochs": 50, "batch_size": 5, "learning_rate": 1e-5, "early_stopping": True,
              "validation_fraction": 0.25, "patience": 1, "min_delta": 10.0, "seed": 0}
    alone = Network([4, 5, 2], dtype="float64", seed=0).fit(X, y, **kwargs)
    assert alone.stopped_epoch == 1
    optimizer = SGD()
    history = Network([4, 5, 2], dtype="float64", seed=0).fit(
        X, y, lr_schedule="adaptive", optimizer=optimizer, **kwargs)
    assert history.stopped_epoch == 3 and len(history["val_loss"]) == 4
    assert history.best_epoch == int(np.argmin(history["val_loss"]))
    assert optimizer.epoch_rate(1e-5, "adaptive", 0.5) == 1e-5 / 5 / 5


# ---- the optimizer's state --------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: SGD(0.8), lambda: SGD(0.8, nesterov=True),
                                  lambda: Adam(0.8, 0.99)], ids=["momentum", "nesterov", "adam"])
def test_an_optimizer_object_carries_its_state_from_fit_to_fit(make):
    X, y, _ = problem([5, 12, 3], "sigmoid", np.float64, n=40)
    whole, halves, fresh = (Network([5, 12, 3], dtype="float64", seed=0) for _ in range(3))
    kwargs = {"batch_size": 6, "learning_rate": 0.05, "shuffle": False,
              "lr_schedule": "invscaling", "l2": 0.1}
    whole.fit(X, y, epochs=4, optimizer=make(), **kwargs)
    optimizer = make()
    halves.fit(X, y, epochs=2, optimizer=optimizer, **kwargs)
    assert optimizer.steps == 14 and optimizer.samples_seen == 80
    halves.fit(X, y, epochs=2, optimizer=optimizer, **kwargs)
    assert_bit_identical(halves, weights_of(whole))
    # a name (or a reset object) starts afresh: no velocity, t = 1, the first rate
    optimizer.reset()
    assert optimizer.steps == 0 and optimizer.samples_seen == 0
    fresh.fit(X, y, epochs=2, optimizer=make(), **kwargs)
    again = Network([5, 12, 3], dtype="float64", seed=0)
    again.fit(X, y, epochs=2, optimizer=optimizer, **kwargs)
    assert_bit_identical(again, weights_of(fresh))
    assert not all(np.array_equal(a.W, b.W) for a, b in zip(fresh.layers, whole.layers,
                                                            strict=True))


def test_an_optimizer_holding_another_networks_state_is_refused():
    X, y, _ = problem([5, 12, 3], "sigmoid", np.float32, n=20)
    optimizer = Adam()
    Network([5, 12, 3], seed=0).fit(X, y, epochs=1, batch_size=5, learning_rate=0.01,
                                    optimizer=optimizer)
    for other in (Network([5, 13, 3], seed=0), Network([5, 12, 3], dtype="float64", seed=0)):
        saved = weights_of(other)
        with pytest.raises(ValueError, match=r"optimizer: this Adam holds the state of a network"):
            other.fit(X, y, epochs=1, batch_size=5, learning_rate=0.01, optimizer=optimizer)
        assert_bit_identical(other, saved)
    assert optimizer.steps == 4
    optimizer.reset()
    Network([5, 13, 3], seed=0).fit(X, y, epochs=1, batch_size=5, learning_rate=0.01,
                                    optimizer=optimizer)


def test_refused_data_puts_the_optimizer_back():
    X, y, _ = problem([5, 12, 3], "sigmoid", np.float64, n=20)
    net = Network([5, 12, 3], dtype="float64", seed=0)
    optimizer = Adam()
    net.fit(X, y, epochs=1, batch_size=5, learning_rate=0.01, optimizer=optimizer)
    state = optimizer.snapshot()
    saved = weights_of(net)
    bad = X.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        net.fit(bad, y, epochs=2, batch_size=5, learning_rate=0.01, optimizer=optimizer)
    assert_bit_identical(net, saved)
    after = optimizer.snapshot()
    assert after[:5] == state[:5]
    assert all(np.array_equal(a, b) for a, b in zip(after[5], state[5], strict=True))


def test_ctrl_c_puts_the_optimizer_back_with_the_weights():
    """Interrupted in a later epoch, the network and its optimizer are as
    after the last completed one: the same as a run of that many epochs."""
    rng = np.random.default_rng(0)
    X = rng.random((6000, 300))
    y = rng.integers(0, 10, 6000)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    net = Network([300, 200, 10], dtype="float64", seed=0)
    optimizer = Adam()
    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            net.fit(X, y, epochs=1000, batch_size=10, learning_rate=0.001, optimizer=optimizer,
                    shuffle=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    epochs = optimizer.samples_seen // 6000
    assert optimizer.steps == epochs * 600
    reference = Network([300, 200, 10], dtype="float64", seed=0)
    if epochs:
        reference.fit(X, y, epochs=epochs, batch_size=10, learning_rate=0.001,
                      optimizer=(fresh := Adam()), shuffle=False)
        assert all(np.array_equal(a, b) for a, b in zip(optimizer.snapshot()[5],
                                                         fresh.snapshot()[5], strict=True))
    else:
        assert all(not a.any() for a in optimizer.snapshot()[5])
    assert_bit_identical(net, weights_of(reference))


# ---- refused arguments ------------------------------------------------------------


@pytest.mark.parametrize(("make", "pattern"), [
    (lambda: SGD(momentum=1.0), r"momentum must be a real number in \[0, 1\); got 1.0"),
    (lambda: SGD(momentum=-0.1), r"momentum must be"),
    (lambda: SGD(momentum=float("nan")), r"momentum must be"),
    (lambda: SGD(momentum="0.9"), r"momentum must be"),
    (lambda: SGD(nesterov="yes"), r"nesterov must be True or False"),
    (lambda: Adam(beta_1=1.0), r"beta_1 must be a real number in \[0, 1\)"),
    (lambda: Adam(beta_1=-1e-9), r"beta_1 must be"),
    (lambda: Adam(beta_2=1.5), r"beta_2 must be"),
    (lambda: Adam(beta_2=True), r"beta_2 must be"),
    (lambda: Adam(epsilon=0.0), r"epsilon must be a real number in \(0, inf\)"),
    (lambda: Adam(epsilon=float("inf")), r"epsilon must be"),
    (lambda: Adam(epsilon=-1e-8), r"epsilon must be"),
])
def test_bad_optimizer_parameters_are_refused(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def refusals():
    return [
        pytest.param({"optimizer": "rmsprop"}, r"optimizer must be one of 'sgd', 'momentum', "
                     r"'nesterov', 'adam' or a dlfr.optimizers.SGD or Adam; got 'rmsprop'",
                     id="optimizer-unknown"),
        pytest.param({"optimizer": None}, r"optimizer must be one of", id="optimizer-none"),
        pytest.param({"optimizer": ["adam"]}, r"optimizer must be one of", id="optimizer-list"),
        pytest.param({"optimizer": Adam}, r"optimizer must be one of", id="optimizer-class"),
        pytest.param({"l2": -0.1}, r"l2 must be a real number in \[0, inf\); got -0.1",
                     id="l2-negative"),
        pytest.param({"l2": float("nan")}, r"l2 must be", id="l2-nan"),
        pytest.param({"l2": float("inf")}, r"l2 must be", id="l2-inf"),
        pytest.param({"l2": "0.1"}, r"l2 must be", id="l2-str"),
        pytest.param({"l2": None}, r"l2 must be", id="l2-none"),
        pytest.param({"lr_schedule": "cosine"}, r"lr_schedule must be one of 'constant', "
                     r"'invscaling', 'adaptive'; got 'cosine'", id="schedule-unknown"),
        pytest.param({"power_t": -0.5}, r"power_t must be", id="power-t-negative"),
        pytest.param({"min_delta": -1e-4}, r"min_delta must be", id="min-delta-negative"),
        pytest.param({"min_delta": float("nan")}, r"min_delta must be", id="min-delta-nan"),
        pytest.param({"patience": 0}, r"patience must be a positive integer", id="patience-0"),
        pytest.param({"patience": 2.5}, r"patience must be", id="patience-float"),
        pytest.param({"clip_norm": 0.0}, r"clip_norm must be a positive finite number",
                     id="clip-0"),
        pytest.param({"clip_norm": -1.0}, r"clip_norm must be", id="clip-negative"),
        pytest.param({"clip_norm": float("nan")}, r"clip_norm must be", id="clip-nan"),
        pytest.param({"clip_norm": "1"}, r"clip_norm must be", id="clip-str"),
    ]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize(("kwargs", "pattern"), refusals())
def test_refused_fit_changes_nothing(kwargs, pattern, dtype):
    X, y, _ = problem([3, 4, 3], "sigmoid", dtype, n=6)
    net = Network([3, 4, 3], dtype=dtype, seed=0)
    saved = weights_of(net)
    with pytest.raises(ValueError, match=pattern):
        net.fit(X, y, epochs=2, batch_size=2, learning_rate=0.5, **kwargs)
    assert_bit_identical(net, saved)


def test_compiled_update_refuses_state_it_cannot_use():
    net = Network([4, 3, 2], seed=0)
    weights, biases, n_outs, acts = net.kernel_layers
    params = [p for pair in zip(weights, biases, strict=True) for p in pair]
    trainer = _kernels.Trainer([4, 3], [16, 16], 2, 2, 4)
    X, Y = np.zeros((5, 4), np.float32), np.zeros((5, 2), np.float32)
    order = np.arange(5)
    before = [p.copy() for p in params]
    good = [np.zeros_like(p) for p in params]
    for first, second in (
        (None, None),                                            # Adam keeps two
        (good, None),
        (good[:3], good),                                        # one array short
        (good, [p.astype(np.float64) for p in good]),            # another dtype
        (good, [np.zeros(p.size - 1, np.float32) for p in good]),  # too small
        (good, [np.zeros(p.size, np.float32)[::-1] for p in good]),  # not contiguous
    ):
        update = _kernels.Update(_kernels.RULE_ADAM, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                                 first=first, second=second)
        with pytest.raises(ValueError, match="dlfr._kernels.Update"):
            trainer.epoch(weights, biases, n_outs, acts, X, Y, order, 0.1, 0, update)
    frozen = [np.zeros_like(p) for p in params]
    frozen[0].flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        trainer.epoch(weights, biases, n_outs, acts, X, Y, order, 0.1, 0,
                      _kernels.Update(_kernels.RULE_MOMENTUM, momentum=0.9, first=frozen))
    for p, p0 in zip(params, before, strict=True):
        np.testing.assert_array_equal(p, p0)
    with pytest.raises(ValueError, match="unknown rule"):
        _kernels.Update(7)
    with pytest.raises(ValueError, match=">= 0"):
        _kernels.Update(_kernels.RULE_SGD, decay=-1.0)


def test_optimizer_names_are_the_registrys():
    from dlfr import optimizers
    from dlfr._names import OPTIMIZERS

    assert tuple(optimizers.BY_NAME) == OPTIMIZERS
    made = {name: optimizers.resolve(name) for name in OPTIMIZERS}
    assert repr(made["sgd"]) == "SGD(momentum=0.0, nesterov=False)"
    assert repr(made["momentum"]) == "SGD(momentum=0.9, nesterov=False)"
    assert repr(made["nesterov"]) == "SGD(momentum=0.9, nesterov=True)"
    assert repr(made["adam"]) == "Adam(beta_1=0.9, beta_2=0.999, epsilon=1e-08)"
    assert optimizers.resolve(made["adam"]) is made["adam"]
    assert optimizers.resolve("adam") is not optimizers.resolve("adam")
