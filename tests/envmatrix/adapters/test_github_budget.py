"""GitHub's secondary limits paced ahead (issue 13 item 1): points per endpoint per minute (GET 1,
writes 5), content-creating requests per minute, off on GHES and the sandbox unless set.

No timed test: a fake clock advanced by the fake sleep; every request's start is the time the
thread would send it (the time it read plus what it was told to sleep).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import pytest

from envmatrix.adapters.accounting import endpoint_template
from envmatrix.adapters.github import GitHubAdapter
from envmatrix.adapters.github_budget import CONTENT_PER_MINUTE, RequestBudget, points_of
from envmatrix.adapters.github_cache import GitHubCache
from envmatrix.adapters.vault import VaultAdapter
from envmatrix.demo.run import seed_vault
from envmatrix.errors import UsageError
from envmatrix.pipeline.desired import desired_state
from envmatrix.pipeline.observe import observe
from envmatrix.pipeline.plan import diff
from envmatrix.sandbox import GitHubSandbox
from envmatrix.settings import github_points_per_minute
from tests.envmatrix.test_concurrent_observe import REPOSITORIES, TOKEN, org, org_policy
from tests.world import REPO, World

__all__ = ["org"]  # the 12-repository sandbox fixture

ENV_SECRETS = "/repos/acme/web/environments/production/secrets"
REPO_VARIABLES = "/repos/acme/web/actions/variables"


class FakeClock:
    """A monotonic clock that moves only when a thread sleeps; remembers, per thread, when that
    thread's current request starts (the time it read plus its sleep)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0
        self._lock = threading.Lock()
        self._mine = threading.local()

    def __call__(self) -> float:
        with self._lock:
            self._mine.read = self._mine.start = self.now
            return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        with self._lock:
            self._mine.start = self._mine.read + seconds
            self.now = max(self.now, self._mine.start)
            self.slept += seconds

    def start(self) -> float:
        return float(self._mine.start)


def most_in_any_window(starts: Iterable[tuple[float, int]], seconds: float = 60.0) -> int:
    """The largest sum of costs of requests starting within any half-open `seconds` window."""
    ordered = sorted(starts)
    times = [t for t, _ in ordered]
    best = 0
    for i, (t, _) in enumerate(ordered):
        end = bisect_left(times, t + seconds)
        best = max(best, sum(cost for _, cost in ordered[i:end]))
    return best


def run_threads(
    budget: RequestBudget, clock: FakeClock, requests: list[tuple[str, str]], threads: int
) -> dict[str, list[tuple[float, int]]]:
    """Send `requests` (verb, url) through `budget` from `threads` threads; each endpoint's
    (start, points)."""
    sent: dict[str, list[tuple[float, int]]] = defaultdict(list)
    lock = threading.Lock()
    queue = list(reversed(requests))

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                verb, url = queue.pop()
            budget.acquire(verb, url)
            start = clock.start()
            route = endpoint_template(verb, url).split(" ", 1)[1]
            with lock:
                sent[route].append((start, points_of(verb)))
                sent["(writes)"] += [(start, 1)] if points_of(verb) > 1 else []

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sent


