"""URL-list imports: parse a list of URLs (JSON, JSONL or CSV) into entries, and fetch
one URL to a local file without letting the import reach what it must not.

Fetching is urllib3 with a connection class pinned to the address we checked (see
datasets.sources.net): requests offers no hook to choose the address a connection goes
to, and urllib3's pool classes take a connection class, so the name is resolved once,
checked, connected to, and still used for the Host header, SNI and certificate checks.
Redirects are followed by hand so each hop is parsed, resolved and checked again.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationParseError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import Url, parse_url

from datasets.errors import FileRejected, InvalidImport
from datasets.sources.files import (
    MAX_URL_ROW_CHARS,
    copy_capped,
    csv_rows,
    json_array_rows,
    jsonl_rows,
    removed_on_error,
)
from datasets.sources.net import (
    AddressRefused,
    Deadline,
    address_refusal,
    pinned_pool_classes,
    resolve_checked,
)
from datasets.sources.types import (
    ImportLimits,
    Network,
    PlannedEntry,
    Rejection,
    SourceEntry,
    format_bytes,
    name_problem,
    parse_split,
    parse_tags,
    value_problem,
)

URL_LIST_FORMATS = ("json", "jsonl", "csv")
# Browsers stop at 20; five hops cover http->https, a CDN and a signed-URL service.
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Longer URLs are refused by most servers (8 KB request lines) anyway.
MAX_URL_CHARS = 8192
# Fields a row may have besides metadata.
ENTRY_FIELDS = frozenset({"url", "external_id", "tags", "split", "metadata"})
USER_AGENT = "Labelvault-import/1"
# Characters of the SHA-256 of a query kept in a default external_id: 48 bits, so two
# different queries of one path collide once in ~16 million imports of 10,000 such URLs.
QUERY_HASH_CHARS = 12


# --- planning ---------------------------------------------------------------------------


def parse_url_list(
    path: Path, fmt: str, *, limits: ImportLimits | None = None
) -> Iterator[PlannedEntry]:
    """Yield one SourceEntry (ref: the URL) or Rejection per row of a URL list, in order.

    Formats: "json" (an array of objects, or of URL strings), "jsonl" (one object or
    string per line), "csv" (a header line with a `url` column). Fields: `url`
    (required, http or https), `external_id` (default: see `default_external_id`),
    `tags` (a JSON list, or a string split on "," and ";"), `split` (train, val, test or
    empty), `metadata` (a JSON object); every other column or key goes into metadata
    too (empty CSV cells are left out). Rows are numbered as an editor shows them: line
    numbers for JSONL, spreadsheet rows for CSV (the header is row 1), positions from 1
    for JSON; reasons start with them ("row 17: url is not http(s)").

    Memory: one row at a time. Host names are not resolved here (fetch_url does it);
    IP literals are checked already. Raises InvalidImport for a problem with the whole
    list: an unknown format, a CSV header without `url`, a broken JSON array, a file
    that is not UTF-8 (CSV, JSON).
    """
    limits = limits or ImportLimits.from_settings()
    if fmt == "json":
        rows = json_array_rows(path, max_element_chars=MAX_URL_ROW_CHARS, what="a JSON URL list")
    elif fmt == "jsonl":
        rows = jsonl_rows(path, max_line_bytes=MAX_URL_ROW_CHARS)
    elif fmt == "csv":
        rows = csv_rows(
            path, max_field_chars=MAX_URL_ROW_CHARS, required=("url",), what="the CSV URL list"
        )
    else:
        raise InvalidImport(
            f"unknown URL list format {fmt!r} (use one of {', '.join(URL_LIST_FORMATS)})",
            field="format",
        )
    for row, value, reason in rows:
        if reason is not None:
            yield Rejection(f"row {row}", f"row {row}: {reason}")
        else:
            yield _row_entry(row, value, from_csv=fmt == "csv", limits=limits)


def _row_entry(row: int, value: Any, *, from_csv: bool, limits: ImportLimits) -> PlannedEntry:
    if isinstance(value, str) and not from_csv:
        value = {"url": value}
    if not isinstance(value, dict):
        return Rejection(f"row {row}", f"row {row}: not an object or a URL string")
    url = value.get("url")
    shown = url if isinstance(url, str) and url.strip() else f"row {row}"

    def reject(reason: str) -> Rejection:
        return Rejection(shown, f"row {row}: {reason}")

    if not isinstance(url, str) or not url.strip():
        return reject("url is missing or empty")
    url = url.strip()
    problem = url_problem(url, allowed=limits.allowed_networks)
    if problem:
        return reject(problem)

    external_id = value.get("external_id")
    if external_id is None or (isinstance(external_id, str) and not external_id.strip()):
        name = default_external_id(url)
    elif isinstance(external_id, str | int) and not isinstance(external_id, bool):
        name = str(external_id).strip()
    else:
        return reject("external_id must be a string")
    problem = name_problem(name)
    if problem:
        if external_id is None or external_id == "":
            problem += " (the one made from the URL: give an external_id)"
        return reject(problem)

    tags, problem = parse_tags(value.get("tags"))
    if problem:
        return reject(problem)
    split, problem = parse_split(value.get("split"))
    if problem:
        return reject(problem)

    metadata: dict[str, Any] = {}
    extra = value.get("metadata")
    if isinstance(extra, dict):
        metadata.update(extra)
    elif extra is not None and extra != "":
        if not from_csv:
            return reject("metadata must be a JSON object")
        metadata["metadata"] = extra
    for key, item in value.items():
        if key in ENTRY_FIELDS:
            continue
        if from_csv and item == "":
            continue  # an empty cell is no value
        metadata[key] = item
    problem = value_problem(metadata)
    if problem:
        return reject(f"metadata {problem}")
    return SourceEntry(name=name, ref=url, metadata=metadata, tags=tags, split=split)


def url_problem(url: str, *, allowed: tuple[Network, ...] = ()) -> str | None:
    """Say why `url` cannot be imported ("url is not http(s)"), or return None.

    Checks the form only (length, scheme, host, no user:password@) and, for an IP
    literal host, the address policy; names are resolved by fetch_url.
    """
    if len(url) > MAX_URL_CHARS:
        return f"url is longer than {MAX_URL_CHARS:,} characters"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "url contains control characters"
    try:
        parsed = parse_url(url)
    except LocationParseError:
        return "url is not valid"
    if parsed.scheme not in ("http", "https"):
        return "url is not http(s)"
    if not parsed.host:
        return "url has no host"
    if parsed.auth:
        return "url carries credentials (user:password@), which are not accepted"
    try:
        address = ipaddress.ip_address(parsed.host.strip("[]"))
    except ValueError:
        return None
    refusal = address_refusal(address, allowed)
    return f"url points to a {refusal}" if refusal else None


def default_external_id(url: str) -> str:
    """Return the external_id of a URL given without one: host (and port) plus the
    decoded path, e.g. "cdn.example.com/cats/1.jpg".

    Unique for distinct resources and stable across imports (re-importing a list finds
    its items unchanged), unlike the basename (many CDNs serve ".../image.jpg") and
    unlike the whole URL (signed URLs carry credentials in their query, and an
    external_id is shown everywhere). A query is kept only as a short hash of it
    ("example.com/img?3f2a9c01d4e5"), so two queries of one path stay distinct without
    storing their values.
    """
    parsed = parse_url(url)
    host = (parsed.host or "").rstrip(".")
    default_port = 443 if parsed.scheme == "https" else 80
    port = f":{parsed.port}" if parsed.port and parsed.port != default_port else ""
    name = f"{host}{port}{unquote(parsed.path or '/')}"
    if parsed.query:
        digest = hashlib.sha256(parsed.query.encode()).hexdigest()[:QUERY_HASH_CHARS]
        name += f"?{digest}"
    return name


# --- fetching ---------------------------------------------------------------------------


def fetch_url(url: str, dest_path: Path, *, limits: ImportLimits | None = None) -> int:
    """Download `url` to `dest_path`; return the number of bytes written.

    Guarantees: http/https only; each hop's host is resolved here and every address
    checked (loopback, private, link-local, multicast, reserved, unspecified and cloud
    metadata addresses are refused unless inside IMPORT_URL_ALLOWED_NETWORKS); the
    connection goes to the checked address (no second lookup); at most MAX_REDIRECTS
    redirects, each checked like the first; only a 200 answer is accepted; the body is
    streamed to disk and reading stops past IMPORT_MAX_FILE_BYTES; the whole transfer,
    redirects included, ends within IMPORT_URL_TIMEOUT seconds even against a server
    that trickles bytes.

    Raises FileRejected with a reason for the report; `dest_path` is then absent.
    """
    limits = limits or ImportLimits.from_settings()
    deadline = Deadline(limits.url_timeout)
    current = url
    try:
        with removed_on_error(dest_path):
            for _hop in range(MAX_REDIRECTS + 1):
                location = _fetch_hop(current, dest_path, limits=limits, deadline=deadline)
                if location is None:
                    return dest_path.stat().st_size
                current = location
            raise FileRejected(f"more than {MAX_REDIRECTS} redirects")
    except FileRejected:
        if deadline.expired:
            raise FileRejected(_timeout_reason(limits)) from None
        raise
    except (HTTPError, OSError) as exc:
        if deadline.expired:
            raise FileRejected(_timeout_reason(limits)) from None
        raise FileRejected(_network_reason(exc, current)) from None
    finally:
        deadline.close()


def _timeout_reason(limits: ImportLimits) -> str:
    return f"download took longer than {limits.url_timeout:g} s (IMPORT_URL_TIMEOUT)"


def _fetch_hop(
    url: str, dest_path: Path, *, limits: ImportLimits, deadline: Deadline
) -> str | None:
    """Request `url` once: return the next URL for a redirect, or None once the body is
    at `dest_path`. Raises FileRejected, urllib3 errors, OSError."""
    problem = url_problem(url, allowed=limits.allowed_networks)
    if problem:
        raise FileRejected(problem)
    target = parse_url(url)
    assert target.host is not None and target.scheme is not None
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        addresses = resolve_checked(
            target.host.rstrip("."),
            port,
            allowed=limits.allowed_networks,
            timeout=deadline.remaining(),
        )
    except AddressRefused as exc:
        raise FileRejected(str(exc)) from None

    last_error: BaseException | None = None
    for address in addresses:
        pool_class = pinned_pool_classes(address, deadline=deadline)[target.scheme]
        pool = pool_class(target.host, port, maxsize=1, retries=False)
        try:
            response = _request(pool, target, deadline)
        except (NewConnectionError, ConnectTimeoutError) as exc:
            pool.close()
            last_error = exc
            continue  # try the next checked address of the host
        try:
            return _handle_response(response, url, dest_path, limits=limits, deadline=deadline)
        finally:
            # Close before releasing: a body left unread must not go back to the pool.
            response.close()
            response.release_conn()
            pool.close()
    assert last_error is not None
    raise last_error


def _request(pool: Any, target: Url, deadline: Deadline) -> Any:
    remaining = deadline.remaining()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    return pool.urlopen(
        "GET",
        target.request_uri,
        headers={"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"},
        retries=False,
        redirect=False,
        assert_same_host=False,
        preload_content=False,
        decode_content=True,
        release_conn=False,
        timeout=urllib3.Timeout(connect=remaining, read=remaining),
    )


def _handle_response(
    response: Any, url: str, dest_path: Path, *, limits: ImportLimits, deadline: Deadline
) -> str | None:
    status = int(response.status)
    if status in REDIRECT_STATUSES:
        location = response.headers.get("Location")
        if not location:
            raise FileRejected(f"HTTP {status} redirect without a Location header")
        return urljoin(url, location.strip())
    if status != 200:
        reason = f" {response.reason}" if response.reason else ""
        raise FileRejected(f"HTTP {status}{reason} (only 200 is accepted)")
    declared = response.headers.get("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) > limits.max_file_bytes:
        raise FileRejected(
            f"file is {format_bytes(int(declared))}, over the per-file limit of "
            f"{format_bytes(limits.max_file_bytes)}"
        )
    copy_capped(response, dest_path, max_bytes=limits.max_file_bytes)
    if deadline.expired:
        # The watchdog shut the socket: a body without a length then just "ends".
        raise FileRejected(_timeout_reason(limits))
    return None


def _network_reason(exc: BaseException, url: str) -> str:
    host = parse_url(url).host or url
    if isinstance(exc, SSLError):
        return f"TLS error with {host}: {exc}"
    if isinstance(exc, NewConnectionError):
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ConnectionRefusedError):
                return f"{host} refused the connection"
            cause = cause.__cause__ or cause.__context__
        return f"cannot connect to {host}"
    if isinstance(exc, ConnectTimeoutError):
        return f"timed out connecting to {host}"
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return f"timed out waiting for {host}"
    if isinstance(exc, ProtocolError):
        return f"connection to {host} dropped before the whole body arrived"
    return f"download from {host} failed: {exc}"
