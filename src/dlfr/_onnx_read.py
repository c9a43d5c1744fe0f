"""Reading a multi-layer perceptron out of an ONNX graph, or refusing it with the reason.

The graph is checked as a whole first (one opset, one input declared
(n_samples, n_features) of float32 or float64, every tensor against its
declared shape, every value defined once, no dangling input, no cycle), then
walked from its input as a chain::

    input -> (Gemm | MatMul [+ Add]) -> [Sigmoid | Tanh | Relu | LeakyRelu | Elu | Softmax
                                         | step] -> ...

with Identity, and Flatten, Reshape or Cast where they change nothing, allowed
anywhere in it. What follows the chain's last value must be graph outputs:
the value itself, a Reshape that lays the same values out differently
(skl2onnx's several-output regressors), or a classifier's outputs as skl2onnx
writes them (``[1 - p, p]`` for two classes, ZipMap, ArgMax and the class
labels through ArrayFeatureExtractor or Gather, Reshape and Cast) and as
:mod:`dlfr._onnx` writes them. Every node must be part of that; anything else
is refused with a ValueError naming the node, its op type and what dlfr reads.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _onnx_tensors as tensors
from ._names import ELU_ALPHA, LEAKY_RELU_SLOPE, ActivationName
from ._onnx_tensors import DOUBLE, FLOAT, INT32, INT64, STRING

#: What dlfr imports, for the messages that refuse a node.
SUPPORTED = (
    "dlfr reads a chain of Gemm or MatMul (+ Add) layers, each followed by at most one "
    "Sigmoid, Tanh, Relu, LeakyRelu (alpha 0.01), Elu (alpha 1) or Softmax, with Identity, "
    "Flatten, Reshape and Cast where they change nothing, and a classifier's ArgMax, ZipMap "
    "and class labels"
)
#: The oldest default-domain opset read (Gemm's and Add's broadcasting as today's).
MIN_OPSET = 7

# onnx.AttributeProto.AttributeType values, and the field holding each
_F, _I, _S, _T, _FS, _IS, _SS = 1, 2, 3, 4, 6, 7, 8
_FIELDS = {_F: "f", _I: "i", _S: "s", _T: "t", _FS: "floats", _IS: "ints", _SS: "strings"}
#: op type -> {attribute: type} it may carry; an op not here is not read
_OPS: dict[str, dict[str, int]] = {
    "Gemm": {"alpha": _F, "beta": _F, "transA": _I, "transB": _I},
    "MatMul": {}, "Add": {}, "Sub": {}, "Identity": {},
    "Sigmoid": {}, "Tanh": {}, "Relu": {}, "Softmax": {"axis": _I},
    "LeakyRelu": {"alpha": _F}, "Elu": {"alpha": _F},
    "IsNaN": {}, "GreaterOrEqual": {}, "Where": {},
    "Flatten": {"axis": _I}, "Reshape": {"allowzero": _I},
    "Cast": {"to": _I, "saturate": _I, "round_mode": _S},
    "ArgMax": {"axis": _I, "keepdims": _I, "select_last_index": _I},
    "Concat": {"axis": _I}, "Gather": {"axis": _I},
    "ZipMap": {"classlabels_int64s": _IS, "classlabels_strings": _SS},
    "ArrayFeatureExtractor": {},
    "Constant": {"value": _T, "value_float": _F, "value_floats": _FS, "value_int": _I,
                 "value_ints": _IS},
}
_ML_OPS = {"ZipMap", "ArrayFeatureExtractor"}  # domain ai.onnx.ml
_ACTIVATIONS: dict[str, ActivationName] = {
    "Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu", "Softmax": "softmax",
    "LeakyRelu": "leaky_relu", "Elu": "elu"}
#: op type -> the alpha dlfr's activation has (also each op's default), as the
#: float32 an ONNX attribute holds. A float64 graph's LeakyRelu is read as dlfr's
#: slope 0.01, what its exporter meant (PyTorch's default): ONNX has no float64
#: attribute, and ONNX Runtime multiplies by float32(0.01) there, 2.2e-8 of the
#: value apart.
_ALPHAS = {"LeakyRelu": float(np.float32(LEAKY_RELU_SLOPE)), "Elu": ELU_ALPHA}
_LAYOUT_OPS = {"Identity", "Flatten", "Reshape", "Cast"}
#: ops that compute: a value read by one of these and another node is a branch
_COMPUTING_OPS = {"Gemm", "MatMul", "Add", *_ACTIVATIONS}
_INT_RANGES: dict[int, Any] = {INT32: np.iinfo(np.int32), INT64: np.iinfo(np.int64)}


@dataclass
class Imported:
    """What the graph computes, in dlfr's terms.

    ``layers`` holds (W of shape (n_in, n_out), b of shape (n_out,), activation)
    per layer, of ``dtype``, and ``sources`` the node each layer's W comes from
    (for messages); ``classes`` the class labels (None for a graph
    without labels); ``names`` the graph's names: "input", and where present
    "output" (the output holding the network's values) and "label".
    """

    layers: list[tuple[np.ndarray, np.ndarray, ActivationName]]
    sources: list[str]
    dtype: np.dtype
    classes: np.ndarray | None
    names: dict[str, str] = field(default_factory=dict)


def read(model: Any, name: str, folder: str | None) -> Imported:
    """Check ``model`` (an onnx.ModelProto) and read its network; see the module docstring.

    ``name`` names the source in messages; ``folder`` is where external data
    may live (None: nowhere).
    """
    return _Reader(model, name, folder).read()


class _Reader:
    """One graph, checked and indexed, walked once by :meth:`read`."""

    def __init__(self, model: Any, name: str, folder: str | None) -> None:
        self.name, self.folder = name, folder
        if not model.HasField("graph"):
            raise self.error("holds no graph (not an ONNX model?)")
        graph = model.graph
        self.opsets = self._opsets(model)
        self.opset = self.opsets[""]
        self.nodes = list(graph.node)
        self.used = [False] * len(self.nodes)
        self.constants: dict[str, Any] = {}  # name -> TensorProto, or an ndarray
        self._arrays: dict[str, np.ndarray] = {}
        self._constants(graph)
        self.input, self.elem, self.width = self._input(graph)
        self.dtype = tensors.TYPES[self.elem][1].newbyteorder("=")  # type: ignore[union-attr]
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        self.rank: list[int] = []
        self._index()
        self.outputs = [out.name for out in graph.output]
        self.output_types = {out.name: out.type for out in graph.output}
        if len(self.output_types) < len(self.outputs):
            raise self.error(f"lists a graph output twice: {self.outputs}")
        for out in self.outputs:
            if out != self.input and out not in self.producer:
                raise self.error(f"graph output {out!r} is not computed by any node")

    # -- messages -------------------------------------------------------------
    def error(self, message: str) -> ValueError:
        return ValueError(f"{self.name}: {message}")

    def refuse(self, node: Any, why: str, supported: bool = False) -> ValueError:
        """An error naming ``node`` and its op type, and what dlfr reads if ``supported``."""
        return self.error(f"{describe(node)}: {why}" + (f"; {SUPPORTED}" if supported else ""))

    # -- checks of the whole graph ---------------------------------------------
    def _opsets(self, model: Any) -> dict[str, int]:
        """{domain: version} of the opsets imported ("" the default domain)."""
        import onnx

        opsets: dict[str, int] = {}
        for op in model.opset_import:
            domain = "" if op.domain == "ai.onnx" else op.domain
            if domain in opsets:
                raise self.error(f"imports opset domain {op.domain!r} twice")
            opsets[domain] = int(op.version)
        latest = onnx.defs.onnx_opset_version()
        version = opsets.get("")
        if version is None:
            raise self.error("imports no version of the default ONNX opset")
        if not MIN_OPSET <= version <= latest:
            raise self.error(f"uses opset {version}; dlfr reads opset {MIN_OPSET} to {latest} "
                             f"(the newest this onnx {onnx.__version__} knows)")
        return opsets

    def _constants(self, graph: Any) -> None:
        """Initializers and Constant nodes' values, every tensor checked against its shape."""
        if len(graph.sparse_initializer):
            raise self.error("holds sparse initializers, which dlfr does not read")
        for t in graph.initializer:
            self._check_tensor(t, f"initializer {t.name!r}")
            self._define_constant(t.name, t)
        for i, node in enumerate(self.nodes):
            if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
                continue
            attrs = self.check_node(node, [0])
            if len(attrs) != 1:
                raise self.refuse(node, "must hold one value attribute")
            (key, value), = attrs.items()
            if key == "value":
                self._check_tensor(value, describe(node))
            elif key in ("value_float", "value_floats"):
                value = np.array(value, dtype=np.float32)
            else:
                value = np.array(value, dtype=np.int64)
            self._define_constant(node.output[0], value)
            self.used[i] = True

    def _check_tensor(self, t: Any, what: str) -> None:
        try:
            tensors.check(t, self.folder)
        except tensors.TensorError as exc:
            raise self.error(f"{what} {exc}") from None

    def _define_constant(self, name: str, value: Any) -> None:
        if not name:
            raise self.error("a constant has no name")
        if name in self.constants:
            raise self.error(f"value {name!r} is defined twice")
        self.constants[name] = value

    def _input(self, graph: Any) -> tuple[str, int, int | None]:
        """The graph's one input: its name, element type and width (None if not declared)."""
        inputs = [v for v in graph.input if v.name not in self.constants]
        if len(inputs) != 1:
            names = ", ".join(repr(v.name) for v in inputs)
            raise self.error(f"takes {len(inputs)} inputs ({names}); a dlfr network takes one, "
                             "(n_samples, n_features)")
        value = inputs[0]
        what = f"input {value.name!r}"
        if not value.type.HasField("tensor_type"):
            raise self.error(f"{what} is not a tensor")
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type not in (FLOAT, DOUBLE):
            raise self.error(f"{what} is {tensors.type_name(tensor_type.elem_type)}; dlfr "
                             "runs float32 and float64 networks")
        dims = tensor_type.shape.dim if tensor_type.HasField("shape") else None
        if dims is None or len(dims) != 2:
            got = "no shape" if dims is None else f"{len(dims)} dimensions"
            raise self.error(f"{what} must be declared 2-D, (n_samples, n_features); it has {got}")
        width = dims[1].dim_value if dims[1].HasField("dim_value") else None
        if width is not None and width < 1:
            raise self.error(f"{what} declares {width} features")
        return value.name, tensor_type.elem_type, width

    def _index(self) -> None:
        """Producers and consumers of every value; refuses dangling inputs and cycles."""
        for i, node in enumerate(self.nodes):
            if self.used[i]:  # a Constant, already defined
                continue
            for out in node.output:
                if out in self.producer or out in self.constants or out == self.input:
                    raise self.refuse(node, f"writes {out!r}, which is defined already")
                if out:
                    self.producer[out] = i
        waiting = [0] * len(self.nodes)  # inputs computed by nodes not yet ordered
        for i, node in enumerate(self.nodes):
            for value in dict.fromkeys(node.input):
                if not value:
                    continue
                if value in self.producer:
                    waiting[i] += 1
                elif value not in self.constants and value != self.input:
                    raise self.refuse(node, f"reads {value!r}, which no node, initializer or "
                                            "graph input defines")
                self.consumers.setdefault(value, []).append(i)
        # Kahn's topological sort (ties in file order): nodes left over sit on a cycle
        self.rank = [-1] * len(self.nodes)
        ready = [i for i, n in enumerate(waiting) if n == 0]
        heapq.heapify(ready)
        order = 0
        while ready:
            i = heapq.heappop(ready)
            self.rank[i], order = order, order + 1
            for out in self.nodes[i].output:
                for j in self.consumers.get(out, []) if out else []:
                    waiting[j] -= 1
                    if waiting[j] == 0:
                        heapq.heappush(ready, j)
        if order < len(self.nodes):
            stuck = next(i for i, r in enumerate(self.rank) if r < 0)
            raise self.refuse(self.nodes[stuck], "is on a cycle; an ONNX graph must be acyclic")

    # -- access -------------------------------------------------------------------
    def users(self, value: str) -> list[int]:
        """The nodes not yet matched that read ``value``, in topological order."""
        return sorted((i for i in self.consumers.get(value, []) if not self.used[i]),
                      key=self.rank.__getitem__)

    def attributes(self, node: Any, defined: Iterable[str]) -> dict[str, Any]:
        """The node's attributes, each of the type its op declares; any other is refused.

        ``defined``: the attributes its op's schema has at the graph's opset.
        """
        allowed = _OPS.get(node.op_type, {})
        defined = set(defined)
        values: dict[str, Any] = {}
        for attr in node.attribute:
            kind = allowed.get(attr.name)
            if kind is None:
                raise self.refuse(node, f"has attribute {attr.name!r}, which dlfr does not read")
            if attr.name not in defined:
                raise self.refuse(node, f"has attribute {attr.name!r}, which {node.op_type} does "
                                        f"not have in opset {self.opset}")
            fields = {f.name for f, _ in attr.ListFields()} - {"name", "type", "doc_string"}
            if attr.type != kind or attr.name in values or fields - {_FIELDS[kind]}:
                raise self.refuse(node, f"has a malformed attribute {attr.name!r}")
            values[attr.name] = {
                _F: attr.f, _I: attr.i, _S: attr.s, _T: attr.t, _FS: list(attr.floats),
                _IS: list(attr.ints), _SS: list(attr.strings),
            }[kind]
        return values

    def constant(self, node: Any, value: str, what: str, dtype: Any = None,
                 ndim: Iterable[int] | None = None) -> np.ndarray:
        """The constant ``value`` read by ``node``, of ``dtype`` and a rank in ``ndim``."""
        if value not in self.constants:
            source = (describe(self.nodes[self.producer[value]]) if value in self.producer
                      else "the graph input")
            raise self.refuse(node, f"its {what} {value!r} must be a constant (an initializer); "
                                    f"it is computed by {source}", supported=True)
        if value not in self._arrays:
            stored = self.constants[value]
            if isinstance(stored, np.ndarray):
                self._arrays[value] = stored
            else:
                try:
                    self._arrays[value] = tensors.array(stored, self.folder)
                except tensors.TensorError as exc:
                    raise self.error(f"constant {value!r} {exc}") from None
        array = self._arrays[value]
        if dtype is not None and array.dtype != np.dtype(dtype):
            raise self.refuse(node, f"its {what} {value!r} is {array.dtype}; expected "
                                    f"{np.dtype(dtype)}")
        if ndim is not None and array.ndim not in tuple(ndim):
            raise self.refuse(node, f"its {what} {value!r} has shape {array.shape}")
        return array

    def check_node(self, node: Any, n_inputs: Iterable[int]) -> dict[str, Any]:
        """Check a node's domain, opset, inputs and outputs; return its attributes."""
        import onnx

        domain = "ai.onnx.ml" if node.op_type in _ML_OPS else ""
        if ("" if node.domain == "ai.onnx" else node.domain) != domain:
            raise self.refuse(node, f"is an op of domain {node.domain!r}", supported=True)
        if domain not in self.opsets:
            raise self.refuse(node, f"is an op of domain {domain!r}, whose opset the model "
                                    "does not import")
        try:
            schema = onnx.defs.get_schema(node.op_type, self.opsets[domain], domain)
        except onnx.defs.SchemaError:
            raise self.refuse(node, f"does not exist in opset {self.opsets[domain]} of domain "
                                    f"{domain or 'ai.onnx'!r}") from None
        inputs = list(node.input)
        while inputs and not inputs[-1]:  # trailing optional inputs left out
            inputs.pop()
        if len(inputs) not in tuple(n_inputs) or "" in inputs or len(node.output) != 1:
            raise self.refuse(node, f"has {len(node.input)} inputs and {len(node.output)} "
                                    "outputs, which dlfr does not read")
        return self.attributes(node, schema.attributes)

    # -- the walk -----------------------------------------------------------------
    def read(self) -> Imported:
        layers, sources, value = self._chain()
        names = {"input": self.input}
        classes = self._tail(value, layers[-1][0].shape[1], names)
        unmatched = [i for i, done in enumerate(self.used) if not done]
        if unmatched:
            node = self.nodes[min(unmatched, key=self.rank.__getitem__)]
            raise self.refuse(node, "is not part of the network", supported=True)
        return Imported(layers, sources, self.dtype, classes, names)

    def _chain(self) -> tuple[list[tuple[np.ndarray, np.ndarray, ActivationName]], list[str], str]:
        """The layers from the input on, the nodes of their weights, the last value written."""
        layers: list[tuple[np.ndarray, np.ndarray, ActivationName]] = []
        sources: list[str] = []
        value, width = self.input, self.width
        linear: list[Any] | None = None  # [W, b or None] of the layer being read
        biased = False
        while True:
            users = self.users(value)
            if linear is not None and len(users) == 3 and \
                    (step := self._step(value, users)) is not None:
                layers.append(self._layer(linear, "step"))
                linear, value = None, step
                continue
            if len(users) != 1:
                if len(users) > 1 and any(self.nodes[i].op_type in _COMPUTING_OPS for i in users):
                    readers = ", ".join(describe(self.nodes[i]) for i in users)
                    raise self.error(f"value {value!r} is read by {len(users)} nodes ({readers}):"
                                     " dlfr reads one chain of layers, without branches")
                break
            node = self.nodes[users[0]]
            op = node.op_type
            if op in _LAYOUT_OPS:
                kept, width = self._layout(node, value, width)
                if not kept:
                    break  # it changes the layout: only as a graph output (see _tail)
            elif op in ("Gemm", "MatMul"):
                if linear is not None:
                    layers.append(self._layer(linear, "identity"))
                linear = list(self._linear(node, value, width))
                sources.append(describe(node))
                width, biased = linear[0].shape[1], linear[1] is not None
            elif op == "Add" and linear is not None and not biased:
                linear[1], biased = self._bias(node, value, width), True
            elif op in _ACTIVATIONS and linear is not None:
                layers.append(self._layer(linear, self._activation(node)))
                linear = None
            else:
                break
            self.used[users[0]] = True
            value = node.output[0]
        if linear is not None:
            layers.append(self._layer(linear, "identity"))
        if not layers:
            raise self.error(f"has no Gemm or MatMul layer reading input {self.input!r}; "
                             f"{SUPPORTED}")
        return layers, sources, value

    def _layer(self, linear: list[Any], activation: ActivationName
               ) -> tuple[np.ndarray, np.ndarray, ActivationName]:
        W, b = linear
        return W, (np.zeros(W.shape[1], self.dtype) if b is None else b), activation

    def _linear(self, node: Any, value: str, width: int | None) -> tuple[np.ndarray, Any]:
        """W (n_in, n_out) and b (or None) of a Gemm or a MatMul reading ``value``."""
        if node.op_type == "MatMul":
            self.check_node(node, [2])
            attrs: dict[str, Any] = {}
            operands = [node.input[1]]
        else:
            attrs = self.check_node(node, [2, 3])
            operands = [name for name in node.input[1:] if name]
        if node.input[0] != value:
            raise self.refuse(node, f"multiplies {value!r} from the right: the rows of a batch "
                                    "must be its first operand", supported=True)
        if attrs.get("transA", 0):
            raise self.refuse(node, "has transA=1: it multiplies across the batch's rows, which "
                                    "is not a layer of a multi-layer perceptron")
        W = self.constant(node, operands[0], "weight", self.dtype, [2])
        if attrs.get("transB", 0):
            W = W.T
        if width is not None and W.shape[0] != width:
            raise self.refuse(node, f"multiplies {width} features by weights of shape "
                                    f"{W.shape}")
        alpha, beta = (self.dtype.type(np.float32(attrs.get(k, 1.0))) for k in ("alpha", "beta"))
        W = np.ascontiguousarray(W * alpha if alpha != 1 else W)
        if len(operands) == 1:
            return W, None
        b = self._broadcast_bias(node, operands[1], W.shape[1])
        return W, (b * beta if beta != 1 else b)

    def _bias(self, node: Any, value: str, width: int | None) -> np.ndarray:
        self.check_node(node, [2])
        inputs = list(node.input)
        if inputs.count(value) != 1:
            raise self.refuse(node, f"adds {value!r} to itself", supported=True)
        assert width is not None  # a layer came before
        return self._broadcast_bias(node, inputs[1 - inputs.index(value)], width)

    def _broadcast_bias(self, node: Any, name: str, width: int) -> np.ndarray:
        """A bias constant as (width,): shapes (), (1,), (width,), (1, 1) and (1, width)."""
        c = self.constant(node, name, "bias", self.dtype, [0, 1, 2])
        if c.shape not in ((), (1,), (width,), (1, 1), (1, width)):
            raise self.refuse(node, f"its bias {name!r} has shape {c.shape}, which does not "
                                    f"broadcast to every row of {width} columns alike")
        return np.broadcast_to(c, (1, width))[0].copy()

    def _activation(self, node: Any) -> ActivationName:
        attrs = self.check_node(node, [1])
        if node.op_type == "Softmax":
            # opset < 13: the input coerced to 2-D at axis (default 1); from 13: along axis
            # (default -1). Over a 2-D tensor axis 1 and -1 are the rows either way.
            axis = attrs.get("axis", 1 if self.opset < 13 else -1)
            if axis not in (1, -1):
                raise self.refuse(node, f"has axis={axis}: it normalises across the batch's "
                                        "rows; dlfr's softmax normalises each row")
        if node.op_type in _ALPHAS:
            alpha = attrs.get("alpha", _ALPHAS[node.op_type])
            if alpha != _ALPHAS[node.op_type]:
                raise self.refuse(node, f"has alpha={np.float32(alpha)!s}; dlfr's "
                                        f"{_ACTIVATIONS[node.op_type]} has alpha "
                                        f"{np.float32(_ALPHAS[node.op_type])!s} only")
        return _ACTIVATIONS[node.op_type]

    def _step(self, z: str, users: list[int]) -> str | None:
        """The output of ``Where(IsNaN(z), z, Cast(z >= 0))`` (dlfr's step), or None."""
        by_op = {self.nodes[i].op_type: i for i in users}
        if set(by_op) != {"IsNaN", "GreaterOrEqual", "Where"}:
            return None
        isnan, ge, where = (self.nodes[by_op[op]] for op in ("IsNaN", "GreaterOrEqual", "Where"))
        for node, n in ((isnan, 1), (ge, 2), (where, 3)):
            self.check_node(node, [n])
        casts = self.users(ge.output[0])
        if not (list(isnan.input) == [z] and ge.input[0] == z and len(casts) == 1
                and self.nodes[casts[0]].op_type == "Cast"):
            return None
        cast = self.nodes[casts[0]]
        to = self.check_node(cast, [1]).get("to")
        zero = self.constant(ge, ge.input[1], "threshold", self.dtype, [0, 1, 2])
        if not (to == self.elem and zero.size == 1 and zero.ravel()[0] == 0
                and list(where.input) == [isnan.output[0], z, cast.output[0]]
                and self.users(isnan.output[0]) == [by_op["Where"]]
                and self.users(cast.output[0]) == [by_op["Where"]]):
            return None
        for i in (*users, casts[0]):
            self.used[i] = True
        return where.output[0]

    def _layout(self, node: Any, value: str, width: int | None) -> tuple[bool, int | None]:
        """(True, width after it) for an Identity, Flatten, Reshape or Cast that changes nothing.

        (False, width): the node keeps every value in its row-major order but
        changes the shape (a Flatten or a Reshape; allowed only as a graph
        output, see :meth:`_tail`). A Cast to another type, or a Reshape that
        moves values between rows, is refused.
        """
        attrs = self.check_node(node, [2] if node.op_type == "Reshape" else [1])
        if node.input[0] != value:
            raise self.refuse(node, f"reads {value!r} as its shape", supported=True)
        if node.op_type == "Cast":
            if attrs.get("to") != self.elem:
                raise self.refuse(node, f"casts to {tensors.type_name(attrs.get('to', 0))}: "
                                        f"dlfr's network computes in {self.dtype}")
        elif node.op_type == "Flatten":
            axis = attrs.get("axis", 1)
            if axis not in (-2, -1, 0, 1, 2):
                raise self.refuse(node, f"has axis={axis}, out of range for a 2-D tensor")
            return axis in (1, -1), width
        elif node.op_type == "Reshape":
            return self._reshape(node, width, attrs.get("allowzero", 0))
        return True, width

    def _reshape(self, node: Any, width: int | None, allowzero: int) -> tuple[bool, int | None]:
        """See :meth:`_layout`: a Reshape of (n, width) to its shape, for every batch size n."""
        shape = [int(s) for s in self.constant(node, node.input[1], "shape", np.int64, [1])]
        dims: list[Any] = []  # "n" (the batch size), "w" (the width), -1 or a size
        for j, s in enumerate(shape):
            if s == 0 and not allowzero and j < 2:
                dims.append("nw"[j])
            elif s == -1 or s > 0:
                dims.append(s)
            else:
                raise self.refuse(node, f"reshapes to {shape}, which is not defined for every "
                                        "batch size")
        if width is not None:
            dims = [width if d == "w" else d for d in dims]
        if dims in (["n", "w"], ["n", -1]) or (width is not None and dims in (["n", width],
                                                                             [-1, width])):
            return True, width
        if width is None and len(dims) == 2 and dims[0] in ("n", -1) and isinstance(dims[1], int) \
                and dims[1] > 0:
            return True, dims[1]  # before the first layer: it fixes the number of features
        sizes = [d for d in dims if d not in ("n", -1)]
        if width is not None and dims.count(-1) <= 1 and "w" not in dims:
            product = math.prod(sizes)
            if (width % product == 0) if -1 in dims else ("n" in dims and product == width):
                return False, width  # the same values in order, shaped otherwise for every n
        raise self.refuse(node, f"reshapes rows of {width or 'n_features'} values to {shape}, "
                                "which moves values between rows", supported=True)

    # -- after the chain: outputs, probabilities, labels ----------------------------
    def _tail(self, value: str, columns: int, names: dict[str, str]) -> np.ndarray | None:
        """Match what reads the network's output ``value``; fill ``names``; return the classes.

        Walks the values derived from the output with what each holds: "out"
        (the network's outputs, or the two-column [1 - p, p]), "final" (an
        output in another layout or a ZipMap: nothing may read it), "index"
        (class indices) or "label" (class labels); every graph output must be
        one of them.
        """
        work: list[tuple[str, str, Any]] = [(value, "out", columns)]
        outputs: dict[str, tuple[str, Any]] = {}
        zipmaps: list[np.ndarray] = []
        while work:
            name, kind, info = work.pop()
            if name in self.outputs:
                outputs[name] = (kind, info)
            for i in self.users(name):
                if self.used[i]:  # matched with an earlier reader (1 - p and its Concat)
                    continue
                if kind == "final":
                    raise self.refuse(self.nodes[i], f"reads {name!r}, which must be a graph "
                                                     "output", supported=True)
                self.used[i] = True
                work += self._tail_node(self.nodes[i], name, kind, info, zipmaps)
        labels: list[np.ndarray] = []
        for name in self.outputs:
            if name not in outputs:
                raise self.error(f"graph output {name!r} is not the network's output or its "
                                 "labels; dlfr computes one output")
            kind, info = outputs[name]
            self._check_declared_type(name, kind, info)
            if kind in ("out", "final"):
                names.setdefault("output", name)
            else:
                names.setdefault("label", name)
                labels.append(np.arange(info) if kind == "index" else info)
        found = labels + zipmaps
        for classes in found[1:]:
            if classes.tolist() != found[0].tolist():
                raise self.error(f"names two sets of class labels, {found[0].tolist()} and "
                                 f"{classes.tolist()}")
        return found[0] if found else None

    def _check_declared_type(self, name: str, kind: str, info: Any) -> None:
        """Refuse a graph output declared of a type other than what it holds (if declared)."""
        declared = self.output_types[name]
        which = declared.WhichOneof("value")
        if which is None:
            return
        if kind == "final" and info is None:  # a ZipMap's list of {label: probability}
            if which == "sequence_type":
                return
            holds = "a sequence of maps"
        else:
            if kind == "label":
                expected = {STRING} if info.dtype.kind == "U" else {
                    INT32 if info.dtype == np.int32 else INT64}
            else:
                expected = {INT32, INT64} if kind == "index" else {self.elem}
            elem = declared.tensor_type.elem_type if which == "tensor_type" else -1
            if elem in expected | {0}:
                return
            holds = " or ".join(f"{tensors.type_name(e)} tensors" for e in sorted(expected))
        raise self.error(f"graph output {name!r} is declared of another type than it holds "
                         f"({holds})")

    def _tail_node(self, node: Any, value: str, kind: str, info: Any,
                   zipmaps: list[np.ndarray]) -> list[tuple[str, str, Any]]:
        """The values ``node`` derives from ``value`` (of ``kind``), with their kinds."""
        op = node.op_type
        if kind == "out":
            return self._tail_of_outputs(node, value, info, zipmaps)
        if op == "Identity":
            self.check_node(node, [1])
        elif op == "Reshape":
            self.check_node(node, [2])
            shape = self.constant(node, node.input[1], "shape", np.int64, [1]).tolist()
            if node.input[0] != value or shape.count(-1) != 1 or set(shape) - {-1, 1}:
                raise self.refuse(node, f"reshapes the class {kind}s to {shape}")
        elif op == "Cast":
            to = self.check_node(node, [1]).get("to", 0)
            if kind == "index" and to not in (INT32, INT64):
                raise self.refuse(node, f"casts the class indices to {tensors.type_name(to)}")
            if kind == "label":
                info = self._cast_labels(node, info, to)
        elif kind == "index" and op in ("ArrayFeatureExtractor", "Gather"):
            attrs = self.check_node(node, [2])
            if list(node.input[1:]) != [value] or attrs.get("axis", 0) != 0:
                raise self.refuse(node, f"does not look up class labels by {value!r}")
            classes = self.constant(node, node.input[0], "classes", None, [1])
            if classes.dtype.kind not in "iU" or len(classes) != info:
                raise self.refuse(node, f"its classes {node.input[0]!r} are not {info} integer "
                                        "or string labels")
            return [(node.output[0], "label", classes)]
        else:
            raise self.refuse(node, f"reads the class {kind}s {value!r}", supported=True)
        return [(node.output[0], kind, info)]

    def _tail_of_outputs(self, node: Any, value: str, columns: int,
                         zipmaps: list[np.ndarray]) -> list[tuple[str, str, Any]]:
        """See :meth:`_tail_node`: what reads the network's outputs (``columns`` of them)."""
        op = node.op_type
        if op in _LAYOUT_OPS:
            kept, _ = self._layout(node, value, columns)
            return [(node.output[0], "out" if kept else "final", columns)]
        if op == "ArgMax" and columns > 1:
            attrs = self.check_node(node, [1])
            if attrs.get("axis", 0) not in (1, -1) or attrs.get("select_last_index", 0):
                raise self.refuse(node, "must take each row's first largest value (axis=1, "
                                        "select_last_index=0), as dlfr's predict does")
            return [(node.output[0], "index", columns)]
        if op == "ZipMap":
            attrs = self.check_node(node, [1])
            labels = (np.array(attrs["classlabels_int64s"], dtype=np.int64)
                      if "classlabels_int64s" in attrs else
                      np.array([s.decode("utf-8", "replace") for s in
                                attrs.get("classlabels_strings", [])], dtype=str))
            if len(labels) != columns or len(attrs) != 1:
                raise self.refuse(node, f"must name {columns} class labels")
            zipmaps.append(labels)
            return [(node.output[0], "final", None)]
        if op == "Sub" and columns == 1:
            return [(self._negative_class(node, value), "out", 2)]
        if op == "GreaterOrEqual" and columns == 1:
            return [(self._binary_index(node, value), "index", 2)]
        raise self.refuse(node, f"is not supported here (it reads {value!r})", supported=True)

    def _negative_class(self, sub: Any, p: str) -> str:
        """skl2onnx's two-class probabilities: ``Concat(1 - p, p)``; returns the Concat's output."""
        self.check_node(sub, [2])
        concats = self.users(sub.output[0])
        concat = self.nodes[concats[0]] if len(concats) == 1 else None
        if sub.input[1] != p or concat is None or concat.op_type != "Concat":
            raise self.refuse(sub, "is not 1 - p feeding the two classes' probabilities")
        one = self.constant(sub, sub.input[0], "constant", self.dtype, [0, 1, 2])
        attrs = self.check_node(concat, [2])
        if one.size != 1 or one.ravel()[0] != 1 or attrs.get("axis") not in (1, -1) or \
                list(concat.input) != [sub.output[0], p]:
            raise self.refuse(concat, "is not [1 - p, p], the two classes' probabilities")
        self.used[concats[0]] = True
        return concat.output[0]

    def _binary_index(self, ge: Any, p: str) -> str:
        """dlfr's two-class label index: ``Cast(p >= 0.5)``; returns the Cast's output."""
        self.check_node(ge, [2])
        casts = self.users(ge.output[0])
        cast = self.nodes[casts[0]] if len(casts) == 1 else None
        half = self.constant(ge, ge.input[1], "threshold", self.dtype, [0, 1, 2])
        if ge.input[0] != p or half.size != 1 or half.ravel()[0] != 0.5 or cast is None \
                or cast.op_type != "Cast" \
                or self.check_node(cast, [1]).get("to") not in (INT32, INT64):
            raise self.refuse(ge, "is not the class index p >= 0.5 of a two-class output")
        self.used[casts[0]] = True
        return cast.output[0]

    def _cast_labels(self, node: Any, classes: np.ndarray, to: Any) -> np.ndarray:
        """The class labels after a Cast that keeps every one (int to int, or string)."""
        if classes.dtype.kind == "U" and to == STRING:
            return classes
        if classes.dtype.kind == "i" and to in _INT_RANGES:
            limits = _INT_RANGES[to]
            if classes.min() >= limits.min and classes.max() <= limits.max:
                return classes.astype(limits.dtype)
        raise self.refuse(node, f"casts the class labels {classes.tolist()} to "
                                f"{tensors.type_name(to)}, which changes them")


def describe(node: Any) -> str:
    """How messages name a node: ``node 'name' (Op)``, or by its first output."""
    if node.name:
        return f"node {node.name!r} ({node.op_type})"
    out = node.output[0] if len(node.output) else ""
    return f"the {node.op_type} node writing {out!r}"
