"""Hostile ONNX files: each is refused with ValueError naming its source, or read correctly.

The mutants start from two models: one written by ``to_onnx`` (Gemm, the step
pattern, Softmax, a label output) and one in skl2onnx's spelling written by
hand (Cast, MatMul + Add, [1 - p, p], ArgMax, ArrayFeatureExtractor, Reshape,
ZipMap). Some change the serialised bytes (truncated, bit-flipped, spliced);
the others change the parsed model: a tensor's dims, data type or data, a
node's op, inputs, outputs, attributes or domain (dangling inputs, cycles,
values defined twice), the graph's inputs and outputs, the opset. A mutant
``from_onnx`` accepts must compute what ONNX Runtime computes on it (where
ONNX Runtime accepts it too). Seeded, two thousand mutants in a few seconds,
under tracemalloc: nothing allocates more than a few megabytes.
"""

from __future__ import annotations

import random
import tracemalloc

import numpy as np
import pytest

from dlfr import Network

onnx = pytest.importorskip("onnx")
helper, numpy_helper = onnx.helper, onnx.numpy_helper

N_MUTANTS = 2000
#: Peak bytes traced while all the mutants are read (each model is a few kB).
PEAK_BYTES = 16 * 2**20
SOURCE = "the ONNX bytes"
FLOAT = 1


def dlfr_model() -> onnx.ModelProto:
    net = Network([4, 5, 4, 3], activation="step", output_activation="softmax", seed=0)
    net.classes = ["a", "b", "c"]
    return net.to_onnx()


def sklearn_style_model() -> onnx.ModelProto:
    """A two-class classifier as skl2onnx writes it, with a ZipMap."""
    rng = np.random.default_rng(0)

    def init(name, shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [init("coefficient", (4, 5)), init("intercepts", (1, 5)),
             init("coefficient1", (5, 1)), init("intercepts1", (1, 1)),
             numpy_helper.from_array(np.array(1, np.float32), "unity"),
             numpy_helper.from_array(np.array([0, 1], np.int32), "classes"),
             numpy_helper.from_array(np.array([-1], np.int64), "shape_tensor")]
    node = helper.make_node
    nodes = [
        node("Cast", ["X"], ["cast_input"], to=FLOAT),
        node("MatMul", ["cast_input", "coefficient"], ["mul_result"]),
        node("Add", ["mul_result", "intercepts"], ["add_result"]),
        node("Relu", ["add_result"], ["next_activations"]),
        node("MatMul", ["next_activations", "coefficient1"], ["mul_result1"]),
        node("Add", ["mul_result1", "intercepts1"], ["add_result1"]),
        node("Sigmoid", ["add_result1"], ["p"]),
        node("Sub", ["unity", "p"], ["negative_class_proba"]),
        node("Concat", ["negative_class_proba", "p"], ["probabilities"], axis=1),
        node("ArgMax", ["probabilities"], ["argmax_output"], axis=1),
        node("ZipMap", ["probabilities"], ["output_probability"], domain="ai.onnx.ml",
             classlabels_int64s=[0, 1]),
        node("ArrayFeatureExtractor", ["classes", "argmax_output"], ["afe"],
             domain="ai.onnx.ml"),
        node("Reshape", ["afe", "shape_tensor"], ["reshaped_result"]),
        node("Cast", ["reshaped_result"], ["output_label"], to=7),
    ]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("X", FLOAT, [None, 4])],
        [helper.make_tensor_value_info("output_label", 7, [None]),
         helper.make_value_info("output_probability", helper.make_sequence_type_proto(
             helper.make_map_type_proto(7, helper.make_tensor_type_proto(FLOAT, []))))],
        inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                helper.make_opsetid("ai.onnx.ml", 1)])
    m.ir_version = 7
    return m


BASES = [dlfr_model(), sklearn_style_model()]
OPS = ["Gemm", "MatMul", "Add", "Sub", "Relu", "Sigmoid", "Tanh", "Softmax", "Identity",
       "Flatten", "Reshape", "Cast", "Conv", "ArgMax", "ZipMap", "Where", "IsNaN", "Concat",
       "LeakyRelu", "Gather", "ArrayFeatureExtractor", "GreaterOrEqual", "Constant", ""]
HUGE = [0, 1, 2, 3, 5, -1, 2**31, 10**12, 2**62, 2**63 - 1]


def values_of(m: onnx.ModelProto) -> list[str]:
    graph = m.graph
    return ([v.name for v in graph.input] + [t.name for t in graph.initializer]
            + [o for n in graph.node for o in n.output] + ["nowhere", ""])


