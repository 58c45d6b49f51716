"""DeterministicZip: a streaming zip writer whose bytes depend only on what is written and
whose memory does not grow with the number of entries. Read back with zipfile and with
Info-ZIP's `unzip -t` (or `python -m zipfile -t` where unzip is missing)."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
import zipfile
from pathlib import Path
from typing import IO

import pytest

from datasets.formats import base
from datasets.formats.base import ZIP_EPOCH, DeterministicZip

# 5 MB of text-like bytes that deflate to something (not all zeros), made in pieces.
PIECE = b"".join(b'{"id":%d,"name":"item %d"}\n' % (n, n * 7919 % 10007) for n in range(2_000))


def _sample(out: IO[bytes] | None = None) -> bytes:
    """Write the EXPECTED entries (to `out`, else to memory); return the bytes in memory."""
    memory = io.BytesIO()
    zf = DeterministicZip(out or memory)
    zf.write("labels/a.txt", b"0 0.5 0.5 0.25 0.25\n" * 20)
    zf.write("images/photo.jpg", b"\xff\xd8\xff" + bytes(range(256)) * 4, compress=False)
    zf.write("empty.txt", b"")
    zf.write("labels/vélo/čaj 東京.txt", "ünïcødé\n".encode())
    with zf.open("data.jsonl") as stream:
        for _ in range(100):
            stream.write(PIECE)
    with zf.open("stored.bin", compress=False) as stream:
        stream.write(b"abc")
        stream.write(b"")
        stream.write(b"def")
    with zf.open("empty-stream.jsonl"):
        pass
    zf.write(base.LOCK_NAME, b"{}\n")
    zf.close()
    return memory.getvalue()


EXPECTED = {
    "labels/a.txt": b"0 0.5 0.5 0.25 0.25\n" * 20,
    "images/photo.jpg": b"\xff\xd8\xff" + bytes(range(256)) * 4,
    "empty.txt": b"",
    "labels/vélo/čaj 東京.txt": "ünïcødé\n".encode(),
    "data.jsonl": PIECE * 100,
    "stored.bin": b"abcdef",
    "empty-stream.jsonl": b"",
    base.LOCK_NAME: b"{}\n",
}


def _unzip_test(path: Path) -> str:
    """`unzip -t` when installed, else zipfile's own test; fails the test on an error."""
    if shutil.which("unzip"):
        argv = ["unzip", "-t", str(path)]
    else:
        argv = [sys.executable, "-m", "zipfile", "-t", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_every_entry_reads_back_byte_exact_with_fixed_metadata() -> None:
    data = _sample()

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == list(EXPECTED)  # written order
        assert {i.filename: zf.read(i) for i in infos} == EXPECTED
        assert zf.testzip() is None
    by_name = {i.filename: i for i in infos}
    for info in infos:
        assert info.date_time == ZIP_EPOCH
        assert info.external_attr >> 16 == 0o100644
        assert info.create_system == 3
    assert by_name["images/photo.jpg"].compress_type == zipfile.ZIP_STORED
    assert by_name["stored.bin"].compress_type == zipfile.ZIP_STORED
    assert by_name["labels/a.txt"].compress_type == zipfile.ZIP_DEFLATED
    data_info = by_name["data.jsonl"]
    assert data_info.compress_type == zipfile.ZIP_DEFLATED
    assert data_info.compress_size < data_info.file_size / 5  # it was deflated
    # UTF-8 flag (bit 11) on the non-ASCII name only.
    assert by_name["labels/vélo/čaj 東京.txt"].flag_bits & 0x800
    assert not by_name["labels/a.txt"].flag_bits & 0x800


def test_unzip_accepts_it(tmp_path: Path) -> None:
    path = tmp_path / "sample.zip"
    path.write_bytes(_sample())

    report = _unzip_test(path)

    assert "data.jsonl" in report and "stored.bin" in report


def test_same_writes_give_the_same_bytes() -> None:
    first, second = _sample(), _sample()

    assert first == second
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


def test_writes_to_a_file_that_does_not_start_at_offset_zero(tmp_path: Path) -> None:
    # Offsets in a zip are file positions: a zip written after a prefix still reads.
    path = tmp_path / "prefixed.zip"
    with open(path, "wb") as out:
        out.write(b"#!prefix\n")
        _sample(out)

    with zipfile.ZipFile(path) as zf:
        assert zf.read("data.jsonl") == EXPECTED["data.jsonl"]


def test_duplicate_names_and_interleaved_entries_are_refused() -> None:
    zf = DeterministicZip(io.BytesIO())
    zf.write("a.txt", b"1")
    with pytest.raises(ValueError, match="'a.txt' written twice"):
        zf.write("a.txt", b"2")
    with pytest.raises(ValueError, match="written twice"):
        zf.open("a.txt")
    stream = zf.open("b.jsonl")
    with pytest.raises(ValueError, match="'b.jsonl' is still open"):
        zf.write("c.txt", b"3")
    stream.close()
    with pytest.raises(ValueError, match="'b.jsonl' written twice"):
        zf.write("b.jsonl", b"")
    with pytest.raises(ValueError, match="empty"):
        zf.write("", b"")
    zf.close()
    with pytest.raises(ValueError, match="closed"):
        zf.write("d.txt", b"")


def test_close_finishes_an_entry_left_open_and_is_idempotent() -> None:
    out = io.BytesIO()
    zf = DeterministicZip(out)
    stream = zf.open("data.jsonl")
    stream.write(b"line\n")
    zf.close()
    zf.close()

    with zipfile.ZipFile(out) as reader:
        assert reader.read("data.jsonl") == b"line\n"


def test_70000_entries_use_the_zip64_end_record_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    count = 70_000  # past the 65,535 entries the classic end record can count
    with open(path, "wb") as out:
        zf = DeterministicZip(out)
        for n in range(count):
            zf.write(f"labels/train/img_{n:06d}.txt", b"%d 0.5 0.5 0.1 0.1\n" % (n % 5))
        zf.write(base.LOCK_NAME, b"{}\n")
        zf.close()

    data = path.read_bytes()
    assert b"PK\x06\x06" in data[-200:] and b"PK\x06\x07" in data[-200:]  # ZIP64 end + locator
    with zipfile.ZipFile(path) as reader:
        names = reader.namelist()
        assert len(names) == count + 1
        assert names[0] == "labels/train/img_000000.txt" and names[-1] == base.LOCK_NAME
        assert reader.read("labels/train/img_069999.txt") == b"4 0.5 0.5 0.1 0.1\n"
        assert reader.testzip() is None
    _unzip_test(path)


def test_sizes_and_offsets_past_the_zip64_limit_get_zip64_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Writing 2 GiB in a test is too slow: lower the limit so the same code paths run.
    monkeypatch.setattr(base, "ZIP64_LIMIT", 1_000)
    path = tmp_path / "zip64.zip"
    big = bytes(range(256)) * 20  # 5,120 bytes stored: past the limit
    with open(path, "wb") as out:
        zf = DeterministicZip(out)
        zf.write("first.bin", big, compress=False)
        zf.write("second.txt", b"after the limit\n")  # its offset is past the limit
        with zf.open("third.bin", compress=False) as stream:
            stream.write(big)
        zf.close()

    data = path.read_bytes()
    assert b"PK\x06\x06" in data[-200:]  # the central directory starts past the limit
    with zipfile.ZipFile(path) as reader:
        infos = {i.filename: i for i in reader.infolist()}
        assert reader.read("first.bin") == big
        assert reader.read("second.txt") == b"after the limit\n"
        assert reader.read("third.bin") == big
        assert infos["second.txt"].header_offset > 1_000
        assert all(i.extract_version == 45 for i in infos.values())  # ZIP64 fields: 4.5
    _unzip_test(path)


def _zip_peak(count: int) -> int:
    """tracemalloc's peak while writing `count` small label files to a temporary file."""
    with tempfile.TemporaryFile() as out:
        tracemalloc.start()
        try:
            zf = DeterministicZip(out)
            for n in range(count):
                zf.write(f"labels/train/img_{n:07d}.txt", b"0 0.5 0.5 0.1 0.1\n" * 10)
            zf.close()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def test_memory_stays_flat_with_the_number_of_entries() -> None:
    small = _zip_peak(20_000)
    large = _zip_peak(200_000)

    # zipfile holds ~350 bytes of ZipInfo an entry: 63 MB more for 180,000 entries. Here
    # only the name-hash table grows (8 bytes a slot, at most 2/3 full): 4 MB for 200,000
    # names, 6 MB while it doubles (the old table and the new one).
    assert large - small < 7 * 1024 * 1024, (small, large)
