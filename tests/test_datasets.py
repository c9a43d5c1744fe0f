"""Tests for dlfr.datasets: IDX parsing, the bundled MNIST digits, gates, one-hot."""

import gzip
import importlib.resources
import struct

import numpy as np
import pytest

from dlfr import datasets

MNIST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

# IDX type code -> big-endian dtype, written independently of the module's table.
IDX_CODES = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def idx_bytes(array, code):
    """Encode ``array`` as an IDX file with type ``code``."""
    array = np.asarray(array)
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(IDX_CODES[code]).tobytes()


def write(path, data, gz=False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def mnist_folder(folder, images, labels, *, gz=False, spelling="-"):
    """Write an MNIST-style pair of IDX files into ``folder``."""
    suffix = ".gz" if gz else ""
    write(folder / f"t10k-images{spelling}idx3-ubyte{suffix}", idx_bytes(images, 0x08), gz)
    write(folder / f"t10k-labels{spelling}idx1-ubyte{suffix}", idx_bytes(labels, 0x08), gz)
    return folder


def small_digits(n=5, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255  # the scale's end points
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


# --- the bundled digits -------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bundled_mnist(dtype):
    X, y = datasets.load_mnist(dtype=dtype)
    assert X.shape == (10000, 784)
    assert X.dtype == dtype
    assert X.flags.c_contiguous and X.flags.writeable
    assert X.min() == 0.0 and X.max() == 1.0
    assert y.shape == (10000,)
    assert y.dtype == np.int64
    assert np.bincount(y, minlength=10).tolist() == MNIST_COUNTS
    # The first test digits of MNIST are famous: 7, 2, 1, 0, 4.
    assert y[:5].tolist() == [7, 2, 1, 0, 4]


def test_bundled_mnist_pixels_are_bytes_over_255():
    X, _ = datasets.load_mnist(dtype="float64")
    assert np.array_equal(np.round(X * 255), X * 255)


def test_load_mnist_from_folder_matches_files(tmp_path):
    images, labels = small_digits()
    mnist_folder(tmp_path, images, labels)
    X, y = datasets.load_mnist(tmp_path)
    assert X.shape == (5, 784)
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X, images.reshape(5, 784).astype(np.float32) / 255)
    np.testing.assert_array_equal(y, labels)
    assert y.dtype == np.int64


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("spelling", ["-", "."])
def test_load_mnist_folder_spellings(tmp_path, gz, spelling):
    images, labels = small_digits(3)
    mnist_folder(tmp_path, images, labels, gz=gz, spelling=spelling)
    X, y = datasets.load_mnist(str(tmp_path))
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(X.reshape(3, 28, 28) * 255, images)


def test_load_mnist_kind(tmp_path):
    images, labels = small_digits(2)
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(images, 0x08))
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(labels, 0x08))
    X, y = datasets.load_mnist(tmp_path, kind="train")
    assert X.shape == (2, 784)
    np.testing.assert_array_equal(y, labels)


@pytest.mark.parametrize("dtype", ["float16", "int64", "complex128", "nonsense", None])
def test_load_mnist_refuses_dtype(dtype):
    with pytest.raises(ValueError, match="dtype"):
        datasets.load_mnist(dtype=dtype)


def test_load_mnist_only_t10k_is_bundled():
    with pytest.raises(ValueError, match="t10k"):
        datasets.load_mnist(kind="train")


def test_load_mnist_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        datasets.load_mnist(missing)


