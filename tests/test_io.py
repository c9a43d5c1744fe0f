"""Tests for dlfr.io: the .npz model file format, its round trip and its refusals."""

import json
import os
import re
import sys
import zipfile

import numpy as np
import pytest
from conftest import DTYPES, dtype_id

from dlfr import Network, activations, io


def make_model(dtype=np.float32, sizes=(3, 4, 2), seed=0):
    rng = np.random.default_rng(seed)
    weights = [
        rng.standard_normal((n_in, n_out)).astype(dtype)
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    biases = [rng.standard_normal(n_out).astype(dtype) for n_out in sizes[1:]]
    return {
        "sizes": list(sizes),
        "activations": ["sigmoid"] * (len(sizes) - 1),
        "weights": weights,
        "biases": biases,
        "dtype": np.dtype(dtype).name,
    }


def header_of(model, **changes):
    header = {
        "format": "dlfr-model",
        "format_version": 1,
        "sizes": model["sizes"],
        "activations": model["activations"],
        "dtype": model["dtype"],
    }
    header.update(changes)
    return header


def encode(header):
    """A header dict as the uint8 array the format stores."""
    return np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)


def arrays_of(model):
    arrays = {}
    for i, (W, b) in enumerate(zip(model["weights"], model["biases"], strict=True)):
        arrays[f"W{i}"], arrays[f"b{i}"] = W, b
    return arrays


