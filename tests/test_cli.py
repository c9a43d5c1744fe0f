"""The ``dlfr`` command, run as ``python -m dlfr`` in a subprocess on small data."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dlfr
from dlfr.cli import info as cli_info
from dlfr.cli import main, timing

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Make the subprocess import this dlfr, whether it is installed or on PYTHONPATH.
_SRC = str(Path(dlfr.__file__).resolve().parents[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, env.get("PYTHONPATH")) if p)
    env.pop("DLFR_DEBUG", None)
    return env


def run(*args: str | os.PathLike[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dlfr", *map(str, args)],
        cwd=cwd, env=_env(), capture_output=True, text=True, timeout=60,
    )


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def assert_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit status 2 and exactly one stderr line, 'dlfr: error: ...', naming the problem."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dlfr: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary files an interrupted write would leave behind."""
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once: a small three-class problem with 6 features and a model trained on it."""
    folder = tmp_path_factory.mktemp("assets")
    rng = np.random.default_rng(0)
    X = rng.random((60, 6)).astype(np.float32)
    y = X[:, :3].argmax(axis=1)
    np.savez(folder / "data.npz", X=X, y=y)
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    np.savetxt(folder / "X.csv", X[:5], delimiter=",")
    proc = run("train", "--sizes", "6,4,3", "--data", "data.npz", "--epochs", "2",
               "--no-progress", "--out", "model.npz", cwd=folder)
    assert_ok(proc)
    return folder


@pytest.fixture
def data(tmp_path: Path, assets: Path) -> Path:
    """data.npz (X, y), X.npy, y.npy, X.csv (5 rows) and model.npz, copied into tmp_path."""
    for name in ("data.npz", "X.npy", "y.npy", "X.csv", "model.npz"):
        shutil.copyfile(assets / name, tmp_path / name)
    return tmp_path / "data.npz"


@pytest.fixture
def model(tmp_path: Path, data: Path) -> Path:
    """A 6-4-3 sigmoid network trained by ``dlfr train`` on ``data``."""
    return tmp_path / "model.npz"


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    code = {np.dtype(np.uint8): 0x08}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


# -- basics -------------------------------------------------------------------------------------


def test_help_and_version(tmp_path: Path) -> None:
    proc = run("--help", cwd=tmp_path)
    assert_ok(proc)
    for command in ("demo", "info", "train", "predict", "convert", "bench", "plot"):
        assert command in proc.stdout
    proc = run("--version", cwd=tmp_path)
    assert_ok(proc)
    assert dlfr.__version__ in proc.stdout


def test_info(tmp_path: Path) -> None:
    proc = run("info", cwd=tmp_path)
    assert_ok(proc)
    assert "dlfr" in proc.stdout and "openmp" in proc.stdout
    proc = run("info", "--json", cwd=tmp_path)
    assert_ok(proc)
    assert json.loads(proc.stdout)["dlfr"] == dlfr.__version__


def test_demo_quick(tmp_path: Path) -> None:
    proc = run("demo", "--quick", cwd=tmp_path)
    assert_ok(proc)
    out = proc.stdout
    assert "4/4 correct" in out
    # the truth table: one row per input with its target and predicted label
    for row in ("0   0       0", "0   1       1", "1   0       1", "1   1       0"):
        assert row in out
    assert "test accuracy on the last 2,000 digits" in out
    accuracy = float(out.split("digits: ")[1].split("%")[0])
    assert accuracy > 70
    assert "NumPy" in out
    timing = out.split("3. Batch inference")[1]
    assert re.search(r"^\s+1\s+[\d.]+ [mu]?s\s+[\d.]+ [mu]?s\s+[\d.]+x$", timing, re.M), timing
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal (a log)


# -- train ------------------------------------------------------------------------------------


def test_train_npz_saves_a_model_and_history(tmp_path: Path, data: Path) -> None:
    proc = run("train", "--sizes", "6,5,3", "--data", data, "--epochs", "3",
               "--batch-size", "4", "--learning-rate", "2", "--val-split", "0.25",
               "--history", "hist.json", "--out", "m.npz", cwd=tmp_path)
    assert_ok(proc)
    assert proc.stderr == ""  # no progress bar: stderr is a pipe, not a terminal
    assert "val_accuracy" in proc.stdout  # the history table
    assert len([ln for ln in proc.stdout.splitlines() if ln.strip()[:1].isdigit()]) == 3
    net = dlfr.Network.load(tmp_path / "m.npz")
    assert net.sizes == [6, 5, 3]
    saved = json.loads((tmp_path / "hist.json").read_text())
    assert saved["sizes"] == [6, 5, 3] and saved["n_validation"] == 15
    assert len(saved["history"]["loss"]) == 3
    assert set(saved["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert leftovers(tmp_path) == []


def test_train_early_stopping_keeps_the_best_epoch(tmp_path: Path, data: Path) -> None:
    proc = run("train", "--sizes", "6,5,3", "--data", data, "--epochs", "60",
               "--learning-rate", "40", "--val-split", "0.25", "--early-stopping",
               "--patience", "2", "--history", "hist.json", "--out", "m.npz", cwd=tmp_path)
    assert_ok(proc)
    saved = json.loads((tmp_path / "hist.json").read_text())
    val_loss = saved["history"]["val_loss"]
    best = saved["best_epoch"]
    assert best == int(np.argmin(val_loss))
    assert f"kept the weights of epoch {best + 1}" in proc.stdout
    # these settings overshoot: patience runs out long before 60 epochs
    assert len(val_loss) == saved["stopped_epoch"] + 1 < 60
    assert f"stopped early after epoch {len(val_loss)}" in proc.stdout
    assert saved["early_stopping"] is True and saved["patience"] == 2


def test_train_early_stopping_needs_validation(tmp_path: Path, data: Path) -> None:
    proc = run("train", "--sizes", "6,5,3", "--data", data, "--early-stopping",
               "--out", "m.npz", cwd=tmp_path)
    assert_error(proc, "--early-stopping", "--val-split")
    assert not (tmp_path / "m.npz").exists()


def test_train_is_reproducible_and_takes_options(tmp_path: Path, data: Path) -> None:
    args = ["train", "--sizes", "6,4,3", "--data", "X.npy", "--labels", "y.npy", "--epochs",
            "2", "--dtype", "float64", "--loss", "cross_entropy", "--output-activation",
            "softmax", "--seed", "3", "--no-progress"]
    assert_ok(run(*args, "--out", "a.npz", cwd=tmp_path))
    assert_ok(run(*args, "--out", "b.npz", cwd=tmp_path))
    a, b = dlfr.Network.load(tmp_path / "a.npz"), dlfr.Network.load(tmp_path / "b.npz")
    assert a.dtype == np.float64 and a.layers[-1].activation == "softmax"
    for la, lb in zip(a.layers, b.layers, strict=True):
        np.testing.assert_array_equal(la.W, lb.W)


@pytest.mark.parametrize("activation", ["leaky_relu", "elu"])
def test_train_takes_every_registry_activation(tmp_path: Path, data: Path,
                                               activation: str) -> None:
    assert_ok(run("train", "--sizes", "6,4,3", "--data", "X.npy", "--labels", "y.npy",
                  "--epochs", "2", "--activation", activation, "--output-activation", activation,
                  "--learning-rate", "0.1", "--no-progress", "--out", "m.npz", cwd=tmp_path))
    net = dlfr.Network.load(tmp_path / "m.npz")
    assert [layer.activation for layer in net.layers] == [activation, activation]


@pytest.mark.slow
def test_train_bundled_digits_by_default(tmp_path: Path) -> None:
    proc = run("train", "--limit", "300", "--epochs", "1", "--no-progress", "--out", "d.npz",
               cwd=tmp_path)
    assert_ok(proc)
    assert "bundled MNIST" in proc.stdout and "validating on the last 60" in proc.stdout
    assert dlfr.Network.load(tmp_path / "d.npz").sizes == [784, 16, 10]


def test_train_from_an_mnist_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz",
              rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), gz=True)
    write_idx(folder / "train-labels-idx1-ubyte", rng.integers(0, 10, 30, dtype=np.uint8))
    proc = run("train", "--data", folder, "--epochs", "1", "--no-progress", "--out", "f.npz",
               cwd=tmp_path)
    assert_ok(proc)
    assert "MNIST train files" in proc.stdout
    assert (tmp_path / "f.npz").is_file()


def test_train_on_raw_pixels_matches_fit(tmp_path: Path) -> None:
    # uint8 pixels reach fit as the API gets them (read as value/255, as
    # predict reads them): the same weights as fit on the same arrays
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (30, 784), dtype=np.uint8)
    labels = rng.integers(0, 10, 30)
    np.save(tmp_path / "X.npy", images)
    np.save(tmp_path / "y.npy", labels)
    proc = run("train", "--data", "X.npy", "--labels", "y.npy", "--epochs", "2",
               "--no-progress", "--out", "p.npz", cwd=tmp_path)
    assert_ok(proc)
    net = dlfr.Network([784, 16, 10], seed=0)
    net.fit(images, labels, epochs=2, batch_size=10, learning_rate=3.0, seed=0)
    trained = dlfr.Network.load(tmp_path / "p.npz")
    for got, want in zip(trained.layers, net.layers, strict=True):
        np.testing.assert_array_equal(got.W, want.W)
        np.testing.assert_array_equal(got.b, want.b)


# -- predict ----------------------------------------------------------------------------------


def test_predict_npy_to_file(tmp_path: Path, model: Path) -> None:
    proc = run("predict", model, "X.npy", "--out", "labels.npy", cwd=tmp_path)
    assert_ok(proc)
    labels = np.load(tmp_path / "labels.npy")
    net = dlfr.Network.load(model)
    np.testing.assert_array_equal(labels, net.predict(np.load(tmp_path / "X.npy")))
    assert leftovers(tmp_path) == []


def test_predict_prints_labels_and_probabilities(tmp_path: Path, model: Path) -> None:
    net = dlfr.Network.load(model)
    X = np.loadtxt(tmp_path / "X.csv", delimiter=",")
    proc = run("predict", model, "X.csv", cwd=tmp_path)
    assert_ok(proc)
    assert [int(v) for v in proc.stdout.split()] == net.predict(X).tolist()
    proc = run("predict", model, "X.csv", "--proba", cwd=tmp_path)
    assert_ok(proc)
    proba = np.array([[float(v) for v in ln.split(",")] for ln in proc.stdout.splitlines()])
    np.testing.assert_allclose(proba, net.forward(X), rtol=1e-4, atol=1e-6)


def test_predict_idx_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "images-idx3-ubyte.gz", images, gz=True)
    net = dlfr.Network([784, 8, 10], seed=0)
    net.save(tmp_path / "digits.npz")
    proc = run("predict", "digits.npz", "images-idx3-ubyte.gz", "--out", "p.npy", "--proba",
               cwd=tmp_path)
    assert_ok(proc)
    expected = net.forward(images.reshape(7, -1).astype(np.float32) / 255)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, rtol=1e-4, atol=1e-6)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["predict", "missing.npz", "X.npy", "--out", "out.npy"], ["missing.npz"]),
        (["predict", "model.npz", "missing.npy", "--out", "out.npy"], ["missing.npy"]),
        (["predict", "model.npz", "wrong.npy", "--out", "out.npy"], ["expects 6", "has 4"]),
        (["predict", "garbage.npz", "X.npy", "--out", "out.npy"], ["garbage.npz", "not a"]),
        (["predict", "X.npy", "X.npy", "--out", "out.npy"], ["not a dlfr model"]),
        (["predict", "model.npz", "X.npy", "--out", "nodir/out.npy"], ["nodir"]),
        (["train", "--sizes", "6", "--data", "data.npz", "--out", "out.npy"], ["--sizes"]),
        (["train", "--sizes", "6,0,3", "--data", "data.npz", "--out", "out.npy"], ["--sizes"]),
        (["train", "--sizes", "a,b", "--data", "data.npz", "--out", "out.npy"], ["--sizes"]),
        (["train", "--sizes", "5,4,3", "--data", "data.npz", "--out", "out.npy"],
         ["expects 5 input features", "has 6"]),
        (["train", "--sizes", "6,4,2", "--data", "data.npz", "--out", "out.npy"], ["label 2"]),
        (["train", "--data", "missing.npz", "--out", "out.npy"], ["missing.npz"]),
        (["train", "--sizes", "6,4,3", "--data", "X.npy", "--out", "out.npy"], ["--labels"]),
        (["train", "--sizes", "6,4,3", "--data", "data.npz", "--epochs", "0",
          "--out", "out.npy"], ["--epochs"]),
        (["train", "--sizes", "6,4,3", "--data", "data.npz", "--loss", "hinge",
          "--out", "out.npy"], ["--loss"]),
        (["train", "--sizes", "6,4,3", "--data", "data.npz", "--output-activation", "softmax",
          "--out", "out.npy"], ["cross_entropy"]),
        (["bench", "--batch", "0", "--json", "out.npy"], ["--batch"]),
        (["bench", "--peers", "tensorflow", "--json", "out.npy"], ["--peers"]),
        (["plot", "spiral", "--out", "out.npy"], ["spiral"]),
        (["plot", "history", "missing.json", "--out", "out.npy"], ["missing.json"]),
        (["frobnicate"], ["frobnicate"]),
        ([], ["COMMAND"]),
    ],
)
def test_errors_are_one_line_and_write_nothing(
    tmp_path: Path, model: Path, args: list[str], fragments: list[str]
) -> None:
    np.save(tmp_path / "wrong.npy", np.zeros((3, 4), dtype=np.float32))
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    before = set(os.listdir(tmp_path))
    proc = run(*args, cwd=tmp_path)
    assert_error(proc, *fragments)
    assert "Traceback" not in proc.stderr
    assert set(os.listdir(tmp_path)) == before  # no output file, no temporary file


def test_main_in_process_returns_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path / "none.npz"), str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dlfr: error: ")


# The library's own validation errors, raised inside a command: what main maps to one line.
LIBRARY_ERRORS = {
    "ValueError": (ValueError, lambda tmp: dlfr.show_config("tables"),
                   "mode must be 'stdout' or 'dicts'"),
    "TypeError": (TypeError, lambda tmp: dlfr.kernels.sigmoid(np.array([1j])), "complex128"),
    "OSError": (FileNotFoundError, lambda tmp: dlfr.Network.load(tmp / "none.npz"),
                "no such file or folder: "),
}


@pytest.mark.parametrize("kind", sorted(LIBRARY_ERRORS))
def test_library_validation_error_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    error, raise_it, fragment = LIBRARY_ERRORS[kind]
    with pytest.raises(error):
        raise_it(tmp_path)  # the library raises it of itself
    monkeypatch.setattr(cli_info, "info", lambda **_: raise_it(tmp_path))
    assert main(["info"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlfr: error: "), captured.err
    assert fragment in lines[0]
    monkeypatch.setenv("DLFR_DEBUG", "1")  # the traceback instead
    with pytest.raises(error):
        main(["info"])


# Bugs: exceptions no bad input causes. Each must keep its traceback.
BUGS = {
    "RuntimeError": "raise RuntimeError('a bug')",
    "KeyError": "{}['a key that is not there']",
    "AttributeError": "None.attribute",
}


@pytest.mark.parametrize("name", sorted(BUGS))
def test_unexpected_error_keeps_its_traceback(tmp_path: Path, name: str) -> None:
    # as the dlfr script runs it: sys.exit(main()), the command's function broken
    code = (
        "import sys\n"
        "import dlfr.cli.info\n"
        f"def broken(**_):\n    {BUGS[name]}\n"
        "dlfr.cli.info.info = broken\n"
        "from dlfr.cli import main\n"
        "sys.exit(main(['info']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("Traceback (most recent call last)"), proc.stderr
    assert "dlfr: error" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith(f"{name}:"), proc.stderr


def test_unexpected_error_escapes_main(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli_info, "info", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["info"])


# -- bench ------------------------------------------------------------------------------------


def test_bench_table_and_json(tmp_path: Path) -> None:
    proc = run("bench", "--sizes", "6,5,3", "--batch", "1,32", "--repeat", "3",
               "--min-time", "0.001", "--threads", "1", "--peers", "none",
               "--json", "bench.json", cwd=tmp_path)
    assert_ok(proc)
    assert "samples/s" in proc.stdout and "vs NumPy" in proc.stdout
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["sizes"] == [6, 5, 3] and result["threads"] == 1
    rows = {(r["batch"], r["impl"]): r for r in result["results"]}
    assert set(rows) == {(b, i) for b in (1, 32) for i in ("dlfr", "numpy")}
    for (batch, _), row in rows.items():
        assert row["samples_per_s"] == pytest.approx(batch / row["seconds_per_call"])
        assert row["vs_numpy"] > 0
    for batch in (1, 32):  # the ratio is NumPy's time over the entry's, row by row
        numpy_s = rows[(batch, "numpy")]["seconds_per_call"]
        dlfr_row = rows[(batch, "dlfr")]
        assert dlfr_row["vs_numpy"] == pytest.approx(numpy_s / dlfr_row["seconds_per_call"],
                                                     rel=0.01)


def test_bench_simd_generic(tmp_path: Path) -> None:
    proc = run("bench", "--sizes", "6,5,3", "--batch", "4", "--repeat", "1",
               "--min-time", "0.0005", "--threads", "1", "--peers", "none", "--simd", "generic",
               "--json", "bench.json", cwd=tmp_path)
    assert_ok(proc)
    assert "SIMD level: generic;" in proc.stdout and "CPU: " in proc.stdout
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["simd"] == "generic" and result["cpu"]


@pytest.mark.parametrize("level", ["sse9", "unavailable"])
def test_bench_simd_refused(tmp_path: Path, level: str) -> None:
    from dlfr import _cpu, _kernels

    if level == "unavailable":
        lacking = [name for name in _kernels.SIMD_LEVELS if name not in _cpu.simd_levels()]
        if not lacking:
            pytest.skip("this CPU runs every SIMD level")
        level = lacking[0]
    proc = run("bench", "--simd", level, "--peers", "none", "--json", "bench.json", cwd=tmp_path)
    assert_error(proc, "--simd", repr(level))
    assert not (tmp_path / "bench.json").exists()


@pytest.mark.parametrize("peer", ["onnxruntime", "torch", "sklearn"])
def test_bench_peer_agrees_with_dlfr(tmp_path: Path, peer: str) -> None:
    pytest.importorskip({"sklearn": "sklearn"}.get(peer, peer))
    if peer == "onnxruntime":
        pytest.importorskip("onnx")
    proc = run("bench", "--sizes", "6,5,3", "--batch", "4", "--repeat", "1",
               "--min-time", "0.0005", "--threads", "1", "--peers", peer,
               "--json", "bench.json", cwd=tmp_path)
    assert_ok(proc)
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["skipped"] == {}
    row = next(r for r in result["results"] if r["impl"] == peer)
    assert "error" not in row and row["samples_per_s"] > 0


class FakeClock:
    """time.perf_counter for timing tests: each call of ``call`` takes the next duration."""

    def __init__(self, durations: list[float]) -> None:
        self.now, self.durations, self.calls = 100.0, durations, 0

    def __call__(self) -> float:
        return self.now

    def call(self) -> None:
        self.now += self.durations[min(self.calls, len(self.durations) - 1)]
        self.calls += 1


def test_seconds_per_call_runs_calls_for_min_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock([0.001])
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    assert timing.seconds_per_call(clock.call, repeat=3, min_time=0.01) == pytest.approx(0.001)
    # timeit's autorange tries 1, 2, 5, then 10 calls (0.01 s); then 3 timings of 10 calls
    assert clock.calls == 1 + 2 + 5 + 10 + 3 * 10


def test_seconds_per_call_is_the_median(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock([0.5, 0.3, 0.1, 0.2])  # min_time 0.25: one call a timing
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    assert timing.seconds_per_call(clock.call, repeat=3, min_time=0.25) == pytest.approx(0.2)


def test_best_of_is_the_fastest_call_after_a_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock([0.009, 0.003, 0.002, 0.004])
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    assert timing.best_of(clock.call, runs=3) == pytest.approx(0.002)
    assert clock.calls == 4


# -- plot -------------------------------------------------------------------------------------


def _bench_json(path: Path) -> None:
    path.write_text(json.dumps({
        "sizes": [784, 16, 10], "dtype": "float32", "threads": 2,
        "results": [
            {"batch": b, "impl": i, "samples_per_s": s, "seconds_per_call": b / s}
            for b in (1, 256) for i, s in (("dlfr", 1e6 * b ** 0.3), ("numpy", 1e5 * b ** 0.3))
        ],
    }))


@pytest.mark.parametrize("kind", ["sigmoid", "xor", "weights", "bench"])
def test_plot_writes_png(tmp_path: Path, kind: str) -> None:
    pytest.importorskip("matplotlib")
    extra = []
    if kind == "bench":
        _bench_json(tmp_path / "bench.json")
        extra = ["--json", "bench.json"]
    proc = run("plot", kind, *extra, "--out", f"{kind}.png", "--dpi", "40", cwd=tmp_path)
    assert_ok(proc)
    assert (tmp_path / f"{kind}.png").read_bytes()[:8] == PNG_SIGNATURE
    assert leftovers(tmp_path) == []


def test_plot_history_from_train(tmp_path: Path, data: Path) -> None:
    pytest.importorskip("matplotlib")
    assert_ok(run("train", "--sizes", "6,4,3", "--data", data, "--epochs", "3",
                  "--val-split", "0.2", "--no-progress", "--history", "h.json",
                  "--out", "m.npz", cwd=tmp_path))
    proc = run("plot", "history", "--history", "h.json", "--out", "h.png", "--dpi", "40",
               cwd=tmp_path)
    assert_ok(proc)
    assert (tmp_path / "h.png").read_bytes()[:8] == PNG_SIGNATURE


def test_plot_weights_of_a_saved_model(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    dlfr.Network([784, 9, 10], seed=0).save(tmp_path / "m.npz")
    proc = run("plot", "weights", "--model", "m.npz", "--out", "w.png", "--dpi", "40",
               cwd=tmp_path)
    assert_ok(proc)
    assert (tmp_path / "w.png").read_bytes()[:8] == PNG_SIGNATURE


def test_plot_weights_needs_784_inputs(tmp_path: Path, model: Path) -> None:
    pytest.importorskip("matplotlib")
    proc = run("plot", "weights", "--model", model, "--out", "w.png", cwd=tmp_path)
    assert_error(proc, "784")
    assert not (tmp_path / "w.png").exists()


def test_plot_without_matplotlib_says_how_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        "from dlfr.cli import main; sys.exit(main(['plot', 'sigmoid', '--out', 'x.png']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert_error(proc, 'pip install "dlfr[plot]"')
    assert not (tmp_path / "x.png").exists()


# -- hardening ----------------------------------------------------------------------------------


def _env_with(**extra: str) -> dict[str, str]:
    env = _env()
    env.update(extra)
    return env


@pytest.mark.parametrize("command", [["info"], ["predict", "model.npz", "X.npy"]])
def test_bad_dlfr_simd_is_one_line_exit_2(tmp_path: Path, command: list[str]) -> None:
    # read when the compiled module loads; a traceback with exit 1 before
    proc = subprocess.run([sys.executable, "-m", "dlfr", *command], cwd=tmp_path,
                          env=_env_with(DLFR_SIMD="garbage"), capture_output=True, text=True,
                          timeout=60)
    assert_error(proc, "DLFR_SIMD", "'garbage'")


def test_train_progress_bar_not_in_a_log(tmp_path: Path, data: Path) -> None:
    # stderr is a pipe here, as in `dlfr demo 2> log`: hundreds of \r frames before
    proc = run("train", "--sizes", "6,4,3", "--data", "data.npz", "--epochs", "3",
               "--out", "m.npz", cwd=tmp_path)
    assert_ok(proc)
    assert proc.stderr == ""


def test_train_help_shows_defaults(tmp_path: Path) -> None:
    proc = run("train", "--help", cwd=tmp_path)
    assert_ok(proc)
    text = " ".join(proc.stdout.split())
    for fragment in ("--epochs N passes over the training data (default 30)",
                     "(default 10)", "(default 3.0)", "(default mse", "(default 0)"):
        assert fragment in text, text
    proc = run("predict", "--help", cwd=tmp_path)
    assert "--threads N threads for the forward pass (default: all cores)" in " ".join(
        proc.stdout.split())


def test_train_checks_labels_before_the_banner(tmp_path: Path, data: Path) -> None:
    proc = run("train", "--sizes", "6,4,2", "--data", "data.npz", "--out", "m.npz",
               cwd=tmp_path)
    assert_error(proc, "y holds label 2, outside 0..1")
    assert proc.stdout == ""  # no "training ..." banner for a run that cannot start


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
@pytest.mark.parametrize("alias", ["same", "hardlink", "symlink", "model"])
def test_predict_refuses_to_overwrite_its_input(tmp_path: Path, model: Path, suffix: str,
                                                alias: str) -> None:
    source = tmp_path / f"X{suffix}"
    out = source
    if alias == "hardlink":
        out = tmp_path / f"other{suffix}"
        os.link(source, out)
    elif alias == "symlink":
        out = tmp_path / f"other{suffix}"
        out.symlink_to(source.name)
    elif alias == "model":
        out = tmp_path / "model.npy"
        os.link(model, out)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    proc = run("predict", "model.npz", source.name, "--out", out.name, cwd=tmp_path)
    what = "model file model.npz" if alias == "model" else f"input {source.name}"
    assert_error(proc, f"--out {out.name} is the {what}")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("which", ["model", "input"])
def test_predict_refuses_a_fifo(tmp_path: Path, model: Path, which: str) -> None:
    # blocked forever before; run()'s timeout keeps the test from hanging
    fifo = tmp_path / ("fifo.npz" if which == "model" else "fifo.npy")
    os.mkfifo(fifo)
    args = ["fifo.npz", "X.npy"] if which == "model" else ["model.npz", "fifo.npy"]
    proc = run("predict", *args, cwd=tmp_path)
    assert_error(proc, f"{fifo.name} is a FIFO (named pipe); expected a regular file")


def test_predict_refuses_3d_npy(tmp_path: Path, model: Path) -> None:
    np.save(tmp_path / "cube.npy", np.zeros((5, 2, 3), np.float32))
    proc = run("predict", "model.npz", "cube.npy", cwd=tmp_path)
    assert_error(proc, "cube.npy holds an array of shape (5, 2, 3); expected 2-D")
    with pytest.raises(ValueError, match=r"X must be 2-D"):
        dlfr.Network.load(model).predict(np.zeros((5, 2, 3), np.float32))


def test_predict_npy_declaring_a_huge_shape(tmp_path: Path, model: Path) -> None:
    # (10**7, 784) float32 declared in a 192-byte file: MemoryError before
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (10000000, 784), }"
    text = header.encode("latin1")
    text += b" " * ((64 - (10 + len(text) + 1) % 64) % 64) + b"\n"
    (tmp_path / "big.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little")
                                       + text + bytes(64))
    proc = run("predict", "model.npz", "big.npy", cwd=tmp_path)
    assert_error(proc, "big.npy", "(10000000, 784)")


def test_predict_corrupt_model_is_one_line(tmp_path: Path, model: Path) -> None:
    # the archive's central directory says "compressed, method 99": NotImplementedError
    # and a traceback with exit 1 before
    data = bytearray(model.read_bytes())
    at = data.find(b"PK\x01\x02")
    data[at + 10:at + 12] = (99).to_bytes(2, "little")
    model.write_bytes(bytes(data))
    proc = run("predict", "model.npz", "X.npy", cwd=tmp_path)
    assert_error(proc, "model.npz", "compressed")


def test_train_refuses_to_overwrite_its_data(tmp_path: Path, data: Path) -> None:
    before = data.read_bytes()
    proc = run("train", "--sizes", "6,4,3", "--data", "data.npz", "--out", "data.npz",
               cwd=tmp_path)
    assert_error(proc, "--out data.npz is the data file data.npz")
    assert data.read_bytes() == before