def test_load_mnist_missing_labels_names_what_was_looked_for(tmp_path):
    images, _ = small_digits(2)
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(images, 0x08))
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_count_mismatch_names_both_files(tmp_path):
    images, labels = small_digits(4)
    mnist_folder(tmp_path, images, labels[:3])
    with pytest.raises(ValueError, match="4 images.*t10k-labels-idx1-ubyte.*3 labels"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_label_out_of_range(tmp_path):
    images, labels = small_digits(4)
    labels[2] = 10
    mnist_folder(tmp_path, images, labels)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: label 10 at index 2"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_wrong_image_shape(tmp_path):
    mnist_folder(tmp_path, np.zeros((2, 14, 14), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte: expected uint8 images"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_wrong_label_type(tmp_path):
    images, _ = small_digits(2)
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(images, 0x08))
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.array([1, 2]), 0x0C))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: expected a 1-D uint8"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_truncated_gzip_names_file(tmp_path):
    images, labels = small_digits(3)
    mnist_folder(tmp_path, images, labels, gz=True)
    name = tmp_path / "t10k-images-idx3-ubyte.gz"
    name.write_bytes(name.read_bytes()[:-40])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz"):
        datasets.load_mnist(tmp_path)


# --- read_idx -----------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(IDX_CODES))
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, code, gz):
    rng = np.random.default_rng(code)
    native = np.dtype(IDX_CODES[code]).newbyteorder("=")
    if native.kind == "f":
        array = rng.standard_normal((3, 4, 5)).astype(native)
        array[0, 0, :2] = [np.inf, -0.0]
    else:
        info = np.iinfo(native)
        array = rng.integers(info.min, info.max, size=(3, 4, 5), endpoint=True).astype(native)
    path = write(tmp_path / "a.idx", idx_bytes(array, code), gz)
    result = datasets.read_idx(path)
    assert result.dtype == native
    assert result.dtype.isnative
    assert result.shape == (3, 4, 5)
    assert result.flags.writeable
    np.testing.assert_array_equal(result, array)


@pytest.mark.parametrize("shape", [(7,), (2, 3), (1, 2, 3, 4), (0, 5)])
def test_read_idx_shapes(tmp_path, shape):
    array = np.arange(int(np.prod(shape)), dtype=np.int16).reshape(shape)
    path = write(tmp_path / "s.idx", idx_bytes(array, 0x0B))
    np.testing.assert_array_equal(datasets.read_idx(str(path)), array)
    assert datasets.read_idx(path).shape == shape


def test_read_idx_real_mnist_labels():
    bundled = importlib.resources.files("dlfr") / "data" / "t10k-labels-idx1-ubyte.gz"
    labels = datasets.read_idx(bundled)
    assert labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == MNIST_COUNTS


GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4), 0x08)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "not an IDX file"),
        (b"\x00\x00", "not an IDX file"),
        (b"\x01\x00" + GOOD[2:], "bad magic"),
        (b"\x00\x07" + GOOD[2:], "bad magic"),
        (GOOD[:2] + b"\x0a" + GOOD[3:], "unknown IDX type code 0x0A"),
        (GOOD[:6], "truncated IDX header"),
        (GOOD[:-1], "truncated IDX data"),
        (GOOD + b"\x00", "1 trailing bytes"),
        (b"%PDF-1.4 not an idx file", "bad magic"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_corrupt_names_file(tmp_path, data, problem, gz):
    path = write(tmp_path / "broken-file.idx", data, gz)
    with pytest.raises(ValueError, match=problem) as info:
        datasets.read_idx(path)
    assert "broken-file.idx" in str(info.value)


@pytest.mark.parametrize("cut", [1, 10, 30])
def test_read_idx_truncated_gzip_is_value_error(tmp_path, cut):
    data = gzip.compress(idx_bytes(np.arange(100, dtype=np.int32), 0x0C))
    path = write(tmp_path / "cut.idx.gz", data[:-cut])
    with pytest.raises(ValueError, match="cut.idx.gz.*gzip"):
        datasets.read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.idx"):
        datasets.read_idx(tmp_path / "absent.idx")


# --- logic gates --------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_xor(dtype):
    X, y = datasets.xor(dtype=dtype)
    assert X.dtype == dtype
    np.testing.assert_array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    assert y.dtype == np.int64
    assert y.tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("and", [0, 0, 0, 1]),
        ("or", [0, 1, 1, 1]),
        ("xor", [0, 1, 1, 0]),
        ("nand", [1, 1, 1, 0]),
        ("AND", [0, 0, 0, 1]),
    ],
)
def test_logic_gate(name, table):
    X, y = datasets.logic_gate(name)
    a, b = X[:, 0].astype(bool), X[:, 1].astype(bool)
    assert y.tolist() == table
    # The table agrees with Python's own operators on the inputs.
    expected = {
        "and": a & b,
        "or": a | b,
        "xor": a ^ b,
        "nand": ~(a & b),
    }[name.lower()]
    assert y.tolist() == expected.astype(int).tolist()


