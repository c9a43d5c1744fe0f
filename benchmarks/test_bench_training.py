"""One training epoch of the 784-16-10 sigmoid network: dlfr against NumPy and peers.

10,000 bundled digits, mini-batches of 32, learning rate 3.0, quadratic cost,
no shuffling (so every implementation takes exactly the same steps from the
same initial weights). The NumPy twin is the same maths vectorised per
mini-batch; PyTorch (SGD on nn.Sequential) and scikit-learn
(MLPClassifier.partial_fit, its own loss) are recorded when installed. Each
benchmark checks its result: dlfr's weights after the epoch equal the NumPy
twin's, and every peer must have learnt (accuracy well above chance).

The Adam group: the same epoch with Adam (scikit-learn's betas and epsilon,
learning rate 0.01) in float32, dlfr's compiled step against a NumPy twin of the same
steps (in-place NumPy updates, as one would write them by hand).

And a whole ``fit``: ``dlfr.sklearn.MLPClassifier`` against scikit-learn's
``MLPClassifier`` with the same parameters (784-100-10, Adam, mini-batches of
32, 30 epochs, the first 8,000 digits), each checked to score above 0.95 on
the last 2,000. That group has no NumPy entry (scikit-learn's MLP is NumPy
code), so report.py's "vs numpy" column says n/a there: the speed-up is
scikit-learn's median over dlfr's.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest \\
        benchmarks/test_bench_training.py --benchmark-json=train.json
    python benchmarks/report.py train.json
"""

from __future__ import annotations

import numpy as np
import pytest

import dlfr

SIZES = [784, 16, 10]
BATCH = 32
LR = 3.0
N = 10_000
DTYPES = ("float32", "float64")


@pytest.fixture(scope="module")
def digits():
    X, y = dlfr.datasets.load_mnist()
    return X[:N], y[:N]


def initial_network(dtype):
    return dlfr.Network(SIZES, dtype=dtype, seed=0)


def numpy_epoch(Ws, bs, X, Y):
    """Mini-batch SGD on the quadratic cost, vectorised per batch (the NumPy twin)."""
    for s in range(0, len(X), BATCH):
        xb, yb = X[s:s + BATCH], Y[s:s + BATCH]
        acts = [xb]
        for W, b in zip(Ws, bs, strict=True):
            acts.append(1 / (1 + np.exp(-(acts[-1] @ W + b))))
        delta = (acts[-1] - yb) * acts[-1] * (1 - acts[-1])
        step = LR / len(xb)
        for layer in range(len(Ws) - 1, -1, -1):
            grad_W, grad_b = acts[layer].T @ delta, delta.sum(axis=0)
            if layer:
                delta = (delta @ Ws[layer].T) * acts[layer] * (1 - acts[layer])
            Ws[layer] -= step * grad_W
            bs[layer] -= step * grad_b
    return Ws, bs


def accuracy(outputs, y):
    return float(np.mean(np.argmax(outputs, axis=1) == y))


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy(benchmark, digits, dtype, simd):
    X, y = digits
    X = X.astype(dtype)
    Y = dlfr.datasets.one_hot(y, 10, dtype=dtype)
    net = initial_network(dtype)
    start = ([layer.W.copy() for layer in net.layers], [layer.b.copy() for layer in net.layers])
    benchmark.group = f"train epoch 784-16-10 batch={BATCH} {dtype} simd={simd}"
    benchmark.extra_info.update(impl="numpy", threads=1)
    Ws, bs = benchmark.pedantic(
        lambda: numpy_epoch([w.copy() for w in start[0]], [b.copy() for b in start[1]], X, Y),
        rounds=5, iterations=1, warmup_rounds=1,
    )
    a = X
    for W, b in zip(Ws, bs, strict=True):
        a = 1 / (1 + np.exp(-(a @ W + b)))
    assert accuracy(a, y) > 0.8


