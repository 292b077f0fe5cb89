"""Concurrent observation (issue 13 item 1): GitHub reads in a bounded pool.

Real OpenBao and the GitHub sandbox; a delay on every GitHub answer makes requests overlap, and
the sandbox itself reports the most requests it answered at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from envmatrix.adapters.github import GitHubAdapter
from envmatrix.adapters.vault import VaultAdapter
from envmatrix.demo.run import seed_vault
from envmatrix.errors import UsageError
from envmatrix.pipeline.desired import desired_state
from envmatrix.pipeline.observe import observe
from envmatrix.pipeline.plan import diff
from envmatrix.policy import Policy, load_policy
from envmatrix.sandbox import Fault, GitHubSandbox
from envmatrix.settings import github_concurrency

REPOSITORIES = [f"occ-labs/service-{i:02d}" for i in range(12)]
TOKEN = "sandbox-token"


@pytest.fixture
def org() -> Iterator[GitHubSandbox]:
    sandbox = GitHubSandbox(token=TOKEN, repositories=REPOSITORIES)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def org_policy(tmp_path: Path, mount: str) -> Policy:
    data = {
        "version": 1,
        "name": "concurrency",
        "vault": {"mount": mount},
        "github": {"repositories": REPOSITORIES},
        "environments": {"staging": {"github": "staging"}, "production": {"github": "production"}},
        "owners": {"platform": {"contact": "platform@occ.example"}},
        "secrets": {
            f"SECRET_{i}": {
                "owner": "platform",
                "vault": f"apps/{{environment}}/s{i}#value",
                "environments": ["staging", "production"],
            }
            for i in range(3)
        },
    }
    path = tmp_path / "policy.yaml"
    with path.open("w") as handle:
        YAML().dump(data, handle)
    return load_policy(path)


def test_reads_in_flight_never_exceed_the_cap_and_the_requests_equal_the_serial_run_s(
    org: GitHubSandbox, vault: VaultAdapter, tmp_path: Path
) -> None:
    policy = org_policy(tmp_path, vault.mount)
    seed_vault(policy, vault)
    desired = desired_state(policy)
    # half the staging environments exist: both branches of observation are taken
    for repo in REPOSITORIES[::2]:
        org.create_environment(repo, "staging")
    org.inject(Fault(delay=0.02))
    runs = {}
    for cap in (1, 3, 5):
        org.reset_counts()
        github = GitHubAdapter(org.url, TOKEN, concurrency=cap)
        observed = observe(desired, vault, github, cap)
        runs[cap] = (org.request_counts(), diff(desired, observed), observed.fingerprint())
        stats = github.requests.to_json()
        assert org.max_in_flight() <= cap
        assert stats["max_in_flight"] <= cap
        assert sum(stats["by_endpoint"].values()) == sum(runs[cap][0].values())
        if cap > 1:
            assert org.max_in_flight() > 1  # the pool is used (delayed answers overlap)
        github.close()
    for cap in (3, 5):
        assert runs[cap][0] == runs[1][0]  # the same requests, endpoint by endpoint
        assert runs[cap][1] == runs[1][1]  # the same plan
        assert runs[cap][2] == runs[1][2]  # the same observation


@pytest.mark.parametrize(
    ("value", "dotcom", "expected"),
    [(None, True, 4), (None, False, 32), ("1", True, 1), ("100", False, 100), ("7", True, 7)],
)
def test_concurrency_setting_defaults_and_accepts_1_to_100(
    value: str | None, dotcom: bool, expected: int
) -> None:
    environ = {} if value is None else {"ENVMATRIX_GITHUB_CONCURRENCY": value}
    assert github_concurrency(environ, dotcom) == expected


@pytest.mark.parametrize("value", ["0", "101", "2.5", "many", "-3", "nan"])
def test_concurrency_setting_out_of_range_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError, match="ENVMATRIX_GITHUB_CONCURRENCY"):
        github_concurrency({"ENVMATRIX_GITHUB_CONCURRENCY": value}, dotcom=True)


def test_the_adapter_takes_its_cap_from_the_environment() -> None:
    environ = {"GITHUB_TOKEN": "t", "GITHUB_API_URL": "https://ghes.example/api/v3"}
    assert GitHubAdapter.from_environment(environ).concurrency == 32
    environ["ENVMATRIX_GITHUB_CONCURRENCY"] = "2"
    assert GitHubAdapter.from_environment(environ).concurrency == 2
    assert GitHubAdapter.from_environment({"GITHUB_TOKEN": "t"}).concurrency == 4
