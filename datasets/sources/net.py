"""Outbound connections an import makes on a user's behalf (URL lists, S3 endpoints other
than ours), made safe against server-side request forgery.

The policy: resolve the host ourselves, refuse every address that is not a public
unicast one (loopback, private, link-local, shared, multicast, reserved, unspecified,
cloud metadata; IPv4 inside IPv6 is unwrapped) unless it lies in an allow-listed network,
then connect to the address we checked. urllib3 would resolve the name again when it
connects, and a DNS answer that changes between the check and the connection (DNS
rebinding) would slip through, so the connection classes here take the checked address
and connect to it while everything else (Host header, TLS SNI, certificate check) still
uses the host name.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from datasets.sources.types import Network

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata services (AWS, GCP, Azure, OpenStack: 169.254.169.254; AWS's
# IPv6 one: fd00:ec2::254). Both already fall in refused ranges; named so the reason says
# what they are.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
# NAT64 (RFC 6052) carries an IPv4 address in its last 32 bits.
NAT64_NETWORK = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(Exception):
    """The host resolves to no address we may connect to (the message says why)."""


def address_refusal(address: IPAddress, allowed: Sequence[Network] = ()) -> str | None:
    """Say why we may not connect to `address` ("loopback address 127.0.0.1"), or
    return None when it is a public unicast address or inside an `allowed` network."""
    if any(address.version == net.version and address in net for net in allowed):
        return None
    inner: IPAddress | None = None
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address.teredo is not None:
            inner = address.teredo[1]
        if inner is None and address in NAT64_NETWORK:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if inner is not None:
        reason = address_refusal(inner, allowed)
        return f"{reason} (inside {address})" if reason else None
    kind = _refused_kind(address)
    return f"{kind} address {address}" if kind else None


def _refused_kind(address: IPAddress) -> str | None:
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-public"  # 100.64.0.0/10 (carrier-grade NAT) and the like
    return None


def resolve_host(host: str, port: int, *, timeout: float) -> list[IPAddress]:
    """Return the addresses `host` resolves to, in the resolver's order, without duplicates.

    An IP literal is returned as it is. The lookup runs in a daemon thread so that a
    resolver that hangs costs at most `timeout` seconds. Raises AddressRefused when the
    name does not resolve or the lookup times out.
    """
    literal = host.strip("[]")
    try:
        return [ipaddress.ip_address(literal)]
    except ValueError:
        pass
    result: list[Any] = []
    error: list[BaseException] = []

    def lookup() -> None:
        try:
            result.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            error.append(exc)

    thread = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    thread.start()
    thread.join(max(timeout, 0.0))
    if thread.is_alive():
        raise AddressRefused(f"looking up {host} took longer than {timeout:g} s")
    if error or not result:
        raise AddressRefused(f"cannot resolve host {host}")
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in result:
        # IPv6 sockaddr may carry a zone ("fe80::1%eth0"): drop it before parsing.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def resolve_checked(
    host: str, port: int, *, allowed: Sequence[Network], timeout: float
) -> list[IPAddress]:
    """Resolve `host` and keep the addresses we may connect to, in order.

    Raises AddressRefused when it does not resolve or every address is refused (the
    reason names the first refused address).
    """
    addresses = resolve_host(host, port, timeout=timeout)
    usable = [address for address in addresses if address_refusal(address, allowed) is None]
    if not usable:
        reason = address_refusal(addresses[0], allowed)
        shown = host.strip("[]")
        where = "" if shown == str(addresses[0]) else f" ({shown})"
        raise AddressRefused(f"refused to connect to {reason}{where}")
    return usable


class Deadline:
    """A wall-clock limit for one transfer, enforced even on a blocked read.

    Socket timeouts bound each read, not the transfer: a server that sends a byte every
    few seconds never trips them. Sockets handed to `watch` are shut down when the time
    is up, which wakes any read blocked on them. `close()` stops the timer.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        self.expired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        """Seconds left (0 when the time is up)."""
        return max(self._end - time.monotonic(), 0.0)

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down if the deadline passes before close().

        Keeps a duplicate of the descriptor: shutting the duplicate down ends the
        connection, and the number cannot be reused by another socket meanwhile.
        """
        with self._lock:
            if self._closed:
                return
            duplicate = sock.dup()
            self._sockets.append(duplicate)
            if self.expired:
                _shutdown(duplicate)

    def _expire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def close(self) -> None:
        """Stop the timer and release the duplicates (idempotent)."""
        with self._lock:
            self._closed = True
            self._timer.cancel()
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer or by us
        sock.shutdown(socket.SHUT_RDWR)


class _PinnedMixin:
    """Connect to `pinned_address` instead of resolving the host name again."""

    pinned_address: str = ""
    deadline: Deadline | None = None
    # Set by HTTPConnection; declared for the type checker.
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        if not self.pinned_address:
            raise RuntimeError("pinned connection class used without an address")
        try:
            sock = urllib3_connection.create_connection(
                (self.pinned_address, self.port),
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except socket.gaierror as exc:  # cannot happen for a literal; kept for symmetry
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                self, f"connection to {self.host} ({self.pinned_address}) timed out"
            ) from exc
        except OSError as exc:
            raise NewConnectionError(  # type: ignore[arg-type]
                self, f"cannot connect to {self.host} ({self.pinned_address}): {exc}"
            ) from exc
        if self.deadline is not None:
            self.deadline.watch(sock)
        return sock


class PinnedHTTPConnection(_PinnedMixin, HTTPConnection):
    """An HTTP connection to a checked address (see the module docstring)."""


class PinnedHTTPSConnection(_PinnedMixin, HTTPSConnection):
    """An HTTPS connection to a checked address; SNI and the certificate check use the
    host name, as they would without pinning."""


def pinned_pool_classes(
    address: IPAddress, *, deadline: Deadline | None = None
) -> dict[str, type[HTTPConnectionPool]]:
    """Return {"http": pool class, "https": pool class} whose connections go to `address`
    (for PoolManager.pool_classes_by_scheme or direct use)."""
    attrs = {"pinned_address": str(address), "deadline": deadline}
    http_conn = type("PinnedHTTPConnectionTo", (PinnedHTTPConnection,), attrs)
    https_conn = type("PinnedHTTPSConnectionTo", (PinnedHTTPSConnection,), attrs)
    http_pool = type(
        "PinnedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}
    )
    https_pool = type(
        "PinnedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}
    )
    return {"http": http_pool, "https": https_pool}
