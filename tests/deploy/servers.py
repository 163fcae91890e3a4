"""Servers a fault test starts for itself on loopback, never the shared ones: a PostgreSQL cluster of its
own (initdb + pg_ctl from the installed binaries) and a Redis Cluster of three masters."""

from __future__ import annotations

import glob
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.bench._load import free_port


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's binaries (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _as_postgres(args: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` account there."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@dataclass
class OwnPostgres:
    """A PostgreSQL cluster in a temporary folder on a loopback port; `postgres` is its superuser."""

    bin: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args]),
            check=True, capture_output=True,
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._ctl("-l", str(self.root / "log"), "-o", options, "start")

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as in a restart or a failover."""
        self._ctl("-m", "fast", "stop")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Runs `sql` as a script (statement by statement, as psql reads a file)."""
        result = subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
             "-v", "ON_ERROR_STOP=1", "-qtA"],
            input=sql, check=True, capture_output=True, text=True,
        )
        return result.stdout

    def url(self, user: str, database: str) -> str:
        return f"postgres://{user}@127.0.0.1:{self.port}/{database}"


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    root = Path(tempfile.mkdtemp(prefix="recsvc-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = OwnPostgres(binaries, root, free_port())
    subprocess.run(
        _as_postgres([str(binaries / "initdb"), "-D", str(server.data), "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--no-sync"]),
        check=True, capture_output=True,
    )
    server.start()
    try:
        yield server
    finally:
        subprocess.run(
            _as_postgres([str(binaries / "pg_ctl"), "-D", str(server.data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


class ClusterPorts(list):
    """The cluster's ports (a list, as the tests index it), and a node's loss and return: `stop(port)` kills
    that redis-server, `start(port)` starts it again with its own nodes.conf, so it rejoins as the master of
    the slots it held."""

    def __init__(self, root: Path, ports: list[int]) -> None:
        super().__init__(ports)
        self.root = root
        self.processes: dict[int, subprocess.Popen] = {}

    def start(self, port: int) -> None:
        folder = self.root / str(port)
        folder.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(folder / "nodes.conf"), "--dir", str(folder), "--save", "",
             "--appendonly", "no", "--cluster-node-timeout", "2000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait(lambda: _cli(port, "ping") == "PONG")

    def stop(self, port: int) -> None:
        """SIGKILL: the node is gone at once, as a crashed or lost machine."""
        process = self.processes.pop(port, None)
        if process is not None:
            process.kill()
            process.wait(timeout=30)

    def state(self, port: int) -> str:
        """`ok` or `fail`, as that node sees the cluster."""
        info = _cli(port, "cluster", "info")
        return next((line.split(":", 1)[1].strip() for line in info.splitlines()
                     if line.startswith("cluster_state:")), "")

    def terminate_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.wait(timeout=30)
        self.processes.clear()


@contextmanager
def own_redis_cluster(masters: int = 3) -> Iterator[ClusterPorts]:
    """`masters` redis-server processes in cluster mode, joined with `redis-cli --cluster create`; yields
    their ports once every slot is served."""
    cluster = ClusterPorts(Path(tempfile.mkdtemp(prefix="recsvc-redis-cluster-")), _cluster_ports(masters))
    try:
        for port in cluster:
            cluster.start(port)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{port}" for port in cluster),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )
        _wait(lambda: all(cluster.state(port) == "ok" for port in cluster))
        yield cluster
    finally:
        cluster.terminate_all()
        shutil.rmtree(cluster.root, ignore_errors=True)


def _cluster_ports(count: int) -> list[int]:
    """Free ports whose cluster bus port (port + 10000) is free and exists: an ephemeral port from the
    kernel can lie above 55535."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 30000)
        if port not in ports and all(_free(p) for p in (port, port + 10000)):
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cli(port: int, *args: str) -> str:
    result = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True)
    return result.stdout.strip()


def _wait(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise TimeoutError("server did not come up")


@dataclass
class OwnRedis:
    """One redis-server on a loopback port, without persistence: a restart comes back empty (a Redis lost
    and replaced), on the same port."""

    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait(lambda: _cli(self.port, "ping") == "PONG")

    def stop(self) -> None:
        """SIGKILL: gone at once, as a crashed or lost server (no goodbye to the clients)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None

    def cli(self, *args: str) -> str:
        return _cli(self.port, *args)


@contextmanager
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
