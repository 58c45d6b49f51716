"""Helpers for source tests: a real HTTP(S) server on 127.0.0.1 with routes for the cases
URL fetching must handle, and a CA plus server certificate made on the fly."""

from __future__ import annotations

import datetime
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

# The body of /file: a few chunks' worth, not a round number.
FILE_BODY = bytes(range(256)) * 4000 + b"end"
# /slow trickles one byte per interval, at most this many (stops by itself).
SLOW_INTERVAL = 0.2
SLOW_MAX_BYTES = 100


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.requests.append((self.path, self.headers.get("Host", "")))
        path = self.path.split("?", 1)[0]
        if path == "/file":
            self._send(200, FILE_BODY, {"Content-Type": "application/octet-stream"})
        elif path == "/host":
            self._send(200, self.headers.get("Host", "").encode())
        elif path.startswith("/redirect/"):
            # /redirect/<n>: n more hops, then /file
            left = int(path.rsplit("/", 1)[1])
            target = "/file" if left == 0 else f"/redirect/{left - 1}"
            self._send(302, headers={"Location": target})
        elif path == "/to-metadata":
            self._send(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        elif path == "/to-loopback-v6":
            self._send(301, headers={"Location": f"http://[::1]:{self.server.server_port}/file"})
        elif path == "/big":
            # Declares its true (large) length: refused before reading.
            self._send(200, b"x" * 3_000_000)
        elif path == "/big-unannounced":
            # No length: the reader must count and stop.
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"y" * 65536
            try:
                for _ in range(200):  # 13 MB at most
                    self.wfile.write(chunk)
            except OSError:
                pass
            self.close_connection = True
        elif path == "/slow":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(SLOW_MAX_BYTES):
                    self.wfile.write(b"z")
                    self.wfile.flush()
                    time.sleep(SLOW_INTERVAL)
            except OSError:
                pass
            self.close_connection = True
        elif path == "/created":
            self._send(201, b"not a download")
        else:
            self._send(404, b"not found")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[tuple[str, str]]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-body (the point of several tests) are not errors


@dataclass
class LocalServer:
    """A server on 127.0.0.1; `requests` records (path, Host header) per request."""

    port: int
    scheme: str
    requests: list[tuple[str, str]] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


def _serve(scheme: str, context: ssl.SSLContext | None = None) -> Iterator[LocalServer]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.requests = []
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield LocalServer(port=server.server_port, scheme=scheme, requests=server.requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    """A plain HTTP server on 127.0.0.1 (routes: see _Handler.do_GET)."""
    yield from _serve("http")


@dataclass(frozen=True)
class CertFiles:
    ca_path: Path
    cert_path: Path
    key_path: Path


def make_ca(directory: Path, hostname: str = "localhost") -> CertFiles:
    """Write a CA certificate and a server certificate for `hostname` it signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Labelvault test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = CertFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths.ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def https_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    """An HTTPS server on 127.0.0.1 whose certificate names "localhost", signed by a CA
    this process trusts for the test (SSL_CERT_FILE, read by OpenSSL's default paths)."""
    ca = make_ca(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ca.cert_path, ca.key_path)
    yield from _serve("https", context)
