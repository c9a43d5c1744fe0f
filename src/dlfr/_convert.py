"""Networks from models trained elsewhere: scikit-learn MLPs and PyTorch Sequentials.

Neither library is imported when dlfr is: scikit-learn not at all (an
estimator is read through its fitted attributes), torch only inside
``from_torch``, to recognise the module types.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._names import DTYPES, ELU_ALPHA, LEAKY_RELU_SLOPE, ActivationName
from .layers import Dense

#: scikit-learn activation name -> dlfr activation name
_SKLEARN_ACTIVATIONS: dict[str, ActivationName] = {
    "identity": "identity",
    "logistic": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "softmax": "softmax",  # only ever an out_activation_
}


def _network(cls: Any, params: list[tuple[Any, Any, ActivationName]], dtype: np.dtype) -> Any:
    """``cls([Dense, ...])`` from (W of shape (n_in, n_out), b, activation) triples."""
    return cls([Dense.from_params(W, b, activation, dtype) for W, b, activation in params])


def from_sklearn(cls: Any, estimator: Any) -> Any:
    """A network computing a fitted scikit-learn MLP's outputs.

    Parameters
    ----------
    cls : type
        The network class to build (``dlfr.Network`` or a subclass).
    estimator : MLPClassifier or MLPRegressor
        Fitted. Read through ``coefs_``, ``intercepts_``, ``activation`` and
        ``out_activation_`` only, so scikit-learn is not imported.

    Returns
    -------
    Network
        Of the dtype of ``estimator.coefs_`` (float32 or float64). Its
        ``forward`` equals ``predict_proba`` (for a binary classifier, the
        positive column ``predict_proba(X)[:, 1]``, as one output) or the
        regressor's ``predict``, shaped (n_samples, n_outputs).

    Raises
    ------
    ValueError
        If the estimator is not fitted, or uses an activation dlfr lacks
        (e.g. ``out_activation_ == "exp"`` of ``MLPRegressor(loss="poisson")``).
    TypeError
        If it is not an MLP at all.

    Notes
    -----
    Labels: ``net.predict`` returns indices into ``estimator.classes_``, so
    ``estimator.classes_[net.predict(X)]`` is the classifier's ``predict`` for
    binary and multiclass problems (a binary output of exactly 0.5 is the one
    disagreement: dlfr says >= 0.5, scikit-learn > 0.5). For a multilabel
    classifier use ``net.forward(X) > 0.5``, one column per label.
    """
    name = type(estimator).__name__
    if not hasattr(estimator, "coefs_"):
        if hasattr(estimator, "hidden_layer_sizes"):
            raise ValueError(f"this {name} is not fitted yet: call fit before converting it")
        raise TypeError(f"expected a fitted MLPClassifier or MLPRegressor; got {name}")
    coefs, intercepts = list(estimator.coefs_), list(estimator.intercepts_)
    dtype = np.asarray(coefs[0]).dtype
    if dtype not in DTYPES.values():
        raise ValueError(f"{name}.coefs_ must be float32 or float64; got {dtype}")
    acts = []
    for attr in ["activation"] * (len(coefs) - 1) + ["out_activation_"]:
        act = getattr(estimator, attr)
        if act not in _SKLEARN_ACTIVATIONS or (act == "softmax" and attr == "activation"):
            raise ValueError(f"{name}.{attr} = {act!r} has no dlfr equivalent")
        acts.append(_SKLEARN_ACTIVATIONS[act])
    return _network(cls, list(zip(coefs, intercepts, acts, strict=True)), dtype)


def _flatten(module: Any, nn: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(name, leaf module) pairs of a Sequential, nested ones flattened: "2.1" names."""
    if type(module) is not nn.Sequential:
        return [(prefix or "0", module)]
    out = []
    for name, child in module.named_children():
        out += _flatten(child, nn, f"{prefix}.{name}" if prefix else name)
    return out


