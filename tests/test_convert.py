"""Tests for Network.from_sklearn and Network.from_torch (dlfr._convert).

Each converted network must compute what the source library computes, within
a tolerance per dtype, and predict the same labels. Tests needing
scikit-learn or torch skip when it is not installed.
"""

import os
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest
from conftest import DTYPES, dtype_id

import dlfr
from dlfr import Network

TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
HIDDEN = [(6,), (6, 5), (6, 5, 4)]


@pytest.fixture(scope="module")
def mlp():
    """sklearn.neural_network, or skip."""
    return pytest.importorskip("sklearn.neural_network")


@pytest.fixture(scope="module")
def torch():
    """torch, or skip."""
    return pytest.importorskip("torch")


def assert_close(actual, expected, dtype):
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def clear_rows(outputs, dtype):
    """Rows whose label does not hinge on a difference within the tolerance."""
    tol = 10 * TOL[np.dtype(dtype)]
    if outputs.shape[1] == 1:
        return np.abs(outputs[:, 0] - 0.5) > tol
    top2 = np.sort(outputs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0] > tol


def data(dtype, n=60, n_features=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, n_features)).astype(dtype)


def fit_quietly(estimator, X, y):
    """A brief fit: the ConvergenceWarning it earns is expected here."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


# -- scikit-learn -----------------------------------------------------------


def small_regressor(mlp, **params):
    """A fitted MLPRegressor((3,)) on float64 data, and the data."""
    X = data(np.float64)
    est = mlp.MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0, **params)
    return fit_quietly(est, X, np.abs(X[:, 0])), X


def targets(task, X):
    if task == "binary":
        return np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    if task == "multiclass":
        return np.array([3, 5, 9])[np.argmax(X[:, :3], axis=1)]
    return (X[:, :3] > 0).astype(int)  # multilabel indicator, 3 labels


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_sklearn_classifier_matches(mlp, task, hidden, activation, dtype):
    X = data(dtype)
    est = mlp.MLPClassifier(
        hidden_layer_sizes=hidden, activation=activation, max_iter=30, random_state=0
    )
    fit_quietly(est, X, targets(task, X))
    assert est.coefs_[0].dtype == dtype  # sklearn keeps float32 data in float32
    net = Network.from_sklearn(est)
    assert type(net) is Network
    assert net.dtype == dtype
    assert net.sizes == [4, *hidden, est.n_outputs_]
    out = net.forward(X)
    proba = est.predict_proba(X)
    assert_close(out, proba[:, 1:] if task == "binary" else proba, dtype)

    clear = clear_rows(out, dtype)
    assert clear.mean() > 0.9
    if task == "multilabel":
        labels = (out > 0.5).astype(int)
    else:
        labels = est.classes_[net.predict(X)]
    np.testing.assert_array_equal(labels[clear], est.predict(X)[clear])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_sklearn_regressor_matches(mlp, n_outputs, hidden, activation, dtype):
    X = data(dtype)
    y = X[:, :n_outputs] * 2 + X[:, 1:2] ** 2
    est = mlp.MLPRegressor(
        hidden_layer_sizes=hidden, activation=activation, max_iter=30, random_state=0
    )
    fit_quietly(est, X, y[:, 0] if n_outputs == 1 else y)
    net = Network.from_sklearn(est)
    assert net.dtype == dtype
    assert [layer.activation for layer in net.layers][-1] == "identity"
    assert_close(net.forward(X), est.predict(X).reshape(len(X), n_outputs), dtype)


def test_sklearn_network_subclass(mlp):
    class MyNetwork(Network):
        pass

    est, X = small_regressor(mlp)
    assert type(MyNetwork.from_sklearn(est)) is MyNetwork


def test_sklearn_weights_are_copied(mlp):
    est, X = small_regressor(mlp)
    net = Network.from_sklearn(est)
    before = net.forward(X)
    est.coefs_[0][:] = 0
    np.testing.assert_array_equal(net.forward(X), before)


@pytest.mark.parametrize("cls_name", ["MLPClassifier", "MLPRegressor"])
def test_sklearn_unfitted(mlp, cls_name):
    with pytest.raises(ValueError, match=f"{cls_name} is not fitted"):
        Network.from_sklearn(getattr(mlp, cls_name)())


def test_sklearn_poisson_output_is_unsupported(mlp):
    est, _ = small_regressor(mlp, loss="poisson")
    with pytest.raises(ValueError, match=r"out_activation_ = 'exp'"):
        Network.from_sklearn(est)


def test_sklearn_not_an_mlp():
    with pytest.raises(TypeError, match="MLPClassifier or MLPRegressor; got object"):
        Network.from_sklearn(object())


def fake_mlp(dtype=np.float64, activation="tanh", out_activation="identity", seed=0):
    """An object with a fitted MLP's attributes: the converter needs nothing else."""
    rng = np.random.default_rng(seed)
    sizes = [3, 4, 2]
    return types.SimpleNamespace(
        coefs_=[
            rng.standard_normal(s).astype(dtype) for s in zip(sizes[:-1], sizes[1:], strict=True)
        ],
        intercepts_=[rng.standard_normal(n).astype(dtype) for n in sizes[1:]],
        activation=activation,
        out_activation_=out_activation,
        hidden_layer_sizes=(4,),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_sklearn_duck_typed(dtype):
    est = fake_mlp(dtype)
    X = data(dtype, n_features=3)
    expected = np.tanh(X @ est.coefs_[0] + est.intercepts_[0]) @ est.coefs_[1] + est.intercepts_[1]
    net = Network.from_sklearn(est)
    assert net.dtype == dtype
    assert_close(net.forward(X), expected, dtype)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"activation": "softplus"}, r"activation = 'softplus' has no dlfr equivalent"),
        ({"activation": "softmax"}, r"activation = 'softmax' has no dlfr equivalent"),
        ({"out_activation": "exp"}, r"out_activation_ = 'exp' has no dlfr equivalent"),
        ({"dtype": np.float16}, r"coefs_ must be float32 or float64; got float16"),
    ],
)
def test_sklearn_refusals(changes, message):
    with pytest.raises(ValueError, match=message):
        Network.from_sklearn(fake_mlp(**changes))


