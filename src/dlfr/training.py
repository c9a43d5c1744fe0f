"""Training by backpropagation: losses, the mini-batch loop (plain SGD or an
optimizer), its history, early stopping and callbacks.

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

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import numpy as np

from . import _kernels, optimizers
from ._early_stopping import EarlyStopping, split_rows
from ._labels import decide
from ._names import (
    LOSS_CODES,
    LOSSES,
    MONITORS,
    SCHEDULES,
    TRAINABLE_HIDDEN,
    TRAINABLE_OUTPUT,
    LossName,
    MonitorName,
    OptimizerName,
    ScheduleName,
    lookup,
)
from ._validation import (
    as_float_input,
    check_features,
    check_ndim,
    flag,
    non_negative_float,
    open_fraction,
    positive_float,
    positive_int,
    real_number,
    sample_weights,
    targets,
)
from .layers import Dense, KernelLayers

__all__ = ["LOSSES", "Callback", "History", "Trainable", "fit", "l2_penalty", "loss_value"]

class History(dict[str, list[float]]):
    """What ``fit`` returns: the per-epoch lists, and where training stopped.

    As a dict: "loss" and "accuracy" (running means over the epoch's
    mini-batches, as the weights move), and with validation data
    "val_loss" and "val_accuracy" (after the epoch), one float per epoch run.
    Epochs are numbered from 0, as indices into these lists.

    Attributes:
        best_epoch: with early stopping, the epoch whose weights the network
            was left with (the best value of the monitored metric); else None.
        stopped_epoch: the last epoch run when early stopping or a callback
            stopped training before ``epochs`` (so did the adaptive learning-rate
            schedule at its floor); None when every epoch ran.
    """

    best_epoch: int | None = None
    stopped_epoch: int | None = None


#: A callback: ``cb(epoch, history)`` after each epoch (``epoch`` counts from 0);
#: a true return value stops training.
Callback = Callable[[int, History], bool | None]


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


def loss_value(a: np.ndarray, Y: np.ndarray, loss: LossName, softmax: bool,
               sample_weight: np.ndarray | None = None) -> float:
    """Mean cost over the rows: the same formulas as the compiled training loop
    (with ``sample_weight``, the weighted mean)."""
    a64, y64 = a.astype(np.float64), Y.astype(np.float64)
    tiny = np.finfo(np.float64).tiny
    if loss == "mse":
        costs = 0.5 * (a64 - y64) ** 2
    elif softmax:
        costs = -y64 * np.log(np.maximum(a64, tiny))
    else:
        costs = -(y64 * np.log(np.maximum(a64, tiny))
                  + (1 - y64) * np.log(np.maximum(1 - a64, tiny)))
    if sample_weight is None:
        return float(np.sum(costs) / len(a))
    return float(np.average(costs.sum(axis=1), weights=sample_weight))


def _accuracy(a: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None) -> float:
    """The (weighted) fraction of rows whose decided label is ``labels``'."""
    hits = decide(a) == labels
    if sample_weight is None:
        return float(np.mean(hits))
    return float(np.average(hits, weights=sample_weight))


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
        validation_data: Any = None, verbose: bool = False, early_stopping: bool = False,
        monitor: MonitorName = "val_loss", patience: int = 10, min_delta: float = 1e-4,
        validation_fraction: float | None = None, callbacks: Iterable[Callback] = (),
        sample_weight: Any = None, optimizer: OptimizerName | optimizers.Optimizer = "sgd",
        l2: float = 0.0, lr_schedule: ScheduleName = "constant", power_t: float = 0.5,
        clip_norm: float | None = None) -> History:
    """Mini-batch gradient descent; the gradient is averaged over each batch.

    Losses: "mse", C = 1/(2n) sum ||a - y||^2; "cross_entropy", with sigmoid
    outputs C = -(1/n) sum [y ln a + (1 - y) ln(1 - a)] and with softmax
    outputs C = -(1/n) sum y ln a (output delta a - y in both).

    ``optimizer``: "sgd" (plain mini-batch SGD, the default), "momentum",
    "nesterov", "adam", or a :mod:`dlfr.optimizers` object (``SGD``,
    ``Adam``), whose state carries on from the object's last fit (see that
    module: a name starts afresh each call). ``l2``: weight decay lambda >= 0
    (Nielsen's): the cost gains lambda/(2n) sum ||W||^2 over the weight
    matrices (not the biases), n the number of training samples (rows, also
    with sample weights), so every step adds lambda/n W to W's gradient.
    (scikit-learn's ``alpha`` adds alpha/m W, m the batch size: ``l2 = alpha
    n / batch_size``.) ``lr_schedule``: "constant", "invscaling" (with
    ``power_t`` >= 0) or "adaptive", as scikit-learn's MLP defines its
    ``learning_rate``; the rate changes between epochs (see
    dlfr.optimizers). ``clip_norm``: each batch's gradient (L2's term
    included), taken as one vector over every weight and bias, is scaled
    down to this L2 norm when longer. Plain SGD without L2 or clipping is
    the folded epoch, bit for bit; anything else materialises the gradient
    and takes one compiled optimizer step per parameter array.

    ``patience`` and ``min_delta`` have one meaning: an epoch improves when
    its value beats the best so far by more than ``min_delta``, and
    ``patience`` epochs in a row without improvement are a stall. The value
    watched is ``monitor`` with early stopping on, else the epoch's training
    loss (L2's term included). Early stopping stops at a stall; the
    "adaptive" schedule divides the rate by 5 at a stall (the count starts
    again) and ends training at one when the rate is 1e-6 or less already,
    so with both on a stall first lowers the rate and only stops training
    at the floor (as scikit-learn's MLP does). scikit-learn's
    ``n_iter_no_change`` (``tol``: ``min_delta``) acts after
    n_iter_no_change + 1 epochs without improvement: it is ``patience - 1``.

    Returns the :class:`History`: per epoch "loss" and "accuracy" (running
    means over the epoch's mini-batches, as the weights move), and
    "val_loss" and "val_accuracy" after the epoch when there is validation
    data (both losses include L2's term); its ``best_epoch`` and
    ``stopped_epoch`` say where training stopped. Epochs are numbered from 0.

    Validation data: ``validation_data=(X_val, y_val)`` (or ``(X_val, y_val,
    sample_weight_val)``), or ``validation_fraction``, a number in (0, 1):
    ceil(fraction * n) rows of X carved out before training, stratified by
    class when y holds class labels or one-hot rows (each class keeps its
    proportion), drawn at random for other targets, chosen by ``seed``; the
    rest is trained on. Not both.

    Early stopping (``early_stopping=True``, which needs validation data)
    watches ``monitor``, "val_loss" or "val_accuracy". An epoch improves when
    it beats the best value so far by more than ``min_delta``; after
    ``patience`` epochs in a row without improvement training stops (with
    the adaptive schedule: see above). The network is then (and also when
    every epoch ran) left with exactly the weights it had after its best
    epoch: the one with the best value, the earliest of equals.

    ``callbacks``: callables ``cb(epoch, history)``, each called after every
    epoch (after early stopping's bookkeeping) with the history so far (the
    object fit returns); a true return value stops training after that
    epoch. An exception from a callback propagates, the network keeping the
    weights of the last epoch.

    ``sample_weight``: one finite weight >= 0 per sample, not all zero. Each
    mini-batch's loss and gradient are then the weighted mean over its rows
    (sum of w_i * C_i over the sum of w_i, as scikit-learn's MLP weights
    them), with plain SGD and with every optimizer: multiplying every weight
    by the same number changes nothing, weights of all ones train exactly as
    none (bit for bit), and for a full batch an integer weight k trains as k
    copies of the sample and a weight of 0 as if the sample were not there
    (up to rounding). A mini-batch whose weights are all zero takes no step
    (nor counts as one of Adam's). L2's n stays the number of training rows.
    The history's "loss" and "accuracy" are weighted means too, and so are
    "val_loss" and "val_accuracy" with weights for the validation rows
    (carved from ``sample_weight`` by ``validation_fraction``). The weights
    are rounded to the network's dtype.

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
    watch = _watch(monitor, patience, min_delta)  # the adaptive schedule's too
    stopper = watch if flag(early_stopping, "early_stopping") else None
    callbacks = _check_callbacks(callbacks)
    fraction = None
    if validation_fraction is not None:
        fraction = open_fraction(validation_fraction, "validation_fraction")
        if validation_data is not None:
            raise ValueError("give validation_data or validation_fraction, not both")
    if stopper is not None and validation_data is None and fraction is None:
        raise ValueError("early_stopping=True watches a validation metric: "
                         "give validation_data or validation_fraction")
    # X's finiteness is checked by the training itself (see _refuse_non_finite):
    # a separate pass over a large X would cost a sizeable part of an epoch.
    Xa, Y = _check_data(net, X, y, "X", "y", check_finite=False)
    sw = None if sample_weight is None else sample_weights(sample_weight, len(Xa), net.dtype)
    val = None if validation_data is None else _validation_set(net, validation_data)
    rng = np.random.default_rng(seed)
    if fraction is not None:
        train_rows, val_rows = split_rows(Y, fraction, rng)
        val = _carved(Xa, Y, sw, val_rows, "validation")
        Xa, Y, sw = _carved(Xa, Y, sw, train_rows, "training")
    if sw is not None and not sw.all() and not _all_finite(Xa):
        # a batch of zero weights takes no step, so its rows' NaN would not
        # reach the weights (see _refuse_non_finite)
        raise ValueError("X contains NaN or inf")
    val_labels = decide(val[1]) if val is not None else np.empty(0)  # as predict gives them
    progress = _progress(epochs, verbose)

    n = len(Xa)
    total_weight = n if sw is None else float(np.sum(sw, dtype=np.float64))
    weights, biases, n_outs, acts_codes = net.kernel_layers
    params = [p for pair in zip(weights, biases, strict=True) for p in pair]  # W0, b0, W1, ...
    update = opt.prepare(params, l2 / n, clip)  # refuses another network's optimizer
    batch = min(batch_size, n)
    trainer = _kernels.Trainer(
        [W.shape[0] for W in weights], [W.shape[1] for W in weights],  # n_in, padded n_out
        net.sizes[-1], batch, net.dtype.itemsize,
    )
    history = History(loss=[], accuracy=[])
    if val is not None:
        history.update(val_loss=[], val_accuracy=[])
    start = [p.copy() for p in params]
    opt_start = opt.snapshot()
    epoch_start = [p.copy() for p in start]  # for Ctrl-C (one copy of the weights an epoch)
    opt_epoch_start = opt_start
    best: list[np.ndarray] = []  # with early stopping, the best epoch's weights
    order = np.arange(n, dtype=np.int64)
    for epoch in progress:
        if shuffle:
            order = rng.permutation(n).astype(np.int64, copy=False)
        if epoch:
            _copy(params, epoch_start)
            opt_epoch_start = opt.snapshot()
        if update is not None:
            update.steps = opt.steps
        rate = opt.epoch_rate(lr, schedule, power_t)
        try:
            total, hits = trainer.epoch(weights, biases, n_outs, acts_codes, Xa, Y, order, rate,
                                        loss_code, update, sw)
        except BaseException:  # KeyboardInterrupt between mini-batches: undo the part-epoch
            _copy(epoch_start, params)
            opt.restore(opt_epoch_start)
            raise
        # the compiled rule counts the steps it took (a batch of zero weights takes none)
        opt.steps = update.steps if update is not None else opt.steps + _steps(order, sw, batch)
        if not (np.isfinite(total) and all(np.isfinite(p).all() for p in params)):
            opt.restore(opt_start)
            _refuse_non_finite(Xa, params, start, epoch)
        history["loss"].append(total / total_weight)
        history["accuracy"].append(hits / total_weight)
        if val is not None:
            a = net.forward(val[0])
            history["val_loss"].append(loss_value(a, val[1], loss, softmax, val[2])
                                       + l2_penalty(weights, l2, n))
            history["val_accuracy"].append(_accuracy(a, val_labels, val[2]))
        if verbose:
            progress.set_postfix({k: f"{v[-1]:.4f}" for k, v in history.items()})
        stop = False
        if stopper is not None:
            if stopper.update(epoch, history[stopper.monitor][-1]):
                best = [p.copy() for p in params] if not best else _copy(params, best)
            stop = stopper.exhausted and schedule != "adaptive"  # adaptive: lower the rate first
        # the adaptive schedule watches what early stopping does (lower is better), or the loss
        watched = (history["loss"][-1] if stopper is None
                   else stopper.score(history[stopper.monitor][-1]))
        if opt.end_epoch(watched, n, lr, schedule, watch.min_delta, watch.patience):
            stop = True
        for callback in callbacks:
            stop = bool(callback(epoch, history)) or stop  # every callback sees every epoch
        if stop:
            history.stopped_epoch = epoch
            break
    if stopper is not None and best:
        _copy(best, params)
        history.best_epoch = stopper.best_epoch
    return history


def l2_penalty(weights: list[np.ndarray], l2: float, n: int) -> float:
    """L2's term of the cost, lambda/(2n) sum ||W||^2 (the biases are not in it)."""
    if l2 == 0:
        return 0.0
    return l2 / (2 * n) * sum(float(np.sum(np.square(W, dtype=np.float64))) for W in weights)


