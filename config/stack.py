"""Run the whole development stack in the foreground: `python -m config.stack` (`make run`).

Starts, in order: SeaweedFS (unless S3_ENDPOINT is set), `migrate`, `storage_bootstrap`,
`collectstatic` (DEBUG off only), `seed_demo` (DEBUG on only), then a Celery worker, Celery
beat and the web server on http://127.0.0.1:$LABELVAULT_PORT. Every process gets its own
session (process group) and log file under VAR_DIR/log/, and its output is echoed to the
terminal with a prefix.

Ctrl-C (SIGINT), SIGTERM or SIGHUP, or the death of any long-running child, stops
everything: SIGTERM to every child's process group, SIGKILL to the groups still alive
after STOP_GRACE_SECONDS (a worker on the SQLAlchemy broker has been seen ignoring
SIGTERM), then SeaweedFS; finally psutil confirms that no process we started is left.

Variables read here (on top of those settings.py reads):
  LABELVAULT_PORT     web port, default 8000
  LABELVAULT_S3_PORT  S3 port of the embedded SeaweedFS, default 18433; its other ports
                      are derived from it (see `seaweed_ports`)

A plain module, not a management command: it must run before the database exists and
outlive every Django process it starts. It imports storage.embedded and no domain app.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NoReturn

import psutil

from storage.embedded import DEFAULT_PORTS, PortSet, SeaweedServer, port_free

BASE_DIR = Path(__file__).resolve().parent.parent

# Seconds the web, worker and beat groups get between SIGTERM and SIGKILL. A Celery warm
# shutdown finishes the running task first; acks_late redelivers anything we cut short.
STOP_GRACE_SECONDS = 10.0
# After SIGKILL the kernel needs a moment to tear the processes down.
KILL_WAIT_SECONDS = 5.0
# Migrations on a fresh SQLite database take a few seconds; /readyz also waits for the
# first broker connection. Past this we keep running but say that it is not ready.
READY_TIMEOUT_SECONDS = 90.0
# Celery workers `make run` starts, each running one job at a time (--pool=solo).
WORKER_PROCESSES = 2

# Re-entrant: a signal handler may print while the main thread is inside say().
_print_lock = threading.RLock()


def say(message: str, *, prefix: str = "stack") -> None:
    """Print one line of ours, in the same column layout as the children's output."""
    with _print_lock:
        for line in message.splitlines() or [""]:
            sys.stdout.write(f"{prefix:<10}| {line}\n")
        sys.stdout.flush()


class Interrupted(BaseException):  # noqa: N818 - a control-flow signal, like KeyboardInterrupt
    """Raised in the main thread by a stop signal (BaseException: `except Exception` in
    library code on the way must not swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StackError(Exception):
    """A step failed or a process died: the message says which and where its log is."""


# --- Ports ------------------------------------------------------------------------------


def seaweed_ports(s3_port: int) -> PortSet:
    """Return the SeaweedFS port set for an S3 port: DEFAULT_PORTS for 18433, and the same
    offsets from any other S3 port (master +1000, volume -253, filer +555), so a second
    stack (a test beside a developer's `make run`) needs only one number."""
    ports = PortSet(
        master=s3_port + (DEFAULT_PORTS.master - DEFAULT_PORTS.s3),
        volume=s3_port + (DEFAULT_PORTS.volume - DEFAULT_PORTS.s3),
        filer=s3_port + (DEFAULT_PORTS.filer - DEFAULT_PORTS.s3),
        s3=s3_port,
    )
    if min(ports.all_ports()) < 1024 or max(ports.all_ports()) > 65535:
        raise StackError(
            f"LABELVAULT_S3_PORT={s3_port} gives ports outside 1024-65535 "
            f"({ports.all_ports()}); pick an S3 port between 1277 and 54535"
        )
    return ports


def port_holders(ports: Iterable[int]) -> dict[int, str]:
    """Return, for each port that someone listens on at 127.0.0.1/any, who it is."""
    wanted = set(ports)
    holders: dict[int, str] = {}
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):
        conns = []
    for conn in conns:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port not in wanted:
            continue
        who = "another process"
        if conn.pid:
            try:
                proc = psutil.Process(conn.pid)
                who = f"pid {conn.pid} ({' '.join(proc.cmdline())[:120]})"
            except psutil.Error:
                who = f"pid {conn.pid}"
        holders[conn.laddr.port] = who
    return holders


