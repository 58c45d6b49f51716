"""Archive uploads (zip, tar, tar.gz, tar.bz2, tar.xz): plan one entry per member, then
extract members one by one to local files.

What is refused, and how:
- a member whose path escapes (`..`, absolute, a drive letter), is not a regular file
  (symbolic or hard link, device, FIFO), has a name that is not valid UTF-8, is
  encrypted, is itself an archive (nested archives are not expanded), or repeats an
  earlier name: a Rejection with the reason, the rest goes on;
- an archive with more than IMPORT_ARCHIVE_MAX_FILES files, or whose files declare more
  than IMPORT_ARCHIVE_MAX_BYTES in total: InvalidImport naming the cap;
- a member decompressing past IMPORT_MAX_FILE_BYTES: FileRejected at extraction, which
  counts the bytes it really writes and stops there, whatever the headers say.
Directories are skipped, as are macOS and Windows clutter (__MACOSX/, .DS_Store, ._*,
Thumbs.db). The format is recognised by its first bytes, never by the file name.

Header sizes bound the work: zipfile returns at most a member's declared size (then
fails its CRC check when the data goes on), tarfile reads exactly the declared size,
so the planned total caps what extraction can decompress.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from datasets.errors import FileRejected, InvalidImport
from datasets.sources.files import MAGIC_BYTES, copy_capped, removed_on_error
from datasets.sources.types import (
    ImportLimits,
    PlannedEntry,
    Rejection,
    SourceEntry,
    format_bytes,
    is_os_junk,
    name_problem,
    text_problem,
)

ArchiveKind = Literal["zip", "tar", "tar.gz", "tar.bz2", "tar.xz"]
_TAR_MODES: dict[str, str] = {"tar": "r:", "tar.gz": "r:gz", "tar.bz2": "r:bz2", "tar.xz": "r:xz"}

# Errors a damaged archive raises while it is read.
_READ_ERRORS = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
)
# The general-purpose bit that says a zip member's name is UTF-8 (APPNOTE 4.4.4, bit 11).
ZIP_UTF8_FLAG = 0x800
ZIP_ENCRYPTED_FLAG = 0x1
ZIP_UNIX_SYSTEM = 3
ZIP_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}
_DRIVE = re.compile(r"^[A-Za-z]:")
MACOS_FORK_DIR = "__MACOSX"


# --- recognising formats ----------------------------------------------------------------


def magic_format(head: bytes) -> str | None:
    """Name the archive or compression format `head` (a file's first bytes) starts with
    ("zip", "gzip", "bzip2", "xz", "zstd", "7z", "rar", "tar"), or return None."""
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and len(head) > 3:
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if head[:6] == b"7z\xbc\xaf\x27\x1c":
        return "7z"
    if head[:6] == b"Rar!\x1a\x07":
        return "rar"
    if _is_tar_header(head):
        return "tar"
    return None


def _is_tar_header(head: bytes) -> bool:
    """Return whether `head` starts with a tar header: the ustar magic (POSIX and GNU),
    or, for old v7 archives, a header whose checksum is right."""
    if len(head) < 512:
        return False
    if head[257:262] == b"ustar":
        return True
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _nested_reason(head: bytes) -> str | None:
    kind = magic_format(head)
    return f"nested archive not expanded ({kind})" if kind else None


def archive_kind(path: Path) -> ArchiveKind | None:
    """Return the archive format of the file at `path` from its bytes (a .zip named
    .jpg is a zip), or None when it is not a zip or a (compressed) tar.

    A gzip, bzip2 or xz file counts only when what it decompresses to is a tar.
    """
    with open(path, "rb") as fh:
        head = fh.read(MAGIC_BYTES)
    kind = magic_format(head)
    if kind in ("zip", "tar"):
        return kind  # type: ignore[return-value]
    compressed: dict[str, tuple[ArchiveKind, Callable[[Path], IO[bytes]]]] = {
        "gzip": ("tar.gz", gzip.GzipFile),
        "bzip2": ("tar.bz2", bz2.BZ2File),
        "xz": ("tar.xz", lzma.LZMAFile),
    }
    if kind not in compressed:
        return None
    name, opener = compressed[kind]
    try:
        with opener(path) as stream:
            inner = stream.read(MAGIC_BYTES)
    except _READ_ERRORS:
        return None
    return name if _is_tar_header(inner) else None


def _require_format(path: Path) -> ArchiveKind:
    fmt = archive_kind(path)
    if fmt is None:
        raise InvalidImport(
            "the upload is not a zip or tar archive (.tar, .tar.gz, .tar.bz2, .tar.xz)"
        )
    return fmt


# --- names ------------------------------------------------------------------------------


def member_path(raw: str) -> tuple[str, str | None]:
    """Return (normalised name, None) for a safe member path, or (raw, reason).

    Backslashes count as separators (zips made on Windows); "." and empty segments are
    dropped ("./a//b" is "a/b"). Refused: absolute paths, drive letters, any ".."
    segment, an empty name.
    """
    name = raw.replace("\\", "/")
    if name.startswith("/"):
        return raw, "absolute path not allowed"
    if _DRIVE.match(name):
        return raw, "path with a drive letter not allowed"
    parts = name.split("/")
    if ".." in parts:
        return raw, "path escapes the archive (..)"
    parts = [part for part in parts if part not in ("", ".")]
    if not parts:
        return raw, "member has an empty name"
    return "/".join(parts), None


def _is_junk(name: str) -> bool:
    parts = name.split("/")
    return parts[0] == MACOS_FORK_DIR or is_os_junk(parts[-1])


def _zip_name(info: zipfile.ZipInfo) -> tuple[str, str | None]:
    """Return (name, None) with the member's UTF-8 name, or (shown name, reason).

    Without the UTF-8 flag zipfile decodes names as CP437; many tools write UTF-8 without
    setting it, so an undecorated name is taken as UTF-8 when its bytes are valid UTF-8
    and refused otherwise (a legacy code page we cannot know).
    """
    name = info.filename
    if info.flag_bits & ZIP_UTF8_FLAG or name.isascii():
        return name, None
    raw = name.encode("cp437")
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), "name is not valid UTF-8"


# --- planning ---------------------------------------------------------------------------


class _Plan:
    """What planning tracks across members: counts against the caps, names seen."""

    def __init__(self, limits: ImportLimits) -> None:
        self.limits = limits
        self.files = 0
        self.total = 0
        self.seen: set[str] = set()

    def count(self, size: int) -> None:
        self.files += 1
        if self.files > self.limits.archive_max_files:
            raise InvalidImport(
                f"archive has more than {self.limits.archive_max_files:,} files "
                "(IMPORT_ARCHIVE_MAX_FILES)"
            )
        self.total += size
        if self.total > self.limits.archive_max_bytes:
            raise InvalidImport(
                f"archive expands to more than {format_bytes(self.limits.archive_max_bytes)} "
                "(IMPORT_ARCHIVE_MAX_BYTES)"
            )

    def check(self, name: str, size: int) -> str | None:
        """Reason to refuse a regular member by name and declared size, or None; a
        name is remembered, so a repeat is refused."""
        problem = name_problem(name)
        if problem:
            return problem
        if size > self.limits.max_file_bytes:
            return (
                f"file is {format_bytes(size)}, over the per-file limit of "
                f"{format_bytes(self.limits.max_file_bytes)}"
            )
        if name in self.seen:
            return "duplicate of an earlier member with the same name"
        self.seen.add(name)
        return None


def archive_plan(path: Path, *, limits: ImportLimits | None = None) -> Iterator[PlannedEntry]:
    """Yield a SourceEntry (name: the normalised member path; ref: the member name to
    give extract_member) or a Rejection per file member, in archive order.

    Reads headers and the first 512 bytes of each member (to recognise nested archives),
    never a whole member; memory stays flat apart from the set of names (bounded by
    IMPORT_ARCHIVE_MAX_FILES). Raises InvalidImport when the file is not a zip or tar,
    cannot be read, or passes a cap: for a zip before anything is yielded (its
    directory is at the end), for a tar when the cap is reached (discard the plan).
    """
    limits = limits or ImportLimits.from_settings()
    fmt = _require_format(path)
    if fmt == "zip":
        yield from _plan_zip(path, limits)
    else:
        yield from _plan_tar(path, _TAR_MODES[fmt], limits)


def _zip_declared_count(path: Path) -> int | None:
    """Read the member count from the end-of-central-directory record (zip64 aware),
    before zipfile loads the whole directory into memory."""
    end_record = getattr(zipfile, "_EndRecData", None)
    index = getattr(zipfile, "_ECD_ENTRIES_TOTAL", None)
    if end_record is None or index is None:  # private helpers: absent in some Python
        return None
    try:
        with open(path, "rb") as fh:
            record = end_record(fh)
    except OSError:
        return None
    return int(record[index]) if record else None


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except UnicodeDecodeError:
        raise InvalidImport(
            "archive cannot be read: a member name flagged as UTF-8 is not valid UTF-8"
        ) from None
    except _READ_ERRORS as exc:
        raise InvalidImport(f"archive cannot be read: {exc}") from None


def _plan_zip(path: Path, limits: ImportLimits) -> Iterator[PlannedEntry]:
    declared = _zip_declared_count(path)
    if declared is not None and declared > limits.archive_max_files:
        raise InvalidImport(
            f"archive has more than {limits.archive_max_files:,} files (IMPORT_ARCHIVE_MAX_FILES)"
        )
    plan = _Plan(limits)
    with _open_zip(path) as archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        for info in members:  # every cap is checked before the first entry goes out
            plan.count(info.file_size)
        for info in members:
            entry = _plan_zip_member(archive, info, plan)
            if entry is not None:
                yield entry


def _zip_type_problem(info: zipfile.ZipInfo) -> str | None:
    mode = info.external_attr >> 16
    if info.create_system == ZIP_UNIX_SYSTEM and mode:
        if stat.S_ISLNK(mode):
            return "symbolic link not allowed"
        if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            return "not a regular file (device, FIFO or socket)"
    if info.flag_bits & ZIP_ENCRYPTED_FLAG:
        return "encrypted member not supported"
    if info.compress_type not in ZIP_METHODS:
        return f"compression method {info.compress_type} not supported"
    return None


def _plan_zip_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, plan: _Plan
) -> PlannedEntry | None:
    shown, problem = _zip_name(info)
    if problem:
        return Rejection(shown, problem)
    name, problem = member_path(shown)
    if problem:
        return Rejection(shown, problem)
    if _is_junk(name):
        return None
    problem = _zip_type_problem(info) or plan.check(name, info.file_size)
    if problem:
        return Rejection(name, problem)
    try:
        with archive.open(info) as member:
            problem = _nested_reason(member.read(MAGIC_BYTES))
    except _READ_ERRORS as exc:
        problem = f"corrupt member: {exc}"
    if problem:
        return Rejection(name, problem)
    return SourceEntry(name=name, ref=info.filename)


def _open_tar(path: Path, mode: str) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode)  # type: ignore[call-overload,no-any-return]
    except _READ_ERRORS as exc:
        raise InvalidImport(f"archive cannot be read: {exc}") from None


def _tar_next(archive: tarfile.TarFile) -> tarfile.TarInfo | None:
    """The next header, forgetting the ones before: tarfile keeps every TarInfo it has
    read, which for 100,000 members would be memory for nothing."""
    member = archive.next()
    archive.members.clear()
    return member


def _tar_type_problem(info: tarfile.TarInfo) -> str | None:
    if info.issym():
        return "symbolic link not allowed"
    if info.islnk():
        return "hard link not allowed"
    if info.ischr() or info.isblk():
        return "device file not allowed"
    if info.isfifo():
        return "FIFO not allowed"
    if not info.isreg():
        return f"member type {info.type!r} not supported"
    return None


def _plan_tar(path: Path, mode: str, limits: ImportLimits) -> Iterator[PlannedEntry]:
    plan = _Plan(limits)
    with _open_tar(path, mode) as archive:
        while True:
            try:
                info = _tar_next(archive)
            except _READ_ERRORS as exc:
                raise InvalidImport(f"archive is corrupt or truncated: {exc}") from None
            if info is None:
                return
            if info.isdir():
                continue
            plan.count(info.size if info.isreg() else 0)
            entry = _plan_tar_member(archive, info, plan)
            if entry is not None:
                yield entry


def _plan_tar_member(
    archive: tarfile.TarFile, info: tarfile.TarInfo, plan: _Plan
) -> PlannedEntry | None:
    if text_problem(info.name):
        return Rejection(info.name, "name is not valid UTF-8")
    name, problem = member_path(info.name)
    if problem:
        return Rejection(info.name, problem)
    if _is_junk(name):
        return None
    problem = _tar_type_problem(info) or plan.check(name, info.size)
    if problem:
        return Rejection(name, problem)
    try:
        member = archive.extractfile(info)
        assert member is not None  # a regular file always has data
        problem = _nested_reason(member.read(MAGIC_BYTES))
    except _READ_ERRORS as exc:
        raise InvalidImport(f"archive is corrupt or truncated at {name!r}: {exc}") from None
    if problem:
        return Rejection(name, problem)
    return SourceEntry(name=name, ref=info.name)


# --- extraction -------------------------------------------------------------------------


class ArchiveReader:
    """An archive kept open to extract many members, for a chunk of entries.

    Zip members are found through the central directory. A tar has no directory: the
    reader scans forward from where the previous member was found, so members asked for
    in archive order (as planned) cost one pass for the whole chunk; one asked for out
    of order restarts the scan from the beginning. Use as a context manager.
    """

    def __init__(self, path: Path, *, limits: ImportLimits | None = None) -> None:
        self.path = Path(path)
        self.limits = limits or ImportLimits.from_settings()
        self.kind = _require_format(self.path)
        self._zip: zipfile.ZipFile | None = None
        self._zip_first: dict[str, zipfile.ZipInfo] | None = None
        self._tar: tarfile.TarFile | None = None

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the archive (idempotent)."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def extract(self, member_name: str, dest_path: Path) -> int:
        """Stream the member named `member_name` (an entry's ref) to `dest_path`; return
        the bytes written.

        Counts the decompressed bytes as they are written and stops past
        IMPORT_MAX_FILE_BYTES, whatever the header declared. Raises FileRejected (no
        such member, not a regular file, encrypted, a nested archive, over the limit,
        corrupt data); `dest_path` is then absent.
        """
        with removed_on_error(dest_path):
            if self.kind == "zip":
                return self._extract_zip(member_name, dest_path)
            return self._extract_tar(member_name, dest_path)

    def _extract_zip(self, member_name: str, dest_path: Path) -> int:
        if self._zip is None:
            self._zip = _open_zip(self.path)
        if self._zip_first is None:
            # zipfile's own lookup returns the last of repeated names; the plan kept the first.
            self._zip_first = {}
            for candidate in self._zip.infolist():
                self._zip_first.setdefault(candidate.filename, candidate)
        info = self._zip_first.get(member_name)
        if info is None or info.is_dir():
            raise FileRejected(f"no file {member_name!r} in the archive")
        problem = _zip_type_problem(info)
        if problem:
            raise FileRejected(problem)
        try:
            with self._zip.open(info) as member:
                return copy_capped(
                    member,
                    dest_path,
                    max_bytes=self.limits.max_file_bytes,
                    check_start=_nested_reason,
                )
        except _READ_ERRORS as exc:
            raise FileRejected(f"corrupt member: {exc}") from None

    def _extract_tar(self, member_name: str, dest_path: Path) -> int:
        info = self._tar_find(member_name)
        problem = _tar_type_problem(info)
        if problem:
            raise FileRejected(problem)
        assert self._tar is not None
        try:
            member = self._tar.extractfile(info)
            assert member is not None
            return copy_capped(
                member,
                dest_path,
                max_bytes=self.limits.max_file_bytes,
                check_start=_nested_reason,
            )
        except _READ_ERRORS as exc:
            raise FileRejected(f"corrupt or truncated member: {exc}") from None

    def _tar_find(self, member_name: str) -> tarfile.TarInfo:
        for _attempt in range(2):
            from_start = self._tar is None
            if self._tar is None:
                self._tar = _open_tar(self.path, _TAR_MODES[self.kind])
            while True:
                try:
                    info = _tar_next(self._tar)
                except _READ_ERRORS as exc:
                    raise FileRejected(f"archive is corrupt or truncated: {exc}") from None
                if info is None:
                    break
                if info.name == member_name:
                    return info
            self._tar.close()
            self._tar = None
            if from_start:
                break
        raise FileRejected(f"no file {member_name!r} in the archive")


def extract_member(
    archive_path: Path,
    member_name: str,
    dest_path: Path,
    limits: ImportLimits | None = None,
) -> int:
    """Stream one member of the archive at `archive_path` to `dest_path`; return the bytes
    written. See ArchiveReader.extract (use an ArchiveReader for many members)."""
    with ArchiveReader(archive_path, limits=limits) as reader:
        return reader.extract(member_name, dest_path)


# The name datasets.services.imports imports (work in progress); archive_plan is the
# house-style one (<entity>_<action>). Drop this once the caller uses archive_plan.
plan_archive = archive_plan
