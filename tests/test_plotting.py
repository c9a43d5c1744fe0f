"""dlfr.plotting: the figures ``dlfr plot`` saves, made without pyplot."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

import dlfr
from dlfr import plotting

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def figure_class() -> type:
    return pytest.importorskip("matplotlib.figure").Figure


def png(fig: object) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=30)  # type: ignore[attr-defined]
    return buffer.getvalue()


def test_sigmoid_figure(figure_class: type) -> None:
    fig = plotting.sigmoid_figure()
    assert isinstance(fig, figure_class)
    (ax,) = fig.axes
    curves = ax.get_lines()[:3]  # then the axis lines at 0
    z = curves[0].get_xdata()
    step, sigmoid, derivative = (line.get_ydata() for line in curves)
    np.testing.assert_allclose(sigmoid, 1 / (1 + np.exp(-z)), rtol=1e-12)
    np.testing.assert_allclose(derivative, sigmoid * (1 - sigmoid), rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(step, z >= 0)
    assert png(fig)[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_xor_figure(figure_class: type, dtype: str) -> None:
    net = dlfr.Network([2, 2, 1], dtype=dtype, seed=0)
    fig = plotting.xor_figure(net)
    assert len(fig.axes) == 3  # the two panels and the colour bar
    assert png(fig)[:8] == PNG_SIGNATURE


def test_weights_figure_shows_at_most_64_neurons(figure_class: type) -> None:
    net = dlfr.Network([784, 70, 10], seed=0)
    fig = plotting.weights_figure(net)
    images = [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()]
    assert len(images) == plotting.MAX_NEURONS
    np.testing.assert_allclose(images[5], net.layers[0].W[:, 5].reshape(28, 28))
    assert "(first 64 of 70)" in fig.get_suptitle()


def test_history_figure(figure_class: type) -> None:
    history = {"loss": [0.5, 0.3, 0.2], "accuracy": [0.6, 0.8, 0.9],
               "val_loss": [0.6, 0.4, 0.35], "val_accuracy": [0.5, 0.7, 0.8]}
    fig = plotting.history_figure(history, title="a run")
    loss_ax, accuracy_ax = fig.axes
    assert [list(line.get_ydata()) for line in loss_ax.get_lines()] == [
        history["loss"], history["val_loss"]]
    assert [list(line.get_ydata()) for line in accuracy_ax.get_lines()] == [
        history["accuracy"], history["val_accuracy"]]
    assert fig.get_suptitle() == "a run"


def test_bench_figure(figure_class: type) -> None:
    result = {"sizes": [784, 16, 10], "dtype": "float32", "threads": 2, "results": [
        {"batch": 1, "impl": "dlfr", "samples_per_s": 4e5},
        {"batch": 1, "impl": "numpy", "samples_per_s": 3e4},
        {"batch": 256, "impl": "dlfr", "samples_per_s": 2e6},
        {"batch": 256, "impl": "numpy", "error": "output differs"},
    ]}
    fig = plotting.bench_figure(result)
    (ax,) = fig.axes
    heights = sorted(bar.get_height() for bar in ax.patches)
    assert heights == [0.0, 3e4, 4e5, 2e6]  # the untimed row drawn as nothing
    assert "784-16-10 sigmoid network" in ax.get_title() and "2 thread(s)" in ax.get_title()
    # dlfr bench --model names the model's activations
    fig = plotting.bench_figure(dict(result, activations=["relu", "relu", "softmax"]))
    assert "784-16-10 relu/softmax network" in fig.axes[0].get_title()


@pytest.mark.parametrize(
    ("draw", "message"),
    [
        (lambda: plotting.xor_figure(dlfr.Network([2, 3, 1])), r"2-2-1 network, got sizes"),
        (lambda: plotting.weights_figure(dlfr.Network([6, 3])), r"784 inputs .*got 6"),
        (lambda: plotting.history_figure({"loss": []}), r"non-empty 'loss' list"),
        (lambda: plotting.history_figure({"accuracy": [1.0]}), r"non-empty 'loss' list"),
        (lambda: plotting.bench_figure({"results": [{"batch": 1}]}), r"timed results"),
        (lambda: plotting.bench_figure({}), r"timed results"),
    ],
)
def test_bad_input_is_refused(figure_class: type, draw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        draw()  # type: ignore[operator]


def test_without_matplotlib_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "matplotlib.figure", raising=False)
    with pytest.raises(ImportError, match=r'plotting needs matplotlib.*pip install "dlfr\[plot\]"'):
        plotting.sigmoid_figure()
