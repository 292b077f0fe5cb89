"""Each Fault kind observed on a real socket."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from github import Auth, Github, GithubException, GithubRetry

from envmatrix.sandbox import Fault, GitHubSandbox
from tests.envmatrix.sandbox import OTHER_REPO, REPO, TOKEN, call, put_secret_body

REPO_PATH = f"/repos/{REPO}"
SECRETS = f"{REPO_PATH}/environments/staging/secrets"


def _statuses(sandbox: GitHubSandbox, n: int, path: str = REPO_PATH) -> list[int]:
    return [call(sandbox.url, "GET", path).status for _ in range(n)]


def test_status_with_retry_after(sandbox: GitHubSandbox) -> None:
    sandbox.inject(Fault(operation="repos/get", status=503, retry_after=7))
    reply = call(sandbox.url, "GET", REPO_PATH)
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "7"
    assert reply.json()["message"] == "Service Unavailable"
    assert reply.json()["status"] == "503"


def test_secondary_rate_limit_body(sandbox: GitHubSandbox) -> None:
    sandbox.inject(Fault(method="GET", status=403, secondary=True, retry_after=1))
    reply = call(sandbox.url, "GET", REPO_PATH)
    assert reply.status == 403
    assert reply.json()["message"].startswith("You have exceeded a secondary rate limit")
    assert reply.headers["X-RateLimit-Remaining"] != "0"  # not the primary limit
    assert reply.headers["Retry-After"] == "1"


def test_pygithub_sees_secondary_limit_as_rate_limit(sandbox: GitHubSandbox) -> None:
    sandbox.inject(Fault(operation="repos/get", status=403, secondary=True))
    gh = Github(auth=Auth.Token(TOKEN), base_url=sandbox.url, retry=None)
    with pytest.raises(GithubException) as caught:
        gh.get_repo(REPO)
    assert type(caught.value).__name__ == "RateLimitExceededException"


def test_faulted_write_changes_nothing(sandbox: GitHubSandbox) -> None:
    sandbox.create_environment(REPO, "staging")
    body = put_secret_body(sandbox.url, f"{SECRETS}/public-key", "v")
    sandbox.inject(Fault(method="PUT", path=r"/secrets/", status=500, times=1))
    assert call(sandbox.url, "PUT", f"{SECRETS}/X", body).status == 500
    assert sandbox.secret_value(REPO, "staging", "X") is None
    assert call(sandbox.url, "PUT", f"{SECRETS}/X", body).status == 201
    counts = sandbox.request_counts()
    assert counts[("PUT", "actions/create-or-update-environment-secret")] == 2


def test_delay(sandbox: GitHubSandbox) -> None:
    sandbox.inject(Fault(operation="repos/get", delay=0.4, times=1))
    started = time.monotonic()
    reply = call(sandbox.url, "GET", REPO_PATH)
    elapsed = time.monotonic() - started
    assert reply.status == 200
    assert 0.4 <= elapsed < 2
    started = time.monotonic()
    call(sandbox.url, "GET", REPO_PATH)
    assert time.monotonic() - started < 0.3


@pytest.mark.parametrize(("clients", "operation"), [(8, None), (5, "repos/get"), (12, None)])
def test_a_delay_on_every_request_holds_concurrent_requests_at_once_never_one_after_another(
    sandbox: GitHubSandbox, clients: int, operation: str | None
) -> None:
    # bench/side_by_side.py's latency: a delay answered one request at a time would make every
    # concurrent client look serial; the threaded server holds them all in the delay together
    sandbox.inject(Fault(operation=operation, delay=0.5))
    paths = [REPO_PATH, f"{REPO_PATH}/environments", f"/repos/{OTHER_REPO}"]
    gate = threading.Barrier(clients)

    def one(i: int) -> int:
        gate.wait()
        return call(sandbox.url, "GET", REPO_PATH if operation else paths[i % 3]).status

    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(one, range(clients)))
    assert statuses == [200] * clients
    assert sandbox.max_in_flight() == clients
    assert sum(sandbox.request_counts().values()) == clients


def test_reset_gives_connection_error(sandbox: GitHubSandbox) -> None:
    sandbox.inject(Fault(operation="repos/get", reset=True, times=2))
    with pytest.raises(ConnectionResetError):
        call(sandbox.url, "GET", REPO_PATH)
    session = requests.Session()
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(f"{sandbox.url}{REPO_PATH}", headers={"Authorization": f"token {TOKEN}"})
    assert session.get(f"{sandbox.url}{REPO_PATH}", headers={"Authorization": f"token {TOKEN}"}).ok
    assert sandbox.request_counts()[("GET", "repos/get")] == 3
    assert [r.status for r in sandbox.request_log()] == [0, 0, 200]


def test_html_error_page(sandbox: GitHubSandbox) -> None:
    sandbox.inject(Fault(operation="repos/get", html=True))
    reply = call(sandbox.url, "GET", REPO_PATH)
    assert reply.status == 502
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.body.startswith(b"<!DOCTYPE html>")
    sandbox.clear_faults()
    sandbox.inject(Fault(operation="repos/get", html=True, status=504))
    assert call(sandbox.url, "GET", REPO_PATH).status == 504


def test_truncated_json(sandbox: GitHubSandbox) -> None:
    whole = call(sandbox.url, "GET", REPO_PATH).body
    sandbox.inject(Fault(operation="repos/get", truncate=True))
    reply = call(sandbox.url, "GET", REPO_PATH)
    assert reply.status == 200
    assert whole.startswith(reply.body)
    assert len(reply.body) < len(whole)
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.body)


def test_times_and_after(sandbox: GitHubSandbox) -> None:
    sandbox.inject(Fault(operation="repos/get", status=500, after=2, times=3))
    assert _statuses(sandbox, 7) == [200, 200, 500, 500, 500, 200, 200]


def test_probability_with_seed_is_deterministic(sandbox: GitHubSandbox) -> None:
    sandbox.inject(Fault(operation="repos/get", status=502, probability=0.5, seed=42))
    observed = _statuses(sandbox, 20)
    rng = random.Random(42)
    expected = [502 if rng.random() < 0.5 else 200 for _ in range(20)]
    assert observed == expected
    assert 0 < observed.count(502) < 20
    sandbox.clear_faults()
    sandbox.inject(Fault(operation="repos/get", status=502, probability=0.5, seed=42))
    assert _statuses(sandbox, 20) == observed


def test_matching_by_method_path_and_operation(sandbox: GitHubSandbox) -> None:
    sandbox.create_environment(REPO, "staging")
    sandbox.inject(Fault(method="DELETE", status=500))
    sandbox.inject(Fault(path=r"/variables$", status=418))
    sandbox.inject(Fault(operation="rate-limit/get", status=503))
    assert call(sandbox.url, "GET", REPO_PATH).status == 200
    assert call(sandbox.url, "GET", f"{REPO_PATH}/environments/staging/variables").status == 418
    assert call(sandbox.url, "GET", "/rate_limit").status == 503
    assert call(sandbox.url, "DELETE", f"{REPO_PATH}/environments/staging").status == 500
    assert sandbox.environment_names(REPO) == ["staging"]
    sandbox.clear_faults()
    assert call(sandbox.url, "DELETE", f"{REPO_PATH}/environments/staging").status == 204


def test_fault_fields_are_validated() -> None:
    with pytest.raises(ValueError):
        Fault(probability=1.5)
    with pytest.raises(ValueError):
        Fault.from_json({"status": 500, "colour": "red"})


def test_keep_alive_survives_faults(sandbox: GitHubSandbox) -> None:
    sandbox.inject(Fault(operation="repos/get", status=500, times=1))
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=5)
    statuses = []
    for _ in range(3):
        conn.request("GET", REPO_PATH, headers={"Authorization": f"token {TOKEN}"})
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
    conn.close()
    assert statuses == [500, 200, 200]


def test_pygithub_retry_honours_retry_after(sandbox: GitHubSandbox) -> None:
    sandbox.inject(Fault(operation="repos/get", status=429, retry_after=0, times=1))
    gh = Github(
        auth=Auth.Token(TOKEN),
        base_url=sandbox.url,
        retry=GithubRetry(total=2, backoff_factor=0),
        seconds_between_requests=None,
    )
    assert gh.get_repo(REPO).full_name == REPO
    assert sandbox.request_counts()[("GET", "repos/get")] == 2
    assert [r.status for r in sandbox.request_log()] == [429, 200]


def test_concurrent_writes_all_land(sandbox: GitHubSandbox) -> None:
    sandbox.create_environment(REPO, "staging")
    body = put_secret_body(sandbox.url, f"{SECRETS}/public-key", "same")
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(lambda i: call(sandbox.url, "PUT", f"{SECRETS}/C{i}", body).status, range(40))
        )
    assert statuses == [201] * 40
    assert all(sandbox.secret_value(REPO, "staging", f"C{i}") == "same" for i in range(40))
