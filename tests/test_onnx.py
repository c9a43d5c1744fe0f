"""Network.from_onnx and Network.to_onnx (dlfr._onnx, _onnx_read, _onnx_tensors).

Files come from the real exporters (torch.onnx.export, both its TorchScript
and its default dynamo exporter, and skl2onnx) and from onnx.helper for the
spellings no exporter here writes; every network read is checked against ONNX
Runtime on the same file, within 1e-5 (float32) / 1e-12 (float64), labels
identical. Two exceptions, both from ONNX rather than dlfr: a float64
LeakyRelu, whose alpha ONNX keeps as a float32 (ONNX Runtime's slope is
float32(0.01), dlfr's 0.01: LEAKY_F64_TOL apart), and a float64 Elu, which
ONNX Runtime does not run (such models are checked against PyTorch or dlfr's
own NumPy twin instead). Every network written is checked by onnx.checker (full_check) and
run by ONNX Runtime. Tests skip where onnx, onnxruntime, torch or skl2onnx is
not installed (``pip install ".[peers]"`` and torch==2.13.0).
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import dlfr
from dlfr import Network
from dlfr.network import load_any, save_any

DTYPES = [np.float32, np.float64]
TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
#: float64 networks with leaky_relu against ONNX Runtime: ONNX stores LeakyRelu's
#: alpha as float32(0.01) = 0.01 (1 - 2.2e-8)
LEAKY_F64_TOL = 3e-8
ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "step", "softmax", "leaky_relu", "elu"]
FLOAT, DOUBLE = 1, 11  # onnx.TensorProto


@pytest.fixture(scope="module")
def onnx():
    return pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def ort():
    return pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def torch(onnx):
    """torch, for torch.onnx.export (which needs onnx)."""
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def skl2onnx(onnx):
    pytest.importorskip("sklearn")
    return pytest.importorskip("skl2onnx")


def assert_close(actual, expected, dtype, tol=None):
    tol = TOL[np.dtype(dtype)] if tol is None else tol
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def runtime_tolerance(ort, model, dtype, activations):
    """The tolerance of ONNX Runtime's outputs on ``model`` (layers of these
    activations) against dlfr's; skips the test where ONNX Runtime has no
    float64 Elu (checking that it says so, so a release that adds one shows)."""
    if np.dtype(dtype) != np.float64:
        return TOL[np.dtype(dtype)]
    if "elu" in activations:
        with pytest.raises(ort.capi.onnxruntime_pybind11_state.NotImplemented, match="Elu"):
            session(ort, model)
        pytest.skip("ONNX Runtime runs Elu in float32 only")
    return LEAKY_F64_TOL if "leaky_relu" in activations else TOL[np.dtype(dtype)]


def data(dtype, n=60, n_features=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, n_features)).astype(dtype)


def session(ort, model):
    """An ONNX Runtime session of a ModelProto, bytes or a path, on one thread."""
    if not isinstance(model, (bytes, str, os.PathLike)):
        model = model.SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(os.fspath(model) if isinstance(model, os.PathLike) else model,
                                options, providers=["CPUExecutionProvider"])


def run(ort, model, X):
    """{output name: value} of ONNX Runtime on X."""
    sess = session(ort, model)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: X}), strict=True))


def assert_matches_runtime(ort, source, X, dtype):
    """Network.from_onnx(source) against ONNX Runtime on the same model; returns the network."""
    net = Network.from_onnx(source)
    assert net.dtype == dtype
    outputs = run(ort, source, X)
    expected = outputs[net.onnx_names["output"]]
    assert_close(net.forward(X).ravel(), np.asarray(expected).ravel(), dtype)
    return net


def model(onnx, nodes, initializers, *, opset=17, elem=FLOAT, n_in=4, n_out=3, inputs=None,
          outputs=None, ir_version=None):
    """A hand-made model: input X (n, n_in), output Y (n, n_out) unless told otherwise."""
    helper = onnx.helper
    graph = helper.make_graph(
        nodes, "g",
        inputs if inputs is not None else [helper.make_tensor_value_info("X", elem,
                                                                         ["n", n_in])],
        outputs if outputs is not None else [helper.make_tensor_value_info("Y", elem,
                                                                           ["n", n_out])],
        initializers,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir_version or helper.find_min_ir_version_for(list(m.opset_import))
    return m


def weights(dtype, shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def tensor(onnx, name, array):
    return onnx.numpy_helper.from_array(np.asarray(array), name)


# -- to_onnx --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output_activation", ACTIVATIONS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_to_onnx_runs_as_forward(onnx, ort, activation, output_activation, dtype):
    net = Network([7, 6, 5, 4], activation=activation, output_activation=output_activation,
                  dtype=dtype, seed=0)
    m = net.to_onnx()
    onnx.checker.check_model(m, full_check=True)
    tol = runtime_tolerance(ort, m, dtype, (activation, output_activation))
    sess = session(ort, m)
    X = data(dtype, n=1000, n_features=7, seed=2)
    X[:10] = 0  # rows whose first layer outputs are the biases exactly
    for batch in (1, 1000):
        (out,) = sess.run(None, {"X": X[:batch]})
        assert out.dtype == dtype and out.shape == (batch, 4)
        assert_close(out, net.forward(X[:batch]), dtype, tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_step_matches_dlfr_at_zero_infinity_and_nan(onnx, ort, dtype):
    # W = I and b = 0: z is X (one row at a time, so NaN and inf stay in their row)
    net = Network([dlfr.Dense.from_params(np.eye(3), np.zeros(3), "step", dtype)])
    X = np.array([[0.0, -0.0, 1e-30], [-1e-30, 5.0, -5.0], [np.inf, -np.inf, 0.0],
                  [np.nan, 1.0, 0.0]], dtype=dtype)
    (out,) = session(ort, net.to_onnx()).run(None, {"X": X})
    expected = net.forward(X, check_finite=False)
    assert expected[0].tolist() == [1, 1, 1] and expected[1].tolist() == [0, 1, 0]
    assert np.isnan(expected[3]).all()  # NaN * 0 reaches every output of its row
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["leaky_relu", "elu"])
def test_leaky_relu_and_elu_written_as_onnx_ops(onnx, ort, activation, dtype):
    # one input, W = 1 and b = 0: z is X, specials included
    net = Network([dlfr.Dense.from_params(np.ones((1, 1)), np.zeros(1), activation, dtype)])
    m = net.to_onnx()
    op, alpha = {"leaky_relu": ("LeakyRelu", 0.01), "elu": ("Elu", 1.0)}[activation]
    (node,) = [n for n in m.graph.node if n.op_type == op]
    assert [(a.name, a.f) for a in node.attribute] == [("alpha", np.float32(alpha))]
    X = np.array([0.0, -0.0, 1e-30, -1e-30, -1e-3, 2.5, -0.5, -3.0, -40.0, -1e30, 1e30,
                  np.inf, -np.inf, np.nan], dtype=dtype).reshape(-1, 1)
    expected = net.forward(X, check_finite=False)
    assert expected[-3:-1, 0].tolist() == [np.inf, -np.inf if op == "LeakyRelu" else -1.0]
    tol = runtime_tolerance(ort, m, dtype, [activation])
    (out,) = session(ort, m).run(None, {"X": X})
    # ONNX Runtime's Elu computes exp(z) - 1, within 1e-8 of 0 near z = 0: the
    # absolute part of the tolerance covers it; NaN stays NaN in both
    assert_close(out, expected, dtype, tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_to_onnx_model_fields(onnx, dtype):
    net = Network([5, 3, 2], dtype=dtype, seed=0)
    m = net.to_onnx()
    assert m.producer_name == "dlfr" and m.producer_version == dlfr.__version__
    assert [(o.domain, o.version) for o in m.opset_import] == [("", 17)]
    (x,), (y,) = m.graph.input, m.graph.output
    elem = FLOAT if dtype == np.float32 else DOUBLE
    for value, name, width in ((x, "X", 5), (y, "Y", 2)):
        assert value.name == name
        assert value.type.tensor_type.elem_type == elem
        batch, features = value.type.tensor_type.shape.dim
        assert batch.dim_param == "batch" and not batch.HasField("dim_value")
        assert features.dim_value == width


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_round_trip_is_bit_identical(onnx, activation, dtype, tmp_path):
    net = Network([6, 5, 4, 3], activation=activation, output_activation=activation,
                  dtype=dtype, seed=3)
    path = tmp_path / "m.onnx"
    m = net.to_onnx(path)
    for source in (m, m.SerializeToString(), path, str(path)):
        back = Network.from_onnx(source)
        assert back.dtype == dtype and back.sizes == net.sizes
        for a, b in zip(net.layers, back.layers, strict=True):
            assert a.activation == b.activation
            assert a.W.tobytes() == b.W.tobytes() and a.b.tobytes() == b.b.tobytes()
        assert back.onnx_names == {"input": "X", "output": "Y"}
        assert back.classes is None
    assert path.read_bytes() == m.SerializeToString()


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_to_onnx_opsets(onnx, ort, opset):
    net = Network([4, 3, 2], activation="step", output_activation="softmax", seed=0)
    m = net.to_onnx(opset=opset)
    onnx.checker.check_model(m, full_check=True)
    assert m.opset_import[0].version == opset
    X = data(np.float32)
    assert_close(run(ort, m, X)["Y"], net.forward(X), np.float32)


@pytest.mark.parametrize("opset", [12, -1, 10_000, True, 17.0, "17"])
def test_to_onnx_bad_opset(onnx, opset):
    with pytest.raises(ValueError, match=r"opset must be an integer from 13 to \d+"):
        Network([2, 2]).to_onnx(opset=opset)


def test_to_onnx_too_large_is_refused_and_nothing_written(onnx, monkeypatch, tmp_path):
    from dlfr import _onnx

    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    monkeypatch.setattr(_onnx, "MAX_BYTES", 100)
    with pytest.raises(ValueError, match=r"weights take 2,080 bytes, more than one ONNX file"):
        Network([64, 8]).to_onnx(path)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["m.onnx"]


def test_to_onnx_write_failure_leaves_the_file(onnx, monkeypatch, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space left"):
        Network([3, 2]).to_onnx(path)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["m.onnx"]


# -- classes and the label output -------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("classes", [[3, 7], ["no", "yes"], [10, 20, 30], ["a", "b", "c"]])
def test_label_output_is_classes_of_predict(onnx, ort, classes, dtype):
    n_out = 1 if len(classes) == 2 else len(classes)
    net = Network([4, 5, n_out], activation="tanh",
                  output_activation="sigmoid" if n_out == 1 else "softmax", dtype=dtype, seed=1)
    net.layers[-1].b = np.zeros(n_out)  # outputs centred, so every class wins on some rows
    net.classes = classes
    m = net.to_onnx()
    onnx.checker.check_model(m, full_check=True)
    X = data(dtype, n=200) * 3
    outputs = run(ort, m, X)
    assert list(outputs) == ["Y", "label"]
    labels = np.asarray(classes)[net.predict(X)]
    assert len(set(labels)) == len(classes)  # every class is predicted somewhere
    np.testing.assert_array_equal(outputs["label"], labels)
    back = Network.from_onnx(m)
    assert back.classes.tolist() == list(classes)
    assert back.onnx_names == {"input": "X", "output": "Y", "label": "label"}


def test_label_output_at_exactly_one_half(onnx, ort):
    # p == 0.5 is the positive class in dlfr's predict and in the written model
    net = Network([dlfr.Dense.from_params(np.zeros((2, 1)), np.zeros(1), "sigmoid", "float32")])
    net.classes = ["low", "high"]
    X = np.ones((3, 2), np.float32)
    assert net.forward(X)[0, 0] == 0.5
    assert run(ort, net.to_onnx(), X)["label"].tolist() == ["high"] * 3


@pytest.mark.parametrize(
    ("classes", "n_out", "message"),
    [
        ([0, 1, 2], 1, r"classes must be 2 integer or string labels \(below 0.5 and from 0.5"),
        (["a", "b"], 3, r"classes must be 3 integer or string labels \(one per output\)"),
        ([1, "a", 2], 3, r"got mixed <U21"),
        ([0.5, 1.5], 2, r"got float64"),
        ([[0, 1]], 2, r"of shape \(1, 2\)"),
        ([True, False], 2, r"got bool"),
        (np.array([2**63, 1], dtype=np.uint64), 2, r"got uint64"),
        ("ab", 2, r"of shape \(\)"),
    ],
)
def test_classes_are_checked(classes, n_out, message):
    net = Network([3, n_out])
    with pytest.raises(ValueError, match=message):
        net.classes = classes
    assert net.classes is None


def test_classes_kept_by_save_load_and_pickle(tmp_path):
    net = Network([3, 4, 3], output_activation="softmax", seed=0)
    net.classes = np.array([5, 6, 7], dtype=np.int32)
    assert net.classes.dtype == np.int64
    net.save(tmp_path / "m.npz")
    for back in (Network.load(tmp_path / "m.npz"), pickle.loads(pickle.dumps(net))):
        assert back.classes.tolist() == [5, 6, 7] and back.classes.dtype == np.int64
    net.classes = ["x", "y", "z"]
    net.save(tmp_path / "m.npz")
    assert Network.load(tmp_path / "m.npz").classes.tolist() == ["x", "y", "z"]
    net.classes = None
    net.save(tmp_path / "m.npz")
    assert Network.load(tmp_path / "m.npz").classes is None


def test_bad_classes_in_a_model_file(tmp_path):
    from dlfr import io

    net = Network([3, 2])
    io.save_model(tmp_path / "m.npz", sizes=net.sizes, activations=["sigmoid"],
                  weights=[net.layers[0].W], biases=[net.layers[0].b], dtype="float32",
                  extra={"classes": [1, "a"]})
    with pytest.raises(ValueError, match=r"m\.npz: header classes must be 2 integer or string"):
        Network.load(tmp_path / "m.npz")


# -- files: load_any, save_any ----------------------------------------------------------


def test_load_any_and_save_any(onnx, tmp_path):
    net = Network([4, 3, 2], activation="tanh", seed=0)
    net.classes = ["a", "b"]
    for name in ("m.onnx", "M.ONNX", "m.npz", "m"):
        save_any(net, tmp_path / name)
        back = load_any(tmp_path / name)
        assert back.classes.tolist() == ["a", "b"]
        assert back.layers[0].W.tobytes() == net.layers[0].W.tobytes()
    assert (tmp_path / "m.onnx").read_bytes()[:2] != b"PK"
    assert (tmp_path / "m.npz").read_bytes()[:2] == b"PK"


# -- from_onnx: the real exporters -------------------------------------------------------


def torch_sequential(torch, spec, dtype, seed=0):
    nn = torch.nn
    torch.manual_seed(seed)
    layers = []
    for item in spec:
        if isinstance(item, tuple):
            layers.append(nn.Linear(*item[:2], bias=item[2] if len(item) > 2 else True))
        else:
            layers.append(item(nn))
    return nn.Sequential(*layers).to(getattr(torch, np.dtype(dtype).name)).eval()


#: nn.LeakyReLU() and nn.ELU() export as LeakyRelu(alpha=0.01) and Elu(alpha=1.0)
TORCH_LEAKY_ELU = [(4, 6), lambda nn: nn.LeakyReLU(), (6, 5), lambda nn: nn.ELU(), (5, 3),
                   lambda nn: nn.LeakyReLU()]

TORCH_MODELS = {
    "sigmoid": [(4, 6), lambda nn: nn.Sigmoid(), (6, 3), lambda nn: nn.Sigmoid()],
    "tanh-no-bias": [(4, 6, False), lambda nn: nn.Tanh(), (6, 3, False)],
    "relu-softmax": [(4, 6), lambda nn: nn.ReLU(), (6, 5), lambda nn: nn.ReLU(), (5, 3),
                     lambda nn: nn.Softmax(dim=1)],
    "identity-softmax-1": [lambda nn: nn.Flatten(), (4, 6), lambda nn: nn.Identity(), (6, 3),
                           lambda nn: nn.Softmax(dim=-1)],
    "one-linear": [(4, 1)],
}


def torch_export(torch, module, path, n_features, *, dynamo, opset=None):
    x = torch.zeros(2, n_features, dtype=next(module.parameters()).dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated
        if dynamo:
            torch.onnx.export(module, (x,), path, dynamo=True, verbose=False,
                              dynamic_shapes=({0: torch.export.Dim("batch")},))
        else:
            torch.onnx.export(module, (x,), path, dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


@pytest.mark.parametrize("opset", [11, 17])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(TORCH_MODELS))
def test_torch_export(torch, ort, name, dtype, opset, tmp_path):
    module = torch_sequential(torch, TORCH_MODELS[name], dtype)
    path = tmp_path / "m.onnx"
    torch_export(torch, module, path, 4, dynamo=False, opset=opset)
    X = data(dtype)
    net = assert_matches_runtime(ort, path, X, dtype)
    with torch.no_grad():
        assert_close(net.forward(X), module(torch.from_numpy(X)).numpy(), dtype)
    assert net.onnx_names == {"input": "input", "output": "output"}


@pytest.mark.parametrize("opset", [11, 17])
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_export_leaky_relu_and_elu(torch, ort, dtype, opset, tmp_path):
    """Against PyTorch itself in both dtypes, and against ONNX Runtime in
    float32 (it has no float64 Elu)."""
    module = torch_sequential(torch, TORCH_LEAKY_ELU, dtype)
    path = tmp_path / "m.onnx"
    torch_export(torch, module, path, 4, dynamo=False, opset=opset)
    X = data(dtype) * 3  # both sides of 0 in every layer
    if dtype == np.float32:
        net = assert_matches_runtime(ort, path, X, dtype)
    else:
        net = Network.from_onnx(path)
    assert [layer.activation for layer in net.layers] == ["leaky_relu", "elu", "leaky_relu"]
    with torch.no_grad():
        assert_close(net.forward(X), module(torch.from_numpy(X)).numpy(), dtype)


@pytest.mark.slow
def test_torch_dynamo_export_leaky_relu_and_elu(torch, ort, tmp_path):
    pytest.importorskip("onnxscript")  # the default exporter's dependency
    module = torch_sequential(torch, TORCH_LEAKY_ELU, np.float32)
    path = tmp_path / "m.onnx"
    torch_export(torch, module, path, 4, dynamo=True)
    net = assert_matches_runtime(ort, path, data(np.float32) * 3, np.float32)
    assert [layer.activation for layer in net.layers] == ["leaky_relu", "elu", "leaky_relu"]


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_dynamo_export(torch, ort, dtype, tmp_path):
    pytest.importorskip("onnxscript")  # the default exporter's dependency
    spec = [(4, 6), lambda nn: nn.Sigmoid(), (6, 5, False), lambda nn: nn.Tanh(), (5, 5),
            lambda nn: nn.ReLU(), (5, 4), (4, 3), lambda nn: nn.Softmax(dim=-1)]
    module = torch_sequential(torch, spec, dtype)
    path = tmp_path / "m.onnx"
    torch_export(torch, module, path, 4, dynamo=True)
    net = assert_matches_runtime(ort, path, data(dtype), dtype)
    assert [layer.activation for layer in net.layers] == [
        "sigmoid", "tanh", "relu", "identity", "softmax"]


def fit_quietly(estimator, X, y):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


def skl2onnx_model(skl2onnx, estimator, X, zipmap=True):
    options = None if zipmap else {id(estimator): {"zipmap": False}}
    return skl2onnx.to_onnx(estimator, X[:1], options=options)


@pytest.mark.parametrize(("dtype", "zipmap"), [(np.float32, True), (np.float32, False),
                                               (np.float64, False)])
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("labels", [[0, 1], ["cat", "dog"], [3, 5, 9], ["a", "b", "c", "d"]])
def test_skl2onnx_classifier(skl2onnx, ort, labels, activation, dtype, zipmap):
    from sklearn.neural_network import MLPClassifier

    X = data(dtype, n=120)
    y = np.array(labels)[np.argmax(X[:, :len(labels)], axis=1) % len(labels)]
    est = fit_quietly(MLPClassifier(hidden_layer_sizes=(6, 5), activation=activation,
                                    max_iter=50, random_state=0), X, y)
    m = skl2onnx_model(skl2onnx, est, X, zipmap)
    net = Network.from_onnx(m)
    outputs = run(ort, m, X)
    label_name = "output_label" if zipmap else "label"
    proba_name = "output_probability" if zipmap else "probabilities"
    assert net.onnx_names == {"input": "X", "output": proba_name, "label": label_name}
    proba = outputs[proba_name]
    if zipmap:  # a list of {label: probability} dicts
        proba = np.array([[row[c] for c in est.classes_] for row in proba], dtype=dtype)
    assert_close(net.forward(X), proba[:, 1:] if len(labels) == 2 else proba, dtype)
    assert net.classes.tolist() == est.classes_.tolist()
    np.testing.assert_array_equal(net.classes[net.predict(X)], outputs[label_name])
    np.testing.assert_array_equal(net.classes[net.predict(X)], est.predict(X))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_skl2onnx_regressor(skl2onnx, ort, n_outputs, activation, dtype):
    from sklearn.neural_network import MLPRegressor

    X = data(dtype)
    y = X[:, :n_outputs] * 2 + X[:, 1:2] ** 2
    est = fit_quietly(MLPRegressor(hidden_layer_sizes=(6,), activation=activation, max_iter=50,
                                   random_state=0), X, y[:, 0] if n_outputs == 1 else y)
    m = skl2onnx_model(skl2onnx, est, X)
    net = assert_matches_runtime(ort, m, X, dtype)
    assert net.sizes == [4, 6, n_outputs] and net.classes is None
    assert net.onnx_names == {"input": "X", "output": "variable"}
    # skl2onnx lays several outputs out as (n * n_outputs, 1): the same values in order
    assert run(ort, m, X)["variable"].shape == (len(X) * n_outputs, 1)
    assert_close(net.forward(X), est.predict(X).reshape(len(X), n_outputs), dtype)


# -- from_onnx: spellings written by hand ----------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("alpha", "beta", "trans_b", "bias_shape"),
    [(1.0, 1.0, 0, (3,)), (0.5, 2.0, 1, (1, 3)), (-1.5, 0.25, 0, ()), (2.0, -1.0, 1, (1,)),
     (1.0, 3.0, 0, (1, 1)), (0.75, 1.0, 1, None)],
)
def test_gemm_attributes(onnx, ort, alpha, beta, trans_b, bias_shape, dtype):
    W = weights(dtype, (3, 4) if trans_b else (4, 3))
    inits = [tensor(onnx, "W", W)]
    inputs = ["X", "W"]
    if bias_shape is not None:
        inits.append(tensor(onnx, "C", weights(dtype, bias_shape, seed=2)))
        inputs.append("C")
    node = onnx.helper.make_node("Gemm", inputs, ["Y"], alpha=alpha, beta=beta, transB=trans_b)
    elem = FLOAT if dtype == np.float32 else DOUBLE
    m = model(onnx, [node], inits, elem=elem)
    assert_matches_runtime(ort, m, data(dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias_first", [False, True])
def test_matmul_add_and_no_op_layout_nodes(onnx, ort, dtype, bias_first):
    helper = onnx.helper
    elem = FLOAT if dtype == np.float32 else DOUBLE
    inits = [tensor(onnx, "W0", weights(dtype, (4, 5))), tensor(onnx, "b0", weights(dtype, (5,))),
             tensor(onnx, "W1", weights(dtype, (5, 3), seed=3)),
             tensor(onnx, "b1", weights(dtype, (1, 3), seed=4)),
             tensor(onnx, "rows", np.array([-1, 4], np.int64)),
             tensor(onnx, "keep", np.array([0, -1], np.int64))]
    nodes = [
        helper.make_node("Cast", ["X"], ["x1"], to=elem),
        helper.make_node("Reshape", ["x1", "rows"], ["x2"]),
        helper.make_node("Flatten", ["x2"], ["x3"], axis=1),
        helper.make_node("MatMul", ["x3", "W0"], ["z0"]),
        helper.make_node("Add", ["b0", "z0"] if bias_first else ["z0", "b0"], ["s0"]),
        helper.make_node("Identity", ["s0"], ["s1"]),
        helper.make_node("Tanh", ["s1"], ["a0"]),
        helper.make_node("Reshape", ["a0", "keep"], ["a1"]),
        helper.make_node("MatMul", ["a1", "W1"], ["z1"]),
        helper.make_node("Add", ["z1", "b1"], ["Y"]),
    ]
    m = model(onnx, nodes, inits, elem=elem,
              inputs=[helper.make_tensor_value_info("X", elem, ["n", "features"])])
    net = assert_matches_runtime(ort, m, data(dtype), dtype)
    assert net.sizes == [4, 5, 3]
    assert [layer.activation for layer in net.layers] == ["tanh", "identity"]


@pytest.mark.parametrize(("opset", "axis"), [(11, None), (11, 1), (11, -1), (13, None),
                                             (13, 1), (13, -1)])
def test_softmax_axis_semantics(onnx, ort, opset, axis):
    attrs = {} if axis is None else {"axis": axis}
    nodes = [onnx.helper.make_node("Gemm", ["X", "W", "b"], ["z"]),
             onnx.helper.make_node("Softmax", ["z"], ["Y"], **attrs)]
    inits = [tensor(onnx, "W", weights(np.float32, (4, 3))),
             tensor(onnx, "b", weights(np.float32, (3,)))]
    net = assert_matches_runtime(ort, model(onnx, nodes, inits, opset=opset),
                                 data(np.float32), np.float32)
    assert net.layers[0].activation == "softmax"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [None, "dlfr's"])
def test_leaky_relu_and_elu_ops(onnx, ort, alpha, dtype):
    # without alpha each op's default is dlfr's (0.01, 1.0)
    helper = onnx.helper
    elem = FLOAT if dtype == np.float32 else DOUBLE
    leaky, elu = ({}, {}) if alpha is None else ({"alpha": 0.01}, {"alpha": 1.0})
    nodes = [helper.make_node("Gemm", ["X", "W0", "b0"], ["z0"]),
             helper.make_node("LeakyRelu", ["z0"], ["a0"], **leaky),
             helper.make_node("MatMul", ["a0", "W1"], ["z1"]),
             helper.make_node("Elu", ["z1"], ["Y"], **elu)]
    inits = [tensor(onnx, "W0", weights(dtype, (4, 5))), tensor(onnx, "b0", weights(dtype, (5,))),
             tensor(onnx, "W1", weights(dtype, (5, 3), seed=3))]
    m = model(onnx, nodes, inits, elem=elem)
    X = data(dtype) * 3
    net = Network.from_onnx(m)
    assert [layer.activation for layer in net.layers] == ["leaky_relu", "elu"]
    tol = runtime_tolerance(ort, m, dtype, ["leaky_relu", "elu"])
    assert_close(net.forward(X), run(ort, m, X)["Y"], dtype, tol)


@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_across_rows_is_refused(onnx, opset):
    nodes = [onnx.helper.make_node("Gemm", ["X", "W"], ["z"], name="layer"),
             onnx.helper.make_node("Softmax", ["z"], ["Y"], name="head", axis=0)]
    m = model(onnx, nodes, [tensor(onnx, "W", weights(np.float32, (4, 3)))], opset=opset)
    with pytest.raises(ValueError, match=r"node 'head' \(Softmax\): has axis=0: it normalises "
                                         "across the batch's rows"):
        Network.from_onnx(m)


@pytest.mark.parametrize("dtype", DTYPES)
def test_typed_fields_and_constant_nodes(onnx, ort, dtype):
    helper = onnx.helper
    elem = FLOAT if dtype == np.float32 else DOUBLE
    W, b = weights(dtype, (4, 3)), weights(dtype, (3,))
    typed = helper.make_tensor("W", elem, W.shape, W.ravel().tolist())  # float_data/double_data
    assert not typed.raw_data
    nodes = [helper.make_node("Constant", [], ["b"], value=helper.make_tensor(
                 "b", elem, b.shape, b.tobytes(), raw=True)),
             helper.make_node("Gemm", ["X", "W", "b"], ["z"]),
             helper.make_node("Relu", ["z"], ["Y"])]
    net = assert_matches_runtime(ort, model(onnx, nodes, [typed], elem=elem), data(dtype), dtype)
    assert net.layers[0].W.tobytes() == W.tobytes()


def test_initializer_listed_as_an_input(onnx, ort):
    # IR version 3 lists every initializer among the graph's inputs too
    helper = onnx.helper
    inputs = [helper.make_tensor_value_info("X", FLOAT, ["n", 4]),
              helper.make_tensor_value_info("W", FLOAT, [4, 3])]
    m = model(onnx, [helper.make_node("MatMul", ["X", "W"], ["Y"])],
              [tensor(onnx, "W", weights(np.float32, (4, 3)))], inputs=inputs, opset=8,
              ir_version=3)
    net = assert_matches_runtime(ort, m, data(np.float32), np.float32)
    assert net.onnx_names["input"] == "X"


@pytest.mark.parametrize("dtype", DTYPES)
def test_external_data_beside_the_model(onnx, ort, dtype, tmp_path):
    net = Network([30, 20, 5], dtype=dtype, seed=0)
    m = net.to_onnx()
    onnx.save_model(m, tmp_path / "m.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    stored = onnx.load_model(tmp_path / "m.onnx", load_external_data=False)
    assert all(t.data_location == 1 for t in stored.graph.initializer)
    back = assert_matches_runtime(ort, tmp_path / "m.onnx", data(dtype, n_features=30), dtype)
    for a, b in zip(net.layers, back.layers, strict=True):
        assert a.W.tobytes() == b.W.tobytes() and a.b.tobytes() == b.b.tobytes()
    with pytest.raises(ValueError, match="open the model from its path"):
        Network.from_onnx((tmp_path / "m.onnx").read_bytes())
    (tmp_path / "weights.bin").write_bytes((tmp_path / "weights.bin").read_bytes()[:-1])
    size = np.dtype(dtype).itemsize  # W0, b0, W1, b1: 725 values, b1 the last 5
    with pytest.raises(ValueError, match=rf"m\.onnx: initializer 'b1' external data file .* "
                                         rf"holds {725 * size - 1:,} bytes; the tensor needs "
                                         rf"bytes {720 * size:,} to {725 * size:,}"):
        Network.from_onnx(tmp_path / "m.onnx")


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd", "sub/../../x.bin",
                                      "link.bin"])
def test_external_data_outside_the_folder_is_refused(onnx, location, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "outside.bin").write_bytes(b"\0" * 48)
    (folder / "link.bin").symlink_to(tmp_path / "outside.bin")
    m = Network([4, 3]).to_onnx()
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = 1
    t.external_data.add(key="location", value=location)
    (folder / "m.onnx").write_bytes(m.SerializeToString())
    with pytest.raises(ValueError, match=r"initializer 'W0' names external data .* outside the "
                                         "model's folder"):
        Network.from_onnx(folder / "m.onnx")


# -- from_onnx: refusals --------------------------------------------------------------------


def step_model_at_opset(opset):
    m = Network([4, 3], activation="step").to_onnx()
    m.opset_import[0].version = opset
    return m


def attribute_in_two_fields(onnx, m):
    """``m`` with its first node's alpha attribute holding a float and an int."""
    attr = onnx.helper.make_attribute("alpha", 2.0)
    attr.i = 3
    m.graph.node[0].attribute.append(attr)
    return m