def test_logic_gate_returns_fresh_arrays():
    X, y = datasets.logic_gate("and")
    X[:] = 5
    y[:] = 5
    X2, y2 = datasets.logic_gate("and")
    assert X2.max() == 1 and y2.tolist() == [0, 0, 0, 1]


@pytest.mark.parametrize("name", ["nor", "", "x or"])
def test_logic_gate_unknown(name):
    with pytest.raises(ValueError, match="unknown logic gate"):
        datasets.logic_gate(name)


def test_logic_gate_bad_dtype():
    with pytest.raises(ValueError, match="dtype"):
        datasets.logic_gate("or", dtype="int32")


# --- one_hot ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_hot_basic(dtype):
    result = datasets.one_hot([2, 0, 1, 2], dtype=dtype)
    assert result.dtype == dtype
    np.testing.assert_array_equal(result, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_one_hot_n_classes_and_round_trip():
    y = np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.uint8)
    result = datasets.one_hot(y, 10)
    assert result.shape == (8, 10)
    np.testing.assert_array_equal(result.argmax(axis=1), y)
    np.testing.assert_array_equal(result.sum(axis=1), 1)


def test_one_hot_default_is_max_plus_one():
    assert datasets.one_hot([0, 0]).shape == (2, 1)
    assert datasets.one_hot([4]).shape == (1, 5)


def test_one_hot_whole_floats_accepted():
    np.testing.assert_array_equal(datasets.one_hot(np.array([1.0, 0.0])), [[0, 1], [1, 0]])


def test_one_hot_empty():
    assert datasets.one_hot(np.array([], dtype=np.int64), 4).shape == (0, 4)
    with pytest.raises(ValueError, match="n_classes"):
        datasets.one_hot(np.array([], dtype=np.int64))


@pytest.mark.parametrize(
    ("y", "n_classes", "match"),
    [
        ([0, -1], None, r"y holds label -1, below 0 \(at y\[1\]\)"),
        ([0, 3], 3, r"y holds label 3, outside 0\.\.2 for n_classes=3 \(at y\[1\]\)"),
        ([0.0, 1.5], None, r"y holds labels that are not whole numbers \(y\[1\] = 1.5\)"),
        ([np.nan], None, r"not whole numbers \(y\[0\] = nan\)"),
        ([np.inf], None, r"not whole numbers \(y\[0\] = inf\)"),
        ([[0, 1]], None, r"y must be 1-D.*\(1, 2\)"),
        (5, None, r"y must be 1-D.*\(\)"),
        ([0, 1], 0, "n_classes must be a positive integer"),
        ([0, 1], 2.0, "n_classes must be a positive integer"),
        ([0, 1], True, "n_classes must be a positive integer"),
    ],
)
def test_one_hot_value_errors(y, n_classes, match):
    with pytest.raises(ValueError, match=match):
        datasets.one_hot(y, n_classes)


@pytest.mark.parametrize(
    ("y", "dtype_name"),
    [
        (np.array([True, False]), "bool"),
        (np.array([1 + 0j]), "complex128"),
        (np.array([1], dtype=object), "object"),
        (np.array(["1"]), "<U1"),
    ],
)
def test_one_hot_type_errors(y, dtype_name):
    with pytest.raises(TypeError, match=dtype_name):
        datasets.one_hot(y)


def test_one_hot_huge_unsigned_label():
    with pytest.raises(ValueError, match=r"label 9223372036854775809, outside 0\.\.9"):
        datasets.one_hot(np.array([2**63 + 1], dtype=np.uint64), 10)