def require_free(ports: Iterable[int], *, what: str, hint: str) -> None:
    """Raise StackError naming the holders when any port is taken."""
    ports = list(ports)
    busy = [p for p in ports if not port_free(p)]
    if not busy:
        return
    holders = port_holders(busy)
    lines = [f"cannot start {what}: port(s) {', '.join(map(str, busy))} already in use"]
    for port in busy:
        lines.append(f"  {port}: {holders.get(port, 'unknown process')}")
    lines.append(hint)
    raise StackError("\n".join(lines))


# --- Children ---------------------------------------------------------------------------


@dataclass
class Child:
    """One process we start: its own session, its output to a log file and the terminal."""

    name: str
    argv: list[str]
    log_path: Path
    # SIGTERM only the main process, not its group: a Celery worker then stops its own
    # pool (warm shutdown, about 6 s); SIGTERM on its pool processes too makes it report
    # them lost and hang until SIGKILL.
    term_leader_only: bool = False
    process: subprocess.Popen[bytes] | None = None
    _pump: threading.Thread | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the pump thread
        log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.argv)}\n".encode())
        self.process = subprocess.Popen(
            self.argv,
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C at the terminal reaches only us, and we stop the whole
            # group (the worker's pool, runserver's reloader) with one killpg.
            start_new_session=True,
        )
        self._pump = threading.Thread(
            target=_pump, args=(self.name, self.process.stdout, log), daemon=True
        )
        self._pump.start()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def poll(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def wait_output(self, timeout: float = 2.0) -> None:
        """Let the pump finish copying what the process printed before it exited."""
        if self._pump is not None:
            self._pump.join(timeout)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _pump(name: str, stream: IO[bytes] | None, log: IO[bytes]) -> None:
    """Copy a child's output, line by line, to its log and (prefixed) to our stdout."""
    if stream is None:
        return
    try:
        for raw in iter(stream.readline, b""):
            log.write(raw)
            log.flush()
            # A closed terminal must not stop the copying: the child would block on a full
            # pipe. The log keeps everything.
            with contextlib.suppress(OSError, ValueError):
                say(raw.decode(errors="replace").rstrip("\n"), prefix=name)
    except (OSError, ValueError):
        pass
    finally:
        log.close()


# --- The stack --------------------------------------------------------------------------


class Stack:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        # The stack is for development: DEBUG on unless the caller says otherwise (the
        # Makefile's `run` target does the same). Must precede the settings import.
        os.environ.setdefault("DEBUG", "1")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        from django.conf import settings

        try:
            self.debug: bool = settings.DEBUG
            self.var_dir = Path(settings.VAR_DIR).resolve()
            access_key, secret_key = settings.S3_ACCESS_KEY, settings.S3_SECRET_KEY
        except Exception as exc:  # ImproperlyConfigured: missing secret with DEBUG off
            raise StackError(f"settings: {exc}") from exc

        self.log_dir = self.var_dir / "log"
        self.state_path = self.var_dir / "stack.json"
        self.web_port = _env_int("LABELVAULT_PORT", 8000)
        self.external_s3 = bool(os.environ.get("S3_ENDPOINT"))
        self.seaweed: SeaweedServer | None = None
        if not self.external_s3:
            self.seaweed = SeaweedServer(
                data_dir=self.var_dir / "s3",
                access_key=access_key,
                secret_key=secret_key,
                ports=seaweed_ports(_env_int("LABELVAULT_S3_PORT", DEFAULT_PORTS.s3)),
                log_path=self.log_dir / "seaweedfs.log",
            )
        self.children: list[Child] = []
        self.owns_state = False
        # (pid, create_time) of every process seen below us, to check none outlives us.
        self.seen: dict[int, float] = {}

        self.env = dict(os.environ)  # DJANGO_SETTINGS_MODULE included (set above)
        self.env.update(
            {
                "VAR_DIR": str(self.var_dir),
                "PYTHONUNBUFFERED": "1",  # stream output through our pipes as it comes
            }
        )
        if self.seaweed is not None:
            self.env.update(
                {
                    "S3_ENDPOINT": self.seaweed.endpoint,
                    "S3_ACCESS_KEY": access_key,
                    "S3_SECRET_KEY": secret_key,
                    "S3_SECURE": "0",
                }
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/"

    # --- start ------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, supervise until a signal or a death, stop everything."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _raise_interrupted)
        code = 0
        try:
            self.prepare()
            self.start_all()
            self.supervise()
        except Interrupted as stop:
            say(f"{signal.Signals(stop.signum).name} received: stopping")
        except StackError as exc:
            say(f"ERROR: {exc}")
            code = 1
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, _still_stopping)
            if not self.stop_all():
                code = 1
            if self.owns_state:  # never the file of another stack we refused to disturb
                self.state_path.unlink(missing_ok=True)
        return code

    def prepare(self) -> None:
        for sub in ("", "log", "s3"):
            (self.var_dir / sub).mkdir(parents=True, exist_ok=True)
        self.check_previous_run()
        require_free(
            [self.web_port],
            what=f"the web server on 127.0.0.1:{self.web_port}",
            hint="Another `make run`? Stop it, or set LABELVAULT_PORT to another port.",
        )
        if self.seaweed is not None:
            require_free(
                self.seaweed.ports.all_ports(),
                what=f"SeaweedFS (S3 on {self.seaweed.endpoint})",
                hint=(
                    "A previous `make run` (or its SeaweedFS) is probably still running: stop "
                    "it first. Or set LABELVAULT_S3_PORT to use other ports, or S3_ENDPOINT "
                    "(with S3_ACCESS_KEY/S3_SECRET_KEY) to use an S3 server you run yourself."
                ),
            )
        self.write_state()

    def check_previous_run(self) -> None:
        """Refuse to share VAR_DIR with a live stack; stop what a killed one left behind."""
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return
        owner = state.get("pid")
        if _alive(owner, state.get("create_time")):
            raise StackError(
                f"another stack (pid {owner}) is running with {self.var_dir}: stop it first "
                f"(Ctrl-C in its terminal, or kill {owner})"
            )
        leftovers = _recorded_alive(state.get("processes", {}))
        if leftovers:
            say(
                "a previous run was killed before it could clean up; stopping what it left: "
                + ", ".join(f"{p.pid} ({p.name()})" for p in leftovers)
            )
            _terminate(leftovers)

    def write_state(self) -> None:
        """Record who we and our children are, so a later run can clean up after a crash."""
        self.owns_state = True
        me = psutil.Process()
        state = {
            "pid": me.pid,
            "create_time": me.create_time(),
            "processes": {str(pid): ct for pid, ct in self.seen.items()},
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_path)

    def start_all(self) -> None:
        started = time.monotonic()
        if self.seaweed is not None:
            say(f"starting SeaweedFS on {self.seaweed.endpoint} (data in {self.seaweed.data_dir})")
            try:
                self.seaweed.start()
            except RuntimeError as exc:
                raise StackError(f"SeaweedFS did not start: {exc}") from exc
            finally:
                self.record()
        else:
            say(f"using the S3 server at S3_ENDPOINT={os.environ['S3_ENDPOINT']}")

        manage = [sys.executable, str(BASE_DIR / "manage.py")]
        self.step("migrate", [*manage, "migrate", "--noinput"])
        self.step("bootstrap", [*manage, "storage_bootstrap"])
        if self.debug:
            self.step("seed_demo", [*manage, "seed_demo"])
        else:
            self.step("static", [*manage, "collectstatic", "--noinput"])
            say("DEBUG is off: no demo users (create one with `manage.py createsuperuser`)")

        celery = [sys.executable, "-m", "celery", "-A", "config"]
        # Two solo workers, one job each: as fast as prefork's two children (each job
        # has a GIL of its own) without prefork's parent process, a third copy of Django
        # (bench ingest: 375 MB instead of 460 MB; one threads worker is leaner, 260 MB,
        # but its two jobs share one GIL and import 15-20% slower).
        for n in range(1, WORKER_PROCESSES + 1):
            self.spawn(
                f"worker-{n}",
                [*celery, "worker", "--loglevel=INFO", "--pool=solo", f"--hostname=worker{n}@%h"],
                term_leader_only=True,
            )
        self.spawn("beat", [*celery, "beat", "--loglevel=INFO"])
        bind = f"127.0.0.1:{self.web_port}"
        if self.debug:
            # runserver reloads on code changes and shows tracebacks: what development wants.
            self.spawn("web", [*manage, "runserver", bind])
        else:
            # DEBUG off means "like production": collected static files, a real server.
            self.spawn(
                "web",
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "config.wsgi",
                    "--bind",
                    bind,
                    "--workers",
                    "2",
                    "--access-logfile",
                    "-",
                ],
            )
        say(f"setup took {time.monotonic() - started:.1f} s; waiting for {self.url}readyz")

    def step(self, name: str, argv: list[str]) -> None:
        """Run a one-shot command to completion; raise StackError if it fails."""
        child = Child(name=name, argv=argv, log_path=self.log_dir / "setup.log")
        self.children.append(child)
        child.start(self.env)
        self.record()
        assert child.process is not None
        code = child.process.wait()
        child.wait_output()
        if code != 0:
            raise StackError(
                f"`{' '.join(argv[1:])}` failed with exit code {code} (log: {child.log_path})"
            )

    def spawn(self, name: str, argv: list[str], *, term_leader_only: bool = False) -> None:
        child = Child(
            name=name,
            argv=argv,
            log_path=self.log_dir / f"{name}.log",
            term_leader_only=term_leader_only,
        )
        self.children.append(child)
        child.start(self.env)
        self.record()

    # --- supervise --------------------------------------------------------------------

    def record(self) -> None:
        """Remember every process now below us (pid and start time) and save the state."""
        try:
            for proc in psutil.Process().children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    self.seen[proc.pid] = proc.create_time()
        except psutil.Error:
            pass
        self.write_state()

    def supervise(self) -> NoReturn:
        long_running = [c for c in self.children if c.name in ("worker", "beat", "web")]
        started = time.monotonic()
        ready = False
        warned = False
        last_record = 0.0
        while True:
            for child in long_running:
                code = child.poll()
                if code is not None:
                    child.wait_output()
                    raise StackError(
                        f"{child.name} exited with code {code}; the end of {child.log_path}:\n"
                        + child.log_tail()
                    )
            if self.seaweed is not None and not self.seaweed.running():
                raise StackError(
                    "SeaweedFS exited; the end of its log:\n" + self.seaweed.log_tail()
                )
            now = time.monotonic()
            if now - last_record > 2.0:
                self.record()
                last_record = now
            if not ready:
                status, body = _get(self.url + "readyz")
                if status == 200:
                    ready = True
                    self.banner(now - started)
                elif not warned and now - started > READY_TIMEOUT_SECONDS:
                    warned = True
                    say(f"WARNING: {self.url}readyz still answers {status}: {body[:400]}")
            time.sleep(0.5 if not ready else 1.0)

    def banner(self, waited: float) -> None:
        demo = self.var_dir / "demo-users.json"
        lines = [
            "",
            f"Labelvault is ready at {self.url} (/readyz green {waited:.1f} s after the "
            f"servers started, {time.monotonic() - self.t0:.1f} s after the stack started)",
            f"  logs: {self.log_dir}/ (web.log, worker.log, beat.log, seaweedfs.log, setup.log)",
        ]
        if self.debug and demo.exists():
            lines.append(f"  demo users and passwords: printed above by seed_demo, and in {demo}")
        lines += ["  Ctrl-C stops every process started here.", ""]
        say("\n".join(lines))

    # --- stop -------------------------------------------------------------------------

    def stop_all(self) -> bool:
        """Stop every child group, then SeaweedFS; return whether nothing of ours is left."""
        if not self.children and (self.seaweed is None or self.seaweed.process is None):
            return True  # failed before starting anything
        began = time.monotonic()
        self.record()
        running = [c.name for c in self.children if c.poll() is None]
        if running:
            say(
                f"stopping {', '.join(running)} (SIGTERM, SIGKILL after {STOP_GRACE_SECONDS:.0f} s)"
            )
        self._signal_ours(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and self.ours(seaweed=False):
            time.sleep(0.2)
        stubborn = self.ours(seaweed=False)
        if stubborn:
            say(
                f"still running after {STOP_GRACE_SECONDS:.0f} s, sending SIGKILL: "
                + ", ".join(_describe(p) for p in stubborn)
            )
            self._signal_ours(signal.SIGKILL)
            deadline = time.monotonic() + KILL_WAIT_SECONDS
            while time.monotonic() < deadline and self.ours(seaweed=False):
                time.sleep(0.1)
        for child in self.children:
            child.wait_output(timeout=1.0)

        if running:
            say(f"{', '.join(running)} stopped after {time.monotonic() - began:.1f} s")
        if self.seaweed is not None and self.seaweed.running():
            say("stopping SeaweedFS")
            try:
                self.seaweed.stop()
            except subprocess.TimeoutExpired:
                say("SeaweedFS did not exit after SIGKILL")

        left = self.ours(seaweed=False) + self.ours(seaweed=True)
        if left:
            say("WARNING: still running after stop: " + ", ".join(_describe(p) for p in left))
            return False
        say(
            f"stopped in {time.monotonic() - began:.1f} s: none of the {len(self.seen)} "
            "processes started here is running"
        )
        return True

    def ours(self, *, seaweed: bool) -> list[psutil.Process]:
        """Return our live processes: SeaweedFS's group (`seaweed`) or all the others.

        Ours means a recorded (pid, start time), or a member of the group of a child we
        have not reaped yet (so its pid, the group id, cannot have been reused).
        """
        for child in self.children:
            child.poll()
        sw_pid = None
        if self.seaweed is not None and self.seaweed.process is not None:
            sw_pid = self.seaweed.process.pid
        leaders = {c.pid for c in self.children if c.process and c.process.returncode is None}
        if self.seaweed is not None and self.seaweed.running() and sw_pid is not None:
            leaders.add(sw_pid)
        found = []
        for proc in _live_processes():
            try:
                created, pgid = proc.create_time(), os.getpgid(proc.pid)
            except (psutil.Error, OSError):
                continue
            recorded = self.seen.get(proc.pid)
            mine = (recorded is not None and abs(created - recorded) < 0.01) or pgid in leaders
            if mine and (pgid == sw_pid) == seaweed:
                found.append(proc)
        return found

    def _signal_ours(self, sig: signal.Signals) -> None:
        """Signal the group of every running child (catching members we never saw) and
        every other recorded process of ours (members of a group whose leader exited)."""
        signalled: set[int] = set()
        for child in reversed(self.children):  # web first, the worker last
            if child.process is not None and child.poll() is None:
                if sig == signal.SIGTERM and child.term_leader_only:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, sig)
                else:
                    _killpg(child.pid, sig)
                signalled.add(child.pid)
        for proc in self.ours(seaweed=False):
            # Once only: a second SIGTERM means something else to some programs.
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(proc.pid) not in signalled:
                    proc.send_signal(sig)  # psutil refuses a pid reused meanwhile


