"""Fixture plugin: a throwaway PostgreSQL cluster and a moto server, once per test session.

- `postgres_server` (session): a PostgreSQL cluster on a free loopback port, trust auth, superuser
  `postgres`; `.dsn(user=..., dbname=...)`, `.host`, `.port`. Built from the Debian binaries under
  /usr/lib/postgresql/*/bin. As root they run as the `postgres` system user (initdb and postgres
  refuse to run as root). Missing binaries fail the test: CI installs them, so a skip would hide a
  broken machine.
- `moto_server` (session): moto in server mode on 127.0.0.1; `.endpoint_url`.
- `aws_env` (function): resets moto's state, then returns fake credentials, a region and
  `AWS_ENDPOINT_URL` for boto3 clients and subprocesses (the autouse `clean_environ` fixture
  removes AWS_* from os.environ, so hand these over explicitly).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

_POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_START_ATTEMPTS = 3


@dataclass(frozen=True)
class PostgresServer:
    """Where the throwaway cluster listens."""

    host: str
    port: int

    def dsn(self, user: str = "postgres", dbname: str = "postgres") -> str:
        """A libpq connection string (trust auth: no password)."""
        return f"host={self.host} port={self.port} user={user} dbname={dbname}"


@dataclass(frozen=True)
class MotoEndpoint:
    """Where the moto server listens."""

    endpoint_url: str


def _postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL server bin dir, or a failed test naming the fix."""
    candidates = [Path(d) for d in Path("/").glob(_POSTGRES_BIN_GLOB.lstrip("/"))]
    candidates = [d for d in candidates if (d / "initdb").is_file() and (d / "pg_ctl").is_file()]
    if not candidates:
        pytest.fail(
            f"PostgreSQL server binaries not found ({_POSTGRES_BIN_GLOB}/initdb); "
            "install them: apt-get update && apt-get install -y postgresql",
            pytrace=False,
        )
    return max(candidates, key=lambda d: int(re.sub(r"\D", "", d.parent.name) or 0))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _PostgresCluster:
    """initdb/pg_ctl in a temp dir, as the `postgres` user when we are root."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.workdir = Path(tempfile.mkdtemp(prefix="envmatrix-pg-"))
        self.data = self.workdir / "data"
        self.log = self.workdir / "postgres.log"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.workdir, user="postgres", group="postgres")

    def run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.workdir)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip()}")

    def init(self) -> None:
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self, port: int) -> None:
        # fsync off: the cluster is thrown away, and it makes DDL-heavy tests much faster.
        options = f"-p {port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-10:])
        except OSError:
            return "(no log)"


def _start_cluster(cluster: _PostgresCluster) -> int:
    """Start on a free port; retry when another process grabbed the port first."""
    for _ in range(_START_ATTEMPTS):
        port = _free_port()
        try:
            cluster.start(port)
        except RuntimeError:
            if "already in use" not in cluster.log_tail():
                raise RuntimeError(f"PostgreSQL did not start:\n{cluster.log_tail()}") from None
            continue
        return port
    raise RuntimeError(f"PostgreSQL found no free port in {_START_ATTEMPTS} attempts")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on 127.0.0.1, stopped and deleted after the session."""
    cluster = _PostgresCluster(_postgres_bin_dir())
    try:
        cluster.init()
        port = _start_cluster(cluster)
        try:
            yield PostgresServer(host="127.0.0.1", port=port)
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(cluster.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoEndpoint]:
    """moto in server mode: every AWS service on one loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoEndpoint(endpoint_url=f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_server: MotoEndpoint) -> dict[str, str]:
    """Fake credentials pointed at a freshly reset moto; pass to boto3 or a subprocess env."""
    reset = urllib.request.Request(f"{moto_server.endpoint_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(reset, timeout=10):
        pass
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_server.endpoint_url,
        # Keep boto3 away from any real ~/.aws profile of whoever runs the tests.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
