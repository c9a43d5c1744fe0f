"""Hardening: thread caps, BLAS sizes, non-finite input, Ctrl-C, environment."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from dlfr import Network, _kernels, kernels


def _run_python(code: str, env: dict[str, str] | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


# ---- 1. thread counts are capped -------------------------------------------------

def test_thread_cap_is_a_few_per_processor():
    assert 1 <= _kernels.THREAD_CAP <= 4 * max(1, os.cpu_count() or 1)
    assert 1 <= _kernels.max_threads() <= _kernels.THREAD_CAP


def test_huge_n_threads_does_not_crash_predict():
    # 65536 chunks of 120 rows: before the cap, 65536 OpenMP threads (SIGSEGV)
    code = (
        "import numpy as np, dlfr\n"
        "net = dlfr.Network([1, 1], seed=0)\n"
        "X = np.ones((65536 * 120, 1), np.float32)\n"
        "labels = net.predict(X, n_threads=65536)\n"
        "assert labels.shape == (65536 * 120,)\n"
        "assert (labels == net.predict(X[:1], n_threads=1)[0]).all()\n"
        "print('ok')\n"
    )
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_huge_omp_num_threads_does_not_crash_elementwise_kernels():
    code = (
        "import numpy as np, dlfr\n"
        "z = np.linspace(-5, 5, 1 << 20).astype(np.float32)\n"
        "s = dlfr.kernels.sigmoid(z)\n"
        "assert np.allclose(s, 1 / (1 + np.exp(-z.astype(np.float64))), atol=1e-6)\n"
        "X = np.ones((4096, 64), np.float32); W = np.ones((64, 64), np.float32)\n"
        "dlfr.kernels.dense(X, W, np.zeros(64, np.float32))\n"
        "net = dlfr.Network([64, 16, 10], seed=0)\n"
        "net.predict(X)\n"
        "print(dlfr._kernels.max_threads())\n"
    )
    proc = _run_python(code, {"OMP_NUM_THREADS": "100000"})
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == _kernels.THREAD_CAP


def test_huge_threads_does_not_crash_cli_predict(tmp_path):
    net = Network([1, 1], seed=0)
    net.save(tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", np.ones((65536 * 120, 1), np.float32))
    proc = subprocess.run(
        [sys.executable, "-m", "dlfr", "predict", str(tmp_path / "m.npz"),
         str(tmp_path / "x.npy"), "--threads", "65536", "--out", str(tmp_path / "y.npy")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "y.npy").shape == (65536 * 120,)


# ---- 10. environment, uint8 in kernels.dense, scale -------------------------------

_CHILD_SEES = (
    "import os, subprocess, sys\n"
    "import dlfr\n"
    "print(os.environ.get('GOMP_SPINCOUNT'))\n"
    "print(subprocess.run([sys.executable, '-c', "
    "'import os; print(os.environ.get(\"GOMP_SPINCOUNT\"))'],"
    " capture_output=True, text=True).stdout.strip())\n"
)


def _env_without_omp_wait() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}


def test_import_does_not_export_gomp_spincount():
    proc = subprocess.run([sys.executable, "-c", _CHILD_SEES], capture_output=True, text=True,
                          env=_env_without_omp_wait(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["None", "None"]


def test_users_gomp_spincount_is_kept():
    env = dict(_env_without_omp_wait(), GOMP_SPINCOUNT="5")
    proc = subprocess.run([sys.executable, "-c", _CHILD_SEES], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["5", "5"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_reads_uint8_as_pixels_like_forward(dtype):
    rng = np.random.default_rng(0)
    net = Network([20, 5], activation="identity", dtype=dtype, seed=0)
    X = rng.integers(0, 256, size=(7, 20)).astype(np.uint8)
    layer = net.layers[0]
    got = kernels.dense(X, layer.W, layer.b, activation="identity")
    assert got.dtype == dtype
    # dense puts a 5-column layer on BLAS, forward on its padded GEMM: rounding apart
    np.testing.assert_allclose(got, net.forward(X), rtol=1e-6, atol=1e-6)
    expected = (X.astype(np.float64) / 255) @ layer.W.astype(np.float64) + layer.b
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", ["0.5", float("nan"), float("inf"), -1.0, 0.0, True, 1j])
def test_forward_refuses_bad_scale(scale):
    net = Network([3, 2], seed=0)
    X = np.ones((2, 3), np.uint8)
    before = [layer.W.copy() for layer in net.layers]
    with pytest.raises(ValueError, match="scale must be a positive finite"):
        net.forward(X, scale=scale)
    assert all(np.array_equal(a, layer.W) for a, layer in zip(before, net.layers, strict=True))


def test_forward_takes_a_good_scale():
    net = Network([3, 2], seed=0)
    X = np.full((2, 3), 2, np.uint8)
    np.testing.assert_array_equal(net.forward(X, scale=np.float32(0.5)),
                                  net.forward(np.ones((2, 3), np.float32)))


# ---- 2. BLAS calls over more rows than an int holds go in pieces --------------------

@pytest.mark.parametrize("rows", [1, 7, 64, 999])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_blas_rows_in_pieces(dtype, rows):
    """Each piece of at most BLAS_MAX_ROWS rows is one BLAS call (2**31 - 1 in
    use; shrunk here so that the split runs without 2**31 rows)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((1000, 37)).astype(dtype)
    W = rng.standard_normal((37, 5)).astype(dtype)  # 5 columns: not whole panels, BLAS
    b = rng.standard_normal(5).astype(dtype)
    out = np.full((1000, 5), np.nan, dtype)
    previous = _kernels.set_blas_max_rows(rows)
    try:
        kernels.dense(X, W, b, activation="identity", out=out)
        small = kernels.dense(X[:3], W, b, activation="identity")
    finally:
        _kernels.set_blas_max_rows(previous)
    expected = X.astype(np.float64) @ W.astype(np.float64) + b
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(small, expected[:3], rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_network_blas_rows_in_pieces(dtype):
    """The forward pass (_engine) and training (_trainer) call BLAS in pieces
    of the size set_blas_max_rows sets too: at the generic level a layer over
    NARROW_MAX units, in calls of FEW_ROWS_OWN rows or more, goes to BLAS."""
    from dlfr import _reference

    rng = np.random.default_rng(2)
    X = rng.standard_normal((300, 20)).astype(dtype)
    y = rng.integers(0, 3, 300)
    sizes = [20, _kernels.NARROW_MAX + 16, 3]
    started = _kernels.build_info()["simd_in_use"]
    assert _kernels.select_simd(_kernels.SIMD_LEVELS["generic"]) == 0
    try:
        whole = Network(sizes, dtype=dtype, seed=0)
        whole.fit(X, y, epochs=1, batch_size=32, seed=0)
        pieces = Network(sizes, dtype=dtype, seed=0)
        previous = _kernels.set_blas_max_rows(7)
        try:
            pieces.fit(X, y, epochs=1, batch_size=32, seed=0)
            out = pieces.forward(X)
        finally:
            _kernels.set_blas_max_rows(previous)
    finally:
        _kernels.select_simd(_kernels.SIMD_LEVELS[started])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(whole.layers, pieces.layers, strict=True):
        np.testing.assert_allclose(b.W, a.W, rtol=tol, atol=tol)
    expected = _reference.forward(X.astype(np.float64), [layer.W for layer in pieces.layers],
                                  [layer.b for layer in pieces.layers])
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)


