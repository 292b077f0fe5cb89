"""GitHub's secondary rate limits, paced ahead of time (issue 13 item 1).

GitHub.com answers a request over its secondary limits with 403/429 and a wait ("Rate limits for
the REST API" → secondary rate limits): no more than 900 points per minute to one REST endpoint,
where a GET, HEAD or OPTIONS costs 1 point and a POST, PATCH, PUT or DELETE 5; and no more than
80 content-creating requests per minute. `RequestBudget` keeps every request of one adapter
(every thread, every page, every retry) under both before it is sent, so those answers are not
provoked in the first place:

- points: a sliding window of 60 s per endpoint (the route, e.g.
  `/repos/{owner}/{repo}/environments`, whatever the verb: a GET and a DELETE of one route share
  it, which is stricter than GitHub); default 850 (envmatrix/settings.py) on api.github.com
  and *.ghe.com — GitHub's 900 less a margin of 50 (about 5 %) for requests GitHub counts a
  moment later than they leave here and for other clients of the same token —, off on GHES and
  the sandbox (their secondary limits are off unless an administrator sets them);
  `ENVMATRIX_GITHUB_POINTS_PER_MINUTE` sets it anywhere (0: off).
- content: every write (POST, PATCH, PUT, DELETE) counts against `CONTENT_PER_MINUTE` = 75 (80
  less a margin) in any 60 s, across all endpoints, whenever the points budget is on. GitHub's
  500 content-creating requests per hour are not paced ahead (it is not documented which writes
  create "content"; pacing 500 an hour would stretch an apply of a few thousand secrets over
  days): an answer that says so holds every thread for its `Retry-After`.
- a 304 answered from the ETag cache is still a request GitHub received: it costs its point.
- a single request costing more than the whole budget (a write under a budget below 5) is sent
  alone in its window.

Requests are placed first come, first served: a request waits (the adapter's `sleep`) until the
window has room for it, and no later request of the same endpoint goes before it. The time spent
waiting is reported as `paced_seconds` in `--json`'s `requests`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from envmatrix.adapters.accounting import RequestStats, endpoint_template

WINDOW_SECONDS = 60.0
CONTENT_PER_MINUTE = 75  # GitHub's 80 content-creating requests a minute, less a margin of 5
WRITE_VERBS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
WRITE_POINTS = 5
READ_POINTS = 1


def points_of(verb: str) -> int:
    """GitHub's secondary-limit points of one REST request: 5 for a write, 1 otherwise."""
    return WRITE_POINTS if verb.upper() in WRITE_VERBS else READ_POINTS


class _Window:
    """Requests placed in time (start, cost), oldest first, none starting before the last one."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit, self.seconds = limit, seconds
        self.placed: deque[tuple[float, int]] = deque()
        self.total = 0

    def last(self) -> float:
        return self.placed[-1][0] if self.placed else float("-inf")

    def forget_before(self, now: float) -> None:
        """Drop what can no longer share a window with a request starting at `now` or later."""
        while self.placed and self.placed[0][0] <= now - self.seconds:
            self.total -= self.placed.popleft()[1]

    def earliest(self, start: float, cost: int) -> float:
        """The earliest time >= `start` (>= every placed start) at which `cost` more fits in
        the window (start - seconds, start]."""
        cost = min(cost, self.limit)
        running = self.total
        for when, spent in self.placed:
            if when > start - self.seconds:
                if running + cost <= self.limit:
                    break
                start = when + self.seconds  # wait for this one to leave the window
            running -= spent
        return start

    def place(self, start: float, cost: int) -> None:
        self.placed.append((start, min(cost, self.limit)))
        self.total += min(cost, self.limit)


class RequestBudget:
    """Thread-safe pacing of one adapter's requests under GitHub's secondary limits.

    `points_per_minute`: points per endpoint in any 60 s (0: no budget, nothing waits);
    `content_per_minute`: writes in any 60 s across endpoints (0: not limited; only applied
    when the points budget is on). `clock` (seconds, monotonic) and `sleep` are injectable."""

    def __init__(
        self,
        points_per_minute: int = 0,
        *,
        content_per_minute: int = CONTENT_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self.points_per_minute = int(points_per_minute)
        self.content_per_minute = int(content_per_minute) if self.points_per_minute > 0 else 0
        self._clock, self._sleep, self._window = clock, sleep, window
        self._lock = threading.Lock()
        self._endpoints: dict[str, _Window] = {}
        self._content = _Window(max(self.content_per_minute, 1), window)

    @property
    def enabled(self) -> bool:
        return self.points_per_minute > 0

    def acquire(self, verb: str, url: str) -> float:
        """Wait until `verb url` fits the budget and charge it; the seconds waited (0.0 when
        it was sent at once or the budget is off)."""
        if not self.enabled:
            return 0.0
        route = endpoint_template(verb, url).split(" ", 1)[1]
        cost = points_of(verb)
        writes = self.content_per_minute > 0 and verb.upper() in WRITE_VERBS
        with self._lock:
            now = self._clock()
            window = self._endpoints.get(route)
            if window is None:
                window = self._endpoints[route] = _Window(self.points_per_minute, self._window)
            window.forget_before(now)
            start = max(now, window.last())
            if writes:
                self._content.forget_before(now)
                start = max(start, self._content.last())
            while True:  # the earliest start both windows agree on (each only moves it later)
                start = window.earliest(start, cost)
                if not writes:
                    break
                later = self._content.earliest(start, 1)
                if later == start:
                    break
                start = later
            window.place(start, cost)
            if writes:
                self._content.place(start, 1)
        wait = start - now
        if wait > 0:
            self._sleep(wait)
            return wait
        return 0.0


def paced_requests(requester: Any, budget: RequestBudget, stats: RequestStats) -> None:
    """Send every JSON request of `requester` (PyGithub's `requestJson`, each page and retry)
    only when `budget` has room for it; the wait is added to `stats.paced_seconds`. Wrap it
    after the request counting, so a request waiting its turn is not counted in flight."""
    if not budget.enabled:
        return
    send = requester.requestJson

    def paced(verb: str, url: str, *args: Any, **kwargs: Any) -> Any:
        waited = budget.acquire(verb, url)
        if waited > 0:
            stats.paced(waited)
        return send(verb, url, *args, **kwargs)

    requester.requestJson = paced