def _steps(order: np.ndarray, sw: np.ndarray | None, batch: int) -> int:
    """The epoch's mini-batches of ``order`` that take a step (some weight not zero)."""
    if sw is None:
        return -(-len(order) // batch)
    weighted = np.logical_or.reduceat(sw[order] != 0, np.arange(0, len(order), batch))
    return int(np.count_nonzero(weighted))


def _copy(source: list[np.ndarray], target: list[np.ndarray]) -> list[np.ndarray]:
    """Copy each array of ``source`` into its twin in ``target`` (returned)."""
    for s, t in zip(source, target, strict=True):
        np.copyto(t, s)
    return target


def _watch(monitor: Any, patience: Any, min_delta: Any) -> EarlyStopping:
    """The watch ``fit``'s early-stopping arguments ask for, checked (also
    when early stopping is off: the adaptive schedule counts as it does)."""
    return EarlyStopping(lookup({name: name for name in MONITORS}, monitor, "monitor"),
                         positive_int(patience, "patience"),
                         non_negative_float(min_delta, "min_delta"))


def _check_callbacks(callbacks: Any) -> tuple[Callback, ...]:
    if callable(callbacks) or isinstance(callbacks, (str, bytes)):
        raise ValueError(f"callbacks must be a sequence of callables; got {callbacks!r} "
                         "(a single callback goes in a list: callbacks=[cb])")
    try:
        found = tuple(callbacks)
    except TypeError:
        raise ValueError(f"callbacks must be a sequence of callables; got {callbacks!r}") from None
    for i, callback in enumerate(found):
        if not callable(callback):
            raise ValueError(f"callbacks[{i}] must be callable as cb(epoch, history); "
                             f"got {callback!r}")
    return found


#: A validation set: X, target rows and the rows' sample weights (or None).
_ValidationSet = tuple[np.ndarray, np.ndarray, np.ndarray | None]


def _validation_set(net: Trainable, validation_data: Any) -> _ValidationSet:
    try:
        parts = tuple(validation_data)
    except TypeError:
        parts = ()
    if len(parts) not in (2, 3):
        raise ValueError("validation_data must be a pair (X_val, y_val) or a triple "
                         "(X_val, y_val, sample_weight_val)")
    Xv, Yv = _check_data(net, parts[0], parts[1], "validation_data X", "validation_data y")
    wv = None
    if len(parts) == 3 and parts[2] is not None:
        wv = sample_weights(parts[2], len(Xv), net.dtype, "validation_data sample_weight")
    return Xv, Yv, wv


def _carved(X: np.ndarray, Y: np.ndarray, sw: np.ndarray | None, rows: np.ndarray,
            part: str) -> _ValidationSet:
    """The ``rows`` of X, Y and the sample weights: a part validation_fraction carves."""
    Xp, Yp = X[rows], Y[rows]
    swp = None if sw is None else sw[rows]
    if swp is not None and not swp.any():
        raise ValueError(f"the {part} rows validation_fraction leaves all have sample_weight 0")
    if part == "validation" and not _all_finite(Xp):
        # the training itself only checks the rows it trains on
        raise ValueError("X contains NaN or inf")
    return Xp, Yp, swp


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