def refusal_cases(onnx):
    """(id, model, message) of graphs dlfr must refuse, each saying why."""
    helper = onnx.helper
    W = tensor(onnx, "W", weights(np.float32, (4, 3)))
    W2 = tensor(onnx, "W2", weights(np.float32, (3, 3)))
    gemm = helper.make_node("Gemm", ["X", "W"], ["Y"], name="dense")
    X = helper.make_tensor_value_info("X", FLOAT, ["n", 4])
    cases = [
        ("conv", model(onnx, [helper.make_node("Gemm", ["X", "W"], ["z"], name="dense"),
                              helper.make_node("Conv", ["z", "W2"], ["Y"], name="conv")],
                       [W, W2]),
         r"node 'conv' \(Conv\): is not supported here \(it reads 'z'\); dlfr reads a chain "
         "of Gemm"),
        ("second input", model(onnx, [helper.make_node("Add", ["X", "X2"], ["s"]), gemm], [W],
                               inputs=[X, helper.make_tensor_value_info("X2", FLOAT, ["n", 4])]),
         r"takes 2 inputs \('X', 'X2'\); a dlfr network takes one"),
        ("transA", model(onnx, [helper.make_node("Gemm", ["X", "W"], ["Y"], name="dense",
                                                 transA=1)], [W]),
         r"node 'dense' \(Gemm\): has transA=1: it multiplies across the batch's rows"),
        ("right operand", model(onnx, [helper.make_node("MatMul", ["W", "X"], ["Y"],
                                                        name="mm")], [W]),
         r"node 'mm' \(MatMul\): multiplies 'X' from the right"),
        ("branch", model(onnx, [helper.make_node("Gemm", ["X", "W"], ["h"], name="a"),
                                helper.make_node("Sigmoid", ["h"], ["p"], name="s"),
                                helper.make_node("Tanh", ["h"], ["q"], name="t"),
                                helper.make_node("Add", ["p", "q"], ["Y"], name="sum")], [W]),
         r"value 'h' is read by 2 nodes \(node 's' \(Sigmoid\), node 't' \(Tanh\)\): .* "
         "without branches"),
        ("leaky relu of another slope", model(onnx, [
            helper.make_node("Gemm", ["X", "W"], ["z"]),
            helper.make_node("LeakyRelu", ["z"], ["Y"], name="lr", alpha=0.2)], [W]),
         r"node 'lr' \(LeakyRelu\): has alpha=0.2; dlfr's leaky_relu has alpha 0.01 only"),
        ("elu of another alpha", model(onnx, [
            helper.make_node("Gemm", ["X", "W"], ["z"]),
            helper.make_node("Elu", ["z"], ["Y"], name="e", alpha=0.5)], [W]),
         r"node 'e' \(Elu\): has alpha=0.5; dlfr's elu has alpha 1.0 only"),
        ("selu", model(onnx, [helper.make_node("Gemm", ["X", "W"], ["z"]),
                              helper.make_node("Selu", ["z"], ["Y"], name="s")], [W]),
         r"node 's' \(Selu\): is not supported here \(it reads 'z'\)"),
        ("cast to double", model(onnx, [helper.make_node("Gemm", ["X", "W"], ["z"]),
                                        helper.make_node("Cast", ["z"], ["Y"], name="c",
                                                         to=DOUBLE)], [W]),
         r"node 'c' \(Cast\): casts to float64: dlfr's network computes in float32"),
        ("rows mixed", model(onnx, [helper.make_node("Gemm", ["X", "W"], ["z"]),
                                    helper.make_node("Reshape", ["z", "s"], ["r"], name="rs"),
                                    helper.make_node("MatMul", ["r", "W6"], ["Y"])],
                             [W, tensor(onnx, "s", np.array([-1, 6], np.int64)),
                              tensor(onnx, "W6", weights(np.float32, (6, 3)))]),
         r"node 'rs' \(Reshape\): reshapes rows of 3 values to \[-1, 6\], which moves values "
         "between rows"),
        ("float16 input", model(onnx, [gemm], [W], elem=10), r"input 'X' is data type 10"),
        ("image input", model(onnx, [gemm], [W], inputs=[
            helper.make_tensor_value_info("X", FLOAT, ["n", 1, 2, 2])]),
         r"input 'X' must be declared 2-D, \(n_samples, n_features\); it has 4 dimensions"),
        ("per-row bias", model(onnx, [helper.make_node("Gemm", ["X", "W", "C"], ["Y"],
                                                       name="dense")],
                               [W, tensor(onnx, "C", weights(np.float32, (5, 3)))]),
         r"node 'dense' \(Gemm\): its bias 'C' has shape \(5, 3\), which does not broadcast"),
        ("computed weights", model(onnx, [helper.make_node("Relu", ["W"], ["Wr"], name="r"),
                                          helper.make_node("MatMul", ["X", "Wr"], ["Y"],
                                                           name="mm")], [W]),
         r"node 'mm' \(MatMul\): its weight 'Wr' must be a constant"),
        ("hidden output", model(onnx, [helper.make_node("Gemm", ["X", "W"], ["h"]),
                                       helper.make_node("Sigmoid", ["h"], ["a"]),
                                       helper.make_node("MatMul", ["a", "W2"], ["Y"])], [W, W2],
                                outputs=[helper.make_tensor_value_info("Y", FLOAT, ["n", 3]),
                                         helper.make_tensor_value_info("h", FLOAT, ["n", 3])]),
         r"value 'h' is read by 2 nodes|graph output 'h' is not the network's output"),
        ("dead node", model(onnx, [gemm, helper.make_node("Relu", ["W"], ["unused"],
                                                          name="dead")], [W]),
         r"node 'dead' \(Relu\): is not part of the network"),
        ("foreign domain", model(onnx, [helper.make_node("Gemm", ["X", "W"], ["Y"], name="g",
                                                         domain="com.example")], [W]),
         r"node 'g' \(Gemm\): is an op of domain 'com.example'"),
        ("unknown attribute", model(onnx, [helper.make_node("Gemm", ["X", "W"], ["Y"], name="g",
                                                            broadcast=1)], [W]),
         r"node 'g' \(Gemm\): has attribute 'broadcast', which dlfr does not read"),
        ("no layer", model(onnx, [helper.make_node("Sigmoid", ["X"], ["Y"])], [], n_out=4),
         r"has no Gemm or MatMul layer reading input 'X'"),
        ("wrong width", model(onnx, [gemm], [W], n_in=5),
         r"node 'dense' \(Gemm\): multiplies 5 features by weights of shape \(4, 3\)"),
        ("old opset", model(onnx, [gemm], [W], opset=6), r"uses opset 6; dlfr reads opset 7"),
        ("double weights", model(onnx, [gemm], [tensor(onnx, "W", weights(np.float64, (4, 3)))]),
         r"node 'dense' \(Gemm\): its weight 'W' is float64; expected float32"),
        ("op newer than the opset", step_model_at_opset(11),
         r"node 'step0_ge' \(GreaterOrEqual\): does not exist in opset 11 of domain 'ai.onnx'"),
        ("attribute newer than the opset", model(onnx, [
            helper.make_node("Reshape", ["X", "s"], ["x"], name="r", allowzero=0),
            helper.make_node("MatMul", ["x", "W"], ["Y"])],
            [W, tensor(onnx, "s", np.array([-1, 4], np.int64))], opset=13),
         r"node 'r' \(Reshape\): has attribute 'allowzero', which Reshape does not have in "
         "opset 13"),
        ("future opset", model(onnx, [gemm], [W], opset=10_000, ir_version=10),
         r"uses opset 10000; dlfr reads opset 7 to \d+ \(the newest this onnx"),
        ("output listed twice", model(onnx, [gemm], [W], outputs=[
            helper.make_tensor_value_info("Y", FLOAT, ["n", 3])] * 2),
         r"lists a graph output twice: \['Y', 'Y'\]"),
        ("output of another type", model(onnx, [gemm], [W], outputs=[
            helper.make_tensor_value_info("Y", DOUBLE, ["n", 3])]),
         r"graph output 'Y' is declared of another type than it holds \(float32 tensors\)"),
        ("attribute in two fields", attribute_in_two_fields(onnx, model(onnx, [gemm], [W])),
         r"node 'dense' \(Gemm\): has a malformed attribute 'alpha'"),
        ("nan weights", model(onnx, [gemm], [tensor(onnx, "W", np.full((4, 3), np.nan,
                                                                       np.float32))]),
         r"node 'dense' \(Gemm\): W must be finite"),
    ]
    return cases


