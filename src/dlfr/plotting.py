"""Figures of dlfr's networks and runs: the sigmoid, XOR solved, a layer's weights, a training
history, a benchmark's throughput.

Needs matplotlib (``pip install "dlfr[plot]"``), imported only when a figure is made; ``import
dlfr`` never imports this module. Every function returns a
:class:`matplotlib.figure.Figure` made without pyplot (no GUI backend is chosen and nothing
is registered globally): save it with ``fig.savefig(path)``, or show it in a notebook.
``dlfr plot`` draws its pictures with these functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import datasets, kernels

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .network import Network

__all__ = [
    "INSTALL_HINT", "bench_figure", "check_matplotlib", "history_figure", "sigmoid_figure",
    "weights_figure", "xor_figure",
]

#: How to install what the figures need.
INSTALL_HINT = 'pip install "dlfr[plot]"'


def check_matplotlib() -> None:
    """Raise ImportError saying how to install matplotlib when it is missing."""
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise ImportError(
            f"plotting needs matplotlib, which is not installed: {INSTALL_HINT}"
        ) from None


def _figure(**kwargs: Any) -> Figure:
    check_matplotlib()
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def sigmoid_figure() -> Figure:
    """The sigmoid, its derivative and the perceptron's step function over z in [-8, 8]."""
    z = np.linspace(-8, 8, 801)
    fig = _figure(figsize=(7, 4.2))
    ax = fig.subplots()
    ax.plot(z, kernels.step(z), color="0.55", lw=2, ls="--", label="step (perceptron)")
    ax.plot(z, kernels.sigmoid(z), lw=2.5, label=r"sigmoid $\sigma(z) = 1/(1+e^{-z})$")
    ax.plot(z, kernels.sigmoid_prime(z), lw=2.5,
            label=r"derivative $\sigma'(z) = \sigma(z)(1-\sigma(z))$")
    ax.annotate("max 0.25 at z = 0", xy=(0, 0.25), xytext=(2.2, 0.32),
                arrowprops={"arrowstyle": "->", "color": "0.3"})
    ax.axhline(0, color="0.85", lw=0.8, zorder=0)
    ax.axvline(0, color="0.85", lw=0.8, zorder=0)
    ax.set(xlabel="z = w·x + b", ylabel="activation", xlim=(-8, 8), ylim=(-0.05, 1.08),
           title="The sigmoid, its derivative and the step function")
    ax.legend(loc="center left", bbox_to_anchor=(0.0, 0.62), frameon=False)
    fig.tight_layout()
    return fig


def xor_figure(net: Network) -> Figure:
    """A 2-2-1 network trained on XOR: its output over the input square, and the four points
    as its hidden layer sees them, where one line separates the classes.

    Raises
    ------
    ValueError
        If ``net`` is not a 2-2-1 network.
    """
    if net.sizes != [2, 2, 1]:
        raise ValueError(f"net must be a 2-2-1 network, got sizes {net.sizes}")
    X, y = datasets.xor(dtype=net.dtype)
    hidden, output = net.layers
    fig = _figure(figsize=(10, 4.6))
    ax1, ax2 = fig.subplots(1, 2)
    grid = np.linspace(-0.25, 1.25, 201, dtype=net.dtype)
    gx, gy = np.meshgrid(grid, grid)
    a = net.forward(np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
    cs = ax1.contourf(gx, gy, a, levels=np.linspace(0, 1, 21), cmap="RdBu_r")
    ax1.contour(gx, gy, a, levels=[0.5], colors="k", linewidths=1.5)
    fig.colorbar(cs, ax=ax1, label="network output")
    _xor_points(ax1, X, y)
    ax1.set(xlabel="$x_1$", ylabel="$x_2$", title="Output over the input square",
            aspect="equal")

    H = kernels.dense(X, np.ascontiguousarray(hidden.W), hidden.b.copy(), hidden.activation)
    hg = np.linspace(-0.08, 1.08, 201, dtype=net.dtype)
    hx, hy = np.meshgrid(hg, hg)
    ah = kernels.dense(np.column_stack([hx.ravel(), hy.ravel()]),
                       np.ascontiguousarray(output.W), output.b.copy(), output.activation)
    ax2.contourf(hx, hy, ah.reshape(hx.shape), levels=np.linspace(0, 1, 21), cmap="RdBu_r")
    ax2.contour(hx, hy, ah.reshape(hx.shape), levels=[0.5], colors="k", linewidths=1.5)
    _xor_points(ax2, H, y, names=X)
    ax2.set(xlabel="hidden neuron 1", ylabel="hidden neuron 2", xlim=(-0.08, 1.08),
            ylim=(-0.08, 1.08), title="Hidden layer's view: one line separates them",
            aspect="equal")
    fig.suptitle("XOR solved by a 2-2-1 sigmoid network")
    fig.tight_layout()
    return fig


def _xor_points(ax: Any, P: np.ndarray, y: np.ndarray, names: np.ndarray | None = None) -> None:
    for label, marker, color in ((0, "o", "#2166ac"), (1, "s", "#b2182b")):
        sel = y == label
        ax.scatter(P[sel, 0], P[sel, 1], marker=marker, s=90, c=color, edgecolors="white",
                   linewidths=1.5, label=f"XOR = {label}", zorder=3)
    if names is not None:
        # inputs the hidden layer maps close together share one label
        labels: list[tuple[np.ndarray, str]] = []
        for p, n in zip(P, names, strict=True):
            text = f"({n[0]:.0f},{n[1]:.0f})"
            for k, (q, t) in enumerate(labels):
                if np.hypot(*(p - q)) < 0.08:
                    labels[k] = (q, f"{t} {text}")
                    break
            else:
                labels.append((p, text))
        for p, text in labels:
            ax.annotate(text, xy=(p[0], p[1]), xytext=(7, 7), textcoords="offset points",
                        fontsize=9, color="k", zorder=4,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.7})
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)


