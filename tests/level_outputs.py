"""What tests/test_dispatch.py compares between SIMD levels: each compiled
module's kernels on fixed inputs, at the level in use.

Run as a script (``python level_outputs.py out.npz``) it saves them for a
process started at the level ``DLFR_SIMD`` names; imported, ``compute()``
gives them at the level ``select_simd`` set in this process. Keys name
what ran: ``sigmoid`` and ``dense`` (dlfr._ops), ``forward`` and ``wide``
(dlfr._engine; ``wide`` on BLAS at the generic level), ``trained``
(dlfr._trainer).
"""

from __future__ import annotations

import sys

import numpy as np

import dlfr
from dlfr import _kernels, kernels
from dlfr.datasets import load_mnist


def compute() -> dict[str, np.ndarray]:
    """Every compared output, on the level in use (call on one thread: the
    thread count must not change BLAS's summation order)."""
    info = dlfr.show_config(mode="dicts")
    out = {"simd_in_use": np.array(info["simd_in_use"]),
           "simd_supported": np.array(info["simd_supported"]),
           "gemm_wide": np.array(_kernels.gemm_wide())}
    X_all, y_all = load_mnist()
    for dtype in ("float32", "float64"):
        # Every float from far below to far above the sigmoid's saturation,
        # crossing each vector width's remainder loop.
        z = np.concatenate([np.linspace(-120, 120, 20011), [0.0, -0.0, 1e-30, -1e-30]])
        out[f"sigmoid/{dtype}"] = kernels.sigmoid(z.astype(dtype))
        rng = np.random.default_rng(0)
        X = X_all[:257].astype(dtype)
        W = (rng.standard_normal((784, 16)) * 0.05).astype(dtype)
        b = rng.standard_normal(16).astype(dtype)
        out[f"dense/{dtype}"] = kernels.dense(X, W, b, activation="sigmoid")
        net = dlfr.Network([784, 16, 10], dtype=dtype, seed=0)
        out[f"forward/{dtype}"] = net.forward(X_all[:1000])
        out[f"wide/{dtype}"] = dlfr.Network([784, 256, 80, 10], dtype=dtype,
                                             seed=1).forward(X_all[:301])
        net.fit(X_all[:1000], y_all[:1000], epochs=1, batch_size=10, learning_rate=3.0, seed=0)
        out[f"trained/{dtype}"] = np.concatenate(
            [a.ravel() for layer in net.layers for a in (layer.W, layer.b)])
    return out


if __name__ == "__main__":
    np.savez(sys.argv[1], **compute())
