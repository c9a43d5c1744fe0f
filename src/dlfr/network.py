"""``Network``: a stack of dense layers, run by one compiled call."""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable
from typing import Any, cast

import numpy as np

from . import _kernels, io, training
from ._labels import decide
from ._names import (
    ActivationName,
    DTypeSpec,
    LossName,
    MonitorName,
    OptimizerName,
    ScheduleName,
)
from ._validation import U8, U8_SCALE, network_input, positive_float, real_dtype, targets
from .layers import Dense, KernelLayers, kernel_layers
from .optimizers import Optimizer


class Network:
    """A multi-layer perceptron: ``Network([784, 16, 10])`` or ``Network([Dense(...), ...])``.

    Parameters
    ----------
    sizes_or_layers : list of int or list of Dense
        Layer sizes from the input to the output (at least two), or the layers
        themselves (each one's n_in must equal the previous one's n_out).
    activation : str
        Activation of the hidden layers (and of the output unless
        ``output_activation`` is given): "sigmoid", "tanh", "relu",
        "leaky_relu" (slope 0.01), "elu" (alpha 1), "identity" or "step"
        (``fit`` trains all but the step).
    output_activation : str, optional
        Activation of the last layer, e.g. "softmax" or "identity".
    dtype : "float32" or "float64"
        Of the weights and of every computation (default float32).
    seed : int or numpy.random.Generator, optional
        The same seed gives the same weights.

    Attributes
    ----------
    classes : numpy.ndarray or None
        Class labels, so that ``net.classes[net.predict(X)]`` are labels:
        one per output, or two (below 0.5, from 0.5) for a single output;
        integers or strings. Set by ``from_onnx`` for a classifier, kept by
        ``save``/``load``, pickling and ``to_onnx`` (as its ``label``
        output); None otherwise, or assign them.
    onnx_names : dict or None
        For a network read by ``from_onnx``: the graph's names, "input",
        "output" (the output ``forward`` computes) and "label" where present.
    """

    def __init__(
        self,
        sizes_or_layers: Any,
        activation: ActivationName = "sigmoid",
        output_activation: ActivationName | None = None,
        dtype: DTypeSpec = "float32",
        seed: int | np.random.Generator | None = None,
    ) -> None:
        try:
            items = list(sizes_or_layers)
        except TypeError:  # not a sequence at all: the message below
            items = []
        if items and all(isinstance(x, Dense) for x in items):
            layers = items
            dtypes = {layer.dtype for layer in layers}
            if len(dtypes) != 1:
                raise ValueError(
                    f"layers must share one dtype; got {sorted(d.name for d in dtypes)}"
                )
            for i, (a, b) in enumerate(zip(layers, layers[1:], strict=False)):
                if a.n_out != b.n_in:
                    raise ValueError(
                        f"layers do not chain: layer {i} has {a.n_out} outputs but layer "
                        f"{i + 1} expects {b.n_in} inputs"
                    )
        else:
            if len(items) < 2 or not all(
                isinstance(x, numbers.Integral) and not isinstance(x, bool) and int(x) > 0
                for x in items
            ):
                raise ValueError(
                    "sizes_or_layers must be a list of at least two positive layer sizes "
                    f"or a list of Dense layers; got {sizes_or_layers!r}"
                )
            dt = real_dtype("dtype", dtype)
            rng = np.random.default_rng(seed)
            last = len(items) - 2
            layers = [
                Dense(
                    int(n_in), int(n_out),
                    activation=(output_activation or activation) if i == last else activation,
                    dtype=dt, seed=rng,
                )
                for i, (n_in, n_out) in enumerate(zip(items, items[1:], strict=False))
            ]
        if len(layers) > _kernels.MAX_NETWORK_LAYERS:
            raise ValueError(
                f"sizes_or_layers: a network has at most {_kernels.MAX_NETWORK_LAYERS} "
                f"layers; got {len(layers)}"
            )
        self.layers: tuple[Dense, ...] = tuple(layers)
        self.dtype: np.dtype = self.layers[0].dtype
        self._kernel_layers = kernel_layers(self.layers)
        self._engine = _kernels.Engine(*self._kernel_layers)
        self._classes: np.ndarray | None = None
        self.onnx_names: dict[str, str] | None = None

    # -- description --------------------------------------------------------
    @property
    def sizes(self) -> list[int]:
        return [self.layers[0].n_in] + [layer.n_out for layer in self.layers]

    @property
    def n_params(self) -> int:
        return sum(layer.n_params for layer in self.layers)

    @property
    def kernel_layers(self) -> KernelLayers:
        """The layers as the compiled engine and trainer take them: their padded
        weight and bias storage (updated in place by ``fit``), widths and
        activation codes. What ``dlfr.training`` works on; see ``KernelLayers``."""
        return self._kernel_layers

    def __repr__(self) -> str:
        acts = [layer.activation for layer in self.layers]
        act = f"activation={acts[0]!r}"
        if acts[-1] != acts[0]:
            act += f", output_activation={acts[-1]!r}"
        return f"Network({self.sizes}, {act}, dtype={self.dtype.name!r})"

    @property
    def classes(self) -> np.ndarray | None:
        """Class labels for ``predict``'s indices, or None (see the class docstring)."""
        return self._classes

    @classes.setter
    def classes(self, value: Any) -> None:
        self._classes = None if value is None else _class_labels(value, self.layers[-1].n_out)

    def __getstate__(self) -> dict[str, Any]:
        return {"layers": self.layers, "classes": self._classes, "onnx_names": self.onnx_names}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(list(state["layers"]))  # type: ignore[misc]
        self.classes = state.get("classes")
        self.onnx_names = state.get("onnx_names")

    # -- inference ----------------------------------------------------------
    def forward(
        self, X: Any, n_threads: int | None = None, scale: float | None = None,
        check_finite: bool = True,
    ) -> np.ndarray:
        """Output activations for each row of X, shape (n_samples, n_out).

        X may be any real array (converted to the network's dtype) or uint8,
        e.g. raw pixels, which the first layer reads directly, multiplied by
        ``scale`` (a finite positive real number; default 1/255), with no float
        copy of X.
        ``n_threads``: None uses every core; small batches stay on one thread;
        never more than ``dlfr._kernels.THREAD_CAP`` threads (4 per processor
        the process may use), whatever is asked. Where a layer goes to BLAS
        (over 64 units at the generic SIMD level, in calls of 8 rows or more;
        ``dlfr.show_config()`` tells) the network leaves the threading to BLAS
        instead (one threading runtime per call; set its threads with
        threadpoolctl). The GIL is released while the network runs.
        ``check_finite``: float X holding NaN or inf raises ValueError naming
        the first such row (as scipy's ``check_finite``; checked chunk by chunk
        inside the forward pass, nothing is returned); False computes such rows
        anyway (NaN propagates). uint8 X is always finite.
        """
        return self._run(X, n_threads, scale, labels=False, check_finite=check_finite)

    def _run(self, X: Any, n_threads: int | None, scale: float | None,
             labels: bool, check_finite: bool = True) -> np.ndarray:
        """forward's outputs, or (labels) predict's labels, in one engine call."""
        if scale is None:
            # ready arrays: no Python checks
            out = self._engine.run(X, n_threads, U8_SCALE, labels, check_finite)
            if out is not None:
                return out
        if scale is not None:
            scale = positive_float(scale, "scale")
        X = network_input(X, self.dtype, self.layers[0].n_in)
        if scale is None:
            scale = U8_SCALE
        elif X.dtype is not U8:
            raise ValueError("scale applies to uint8 input only; scale floats before passing them")
        out = self._engine.run(X, n_threads, float(scale), labels, bool(check_finite))
        if out is None:  # network_input returns only arrays the engine takes
            raise RuntimeError("dlfr: the engine refused a checked input (a bug: please report)")
        return out

    __call__ = forward

    def predict(self, X: Any, n_threads: int | None = None,
                check_finite: bool = True) -> np.ndarray:
        """Labels: the argmax of the outputs, or output >= 0.5 for a single output.

        Taken inside the forward pass, from each chunk of outputs while it is
        in cache, so the outputs are never written out whole; a subclass that
        overrides ``forward`` gets the labels of its own outputs.
        ``check_finite``: as for ``forward`` (by default a row holding NaN or
        inf raises ValueError instead of getting a label).
        """
        if type(self).forward is not _FORWARD:
            return decide(self.forward(X, n_threads))
        return self._run(X, n_threads, None, labels=True, check_finite=check_finite)

    def evaluate(self, X: Any, y: Any, check_finite: bool = True) -> float:
        """Accuracy in [0, 1]; y holds integer labels or one-hot rows.

        y is checked as ``fit`` checks it (the same function, the same messages):
        a label the network cannot output, a fractional or NaN label, or a
        non-finite row is refused. ``check_finite``: X as for ``predict``.
        """
        labels = decide(targets(y, self.layers[-1].n_out, self.dtype))
        X = network_input(X, self.dtype, self.layers[0].n_in)
        if len(labels) != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {len(labels)}")
        if len(labels) == 0:
            raise ValueError("X and y are empty: there is nothing to evaluate")
        return float(np.mean(self.predict(X, check_finite=check_finite) == labels))

    # -- training -----------------------------------------------------------
    def fit(self, X: Any, y: Any, epochs: int = 30, batch_size: int = 10,
            learning_rate: float = 3.0, loss: LossName = "mse", seed: Any = None,
            shuffle: bool = True, validation_data: Any = None,
            verbose: bool = False, *, early_stopping: bool = False,
            monitor: MonitorName = "val_loss", patience: int = 10, min_delta: float = 1e-4,
            validation_fraction: float | None = None,
            callbacks: Iterable[training.Callback] = (),
            sample_weight: Any = None, optimizer: OptimizerName | Optimizer = "sgd",
            l2: float = 0.0, lr_schedule: ScheduleName = "constant", power_t: float = 0.5,
            clip_norm: float | None = None) -> training.History:
        """Train by mini-batch gradient descent with backpropagation (plain SGD
        unless ``optimizer`` says otherwise; Adam's usual learning_rate is
        0.001); see dlfr.training.fit and dlfr.optimizers."""
        return training.fit(self, X, y, epochs=epochs, batch_size=batch_size,
                            learning_rate=learning_rate, loss=loss, seed=seed,
                            shuffle=shuffle, validation_data=validation_data,
                            verbose=verbose, early_stopping=early_stopping, monitor=monitor,
                            patience=patience, min_delta=min_delta,
                            validation_fraction=validation_fraction, callbacks=callbacks,
                            sample_weight=sample_weight, optimizer=optimizer, l2=l2,
                            lr_schedule=lr_schedule, power_t=power_t, clip_norm=clip_norm)

    # -- files --------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the network (and its ``classes``) to a .npz model file (no pickle; see dlfr.io)."""
        from . import __version__

        extra: dict[str, Any] = {"dlfr_version": __version__}
        if self._classes is not None:
            extra["classes"] = self._classes.tolist()
        io.save_model(
            path, sizes=self.sizes, activations=[layer.activation for layer in self.layers],
            weights=[np.ascontiguousarray(layer.W) for layer in self.layers],
            biases=[layer.b.copy() for layer in self.layers], dtype=self.dtype,
            extra=extra,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Network:
        """Read a network written by ``save``; a bad file raises ValueError naming it."""
        model = io.load_model(path)  # it allows the registry's activation names only
        acts = cast("list[ActivationName]", model.activations)
        net = cls([Dense.from_params(W, b, act, model.dtype) for W, b, act
                   in zip(model.weights, model.biases, acts, strict=True)])
        try:
            net.classes = model.header.get("classes")
        except ValueError as exc:
            raise ValueError(f"{os.fspath(path)}: header {exc}") from None
        return net

    @classmethod
    def from_onnx(cls, source: Any) -> Network:
        """A network computing an ONNX model's multi-layer perceptron (needs ``dlfr[onnx]``).

        Parameters
        ----------
        source : str, os.PathLike, bytes or onnx.ModelProto
            The model. External data (weights in a file beside the model) is
            read from the model's folder, so only where ``source`` is a path;
            a location outside that folder is refused.

        Returns
        -------
        Network
            Of the graph's dtype (float32 or float64), computing what ONNX
            Runtime computes on the same file for (n_samples, n_features)
            input, within a relative 1e-5 (float32) / 1e-12 (float64).
            ``onnx_names`` names the graph's input, the output ``forward``
            computes and the label output; a classifier's labels are in
            ``classes``, so ``net.classes[net.predict(X)]`` is its label
            output. For skl2onnx's two-class graphs ``forward`` gives the
            positive class's probability, the second column of the file's
            ``probabilities`` ([1 - p, p]); the labels then agree except at
            p == 0.5 exactly (dlfr: p >= 0.5, the file: p > 0.5). Where the
            file's last Reshape lays the outputs out otherwise (skl2onnx's
            several-output regressors write (n_samples * n_outputs, 1)),
            ``forward`` gives (n_samples, n_outputs), the same values in the
            same order.

        Raises
        ------
        ValueError
            Naming the source, and the node and its op type, for anything but
            a chain input -> (Gemm | MatMul [+ Add]) -> [Sigmoid | Tanh | Relu |
            Softmax over rows] -> ... (Identity, and Flatten, Reshape or Cast
            where they change nothing, anywhere in it; a classifier's ArgMax,
            ZipMap and label lookup after it): e.g. a convolution, a second
            input, a branch, a Gemm with transA=1. Also for a file that does
            not parse, a tensor whose data does not match its declared shape
            (checked before anything is allocated), a dangling input or a cycle.
        TypeError
            If ``source`` is none of the above.
        ImportError
            Without the onnx package.
        """
        from ._onnx import from_onnx

        return from_onnx(cls, source)

    def to_onnx(self, path: str | os.PathLike[str] | None = None, *,
                opset: int | None = None) -> Any:
        """The network as an ONNX model (an ``onnx.ModelProto``; needs ``dlfr[onnx]``).

        Parameters
        ----------
        path : str or os.PathLike, optional
            Where to write it too, atomically (a failed write leaves no partial
            file and an existing file intact).
        opset : int, optional
            The default-domain opset, from 13 to the newest the installed onnx
            knows; default 17.

        Returns
        -------
        onnx.ModelProto
            Input ``X`` and output ``Y`` of dynamic batch size, the network's
            dtype; ``Y`` is ``forward``'s outputs (every activation, as
            standard ONNX ops), and with ``classes`` a ``label`` output holds
            ``classes[predict(X)]``. producer_name "dlfr", producer_version
            dlfr's version. ``from_onnx`` reads it back with the same weights,
            bit for bit.
        """
        from ._onnx import DEFAULT_OPSET, to_onnx

        return to_onnx(self, path, opset=DEFAULT_OPSET if opset is None else opset)

    @classmethod
    def from_sklearn(cls, estimator: Any) -> Network:
        """A network computing a fitted MLPClassifier's or MLPRegressor's outputs."""
        from ._convert import from_sklearn

        return from_sklearn(cls, estimator)

    @classmethod
    def from_torch(cls, module: Any) -> Network:
        """A network computing an nn.Sequential of Linear and activation layers."""
        from ._convert import from_torch

        return from_torch(cls, module)


_FORWARD = Network.forward


def _class_labels(value: Any, n_out: int) -> np.ndarray:
    """``value`` as class labels of a network of ``n_out`` outputs (integers as int64)."""
    expected = max(n_out, 2)
    labels = np.array(value)
    # np.array quietly makes [1, "a"] strings and 2**63 uint64; neither is a label set
    mixed = labels.dtype.kind == "U" and isinstance(value, (list, tuple)) and not all(
        isinstance(x, str) for x in value)
    # compared as Python ints: NumPy 1.x compares uint64 with int64 in float64, where
    # 2**63 equals int64's maximum
    too_big = (labels.dtype.kind == "u" and labels.size
               and int(labels.max()) > np.iinfo(np.int64).max)
    if mixed or too_big or labels.ndim != 1 or labels.dtype.kind not in "iuU" \
            or len(labels) != expected:
        what = "one per output" if n_out > 1 else "below 0.5 and from 0.5 of the one output"
        raise ValueError(f"classes must be {expected} integer or string labels ({what}); got "
                         f"{'mixed ' if mixed else ''}{labels.dtype} of shape {labels.shape}")
    return labels.astype(np.int64) if labels.dtype.kind in "iu" else labels


def load_any(path: str | os.PathLike[str]) -> Network:
    """A network from a model file: an .onnx through ``from_onnx``, else ``load`` (.npz)."""
    if _is_onnx(path):
        return Network.from_onnx(path)
    return Network.load(path)


def save_any(net: Network, path: str | os.PathLike[str]) -> None:
    """Write ``net`` to ``path`` as ONNX (an .onnx path, ``to_onnx``) or dlfr's .npz (``save``)."""
    if _is_onnx(path):
        net.to_onnx(path)
    else:
        net.save(path)


def _is_onnx(path: str | os.PathLike[str]) -> bool:
    return os.fsdecode(path).lower().endswith(".onnx")


__all__ = ["Network", "load_any", "save_any"]