@pytest.mark.parametrize(("points", "endpoints"), [(850, 1), (850, 3), (100, 2), (7, 1)])
def test_2000_gets_from_4_threads_never_exceed_the_budget_in_any_minute(
    points: int, endpoints: int
) -> None:
    clock = FakeClock()
    budget = RequestBudget(points, clock=clock, sleep=clock.sleep)
    requests = [("GET", f"/repos/acme/web{i % 5}/route{i % endpoints}") for i in range(2000)]
    sent = run_threads(budget, clock, requests, threads=4)
    assert sum(len(starts) for starts in sent.values()) == 2000
    for starts in sent.values():
        assert most_in_any_window(starts) <= points
    if endpoints == 1:  # and no slower than the budget allows: the last request starts in
        # the first minute in which its count fits (with several endpoints, threads waiting on
        # one endpoint's minute hold back the others', as they would in a real pool)
        assert clock.now == pytest.approx(60.0 * ((2000 - 1) // points))


def test_writes_cost_5_points_and_share_the_route_with_its_reads() -> None:
    clock = FakeClock()
    budget = RequestBudget(50, clock=clock, sleep=clock.sleep)
    sent = run_threads(budget, clock, [("PUT", f"{ENV_SECRETS}/S{i}") for i in range(25)], 1)
    starts = sent["/repos/{owner}/{repo}/environments/{environment_name}/secrets/{secret_name}"]
    # 50 points a minute: 10 writes at 0 s, 10 at 60 s, 5 at 120 s
    assert [t for t, _ in starts] == [0.0] * 10 + [60.0] * 10 + [120.0] * 5
    # a GET of the same route after 8 writes (40 points) fits; the ninth write then does not
    clock = FakeClock()
    budget = RequestBudget(44, clock=clock, sleep=clock.sleep)
    route = f"{ENV_SECRETS}/S"
    assert [budget.acquire(v, route) for v in ["PUT"] * 8 + ["GET"] * 4] == [0.0] * 12
    assert budget.acquire("DELETE", route) == 60.0  # 44 points spent: 5 more must wait
    assert budget.acquire("GET", f"{REPO_VARIABLES}") == 0.0  # another endpoint: its own budget


@pytest.mark.parametrize("threads", [1, 4])
def test_writes_stay_under_the_content_creation_limit_across_endpoints(threads: int) -> None:
    clock = FakeClock()
    budget = RequestBudget(1_000_000, clock=clock, sleep=clock.sleep)
    writes = [
        (verb, url)
        for i in range(100)
        for verb, url in (("PUT", f"{ENV_SECRETS}/S{i}"), ("PATCH", f"{REPO_VARIABLES}/V{i}"))
    ]
    reads = [("GET", ENV_SECRETS)] * 100
    sent = run_threads(budget, clock, writes + reads, threads)
    assert CONTENT_PER_MINUTE == 75  # GitHub's 80 a minute, less a margin
    assert len(sent["(writes)"]) == 200
    assert most_in_any_window(sent["(writes)"]) <= CONTENT_PER_MINUTE
    assert clock.now == 120.0  # 75 at 0 s, 75 at 60 s, 50 at 120 s
    reads_sent = sent["/repos/{owner}/{repo}/environments/{environment_name}/secrets"]
    assert len(reads_sent) == 100


def test_reads_are_not_held_by_the_content_limit() -> None:
    clock = FakeClock()
    budget = RequestBudget(1_000_000, clock=clock, sleep=clock.sleep)
    assert {budget.acquire("POST", f"{REPO_VARIABLES}/V{i}") for i in range(75)} == {0.0}
    assert budget.acquire("GET", ENV_SECRETS) == 0.0  # reads create no content
    assert budget.acquire("DELETE", f"{ENV_SECRETS}/S") == 60.0  # the 76th write waits


def test_a_request_costing_more_than_the_budget_goes_alone_in_its_minute() -> None:
    clock = FakeClock()
    budget = RequestBudget(3, clock=clock, sleep=clock.sleep)
    assert [budget.acquire("PUT", f"{ENV_SECRETS}/S{i}") for i in range(3)] == [0.0, 60.0, 60.0]
    assert budget.acquire("GET", ENV_SECRETS + "/X") == 60.0


def test_off_means_nothing_waits() -> None:
    clock = FakeClock()
    budget = RequestBudget(0, clock=clock, sleep=clock.sleep)
    assert not budget.enabled and budget.content_per_minute == 0
    assert {budget.acquire("PUT", f"{ENV_SECRETS}/S{i}") for i in range(5000)} == {0.0}
    assert clock.slept == 0.0


@pytest.mark.parametrize(
    ("api_url", "value", "expected"),
    [
        (None, None, 850),  # api.github.com: GitHub's 900 less a margin
        ("https://api.acme.ghe.com", None, 850),
        ("https://ghes.example/api/v3", None, 0),  # GHES: off unless set
        ("http://127.0.0.1:8123", None, 0),  # the sandbox
        ("http://127.0.0.1:8123", "30", 30),
        (None, "0", 0),  # off on api.github.com too, when asked
        (None, "5000", 5000),
        ("https://ghes.example/api/v3", "1000000", 1_000_000),
    ],
)
def test_the_budget_defaults_by_host_and_follows_the_environment(
    api_url: str | None, value: str | None, expected: int
) -> None:
    environ = {"GITHUB_TOKEN": "t"}
    if api_url is not None:
        environ["GITHUB_API_URL"] = api_url
    if value is not None:
        environ["ENVMATRIX_GITHUB_POINTS_PER_MINUTE"] = value
    github = GitHubAdapter.from_environment(environ)
    assert github._budget.points_per_minute == expected
    assert github._budget.enabled == (expected > 0)
    github.close()


@pytest.mark.parametrize("value", ["-1", "1.5", "lots", "nan", "inf", "1000001", ""])
def test_a_bad_budget_is_a_usage_error_naming_the_variable(value: str) -> None:
    with pytest.raises(UsageError, match="ENVMATRIX_GITHUB_POINTS_PER_MINUTE"):
        github_points_per_minute({"ENVMATRIX_GITHUB_POINTS_PER_MINUTE": value}, dotcom=True)


@pytest.mark.parametrize("value", ["-5", "ten", "2.5"])
def test_a_bad_budget_stops_the_cli_with_one_line_and_exit_3(world: World, value: str) -> None:
    world.seed()
    world.env["ENVMATRIX_GITHUB_POINTS_PER_MINUTE"] = value
    result = world.run("plan")
    assert result.code == 3
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "ENVMATRIX_GITHUB_POINTS_PER_MINUTE" in lines[0], result.err
    assert "Traceback" not in result.err


def test_a_304_from_the_etag_cache_still_costs_its_point(
    sandbox: GitHubSandbox, tmp_path: Path
) -> None:
    clock = FakeClock()
    cache = GitHubCache(tmp_path / "cache")
    github = GitHubAdapter(
        sandbox.url,
        "sandbox-token",
        cache=cache,
        points_per_minute=2,
        clock=clock,
        sleep=clock.sleep,
    )
    for _ in range(3):
        github.list_environments(REPO)
    stats = github.requests.to_json()
    assert stats["not_modified"] == 2  # GitHub answered 304 twice, and counted both requests
    assert clock.slept == 60.0  # so the third GET waited for the first to leave the minute
    assert stats["paced_seconds"] == 60.0
    github.close()


def test_observation_with_a_tiny_budget_is_paced_and_observes_the_same(
    org: GitHubSandbox, vault: VaultAdapter, tmp_path: Path
) -> None:
    policy = org_policy(tmp_path, vault.mount)
    seed_vault(policy, vault)
    desired = desired_state(policy)
    for repo in REPOSITORIES[::2]:
        org.create_environment(repo, "staging")
    free = GitHubAdapter(org.url, TOKEN, concurrency=4)
    expected = observe(desired, vault, free, 4)
    clock = FakeClock()
    paced = GitHubAdapter(
        org.url, TOKEN, concurrency=4, points_per_minute=5, clock=clock, sleep=clock.sleep
    )
    observed = observe(desired, vault, paced, 4)
    assert observed.fingerprint() == expected.fingerprint()
    assert diff(desired, observed) == diff(desired, expected)
    stats, free_stats = paced.requests.to_json(), free.requests.to_json()
    assert stats["by_endpoint"] == free_stats["by_endpoint"]  # no request added or lost
    busiest = max(stats["by_endpoint"].values())
    assert busiest > 5
    assert clock.now >= 60.0 * ((busiest - 1) // 5)  # spread over the minutes the budget needs
    assert clock.slept > 0
    assert stats["paced_seconds"] == pytest.approx(clock.slept, abs=0.01)
    assert free_stats["paced_seconds"] == 0
    free.close()
    paced.close()


def test_plan_json_reports_paced_seconds_and_the_sandbox_is_not_paced(world: World) -> None:
    world.seed()
    plan = world.run("plan", "--json")
    assert plan.code == 0, plan.err
    assert plan.json()["requests"]["paced_seconds"] == 0  # off on the sandbox by default
    world.env["ENVMATRIX_GITHUB_POINTS_PER_MINUTE"] = "100000"  # on, with room to spare
    plan = world.run("plan", "--json")
    assert plan.code == 0, plan.err
    assert plan.json()["requests"]["paced_seconds"] == 0
