"""The ``dlfr`` command with ONNX files: ``predict model.onnx``, ``convert`` and
``bench --model``, checked against the library's own results (``Network.from_onnx``,
``to_onnx``, ``load``). Most run ``main`` in this process (quicker than a subprocess per
case); test_cli.py runs the command as ``python -m dlfr`` too. Tests skip cleanly without
onnx, onnxruntime or the exporters.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli import assert_error, assert_ok, leftovers, run

from dlfr import Network, peers
from dlfr.cli import bench as cli_bench
from dlfr.cli import main

TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "step", "softmax"]
#: What --proba prints: six significant digits.
PRINTED = 1e-5


@pytest.fixture
def onnx() -> object:
    return pytest.importorskip("onnx")


@pytest.fixture
def ort() -> object:
    return pytest.importorskip("onnxruntime")


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the working folder, holding X.npy (7 samples of 6 features)."""
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "X.npy", np.random.default_rng(0).standard_normal((7, 6)))
    return tmp_path


def make_network(activation: str = "tanh", output: str = "softmax", dtype: str = "float32",
                 classes: list | None = None) -> Network:
    net = Network([6, 5, 3], activation=activation, output_activation=output, dtype=dtype,
                  seed=0)
    net.classes = classes
    return net


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the command in this process; its stdout, after checking it succeeded quietly."""
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err == ""
    return captured.out


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the command in this process; its one-line error, after checking exit status 2."""
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 2, (captured.out, captured.err)
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlfr: error: "), captured.err
    return lines[0]


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def same_weights(a: Network, b: Network) -> bool:
    return a.sizes == b.sizes and a.dtype == b.dtype and all(
        la.activation == lb.activation and la.W.tobytes() == lb.W.tobytes()
        and la.b.tobytes() == lb.b.tobytes() for la, lb in zip(a.layers, b.layers, strict=True))


# -- predict model.onnx --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("classes", [None, ["cat", "dog", "eel"], [3, 5, 9]])
def test_predict_onnx_as_the_library(onnx, here, capsys, dtype, classes) -> None:
    make_network(dtype=dtype, classes=classes).to_onnx("m.onnx")
    net = Network.from_onnx("m.onnx")
    X = np.load("X.npy")
    indices = net.predict(X)
    labels = indices if classes is None else net.classes[indices]
    assert ok(capsys, "predict", "m.onnx", "X.npy").split() == [str(v) for v in labels]
    assert ok(capsys, "predict", "m.onnx", "X.npy", "--indices").split() == [
        str(v) for v in indices]
    printed = ok(capsys, "predict", "m.onnx", "X.npy", "--proba")
    proba = np.array([[float(v) for v in line.split(",")] for line in printed.splitlines()])
    np.testing.assert_allclose(proba, net.forward(X), rtol=PRINTED, atol=1e-7)
    for out, expected in (("l.npy", labels), ("p.npy", net.forward(X))):
        flags = ["--proba"] if out == "p.npy" else []
        assert ok(capsys, "predict", "m.onnx", "X.npy", "--out", out, *flags).startswith(
            "wrote 7 ")
        np.testing.assert_array_equal(np.load(out), expected)  # .npy: exact
    ok(capsys, "predict", "m.onnx", "X.npy", "--out", "l.csv")
    assert (here / "l.csv").read_text().split() == [str(v) for v in labels]
    assert leftovers(here) == []


def test_predict_npz_with_classes_gives_its_labels(here, capsys) -> None:
    make_network(classes=["a", "b", "c"]).save("m.npz")
    net = Network.load("m.npz")
    expected = net.classes[net.predict(np.load("X.npy"))].tolist()
    assert ok(capsys, "predict", "m.npz", "X.npy").split() == expected


def test_predict_skl2onnx_classifier_labels_are_the_files(ort, here, capsys) -> None:
    pytest.importorskip("sklearn")
    skl2onnx = pytest.importorskip("skl2onnx")
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X = np.load("X.npy").astype(np.float32)
    Xt = np.random.default_rng(1).standard_normal((80, 6)).astype(np.float32)
    y = np.where(Xt[:, 0] > 0, "yes", "no")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier((4,), max_iter=20, random_state=0).fit(Xt, y)
    (here / "clf.onnx").write_bytes(skl2onnx.to_onnx(est, Xt[:1]).SerializeToString())
    printed = ok(capsys, "predict", "clf.onnx", "X.npy").split()
    session = ort.InferenceSession("clf.onnx", providers=["CPUExecutionProvider"])
    assert printed == session.run(["output_label"], {"X": X})[0].tolist()
    assert printed == est.predict(X).tolist()