def test_blas_max_rows_bounds():
    with pytest.raises(ValueError, match="rows must be in"):
        _kernels.set_blas_max_rows(0)
    with pytest.raises(ValueError, match="rows must be in"):
        _kernels.set_blas_max_rows(2**31)
    assert _kernels.set_blas_max_rows(2**31 - 1) == 2**31 - 1


# ---- 4. NaN and inf in X are refused, naming the first bad row ---------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("n_threads", [1, 2, None])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [(0,), (5,), (9999, 300, 4000), (130, 7000)])
def test_predict_refuses_non_finite_rows(rows, dtype, n_threads, bad):
    net = Network([30, 16, 10], dtype=dtype, seed=0)
    X = np.random.default_rng(0).standard_normal((10000, 30)).astype(dtype)
    for r in rows:
        X[r, 17] = bad
    first = min(rows)
    for call in (net.predict, net.forward):
        with pytest.raises(ValueError, match=rf"X holds NaN or inf in row {first};"):
            call(X, n_threads=n_threads)
    with pytest.raises(ValueError, match=rf"row {first};"):
        net.predict(X[: max(rows) + 1].astype(np.float16))  # through the converting path
    # switched off: NaN propagates as before
    out = net.forward(X, n_threads=n_threads, check_finite=False)
    if np.isnan(bad):  # (an inf may saturate the sigmoids into finite outputs)
        assert np.isnan(out[first]).all()
    good = np.setdiff1d(np.arange(len(X)), rows)
    np.testing.assert_array_equal(out[good], net.forward(X[good], n_threads=n_threads))
    assert net.predict(X, n_threads=n_threads, check_finite=False).shape == (len(X),)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sizes", [[2, 3], [2, 80, 3], [2, 3, 1]])
def test_finite_rows_with_non_finite_outputs_are_not_refused(sizes, dtype):
    """The check finds bad rows through the first layer's outputs and then
    reads those rows of X: a finite row whose sum overflows, or non-finite
    weights, must not be taken for non-finite input."""
    net = Network(sizes, dtype=dtype, seed=0)
    big = np.finfo(dtype).max
    X = np.array([[0.5, -0.5], [big, big], [1.0, 2.0]], dtype=dtype)
    net.layers[0].W[:] = big  # row 1's sums overflow to inf
    out = net.forward(X)
    assert out.shape == (3, sizes[-1])
    X[2, 1] = np.nan  # now row 2 really is bad
    with pytest.raises(ValueError, match=r"row 2;"):
        net.predict(X)
    X[2, 1] = 1.0
    net.layers[0].W[0, 0] = np.nan  # a NaN weight: every row's output is NaN, X is fine
    assert net.predict(X).shape == (3,)
    X[1, 0] = np.inf
    with pytest.raises(ValueError, match=r"row 1;"):
        net.forward(X, n_threads=2)


