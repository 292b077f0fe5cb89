"""A threaded HTTP reverse proxy that adds a fixed latency to every round trip, and counts them.

bench/side_by_side.py puts it in front of OpenBao (5 ms per Vault round trip): envmatrix and the
baseline talk to the proxy as if it were Vault. Each request is read in full, held `delay`
seconds, forwarded on a keep-alive connection of its own thread and answered in full; requests
are handled concurrently (one thread per client connection), so the delay never serializes
clients that send several requests at once.

Counters (round trips, the most in flight at once) are read and reset over HTTP, so the proxy
can run in its own process: `GET /_proxy/stats` answers `{"round_trips": N, "max_in_flight": M}`,
`DELETE /_proxy/stats` resets both. Paths under `/_proxy/` are never forwarded (Vault's are all
under `/v1/`).

Usage: `.venv/bin/python bench/latency_proxy.py --upstream http://127.0.0.1:8200 --delay 0.005`
prints one line, `proxy listening on http://HOST:PORT`, and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import urlsplit

# headers that describe one hop, not the message (RFC 9110 section 7.6.1), plus the framing the
# proxy redoes itself
_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


class LatencyProxy:
    """Reverse proxy to `upstream` (`http://host:port`) adding `delay` seconds per request.

    Use as a context manager or start()/stop(); `url` is where clients connect. Raises
    ValueError for an upstream that is not a plain http:// URL."""

    def __init__(self, upstream: str, delay: float, host: str = "127.0.0.1", port: int = 0):
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        if delay < 0:
            raise ValueError("delay must be >= 0 seconds")
        self.upstream = (parts.hostname, parts.port or 80)
        self.delay = delay
        self._lock = threading.Lock()
        self._round_trips = self._in_flight = self._max_in_flight = 0
        self._server = _Server((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LatencyProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="latency-proxy",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stats(self) -> dict[str, int]:
        """`{"round_trips": N, "max_in_flight": M}` since the last reset."""
        with self._lock:
            return {"round_trips": self._round_trips, "max_in_flight": self._max_in_flight}

    def reset(self) -> None:
        with self._lock:
            self._round_trips = 0
            self._max_in_flight = self._in_flight

    def _enter(self) -> None:
        with self._lock:
            self._round_trips += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of new connections beyond it waits
    # for a SYN retransmission (1 s), which would read as latency the proxy did not add
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], proxy: LatencyProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the proxy only counts."""

    def _forward(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else None
        if self.path.startswith("/_proxy/"):
            self._admin()
            return
        proxy._enter()
        try:
            if proxy.delay:
                time.sleep(proxy.delay)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            status, reason, answer_headers, answer = self._upstream_request(body, headers)
        finally:
            proxy._leave()
        self.send_response(status, reason)
        for name, value in answer_headers:
            if name.lower() not in _HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    def _upstream_request(
        self, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        for attempt in (1, 2):  # a kept-alive upstream connection may have been closed
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(*self.server.proxy.upstream)
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                response = self._upstream.getresponse()
                answer = response.read()
                return response.status, response.reason, response.getheaders(), answer
            except (ConnectionError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _admin(self) -> None:
        proxy = self.server.proxy
        if self.path.rstrip("/") != "/_proxy/stats" or self.command not in ("GET", "DELETE"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.command == "DELETE":
            proxy.reset()
        data = json.dumps(proxy.stats()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def finish(self) -> None:
        super().finish()
        if self._upstream is not None:
            self._upstream.close()

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = do_LIST = _forward  # noqa: N815


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/latency_proxy.py", description=__doc__)
    parser.add_argument("--upstream", required=True, metavar="URL")
    parser.add_argument("--delay", type=float, default=0.005, metavar="SECONDS")
    parser.add_argument("--port", type=int, default=0, metavar="PORT")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with LatencyProxy(args.upstream, args.delay, port=args.port) as proxy:
        print(f"proxy listening on {proxy.url}", flush=True)
        while not stop.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