# --- helpers ----------------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise StackError(f"{name} must be a port number, not {raw!r}") from None


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def _still_stopping(signum: int, frame: object) -> None:
    say(
        "already stopping: every process gets SIGKILL at the latest "
        f"{STOP_GRACE_SECONDS:.0f} s after the first signal; please wait"
    )


def _killpg(pgid: int | None, sig: signal.Signals) -> None:
    if pgid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _live_processes() -> list[psutil.Process]:
    procs = []
    for proc in psutil.process_iter(["status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and proc.pid != os.getpid():
            procs.append(proc)
    return procs


def _alive(pid: object, create_time: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        proc = psutil.Process(pid)
        return (
            proc.status() != psutil.STATUS_ZOMBIE
            and abs(proc.create_time() - float(create_time)) < 0.01  # type: ignore[arg-type]
        )
    except (psutil.Error, TypeError, ValueError):
        return False


def _recorded_alive(processes: dict[str, float]) -> list[psutil.Process]:
    """Return the live processes among recorded (pid, start time) pairs; a reused pid has
    another start time, so this never picks a stranger."""
    found = []
    for pid, created in processes.items():
        try:
            proc = psutil.Process(int(pid))
            if proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - created) < 0.01:
                found.append(proc)
        except (psutil.Error, ValueError, TypeError):
            continue
    return found


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} ({' '.join(proc.cmdline())[:80]})"
    except psutil.Error:
        return str(proc.pid)


def _terminate(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=STOP_GRACE_SECONDS)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=KILL_WAIT_SECONDS)


def _get(url: str) -> tuple[int, str]:
    """GET a local URL; return (status, body), status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - our own loopback URL
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, ValueError) as exc:
        return 0, str(exc)


def main() -> int:
    try:
        stack = Stack()
    except StackError as exc:
        say(f"ERROR: {exc}")
        return 1
    return stack.run()


if __name__ == "__main__":
    sys.exit(main())
