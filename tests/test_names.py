"""The registry of names (dlfr._names): each name listed once, meaning the
same thing to the kernels, the references, model files, training and the
type checker."""

from __future__ import annotations

import typing

import numpy as np
import pytest
from conftest import DTYPES, dtype_id

from dlfr import (
    Dense,
    Network,
    Perceptron,
    _kernels,
    _names,
    _reference,
    activations,
    datasets,
    io,
    kernels,
    training,
)
from dlfr import _validation as validation

#: The names dlfr has always understood: the registry must keep every one.
KNOWN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "step", "softmax", "leaky_relu",
                     "elu")
KNOWN_LOSSES = ("mse", "cross_entropy")
KNOWN_DTYPES = ("float32", "float64")


def test_literal_types_list_exactly_the_registry_names():
    assert typing.get_args(_names.ActivationName) == _names.ACTIVATIONS == KNOWN_ACTIVATIONS
    assert tuple(_names.ACTIVATION_CODES) == _names.ACTIVATIONS
    assert typing.get_args(_names.LossName) == _names.LOSSES == KNOWN_LOSSES
    assert tuple(_names.LOSS_CODES) == _names.LOSSES
    assert typing.get_args(_names.DTypeName) == tuple(_names.DTYPES) == KNOWN_DTYPES


def test_public_lists_are_the_registry():
    assert kernels.ACTIVATIONS is _names.ACTIVATIONS
    assert io.ACTIVATIONS is _names.ACTIVATIONS
    assert activations.ACTIVATIONS is _names.ACTIVATIONS
    assert activations.CODES is _names.ACTIVATION_CODES
    assert training.LOSSES is _names.LOSSES


@pytest.mark.parametrize("name", _names.ACTIVATIONS)
def test_every_activation_has_its_own_kernel_code(name):
    code = _names.ACTIVATION_CODES[name]
    assert code == getattr(_kernels, name.upper())
    assert activations.code(name) == code
    assert list(_names.ACTIVATION_CODES.values()).count(code) == 1


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", _names.ACTIVATIONS)
def test_every_activation_code_runs_its_reference(name, dtype):
    """The code a name maps to computes what the name's NumPy twin computes."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((9, 5)).astype(dtype)
    W = rng.standard_normal((5, 3)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    assert _reference.ACTIVATIONS[name] is getattr(_reference, name)
    assert activations.reference(name) is _reference.ACTIVATIONS[name]
    want = _reference.dense(X.astype(np.float64), W.astype(np.float64), b.astype(np.float64), name)
    got = kernels.dense(X, W, b, activation=name)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", _names.ACTIVATIONS)
def test_every_activation_is_accepted_by_layers_networks_and_model_files(tmp_path, name):
    assert Dense(3, 2, activation=name).activation == name
    net = Network([3, 4, 2], activation=name, seed=0)
    net.save(tmp_path / "m.npz")
    assert io.load_model(tmp_path / "m.npz").activations == [name, name]


def test_activation_constants_are_the_kernels():
    assert _names.LEAKY_RELU_SLOPE == _kernels.LEAKY_RELU_SLOPE == 0.01
    assert _names.ELU_ALPHA == 1.0


def test_unknown_names_are_refused_naming_the_choices():
    choices = ", ".join(map(repr, _names.ACTIVATIONS))
    for call in (lambda: Dense(3, 2, activation="gelu"),
                 lambda: Network([3, 2], activation="gelu"),
                 lambda: kernels.dense(np.zeros((1, 3)), np.zeros((3, 2)), np.zeros(2), "gelu")):
        with pytest.raises(ValueError, match=rf"activation must be one of {choices}; got 'gelu'"):
            call()
    with pytest.raises(ValueError,
                       match=r"loss must be one of 'mse', 'cross_entropy'; got \['mse'\]"):
        Network([3, 2], seed=0).fit(np.zeros((2, 3)), [0, 1], epochs=1, loss=["mse"])


def test_loss_codes_are_the_trainers():
    assert _names.LOSS_CODES == {"mse": _kernels.LOSS_MSE,
                                 "cross_entropy": _kernels.LOSS_CROSS_ENTROPY}
    assert _kernels.LOSS_MSE != _kernels.LOSS_CROSS_ENTROPY


def train_one_epoch(hidden: str, output: str, loss: str) -> dict:
    X = np.random.default_rng(0).standard_normal((8, 3))
    net = Network([3, 4, 2], activation=hidden, output_activation=output, seed=0)
    return net.fit(X, [0, 1] * 4, epochs=1, batch_size=4, learning_rate=0.1, loss=loss)


@pytest.mark.parametrize("output", _names.TRAINABLE_OUTPUT)
@pytest.mark.parametrize("hidden", _names.TRAINABLE_HIDDEN)
def test_fit_trains_every_trainable_activation(hidden, output):
    loss = "cross_entropy" if output == "softmax" else "mse"
    history = train_one_epoch(hidden, output, loss)
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0])


@pytest.mark.parametrize("name", sorted(set(_names.ACTIVATIONS) - set(_names.TRAINABLE_HIDDEN)))
def test_fit_refuses_a_hidden_activation_the_registry_does_not_train(name):
    assert name in ("step", "softmax")
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        train_one_epoch(name, "sigmoid", "mse")


@pytest.mark.parametrize("name", sorted(set(_names.ACTIVATIONS) - set(_names.TRAINABLE_OUTPUT)))
def test_fit_refuses_an_output_activation_the_registry_does_not_train(name):
    with pytest.raises(ValueError, match=rf"\b{name}\b.*no gradient"):
        train_one_epoch("sigmoid", name, "mse")


def test_dtypes_are_native_float32_and_float64():
    assert _names.DTYPES == {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
    for name, dtype in _names.DTYPES.items():
        assert dtype.name == name and dtype.isnative
    assert [np.dtype(d) for d in DTYPES] == list(_names.DTYPES.values())


@pytest.mark.parametrize(
    ("given", "name"),
    [("float32", "float32"), (np.float64, "float64"), (np.dtype(">f4"), "float32"),
     ("<f8", "float64"), ("float16", None), (np.int32, None), (None, None), ("nope", None),
     ([1], None), ({"x": 1}, None)],
)
def test_dtype_name(given, name):
    assert _names.dtype_name(given) == name
    if name is None:
        with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
            validation.real_dtype("dtype", given)
    else:
        assert validation.real_dtype("dtype", given) is _names.DTYPES[name]


HINTS = [
    (Dense.__init__, "activation", _names.ActivationName),
    (Dense.__init__, "dtype", _names.DTypeSpec),
    (Network.__init__, "activation", _names.ActivationName),
    (Network.__init__, "output_activation", _names.ActivationName | None),
    (Network.__init__, "dtype", _names.DTypeSpec),
    (Network.fit, "loss", _names.LossName),
    (training.fit, "loss", _names.LossName),
    (kernels.dense, "activation", _names.ActivationName),
    (_reference.dense, "activation", _names.ActivationName),
    (Perceptron.__init__, "dtype", _names.DTypeSpec),
    (datasets.one_hot, "dtype", _names.DTypeSpec),
    (io.save_model, "dtype", _names.DTypeSpec),
]


@pytest.mark.parametrize(("function", "parameter", "hint"), HINTS,
                         ids=[f"{f.__qualname__}-{p}" for f, p, _ in HINTS])
def test_signatures_name_the_registry_types(function, parameter, hint):
    assert typing.get_type_hints(function)[parameter] == hint
