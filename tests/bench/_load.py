"""Load-generation helpers shared by the benchmarks: the production HTTP server, an HTTP/1.1 client on raw
sockets (keeping its connection alive where the server does), closed-loop load with N concurrent
clients, latency percentiles, RSS sampling.

The benchmarks run on the same (small, shared) machine as the server, so the client is kept cheap:
requests are pre-serialised bytes, one socket per client thread, and a response is parsed only as far as
its status line and Content-Length.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCAL_DATABASE_URL = "postgres://recsvc@127.0.0.1:5432/recsvc"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
BENCH_SECRET_KEY = "benchmarks-only-not-a-secret-3f9c1e7a5b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e"
BENCH_FIELD_ENCRYPTION_KEY = "YmVuY2htYXJrcy1vbmx5LW5vdC1hLXNlY3JldC0wMDA="  # Fernet: 32 bytes, url-safe base64


def bootstrap_django(*, migrate: bool = True) -> None:
    """Point Django at the local PostgreSQL/Redis (unless the environment says otherwise) and set it up."""
    os.environ.setdefault("DATABASE_URL", LOCAL_DATABASE_URL)
    os.environ.setdefault("REDIS_URL", LOCAL_REDIS_URL)
    # With a database configured the service refuses built-in keys. These are the benchmarks' own, fixed
    # so that a kept shop's signed artifacts verify on the next run; servers they start inherit them.
    os.environ.setdefault("DJANGO_SECRET_KEY", BENCH_SECRET_KEY)
    os.environ.setdefault("RECSVC_FIELD_ENCRYPTION_KEY", BENCH_FIELD_ENCRYPTION_KEY)
    os.environ.setdefault("RECSVC_HTTPS_ONLY", "0")  # plain HTTP on loopback, no proxy in front
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


def database_settings() -> dict[str, str]:
    """The PostgreSQL memory and WAL settings the run had, for the JSON line."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s) ORDER BY name",
                       [["shared_buffers", "effective_cache_size", "max_wal_size"]])
        return {f"pg_{name}": value for name, value in cursor.fetchall()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the server -------------------------------------------------------------------------------------


@dataclass
class Server:
    host: str
    port: int
    process: subprocess.Popen
    description: str

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        with contextlib.suppress(OSError):
            return [int(pid) for pid in children.read_text().split()]
        return []


GUNICORN_CONFIG = REPO / "config" / "gunicorn.py"


@contextlib.contextmanager
def gunicorn(
    *, workers: int | None = None, worker_class: str | None = None, threads: int | None = None,
    env: dict[str, str] | None = None, timeout_s: float = 60.0,
) -> Iterator[Server]:
    """The web server as deployed (`config/gunicorn.py`) on a free loopback port; `workers`,
    `worker_class` and `threads` override the configuration's for experiments."""
    import runpy

    port = free_port()
    binary = Path(sys.executable).with_name("gunicorn")
    deployed = runpy.run_path(str(GUNICORN_CONFIG))  # its defaults; the shape is passed explicitly below
    workers = workers or deployed["workers"]
    worker_class = worker_class or deployed["worker_class"]
    threads = threads or deployed.get("threads", 1)  # gunicorn turns a sync worker given threads into gthread
    args = [
        str(binary), "-c", str(GUNICORN_CONFIG), "-b", f"127.0.0.1:{port}", "--log-level", "warning",
        "-w", str(workers), "-k", worker_class, "--threads", str(threads),
    ]
    process = subprocess.Popen(args, cwd=REPO, env={**os.environ, **(env or {})}, start_new_session=True)
    description = f"gunicorn -c config/gunicorn.py: {worker_class}, {workers} workers" + (
        f" x {threads} threads" if worker_class == "gthread" else ""
    )
    server = Server("127.0.0.1", port, process, description)
    try:
        wait_until_healthy(server, timeout_s)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_healthy(server: Server, timeout_s: float) -> None:
    """Until the server (gunicorn, or a proxy in front of it) answers /healthz with 200."""
    deadline = time.monotonic() + timeout_s
    request = build_request("GET", "/healthz")
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.description} exited with {server.process.returncode}")
        try:
            with contextlib.closing(HttpConnection(server.address, timeout=2)) as conn:
                if conn.send(request)[0] == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{server.description} did not answer /healthz in time")