def from_torch(cls: Any, module: Any) -> Any:
    """A network computing a PyTorch ``nn.Sequential`` of linear layers and activations.

    Parameters
    ----------
    cls : type
        The network class to build (``dlfr.Network`` or a subclass).
    module : torch.nn.Sequential or torch.nn.Linear
        Of ``nn.Linear`` layers, each followed by at most one of ``nn.Sigmoid``,
        ``nn.Tanh``, ``nn.ReLU``, ``nn.LeakyReLU()`` (slope 0.01, its
        default), ``nn.ELU()`` (alpha 1.0, its default) or
        ``nn.Softmax(dim=1)`` (or ``dim=-1``); a Linear with no activation
        after it is identity. Nested Sequentials are
        flattened. ``nn.Identity``, ``nn.Dropout`` and ``nn.Flatten()`` are
        skipped: the network computes the module in eval mode on rows of
        (n_samples, n_features). Module types are matched exactly (a subclass
        may compute something else, so it is refused).

    Returns
    -------
    Network
        Of the parameters' dtype (float32 or float64). The parameters are
        copied (to CPU) without touching their autograd state.

    Raises
    ------
    ValueError
        Naming the module's class and its index (as in ``print(module)``,
        e.g. "2.1" inside a nested Sequential) for an unsupported module, an
        activation with no Linear before it, a Softmax over another dim, or
        a LeakyReLU or ELU with another slope or alpha than dlfr's;
        also for no Linear at all, mixed dtypes, or float16/bfloat16.
    TypeError
        If ``module`` is not a torch module at all (as ``from_sklearn`` for
        a non-estimator).
    """
    import torch
    from torch import nn

    if not isinstance(module, nn.Module):
        raise TypeError(
            f"expected a torch.nn.Sequential or nn.Linear; got {type(module).__name__}"
        )
    acts = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.ReLU: "relu", nn.Softmax: "softmax",
            nn.LeakyReLU: "leaky_relu", nn.ELU: "elu"}
    # the one parameter dlfr's activation fixes: (attribute, dlfr's value)
    fixed = {nn.LeakyReLU: ("negative_slope", LEAKY_RELU_SLOPE), nn.ELU: ("alpha", ELU_ALPHA)}
    params: list[list[Any]] = []  # [weight (out, in), bias or None, activation]
    after_linear = False  # the last Linear has no activation yet
    for where, m in _flatten(module, nn):
        kind = type(m)
        what = f"module {where} ({kind.__name__})"
        if kind is nn.Linear:
            params.append([m.weight, m.bias, "identity"])
            after_linear = True
        elif kind in acts:
            if kind is nn.Softmax and m.dim not in (1, -1):
                raise ValueError(f"{what}: softmax must be over dim 1 or -1; got dim={m.dim}")
            if kind in fixed:
                attr, value = fixed[kind]
                if getattr(m, attr) != value:
                    raise ValueError(f"{what}: dlfr's {acts[kind]} has {attr}={value}; "
                                     f"got {attr}={getattr(m, attr)!r}")
            if not after_linear:
                raise ValueError(f"{what}: an activation must directly follow an nn.Linear")
            params[-1][2] = acts[kind]
            after_linear = False
        elif kind in (nn.Identity, nn.Dropout, nn.Flatten):  # no-ops on rows, in eval mode
            if kind is nn.Flatten and (m.start_dim, m.end_dim) != (1, -1):
                raise ValueError(f"{what}: only Flatten(start_dim=1, end_dim=-1) is supported")
        else:
            raise ValueError(
                f"{what} is not supported: use nn.Linear, nn.Sigmoid, nn.Tanh, nn.ReLU, "
                "nn.LeakyReLU(), nn.ELU(), nn.Softmax(dim=1), nn.Identity, nn.Dropout or "
                "nn.Flatten"
            )
    if not params:
        raise ValueError(f"{type(module).__name__} has no nn.Linear layer")
    dtypes = {t.dtype for w, b, _ in params for t in (w, b) if t is not None}
    if len(dtypes) != 1:
        raise ValueError(f"the Linear layers must share one dtype; got {sorted(map(str, dtypes))}")
    dtypes_np: dict[Any, np.dtype] = {torch.float32: DTYPES["float32"],
                                      torch.float64: DTYPES["float64"]}
    dtype = dtypes_np.get(next(iter(dtypes)))
    if dtype is None:
        raise ValueError(f"parameters must be float32 or float64; got {next(iter(dtypes))}")
    triples = [
        (
            w.detach().cpu().numpy().T,
            np.zeros(w.shape[0], dtype) if b is None else b.detach().cpu().numpy(),
            act,
        )
        for w, b, act in params
    ]
    return _network(cls, triples, dtype)
