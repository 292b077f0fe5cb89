"""Cross-process control: the /_sandbox/ admin API and ``python -m envmatrix.sandbox``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from envmatrix.sandbox import GitHubSandbox
from tests.envmatrix.sandbox import REPO, TOKEN, call, put_secret_body

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_admin_requires_the_token(sandbox: GitHubSandbox) -> None:
    assert call(sandbox.url, "GET", "/_sandbox/requests", token="nope").status == 401
    assert call(sandbox.url, "GET", "/_sandbox/unknown").status == 404


def test_admin_mirrors_the_helpers(sandbox: GitHubSandbox) -> None:
    url = sandbox.url
    assert call(url, "POST", "/_sandbox/repositories", {"full_name": "occ-labs/new"}).status == 201
    assert call(url, "GET", "/repos/occ-labs/new").status == 200
    assert (
        call(url, "POST", "/_sandbox/environments", {"repo": REPO, "environment": "qa"}).status
        == 201
    )
    env = f"/repos/{REPO}/environments/qa"
    body = put_secret_body(url, f"{env}/secrets/public-key", "from-client")
    assert call(url, "PUT", f"{env}/secrets/API", body).status == 201

    got = call(url, "GET", f"/_sandbox/secret?repo={REPO}&environment=qa&name=api").json()
    assert got == {"value": "from-client"}
    missing = call(url, "GET", f"/_sandbox/secret?repo={REPO}&environment=qa&name=NONE").json()
    assert missing == {"value": None}
    assert call(url, "GET", "/_sandbox/secret?repo=o/none&name=X").status == 404

    outside = {"repo": REPO, "environment": "qa", "name": "API", "value": "by-human"}
    assert call(url, "POST", "/_sandbox/outside-write", outside).status == 204
    assert sandbox.secret_value(REPO, "qa", "API") == "by-human"
    repo_level = {"repo": REPO, "name": "R", "value": "repo-human"}
    assert call(url, "POST", "/_sandbox/outside-write", repo_level).status == 204
    assert call(url, "GET", f"/_sandbox/secret?repo={REPO}&name=r").json() == {
        "value": "repo-human"
    }

    requests_seen = call(url, "GET", "/_sandbox/requests").json()
    assert {
        "method": "PUT",
        "operation": "actions/create-or-update-environment-secret",
        "count": 1,
    } in requests_seen["counts"]
    assert all(not entry["path"].startswith("/_sandbox/") for entry in requests_seen["log"])
    assert call(url, "DELETE", "/_sandbox/requests").status == 204
    assert sandbox.request_counts() == {}


def test_admin_adds_reviewers_and_shows_protection(sandbox: GitHubSandbox) -> None:
    url = sandbox.url
    user = call(url, "POST", "/_sandbox/users", {"login": "octo-admin"}).json()["id"]
    team = call(url, "POST", "/_sandbox/teams", {"org": "occ-labs", "slug": "release"}).json()["id"]
    assert call(url, "POST", "/_sandbox/users", {"login": "no such"}).status == 422
    assert call(url, "GET", "/users/octo-admin").json()["id"] == user
    reviewers = [
        {"type": "User", "id": user},
        {"type": "Team", "id": team},
        {"type": "User", "id": 7},
    ]
    assert (
        call(url, "PUT", f"/repos/{REPO}/environments/qa", {"reviewers": reviewers}).status == 200
    )
    shown = call(url, "GET", f"/_sandbox/protection?repo={REPO}&environment=qa").json()
    assert shown == {
        "wait_timer": 0,
        "prevent_self_review": False,
        "reviewers": ["User#7", "team:occ-labs/release", "user:octo-admin"],
        "deployment_branches": "all",
    }
    assert call(url, "GET", f"/_sandbox/protection?repo={REPO}&environment=nope").status == 404


def test_admin_faults_and_rate_limit(sandbox: GitHubSandbox) -> None:
    url = sandbox.url
    fault = {"operation": "repos/get", "status": 429, "retry_after": 3, "times": 1}
    assert call(url, "POST", "/_sandbox/faults", fault).status == 201
    assert call(url, "POST", "/_sandbox/faults", {"bogus": 1}).status == 422
    first = call(url, "GET", f"/repos/{REPO}")
    assert (first.status, first.headers["Retry-After"]) == (429, "3")
    assert (
        call(url, "POST", "/_sandbox/faults", {"operation": "repos/get", "status": 500}).status
        == 201
    )
    assert call(url, "DELETE", "/_sandbox/faults").status == 204
    assert call(url, "GET", f"/repos/{REPO}").status == 200

    assert call(url, "POST", "/_sandbox/rate-limit", {"remaining": 0, "reset_in": 60}).status == 204
    limited = call(url, "GET", f"/repos/{REPO}")
    assert limited.status == 403
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert call(url, "POST", "/_sandbox/rate-limit", {"remaining": 10}).status == 204
    assert call(url, "GET", f"/repos/{REPO}").headers["X-RateLimit-Remaining"] == "9"


@pytest.fixture
def cli_sandbox() -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "envmatrix.sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--token",
            "cli-token",
            "--repo",
            REPO,
            "--repo",
            "occ-labs/other",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        yield proc, line
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_announces_url_serves_and_stops_on_signal(
    cli_sandbox: tuple[subprocess.Popen[str], str], signum: int
) -> None:
    proc, line = cli_sandbox
    prefix = "sandbox listening on http://127.0.0.1:"
    assert line.startswith(prefix), line
    url = line.strip().removeprefix("sandbox listening on ")
    assert int(url.rsplit(":", 1)[1]) > 0
    assert call(url, "GET", f"/repos/{REPO}", token="cli-token").status == 200
    assert call(url, "GET", "/repos/occ-labs/other", token="cli-token").status == 200
    assert call(url, "GET", f"/repos/{REPO}", token=TOKEN).status == 401
    proc.send_signal(signum)
    assert proc.wait(timeout=10) == 0
    assert proc.stdout is not None
    assert proc.stdout.read() == ""  # exactly one line was printed