def write_npz(path, **arrays):
    """Write an .npz at exactly ``path`` (numpy would append .npz to a name)."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def assert_refused(path, match):
    """load_model(path) raises ValueError naming the file and matching ``match``."""
    with pytest.raises(ValueError, match=match) as info:
        io.load_model(path)
    assert str(path) in str(info.value)


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


# --- round trip ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("sizes", [(3, 4, 2), (784, 16, 10), (2, 1), (5, 7, 6, 3, 1)])
def test_round_trip_is_exact(tmp_path, dtype, sizes):
    model = make_model(dtype, sizes)
    path = tmp_path / "model.npz"
    io.save_model(path, **model)
    loaded = io.load_model(path)
    assert isinstance(loaded, io.ModelFile)
    assert loaded.sizes == list(sizes)
    assert loaded.activations == model["activations"]
    assert loaded.dtype == np.dtype(dtype)
    assert len(loaded.weights) == len(loaded.biases) == len(sizes) - 1
    for got, want in zip(
        loaded.weights + loaded.biases, model["weights"] + model["biases"], strict=True
    ):
        assert got.dtype == np.dtype(dtype)
        assert got.flags.c_contiguous
        # Bit for bit, not approximately.
        assert got.tobytes() == want.tobytes()
        assert got.shape == want.shape
    assert loaded.header["format"] == "dlfr-model"
    assert loaded.header["format_version"] == 1
    assert loaded.header["dtype"] == np.dtype(dtype).name


def test_round_trip_extremes_and_activations(tmp_path):
    model = make_model(np.float64, (2, 3, 3))
    model["weights"][0][0] = [np.finfo(np.float64).max, np.finfo(np.float64).tiny, -0.0]
    model["activations"] = ["tanh", "softmax"]
    io.save_model(tmp_path / "m.npz", **model)
    loaded = io.load_model(tmp_path / "m.npz")
    assert loaded.activations == ["tanh", "softmax"]
    assert loaded.weights[0].tobytes() == model["weights"][0].tobytes()


def test_model_file_is_frozen(tmp_path):
    io.save_model(tmp_path / "m.npz", **make_model())
    loaded = io.load_model(tmp_path / "m.npz")
    with pytest.raises(AttributeError):
        loaded.sizes = [1, 1]


def test_extra_header_entries(tmp_path):
    io.save_model(tmp_path / "m.npz", **make_model(), extra={"dlfr_version": "0.1.0", "note": "x"})
    header = io.load_model(tmp_path / "m.npz").header
    assert header["dlfr_version"] == "0.1.0"
    assert header["note"] == "x"


def test_file_layout_is_plain_npz(tmp_path):
    model = make_model()
    path = tmp_path / "m.npz"
    io.save_model(path, **model)
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["W0", "W1", "b0", "b1", "header"]
        assert npz["header"].dtype == np.uint8
        header = json.loads(npz["header"].tobytes().decode("utf-8"))
    assert header == header_of(model)


def test_fortran_order_weights_load_c_contiguous(tmp_path):
    model = make_model()
    model["weights"][0] = np.asfortranarray(model["weights"][0])
    io.save_model(tmp_path / "m.npz", **model)
    W0 = io.load_model(tmp_path / "m.npz").weights[0]
    assert W0.flags.c_contiguous
    np.testing.assert_array_equal(W0, model["weights"][0])


def test_str_and_pathlike_paths(tmp_path):
    model = make_model()
    io.save_model(str(tmp_path / "a.npz"), **model)
    io.save_model(tmp_path / "b.npz", **model)
    assert io.load_model(str(tmp_path / "b.npz")).sizes == [3, 4, 2]
    assert io.load_model(tmp_path / "a.npz").sizes == [3, 4, 2]


@pytest.mark.parametrize("name", ["model.bin", "model", "model.npz.tmp", "weights.NPZ"])
def test_path_without_npz_is_written_exactly(tmp_path, name):
    io.save_model(tmp_path / name, **make_model())
    assert files_in(tmp_path) == [name]
    assert io.load_model(tmp_path / name).sizes == [3, 4, 2]


def test_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    io.save_model("rel.npz", **make_model())
    assert files_in(tmp_path) == ["rel.npz"]
    assert io.load_model("rel.npz").sizes == [3, 4, 2]


def test_overwrite_replaces_file(tmp_path):
    path = tmp_path / "m.npz"
    io.save_model(path, **make_model(sizes=(3, 4, 2)))
    io.save_model(path, **make_model(np.float64, sizes=(2, 1)))
    loaded = io.load_model(path)
    assert loaded.sizes == [2, 1]
    assert loaded.dtype == np.float64
    assert files_in(tmp_path) == ["m.npz"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_saved_file_permissions_follow_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        io.save_model(tmp_path / "m.npz", **make_model())
    finally:
        os.umask(umask)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644


def test_custom_allowed_activations(tmp_path):
    model = make_model()
    model["activations"] = ["swish", "sigmoid"]
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        io.save_model(tmp_path / "m.npz", **model)
    allowed = (*io.ACTIVATIONS, "swish")
    io.save_model(tmp_path / "m.npz", **model, allowed_activations=allowed)
    assert_refused(tmp_path / "m.npz", "unknown activation 'swish'")
    loaded = io.load_model(tmp_path / "m.npz", allowed_activations=allowed)
    assert loaded.activations == ["swish", "sigmoid"]


@pytest.mark.parametrize("name", io.ACTIVATIONS)
def test_every_activation_a_model_file_names_round_trips(tmp_path, name):
    """The names a model file may hold are the ones the kernels run, and each
    comes back from a saved file as the same network."""
    assert name in activations.ACTIVATIONS
    net = Network([3, 4, 2], output_activation=name, seed=0)
    path = tmp_path / f"{name}.npz"
    net.save(path)
    back = Network.load(path)
    assert [layer.activation for layer in back.layers] == ["sigmoid", name]
    X = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.forward(X), net.forward(X))


# --- failed saves -------------------------------------------------------------


def _broken(key, value):
    def change(model):
        model[key] = value(model) if callable(value) else value

    return change


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (_broken("dtype", "float16"), "dtype must be"),
        (_broken("dtype", None), "dtype must be"),
        (_broken("sizes", [3]), "at least 2"),
        (_broken("sizes", [3, 0, 2]), "positive integers"),
        (_broken("sizes", [3, 4.0, 2]), "positive integers"),
        (_broken("sizes", [3, 5, 2]), r"W0 has shape \(3, 4\), expected \(3, 5\)"),
        (_broken("activations", ["sigmoid"]), "one name per layer"),
        (_broken("activations", ["sigmoid", "gelu"]), "unknown activation 'gelu'"),
        (_broken("weights", lambda m: m["weights"][:1]), "2 weights and biases"),
        (_broken("weights", lambda m: [m["weights"][0], m["weights"][1].T]), "W1 has shape"),
        (_broken("biases", lambda m: [m["biases"][0], m["biases"][1][:1]]), "b1 has shape"),
        (
            _broken("weights", lambda m: [w.astype(np.float64) for w in m["weights"]]),
            "W0 has dtype float64, expected float32",
        ),
        (
            _broken("biases", lambda m: [m["biases"][0], np.array([1.0, np.nan], np.float32)]),
            "b1 holds non-finite",
        ),
    ],
)
def test_invalid_save_writes_nothing(tmp_path, change, match):
    model = make_model()
    change(model)
    path = tmp_path / "m.npz"
    with pytest.raises(ValueError, match=match) as info:
        io.save_model(path, **model)
    assert str(path) in str(info.value)
    assert files_in(tmp_path) == []


def test_extra_may_not_override_reserved_keys(tmp_path):
    with pytest.raises(ValueError, match="format_version"):
        io.save_model(tmp_path / "m.npz", **make_model(), extra={"format_version": 2})
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("extra", [{"x": object()}, {"x": float("nan")}, ["not", "a", "dict"]])
def test_extra_must_be_plain_json(tmp_path, extra):
    with pytest.raises(TypeError, match="extra"):
        io.save_model(tmp_path / "m.npz", **make_model(), extra=extra)
    assert files_in(tmp_path) == []


class Interrupted(Exception):
    pass


def _savez_that_dies(f, **arrays):
    """Write part of an archive, then fail, like a full disk or a Ctrl-C."""
    f.write(b"PK\x03\x04 half an archive")
    raise Interrupted


@pytest.mark.parametrize("existing", [False, True])
def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch, existing):
    path = tmp_path / "m.npz"
    if existing:
        io.save_model(path, **make_model(sizes=(2, 1)))
    before = path.read_bytes() if existing else None
    monkeypatch.setattr(io.np, "savez", _savez_that_dies)
    with pytest.raises(Interrupted):
        io.save_model(path, **make_model())
    monkeypatch.undo()
    if existing:
        # The old model is untouched and still loads.
        assert files_in(tmp_path) == ["m.npz"]
        assert path.read_bytes() == before
        assert io.load_model(path).sizes == [2, 1]
    else:
        assert files_in(tmp_path) == []


def test_save_into_missing_folder_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        io.save_model(tmp_path / "no" / "such" / "m.npz", **make_model())
    assert files_in(tmp_path) == []


def test_save_over_a_folder_fails_cleanly(tmp_path):
    (tmp_path / "m.npz").mkdir()
    with pytest.raises(OSError):
        io.save_model(tmp_path / "m.npz", **make_model())
    assert files_in(tmp_path) == ["m.npz"]
    assert (tmp_path / "m.npz").is_dir()


def test_save_error_names_the_path_given_not_the_temporary_file(tmp_path):
    path = tmp_path / "nodir" / "x.npz"
    with pytest.raises(FileNotFoundError) as info:
        io.save_model(path, **make_model())
    assert info.value.filename == str(path)
    assert ".tmp" not in str(info.value) and str(path) in str(info.value)


def test_save_over_a_folder_names_the_folder(tmp_path):
    (tmp_path / "m.npz").mkdir()
    with pytest.raises(OSError) as info:
        io.save_model(tmp_path / "m.npz", **make_model())
    assert ".tmp" not in str(info.value) and info.value.filename == str(tmp_path / "m.npz")


@pytest.mark.parametrize("extra", [0, 10, 17, 18, 30])
def test_long_file_name_within_name_max(tmp_path, extra):
    # a 244-character name failed: the temporary name was 18 characters longer
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    name = "m" * (name_max - extra - 4) + ".npz"
    io.save_model(tmp_path / name, **make_model())
    assert files_in(tmp_path) == [name]
    assert io.load_model(tmp_path / name).sizes == [3, 4, 2]


@pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32", reason="POSIX links")
def test_save_writes_through_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "m.npz"
    io.save_model(target, **make_model(sizes=(2, 1)))
    link = tmp_path / "link.npz"
    link.symlink_to(os.path.join("real", "m.npz"))
    io.save_model(link, **make_model(sizes=(3, 4, 2)))
    assert link.is_symlink()  # still the link, not a regular file in its place
    assert io.load_model(target).sizes == [3, 4, 2]
    assert files_in(tmp_path) == ["link.npz", "real"]
    assert files_in(tmp_path / "real") == ["m.npz"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_save_over_a_file_keeps_its_mode(tmp_path):
    path = tmp_path / "m.npz"
    io.save_model(path, **make_model())
    os.chmod(path, 0o600)
    io.save_model(path, **make_model(sizes=(2, 1)))
    assert path.stat().st_mode & 0o7777 == 0o600
    os.chmod(path, 0o640)
    io.save_model(path, **make_model())
    assert path.stat().st_mode & 0o7777 == 0o640


# --- refused files ------------------------------------------------------------


@pytest.fixture
def model():
    return make_model()


@pytest.fixture
def saved(tmp_path, model):
    path = tmp_path / "good.npz"
    io.save_model(path, **model)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        io.load_model(tmp_path / "absent.npz")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not an .npz zip archive"),
        (b"hello, I am a text file\n", "not an .npz zip archive"),
        (b"\x80\x04\x95 a pickle", "not an .npz zip archive"),
    ],
)
def test_not_a_zip(tmp_path, content, match):
    path = tmp_path / "m.npz"
    path.write_bytes(content)
    assert_refused(path, match)


def test_npy_file_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    assert_refused(path, "not an .npz zip archive")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated_zip(tmp_path, saved, keep):
    data = saved.read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[: max(4, int(len(data) * keep))])
    assert_refused(path, "cut.npz")


def test_corrupted_member_bytes(tmp_path, saved, model):
    # Flip bytes inside W0's data: the zip's CRC check catches it.
    data = bytearray(saved.read_bytes())
    start = data.find(model["weights"][0].tobytes())
    assert start > 0
    data[start : start + 8] = bytes(8)
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(data))
    assert_refused(path, "W0 is corrupt")


def test_foreign_npz(tmp_path):
    path = write_npz(tmp_path / "foreign.npz", a=np.zeros(3), b=np.ones((2, 2)))
    assert_refused(path, "no header")


def test_empty_zip(tmp_path):
    path = tmp_path / "empty.npz"
    with zipfile.ZipFile(path, "w"):
        pass
    assert_refused(path, "no header")


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (np.zeros(4, dtype=np.float32), "header must be a 1-D uint8"),
        (np.zeros((2, 2), dtype=np.uint8), "header must be a 1-D uint8"),
        (np.frombuffer(b"{not json", dtype=np.uint8), "header is not UTF-8 JSON"),
        (np.frombuffer(b"\xff\xfe\x00", dtype=np.uint8), "header is not UTF-8 JSON"),
        (np.frombuffer(b"[1, 2]", dtype=np.uint8), "header is not a JSON object"),
    ],
)
def test_bad_header_array(tmp_path, model, header, match):
    path = write_npz(tmp_path / "m.npz", header=header, **arrays_of(model))
    assert_refused(path, match)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"format": "keras-model"}, "not a dlfr model file.*keras-model"),
        ({"format": None}, "not a dlfr model file"),
        ({"format_version": 2}, "unknown format_version 2"),
        ({"format_version": 0}, "unknown format_version 0"),
        ({"format_version": "1"}, "format_version must be an integer"),
        ({"format_version": True}, "format_version must be an integer"),
        ({"format_version": 1.0}, "format_version must be an integer"),
        ({"sizes": [3, 5, 2]}, r"W0 has shape \(3, 4\), expected \(3, 5\)"),
        ({"sizes": [4, 3, 2]}, r"W0 has shape \(3, 4\), expected \(4, 3\)"),
        ({"sizes": [3, 4, 2, 1], "activations": ["relu"] * 3}, r"missing \['W2', 'b2'\]"),
        ({"sizes": [3, 4], "activations": ["sigmoid"]}, r"unexpected \['W1', 'b1'\]"),
        ({"sizes": [3, 4.0, 2]}, "positive integers"),
        ({"sizes": [3, True, 2]}, "positive integers"),
        ({"sizes": [3, -4, 2]}, "positive integers"),
        ({"sizes": "3,4,2"}, "sizes must be a list"),
        ({"sizes": None}, "sizes must be a list"),
        ({"activations": ["sigmoid"]}, "one name per layer"),
        ({"activations": "sigmoid"}, "one name per layer"),
        ({"activations": ["sigmoid", "__import__('os')"]}, "unknown activation"),
        ({"activations": ["sigmoid", 1]}, "unknown activation 1"),
        ({"dtype": "float64"}, "W0 has dtype float32, expected float64"),
        ({"dtype": "float16"}, "dtype must be"),
        ({"dtype": "object"}, "dtype must be"),
    ],
)
def test_tampered_header(tmp_path, model, changes, match):
    path = write_npz(
        tmp_path / "m.npz", header=encode(header_of(model, **changes)), **arrays_of(model)
    )
    assert_refused(path, match)


@pytest.mark.parametrize(
    ("key", "match"),
    [
        ("format", "not a dlfr model file"),
        ("format_version", "format_version must be an integer"),
        ("sizes", "sizes must be a list"),
        ("activations", "one name per layer"),
        ("dtype", "dtype must be"),
    ],
)
def test_header_missing_key(tmp_path, model, key, match):
    header = header_of(model)
    del header[key]
    path = write_npz(tmp_path / "m.npz", header=encode(header), **arrays_of(model))
    assert_refused(path, match)


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        (lambda a: a.pop("W1"), r"missing \['W1'\]"),
        (lambda a: a.pop("b0"), r"missing \['b0'\]"),
        (lambda a: a.update(W2=np.zeros((2, 2), np.float32)), r"unexpected \['W2'\]"),
        (lambda a: a.update(notes=np.zeros(1)), r"unexpected \['notes'\]"),
        (lambda a: a.update(W0=a["W0"].T.copy()), r"W0 has shape \(4, 3\)"),
        (lambda a: a.update(W0=a["W0"].reshape(2, 6)), r"W0 has shape \(2, 6\)"),
        (lambda a: a.update(b1=a["b1"][:, None]), r"b1 has shape \(2, 1\)"),
        (lambda a: a.update(b1=np.float32(1.0)), r"b1 has shape \(\)"),
        (lambda a: a.update(W1=a["W1"].astype(np.float64)), "W1 has dtype float64"),
        (lambda a: a.update(W1=a["W1"].astype(">f4")), "W1 has dtype >f4"),
        (lambda a: a.update(b0=a["b0"].astype(np.int32)), "b0 has dtype int32"),
        (lambda a: a["W0"].__setitem__((1, 2), np.nan), "W0 holds non-finite"),
        (lambda a: a["b1"].__setitem__(0, -np.inf), "b1 holds non-finite"),
    ],
)
def test_tampered_arrays(tmp_path, model, tamper, match):
    arrays = arrays_of(model)
    tamper(arrays)
    path = write_npz(tmp_path / "m.npz", header=encode(header_of(model)), **arrays)
    assert_refused(path, match)


def test_pickled_object_array_is_refused(tmp_path, model):
    arrays = arrays_of(model)
    arrays["W0"] = np.array([[object()] * 4] * 3, dtype=object)
    path = write_npz(tmp_path / "m.npz", header=encode(header_of(model)), **arrays)
    assert_refused(path, "W0 is a pickled object array")


def test_pickled_header_is_refused(tmp_path, model):
    header = np.array([header_of(model)], dtype=object)
    path = write_npz(tmp_path / "m.npz", header=header, **arrays_of(model))
    assert_refused(path, "header is a pickled object array")


def test_member_that_is_not_npy(tmp_path, model):
    path = write_npz(tmp_path / "m.npz", header=encode(header_of(model)), **arrays_of(model))
    # Replace W0 with raw bytes stored under the same member name.
    with zipfile.ZipFile(path) as src:
        members = {info.filename: src.read(info) for info in src.infolist()}
    members["W0.npy"] = b"just some bytes, not an npy header"
    with zipfile.ZipFile(path, "w") as dst:
        for member, data in members.items():
            dst.writestr(member, data)
    assert_refused(path, "W0 is not a .npy array")


def test_error_message_starts_with_the_file(saved, tmp_path):
    # Messages start with the file name, then say what is wrong.
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(ValueError) as info:
        io.load_model(path)
    assert re.match(re.escape(str(path)) + ": ", str(info.value))
    # The good file next to it is unaffected.
    assert io.load_model(saved).sizes == [3, 4, 2]


# --- only regular files are read ----------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_is_refused_without_blocking(tmp_path):
    # a FIFO given as the model blocked forever; the subprocess's timeout keeps
    # this test from hanging if it ever does again
    import subprocess
    import textwrap

    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    code = textwrap.dedent(f"""
        from dlfr import io
        try:
            io.load_model({str(fifo)!r})
        except ValueError as exc:
            print(type(exc).__name__, exc)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (os.path.dirname(os.path.dirname(io.__file__)), os.environ.get("PYTHONPATH"))
        if p))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ValueError ")
    assert f"{fifo} is a FIFO (named pipe); expected a regular file" in proc.stdout


def test_folder_is_refused(tmp_path):
    (tmp_path / "m.npz").mkdir()
    assert_refused(tmp_path / "m.npz", "is a folder; expected a regular file")
