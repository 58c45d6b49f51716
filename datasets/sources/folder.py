"""Server-folder imports, for operators loading from a mounted volume: only folders under
the directories IMPORT_FOLDER_ROOTS allows (none by default: the feature is off).

Both planning and fetching resolve real paths and check them against the root again,
so a symbolic link (or a `..`) can never lead outside it; a link that stays inside is
followed to its file, a link to a directory is not followed (no cycles).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from datasets.errors import FileRejected, InvalidImport
from datasets.sources.files import CHUNK_SIZE, copy_capped, removed_on_error
from datasets.sources.types import (
    ImportLimits,
    PlannedEntry,
    Rejection,
    SourceEntry,
    format_bytes,
    is_os_junk,
    name_problem,
)

DISABLED = "server folder imports are disabled (IMPORT_FOLDER_ROOTS is empty)"


@dataclass(frozen=True)
class FolderLocation:
    """A requested folder, resolved: the allowed root it lies in and its real path."""

    root: str
    path: str

    def relative(self, real_path: str) -> str:
        """`real_path` (a normalised path inside the root) relative to the root, with "/"
        separators."""
        prefix = os.path.join(self.root, "")
        if real_path.startswith(prefix):
            return real_path[len(prefix) :].replace(os.sep, "/")
        return os.path.relpath(real_path, self.root).replace(os.sep, "/")


def folder_roots() -> list[str]:
    """Return the real paths of IMPORT_FOLDER_ROOTS (absolute directories only).

    Raises InvalidImport when the list is empty (the feature is off).
    """
    roots = [str(root) for root in getattr(settings, "IMPORT_FOLDER_ROOTS", []) or []]
    if not roots:
        raise InvalidImport(DISABLED)
    return [os.path.realpath(root) for root in roots if os.path.isabs(root)]


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def folder_resolve(folder: str) -> FolderLocation:
    """Resolve the requested absolute `folder` (links and `..` included) and find the
    allowed root it lies in (the innermost, when roots nest).

    Raises InvalidImport: feature off, relative path, outside every root, not an
    existing directory.
    """
    roots = folder_roots()
    if not isinstance(folder, str) or not os.path.isabs(folder) or "\x00" in folder:
        raise InvalidImport("the folder must be an absolute path", field="folder")
    real = os.path.realpath(folder)
    candidates = [root for root in roots if _inside(real, root)]
    if not candidates:
        raise InvalidImport(
            f"folder {folder} is not under an allowed directory (IMPORT_FOLDER_ROOTS)",
            field="folder",
        )
    if not os.path.isdir(real):
        raise InvalidImport(f"folder {folder} does not exist or is not a directory", field="folder")
    return FolderLocation(root=max(candidates, key=len), path=real)


def folder_plan(folder: str, *, limits: ImportLimits | None = None) -> Iterator[PlannedEntry]:
    """Yield a SourceEntry (name: the path relative to `folder`; ref: the path relative to
    its allowed root) or a Rejection per file under `folder`, recursively.

    Order: names sorted within each directory, depth first (deterministic). Memory: one
    directory listing per level being walked. Symbolic links leading outside the root
    are refused, links to directories are not followed, devices/FIFOs/sockets refused,
    clutter (.DS_Store ...) skipped, files over IMPORT_MAX_FILE_BYTES refused. Raises
    InvalidImport as folder_resolve does.
    """
    limits = limits or ImportLimits.from_settings()
    location = folder_resolve(folder)
    stack: list[Iterator[os.DirEntry[str]]] = []

    def listing(path: str, shown: str) -> Iterator[os.DirEntry[str]] | Rejection:
        try:
            with os.scandir(path) as entries:
                return iter(sorted(entries, key=lambda e: e.name))
        except OSError as exc:
            return Rejection(shown or ".", f"cannot read the folder: {exc.strerror or exc}")

    prefix = os.path.join(location.path, "")
    first = listing(location.path, "")
    if isinstance(first, Rejection):
        raise InvalidImport(f"folder {folder} cannot be read: {first.reason}", field="folder")
    stack.append(first)
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        # scandir paths start with the folder's own path: slicing is relpath, cheaply.
        name = entry.path[len(prefix) :].replace(os.sep, "/")
        if is_os_junk(entry.name):
            continue
        result = _plan_dir_entry(entry, name, location, limits)
        if result == "descend":
            sub = listing(entry.path, name)
            if isinstance(sub, Rejection):
                yield sub
            else:
                stack.append(sub)
        elif result is not None:
            yield result


def _plan_dir_entry(
    entry: os.DirEntry[str], name: str, location: FolderLocation, limits: ImportLimits
) -> PlannedEntry | str | None:
    """Return an entry, a Rejection, "descend" for a directory, or None to skip."""
    try:
        if entry.is_symlink():
            target = os.path.realpath(entry.path)
            if not _inside(target, location.root):
                return Rejection(name, "symbolic link leads outside the allowed folder")
            if os.path.isdir(target):
                return Rejection(name, "symbolic link to a folder not followed")
            info = os.stat(target)
            real = target
        elif entry.is_dir(follow_symlinks=False):
            return "descend"
        else:
            info = entry.stat(follow_symlinks=False)
            real = entry.path
    except OSError as exc:
        return Rejection(name, f"cannot read: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return Rejection(name, "not a regular file (device, FIFO or socket)")
    problem = name_problem(name)
    if problem:
        return Rejection(name, problem)
    if info.st_size > limits.max_file_bytes:
        return Rejection(
            name,
            f"file is {format_bytes(info.st_size)}, over the per-file limit of "
            f"{format_bytes(limits.max_file_bytes)}",
        )
    return SourceEntry(name=name, ref=location.relative(real))


def folder_fetch(
    folder: str | FolderLocation, ref: str, dest_path: Path, *, limits: ImportLimits | None = None
) -> int:
    """Copy the file `ref` (relative to the allowed root of `folder`, as planned) to
    `dest_path`; return the bytes written.

    Re-checks everything against the settings of now: the folder's root, the file's real
    path inside it (a link swapped since planning cannot lead out), a regular file (a
    FIFO is opened without blocking and refused). Stops past IMPORT_MAX_FILE_BYTES.
    Raises InvalidImport when the folder is no longer allowed; FileRejected otherwise,
    and `dest_path` is then absent. A caller fetching many files passes the folder
    resolved once (folder_resolve) instead of its path: resolving means a realpath of
    every root and of the folder, which would cost more than copying a small file.
    """
    limits = limits or ImportLimits.from_settings()
    with removed_on_error(dest_path):
        return _folder_copy(folder, ref, dest_path, limits=limits)


def folder_sha256(
    folder: str | FolderLocation, ref: str, *, limits: ImportLimits | None = None
) -> tuple[str, int]:
    """Hash the file `ref` where it lies; return (sha256, size) without copying it.

    The same checks as folder_fetch (allowed root, real path inside it, a regular file,
    IMPORT_MAX_FILE_BYTES). A chunk hashes in place first so that content already
    stored as an asset (a re-run of the same import) is never copied; what is new is
    then fetched, and the copy hashed again, since the file may change in between.
    """
    limits = limits or ImportLimits.from_settings()
    digest = hashlib.sha256()
    size = 0
    with _folder_open(folder, ref) as source:
        while chunk := source.read(CHUNK_SIZE):
            size += len(chunk)
            if size > limits.max_file_bytes:
                raise FileRejected(
                    f"file is over the per-file limit of {format_bytes(limits.max_file_bytes)}"
                )
            digest.update(chunk)
    return digest.hexdigest(), size


def folder_read(folder: str | FolderLocation, ref: str, *, max_bytes: int) -> bytes:
    """Return the bytes of the file `ref`, a small one: FileRejected past `max_bytes`.

    The same checks as folder_fetch. For files small enough to hold in memory, reading
    them once beats copying them to a temporary file and reading that back.
    """
    with _folder_open(folder, ref) as source:
        data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileRejected(f"file is over {format_bytes(max_bytes)}")
    return data


@contextlib.contextmanager
def _folder_open(folder: str | FolderLocation, ref: str) -> Iterator[BinaryIO]:
    location = folder if isinstance(folder, FolderLocation) else folder_resolve(folder)
    if os.path.isabs(ref) or "\x00" in ref:
        raise FileRejected("not a path relative to the folder's root")
    real = os.path.realpath(os.path.join(location.root, ref))
    if not _inside(real, location.root) or real == location.root:
        raise FileRejected("path leads outside the allowed folder")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise FileRejected(f"cannot open the file: {exc.strerror or exc}") from None
    with contextlib.ExitStack() as stack:
        stack.callback(os.close, fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileRejected("not a regular file (device, FIFO or socket)")
        stack.pop_all()
    with os.fdopen(fd, "rb") as source:
        yield source


def _folder_copy(
    folder: str | FolderLocation, ref: str, dest_path: Path, *, limits: ImportLimits
) -> int:
    with _folder_open(folder, ref) as source:
        return copy_capped(source, dest_path, max_bytes=limits.max_file_bytes)