#: The most hidden neurons a weights figure shows.
MAX_NEURONS = 64


def weights_figure(net: Network) -> Figure:
    """The first layer's input weights of each neuron (up to 64) as a 28x28 image.

    Raises
    ------
    ValueError
        If ``net`` does not take 784 inputs (28x28 images).
    """
    if net.sizes[0] != 28 * 28:
        raise ValueError(f"net must take 784 inputs (28x28 images), got {net.sizes[0]}")
    W = np.asarray(net.layers[0].W, dtype=np.float64)
    n = min(W.shape[1], MAX_NEURONS)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = _figure(figsize=(1.6 * cols, 1.6 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    for j, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if j >= n:
            continue
        w = W[:, j].reshape(28, 28)
        m = np.max(np.abs(w)) or 1.0
        ax.imshow(w, cmap="RdBu_r", vmin=-m, vmax=m)
        ax.set_title(f"neuron {j}", fontsize=8)
    more = f" (first {n} of {W.shape[1]})" if W.shape[1] > n else ""
    fig.suptitle(f"Hidden neurons' input weights as 28x28 images{more}\n"
                 "red: the pixel pushes the neuron on, blue: off", fontsize=10)
    fig.tight_layout()
    return fig


def history_figure(history: Mapping[str, Sequence[float]], title: str | None = None) -> Figure:
    """Loss and accuracy per epoch, training and (when there) validation: ``fit``'s history.

    Raises
    ------
    ValueError
        If ``history`` holds no epochs of ``"loss"``.
    """
    loss = history.get("loss") if isinstance(history, Mapping) else None
    if np.ndim(loss) != 1 or len(loss) == 0:  # type: ignore[arg-type]
        raise ValueError("history must be a training history, with a non-empty 'loss' list")
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig = _figure(figsize=(10, 4))
    for ax, key in zip(fig.subplots(1, 2), ("loss", "accuracy"), strict=True):
        if key in history:
            ax.plot(epochs, history[key], marker="o", ms=3, label="training (running mean)")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="s", ms=3, label="validation")
        ax.set(xlabel="epoch", title=key)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def bench_figure(result: Mapping[str, Any]) -> Figure:
    """Samples per second by batch size and implementation, from ``dlfr bench --json``'s result.

    Raises
    ------
    ValueError
        If ``result`` holds no timed rows (``{"batch", "impl", "samples_per_s"}``).
    """
    results = result.get("results") if isinstance(result, Mapping) else None
    rows = [r for r in results or () if isinstance(r, Mapping) and "samples_per_s" in r]
    if not rows:
        raise ValueError("result must be a dlfr bench result holding timed results")
    batches = sorted({r["batch"] for r in rows})
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    value = {(r["batch"], r["impl"]): r["samples_per_s"] for r in rows}
    fig = _figure(figsize=(9, 4.5))
    ax = fig.subplots()
    width = 0.8 / len(impls)
    x = np.arange(len(batches))
    for k, impl in enumerate(impls):
        ys = [value.get((b, impl), 0.0) for b in batches]
        ax.bar(x + (k - (len(impls) - 1) / 2) * width, ys, width, label=impl)
    ax.set_xticks(x, [f"{b:,}" for b in batches])
    ax.set_yscale("log")
    ax.set_ylim(top=max(value.values()) * 8)  # room for the legend above the bars
    ax.set(xlabel="batch size (samples per call)", ylabel="samples per second (log)")
    # a model's own activations (dlfr bench --model), else the sigmoid network of --sizes
    kind = "/".join(dict.fromkeys(result.get("activations") or ["sigmoid"]))
    ax.set_title(f"Inference throughput, {'-'.join(map(str, result.get('sizes', [])))} "
                 f"{kind} network, {result.get('dtype', '')}, {result.get('threads', '?')} "
                 "thread(s)")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(ncols=min(len(impls), 5), fontsize=9)
    fig.tight_layout()
    return fig