# --- a minimal HTTP/1.1 client ---------------------------------------------------------------------------

LOAD_GENERATOR = "python threads, raw HTTP/1.1 sockets (kept alive where the server allows), same machine"


def build_request(
    method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None, host: str = "127.0.0.1"
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HttpConnection:
    """One persistent connection; reconnects when the server closes it (gunicorn's sync worker does)."""

    def __init__(self, address: tuple[str, int], timeout: float = 120.0):
        self.address = address
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.reconnects = 0

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, request: bytes) -> tuple[int, bytes]:
        """Send a pre-built request; return (status, body). Retries once on a connection the server closed."""
        for attempt in (0, 1):
            fresh = self.sock is None
            sock = self.sock or self._connect()
            try:
                sock.sendall(request)
                return self._read_response(sock)
            except (ConnectionError, _Closed):
                self.close()
                self.reconnects += 1
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")

    def _read_response(self, sock: socket.socket) -> tuple[int, bytes]:
        buffer = b""
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            data = sock.recv(65536)
            if not data:
                raise _Closed
            buffer += data
        head, rest = buffer[:end].decode("latin-1"), buffer[end + 4:]
        status_line, *header_lines = head.split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            length = int(headers["content-length"])
            while len(rest) < length:
                data = sock.recv(max(65536, length - len(rest)))
                if not data:
                    raise _Closed
                rest += data
            body = rest[:length]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            raise NotImplementedError("chunked responses are not expected from this service")
        else:  # no length: the body ends with the connection
            while data := sock.recv(65536):
                rest += data
            body = rest
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body


class _Closed(Exception):
    pass


# --- closed-loop load -----------------------------------------------------------------------------------


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    reconnects: int = 0
    bodies: list[bytes] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    @property
    def rate(self) -> float:
        return self.count / self.wall_s if self.wall_s else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def run_closed_loop(
    address: tuple[str, int], requests: Sequence[bytes], *, concurrency: int, keep_bodies: bool = False,
    max_seconds: float = 600.0,
) -> LoadResult:
    """Send every request once from `concurrency` clients, each waiting for its answer before the next.

    Clients take the next request from a shared cursor, so a slow answer does not stall the others.
    Stops early (with what it has) after `max_seconds`.
    """
    result = LoadResult()
    cursor = iter(range(len(requests)))
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds
    errors: list[BaseException] = []
    start_gate = threading.Barrier(concurrency + 1)

    def client() -> None:
        conn = HttpConnection(address)
        latencies: list[float] = []
        statuses: Counter = Counter()
        bodies: list[bytes] = []
        try:
            start_gate.wait()
            while time.monotonic() < deadline:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    break
                started = time.perf_counter_ns()
                status, body = conn.send(requests[index])
                latencies.append((time.perf_counter_ns() - started) / 1e6)
                statuses[status] += 1
                if keep_bodies:
                    bodies.append(body)
        except BaseException as exc:  # surfaced below: a benchmark must not report half a run as a result
            errors.append(exc)
        finally:
            conn.close()
            with lock:
                result.latencies_ms.extend(latencies)
                result.statuses.update(statuses)
                result.reconnects += conn.reconnects
                result.bodies.extend(bodies)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    result.wall_s = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} load client(s) failed") from errors[0]
    return result


# --- statistics and reporting ---------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of the samples; NaN when there are none."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50)


def print_table(title: str, rows: Sequence[tuple[str, str]], out=sys.stdout) -> None:
    width = max((len(name) for name, _ in rows), default=10)
    print(f"\n{title}", file=out)
    print("-" * (width + 30), file=out)
    for name, value in rows:
        print(f"{name:<{width}}  {value}", file=out)


# --- process memory and CPU -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far; 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_status_kb(pid: int, field_name: str) -> int | None:
    """A `Vm*` field of /proc/<pid>/status in kB (VmRSS: now, VmHWM: peak), None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None
