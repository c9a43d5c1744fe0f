"""The peers dlfr is measured against, each running the same sigmoid network.

Each ``*_runner(Ws, bs, threads)`` takes a network's weights (W of shape
(n_in, n_out), b of shape (n_out,), sigmoid on every layer) and returns a
function X -> output activations. The command line's ``dlfr bench`` and the
benchmark suites both use these, so both compare the same things. The peer
libraries are optional and imported only when their runner is built.
``numpy_forward`` also runs a network of other activations, and
``onnx_session`` opens a user's own .onnx file (``dlfr bench --model``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._names import ActivationName
from ._reference import plain_forward


def numpy_forward(Ws: Sequence[np.ndarray], bs: Sequence[np.ndarray],
                  activations: Sequence[ActivationName] | None = None) -> Callable:
    """The plain NumPy expression, ``dlfr._reference.plain_forward``: per layer
    1 / (1 + exp(-(X @ W + b))), or the layer's other activation where
    ``activations`` names one."""
    return functools.partial(plain_forward, weights=Ws, biases=bs, activations=activations)


def onnx_session(model: str | bytes, threads: int) -> Any:
    """An ONNX Runtime InferenceSession of a model (its path or bytes) on ``threads`` threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def onnx_runner(Ws: list, bs: list, threads: int) -> Callable:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT if Ws[0].dtype == np.float32 else TensorProto.DOUBLE
    nodes, inits, prev = [], [], "X"
    for i, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        inits += [numpy_helper.from_array(W, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [
            helper.make_node("MatMul", [prev, f"W{i}"], [f"z{i}"]),
            helper.make_node("Add", [f"z{i}", f"b{i}"], [f"s{i}"]),
            helper.make_node("Sigmoid", [f"s{i}"], [f"a{i}"]),
        ]
        prev = f"a{i}"
    graph = helper.make_graph(
        nodes, "dlfr_mlp",
        [helper.make_tensor_value_info("X", elem, ["batch", Ws[0].shape[0]])],
        [helper.make_tensor_value_info(prev, elem, ["batch", Ws[-1].shape[1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    session = onnx_session(model.SerializeToString(), threads)
    return lambda X: session.run(None, {"X": X})[0]


def torch_runner(Ws: list, bs: list, threads: int) -> Callable:
    import torch

    torch.set_num_threads(threads)
    dtype = torch.float32 if Ws[0].dtype == np.float32 else torch.float64
    layers: list[Any] = []
    for W, b in zip(Ws, bs, strict=True):
        linear = torch.nn.Linear(W.shape[0], W.shape[1], dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers).eval()

    def run(X: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(X)).numpy()

    return run


def sklearn_runner(Ws: list, bs: list, threads: int) -> Callable:
    """scikit-learn's MLPClassifier.predict_proba with these weights.

    A multilabel fit on a few random rows gives a fitted estimator whose
    output layer is logistic (one sigmoid per output, like dlfr's); then its
    coefs_ and intercepts_ are replaced by the weights under test. ``threads``
    is not used: scikit-learn's MLP runs on BLAS's threads.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    n_in, n_out = Ws[0].shape[0], Ws[-1].shape[1]
    rng = np.random.default_rng(0)
    X = rng.random((8, n_in)).astype(Ws[0].dtype)
    Y = np.tile([[0], [1]], (4, max(n_out, 2)))[:, :n_out]  # both classes in each column
    if n_out == 1:
        Y = Y[:, 0]
    model = MLPClassifier(hidden_layer_sizes=tuple(W.shape[1] for W in Ws[:-1]),
                          activation="logistic", max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, Y)
    model.coefs_ = [np.array(W) for W in Ws]
    model.intercepts_ = [np.array(b) for b in bs]

    def run(X: np.ndarray) -> np.ndarray:
        proba = model.predict_proba(X)
        return proba[:, 1:] if n_out == 1 else proba

    return run

RUNNERS: dict[str, Callable[[list, list, int], Callable]] = {
    "onnxruntime": onnx_runner, "torch": torch_runner, "sklearn": sklearn_runner,
}
