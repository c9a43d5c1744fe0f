"""ONNX in and out: ``Network.from_onnx`` and ``Network.to_onnx`` (the optional [onnx] extra).

onnx is imported only when one of these runs, never by ``import dlfr``;
without it they raise ImportError saying what to install. Reading is
:mod:`dlfr._onnx_read`'s graph walk over tensors checked by
:mod:`dlfr._onnx_tensors`; writing is here.

A written model computes ``net.forward`` with standard ONNX ops only, one
``Gemm`` per layer (W as dlfr stores it, (n_in, n_out)) and its activation:
Sigmoid, Tanh, Relu, LeakyRelu (alpha 0.01), Elu (alpha 1), Softmax (axis 1),
nothing for identity, and for step ``Where(IsNaN(z), z, Cast(z >= 0))``,
exactly dlfr's step: 1 where z >= 0 (-0.0 included), 0 below, NaN kept.
(ONNX attributes are float32: in a float64 model LeakyRelu's alpha is
float32(0.01), 2.2e-8 of the value from dlfr's 0.01; ONNX Runtime 1.32 runs
Elu in float32 only.) Input ``X`` and output ``Y`` have a
dynamic batch dimension; a network with ``classes`` also has ``label``,
``classes[net.predict(X)]``.
"""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

from . import _onnx_read, io
from ._names import ELU_ALPHA, LEAKY_RELU_SLOPE
from ._onnx_tensors import DOUBLE, FLOAT, INT64, STRING
from .layers import Dense

#: The opset ``to_onnx`` writes unless told otherwise (ONNX Runtime 1.13 and later run it).
DEFAULT_OPSET = 17
#: The oldest opset ``to_onnx`` writes.
MIN_OPSET = 13
#: The names of the written graph's input, output and label output.
INPUT, OUTPUT, LABEL = "X", "Y", "label"
#: The most a protobuf message, so one .onnx file without external data, may hold.
MAX_BYTES = 2**31 - 1

_OPS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "softmax": "Softmax",
        "leaky_relu": "LeakyRelu", "elu": "Elu"}
#: each op's attributes: Softmax over rows, LeakyRelu's and Elu's alpha as dlfr's
_ATTRIBUTES: dict[str, dict[str, Any]] = {
    "softmax": {"axis": 1},
    "leaky_relu": {"alpha": LEAKY_RELU_SLOPE},
    "elu": {"alpha": ELU_ALPHA},
}


def require_onnx() -> Any:
    """The onnx module, or ImportError saying how to install it."""
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            'reading and writing ONNX models needs the onnx package: pip install "dlfr[onnx]"'
        ) from exc
    return onnx


# -- reading -------------------------------------------------------------------------


def from_onnx(cls: Any, source: Any) -> Any:
    """A ``cls`` (Network or subclass) computing ONNX model ``source``; see Network.from_onnx."""
    onnx = require_onnx()
    model, name, folder = _parse(onnx, source)
    imported = _onnx_read.read(model, name, folder)
    layers = []
    for (W, b, activation), source in zip(imported.layers, imported.sources, strict=True):
        try:
            layers.append(Dense.from_params(W, b, activation, imported.dtype))
        except ValueError as exc:  # weights holding NaN or inf
            raise ValueError(f"{name}: {source}: {exc}") from None
    try:
        net = cls(layers)
        net.classes = imported.classes
    except ValueError as exc:  # too many layers, or two class labels for a 3-column output
        raise ValueError(f"{name}: {exc}") from None
    net.onnx_names = imported.names
    return net


def _parse(onnx: Any, source: Any) -> tuple[Any, str, str | None]:
    """(ModelProto, the name messages give it, the folder external data may live in)."""
    from google.protobuf.message import DecodeError

    if isinstance(source, onnx.ModelProto):
        return source, "the ONNX ModelProto", None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name, folder = bytes(source), "the ONNX bytes", None
    elif isinstance(source, (str, os.PathLike)):
        name = os.fsdecode(source)
        with io.open_regular(name, "ONNX model") as f:
            data = f.read()
        folder = os.path.dirname(os.path.abspath(name))
    else:
        raise TypeError(
            f"source must be a path, bytes or an onnx.ModelProto; got {type(source).__name__}"
        )
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{name}: not an ONNX model (it does not parse: {exc})") from None
    return model, name, folder


# -- writing -------------------------------------------------------------------------