def test_non_finite_checked_on_the_converted_path_and_in_evaluate():
    net = Network([3, 2], seed=0)
    X = [[0.0, 1.0, 2.0], [0.0, float("nan"), 1.0]]
    with pytest.raises(ValueError, match="row 1;"):
        net.predict(X)
    with pytest.raises(ValueError, match="row 1;"):
        net.forward(np.asfortranarray(np.array(X)))
    with pytest.raises(ValueError, match="row 1;"):
        net.evaluate(X, [0, 1])
    assert 0 <= net.evaluate(X, [0, 1], check_finite=False) <= 1
    # uint8 is always finite
    assert net.predict(np.full((3, 3), 255, np.uint8)).shape == (3,)


def test_cli_predict_refuses_non_finite(tmp_path):
    net = Network([3, 2], seed=0)
    net.save(tmp_path / "m.npz")
    X = np.zeros((4, 3), np.float32)
    X[2, 1] = np.inf
    np.save(tmp_path / "x.npy", X)
    cmd = [sys.executable, "-m", "dlfr", "predict", str(tmp_path / "m.npz"),
           str(tmp_path / "x.npy")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "row 2" in proc.stderr
    proc = subprocess.run(cmd + ["--no-check-finite"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.split()) == 4


def test_dask_refuses_non_finite_naming_the_row():
    da = pytest.importorskip("dask.array")
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    from dlfr import dask as dlfr_dask

    net = Network([4, 3], seed=0)
    X = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)
    X[57, 2] = np.nan
    dX = da.from_array(X, chunks=(25, 4))
    for proba in (False, True):
        with pytest.raises(ValueError, match="row 57;"):
            dlfr_dask.predict(net, dX, proba=proba).compute(scheduler="sync")
    out = dlfr_dask.predict(net, dX, check_finite=False).compute(scheduler="sync")
    np.testing.assert_array_equal(out, net.predict(X, check_finite=False))
    df = dd.from_pandas(pd.DataFrame(X, index=np.arange(100) + 1000), npartitions=4)
    with pytest.raises(ValueError, match="index 1057"):
        dlfr_dask.predict_partitions(net, df).compute(scheduler="sync")
    out = dlfr_dask.predict_partitions(net, df, check_finite=False).compute(scheduler="sync")
    np.testing.assert_array_equal(out.to_numpy(), net.predict(X, check_finite=False))


# ---- 8. Ctrl-C is answered promptly -----------------------------------------------

_SIGINT_CHILD = """
import sys, time
import numpy as np
import dlfr
what = sys.argv[1]
rng = np.random.default_rng(0)
if what == "predict":
    net = dlfr.Network([784, 4000, 10], seed=0)
    X = rng.integers(0, 256, (40000, 784), dtype=np.uint8)  # seconds of work
    call = lambda: net.predict(X)
else:
    net = dlfr.Network([784, 1000, 10], seed=0)
    X = rng.random((20000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 20000)
    call = lambda: net.fit(X, y, epochs=3, batch_size=10, learning_rate=0.5, seed=0)
    before = [layer.W.copy() for layer in net.layers] + [layer.b.copy() for layer in net.layers]
print("ready", flush=True)
try:
    call()
    print("finished", flush=True)
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
    if what == "fit":
        now = [layer.W for layer in net.layers] + [layer.b for layer in net.layers]
        same = all(np.array_equal(a, b) for a, b in zip(before, now))
        print("weights_as_at_start", same, flush=True)
"""


@pytest.mark.parametrize("what", ["predict", "fit"])
def test_sigint_is_answered_promptly(what):
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-c", _SIGINT_CHILD, what], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.7)  # well inside the call (the first epoch, for fit)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    lines = out.split("\n")
    assert lines[0].startswith("interrupted"), (out, err)
    latency = float(lines[0].split()[1]) - sent
    print(f"{what}: SIGINT answered after {latency * 1000:.1f} ms")
    assert latency < 1.0
    if what == "fit":
        assert lines[1] == "weights_as_at_start True"


def test_dense_answers_signals_between_slices():
    """kernels.dense runs a long call in slices and lets signal handlers run
    between them (the engine's rule): a handler's exception stops it."""
    import signal
    import time

    class Stop(Exception):
        pass

    def handler(signum, frame):
        raise Stop

    rng = np.random.default_rng(0)
    X = rng.random((20000, 4000), dtype=np.float32)
    W = rng.random((4000, 2048), dtype=np.float32)  # 164 G multiply-adds: seconds
    b = np.zeros(2048, np.float32)
    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        start = time.monotonic()
        with pytest.raises(Stop):
            kernels.dense(X, W, b)
        latency = time.monotonic() - start - 0.1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    print(f"dense: signal answered after {latency * 1000:.1f} ms")
    assert latency < 1.0

