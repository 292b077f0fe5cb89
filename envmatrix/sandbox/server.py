"""The GitHub sandbox: a real HTTP server speaking the GitHub REST operations envmatrix uses.

Request pipeline (per request, see ``_Handler._dispatch``):

1. read the body, take one clock reading (used for ``Date`` and any ``updated_at`` written);
2. ``/_sandbox/...`` goes to the admin API (token auth, no counting, no faults, no rate limit);
3. match a route (unknown → 404) and count it as ``(METHOD, operationId)``;
4. check ``Authorization`` (→ 401): the sandbox token, or a live installation token on its own
   account's repositories and organization (another account → 404); the App operations verify
   the App's JWT themselves (see ``envmatrix/sandbox/apps.py``);
5. apply the first firing :class:`Fault` (delay, then reset / canned answer);
6. refuse when the primary rate limit is exhausted (→ 403);
7. run the handler; 200 GETs get an ``ETag`` and ``If-None-Match`` may turn them into a 304;
8. charge the rate limit (not for 304s or ``GET /rate_limit``) and add the rate-limit headers.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from envmatrix.sandbox.admin import AdminApi
from envmatrix.sandbox.api import GitHubApi, Route, match_route
from envmatrix.sandbox.apps import JWT_OPERATIONS, AppRegistry
from envmatrix.sandbox.faults import Fault, FaultBook
from envmatrix.sandbox.http_types import DOCS, Request, Response, error_response
from envmatrix.sandbox.state import (
    Clock,
    Environment,
    InvalidSecret,
    Repository,
    SandboxState,
    SecretScope,
    VariableScope,
    valid_name,
)

RATE_LIMIT_DOCS = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID."
)
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Unicorn! &middot; GitHub</title></head>"
    b"<body><h1>No server is currently available to service your request.</h1>"
    b"<p>Sorry about that. Please try refreshing and contact us if the problem persists.</p>"
    b"</body></html>\n"
)
_FAULT_MESSAGES = {
    401: "Bad credentials",
    403: "Resource not accessible by personal access token",
    404: "Not Found",
    409: "Conflict",
    422: "Validation Failed",
    429: SECONDARY_MESSAGE,
    500: "Server Error",
    502: "Server Error",
}


@dataclass(frozen=True)
class RequestRecord:
    """One line of the request log: never bodies, headers or values."""

    method: str
    path: str
    status: int


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its open connections so stop() can close them."""

    daemon_threads = True
    # socketserver listens with a backlog of 5: a burst of new connections beyond it (a client
    # opening its pool of 16) waits for a SYN retransmission (1 s), serializing what a delay
    # fault should hold concurrently
    request_queue_size = 128
    sandbox: GitHubSandbox

    def __init__(self, address: tuple[str, int], sandbox: GitHubSandbox) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down keep-alive connections so their handler threads end promptly."""
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    """Parses HTTP, runs the pipeline described in the module docstring, writes the answer."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus the client's
    # delayed ACK costs ~40 ms per keep-alive request.
    disable_nagle_algorithm = True
    server: _Server
    _now: datetime | None = None

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch()

    do_PUT = do_POST = do_PATCH = do_DELETE = do_GET  # noqa: N815

    def version_string(self) -> str:
        """The ``Server`` header, as GitHub sends it."""
        return "GitHub.com"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence stderr logging; the sandbox keeps its own method/path/status log."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header must come from the same clock reading as any updated_at written.
        if self._now is not None and timestamp is None:
            return formatdate(self._now.timestamp(), usegmt=True)
        return super().date_time_string(timestamp)

    # -- pipeline ------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        sandbox = self.server.sandbox
        body = self._read_body()
        split = urlsplit(self.path)
        self._now = sandbox.clock.now()
        req = Request(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            # Lower-cased names: HTTP header names are case-insensitive.
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            now=self._now,
            base_url=sandbox.url,
        )
        if split.path.startswith("/_sandbox/"):
            self._send(req, self._admin(req), admin=True)
            return
        found = match_route(self.command, split.path)
        if found is None:
            self._send(req, self._unrouted(req))
            return
        route, params = found
        sandbox._count(self.command, route.operation)
        sandbox._enter()
        try:
            self._routed(req, route, params)
        finally:
            sandbox._leave()

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _admin(self, req: Request) -> Response:
        if not self._authorized():
            return _bad_credentials()
        return self.server.sandbox._admin.handle(req)

    def _unrouted(self, req: Request) -> Response:
        return _bad_credentials() if not self._authorized() else error_response(404, "Not Found")

    def _routed(self, req: Request, route: Route, params: dict[str, str]) -> None:
        sandbox = self.server.sandbox
        refusal = self._refusal(route, params, req)
        if refusal is not None:
            self._send(req, refusal)
            return
        fault = sandbox._faults.pick(self.command, req.path, route.operation)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
            # The answer is produced after the delay, so read the clock again.
            self._now = req.now = sandbox.clock.now()
        if fault is not None and fault.reset:
            self._abort()
            return
        if fault is not None and fault.answers:
            self._send(req, self._fault_response(req, route, params, fault), charge=True)
            return
        with sandbox.state.lock:
            if sandbox.state.rate.exhausted(req.now):
                self._send(req, _primary_rate_limited())
                return
        response = sandbox._api.handle(route, req, params)
        response = _conditional(req, response)
        charge = response.status != 304 and route.operation != "rate-limit/get"
        if fault is not None and fault.late_answer:
            time.sleep(fault.late_answer)  # handled already: only the answer comes late
        self._send(req, response, charge=charge)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        token = self.server.sandbox.token
        return scheme.lower() in ("token", "bearer") and credential.strip() == token

    def _refusal(self, route: Route, params: dict[str, str], req: Request) -> Response | None:
        """None when the request may go on: the sandbox token, a JWT operation (its handler
        checks the JWT), or an installation token on its own account's resources."""
        if route.operation in JWT_OPERATIONS or self._authorized():
            return None
        scheme, _, credential = self.headers.get("Authorization", "").partition(" ")
        account = None
        if scheme.lower() in ("token", "bearer"):
            account = self.server.sandbox.apps.account_of(credential.strip(), req.now)
        if account is None:
            return _bad_credentials()
        owner = params.get("owner") or params.get("org")
        if owner is not None and owner.lower() != account.lower():
            return error_response(404, "Not Found")
        return None

    def _fault_response(
        self, req: Request, route: Route, params: dict[str, str], fault: Fault
    ) -> Response:
        if fault.truncate:
            # Only GETs run the (read-only) handler; a faulted write must not change state.
            if req.method == "GET":
                full = self.server.sandbox._api.handle(route, req, params).body or b"{}"
            else:
                full = b'{"message":"Server Error","documentation_url":"' + DOCS.encode() + b'"}'
            return Response(200, full[: max(1, len(full) // 2)])
        status = fault.status or (403 if fault.secondary else 502)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.html:
            return Response(status, HTML_PAGE, "text/html; charset=utf-8", headers)
        if fault.secondary:
            response = error_response(status, SECONDARY_MESSAGE, RATE_LIMIT_DOCS)
        else:
            message = _FAULT_MESSAGES.get(status) or HTTPStatus(status).phrase
            response = error_response(status, message)
        response.headers.update(headers)
        return response

    def _abort(self) -> None:
        """Close the socket with RST (SO_LINGER 0) so the client sees a connection reset."""
        self.close_connection = True
        self.server.sandbox._record(self.command, urlsplit(self.path).path, 0)
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _send(
        self, req: Request, response: Response, *, charge: bool = False, admin: bool = False
    ) -> None:
        sandbox = self.server.sandbox
        with sandbox.state.lock:
            if charge:
                sandbox.state.rate.charge(req.now)
            limits = {} if admin else sandbox.state.rate.headers(req.now)
        if not admin:
            # Record before answering so a client that has its answer also sees it in the log.
            sandbox._record(req.method, req.path, response.status)
        self.send_response(response.status)
        headers = {**limits, **response.headers}
        if response.content_type is not None:
            headers["Content-Type"] = response.content_type
        if response.status not in (204, 304):
            headers["Content-Length"] = str(len(response.body))
        headers.setdefault("X-GitHub-Media-Type", "github.v3; format=json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if response.status not in (204, 304) and self.command != "HEAD":
            self.wfile.write(response.body)


def _bad_credentials() -> Response:
    return error_response(401, "Bad credentials")


def _primary_rate_limited() -> Response:
    return error_response(
        403,
        "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, "
        "please include the request ID.",
        "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
        "#about-the-primary-rate-limit",
    )


def _etag(body: bytes, link: str = "") -> str:
    """A strong validator of the answer: its body and its ``Link`` header, so a page whose
    neighbours appear or disappear (same items, another ``rel="next"``) gets a new ETag."""
    return '"' + hashlib.sha256(body + b"\n" + link.encode()).hexdigest()[:40] + '"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = [c.strip() for c in header.split(",")]
    return "*" in candidates or any(c.removeprefix("W/") == etag for c in candidates)


def _conditional(req: Request, response: Response) -> Response:
    """Add an ETag to 200 GETs and answer 304 when If-None-Match carries it."""
    if req.method != "GET" or response.status != 200:
        return response
    etag = _etag(response.body, response.headers.get("Link", ""))
    if _etag_matches(req.headers.get("if-none-match"), etag):
        return Response(304, b"", None, {"ETag": etag})
    response.headers["ETag"] = etag
    return response


class GitHubSandbox:
    """In-process GitHub REST server for tests and the demo. See the package docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = "sandbox-token",
        repositories: Iterable[str] = (),
        rate_limit: int = 5000,
        clock: Clock | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.clock = clock or Clock()
        self.state = SandboxState(self.clock, rate_limit)
        self.apps = AppRegistry()
        self._api = GitHubApi(self.state, self.apps)
        self._admin = AdminApi(self)
        self._faults = FaultBook()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._log: deque[RequestRecord] = deque(maxlen=10_000)
        self._stats_lock = threading.Lock()
        self._in_flight = self._max_in_flight = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        for full_name in repositories:
            self.add_repository(full_name)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> GitHubSandbox:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        # A short poll interval keeps stop() fast (shutdown waits for one poll).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"github-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> GitHubSandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL without a path prefix, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    # -- state helpers -------------------------------------------------------------------------
    def add_repository(self, full_name: str) -> None:
        """Register a repository ``owner/name`` (its owner becomes an organization)."""
        self.state.add_repository(full_name)

    def add_user(self, login: str) -> int:
        """Register a user account (for required reviewers); returns its id."""
        return self.state.add_user(login).id

    def add_team(self, org: str, slug: str) -> int:
        """Register a team of an organization (for required reviewers); returns its id."""
        return self.state.add_team(org, slug).id

    def environment_protection(self, repo: str, environment: str) -> dict[str, Any]:
        """What an environment's protection holds, reviewers by name: `{wait_timer,
        prevent_self_review, reviewers: ["user:LOGIN" | "team:ORG/SLUG" | "User#ID"...],
        deployment_branches: "all" | "protected" | ["branch:main", "tag:v*"...]}`."""
        with self.state.lock:
            env = self._env(self._repository(repo), environment)
            policy = env.branch_policy
            branches: str | list[str] = (
                "all"
                if policy is None
                else "protected"
                if policy["protected_branches"]
                else sorted(f"{p.type}:{p.name}" for p in env.branch_policies)
            )
            return {
                "wait_timer": env.wait_timer,
                "prevent_self_review": env.prevent_self_review,
                "reviewers": sorted(self._reviewer_name(r.type, r.id) for r in env.reviewers),
                "deployment_branches": branches,
            }

    def _reviewer_name(self, kind: str, ident: int) -> str:
        if kind == "User" and (user := self.state.user_by_id(ident)) is not None:
            return f"user:{user.login}"
        if kind == "Team" and (team := self.state.team_by_id(ident)) is not None:
            return f"team:{team.org}/{team.slug}"
        return f"{kind}#{ident}"

    def create_environment(self, repo: str, environment: str) -> None:
        """Create an environment directly (no HTTP, not counted)."""
        with self.state.lock:
            self.state.create_environment(self._repository(repo), environment, self.clock.now())

    def environment_names(self, repo: str) -> list[str]:
        """Names of the repository's environments, sorted case-insensitively."""
        with self.state.lock:
            return [env.name for env in self._repository(repo).sorted_environments()]

    def secret_value(self, repo: str, environment: str, name: str) -> str | None:
        """Decrypted value of an environment secret, or None if absent."""
        with self.state.lock:
            env = self._repository(repo).environment(environment)
            record = env.secrets.get(name) if env is not None else None
            return record.text if record is not None else None

    def repository_secret_value(self, repo: str, name: str) -> str | None:
        """Decrypted value of a repository secret, or None if absent."""
        with self.state.lock:
            record = self._repository(repo).secrets.get(name)
            return record.text if record is not None else None

    def organization_secret_value(self, org: str, name: str) -> str | None:
        """Decrypted value of an organization secret, or None if absent."""
        return self._organization_secret_text(org, name, "actions")

    def dependabot_secret_value(self, repo: str, name: str) -> str | None:
        """Decrypted value of a repository's Dependabot secret, or None if absent."""
        with self.state.lock:
            record = self._repository(repo).dependabot.get(name)
            return record.text if record is not None else None

    def organization_dependabot_secret_value(self, org: str, name: str) -> str | None:
        """Decrypted value of an organization's Dependabot secret, or None if absent."""
        return self._organization_secret_text(org, name, "dependabot")

    def _organization_secret_text(self, org: str, name: str, store: str) -> str | None:
        with self.state.lock:
            organization = self.state.organization(org)
            if organization is None:
                return None
            scope = organization.dependabot if store == "dependabot" else organization.secrets
            record = scope.get(name)
            return record.text if record is not None else None

    def organization_variable_value(self, org: str, name: str) -> str | None:
        """Value of an organization variable, or None if absent."""
        with self.state.lock:
            organization = self.state.organization(org)
            record = organization.variables.get(name) if organization is not None else None
            return record.value if record is not None else None

    def organization_access(
        self, org: str, name: str, kind: str = "secret", store: str = "actions"
    ) -> tuple[str, list[str]] | None:
        """(visibility, full names of the selected repositories, sorted) of an organization
        secret (`kind` "secret", `store` "actions" or "dependabot") or variable (`kind`
        "variable"); None if absent."""
        with self.state.lock:
            organization = self.state.organization(org)
            if organization is None:
                return None
            scope: SecretScope | VariableScope = organization.variables
            if kind == "secret":
                scope = organization.dependabot if store == "dependabot" else organization.secrets
            record = scope.get(name)
            if record is None:
                return None
            repos = [self.state.repository_by_id(i) for i in record.selected_repository_ids]
            names = sorted(r.full_name for r in repos if r is not None)
            return record.visibility or "all", names

    def variable_value(self, repo: str, environment: str, name: str) -> str | None:
        """Value of an environment variable, or None if absent."""
        with self.state.lock:
            env = self._repository(repo).environment(environment)
            record = env.variables.get(name) if env is not None else None
            return record.value if record is not None else None

    def repository_variable_value(self, repo: str, name: str) -> str | None:
        """Value of a repository variable, or None if absent."""
        with self.state.lock:
            record = self._repository(repo).variables.get(name)
            return record.value if record is not None else None

    def write_secret_outside(
        self, repo: str, environment: str | None, name: str, value: str
    ) -> None:
        """Set a secret as a human with ``gh secret set`` would: ``updated_at`` becomes now.

        ``environment=None`` writes a repository secret. The environment must exist.
        """
        if not valid_name(name):
            raise ValueError(f"invalid secret name {name!r}")
        data = value.encode()
        if len(data) > 48 * 1024:
            raise InvalidSecret("secret value exceeds 48 KB")
        with self.state.lock:
            repository = self._repository(repo)
            scope = (
                repository.secrets
                if environment is None
                else self._env(repository, environment).secrets
            )
            scope.put(name, data, self.clock.now())

    def write_variable_outside(self, repo: str, environment: str, name: str, value: str) -> None:
        """Create or update an environment variable directly; ``updated_at`` becomes now."""
        if not valid_name(name):
            raise ValueError(f"invalid variable name {name!r}")
        with self.state.lock:
            scope = self._env(self._repository(repo), environment).variables
            now = self.clock.now()
            record = scope.get(name)
            if record is None:
                scope.create(name, value, now)
            else:
                record.value, record.updated_at = value, now

    def register_app(
        self,
        app_id: int,
        public_key: str,
        accounts: Iterable[str] | None = None,
        slug: str | None = None,
    ) -> dict[str, int]:
        """Register a GitHub App (RSA public key, PEM) and install it on `accounts` (default:
        every known organization); returns {account: installation id}. Raises ValueError for a
        key that is not an RSA public key, KeyError for an unknown account."""
        with self.state.lock:
            logins = (
                list(accounts)
                if accounts is not None
                else [org.login for org in self.state.organizations.values()]
            )
            pairs = []
            for login in logins:
                org = self.state.organization(login)
                if org is None:
                    raise KeyError(f"unknown account {login!r}")
                pairs.append((org.login, org.id))
        return self.apps.register(app_id, public_key, pairs, self.clock.now(), slug)

    def expire_installation_tokens(self) -> int:
        """Make every installation token minted so far expire now (GitHub revoking them);
        returns how many were live."""
        return self.apps.expire_tokens(self.clock.now())

    def set_installation_token_ttl(self, seconds: int) -> None:
        """Lifetime of installation tokens minted from now on (GitHub's: 3600 s)."""
        if seconds < 1:
            raise ValueError("token lifetime must be at least 1 second")
        self.apps.token_ttl = seconds

    def advance_clock(self, seconds: float) -> None:
        """Shift the sandbox clock (Date headers, timestamps, rate-limit windows)."""
        self.clock.advance(seconds)

    def _repository(self, full_name: str) -> Repository:
        repo = self.state.repository(full_name)
        if repo is None:
            raise KeyError(f"unknown repository {full_name!r}")
        return repo

    @staticmethod
    def _env(repo: Repository, name: str) -> Environment:
        env = repo.environment(name)
        if env is None:
            raise KeyError(f"unknown environment {name!r} in {repo.full_name}")
        return env

    # -- observation and control ---------------------------------------------------------------
    def request_counts(self) -> Counter[tuple[str, str]]:
        """Requests that reached a route, keyed ``(METHOD, operationId)`` (a copy)."""
        with self._stats_lock:
            return Counter(self._counts)

    def request_log(self) -> list[RequestRecord]:
        """Method, path and status of recent requests (status 0 = connection reset)."""
        with self._stats_lock:
            return list(self._log)

    def reset_counts(self) -> None:
        """Forget request counts, the request log and the most requests seen in flight."""
        with self._stats_lock:
            self._counts.clear()
            self._log.clear()
            self._max_in_flight = self._in_flight

    def max_in_flight(self) -> int:
        """The most routed requests being answered at once since the last reset_counts."""
        with self._stats_lock:
            return self._max_in_flight

    def wait_until_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no routed request is being answered (e.g. a delayed one its client gave up
        on); False if some still is after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._stats_lock:
                if self._in_flight == 0:
                    return True
            time.sleep(0.01)
        return False

    def _enter(self) -> None:
        with self._stats_lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._stats_lock:
            self._in_flight -= 1

    def inject(self, fault: Fault) -> None:
        """Activate a fault."""
        self._faults.add(fault)

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    def set_rate_limit(
        self, remaining: int, reset_in: int = 3600, limit: int | None = None
    ) -> None:
        """Set the primary limit's remaining budget (0 exhausts it) and its reset time."""
        with self.state.lock:
            self.state.rate.set(self.clock.now(), remaining, reset_in, limit)

    def rate_limit_used(self) -> int:
        """Primary rate-limit points spent in the current window (`GET /rate_limit`'s `used`):
        every answered request but 304s, `GET /rate_limit` and the admin API."""
        with self.state.lock:
            return self.state.rate.snapshot(self.clock.now())["used"]

    def _count(self, method: str, operation: str) -> None:
        with self._stats_lock:
            self._counts[(method, operation)] += 1

    def _record(self, method: str, path: str, status: int) -> None:
        with self._stats_lock:
            self._log.append(RequestRecord(method, path, status))