def mutate_tensor(t, rng: random.Random) -> None:
    kind = rng.randrange(7)
    if kind == 0 and t.dims:
        t.dims[rng.randrange(len(t.dims))] = rng.choice(HUGE)
    elif kind == 1:
        t.dims.append(rng.choice(HUGE))
    elif kind == 2:
        t.data_type = rng.choice([0, 1, 2, 6, 7, 8, 9, 10, 11, 16, 99])
    elif kind == 3 and t.raw_data:
        t.raw_data = t.raw_data[:rng.randrange(len(t.raw_data))]
    elif kind == 4:  # values moved to a typed field, perhaps the wrong one or too few
        count = max(len(t.raw_data) // 4 - rng.randrange(2), 0)
        t.ClearField("raw_data")
        getattr(t, rng.choice(["float_data", "double_data", "int64_data", "int32_data"])).extend(
            [1] * count)
    elif kind == 5:
        t.data_location = 1
        t.external_data.add(key=rng.choice(["location", "offset", "length", "x"]),
                            value=rng.choice(["w.bin", "../x", "/etc/passwd", "-1", "99"]))
    else:
        t.float_data.extend([0.5] * rng.randrange(1, 4))  # raw data and a typed field


def mutate_node(m: onnx.ModelProto, rng: random.Random) -> None:
    nodes = m.graph.node
    i = rng.randrange(len(nodes))
    node = nodes[i]
    kind = rng.randrange(9)
    if kind == 0:
        node.op_type = rng.choice(OPS)
    elif kind == 1 and node.input:  # dangling, or any value: a cycle or a branch
        node.input[rng.randrange(len(node.input))] = rng.choice(values_of(m))
    elif kind == 2:
        node.output[0] = rng.choice(values_of(m))  # defined twice, or renamed
    elif kind == 3 and node.attribute:
        attr = node.attribute[rng.randrange(len(node.attribute))]
        attr.i = rng.choice([-3, -2, -1, 0, 1, 2, 3, 6, 7, 11, 2**40])
        attr.f = rng.choice([0.0, -1.0, 2.0, float("nan"), float("inf")])
        attr.type = rng.choice([attr.type, attr.type, 1, 2, 4, 7])
    elif kind == 4:
        node.attribute.append(rng.choice([
            helper.make_attribute("axis", rng.choice([-2, 0, 1, 5])),
            helper.make_attribute("transA", 1), helper.make_attribute("alpha", 3.0),
            helper.make_attribute("to", rng.choice([1, 7, 10, 11])),
            helper.make_attribute("keepdims", 0), helper.make_attribute("junk", "x")]))
    elif kind == 5:
        del nodes[i]
    elif kind == 6:
        nodes.insert(rng.randrange(len(nodes) + 1), nodes[rng.randrange(len(nodes))])
    elif kind == 7:
        node.domain = rng.choice(["", "ai.onnx", "ai.onnx.ml", "com.example"])
    else:  # nodes out of order (a valid graph lists them sorted; dlfr sorts them itself)
        nodes.insert(0, nodes.pop(i))


def mutate_graph(m: onnx.ModelProto, rng: random.Random) -> None:
    graph = m.graph
    kind = rng.randrange(6)
    if kind == 0:
        graph.input.append(helper.make_tensor_value_info(rng.choice(["X2", "X"]), FLOAT,
                                                         [None, 4]))
    elif kind == 1:
        graph.input[0].type.tensor_type.elem_type = rng.choice([0, 1, 7, 10, 11])
    elif kind == 2:
        dims = graph.input[0].type.tensor_type.shape.dim
        if rng.random() < 0.5:
            dims.add().dim_value = 2
        else:
            dims[1].dim_value = rng.choice([0, 3, 4, 5, 2**40])
    elif kind == 3:
        graph.output[rng.randrange(len(graph.output))].name = rng.choice(values_of(m))
    elif kind == 4:
        m.opset_import[0].version = rng.choice([1, 6, 7, 11, 12, 13, 17, 10_000])
    else:
        graph.initializer.append(graph.initializer[rng.randrange(len(graph.initializer))])


def structured_mutant(rng: random.Random) -> bytes:
    m = onnx.ModelProto()
    m.CopyFrom(rng.choice(BASES))
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        what = rng.randrange(4)
        if what == 0:
            mutate_tensor(m.graph.initializer[rng.randrange(len(m.graph.initializer))], rng)
        elif what in (1, 2):
            mutate_node(m, rng)
        else:
            mutate_graph(m, rng)
    return m.SerializeToString()


def byte_mutant(rng: random.Random) -> bytes:
    data = bytearray(rng.choice(BASES).SerializeToString())
    kind = rng.randrange(3)
    if kind == 0:
        del data[rng.randrange(len(data)):]
    elif kind == 1:
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    else:
        at = rng.randrange(len(data))
        if rng.random() < 0.5:
            del data[at:at + rng.randrange(1, 32)]
        else:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 32)))
    return bytes(data)


