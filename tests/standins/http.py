"""A small base for local HTTP stand-ins: a stdlib threading server on 127.0.0.1 that hands each
request to `StandIn.handle` and keeps a log of what it received (to prove what was, and was not,
sent)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Received:
    """One request as the stand-in saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def form(self) -> dict[str, str]:
        """The urlencoded body's fields."""
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-serialisable, or bytes as they are
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        self.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        return json.dumps(self.body).encode()


class ThreadedServer:
    """A ThreadingHTTPServer served from a daemon thread: `url`, `stop` and the with-block's
    exit, shared by the stand-ins (each binds its own handler in `start`)."""

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def _serve(
        self, handler: type[BaseHTTPRequestHandler], address: tuple[str, int] = ("127.0.0.1", 0)
    ) -> None:
        self._server = ThreadingHTTPServer(address, handler)
        self._server.daemon_threads = True
        # a short poll interval: stop() waits for the next poll, and tests stop one per test
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """http://host:port of the running server."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class StandIn(ThreadedServer):
    """Start with `with StandIn() as s:` (or start/stop); `url` is `http://127.0.0.1:PORT`."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()

    def handle(self, request: Received) -> Reply:  # pragma: no cover - each stand-in's own
        raise NotImplementedError

    def start(self) -> StandIn:
        self._serve(type("_Bound", (_Handler,), {"stand_in": self}))
        return self

    def __enter__(self) -> Any:
        return self.start()

    def record(self, request: Received) -> None:
        with self._lock:
            self.received.append(request)

    def requests_to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def everything_received(self) -> bytes:
        """Every request's path, query, headers and body, as one byte string."""
        with self._lock:
            return b"\n".join(
                f"{r.method} {r.path} {r.query} {r.headers}".encode() + b"\n" + r.body
                for r in self.received
            )


class _Handler(BaseHTTPRequestHandler):
    stand_in: StandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's signature
        return None

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Received(
            self.command,
            parts.path,
            {k: v[-1] for k, v in parse_qs(parts.query).items()},
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        self.stand_in.record(request)
        reply = self.stand_in.handle(request)
        data = reply.encoded()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve
