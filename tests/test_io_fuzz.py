"""Corrupt model files: every one is refused with ValueError naming the file, or loads intact.

The mutants change the zip structure itself (central directory, local headers,
end record: compression method, flags, sizes, offsets, names, so duplicate
entries too), truncate or splice the bytes, and rebuild archives whose
members are compressed, duplicated or carry hostile .npy or JSON headers
(nested brackets, huge integers, huge declared shapes). Seeded, a few
thousand mutants in a few seconds.
"""

from __future__ import annotations

import json
import random
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dlfr import io

SIZES = (3, 4, 2)
N_MUTANTS = 3000

# (offset, struct format) of the fields of a central directory entry (PK\1\2),
# a local file header (PK\3\4) and the end of central directory record (PK\5\6)
CD_FIELDS = [(4, "H"), (6, "H"), (8, "H"), (10, "H"), (16, "I"), (20, "I"), (24, "I"),
             (28, "H"), (30, "H"), (32, "H"), (34, "H"), (38, "I"), (42, "I")]
LOCAL_FIELDS = [(4, "H"), (6, "H"), (8, "H"), (14, "I"), (18, "I"), (22, "I"), (26, "H"),
                (28, "H")]
EOCD_FIELDS = [(4, "H"), (6, "H"), (8, "H"), (10, "H"), (12, "I"), (16, "I"), (20, "H")]
METHODS = [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]


def model_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=False)):
        arrays[f"W{i}"] = rng.standard_normal((n_in, n_out)).astype(np.float32)
        arrays[f"b{i}"] = rng.standard_normal(n_out).astype(np.float32)
    return arrays


ARRAYS = model_arrays()
HEADER = {"format": "dlfr-model", "format_version": 1, "sizes": list(SIZES),
          "activations": ["sigmoid"] * (len(SIZES) - 1), "dtype": "float32"}


def npy_bytes(array: np.ndarray) -> bytes:
    f = __import__("io").BytesIO()
    np.save(f, array, allow_pickle=False)
    return f.getvalue()


def npy_with_header(header: str, data: bytes = b"") -> bytes:
    """An .npy file (version 1.0) with the given header text, unchecked."""
    text = header.encode("latin1")
    pad = (64 - (10 + len(text) + 1) % 64) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def header_member(header: object) -> bytes:
    text = header if isinstance(header, str) else json.dumps(header)
    return npy_bytes(np.frombuffer(text.encode("utf-8"), dtype=np.uint8))


def members() -> list[tuple[str, bytes]]:
    out = [(f"{k}.npy", npy_bytes(v)) for k, v in ARRAYS.items()]
    return out + [("header.npy", header_member(HEADER))]


def archive(entries: list[tuple[str, bytes]], methods: dict[str, int] | None = None) -> bytes:
    f = __import__("io").BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(f, "w") as zf:
            for name, data in entries:
                zf.writestr(name, data, compress_type=(methods or {}).get(name, 0))
    return f.getvalue()


def offsets(data: bytes, signature: bytes) -> list[int]:
    found, start = [], 0
    while (i := data.find(signature, start)) >= 0:
        found.append(i)
        start = i + 1
    return found


def set_field(data: bytearray, at: int, fmt: str, rng: random.Random) -> None:
    width = struct.calcsize("<" + fmt)
    if at + width > len(data):
        return
    old = struct.unpack_from("<" + fmt, data, at)[0]
    top = (1 << (8 * width)) - 1
    value = rng.choice([0, 1, 2, 8, 12, 14, 93, 99, old + 1, old - 1, old * 2, top, top - 1,
                        rng.randrange(top + 1)])
    struct.pack_into("<" + fmt, data, at, value & top)