def test_sklearn_unfitted_duck_typed():
    with pytest.raises(ValueError, match="SimpleNamespace is not fitted"):
        Network.from_sklearn(types.SimpleNamespace(hidden_layer_sizes=(4,)))


# -- PyTorch ----------------------------------------------------------------


def torch_outputs(module, X):
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(X)).numpy()


def torch_mlp(torch, dtype, hidden, activation, output, n_out=3, seed=0):
    """Linear layers 4 -> hidden... -> n_out with the given activation modules."""
    nn = torch.nn
    torch.manual_seed(seed)
    sizes = [4, *hidden, n_out]
    mods = []
    for i, (n_in, n) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        mods.append(nn.Linear(n_in, n))
        act = output if i == len(sizes) - 2 else activation
        if act is not None:
            mods.append(act())
    module = nn.Sequential(*mods)
    return module.double() if dtype == np.float64 else module


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("activation",
                         ["Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "Identity", None])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output", [None, "Sigmoid", "Softmax1", "Softmax-1", "Tanh",
                                    "LeakyReLU", "ELU"])
def test_torch_matches(torch, output, hidden, activation, dtype):
    nn = torch.nn

    def make(name):
        if name is None:
            return None
        if name.startswith("Softmax"):
            return lambda: nn.Softmax(dim=int(name[7:]))
        return getattr(nn, name)

    module = torch_mlp(torch, dtype, hidden, make(activation), make(output))
    X = data(dtype)
    net = Network.from_torch(module)
    assert net.dtype == dtype
    assert net.sizes == [4, *hidden, 3]
    expected_acts = {None: "identity", "Identity": "identity", "Sigmoid": "sigmoid",
                     "Tanh": "tanh", "ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu",
                     "Softmax1": "softmax",
                     "Softmax-1": "softmax"}
    assert [layer.activation for layer in net.layers] == (
        [expected_acts[activation]] * len(hidden) + [expected_acts[output]]
    )
    out = net.forward(X)
    expected = torch_outputs(module, X)
    assert_close(out, expected, dtype)
    clear = clear_rows(out, dtype)
    np.testing.assert_array_equal(net.predict(X)[clear], expected.argmax(axis=1)[clear])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_torch_single_output_labels(torch, dtype):
    module = torch_mlp(torch, dtype, (5,), torch.nn.Tanh, torch.nn.Sigmoid, n_out=1)
    X = data(dtype, n=200)
    out = torch_outputs(module, X)
    clear = clear_rows(out, dtype)
    labels = Network.from_torch(module).predict(X)
    np.testing.assert_array_equal(labels[clear], (out[:, 0] >= 0.5)[clear])
    assert 0 < labels.sum() < len(labels)


def test_torch_nested_skipped_and_bias_free(torch):
    nn = torch.nn
    torch.manual_seed(1)
    module = nn.Sequential(
        nn.Flatten(),
        nn.Sequential(nn.Linear(4, 5, bias=False), nn.Dropout(0.5), nn.ReLU()),
        nn.Identity(),
        nn.Sequential(nn.Sequential(nn.Linear(5, 2)), nn.Identity(), nn.Sigmoid()),
    )
    net = Network.from_torch(module)
    assert net.sizes == [4, 5, 2]
    assert [layer.activation for layer in net.layers] == ["relu", "sigmoid"]
    np.testing.assert_array_equal(net.layers[0].b, 0)
    X = data(np.float32)
    assert_close(net.forward(X), torch_outputs(module.eval(), X), np.float32)


def test_torch_single_linear(torch):
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3).double()
    X = data(np.float64)
    net = Network.from_torch(layer)
    assert [la.activation for la in net.layers] == ["identity"]
    assert_close(net.forward(X), torch_outputs(layer, X), np.float64)