def agrees_with_runtime(ort, data: bytes, net: Network) -> bool | None:
    """Whether the network computes what ONNX Runtime does (None: the runtime refuses it)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # its warnings about the mutants' shapes are expected
    try:
        sess = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        X = np.random.default_rng(1).standard_normal((7, net.sizes[0])).astype(net.dtype)
        outputs = dict(zip([o.name for o in sess.get_outputs()],
                           sess.run(None, {sess.get_inputs()[0].name: X}), strict=True))
    except Exception:  # noqa: BLE001 (ONNX Runtime's own errors have no common base)
        return None
    expected = outputs.get(net.onnx_names.get("output"))
    if isinstance(expected, list):  # a ZipMap: a list of {label: probability}
        expected = np.array([[row[c] for c in net.classes] for row in expected])[:, 1:]
    elif expected is not None and expected.shape[1:] == (2,) and net.sizes[-1] == 1:
        expected = expected[:, 1:]  # [1 - p, p]
    tol = 1e-5 if net.dtype == np.float32 else 1e-12
    if expected is not None and not np.allclose(net.forward(X).ravel(), expected.ravel(),
                                                rtol=tol, atol=tol):
        return False
    label = outputs.get(net.onnx_names.get("label"))
    return label is None or net.classes[net.predict(X)].tolist() == label.ravel().tolist()


def check(data: bytes) -> Network | None:
    """The network read from ``data``, or None when it is refused as it must be."""
    try:
        return Network.from_onnx(data)
    except ValueError as exc:
        assert type(exc) is ValueError, repr(exc)
        assert str(exc).startswith(f"{SOURCE}: "), str(exc)
        return None


def test_bases_are_read():
    for base in BASES:
        assert check(base.SerializeToString()) is not None


def test_fuzz_onnx_files(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    rng = random.Random(20261208)
    outcomes = {"refused": 0, "read": 0, "runtime refuses": 0}
    tracemalloc.start()
    try:
        for n in range(N_MUTANTS):
            data = structured_mutant(rng) if n % 2 else byte_mutant(rng)
            try:
                net = check(data)
                if net is None:
                    outcomes["refused"] += 1
                    continue
                outcomes["read"] += 1
                agrees = agrees_with_runtime(ort, data, net)
                outcomes["runtime refuses"] += agrees is None
                assert agrees is not False, "reads a network ONNX Runtime computes otherwise"
            except BaseException as exc:
                (tmp_path / f"failing-{n}.onnx").write_bytes(data)
                raise AssertionError(f"mutant {n} (kept as failing-{n}.onnx): {exc!r}") from exc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outcomes["refused"] > N_MUTANTS // 2, outcomes
    assert peak < PEAK_BYTES, f"{peak:,} bytes traced at the peak"


# -- one of each, with its message ---------------------------------------------------------


def mutated(change) -> bytes:
    m = onnx.ModelProto()
    m.CopyFrom(BASES[0])
    change(m)
    return m.SerializeToString()


def set_dims(m, dims):
    t = m.graph.initializer[1]  # W0
    del t.dims[:]
    t.dims.extend(dims)


def cycle(m):
    m.graph.node[0].input[0] = m.graph.node[5].output[0]  # layer0 reads layer 1's output


def dangling(m):
    m.graph.node[0].input[1] = "W9"


def defined_twice(m):
    m.graph.node[1].output[0] = m.graph.node[0].output[0]


def short_raw(m):
    t = m.graph.initializer[1]
    t.raw_data = t.raw_data[:-4]


def typed_too_few(m):
    t = m.graph.initializer[1]
    count = len(t.raw_data) // 4
    t.ClearField("raw_data")
    t.float_data.extend([0.0] * (count - 1))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: set_dims(m, [10**6, 10**6]), r"initializer 'W0' declares shape \[1000000, "
                                                r"1000000\] of float32 \(4,000,000,000,000 bytes\) "
                                                r"but holds 80 bytes"),
        (lambda m: set_dims(m, [2**62, 2**62, 2**62]),
         r"initializer 'W0' declares shape .* but holds 80 bytes"),
        (lambda m: set_dims(m, [4, -5]),
         r"initializer 'W0' declares negative dimensions \[4, -5\]"),
        (lambda m: set_dims(m, [1] * 9), r"initializer 'W0' declares 9 dimensions"),
        (short_raw, r"initializer 'W0' declares shape \[4, 5\] of float32 \(80 bytes\) but "
                    r"holds 76 bytes"),
        (typed_too_few, r"initializer 'W0' declares shape \[4, 5\] \(20 values\) but holds 19 "
                        "values"),
        (cycle, r"node 'layer0' \(Gemm\): is on a cycle"),
        (dangling, r"node 'layer0' \(Gemm\): reads 'W9', which no node, initializer or graph "
                   "input defines"),
        (defined_twice, r"node 'step0_isnan' \(IsNaN\): writes 'z0', which is defined already"),
    ],
    ids=["huge-dims", "overflowing-dims", "negative-dims", "many-dims", "short-raw-data",
         "short-typed-data", "cycle", "dangling-input", "defined-twice"],
)
def test_hostile_model(change, message):
    data = mutated(change)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=f"^{SOURCE}: {message}") as info:
            Network.from_onnx(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert type(info.value) is ValueError
    assert peak < 2**20, f"{peak:,} bytes traced"


@pytest.mark.parametrize("keep", [0.001, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, keep):
    data = BASES[0].SerializeToString()
    path = tmp_path / "m.onnx"
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ValueError, match=f"^{path}: ") as info:
        Network.from_onnx(path)
    assert type(info.value) is ValueError


def test_not_protobuf_at_all(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match=f"^{path}: not an ONNX model \\(it does not parse"):
        Network.from_onnx(path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=f"^{path}: holds no graph"):
        Network.from_onnx(path)