def hostile_npy_headers() -> list[bytes]:
    def f4(shape: str, descr: str = "'<f4'", fortran: str = "False") -> bytes:
        return npy_with_header(f"{{'descr': {descr}, 'fortran_order': {fortran}, "
                               f"'shape': {shape}, }}")

    return [
        f4("(1000000, 1000000)"),
        f4("(10000000, 784)"),
        f4(f"({'9' * 5000},)"),
        f4("(-3, 4)"),
        f4("(3, 4)"),  # no data
        f4("(3, 4)", fortran="2"),
        f4("(3, 4)", descr="'O'"),
        f4("(3, 4)", descr="'x9'"),
        npy_with_header("[" * 9000),
        npy_with_header("(" * 5000 + ")" * 5000),
        npy_with_header("{" + "'a': 1, " * 1200 + "}"),
        b"\x93NUMPY\x03\x00" + b"\x00" * 40,
        b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{",
        b"\x93NUMPY\x01\x00\xff\xff{",
        b"\x93NUMPY",
        b"",
    ]


def hostile_json_headers() -> list[bytes]:
    return [
        header_member("[" * 100_000),
        header_member("{" * 50_000),
        header_member('{"format": "dlfr-model", "format_version": ' + "9" * 5000 + "}"),
        header_member(json.dumps(HEADER).replace("[3, 4, 2]", "[3, 4, " + "7" * 5000 + "]")),
        header_member(dict(HEADER, sizes=[10**30, 4, 2])),
        header_member(dict(HEADER, sizes=[1] * 5000, activations=["sigmoid"] * 4999)),
        header_member("1e999999"),
        header_member('"\\ud800"'),
        npy_bytes(np.frombuffer(b"\xff\xfe{}", dtype=np.uint8)),
    ]


HOSTILE_NPY = hostile_npy_headers()
HOSTILE_JSON = hostile_json_headers()


def structured_mutant(rng: random.Random) -> bytes:
    """A rebuilt archive: compressed, duplicated, renamed or hostile members."""
    entries = members()
    kind = rng.randrange(6)
    if kind == 0:  # one member compressed
        name = rng.choice(entries)[0]
        return archive(entries, {name: rng.choice(METHODS)})
    if kind == 1:  # a duplicate entry, first or last
        dup = rng.choice(entries)
        replacement = (dup[0], npy_bytes(np.zeros_like(ARRAYS.get(dup[0][:-4], np.zeros(1)))))
        entries.insert(rng.randrange(len(entries) + 1), replacement)
        return archive(entries)
    if kind == 2:  # a member replaced by a hostile .npy
        i = rng.randrange(len(entries))
        entries[i] = (entries[i][0], rng.choice(HOSTILE_NPY))
        return archive(entries)
    if kind == 3:  # a hostile JSON header
        entries[-1] = ("header.npy", rng.choice(HOSTILE_JSON))
        return archive(entries)
    if kind == 4:  # a member renamed (a name without .npy, a clash, an empty name)
        i = rng.randrange(len(entries))
        entries[i] = (rng.choice(["W0", "W0.npy", "header", "b1.npy", "x/../W0.npy", "Ω.npy"]),
                      entries[i][1])
        return archive(entries)
    # an extra, empty member or the whole archive empty
    return archive(entries + [("extra.npy", b"")]) if rng.random() < 0.5 else archive([])


def byte_mutant(base: bytes, rng: random.Random) -> bytes:
    """A field of the zip structure changed, or the bytes truncated, flipped or spliced."""
    data = bytearray(base)
    kind = rng.randrange(7)
    if kind == 0:
        at = rng.choice(offsets(base, b"PK\x01\x02"))
        off, fmt = rng.choice(CD_FIELDS)
        set_field(data, at + off, fmt, rng)
    elif kind == 1:
        at = rng.choice(offsets(base, b"PK\x03\x04"))
        off, fmt = rng.choice(LOCAL_FIELDS)
        set_field(data, at + off, fmt, rng)
    elif kind == 2:
        at = offsets(base, b"PK\x05\x06")[-1]
        off, fmt = rng.choice(EOCD_FIELDS)
        set_field(data, at + off, fmt, rng)
    elif kind == 3:  # a name in the central directory or a local header: "W0" -> "W1", ...
        at = rng.choice(offsets(base, b"PK\x01\x02") + offsets(base, b"PK\x03\x04"))
        start = at + (46 if data[at + 2] == 1 else 30)
        data[start + rng.randrange(2)] = rng.choice(b"Wbh01x.\x00\xff")
    elif kind == 4:
        del data[rng.randrange(len(data)):]
    elif kind == 5:
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    else:
        at = rng.randrange(len(data))
        if rng.random() < 0.5:
            del data[at:at + rng.randrange(1, 64)]
        else:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    return bytes(data)


def check(path: Path) -> str:
    """Refused with exactly ValueError naming the file, or loaded unchanged."""
    try:
        model = io.load_model(path)
    except ValueError as exc:
        assert type(exc) is ValueError, repr(exc)
        assert str(path) in str(exc), str(exc)
        return "refused"
    assert model.sizes == list(SIZES)
    for i in range(len(SIZES) - 1):
        assert model.weights[i].tobytes() == ARRAYS[f"W{i}"].tobytes()
        assert model.biases[i].tobytes() == ARRAYS[f"b{i}"].tobytes()
    return "loaded"


def test_base_archive_loads(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    path.write_bytes(archive(members()))
    assert check(path) == "loaded"


def test_fuzz_model_files(tmp_path: Path) -> None:
    rng = random.Random(20261130)
    base = archive(members())
    path = tmp_path / "mutant.npz"
    outcomes = {"refused": 0, "loaded": 0}
    for n in range(N_MUTANTS):
        data = structured_mutant(rng) if n % 3 == 0 else byte_mutant(base, rng)
        path.unlink(missing_ok=True)  # a new file is much faster to write than a truncated one
        path.write_bytes(data)
        try:
            outcomes[check(path)] += 1
        except BaseException as exc:
            (tmp_path / f"failing-{n}.npz").write_bytes(data)
            raise AssertionError(f"mutant {n} (kept as failing-{n}.npz): {exc!r}") from exc
    assert outcomes["refused"] > N_MUTANTS // 2, outcomes


@pytest.mark.parametrize("method", METHODS)
def test_compressed_member_is_refused(tmp_path: Path, method: int) -> None:
    path = tmp_path / "m.npz"
    path.write_bytes(archive(members(), {"W0.npy": method}))
    with pytest.raises(ValueError, match=r"m\.npz: member 'W0\.npy' is compressed") as info:
        io.load_model(path)
    assert type(info.value) is ValueError


def test_compressed_model_is_refused_before_it_inflates(tmp_path: Path) -> None:
    # a 0.97 MB deflated model reached 2.0 GB of memory on load
    f = __import__("io").BytesIO()
    np.save(f, np.zeros((4096, 4096), np.float32))  # 64 MB, deflated to 65 kB
    entries = members()
    entries[0] = ("W0.npy", f.getvalue())
    path = tmp_path / "bomb.npz"
    path.write_bytes(archive(entries, {"W0.npy": zipfile.ZIP_DEFLATED}))
    assert path.stat().st_size < 200_000
    with pytest.raises(ValueError, match="compressed"):
        io.load_model(path)


@pytest.mark.parametrize("where", ["first", "last"])
def test_duplicate_entry_is_refused(tmp_path: Path, where: str) -> None:
    entries = members()
    other = ("W0.npy", npy_bytes(np.zeros((3, 4), np.float32)))
    entries.insert(0 if where == "first" else len(entries), other)
    path = tmp_path / "m.npz"
    path.write_bytes(archive(entries))
    with pytest.raises(ValueError, match=r"m\.npz: the archive holds 'W0' more than once"):
        io.load_model(path)


def _patch_central(data: bytes, member: bytes, offset: int, value: int) -> bytes:
    out = bytearray(data)
    for at in offsets(data, b"PK\x01\x02"):
        if out[at + 46:at + 46 + len(member)] == member:
            struct.pack_into("<H", out, at + offset, value)
    return bytes(out)


@pytest.mark.parametrize(
    ("offset", "value", "match"),
    [(10, 99, "is compressed"), (10, 8, "is compressed"), (8, 1, "is encrypted")],
)
def test_central_directory_method_and_flags(tmp_path: Path, offset: int, value: int,
                                            match: str) -> None:
    # NotImplementedError and RuntimeError from zipfile before
    path = tmp_path / "m.npz"
    path.write_bytes(_patch_central(archive(members()), b"W0.npy", offset, value))
    with pytest.raises(ValueError, match=match) as info:
        io.load_model(path)
    assert type(info.value) is ValueError and str(path) in str(info.value)


@pytest.mark.parametrize("content", hostile_json_headers()[:4], ids=["brackets", "braces",
                                                                     "bigint", "bigsize"])
def test_hostile_json_header(tmp_path: Path, content: bytes) -> None:
    # RecursionError, and a ValueError that did not name the file, before
    entries = members()
    entries[-1] = ("header.npy", content)
    path = tmp_path / "m.npz"
    path.write_bytes(archive(entries))
    with pytest.raises(ValueError, match=r"m\.npz: header") as info:
        io.load_model(path)
    assert type(info.value) is ValueError


def test_huge_declared_shape_is_refused_without_allocating(tmp_path: Path) -> None:
    # MemoryError before: a member declaring (10**6, 10**6) float32, 4 TB
    entries = members()
    entries[0] = ("W0.npy", hostile_npy_headers()[0])
    path = tmp_path / "m.npz"
    path.write_bytes(archive(entries))
    with pytest.raises(ValueError, match=r"m\.npz: W0 is an array declaring shape "
                                         r"\(1000000, 1000000\)") as info:
        io.load_model(path)
    assert type(info.value) is ValueError
