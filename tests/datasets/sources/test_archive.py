"""Archive planning and extraction on zip and tar files built here, hostile ones included."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import stat
import struct
import tarfile
import time
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import pytest

from datasets.errors import FileRejected, InvalidImport
from datasets.sources.archive import ArchiveReader, archive_kind, archive_plan, extract_member
from datasets.sources.types import ImportLimits, Rejection, SourceEntry
from tests.datasets.images import image_bytes

MB = 1_000_000
PNG = image_bytes(8, 8)


def limits(**overrides: int) -> ImportLimits:
    return ImportLimits(**overrides)  # type: ignore[arg-type]


# --- building archives ------------------------------------------------------------------


def zip_bytes(members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name" is what we want
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in members:
                archive.writestr(name, data)
    return buffer.getvalue()


def patch_zip(data: bytes, name: bytes, *, size: int | None = None, flags: int = 0) -> bytes:
    """Rewrite a member's declared uncompressed size and/or OR bits into its flags, in
    both its central directory entry and its local header (APPNOTE 4.3.7, 4.3.12)."""
    out = bytearray(data)
    start = 0
    while (start := out.find(b"PK\x01\x02", start)) != -1:
        name_len = struct.unpack_from("<H", out, start + 28)[0]
        if bytes(out[start + 46 : start + 46 + name_len]) == name:
            local = struct.unpack_from("<I", out, start + 42)[0]
            for header, flag_at, size_at in ((start, 8, 24), (local, 6, 22)):
                old_flags = struct.unpack_from("<H", out, header + flag_at)[0]
                struct.pack_into("<H", out, header + flag_at, old_flags | flags)
                if size is not None:
                    struct.pack_into("<I", out, header + size_at, size)
            return bytes(out)
        start += 4
    raise AssertionError(f"no member {name!r}")


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def tar_member(name: str, data: bytes = b"", **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def tar_bytes(
    members: list[tuple[tarfile.TarInfo, bytes]],
    *,
    compression: str = "",
    fmt: int = tarfile.PAX_FORMAT,
) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}", format=fmt) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def entries(planned: list[object]) -> dict[str, str]:
    return {p.name: p.ref for p in planned if isinstance(p, SourceEntry)}


def rejections(planned: list[object]) -> dict[str, str]:
    return {p.name: p.reason for p in planned if isinstance(p, Rejection)}


# --- format detection -------------------------------------------------------------------


def test_format_comes_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    plain_tar = tar_bytes([tar_member("a.txt", b"hello")])
    assert archive_kind(write(tmp_path / "upload.tar", zip_bytes([("a.txt", b"x")]))) == "zip"
    assert archive_kind(write(tmp_path / "upload.zip", plain_tar)) == "tar"
    assert archive_kind(write(tmp_path / "a.bin", gzip.compress(plain_tar))) == "tar.gz"
    assert archive_kind(write(tmp_path / "b.bin", bz2.compress(plain_tar))) == "tar.bz2"
    assert archive_kind(write(tmp_path / "c.bin", lzma.compress(plain_tar))) == "tar.xz"
    assert archive_kind(write(tmp_path / "d.tgz", gzip.compress(b"just text " * 100))) is None
    assert archive_kind(write(tmp_path / "e.zip", b"not an archive at all")) is None
    v7 = tar_bytes([tar_member("old.txt", b"v7")], fmt=tarfile.USTAR_FORMAT)
    v7 = v7[:257] + b"\0" * 8 + v7[265:]  # no ustar magic: a checksum test decides
    header = bytearray(v7[:512])
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    assert archive_kind(write(tmp_path / "v7", bytes(header) + v7[512:])) == "tar"


def test_not_an_archive_is_an_invalid_import(tmp_path: Path) -> None:
    path = write(tmp_path / "photo.zip", PNG)
    with pytest.raises(InvalidImport, match="not a zip or tar archive"):
        list(archive_plan(path, limits=limits()))


# --- zip --------------------------------------------------------------------------------


def test_zip_plan_refuses_what_it_must_and_keeps_the_rest(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("images/link.png")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    fifo = zipfile.ZipInfo("images/pipe")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    data = zip_bytes(
        [
            ("images/", b""),
            ("images/a.png", PNG),
            ("./images//b.png", PNG),
            ("images\\c.png", PNG),
            ("__MACOSX/images/._a.png", b"fork"),
            ("images/.DS_Store", b"finder"),
            ("images/._b.png", b"fork"),
            ("../evil.txt", b"x"),
            ("/etc/passwd.txt", b"x"),
            ("C:/Windows/win.ini", b"x"),
            ("images/a.png", b"second copy"),
            ("nested/inner.zip", zip_bytes([("x.png", PNG)])),
            ("nested/inner.tgz", gzip.compress(tar_bytes([tar_member("x", b"x")]))),
            ("nested/inner.bin", tar_bytes([tar_member("x", b"x")])),
            (link, b"/etc/passwd"),
            (fifo, b""),
            ("cafX.txt", b"latin-1 name"),
            ("XXXXXX.txt", b"unflagged utf-8 name"),
            ("secret.txt", b"encrypted"),
            ("\u05e9\u05dc\u05d5\u05dd/\u0645\u0631\u062d\u0628\u0627.txt", b"rtl"),
        ]
    )
    data = data.replace(b"cafX.txt", b"caf\xe9.txt")  # CP1252 bytes, no UTF-8 flag
    data = data.replace(b"XXXXXX.txt", "日本.txt".encode())  # UTF-8 bytes, no flag
    data = patch_zip(data, b"secret.txt", flags=0x1)
    planned = list(archive_plan(write(tmp_path / "up.zip", data), limits=limits()))
    assert entries(planned) == {
        "images/a.png": "images/a.png",
        "images/b.png": "./images//b.png",
        "images/c.png": "images\\c.png",
        "日本.txt": "日本.txt".encode().decode("cp437"),
        "שלום/مرحبا.txt": "שלום/مرحبا.txt",
    }
    assert rejections(planned) == {
        "../evil.txt": "path escapes the archive (..)",
        "/etc/passwd.txt": "absolute path not allowed",
        "C:/Windows/win.ini": "path with a drive letter not allowed",
        "images/a.png": "duplicate of an earlier member with the same name",
        "nested/inner.zip": "nested archive not expanded (zip)",
        "nested/inner.tgz": "nested archive not expanded (gzip)",
        "nested/inner.bin": "nested archive not expanded (tar)",
        "images/link.png": "symbolic link not allowed",
        "images/pipe": "not a regular file (device, FIFO or socket)",
        "caf\\xe9.txt": "name is not valid UTF-8",
        "secret.txt": "encrypted member not supported",
    }
    # Order is archive order.
    assert [p.name for p in planned][:3] == ["images/a.png", "images/b.png", "images/c.png"]
    # Every planned ref extracts to the member's bytes (the first of repeated names).
    with ArchiveReader(tmp_path / "up.zip", limits=limits()) as reader:
        for name, ref in entries(planned).items():
            dest = tmp_path / "out"
            reader.extract(ref, dest)
            if name.endswith(".png"):
                assert dest.read_bytes() == PNG


def test_zip_name_flagged_utf8_but_invalid_makes_the_archive_unreadable(tmp_path: Path) -> None:
    data = zip_bytes([("caf\u00e9.txt", b"x")]).replace("é".encode(), b"\xe9\xff")
    with pytest.raises(InvalidImport, match="flagged as UTF-8 is not valid UTF-8"):
        list(archive_plan(write(tmp_path / "bad.zip", data), limits=limits()))


def test_zip_caps_are_checked_before_anything_is_yielded(tmp_path: Path) -> None:
    path = write(tmp_path / "many.zip", zip_bytes([(f"{i}.txt", b"abc") for i in range(5)]))
    with pytest.raises(InvalidImport, match=r"more than 4 files \(IMPORT_ARCHIVE_MAX_FILES\)"):
        next(archive_plan(path, limits=limits(archive_max_files=4)))
    with pytest.raises(InvalidImport, match=r"more than 0\.0 MB \(IMPORT_ARCHIVE_MAX_BYTES\)"):
        next(archive_plan(path, limits=limits(archive_max_bytes=14)))
    assert (
        len(list(archive_plan(path, limits=limits(archive_max_files=5, archive_max_bytes=15)))) == 5
    )


def test_zip_bomb_with_lying_header_is_rejected(tmp_path: Path) -> None:
    # 50 MB of zeros deflate to ~50 KB; the headers then claim far less. zipfile stops at
    # the declared size, where the CRC no longer matches.
    bomb = zip_bytes([("bomb.txt", bytes(50 * MB))])
    tiny = write(tmp_path / "tiny.zip", patch_zip(bomb, b"bomb.txt", size=1000))
    # Planning peeks at the first bytes, which here is the whole declared member.
    assert list(archive_plan(tiny, limits=limits(max_file_bytes=MB))) == [
        Rejection("bomb.txt", "corrupt member: Bad CRC-32 for file 'bomb.txt'")
    ]
    small = write(tmp_path / "small.zip", patch_zip(bomb, b"bomb.txt", size=200_000))
    planned = list(archive_plan(small, limits=limits(max_file_bytes=MB)))
    assert planned == [SourceEntry(name="bomb.txt", ref="bomb.txt")]  # the header looks fine
    dest = tmp_path / "out"
    started = time.monotonic()
    with pytest.raises(FileRejected, match="corrupt member: Bad CRC-32"):
        extract_member(small, "bomb.txt", dest, limits(max_file_bytes=MB))
    assert time.monotonic() - started < 1.0  # stopped at the declared size
    assert not dest.exists()


def test_compressible_member_over_the_limit_stops_while_decompressing(tmp_path: Path) -> None:
    path = write(
        tmp_path / "big.zip", zip_bytes([("zeros.txt", bytes(50 * MB)), ("ok.txt", b"ok")])
    )
    small = limits(max_file_bytes=MB)
    planned = list(archive_plan(path, limits=small))
    assert planned[0] == Rejection(
        "zeros.txt", "file is 50.0 MB, over the per-file limit of 1.0 MB"
    )
    assert planned[1] == SourceEntry(name="ok.txt", ref="ok.txt")
    dest = tmp_path / "out"
    tracemalloc.start()
    try:
        with pytest.raises(FileRejected, match=r"over the per-file limit of 1\.0 MB"):
            extract_member(path, "zeros.txt", dest, small)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MB  # a few chunks, never the member
    assert not dest.exists()


def test_extract_refuses_unknown_members(tmp_path: Path) -> None:
    path = write(tmp_path / "a.zip", zip_bytes([("dir/", b""), ("a.txt", b"a")]))
    with pytest.raises(FileRejected, match="no file 'missing.txt' in the archive"):
        extract_member(path, "missing.txt", tmp_path / "o", limits())
    with pytest.raises(FileRejected, match="no file 'dir/'"):
        extract_member(path, "dir/", tmp_path / "o", limits())


# --- tar --------------------------------------------------------------------------------


def hostile_tar(compression: str) -> bytes:
    return tar_bytes(
        [
            tar_member("data", type=tarfile.DIRTYPE),
            tar_member("data/a.txt", b"alpha"),
            tar_member("./data/b.txt", b"beta"),
            tar_member("data/link", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
            tar_member("data/hard", type=tarfile.LNKTYPE, linkname="data/a.txt"),
            tar_member("../evil", b"evil"),
            tar_member("data/../../evil2", b"evil"),
            tar_member("/abs/file.txt", b"abs"),
            tar_member("dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
            tar_member("data/fifo", type=tarfile.FIFOTYPE),
            tar_member("data/inner.zip", zip_bytes([("x.png", PNG)])),
            tar_member("data/._a.txt", b"fork"),
            tar_member("data/.DS_Store", b"finder"),
            tar_member("data/c.txt", b"gamma"),
        ],
        compression=compression,
    )


@pytest.mark.parametrize("compression", ["", "gz", "bz2", "xz"])
def test_tar_plan_refuses_links_escapes_devices_and_nested_archives(
    tmp_path: Path, compression: str
) -> None:
    path = write(tmp_path / "upload.bin", hostile_tar(compression))
    planned = list(archive_plan(path, limits=limits()))
    assert [p.name for p in planned if isinstance(p, SourceEntry)] == [
        "data/a.txt",
        "data/b.txt",
        "data/c.txt",
    ]
    assert rejections(planned) == {
        "data/link": "symbolic link not allowed",
        "data/hard": "hard link not allowed",
        "../evil": "path escapes the archive (..)",
        "data/../../evil2": "path escapes the archive (..)",
        "/abs/file.txt": "absolute path not allowed",
        "dev/null": "device file not allowed",
        "data/fifo": "FIFO not allowed",
        "data/inner.zip": "nested archive not expanded (zip)",
    }
    with ArchiveReader(path, limits=limits()) as reader:
        # In archive order (one pass), then out of order (the scan restarts).
        for ref, body in (
            ("data/a.txt", b"alpha"),
            ("./data/b.txt", b"beta"),
            ("data/c.txt", b"gamma"),
            ("data/a.txt", b"alpha"),
        ):
            reader.extract(ref, tmp_path / "out")
            assert (tmp_path / "out").read_bytes() == body
        with pytest.raises(FileRejected, match="symbolic link not allowed"):
            reader.extract("data/link", tmp_path / "out")
        with pytest.raises(FileRejected, match="nested archive not expanded"):
            reader.extract("data/inner.zip", tmp_path / "out")
        assert not (tmp_path / "out").exists()
        with pytest.raises(FileRejected, match="no file 'nope'"):
            reader.extract("nope", tmp_path / "out")


def test_tar_name_that_is_not_utf8(tmp_path: Path) -> None:
    data = tar_bytes(
        [tar_member("caf\udce9.txt", b"x"), tar_member("ok.txt", b"y")], fmt=tarfile.GNU_FORMAT
    )
    planned = list(archive_plan(write(tmp_path / "t.tar", data), limits=limits()))
    assert planned == [
        Rejection("caf\\xe9.txt", "name is not valid UTF-8"),
        SourceEntry(name="ok.txt", ref="ok.txt"),
    ]


def test_tar_caps_stop_planning(tmp_path: Path) -> None:
    data = tar_bytes([tar_member(f"{i}.txt", b"abcd") for i in range(6)], compression="gz")
    path = write(tmp_path / "t.tgz", data)
    with pytest.raises(InvalidImport, match=r"more than 5 files \(IMPORT_ARCHIVE_MAX_FILES\)"):
        list(archive_plan(path, limits=limits(archive_max_files=5)))
    with pytest.raises(InvalidImport, match=r"IMPORT_ARCHIVE_MAX_BYTES"):
        list(archive_plan(path, limits=limits(archive_max_bytes=23)))


def test_tar_member_over_the_limit(tmp_path: Path) -> None:
    data = tar_bytes(
        [tar_member("zeros.bin", bytes(5 * MB)), tar_member("ok", b"ok")], compression="gz"
    )
    path = write(tmp_path / "t.tgz", data)
    small = limits(max_file_bytes=MB)
    planned = list(archive_plan(path, limits=small))
    assert planned[0] == Rejection("zeros.bin", "file is 5.0 MB, over the per-file limit of 1.0 MB")
    with pytest.raises(FileRejected, match="over the per-file limit"):
        extract_member(path, "zeros.bin", tmp_path / "o", small)
    assert not (tmp_path / "o").exists()


def test_truncated_tar_is_an_invalid_import(tmp_path: Path) -> None:
    data = tar_bytes(
        [tar_member("a.bin", bytes(range(256)) * 400), tar_member("b.bin", b"b" * 9000)]
    )
    path = write(tmp_path / "cut.tar", data[:-12000])
    with pytest.raises(InvalidImport, match="corrupt or truncated"):
        list(archive_plan(path, limits=limits()))