def test_predict_indices_with_proba_is_refused(onnx, here, capsys) -> None:
    make_network().to_onnx("m.onnx")
    assert "--indices applies to labels" in fails(capsys, "predict", "m.onnx", "X.npy",
                                                  "--proba", "--indices")


def test_predict_onnx_subprocess(onnx, here) -> None:
    make_network(classes=["a", "b", "c"]).to_onnx("m.onnx")
    proc = run("predict", "m.onnx", "X.npy", cwd=here)
    assert_ok(proc)
    net = Network.from_onnx("m.onnx")
    assert proc.stdout.split() == net.classes[net.predict(np.load("X.npy"))].tolist()
    proc = run("predict", "m.onnx", "nothere.npy", cwd=here)
    assert_error(proc, "input nothere.npy does not exist")


# -- convert ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ACTIVATIONS[:-1])
def test_convert_npz_to_onnx_and_back(onnx, ort, here, capsys, activation, dtype) -> None:
    net = make_network(activation, output="softmax" if activation != "step" else "sigmoid",
                       dtype=dtype, classes=["a", "b", "c"])
    net.save("m.npz")
    out = ok(capsys, "convert", "m.npz", "m.onnx")
    assert out == (f"wrote {net!r} and its 3 class labels to m.onnx (ONNX, opset 17)\n")
    onnx.checker.check_model(onnx.load("m.onnx"), full_check=True)
    from_file = Network.from_onnx("m.onnx")
    assert same_weights(from_file, net) and from_file.classes.tolist() == ["a", "b", "c"]
    X = np.load("X.npy").astype(dtype)
    session = ort.InferenceSession("m.onnx", providers=["CPUExecutionProvider"])
    Y, label = session.run(["Y", "label"], {"X": X})
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(Y, net.forward(X), rtol=tol, atol=tol)
    np.testing.assert_array_equal(label, net.classes[net.predict(X)])

    ok(capsys, "convert", "m.onnx", "back.npz")
    back = Network.load("back.npz")
    assert same_weights(back, net) and back.classes.tolist() == ["a", "b", "c"]
    assert leftovers(here) == []


def test_convert_opset(onnx, here, capsys) -> None:
    make_network().save("m.npz")
    assert ok(capsys, "convert", "m.npz", "m.onnx", "--opset", "13").endswith(
        "(ONNX, opset 13)\n")
    assert [(o.domain, o.version) for o in onnx.load("m.onnx").opset_import] == [("", 13)]
    error = fails(capsys, "convert", "m.npz", "old.onnx", "--opset", "7")
    assert "opset must be an integer from 13 to" in error and "got 7" in error
    assert "--opset applies to an .onnx OUT" in fails(capsys, "convert", "m.onnx", "m2.npz",
                                                        "--opset", "13")
    assert not (here / "old.onnx").exists() and not (here / "m2.npz").exists()