def to_onnx(net: Any, path: str | os.PathLike[str] | None = None, *,
            opset: int = DEFAULT_OPSET) -> Any:
    """The ONNX model of ``net``, written atomically to ``path`` if given; see Network.to_onnx."""
    onnx = require_onnx()
    from onnx import helper, numpy_helper

    latest = onnx.defs.onnx_opset_version()
    if not (isinstance(opset, numbers.Integral) and not isinstance(opset, bool)
            and MIN_OPSET <= opset <= latest):
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {latest} (the newest "
                         f"this onnx {onnx.__version__} knows); got {opset!r}")
    nbytes = sum(layer.W.nbytes + layer.b.nbytes for layer in net.layers)
    if nbytes > MAX_BYTES:
        raise ValueError(f"the network's weights take {nbytes:,} bytes, more than one ONNX "
                         f"file holds ({MAX_BYTES:,})")
    elem = FLOAT if net.dtype == np.float32 else DOUBLE
    initializers: list[Any] = []
    nodes: list[Any] = []

    def constant(name: str, value: Any) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    if any(layer.activation == "step" for layer in net.layers):
        zero = constant("zero", net.dtype.type(0))
    previous = INPUT
    for i, layer in enumerate(net.layers):
        out = OUTPUT if i == len(net.layers) - 1 else f"a{i}"
        z = out if layer.activation == "identity" else f"z{i}"
        W = constant(f"W{i}", np.ascontiguousarray(layer.W))
        nodes.append(helper.make_node("Gemm", [previous, W, constant(f"b{i}", layer.b.copy())],
                                      [z], name=f"layer{i}"))
        if layer.activation in _OPS:
            nodes.append(helper.make_node(_OPS[layer.activation], [z], [out],
                                          name=f"{layer.activation}{i}",
                                          **_ATTRIBUTES.get(layer.activation, {})))
        elif layer.activation == "step":
            nodes += [
                helper.make_node("IsNaN", [z], [f"nan{i}"], name=f"step{i}_isnan"),
                helper.make_node("GreaterOrEqual", [z, zero], [f"ge{i}"], name=f"step{i}_ge"),
                helper.make_node("Cast", [f"ge{i}"], [f"step{i}"], name=f"step{i}_cast",
                                 to=elem),
                helper.make_node("Where", [f"nan{i}", z, f"step{i}"], [out], name=f"step{i}"),
            ]
        previous = out

    outputs = [helper.make_tensor_value_info(OUTPUT, elem, ["batch", net.sizes[-1]])]
    if net.classes is not None:
        numeric = net.classes.dtype.kind in "iu"
        constant("classes", net.classes.astype(np.int64) if numeric else net.classes)
        nodes += _label_nodes(helper, net.sizes[-1], constant, net.dtype)
        label_type = INT64 if numeric else STRING
        outputs.append(helper.make_tensor_value_info(LABEL, label_type, ["batch"]))
    graph = helper.make_graph(
        nodes, "dlfr_network",
        [helper.make_tensor_value_info(INPUT, elem, ["batch", net.sizes[0]])],
        outputs, initializers,
    )
    from . import __version__

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="dlfr", producer_version=__version__,
                              doc_string=repr(net))
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
    if path is not None:
        data = model.SerializeToString()
        io.write_atomically(path, lambda f: f.write(data))
    return model


def _label_nodes(helper: Any, n_out: int, constant: Any, dtype: np.dtype) -> list[Any]:
    """Nodes writing LABEL = classes[index], index as ``Network.predict`` takes it."""
    if n_out > 1:  # the first largest output, as predict's argmax
        index = [helper.make_node("ArgMax", [OUTPUT], ["label_index"], name="label_index",
                                  axis=1, keepdims=0, select_last_index=0)]
    else:  # output >= 0.5
        half = constant("half", dtype.type(0.5))
        shape = constant("label_shape", np.array([-1], dtype=np.int64))
        index = [
            helper.make_node("GreaterOrEqual", [OUTPUT, half], ["label_positive"],
                             name="label_positive"),
            helper.make_node("Cast", ["label_positive"], ["label_index_2d"],
                             name="label_index_2d", to=INT64),
            helper.make_node("Reshape", ["label_index_2d", shape], ["label_index"],
                             name="label_index"),
        ]
    return index + [helper.make_node("Gather", ["classes", "label_index"], [LABEL],
                                     name="label", axis=0)]
