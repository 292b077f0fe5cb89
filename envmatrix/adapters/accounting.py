"""Request accounting: what one adapter sent, for `--json`'s `requests` object (issue 13).

Counts every HTTP request (each page of a list, each retry) by endpoint template
(`GET /repos/{owner}/{repo}/environments`), the answers 304 Not Modified, the largest number of
requests in flight at once, the primary rate limit left after the last answer and the seconds
requests waited for GitHub's secondary-limit budget (github_budget.py). Thread-safe:
observation may send requests from several threads. Holds no URL values beyond the templates,
no headers and no bodies.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

# path segment -> the placeholder of the segment after it (GitHub's REST docs' names)
_NAMED_AFTER = {
    "environments": "{environment_name}",
    "secrets": "{secret_name}",
    "variables": "{name}",
    "orgs": "{org}",
}
_FIXED = {"public-key"}


def endpoint_template(verb: str, url: str) -> str:
    """`GET /repos/{owner}/{repo}/environments/{environment_name}/secrets` for
    `GET https://host/api/v3/repos/acme/web/environments/production/secrets?per_page=100`:
    the route, without the host, API prefix, query or any name of a repository or secret."""
    parts = [p for p in urlparse(url).path.split("/") if p]
    if "repos" in parts:
        parts = parts[parts.index("repos") :]
    elif "orgs" in parts:
        parts = parts[parts.index("orgs") :]
    out: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        out.append(part)
        if part == "repos":
            out += ["{owner}", "{repo}"][: len(parts) - i - 1]
            i += 3
            continue
        if part in _NAMED_AFTER and i + 1 < len(parts) and parts[i + 1] not in _FIXED:
            out.append(_NAMED_AFTER[part])
            i += 2
            continue
        i += 1
    return f"{verb.upper()} /" + "/".join(out)


class RequestStats:
    """Thread-safe request counts of one adapter (one run)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_endpoint: Counter[str] = Counter()
        self.not_modified = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.rate_limit_remaining: int | None = None
        self.paced_seconds = 0.0

    @contextmanager
    def request(self, verb: str, url: str) -> Iterator[None]:
        """Around one HTTP request: counts it and how many are in flight meanwhile."""
        with self._lock:
            self.by_endpoint[endpoint_template(verb, url)] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def answered(self, status: int, headers: dict[str, Any]) -> None:
        """An answer's status and headers (lower-case names): 304s and the rate limit left."""
        remaining = headers.get("x-ratelimit-remaining")
        with self._lock:
            if status == 304:
                self.not_modified += 1
            if remaining is not None:
                try:
                    self.rate_limit_remaining = int(float(remaining))
                except ValueError:
                    pass

    def paced(self, seconds: float) -> None:
        """A request waited `seconds` for the secondary-limit budget before it was sent."""
        with self._lock:
            self.paced_seconds += seconds

    def to_json(self) -> dict[str, Any]:
        """The contract's `requests` object; `rate_limit_remaining` is null when no answer
        carried the header (GHES with rate limiting off, or no request sent); `paced_seconds`:
        the seconds requests waited for the secondary-limit budget, summed over threads
        (rounded to milliseconds; 0 when the budget is off)."""
        with self._lock:
            return {
                "by_endpoint": dict(sorted(self.by_endpoint.items())),
                "not_modified": self.not_modified,
                "max_in_flight": self.max_in_flight,
                "rate_limit_remaining": self.rate_limit_remaining,
                "paced_seconds": round(self.paced_seconds, 3),
            }


_VAULT_VERBS = {"GET": "read", "LIST": "list", "POST": "write", "PUT": "write", "DELETE": "delete"}


def vault_operation(method: str, url: str, kv_mount: str) -> str:
    """`kv metadata list secret/` for `LIST https://vault:8200/v1/secret/metadata/apps/x`: the
    operation and the mount it went to, never a path below the mount nor a key name.

    KV v2 under `kv_mount`: `kv read|write|delete` (data/), `kv metadata list|read|write|delete`,
    `kv config read`, `kv delete|undelete|destroy` (versions); `transit hmac MOUNT/`;
    `token lookup-self`; `login auth/METHOD/`; anything else `VERB FIRST-SEGMENT/`."""
    parsed = urlparse(url)
    path = parsed.path.split("/v1/", 1)[-1].strip("/")
    verb = method.upper()
    if verb == "GET" and "list=true" in parsed.query:
        verb = "LIST"
    word = _VAULT_VERBS.get(verb, verb.lower())
    mount = kv_mount.strip("/")
    if path == mount or path.startswith(mount + "/"):
        part = path[len(mount) :].strip("/").split("/", 1)[0]
        if part in ("data", "metadata", "config"):
            what = {"data": "", "metadata": " metadata", "config": " config"}[part]
            return f"kv{what} {word} {mount}/"
        if part in ("delete", "undelete", "destroy"):
            return f"kv {part} {mount}/"
        return f"kv {word} {mount}/"
    parts = path.split("/")
    if path == "auth/token/lookup-self":
        return "token lookup-self"
    if parts[0] == "auth" and parts[-1] == "login":
        return f"login {'/'.join(parts[:-1])}/"
    if len(parts) >= 2 and parts[1] == "hmac":
        return f"transit hmac {parts[0]}/"
    return f"{word} {parts[0]}/"


class VaultRequests:
    """Thread-safe counts of the HTTP round trips one Vault adapter made (each retry, each
    login), by `vault_operation`; for `--json`'s `vault_requests`."""

    def __init__(self, kv_mount: str) -> None:
        self._lock = threading.Lock()
        self._mount = kv_mount
        self.by_operation: Counter[str] = Counter()

    def answered(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """A `requests` response hook: count the round trip `response` ended."""
        request = getattr(response, "request", None)
        method, url = getattr(request, "method", None), getattr(request, "url", None)
        if isinstance(method, str) and isinstance(url, str):
            operation = vault_operation(method, url, self._mount)
            with self._lock:
                self.by_operation[operation] += 1

    def to_json(self) -> dict[str, Any]:
        """`{"by_operation": {"kv read secret/": 40, ...}, "total": 43}`."""
        with self._lock:
            return {
                "by_operation": dict(sorted(self.by_operation.items())),
                "total": sum(self.by_operation.values()),
            }
