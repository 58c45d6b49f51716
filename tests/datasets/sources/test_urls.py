"""URL lists and SSRF-safe fetching, against a real server on 127.0.0.1.

Refused addresses (10.x, 169.254.169.254, ::1 ...) are refused before any connection is
attempted, so these tests never send traffic outside loopback.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from datasets.errors import FileRejected, InvalidImport
from datasets.sources.net import address_refusal
from datasets.sources.types import ImportLimits, Rejection, SourceEntry, parse_networks
from datasets.sources.urls import default_external_id, fetch_url, parse_url_list
from tests.datasets.sources.conftest import FILE_BODY, LocalServer

LOOPBACK = parse_networks(["127.0.0.0/8"])


def limits(**overrides: object) -> ImportLimits:
    values: dict[str, object] = {"allowed_networks": LOOPBACK, "url_timeout": 10.0}
    values.update(overrides)
    return ImportLimits(**values)  # type: ignore[arg-type]


# --- the address policy -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback address 127.0.0.1"),
        ("10.1.2.3", "private address 10.1.2.3"),
        ("192.168.0.10", "private address 192.168.0.10"),
        ("172.16.5.4", "private address 172.16.5.4"),
        ("169.254.169.254", "cloud metadata address 169.254.169.254"),
        ("169.254.1.1", "link-local address 169.254.1.1"),
        ("fd00:ec2::254", "cloud metadata address fd00:ec2::254"),
        ("::1", "loopback address ::1"),
        ("::", "unspecified address ::"),
        ("0.0.0.0", "unspecified address 0.0.0.0"),  # noqa: S104 - a refused address
        ("224.0.0.1", "multicast address 224.0.0.1"),
        ("fe80::1", "link-local address fe80::1"),
        ("100.64.0.1", "non-public address 100.64.0.1"),
        ("240.0.0.1", "private address 240.0.0.1"),  # Python counts 240/4 as private
        ("::ffff:127.0.0.1", "loopback address 127.0.0.1 (inside ::ffff:7f00:1)"),
        ("64:ff9b::a00:1", "private address 10.0.0.1 (inside 64:ff9b::a00:1)"),
    ],
)
def test_refused_addresses(address: str, reason: str) -> None:
    import ipaddress

    assert address_refusal(ipaddress.ip_address(address)) == reason


def test_public_and_allow_listed_addresses_pass() -> None:
    import ipaddress

    assert address_refusal(ipaddress.ip_address("93.184.216.34")) is None
    assert address_refusal(ipaddress.ip_address("2606:4700::1111")) is None
    allowed = parse_networks(["10.0.0.0/8", "169.254.169.254/32"])
    assert address_refusal(ipaddress.ip_address("10.9.9.9"), allowed) is None
    assert address_refusal(ipaddress.ip_address("169.254.169.254"), allowed) is None
    assert address_refusal(ipaddress.ip_address("192.168.1.1"), allowed) is not None


# --- fetching ---------------------------------------------------------------------------


def test_fetch_streams_the_body_to_disk(http_server: LocalServer, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    assert fetch_url(http_server.url("/file"), dest, limits=limits()) == len(FILE_BODY)
    assert dest.read_bytes() == FILE_BODY


def test_fetch_reads_allowed_networks_from_settings(
    http_server: LocalServer, tmp_path: Path, settings: pytest.FixtureRequest
) -> None:
    settings.IMPORT_URL_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # type: ignore[attr-defined]
    dest = tmp_path / "out"
    assert fetch_url(http_server.url("/file"), dest) == len(FILE_BODY)


def test_loopback_is_refused_unless_allow_listed(http_server: LocalServer, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.raises(FileRejected, match="loopback address 127.0.0.1"):
        fetch_url(http_server.url("/file"), dest, limits=limits(allowed_networks=()))
    assert not dest.exists()
    assert http_server.requests == []  # refused before connecting


def test_name_resolving_to_loopback_is_refused(http_server: LocalServer, tmp_path: Path) -> None:
    with pytest.raises(
        FileRejected, match=r"refused to connect to loopback address .* \(localhost\)"
    ):
        fetch_url(
            http_server.url("/file", host="localhost"),
            tmp_path / "o",
            limits=limits(allowed_networks=()),
        )
    assert http_server.requests == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/x.jpg", "private address 10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address 169.254.169.254"),
        ("http://[::1]:8080/x", "loopback address ::1"),
        ("http://[fd00:ec2::254]/", "cloud metadata address fd00:ec2::254"),
        ("http://0.0.0.0:80/", "unspecified address 0.0.0.0"),
        ("http://2130706433/x", "loopback address 127.0.0.1"),  # decimal 127.0.0.1
        ("ftp://example.com/x", "url is not http(s)"),
        ("file:///etc/passwd", "url is not http(s)"),
        ("http://user:pw@example.com/x", "credentials"),
    ],
)
def test_refused_urls(url: str, reason: str, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.raises(FileRejected, match=reason.replace("(", r"\(").replace(")", r"\)")):
        fetch_url(url, dest, limits=limits(allowed_networks=()))
    assert not dest.exists()


def test_host_header_keeps_the_name_while_connecting_to_the_checked_address(
    http_server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulate DNS rebinding: "localhost" answers 127.0.0.1 once, then a metadata
    # address. The fetch must look the name up once and connect to what it checked.
    real_getaddrinfo = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        lookups.append(str(host))
        if host == "localhost":
            address = "127.0.0.1" if lookups.count("localhost") == 1 else "169.254.169.254"
            return real_getaddrinfo(address, port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    dest = tmp_path / "out"
    fetch_url(http_server.url("/host", host="localhost"), dest, limits=limits())
    assert dest.read_bytes() == f"localhost:{http_server.port}".encode()
    assert lookups.count("localhost") == 1
    assert set(lookups) <= {"localhost", "127.0.0.1"}  # the connection used the literal


def test_redirects_are_followed_and_rechecked(http_server: LocalServer, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    assert fetch_url(http_server.url("/redirect/4"), dest, limits=limits()) == len(FILE_BODY)
    with pytest.raises(FileRejected, match="more than 5 redirects"):
        fetch_url(http_server.url("/redirect/5"), dest, limits=limits())
    assert not dest.exists()


def test_redirect_to_a_refused_address_is_refused(http_server: LocalServer, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.raises(FileRejected, match="cloud metadata address 169.254.169.254"):
        fetch_url(http_server.url("/to-metadata"), dest, limits=limits())
    with pytest.raises(FileRejected, match="loopback address ::1"):
        fetch_url(http_server.url("/to-loopback-v6"), dest, limits=limits())
    assert not dest.exists()


def test_oversize_bodies_are_refused(http_server: LocalServer, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    small = limits(max_file_bytes=1_000_000)
    with pytest.raises(FileRejected, match=r"file is 3\.0 MB, over the per-file limit of 1\.0 MB"):
        fetch_url(http_server.url("/big"), dest, limits=small)
    with pytest.raises(FileRejected, match=r"over the per-file limit of 1\.0 MB"):
        fetch_url(http_server.url("/big-unannounced"), dest, limits=small)
    assert not dest.exists()


def test_a_trickling_server_hits_the_total_timeout(
    http_server: LocalServer, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    started = time.monotonic()
    with pytest.raises(FileRejected, match=r"took longer than 1 s \(IMPORT_URL_TIMEOUT\)"):
        fetch_url(http_server.url("/slow"), dest, limits=limits(url_timeout=1.0))
    assert time.monotonic() - started < 3.0
    assert not dest.exists()


def test_only_200_is_accepted(http_server: LocalServer, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.raises(FileRejected, match=r"HTTP 404 Not Found \(only 200 is accepted\)"):
        fetch_url(http_server.url("/nothing-here"), dest, limits=limits())
    with pytest.raises(FileRejected, match="HTTP 201"):
        fetch_url(http_server.url("/created"), dest, limits=limits())
    assert not dest.exists()


def test_connection_refused_is_a_rejection(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FileRejected, match="refused the connection"):
        fetch_url(f"http://127.0.0.1:{port}/x", tmp_path / "o", limits=limits())


def test_https_checks_the_certificate_against_the_name(
    https_server: LocalServer, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    # Connected to 127.0.0.1, verified as "localhost" (SNI and certificate name).
    assert fetch_url(https_server.url("/file", host="localhost"), dest, limits=limits()) == len(
        FILE_BODY
    )
    # The certificate names localhost, not 127.0.0.1: verification is really on.
    with pytest.raises(FileRejected, match="TLS error"):
        fetch_url(https_server.url("/file"), tmp_path / "other", limits=limits())
    assert not (tmp_path / "other").exists()


# --- URL lists --------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_json_list_of_strings_and_objects(tmp_path: Path) -> None:
    rows = [
        "https://cdn.example.com/cats/1.jpg",
        {
            "url": "https://cdn.example.com/cats/2.jpg",
            "external_id": "cat-2",
            "tags": ["night", "indoor", "night"],
            "split": "Train",
            "metadata": {"camera": "A"},
            "photographer": "Ana",
        },
        {"url": "ftp://cdn.example.com/3.jpg"},
        {"external_id": "x"},
        42,
    ]
    path = write(tmp_path / "list.json", json.dumps(rows))
    out = list(parse_url_list(path, "json", limits=limits()))
    assert out[0] == SourceEntry(
        name="cdn.example.com/cats/1.jpg", ref="https://cdn.example.com/cats/1.jpg"
    )
    assert out[1] == SourceEntry(
        name="cat-2",
        ref="https://cdn.example.com/cats/2.jpg",
        metadata={"camera": "A", "photographer": "Ana"},
        tags=["night", "indoor"],
        split="train",
    )
    assert out[2] == Rejection("ftp://cdn.example.com/3.jpg", "row 3: url is not http(s)")
    assert out[3] == Rejection("row 4", "row 4: url is missing or empty")
    assert out[4] == Rejection("row 5", "row 5: not an object or a URL string")


def test_big_json_array_is_read_incrementally(tmp_path: Path) -> None:
    urls = [f"https://example.com/images/{i:06d}.png" for i in range(5000)]
    path = write(tmp_path / "list.json", json.dumps(urls, indent=2))  # ~250 KB
    names = [entry.name for entry in parse_url_list(path, "json", limits=limits())]
    assert names == [f"example.com/images/{i:06d}.png" for i in range(5000)]


def test_json_that_is_not_an_array_or_is_broken(tmp_path: Path) -> None:
    with pytest.raises(InvalidImport, match="must be a JSON array"):
        list(parse_url_list(write(tmp_path / "a.json", '{"url": "x"}'), "json"))
    broken = write(tmp_path / "b.json", '["https://a.example/1", "https://a.example/2", {"url": ]')
    out = parse_url_list(broken, "json", limits=limits())
    assert next(out).ref == "https://a.example/1"
    assert next(out).ref == "https://a.example/2"
    with pytest.raises(InvalidImport, match="row 3: not valid JSON"):
        next(out)


def test_jsonl_rows_are_numbered_by_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "list.jsonl",
        '{"url": "http://example.com/a.png", "tags": "x; y", "split": "val"}\n'
        "\n"
        "{not json}\n"
        '"http://example.com/b.png"\n'
        '{"url": "http://10.0.0.7/c.png"}\n'
        '{"url": "http://example.com/d.png", "split": "holdout"}\n'
        '{"url": "http://example.com/e.png", "note": "a\\u0000b"}\n',
    )
    out = list(parse_url_list(path, "jsonl", limits=limits(allowed_networks=())))
    assert out[0] == SourceEntry(
        name="example.com/a.png", ref="http://example.com/a.png", tags=["x", "y"], split="val"
    )
    assert isinstance(out[1], Rejection) and out[1].reason.startswith("row 3: not valid JSON")
    assert out[2].name == "example.com/b.png"
    assert out[3] == Rejection(
        "http://10.0.0.7/c.png", "row 5: url points to a private address 10.0.0.7"
    )
    assert out[4].reason == "row 6: split 'holdout' is not one of train, val, test (or empty)"
    assert out[5].reason == "row 7: metadata contains a NUL character"


def test_csv_list_with_metadata_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path / "list.csv",
        "\ufeffurl;external_id;tags;split;camera;note\r\n"
        "https://example.com/a.jpg;a;night,rain;test;A;\r\n"
        'https://example.com/b.jpg;;;;B;"semi;colon"\r\n'
        "mailto:x@example.com;;;;;\r\n"
        "https://example.com/c.jpg;c\r\n",
    )
    out = list(parse_url_list(path, "csv", limits=limits()))
    assert out[0] == SourceEntry(
        name="a",
        ref="https://example.com/a.jpg",
        metadata={"camera": "A"},
        tags=["night", "rain"],
        split="test",
    )
    assert out[1] == SourceEntry(
        name="example.com/b.jpg",
        ref="https://example.com/b.jpg",
        metadata={"camera": "B", "note": "semi;colon"},
    )
    assert out[2] == Rejection("mailto:x@example.com", "row 4: url is not http(s)")
    assert out[3] == Rejection("row 5", "row 5: has 2 fields, the header has 6")


def test_csv_header_without_url_is_invalid(tmp_path: Path) -> None:
    path = write(tmp_path / "list.csv", "link,name\nhttps://example.com/a.jpg,a\n")
    with pytest.raises(
        InvalidImport, match="the header has no 'url' column \\(found: link, name\\)"
    ):
        list(parse_url_list(path, "csv"))


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(InvalidImport, match="unknown URL list format 'xml'"):
        list(parse_url_list(write(tmp_path / "x", ""), "xml"))


def test_default_external_id() -> None:
    assert default_external_id("https://cdn.example.com/a/b%20c.jpg") == "cdn.example.com/a/b c.jpg"
    assert default_external_id("http://Example.COM:8080/x.png#frag") == "example.com:8080/x.png"
    assert default_external_id("https://example.com:443/x.png") == "example.com/x.png"
    signed = default_external_id("https://bucket.s3.example.com/k.jpg?X-Amz-Signature=secret")
    assert signed.startswith("bucket.s3.example.com/k.jpg?") and "secret" not in signed
    assert default_external_id("https://e.com/i?id=1") != default_external_id(
        "https://e.com/i?id=2"
    )
