"""The networks the demo trains, and the plots that draw a trained network when given none."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .. import datasets
from ..network import Network

XOR_RECIPE: dict[str, Any] = {"epochs": 5000, "batch_size": 4, "learning_rate": 5.0, "seed": 0}
DIGITS_RECIPE: dict[str, Any] = {
    "epochs": 30, "batch_size": 10, "learning_rate": 3.0, "loss": "mse", "seed": 0,
}
#: The bundled digits' first 8,000 train, the last 2,000 test.
N_DIGITS_TRAIN = 8000


def train_xor() -> tuple[Network, np.ndarray, np.ndarray]:
    """A 2-2-1 sigmoid network trained on XOR by XOR_RECIPE, and XOR's X and y."""
    X, y = datasets.xor()
    net = Network([2, 2, 1], activation="sigmoid", seed=XOR_RECIPE["seed"])
    net.fit(X, y, **XOR_RECIPE)
    return net, X, y


def train_digits(
    n_train: int, epochs: int, verbose: bool
) -> tuple[Network, np.ndarray, np.ndarray, float]:
    """A 784-16-10 sigmoid network trained by DIGITS_RECIPE for ``epochs`` on the first
    ``n_train`` bundled digits; all the digits' X and y; the seconds training took."""
    X, y = datasets.load_mnist()
    net = Network([784, 16, 10], activation="sigmoid", seed=0)
    recipe = dict(DIGITS_RECIPE, epochs=epochs)
    start = time.perf_counter()
    net.fit(X[:n_train], y[:n_train], verbose=verbose, **recipe)
    return net, X, y, time.perf_counter() - start