def test_convert_foreign_onnx_to_npz_and_normalised(onnx, ort, here, capsys) -> None:
    # MatMul + Add + Relu, then Gemm with transB and Sigmoid: another exporter's spelling
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(3)
    W1, b1 = rng.standard_normal((6, 4)), rng.standard_normal(4)
    W2t, b2 = rng.standard_normal((2, 4)), rng.standard_normal(2)
    inits = [numpy_helper.from_array(a.astype(np.float32), name)
             for a, name in ((W1, "W1"), (b1, "b1"), (W2t, "W2t"), (b2, "b2"))]
    nodes = [helper.make_node("MatMul", ["input", "W1"], ["m"]),
             helper.make_node("Add", ["m", "b1"], ["s"]),
             helper.make_node("Relu", ["s"], ["h"]),
             helper.make_node("Gemm", ["h", "W2t", "b2"], ["z"], transB=1),
             helper.make_node("Sigmoid", ["z"], ["output"])]
    graph = helper.make_graph(
        nodes, "foreign", [helper.make_tensor_value_info("input", 1, ["n", 6])],
        [helper.make_tensor_value_info("output", 1, ["n", 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.save(model, "foreign.onnx")
    net = Network.from_onnx("foreign.onnx")

    ok(capsys, "convert", "foreign.onnx", "f.npz")
    assert same_weights(Network.load("f.npz"), net)
    ok(capsys, "convert", "foreign.onnx", "dlfr.onnx")  # rewritten as dlfr writes it
    rewritten = onnx.load("dlfr.onnx")
    assert [n.op_type for n in rewritten.graph.node] == ["Gemm", "Relu", "Gemm", "Sigmoid"]
    assert rewritten.producer_name == "dlfr"
    assert same_weights(Network.from_onnx("dlfr.onnx"), net)
    X = np.load("X.npy").astype(np.float32)
    original = ort.InferenceSession("foreign.onnx", providers=["CPUExecutionProvider"])
    again = ort.InferenceSession("dlfr.onnx", providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(again.run(["Y"], {"X": X})[0],
                               original.run(["output"], {"input": X})[0], rtol=1e-5, atol=1e-6)


def test_convert_npz_to_npz(here, capsys) -> None:
    make_network(classes=[0, 1, 2]).save("m.npz")
    assert ok(capsys, "convert", "m.npz", "copy.npz").endswith("(dlfr's .npz)\n")
    copy = Network.load("copy.npz")
    assert same_weights(copy, Network.load("m.npz")) and copy.classes.tolist() == [0, 1, 2]


@pytest.mark.parametrize("alias", ["same", "spelling", "hardlink", "symlink"])
@pytest.mark.parametrize("model", ["m.onnx", "m.npz"])
def test_convert_refuses_to_overwrite_its_input(onnx, here, capsys, model, alias) -> None:
    make_network().to_onnx("m.onnx")
    make_network().save("m.npz")
    out = {"same": model, "spelling": f"./{model}"}.get(alias, f"other{Path(model).suffix}")
    if alias == "hardlink":
        os.link(model, out)
    elif alias == "symlink":
        os.symlink(model, out)
    before = files(here)
    error = fails(capsys, "convert", model, out)
    assert f"OUT {out} is the model file {model}; refusing to overwrite it" in error
    assert files(here) == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["convert", "missing.onnx", "o.npz"], "model file missing.onnx does not exist"),
        (["convert", "m.npz", "o.txt"], "OUT o.txt: write a model to .onnx or .npz"),
        (["convert", "m.npz", "o"], "OUT o: write a model to .onnx or .npz"),
        (["convert", "m.npz", "nodir/o.onnx"], "folder nodir does not exist"),
        (["convert", "X.npy", "o.onnx"], "not a dlfr model"),
        (["convert", "garbage.onnx", "o.npz"], "garbage.onnx: not an ONNX model"),
        (["convert", "truncated.onnx", "o.npz"], "truncated.onnx: not an ONNX model"),
        (["convert", "conv.onnx", "o.npz"], "conv.onnx: node 'conv' (Conv): is not supported"),
        (["convert", "huge.onnx", "o.npz"], "huge.onnx: initializer 'W' declares shape"),
        (["predict", "garbage.onnx", "X.npy"], "garbage.onnx: not an ONNX model"),
        (["predict", "conv.onnx", "X.npy"], "conv.onnx: node 'conv' (Conv)"),
        (["bench", "--model", "truncated.onnx"], "truncated.onnx: not an ONNX model"),
        (["bench", "--model", "conv.onnx", "--json", "b.json"], "node 'conv' (Conv)"),
    ],
)
def test_bad_files_are_one_line_and_write_nothing(onnx, here, capsys, args, fragment) -> None:
    helper = onnx.helper
    make_network().save("m.npz")
    data = make_network().to_onnx().SerializeToString()
    (here / "garbage.onnx").write_bytes(b"\x0a\xff\xff\xff\xff\x0f not protobuf")
    (here / "truncated.onnx").write_bytes(data[: len(data) * 2 // 3])
    W = onnx.numpy_helper.from_array(np.ones((6, 3), np.float32), "W")
    conv = helper.make_graph(
        [helper.make_node("Gemm", ["X", "W"], ["z"]),
         helper.make_node("Conv", ["z", "W"], ["Y"], name="conv")], "g",
        [helper.make_tensor_value_info("X", 1, ["n", 6])],
        [helper.make_tensor_value_info("Y", 1, ["n", 3])], [W])
    (here / "conv.onnx").write_bytes(helper.make_model(conv).SerializeToString())
    # an initializer declaring 2**40 x 2**40 floats in a few bytes
    huge = onnx.TensorProto(name="W", data_type=1, dims=[2**40, 2**40], raw_data=bytes(16))
    graph = helper.make_graph([helper.make_node("Gemm", ["X", "W"], ["Y"])], "g",
                              [helper.make_tensor_value_info("X", 1, ["n", 6])],
                              [helper.make_tensor_value_info("Y", 1, ["n", 3])], [huge])
    (here / "huge.onnx").write_bytes(helper.make_model(graph).SerializeToString())
    before = files(here)
    assert fragment in fails(capsys, *args)
    assert files(here) == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads files whatever their permissions")
def test_unreadable_onnx_is_one_line(onnx, here, capsys) -> None:
    make_network().to_onnx("m.onnx")
    os.chmod("m.onnx", 0)
    try:
        assert "m.onnx: Permission denied" in fails(capsys, "convert", "m.onnx", "o.npz")
    finally:
        os.chmod("m.onnx", 0o600)


@pytest.mark.parametrize(
    "args",
    [["convert", "m.npz", "o.onnx"], ["convert", "m.onnx", "o.npz"],
     ["predict", "m.onnx", "X.npy"], ["bench", "--model", "m.onnx", "--json", "b.json"]],
)
def test_without_onnx_the_error_says_what_to_install(onnx, here, capsys, monkeypatch,
                                                     args) -> None:
    make_network().save("m.npz")
    make_network().to_onnx("m.onnx")
    before = files(here)
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    error = fails(capsys, *args)
    assert error == ('dlfr: error: reading and writing ONNX models needs the onnx package: '
                     'pip install "dlfr[onnx]"')
    assert files(here) == before


# -- bench --model -------------------------------------------------------------------------


def bench_args(*extra: str) -> list[str]:
    return ["bench", "--batch", "1,9", "--repeat", "1", "--min-time", "0.0005", "--threads",
            "1", "--json", "b.json", *extra]


def timed(here: Path) -> dict[tuple[int, str], dict]:
    result = json.loads((here / "b.json").read_text())
    return {(r["batch"], r["impl"]): r for r in result["results"]}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bench_model_onnx_against_onnxruntime(ort, here, capsys, dtype) -> None:
    make_network("relu", dtype=dtype, classes=["a", "b", "c"]).to_onnx("m.onnx")
    out = ok(capsys, *bench_args("--model", "m.onnx", "--peers", "all"))
    assert out.startswith(f"dlfr bench: m.onnx, a 6-5-3 relu/softmax network, {dtype}, "
                          "1 thread(s), median of 1\n")
    assert "skipped torch: runs sigmoid networks only; this one has relu, softmax" in out
    assert "skipped sklearn: runs sigmoid networks only" in out
    assert "samples/s" in out and "vs NumPy" in out
    rows = timed(here)
    assert set(rows) == {(b, i) for b in (1, 9) for i in ("dlfr", "numpy", "onnxruntime")}
    assert all(row["samples_per_s"] > 0 for row in rows.values())
    result = json.loads((here / "b.json").read_text())
    assert result["model"] == "m.onnx" and result["sizes"] == [6, 5, 3]
    assert result["activations"] == ["relu", "softmax"] and result["dtype"] == dtype


def test_bench_model_sigmoid_runs_every_peer(ort, here, capsys) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    Network([6, 4, 2], seed=0).to_onnx("sig.onnx")
    ok(capsys, *bench_args("--model", "sig.onnx", "--batch", "5"))
    assert set(timed(here)) == {(5, i) for i in ("dlfr", "numpy", *cli_bench.PEERS)}
    assert all("error" not in row for row in timed(here).values())


def test_bench_model_npz_runs_onnxruntime_on_its_export(ort, here, capsys) -> None:
    make_network("tanh").save("m.npz")
    out = ok(capsys, *bench_args("--model", "m.npz", "--peers", "onnxruntime"))
    assert "dlfr bench: m.npz, a 6-5-3 tanh/softmax network, float32" in out
    assert "error" not in timed(here)[(9, "onnxruntime")]


def test_bench_model_skl2onnx_outputs_laid_out_as_dlfr(ort, here, capsys) -> None:
    # a two-class ZipMap classifier ([1 - p, p] as {label: probability} rows) and a
    # three-output regressor ((n * 3, 1)): compared as from_onnx reads them, then timed
    pytest.importorskip("sklearn")
    skl2onnx = pytest.importorskip("skl2onnx")
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    X = np.random.default_rng(1).standard_normal((60, 6)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((4,), max_iter=20, random_state=0).fit(X, X[:, 0] > 0)
        reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=20, random_state=0).fit(
            X, X[:, :3])
    for name, est in (("clf", clf), ("reg", reg)):
        (here / f"{name}.onnx").write_bytes(skl2onnx.to_onnx(est, X[:1]).SerializeToString())
        ok(capsys, *bench_args("--model", f"{name}.onnx", "--peers", "onnxruntime"))
        rows = timed(here)
        assert set(rows) == {(b, i) for b in (1, 9) for i in ("dlfr", "numpy", "onnxruntime")}
        assert all("error" not in row for row in rows.values()), rows


def test_bench_model_a_peer_that_fails_is_reported_not_timed(onnx, ort, here, capsys) -> None:
    model = make_network().to_onnx()
    for value in (model.graph.input[0], *model.graph.output):  # a fixed batch of one
        value.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, "one.onnx")
    out = ok(capsys, *bench_args("--model", "one.onnx", "--peers", "onnxruntime"))
    rows = timed(here)
    assert rows[(1, "onnxruntime")]["samples_per_s"] > 0
    error = rows[(9, "onnxruntime")]["error"]
    assert error.startswith("failed: ") and "\n" not in error
    assert f"     9  onnxruntime   {error}: not timed" in out
    assert rows[(9, "dlfr")]["samples_per_s"] > 0


def test_bench_model_without_onnxruntime_says_what_to_install(onnx, here, capsys,
                                                             monkeypatch) -> None:
    make_network().to_onnx("m.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    out = ok(capsys, *bench_args("--model", "m.onnx", "--peers", "onnxruntime"))
    assert 'skipped onnxruntime: not installed (onnxruntime; pip install "dlfr[peers]")' in out
    assert {impl for _, impl in timed(here)} == {"dlfr", "numpy"}


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--sizes", "6,5,3"], "--model times the model file's own network"),
        (["--dtype", "float64"], "leave out --sizes and --dtype"),
        (["--json", "m.npz"], "--json m.npz is the model file m.npz; refusing to overwrite"),
    ],
)
def test_bench_model_refusals(here, capsys, extra, fragment) -> None:
    make_network().save("m.npz")
    before = files(here)
    assert fragment in fails(capsys, "bench", "--model", "m.npz", *extra)
    assert files(here) == before


def test_bench_model_subprocess(ort, here) -> None:
    make_network().to_onnx("m.onnx")
    proc = run(*bench_args("--model", "m.onnx", "--peers", "onnxruntime"), cwd=here)
    assert_ok(proc)
    assert "dlfr bench: m.onnx, a 6-5-3 tanh/softmax network" in proc.stdout
    assert {impl for _, impl in timed(here)} == {"dlfr", "numpy", "onnxruntime"}


def test_every_peer_says_what_to_install() -> None:
    assert set(cli_bench.PEER_INSTALL) == set(cli_bench.PEERS)


# -- the comparisons bench makes ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ACTIVATIONS[:-1])
def test_numpy_twin_of_any_network(activation, dtype) -> None:
    net = Network([6, 5, 4, 3], activation=activation, output_activation="softmax",
                  dtype=dtype, seed=0)
    X = np.random.default_rng(2).standard_normal((33, 6)).astype(dtype)
    twin = peers.numpy_forward([layer.W for layer in net.layers],
                               [layer.b for layer in net.layers],
                               [layer.activation for layer in net.layers])
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(twin(X), net.forward(X), rtol=tol, atol=tol)


def test_outputs_laid_out_as_forward() -> None:
    layout = cli_bench._in_forward_layout
    p = np.array([[0.25], [0.75]])
    classes = np.array(["no", "yes"])
    zipmap = [{"no": 0.75, "yes": 0.25}, {"no": 0.25, "yes": 0.75}]
    np.testing.assert_array_equal(layout(zipmap, p, classes), p)
    np.testing.assert_array_equal(layout(np.hstack([1 - p, p]), p, classes), p)
    three = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(layout(three.reshape(6, 1), three, None), three)
    assert layout(np.zeros((2, 4)), three, None).shape == (2, 4)  # left to differ


def test_help_of_convert_and_predict(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--opset N ONNX opset of an .onnx OUT (default 17; 13 to the newest" in text
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "unless --indices is given" in " ".join(capsys.readouterr().out.split())