def test_refusals(onnx):
    for case, m, message in refusal_cases(onnx):
        try:
            Network.from_onnx(m)
        except ValueError as exc:
            assert type(exc) is ValueError, (case, repr(exc))
            assert re.search(message, str(exc)), (case, str(exc))
            assert str(exc).startswith("the ONNX ModelProto: "), (case, str(exc))
        else:
            pytest.fail(f"{case}: read, not refused")


def test_refusals_name_the_file(onnx, tmp_path):
    case, m, message = refusal_cases(onnx)[0]
    path = tmp_path / "conv.onnx"
    path.write_bytes(m.SerializeToString())
    with pytest.raises(ValueError, match=f"^{path}: node 'conv'"):
        Network.from_onnx(path)
    with pytest.raises(ValueError, match="^the ONNX bytes: node 'conv'"):
        Network.from_onnx(path.read_bytes())


@pytest.mark.parametrize("source", [3, None, ["model.onnx"], np.zeros(3)])
def test_from_onnx_source_type(onnx, source):
    with pytest.raises(TypeError, match="source must be a path, bytes or an onnx.ModelProto"):
        Network.from_onnx(source)


def test_from_onnx_missing_file_and_folder(onnx, tmp_path):
    with pytest.raises(FileNotFoundError):
        Network.from_onnx(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="is a folder; expected a regular file"):
        Network.from_onnx(tmp_path)


def test_from_onnx_subclass(onnx):
    class MyNetwork(Network):
        pass

    assert type(MyNetwork.from_onnx(Network([3, 2]).to_onnx())) is MyNetwork


# -- optional dependency ---------------------------------------------------------------------


def test_import_dlfr_does_not_import_onnx():
    code = ("import sys, dlfr, dlfr.network; "
            "print([m for m in ('onnx', 'onnxruntime', 'google.protobuf') if m in sys.modules])")
    src = os.path.dirname(os.path.dirname(dlfr.__file__))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env={**os.environ, "PYTHONPATH": src})
    assert result.stdout.strip() == "[]"


def test_without_onnx_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    net = Network([3, 2])
    for call in (lambda: net.to_onnx(), lambda: net.to_onnx(tmp_path / "m.onnx"),
                 lambda: Network.from_onnx(b"")):
        with pytest.raises(ImportError, match=r'pip install "dlfr\[onnx\]"'):
            call()
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_names_and_classes_default():
    net = Network([3, 2])
    assert net.classes is None and net.onnx_names is None
