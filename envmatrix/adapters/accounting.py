"""Request accounting: what one adapter sent, for `--json`'s `requests` object (issue 13).

Counts every HTTP request (each page of a list, each retry) by endpoint template
(`GET /repos/{owner}/{repo}/environments`), the answers 304 Not Modified, the largest number of
requests in flight at once and the primary rate limit left after the last answer. Thread-safe:
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

    def to_json(self) -> dict[str, Any]:
        """The contract's `requests` object; `rate_limit_remaining` is null when no answer
        carried the header (GHES with rate limiting off, or no request sent)."""
        with self._lock:
            return {
                "by_endpoint": dict(sorted(self.by_endpoint.items())),
                "not_modified": self.not_modified,
                "max_in_flight": self.max_in_flight,
                "rate_limit_remaining": self.rate_limit_remaining,
            }
