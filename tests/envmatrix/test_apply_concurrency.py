"""Apply with several writers (issue 13 item 3): targets in a bounded pool
(ENVMATRIX_GITHUB_WRITE_CONCURRENCY), public keys prefetched in the read pool, the write interval
and a rate limit's Retry-After shared by every writer. Against OpenBao and the GitHub sandbox,
whose own records count the requests and the most in flight."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from envmatrix.adapters.github import GitHubAdapter
from envmatrix.errors import UsageError
from envmatrix.sandbox import Fault, GitHubSandbox
from envmatrix.secret import SecretValue
from envmatrix.settings import github_write_concurrency
from tests.envmatrix import test_shard
from tests.envmatrix.test_shard import REPOSITORIES, TOKEN
from tests.world import World

org_world = test_shard.org_world  # the 12-repository org, seeded
WRITES = ("PUT", "POST", "PATCH", "DELETE")
REPO_ROOT = Path(__file__).resolve().parents[2]


def writes_sent(sandbox: GitHubSandbox) -> int:
    return sum(n for (method, _), n in sandbox.request_counts().items() if method in WRITES)


def planned_writes(world: World) -> int:
    result = world.run("plan", "--json")
    assert result.code == 0, result.err
    return sum(c["action"] in ("create", "update", "delete") for c in result.json()["changes"])


@pytest.mark.parametrize(("writers", "readers"), [(1, 4), (3, 3), (6, 2)])
def test_in_flight_never_exceeds_the_cap_and_writes_equal_the_cells_to_change(
    org_world: World, writers: int, readers: int
) -> None:
    sandbox = org_world.sandbox
    for repository in REPOSITORIES[::2]:  # existing environments: their keys are prefetched
        sandbox.create_environment(repository, "production")
    org_world.env["ENVMATRIX_GITHUB_WRITE_CONCURRENCY"] = str(writers)
    org_world.env["ENVMATRIX_GITHUB_CONCURRENCY"] = str(readers)
    org_world.env["ENVMATRIX_GITHUB_WRITE_INTERVAL"] = "0"
    expected = planned_writes(org_world)
    assert expected > 100
    sandbox.inject(Fault(delay=0.01))
    sandbox.reset_counts()
    result = org_world.run("apply", "--yes", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert len(report["results"]) == expected
    assert all(r["result"] == "ok" for r in report["results"])
    assert writes_sent(sandbox) == expected  # one request per cell that must change, exactly
    assert sandbox.max_in_flight() <= max(writers, readers)
    assert report["requests"]["max_in_flight"] <= max(writers, readers)
    if writers > 1:
        assert sandbox.max_in_flight() > 1
    sandbox.clear_faults()
    assert planned_writes(org_world) == 0  # every sync state was recorded after its writes
    assert org_world.mismatches() == []


def test_environments_are_created_before_their_secrets_with_several_writers(
    org_world: World,
) -> None:
    org_world.env["ENVMATRIX_GITHUB_WRITE_CONCURRENCY"] = "5"
    org_world.sandbox.inject(Fault(delay=0.005))
    assert org_world.run("apply", "--yes").code == 0
    seen: set[str] = set()
    for record in org_world.sandbox.request_log():
        environment = re.match(r"^/repos/([^/]+/[^/]+)/environments/([^/]+)$", record.path)
        if record.method == "PUT" and environment:
            seen.add(f"{environment[1]}/{environment[2]}")
        secret = re.match(r"^/repos/([^/]+/[^/]+)/environments/([^/]+)/secrets/", record.path)
        if secret:
            assert f"{secret[1]}/{secret[2]}" in seen, record


def test_a_failed_write_keeps_the_other_writers_results(org_world: World) -> None:
    org_world.env["ENVMATRIX_GITHUB_WRITE_CONCURRENCY"] = "4"
    broken = REPOSITORIES[5]
    org_world.sandbox.inject(
        Fault(
            method="PUT",
            path=f"^/repos/{broken}/environments/staging/secrets/SECRET_2$",
            status=422,
        )
    )
    expected = planned_writes(org_world)
    result = org_world.run("apply", "--yes", "--json")
    assert result.code == 1
    results = result.json()["results"]
    failed = [r for r in results if r["result"] == "failed"]
    assert [(r["repository"], r["environment"], r["name"]) for r in failed] == [
        (broken, "staging", "SECRET_2")
    ]
    assert len(results) == expected
    org_world.sandbox.clear_faults()
    left = org_world.run("plan", "--json").json()["changes"]
    assert [
        (c["repository"], c["environment"], c["name"]) for c in left if c["action"] != "orphan"
    ] == [(broken, "staging", "SECRET_2")]


def test_ctrl_c_with_several_writers_reports_every_write_that_landed(org_world: World) -> None:
    sandbox = org_world.sandbox
    env = {**os.environ, **org_world.env, "NO_COLOR": "1"}
    env["ENVMATRIX_GITHUB_WRITE_CONCURRENCY"] = "4"
    sandbox.inject(Fault(method="PUT", path=r"/secrets/[A-Z_0-9]+$", delay=0.5))
    process = subprocess.Popen(
        [sys.executable, "-m", "envmatrix", "apply", "--yes"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(m == "PUT" and "secret" in op for (m, op) in sandbox.request_counts()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, (out, err)
    landed = len(re.findall(r"^✓ ", out, re.MULTILINE))
    assert landed == writes_sent(sandbox)  # every write that reached GitHub is reported
    assert "not attempted" in err and f"{landed} written" in err
    sandbox.clear_faults()
    again = org_world.run("apply", "--yes")
    assert again.code == 0, again.err
    assert org_world.mismatches() == []


def test_a_retry_after_holds_every_writer(org_world: World) -> None:
    sandbox = org_world.sandbox
    sandbox.create_environment(REPOSITORIES[0], "staging")
    sandbox.create_environment(REPOSITORIES[1], "staging")
    waits: list[tuple[str, float]] = []

    def sleep(seconds: float) -> None:  # recorded, not slept: the deadline stays ahead
        waits.append((threading.current_thread().name, seconds))

    github = GitHubAdapter(sandbox.url, TOKEN, sleep=sleep, write_concurrency=2)
    sandbox.inject(Fault(method="PUT", status=429, retry_after=30, times=1))
    github.put_environment_secret(REPOSITORIES[0], "staging", "A", SecretValue("one"))
    assert [s for _, s in waits] and waits[0][1] >= 30  # the writer told to wait, waits
    waits.clear()
    other = threading.Thread(
        target=github.put_environment_secret,
        args=(REPOSITORIES[1], "staging", "B", SecretValue("two")),
        name="other-writer",
    )
    other.start()
    other.join()
    assert any(name == "other-writer" and s > 20 for name, s in waits)  # and so does another
    assert sandbox.secret_value(REPOSITORIES[1], "staging", "B") == "two"
    github.close()


def test_the_write_interval_spaces_every_writer_s_writes(org_world: World) -> None:
    sandbox = org_world.sandbox
    for repository in REPOSITORIES[:4]:
        sandbox.create_environment(repository, "staging")
    waits: list[float] = []
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    github = GitHubAdapter(sandbox.url, TOKEN, sleep=sleep, write_interval=5.0)
    threads = [
        threading.Thread(
            target=github.put_environment_secret,
            args=(repository, "staging", "X", SecretValue("x")),
        )
        for repository in REPOSITORIES[:4]
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # the first write goes at once; the others are given 5, 10 and 15 s (less what passed)
    assert len(waits) == 3
    assert sorted(round(w / 5) for w in waits) == [1, 2, 3]
    github.close()


@pytest.mark.parametrize(
    ("value", "dotcom", "expected"),
    [(None, True, 1), (None, False, 8), ("1", False, 1), ("100", True, 100), ("12", False, 12)],
)
def test_write_concurrency_defaults_and_accepts_1_to_100(
    value: str | None, dotcom: bool, expected: int
) -> None:
    environ = {} if value is None else {"ENVMATRIX_GITHUB_WRITE_CONCURRENCY": value}
    assert github_write_concurrency(environ, dotcom) == expected


@pytest.mark.parametrize("value", ["0", "101", "1.5", "all", "-1"])
def test_write_concurrency_out_of_range_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError, match="ENVMATRIX_GITHUB_WRITE_CONCURRENCY"):
        github_write_concurrency({"ENVMATRIX_GITHUB_WRITE_CONCURRENCY": value}, dotcom=False)


def test_the_adapter_takes_its_write_cap_from_the_environment() -> None:
    ghes = {"GITHUB_TOKEN": "t", "GITHUB_API_URL": "https://ghes.example/api/v3"}
    assert GitHubAdapter.from_environment(ghes).write_concurrency == 8
    assert GitHubAdapter.from_environment({"GITHUB_TOKEN": "t"}).write_concurrency == 1
    ghe = {"GITHUB_TOKEN": "t", "GITHUB_API_URL": "https://api.acme.ghe.com"}
    assert GitHubAdapter.from_environment(ghe).write_concurrency == 1
    ghes["ENVMATRIX_GITHUB_WRITE_CONCURRENCY"] = "3"
    assert GitHubAdapter.from_environment(ghes).write_concurrency == 3
