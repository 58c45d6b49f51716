"""Pull a version: its manifest and every asset it references, to a local directory,
verified byte for byte. Used by `python manage.py pull` and by benchmarks.

Server side, `version_assets_page` lists the distinct assets of a version page by page,
read from the version's stored manifest (never the live items: a version is a fact even
after its items change), each with a presigned GET URL.

Client side, `version_pull` fetches through a `PullSource`, either this installation
(`LocalSource`: the same functions the REST views call) or a remote one over HTTP
(`HttpSource`: the REST endpoints with an API token). What it guarantees:
- `DIR/manifest.jsonl` holds the manifest bytes, whose SHA-256 is the version id;
- every asset lands at `DIR/assets/<sha256[:2]>/<sha256>` only after its bytes hashed to
  its SHA-256 and added up to its size (downloaded to a temporary name, then renamed);
- a rerun (after an interruption) skips files already verified: `DIR/.labelvault-verified`
  records each verified file's sha256, size and mtime, so a file written since (other
  size or mtime) is hashed again, and re-downloaded unless it still verifies;
  `verify=True` rehashes every file whatever the record says;
- every item of the manifest is checked to have its file at the end, so an asset the
  listing missed is reported too;
- an object missing from storage, refused, or whose bytes do not match is reported by
  its hash in `PullResult.failures`, never skipped; the lock file
  (`DIR/labelvault.lock.json`) is written only when nothing failed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import requests

from datasets.models import Version
from datasets.services.versions import manifest_stream
from storage.keys import blob_key, is_sha256
from storage.services import presign_get

# Assets per page of the listing: 1,000 entries are ~250 kB of JSON with their URLs.
ASSETS_PAGE_MAX = 1_000
MANIFEST_NAME = "manifest.jsonl"
LOCK_NAME = "labelvault.lock.json"
VERIFIED_NAME = ".labelvault-verified"
ASSETS_DIR = "assets"
# Read size when hashing and writing: few system calls, no memory to speak of.
CHUNK = 1024 * 1024
# Downloads retried on a dropped connection or a 5xx: the store or a proxy hiccupped.
ATTEMPTS = 3
HTTP_TIMEOUT = (10, 120)  # connect, read (seconds)
# Pending downloads per worker thread: enough to keep threads busy across page fetches,
# few enough that presigned URLs (15 min by default) are used soon after being issued.
QUEUE_PER_WORKER = 8


class PullError(Exception):
    """The pull cannot go on (bad manifest, unknown version, refused token...)."""


# --- server side: the listing -----------------------------------------------------------


@dataclass(frozen=True)
class AssetEntry:
    sha256: str
    size: int
    media_type: str
    url: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "size": self.size,
            "media_type": self.media_type,
            "url": self.url,
        }


@dataclass(frozen=True)
class AssetPage:
    assets: list[AssetEntry]
    next_cursor: str | None


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        rest += chunk
        *whole, rest = rest.split(b"\n")
        yield from whole
    if rest:
        yield rest


def _manifest_items(version: Version) -> Iterator[dict[str, Any]]:
    lines = _lines(manifest_stream(version))
    next(lines, None)  # the header
    for line in lines:
        yield json.loads(line)


def cursor_parse(cursor: str | None) -> int:
    """The item id a cursor stands for (0: the start); ValueError when malformed."""
    if cursor in (None, ""):
        return 0
    assert cursor is not None
    if not cursor.isdigit() or len(cursor) > 20:
        raise ValueError(f"invalid cursor {cursor!r}")
    return int(cursor)


def version_assets_page(
    *, version: Version, cursor: str | None = None, limit: int = ASSETS_PAGE_MAX
) -> AssetPage:
    """One page of the distinct assets of `version`, in manifest (item id) order, each
    with a presigned GET URL; `next_cursor` is None on the last page.

    The cursor is the id of the last item the previous page covered. A dataset holds an
    asset under one item only (the item_asset_per_dataset constraint), so each asset is
    listed once. Reads the stored manifest from its start, skipping to the cursor:
    O(items) time, O(limit) memory per page. The caller checks access.
    Raises ValueError on a malformed cursor or limit, storage errors when the manifest
    cannot be read.
    """
    after = cursor_parse(cursor)
    if not 1 <= limit <= ASSETS_PAGE_MAX:
        raise ValueError(f"limit must be 1 to {ASSETS_PAGE_MAX}, not {limit}")
    page: dict[str, dict[str, Any]] = {}
    last = after
    more = False
    for item in _manifest_items(version):
        if item["id"] <= after:
            continue
        if len(page) >= limit and item["sha256"] not in page:
            more = True
            break
        page.setdefault(item["sha256"], item)
        last = item["id"]
    return AssetPage(
        assets=[
            AssetEntry(
                sha256=sha256,
                size=item["size"],
                media_type=item["media_type"],
                url=presign_get(blob_key(sha256)),
            )
            for sha256, item in page.items()
        ],
        next_cursor=str(last) if more else None,
    )


# --- client side: where a pull reads from -----------------------------------------------


class PullSource(Protocol):
    def version_info(self) -> dict[str, Any]:
        """{"server", "dataset", "version", "code_commit", "code_repo", "items"}."""

    def manifest_chunks(self) -> Iterator[bytes]: ...

    def asset_pages(self) -> Iterator[list[dict[str, Any]]]:
        """Pages of {"sha256", "size", "media_type", "url"}."""


class LocalSource:
    """This installation: its database and object store, through the services the REST
    views call (no access check: whoever runs manage.py owns the installation)."""

    def __init__(self, version_id: str, *, page_size: int = ASSETS_PAGE_MAX) -> None:
        version = Version.objects.filter(pk=version_id).first()
        if version is None:
            raise PullError(f"no version {version_id}")
        self.version = version
        self.page_size = page_size

    def version_info(self) -> dict[str, Any]:
        v = self.version
        return {
            "server": None,
            "dataset": v.dataset_id,
            "version": v.pk,
            "code_commit": v.code_commit,
            "code_repo": v.code_repo,
            "items": v.item_count,
        }

    def manifest_chunks(self) -> Iterator[bytes]:
        return manifest_stream(self.version)

    def asset_pages(self) -> Iterator[list[dict[str, Any]]]:
        cursor: str | None = None
        while True:
            page = version_assets_page(version=self.version, cursor=cursor, limit=self.page_size)
            yield [entry.as_dict() for entry in page.assets]
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


class HttpSource:
    """A Labelvault server's REST API, authenticated with an API token."""

    def __init__(self, server: str, token: str, version_id: str) -> None:
        self.server = server.rstrip("/")
        self.version_id = version_id
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def _get(self, url: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.get(url, timeout=HTTP_TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise PullError(f"cannot reach {url}: {exc}") from None
        if response.status_code in (401, 403):
            raise PullError(f"{url}: {response.status_code}, check the token")
        if response.status_code == 404:
            raise PullError(f"{url}: no version {self.version_id} visible with this token")
        if response.status_code != 200:
            raise PullError(f"{url}: HTTP {response.status_code} {response.text[:200]}")
        return response

    def _url(self, tail: str = "") -> str:
        return f"{self.server}/api/v1/versions/{quote(self.version_id)}{tail}"

    def version_info(self) -> dict[str, Any]:
        body = self._get(self._url()).json()
        return {
            "server": self.server,
            "dataset": body["dataset"],
            "version": body["id"],
            "code_commit": body["code_commit"],
            "code_repo": body["code_repo"],
            "items": body["item_count"],
        }

    def manifest_chunks(self) -> Iterator[bytes]:
        with self._get(self._url("/manifest"), stream=True) as response:
            yield from response.iter_content(CHUNK)

    def asset_pages(self) -> Iterator[list[dict[str, Any]]]:
        url: str | None = self._url("/assets")
        while url is not None:
            body = self._get(url).json()
            yield body["results"]
            url = body["next"]


# --- client side: the pull ---------------------------------------------------------------


@dataclass(frozen=True)
class PullFailure:
    sha256: str
    reason: str


@dataclass
class PullResult:
    version: str
    directory: Path
    items: int = 0
    assets: int = 0
    downloaded: int = 0
    skipped: int = 0
    bytes_downloaded: int = 0
    seconds: float = 0.0
    failures: list[PullFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def asset_path(directory: Path, sha256: str) -> Path:
    return directory / ASSETS_DIR / sha256[:2] / sha256


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


class _VerifiedIndex:
    """DIR/.labelvault-verified: one "sha256 size mtime_ns" line per file verified, the
    last line for a hash winning. Appended by the pulling thread only."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / VERIFIED_NAME
        self.entries: dict[str, tuple[int, int]] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 3 and is_sha256(parts[0]):
                    self.entries[parts[0]] = (int(parts[1]), int(parts[2]))
        self._file = self.path.open("a")

    def fresh(self, sha256: str, path: Path) -> bool:
        """Whether `path` is as it was when verified (same size and mtime)."""
        recorded = self.entries.get(sha256)
        if recorded is None:
            return False
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        return (st.st_size, st.st_mtime_ns) == recorded

    def add(self, sha256: str, path: Path) -> None:
        st = path.stat()
        self.entries[sha256] = (st.st_size, st.st_mtime_ns)
        self._file.write(f"{sha256} {st.st_size} {st.st_mtime_ns}\n")

    def close(self) -> None:
        self._file.close()


_thread_local = threading.local()


def _http() -> requests.Session:
    # One session (connection pool) per download thread: sessions are not thread-safe.
    session = getattr(_thread_local, "session", None)
    if session is None:
        session = _thread_local.session = requests.Session()
    return session


class _Failed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def asset_download(url: str, *, sha256: str, size: int, dest: Path) -> int:
    """GET `url` to a temporary name beside `dest`, check its SHA-256 and size, rename it
    to `dest`; return the bytes written. Raises _Failed with the reason otherwise (the
    temporary file is removed). Retries a dropped connection or a 5xx."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.part-{uuid.uuid4().hex[:8]}")
    reason = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(0.5 * attempt)
        try:
            with _http().get(url, stream=True, timeout=HTTP_TIMEOUT) as response:
                if response.status_code == 404:
                    raise _Failed("missing from storage (404)")
                if response.status_code == 403:
                    raise _Failed("refused by storage (403: URL expired or not allowed)")
                if response.status_code >= 500:
                    reason = f"storage error (HTTP {response.status_code})"
                    continue
                if response.status_code != 200:
                    raise _Failed(f"HTTP {response.status_code}")
                digest = hashlib.sha256()
                written = 0
                with tmp.open("wb") as out:
                    for block in response.iter_content(CHUNK):
                        digest.update(block)
                        written += len(block)
                        out.write(block)
        except requests.RequestException as exc:
            reason = f"download failed: {exc}"
            tmp.unlink(missing_ok=True)
            continue
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        actual = digest.hexdigest()
        if written != size or actual != sha256:
            tmp.unlink(missing_ok=True)
            raise _Failed(f"content mismatch: got {written} bytes hashing to {actual}")
        os.replace(tmp, dest)
        return written
    raise _Failed(reason)


def manifest_fetch(source: PullSource, directory: Path, version_id: str) -> Path:
    """Write DIR/manifest.jsonl (kept when it already hashes to the version id); raise
    PullError when the bytes received do not hash to the version id."""
    path = directory / MANIFEST_NAME
    if path.exists() and _file_sha256(path) == version_id:
        return path
    tmp = path.with_name(f"{MANIFEST_NAME}.part-{uuid.uuid4().hex[:8]}")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for chunk in source.manifest_chunks():
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != version_id:
            raise PullError(
                f"the manifest received hashes to {digest.hexdigest()}, not the version id "
                f"{version_id}: it is corrupt"
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _manifest_missing(path: Path, directory: Path, known: set[str]) -> Iterator[str]:
    """Hashes the manifest's items reference with no file in DIR (each once)."""
    seen: set[str] = set()
    with path.open("rb") as f:
        f.readline()  # header
        for line in f:
            sha256 = json.loads(line)["sha256"]
            if sha256 in known or sha256 in seen:
                continue
            if not asset_path(directory, sha256).is_file():
                seen.add(sha256)
                yield sha256


Download = Callable[..., int]
Progress = Callable[[PullResult], None]


def version_pull(
    *,
    source: PullSource,
    directory: Path,
    workers: int = 8,
    verify: bool = False,
    download: Download = asset_download,
    progress: Progress | None = None,
) -> PullResult:
    """Pull the version `source` names into `directory` (see the module docstring).

    Returns a PullResult whose `failures` list every asset not pulled, by hash; the lock
    file is written only when there are none. Raises PullError when the version or its
    manifest cannot be had. An exception from `download` other than a reported failure
    (an interruption) stops the pull; what was verified so far stays verified.
    """
    started = time.monotonic()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    info = source.version_info()
    version_id = info["version"]
    result = PullResult(version=version_id, directory=directory, items=info["items"])
    manifest = manifest_fetch(source, directory, version_id)
    index = _VerifiedIndex(directory)
    failed: set[str] = set()
    pending: dict[Future[int], tuple[str, int]] = {}

    def settle(done: Iterable[Future[int]]) -> None:
        for future in done:
            sha256, _size = pending.pop(future)
            try:
                result.bytes_downloaded += future.result()
            except _Failed as exc:
                failed.add(sha256)
                result.failures.append(PullFailure(sha256, exc.reason))
                continue
            index.add(sha256, asset_path(directory, sha256))
            result.downloaded += 1
            if progress is not None:
                progress(result)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pull") as pool:
            try:
                for page in source.asset_pages():
                    for entry in page:
                        sha256, size = entry["sha256"], int(entry["size"])
                        if not is_sha256(sha256):
                            raise PullError(f"the server listed an invalid sha256 {sha256!r}")
                        result.assets += 1
                        path = asset_path(directory, sha256)
                        if _already_there(index, path, sha256, size, verify=verify):
                            result.skipped += 1
                            continue
                        future = pool.submit(
                            download, entry["url"], sha256=sha256, size=size, dest=path
                        )
                        pending[future] = (sha256, size)
                        while len(pending) >= workers * QUEUE_PER_WORKER:
                            done, _ = wait(pending, return_when=FIRST_COMPLETED)
                            settle(done)
                    if progress is not None:
                        progress(result)
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    settle(done)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
    finally:
        index.close()
    known = set(index.entries) | failed
    for sha256 in _manifest_missing(manifest, directory, known):
        result.failures.append(PullFailure(sha256, "in the manifest but not listed by the server"))
    result.seconds = time.monotonic() - started
    if result.ok:
        lock_write(directory, info, assets=result.assets)
    return result


def _already_there(
    index: _VerifiedIndex, path: Path, sha256: str, size: int, *, verify: bool
) -> bool:
    if not verify and index.fresh(sha256, path):
        return True
    try:
        if path.stat().st_size != size:
            return False
    except FileNotFoundError:
        return False
    if _file_sha256(path) != sha256:
        return False
    index.add(sha256, path)
    return True


def lock_write(directory: Path, info: dict[str, Any], *, assets: int) -> Path:
    """Write DIR/labelvault.lock.json, to commit in the training repo."""
    lock = {
        "server": info["server"],
        "dataset": info["dataset"],
        "version": info["version"],
        "code_commit": info["code_commit"],
        "code_repo": info["code_repo"],
        "items": info["items"],
        "assets": assets,
    }
    path = directory / LOCK_NAME
    path.write_text(json.dumps(lock, sort_keys=True, indent=2) + "\n")
    return path
