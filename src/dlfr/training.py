"""Training by backpropagation: losses, the mini-batch loop, its history.

The epoch itself runs compiled (``dlfr._kernels.Trainer``): forward pass,
output delta, deltas through W^T fused with the activation derivative, and
the gradient GEMMs (plain SGD's update folded in; any other optimizer's
step, L2 decay and clipping in one kernel per parameter array after them),
for every mini-batch, with the GIL released and every buffer allocated once
per fit. The optimizers and schedules are :mod:`dlfr.optimizers`'.

``fit`` works on any network through :class:`Trainable`: public attributes
plus ``kernel_layers``, the storage the compiled trainer updates in place. It
does not import ``dlfr.network`` (which calls it for ``Network.fit``).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from . import _kernels, optimizers
from ._labels import decide
from ._names import (
    LOSS_CODES,
    LOSSES,
    SCHEDULES,
    TRAINABLE_HIDDEN,
    TRAINABLE_OUTPUT,
    LossName,
    OptimizerName,
    ScheduleName,
    lookup,
)
from ._validation import (
    as_float_input,
    check_features,
    check_ndim,
    positive_float,
    positive_int,
    real_number,
    targets,
)
from .layers import Dense, KernelLayers

__all__ = ["LOSSES", "Trainable", "fit", "l2_penalty", "loss_value"]


class Trainable(Protocol):
    """What ``fit`` needs of a network (``dlfr.Network`` is one): its dtype, sizes
    and layers (for their activations), its forward pass (for validation data),
    and ``kernel_layers``, the storage the compiled trainer updates in place."""

    @property
    def dtype(self) -> np.dtype: ...
    @property
    def sizes(self) -> list[int]: ...
    @property
    def layers(self) -> tuple[Dense, ...]: ...
    @property
    def kernel_layers(self) -> KernelLayers: ...
    def forward(self, X: Any) -> np.ndarray: ...


def loss_value(a: np.ndarray, Y: np.ndarray, loss: LossName, softmax: bool) -> float:
    """Mean cost over the rows: the same formulas as the compiled training loop."""
    a64, y64 = a.astype(np.float64), Y.astype(np.float64)
    if loss == "mse":
        return float(0.5 * np.sum((a64 - y64) ** 2) / len(a))
    tiny = np.finfo(np.float64).tiny
    if softmax:
        return float(-np.sum(y64 * np.log(np.maximum(a64, tiny))) / len(a))
    return float(
        -np.sum(y64 * np.log(np.maximum(a64, tiny))
                + (1 - y64) * np.log(np.maximum(1 - a64, tiny))) / len(a)
    )


def _all_finite(X: np.ndarray) -> bool:
    """No NaN or inf in X: a NaN or inf makes the sum non-finite (one cheap pass,
    no boolean temporary); only a non-finite sum needs the exact check."""
    with np.errstate(over="ignore", invalid="ignore"):  # the sum may overflow, or be inf-inf
        total = X.sum()
    return bool(np.isfinite(total) or np.isfinite(X).all())


def _check_data(net: Trainable, X: Any, y: Any, name_x: str, name_y: str,
                check_finite: bool = True) -> tuple[np.ndarray, np.ndarray]:
    # uint8 X: raw pixels, read as Network.forward reads them, so that fit and
    # predict see the same numbers
    Xa = as_float_input(X, name_x, net.dtype)
    check_ndim(Xa, name_x, 2, "(n_samples, n_features)")
    check_features(Xa, name_x, net.sizes[0])
    Y = targets(y, net.sizes[-1], net.dtype, name_y)
    if len(Y) != len(Xa):
        raise ValueError(f"{name_x} has {len(Xa)} rows but {name_y} has {len(Y)}")
    if len(Xa) == 0:
        raise ValueError(f"{name_x} and {name_y} are empty: there is nothing to train on")
    if check_finite and not _all_finite(Xa):
        raise ValueError(f"{name_x} contains NaN or inf")
    return Xa, Y


def fit(net: Trainable, X: Any, y: Any, *, epochs: int, batch_size: int,
        learning_rate: float, loss: LossName = "mse", seed: Any = None, shuffle: bool = True,
        validation_data: Any = None, verbose: bool = False,
        optimizer: OptimizerName | optimizers.Optimizer = "sgd", l2: float = 0.0,
        lr_schedule: ScheduleName = "constant", power_t: float = 0.5, tol: float = 1e-4,
        patience: int = 10, clip_norm: float | None = None) -> dict[str, list[float]]:
    """Mini-batch gradient descent; the gradient is averaged over each batch.

    Losses: "mse", C = 1/(2n) sum ||a - y||^2; "cross_entropy", with sigmoid
    outputs C = -(1/n) sum [y ln a + (1 - y) ln(1 - a)] and with softmax
    outputs C = -(1/n) sum y ln a (output delta a - y in both).

    ``optimizer``: "sgd" (plain mini-batch SGD, the default), "momentum",
    "nesterov", "adam", or a :mod:`dlfr.optimizers` object (``SGD``,
    ``Adam``), whose state carries on from the object's last fit (see that
    module: a name starts afresh each call). ``l2``: weight decay lambda >= 0
    (Nielsen's): the cost gains lambda/(2n) sum ||W||^2 over the weight
    matrices (not the biases), n the number of training samples, so every
    step adds lambda/n W to W's gradient. (scikit-learn's ``alpha`` adds
    alpha/m W, m the batch size: ``l2 = alpha n / batch_size``.)
    ``lr_schedule``: "constant", "invscaling" (with ``power_t`` >= 0) or
    "adaptive" (with ``tol`` >= 0 and ``patience``, the epochs without
    improvement it waits out: scikit-learn's ``n_iter_no_change``), as
    scikit-learn's MLP defines its ``learning_rate``; the rate changes
    between epochs, and the adaptive one reads the epoch's training loss
    (see dlfr.optimizers). ``clip_norm``: each batch's gradient (L2's term
    included), taken as one vector over every weight and bias, is scaled
    down to this L2 norm when longer. Plain SGD without L2 or clipping is
    today's epoch, bit for bit; anything else materialises the gradient and
    takes one compiled optimizer step per parameter array.

    Returns the history: per epoch "loss" and "accuracy" (running means over
    the epoch's mini-batches, as the weights move; the loss includes L2's
    term), and "val_loss" (L2's term included) and "val_accuracy" after the
    epoch when ``validation_data`` is given. The adaptive schedule may end
    training before ``epochs`` (the history is then shorter).
    Every argument is checked before the first weight changes, except X's
    NaN and inf, which the weights show after the first epoch (they are then
    restored and the call refused). uint8 X (raw pixels) is multiplied by
    1/255, as ``Network.forward`` reads it.

    Ctrl-C (KeyboardInterrupt) is answered within milliseconds, between
    mini-batches; the network is then left with the weights as they were at
    the start of the interrupted epoch (those of the last completed epoch, or
    as before fit during the first), and the KeyboardInterrupt propagates.
    An optimizer object's state goes back with the weights.
    """
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    lr = positive_float(learning_rate, "learning_rate")
    loss_code = lookup(LOSS_CODES, loss, "loss")
    opt = optimizers.resolve(optimizer)
    l2 = real_number(l2, "l2", 0.0)
    schedule = lookup({name: name for name in SCHEDULES}, lr_schedule, "lr_schedule")
    power_t = real_number(power_t, "power_t", 0.0)
    tol = real_number(tol, "tol", 0.0)
    patience = positive_int(patience, "patience")
    clip = None if clip_norm is None else positive_float(clip_norm, "clip_norm")
    acts = [layer.activation for layer in net.layers]
    untrainable = [act for act in acts if act not in TRAINABLE_OUTPUT]
    if untrainable:
        raise ValueError(f"a network with {untrainable[0]} activations cannot be trained by "
                         f"backpropagation (the {untrainable[0]} has no gradient); "
                         "use dlfr.Perceptron")
    output_only = [act for act in acts[:-1] if act not in TRAINABLE_HIDDEN]
    if output_only:
        raise ValueError(f"{output_only[0]} is supported as the output activation only")
    softmax = acts[-1] == "softmax"
    if loss == "cross_entropy" and acts[-1] not in ("sigmoid", "softmax"):
        raise ValueError("loss='cross_entropy' needs a sigmoid or softmax output layer; "
                         f"this network's output activation is {acts[-1]!r}")
    if loss == "mse" and softmax:
        raise ValueError("a softmax output trains with loss='cross_entropy', not 'mse'")
    # X's finiteness is checked by the training itself (see _refuse_non_finite):
    # a separate pass over a large X would cost a sizeable part of an epoch.
    Xa, Y = _check_data(net, X, y, "X", "y", check_finite=False)
    val = None
    if validation_data is not None:
        try:
            Xv, yv = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a pair (X_val, y_val)") from None
        val = _check_data(net, Xv, yv, "validation_data X", "validation_data y")
        val_labels = decide(val[1])  # the targets' labels, as predict gives them
    rng = np.random.default_rng(seed)
    progress = _progress(epochs, verbose)

    n = len(Xa)
    weights, biases, n_outs, acts_codes = net.kernel_layers
    params = [p for pair in zip(weights, biases, strict=True) for p in pair]  # W0, b0, W1, ...
    update = opt.prepare(params, l2 / n, clip)  # refuses another network's optimizer
    batch = min(batch_size, n)
    trainer = _kernels.Trainer(
        [W.shape[0] for W in weights], [W.shape[1] for W in weights],  # n_in, padded n_out
        net.sizes[-1], batch, net.dtype.itemsize,
    )
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    if val is not None:
        history.update(val_loss=[], val_accuracy=[])
    start = [p.copy() for p in params]
    opt_start = opt.snapshot()
    epoch_start = [p.copy() for p in start]  # for Ctrl-C (one copy of the weights an epoch)
    opt_epoch_start = opt_start
    order = np.arange(n, dtype=np.int64)
    for epoch in progress:
        if shuffle:
            order = rng.permutation(n).astype(np.int64, copy=False)
        if epoch:
            for saved, p in zip(epoch_start, params, strict=True):
                np.copyto(saved, p)
            opt_epoch_start = opt.snapshot()
        if update is not None:
            update.steps = opt.steps
        rate = opt.epoch_rate(lr, schedule, power_t)
        try:
            total, hits = trainer.epoch(weights, biases, n_outs, acts_codes, Xa, Y, order, rate,
                                        loss_code, update)
        except BaseException:  # KeyboardInterrupt between mini-batches: undo the part-epoch
            for saved, p in zip(epoch_start, params, strict=True):
                p[...] = saved
            opt.restore(opt_epoch_start)
            raise
        opt.steps += -(-n // batch)
        if not (np.isfinite(total) and all(np.isfinite(p).all() for p in params)):
            opt.restore(opt_start)
            _refuse_non_finite(Xa, params, start, epoch)
        history["loss"].append(total / n)
        history["accuracy"].append(hits / n)
        if val is not None:
            a = net.forward(val[0])
            history["val_loss"].append(loss_value(a, val[1], loss, softmax)
                                       + l2_penalty(weights, l2, n))
            history["val_accuracy"].append(float(np.mean(decide(a) == val_labels)))
        if verbose:
            progress.set_postfix({k: f"{v[-1]:.4f}" for k, v in history.items()})
        if opt.end_epoch(history["loss"][-1], n, lr, schedule, tol, patience):
            break
    return history


def l2_penalty(weights: list[np.ndarray], l2: float, n: int) -> float:
    """L2's term of the cost, lambda/(2n) sum ||W||^2 (the biases are not in it)."""
    if l2 == 0:
        return 0.0
    return l2 / (2 * n) * sum(float(np.sum(np.square(W, dtype=np.float64))) for W in weights)


def _refuse_non_finite(X: np.ndarray, params: list[np.ndarray], start: list[np.ndarray],
                       epoch: int) -> None:
    """Put the weights back as they were before fit and say why training stopped.

    A NaN or inf anywhere in X always reaches the weights in the first epoch
    (every row takes part, and inf * delta is inf or NaN), so checking the
    weights after each epoch catches bad data without a pass of its own.
    """
    for p, p0 in zip(params, start, strict=True):
        p[...] = p0
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or inf")
    raise ValueError(
        f"training diverged in epoch {epoch + 1}: the weights became NaN or inf; "
        "try a smaller learning_rate (the network's weights are as before fit)"
    )


def _progress(epochs: int, verbose: bool) -> Any:
    if not verbose:
        return range(epochs)
    from tqdm.auto import tqdm

    return tqdm(range(epochs), desc="epochs", unit="epoch")