@pytest.mark.parametrize("dtype", DTYPES)
def test_dlfr(benchmark, digits, dtype, simd):
    X, y = digits
    X = X.astype(dtype)
    Y = dlfr.datasets.one_hot(y, 10, dtype=dtype)
    start = initial_network(dtype)

    trained = []

    def fresh_network():  # made outside the timing: the round times the epoch alone
        trained.append(initial_network(dtype))
        return (trained[-1],), {}

    def epoch(net):
        net.fit(X, y, epochs=1, batch_size=BATCH, learning_rate=LR, shuffle=False)

    benchmark.group = f"train epoch 784-16-10 batch={BATCH} {dtype} simd={simd}"
    benchmark.extra_info.update(impl="dlfr", threads=1)
    benchmark.pedantic(epoch, setup=fresh_network, rounds=20, iterations=1, warmup_rounds=1)
    net = trained[-1]
    Ws, bs = numpy_epoch([layer.W.copy() for layer in start.layers],
                         [layer.b.copy() for layer in start.layers], X, Y)
    tol = 2e-3 if dtype == "float32" else 1e-9
    for layer, W, b in zip(net.layers, Ws, bs, strict=True):
        np.testing.assert_allclose(layer.W, W, atol=tol, rtol=tol)
        np.testing.assert_allclose(layer.b, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch(benchmark, digits, dtype, simd):
    torch = pytest.importorskip("torch")
    X, y = digits
    tdtype = getattr(torch, dtype)
    Xt = torch.from_numpy(X.astype(dtype))
    Yt = torch.from_numpy(dlfr.datasets.one_hot(y, 10, dtype=dtype))
    start = initial_network(dtype)

    def epoch():
        model = torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.Sigmoid(),
                                    torch.nn.Linear(16, 10), torch.nn.Sigmoid()).to(tdtype)
        with torch.no_grad():
            for linear, layer in zip((model[0], model[2]), start.layers, strict=True):
                linear.weight.copy_(torch.from_numpy(layer.W.T.copy()))
                linear.bias.copy_(torch.from_numpy(layer.b.copy()))
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        for s in range(0, len(Xt), BATCH):
            xb, yb = Xt[s:s + BATCH], Yt[s:s + BATCH]
            opt.zero_grad()
            loss = 0.5 * ((model(xb) - yb) ** 2).sum() / len(xb)
            loss.backward()
            opt.step()
        return model

    benchmark.group = f"train epoch 784-16-10 batch={BATCH} {dtype} simd={simd}"
    benchmark.extra_info.update(impl="torch", threads=1)
    model = benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=1)
    with torch.inference_mode():
        assert accuracy(model(Xt).numpy(), y) > 0.8


@pytest.mark.parametrize("dtype", DTYPES)
def test_sklearn(benchmark, digits, dtype, simd):
    pytest.importorskip("sklearn")
    import warnings

    from sklearn.neural_network import MLPClassifier

    X, y = digits
    X = X.astype(dtype)

    def epoch():
        clf = MLPClassifier(hidden_layer_sizes=(16,), activation="logistic", solver="sgd",
                            batch_size=BATCH, learning_rate_init=0.5, momentum=0.0,
                            shuffle=False, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(X, y, classes=np.arange(10))
        return clf

    benchmark.group = f"train epoch 784-16-10 batch={BATCH} {dtype} simd={simd}"
    benchmark.extra_info.update(impl="sklearn", threads=1)
    clf = benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=1)
    assert clf.score(X, y) > 0.8


# ---- Adam ------------------------------------------------------------------------------

#: Adam's step size for this small sigmoid network (0.001, scikit-learn's default,
#: reaches 0.37 accuracy in the epoch, 0.01 0.82).
ADAM_LR, BETA_1, BETA_2, EPSILON = 0.01, 0.9, 0.999, 1e-8


def numpy_adam_epoch(Ws, bs, X, Y):
    """numpy_epoch's batches and gradients, each step Adam's (scikit-learn's formulas)."""
    params = Ws + bs
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    for t, s in enumerate(range(0, len(X), BATCH), start=1):
        xb, yb = X[s:s + BATCH], Y[s:s + BATCH]
        acts = [xb]
        for W, b in zip(Ws, bs, strict=True):
            acts.append(1 / (1 + np.exp(-(acts[-1] @ W + b))))
        delta = (acts[-1] - yb) * acts[-1] * (1 - acts[-1])
        grads_W, grads_b = [None] * len(Ws), [None] * len(Ws)
        for layer in range(len(Ws) - 1, -1, -1):
            grads_W[layer] = acts[layer].T @ delta / len(xb)
            grads_b[layer] = delta.mean(axis=0)
            if layer:
                delta = (delta @ Ws[layer].T) * acts[layer] * (1 - acts[layer])
        step = ADAM_LR * np.sqrt(1 - BETA_2 ** t) / (1 - BETA_1 ** t)
        for p, g, m, v in zip(params, grads_W + grads_b, ms, vs, strict=True):
            m *= BETA_1
            m += (1 - BETA_1) * g
            v *= BETA_2
            v += (1 - BETA_2) * g * g
            p -= step * m / (np.sqrt(v) + EPSILON)
    return Ws, bs