def test_torch_grad_state_untouched_and_weights_copied(torch):
    module = torch_mlp(torch, np.float32, (5,), torch.nn.Sigmoid, None)
    X = data(np.float32)
    module(torch.from_numpy(X)).sum().backward()
    grads = [p.grad.clone() for p in module.parameters()]
    net = Network.from_torch(module)
    for p, g in zip(module.parameters(), grads, strict=True):
        assert p.requires_grad
        assert torch.equal(p.grad, g)
    before = net.forward(X)
    with torch.no_grad():
        module[0].weight.zero_()
    np.testing.assert_array_equal(net.forward(X), before)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.Conv2d(1, 1, 1)),
         r"module 1 \(Conv2d\) is not supported"),
        (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3)),
         r"module 1 \(LayerNorm\) is not supported"),
        (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.Sequential(nn.Tanh(), nn.GELU())),
         r"module 1\.1 \(GELU\) is not supported"),
        (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.LeakyReLU(0.2)),
         r"module 1 \(LeakyReLU\): dlfr's leaky_relu has negative_slope=0\.01; "
         r"got negative_slope=0\.2"),
        (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.ELU(alpha=0.5)),
         r"module 1 \(ELU\): dlfr's elu has alpha=1\.0; got alpha=0\.5"),
        (lambda nn: nn.Conv1d(1, 1, 1), r"module 0 \(Conv1d\) is not supported"),
        (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sigmoid()),
         r"module 2 \(Sigmoid\): an activation must directly follow an nn.Linear"),
        (lambda nn: nn.Sequential(nn.Sigmoid(), nn.Linear(4, 3)),
         r"module 0 \(Sigmoid\): an activation must directly follow"),
        (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=0)),
         r"module 1 \(Softmax\): softmax must be over dim 1 or -1; got dim=0"),
        (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.Softmax()), r"got dim=None"),
        (lambda nn: nn.Sequential(nn.Flatten(0), nn.Linear(4, 3)),
         r"module 0 \(Flatten\): only Flatten\(start_dim=1, end_dim=-1\)"),
        (lambda nn: nn.Sequential(), r"Sequential has no nn.Linear layer"),
        (lambda nn: nn.Sequential(nn.Identity()), r"Sequential has no nn.Linear layer"),
    ],
    ids=["conv2d", "layernorm", "nested-gelu", "leakyrelu-slope", "elu-alpha", "bare-conv1d",
         "two-activations",
         "activation-first", "softmax-dim0", "softmax-dim-none", "flatten-dim0", "empty",
         "no-linear"],
)
def test_torch_refusals(torch, build, message):
    with pytest.raises(ValueError, match=message):
        Network.from_torch(build(torch.nn))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_torch_half_precision_refused(torch, dtype):
    module = torch.nn.Sequential(torch.nn.Linear(4, 3)).to(getattr(torch, dtype))
    with pytest.raises(ValueError, match=f"float32 or float64; got torch.{dtype}"):
        Network.from_torch(module)


def test_torch_mixed_dtypes_refused(torch):
    nn = torch.nn
    module = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2).double())
    with pytest.raises(ValueError, match="share one dtype"):
        Network.from_torch(module)


def test_import_loads_neither_sklearn_nor_torch():
    code = "import sys, dlfr; print('torch' in sys.modules, 'sklearn' in sys.modules)"
    src = os.path.dirname(os.path.dirname(dlfr.__file__))
    env = {**os.environ, "PYTHONPATH": src}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("thing", ["hello", 3, None, [1, 2]])
def test_torch_not_a_module_is_a_type_error(torch, thing):
    # ValueError before, where from_sklearn raises TypeError for the same mistake
    with pytest.raises(TypeError, match="expected a torch.nn.Sequential or nn.Linear"):
        dlfr.Network.from_torch(thing)