def adam_group(simd):
    return f"train adam epoch 784-16-10 batch={BATCH} float32 simd={simd}"


def test_numpy_adam(benchmark, digits, simd):
    X, y = digits
    Y = dlfr.datasets.one_hot(y, 10, dtype="float32")
    net = initial_network("float32")
    start = ([layer.W.copy() for layer in net.layers], [layer.b.copy() for layer in net.layers])
    benchmark.group = adam_group(simd)
    benchmark.extra_info.update(impl="numpy", threads=1)
    Ws, bs = benchmark.pedantic(
        lambda: numpy_adam_epoch([w.copy() for w in start[0]], [b.copy() for b in start[1]],
                                 X, Y),
        rounds=5, iterations=1, warmup_rounds=1,
    )
    a = X
    for W, b in zip(Ws, bs, strict=True):
        a = 1 / (1 + np.exp(-(a @ W + b)))
    assert accuracy(a, y) > 0.75


def test_dlfr_adam(benchmark, digits, simd):
    X, y = digits
    start = initial_network("float32")
    trained = []

    def fresh_network():  # made outside the timing: the round times the epoch alone
        trained.append(initial_network("float32"))
        return (trained[-1],), {}

    def epoch(net):
        net.fit(X, y, epochs=1, batch_size=BATCH, learning_rate=ADAM_LR, shuffle=False,
                optimizer="adam")

    benchmark.group = adam_group(simd)
    benchmark.extra_info.update(impl="dlfr", threads=1)
    benchmark.pedantic(epoch, setup=fresh_network, rounds=20, iterations=1, warmup_rounds=1)
    net = trained[-1]
    Y = dlfr.datasets.one_hot(y, 10, dtype="float64")
    Ws, bs = numpy_adam_epoch([layer.W.astype(np.float64) for layer in start.layers],
                              [layer.b.astype(np.float64) for layer in start.layers],
                              X.astype(np.float64), Y)
    for layer, W, b in zip(net.layers, Ws, bs, strict=True):
        np.testing.assert_allclose(layer.W, W, atol=2e-3, rtol=2e-3)
        np.testing.assert_allclose(layer.b, b, atol=2e-3, rtol=2e-3)


# -- dlfr.sklearn.MLPClassifier against scikit-learn's, the same parameters --------------
#: The configuration of issue 17's bar: 784-100-10 (relu, softmax), Adam, mini-batches
#: of 32, 30 epochs on the first 8,000 bundled digits, scored on the last 2,000.
FIT_PARAMS = dict(hidden_layer_sizes=(100,), solver="adam", batch_size=32, max_iter=30,
                  random_state=0)
FIT_N = 8_000


@pytest.fixture(scope="module")
def digits_split():
    X, y = dlfr.datasets.load_mnist()  # float32: both estimators train in float32
    return X[:FIT_N], y[:FIT_N], X[FIT_N:], y[FIT_N:]


@pytest.mark.parametrize("impl", ["dlfr", "sklearn"])
def test_mlp_classifier_fit(benchmark, digits_split, impl, simd):
    pytest.importorskip("sklearn")
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as ScikitLearnMLP

    from dlfr.sklearn import MLPClassifier

    X, y, X_test, y_test = digits_split
    cls = MLPClassifier if impl == "dlfr" else ScikitLearnMLP

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # 30 epochs: not converged
            return cls(**FIT_PARAMS).fit(X, y)

    benchmark.group = (f"fit MLPClassifier 784-100-10 adam batch=32 30 epochs {FIT_N} digits "
                       f"float32 simd={simd}")
    benchmark.extra_info.update(impl=impl, threads=1)
    # scikit-learn's fit takes seconds: fewer rounds
    clf = benchmark.pedantic(fit, rounds=3 if impl == "dlfr" else 1, iterations=1)
    assert clf.n_iter_ == 30
    assert clf.score(X_test, y_test) > 0.95
