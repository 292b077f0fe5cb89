"""The GitHub adapter against the sandbox: real sockets, GitHub's status codes and pagination."""

from __future__ import annotations

import socket

import pytest

from envmatrix.adapters.github import GitHubAdapter, RetryPolicy
from envmatrix.errors import GitHubError, UsageError
from envmatrix.ports import BranchPattern, ProtectionSettings, ReviewerRef
from envmatrix.sandbox import Fault, GitHubSandbox
from envmatrix.secret import SecretValue

REPO = "occ-labs/operator-console"
FAST = RetryPolicy(attempts=4, backoff=0.01, secondary_backoff=0.01, max_wait=5)


@pytest.fixture
def github(sandbox: GitHubSandbox) -> GitHubAdapter:
    return GitHubAdapter(sandbox.url, "sandbox-token", retry=FAST)


def test_lists_follow_pagination_past_one_page(
    sandbox: GitHubSandbox, github: GitHubAdapter
) -> None:
    sandbox.create_environment(REPO, "staging")
    for i in range(130):
        sandbox.write_secret_outside(REPO, "staging", f"S_{i:03d}", "x")
    for i in range(45):
        sandbox.write_variable_outside(REPO, "staging", f"V_{i:02d}", str(i))
    secrets = github.list_environment_secrets(REPO, "staging")
    variables = github.list_environment_variables(REPO, "staging")
    assert sorted(s.name for s in secrets) == [f"S_{i:03d}" for i in range(130)]
    assert {v.name: v.value for v in variables} == {f"V_{i:02d}": str(i) for i in range(45)}
    counts = sandbox.request_counts()
    assert counts[("GET", "actions/list-environment-secrets")] == 2  # per_page=100
    assert counts[("GET", "actions/list-environment-variables")] == 2  # GitHub caps at 30


def test_one_public_key_fetch_per_environment_however_many_puts(
    sandbox: GitHubSandbox, github: GitHubAdapter
) -> None:
    for env in ("staging", "production"):
        github.create_environment(REPO, env)
        for i in range(12):
            github.put_environment_secret(REPO, env, f"KEY_{i}", SecretValue(f"{env}-{i}"))
    counts = sandbox.request_counts()
    assert counts[("GET", "actions/get-environment-public-key")] == 2
    assert counts[("PUT", "actions/create-or-update-environment-secret")] == 24
    assert sandbox.secret_value(REPO, "production", "KEY_11") == "production-11"


def test_repository_secrets_list_put_delete_with_one_key_fetch_per_repository(
    sandbox: GitHubSandbox, github: GitHubAdapter
) -> None:
    other = "occ-labs/storefront-sync"
    for i in range(97):  # with the 3 below: GitHub's limit of 100 repository secrets
        sandbox.write_secret_outside(REPO, None, f"PRE_{i:03d}", "x")
    for repo in (REPO, other):
        for i in range(3):
            github.put_repository_secret(repo, f"CI_TOKEN_{i}", SecretValue(f"{repo}-{i}"))
    listed = github.list_repository_secrets(REPO)
    assert len(listed) == 100 and {"CI_TOKEN_0", "PRE_096"} <= {s.name for s in listed}
    assert sandbox.repository_secret_value(other, "CI_TOKEN_2") == f"{other}-2"
    github.delete_repository_secret(REPO, "CI_TOKEN_1")
    github.delete_repository_secret(REPO, "CI_TOKEN_1")  # absent: not an error
    assert sandbox.repository_secret_value(REPO, "CI_TOKEN_1") is None
    assert sandbox.repository_secret_value(REPO, "CI_TOKEN_0") == f"{REPO}-0"
    assert [s.name for s in github.list_repository_secrets(other)] == [
        "CI_TOKEN_0",
        "CI_TOKEN_1",
        "CI_TOKEN_2",
    ]
    counts = sandbox.request_counts()
    assert counts[("GET", "actions/get-repo-public-key")] == 2
    assert counts[("PUT", "actions/create-or-update-repo-secret")] == 6
    assert counts[("DELETE", "actions/delete-repo-secret")] == 2
    assert counts[("GET", "actions/list-repo-secrets")] == 2  # one page of 100 + 1


def test_receipt_time_is_the_servers_updated_at(
    sandbox: GitHubSandbox, github: GitHubAdapter
) -> None:
    github.create_environment(REPO, "staging")
    sandbox.advance_clock(-3600)  # the server's clock differs from ours: the receipt follows it
    receipt = github.put_environment_secret(REPO, "staging", "TOKEN", SecretValue("v"))
    [observed] = github.list_environment_secrets(REPO, "staging")
    assert receipt.server_time == observed.updated_at


def test_environment_names_with_spaces(sandbox: GitHubSandbox, github: GitHubAdapter) -> None:
    github.create_environment(REPO, "qa east")
    github.put_environment_secret(REPO, "qa east", "TOKEN", SecretValue("v"))
    github.set_environment_variable(REPO, "qa east", "FLAG", "true", exists=False)
    assert "qa east" in github.list_environments(REPO)
    assert [s.name for s in github.list_environment_secrets(REPO, "qa east")] == ["TOKEN"]
    assert sandbox.secret_value(REPO, "qa east", "TOKEN") == "v"
    assert sandbox.variable_value(REPO, "qa east", "FLAG") == "true"


def test_deleting_what_is_absent_is_fine(sandbox: GitHubSandbox, github: GitHubAdapter) -> None:
    github.create_environment(REPO, "staging")
    github.delete_environment_secret(REPO, "staging", "NEVER_WRITTEN")
    github.delete_environment_variable(REPO, "staging", "NEVER_SET")
    counts = sandbox.request_counts()
    assert counts[("DELETE", "actions/delete-environment-secret")] == 1  # no retry of a 404


def test_variable_create_and_update(sandbox: GitHubSandbox, github: GitHubAdapter) -> None:
    github.create_environment(REPO, "staging")
    github.set_environment_variable(REPO, "staging", "FLAG", "false", exists=False)
    github.set_environment_variable(REPO, "staging", "FLAG", "true", exists=True)
    assert sandbox.variable_value(REPO, "staging", "FLAG") == "true"


def test_bad_token_is_one_line_naming_github_token(sandbox: GitHubSandbox) -> None:
    github = GitHubAdapter(sandbox.url, "wrong-token", retry=FAST)
    with pytest.raises(GitHubError) as caught:
        github.list_environments(REPO)
    message = str(caught.value)
    assert "401" in message and "GITHUB_TOKEN" in message and "\n" not in message
    assert caught.value.status == 401
    assert sum(sandbox.request_counts().values()) == 1  # a 401 is not retried


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"GITHUB_API_URL": "http://x"}, "GITHUB_TOKEN"),
        ({"GITHUB_TOKEN": "t", "GITHUB_API_URL": "127.0.0.1:8080"}, "GITHUB_API_URL"),
        ({"GH_TOKEN": "t", "GITHUB_API_URL": "ftp://host"}, "GITHUB_API_URL"),
        ({"GITHUB_TOKEN": "t", "ENVMATRIX_GITHUB_ATTEMPTS": "many"}, "ENVMATRIX_GITHUB_ATTEMPTS"),
    ],
)
def test_from_environment_errors_are_usage_errors(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(UsageError, match=expected):
        GitHubAdapter.from_environment(environ)


def test_from_environment_reads_token_url_and_retry_policy(sandbox: GitHubSandbox) -> None:
    github = GitHubAdapter.from_environment(
        {
            "GH_TOKEN": "sandbox-token",
            "GITHUB_API_URL": sandbox.url + "/",
            "ENVMATRIX_GITHUB_ATTEMPTS": "2",
            "ENVMATRIX_GITHUB_MAX_WAIT": "7",
        }
    )
    assert github.list_environments(REPO) == []
    assert github._retry.attempts == 2 and github._retry.max_wait == 7


def test_a_value_of_exactly_48_kb_lands_and_one_byte_more_fails_before_any_request(
    sandbox: GitHubSandbox, github: GitHubAdapter
) -> None:
    github.create_environment(REPO, "staging")
    github.put_environment_secret(REPO, "staging", "EXACT", SecretValue("x" * 49152))
    assert sandbox.secret_value(REPO, "staging", "EXACT") == "x" * 49152
    before = dict(sandbox.request_counts())
    for name, value in (("OVER", "y" * 49153), ("WIDE", "é" * 24577)):  # 49,154 UTF-8 bytes
        with pytest.raises(GitHubError) as caught:
            github.put_environment_secret(REPO, "staging", name, SecretValue(value))
        message = str(caught.value)
        assert "larger than 48 KB" in message and name in message
        assert value[:10] not in message
    with pytest.raises(GitHubError, match="larger than 48 KB"):
        github.put_repository_secret(REPO, "OVER", SecretValue("z" * 49153))
    assert dict(sandbox.request_counts()) == before  # no PUT, no second key fetch


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}", "connection refused"),
        ("http://ci-bot:canary-pw@127.0.0.1:{port}/api/v3", "connection refused"),
        ("http://no-such-host.invalid", "unknown host"),
    ],
)
def test_a_connection_that_cannot_be_made_fails_at_the_first_attempt(url: str, reason: str) -> None:
    sleeps: list[float] = []
    github = GitHubAdapter(
        url.format(port=_closed_port()),
        "sandbox-token",
        retry=RetryPolicy(attempts=5, backoff=1.0),
        sleep=sleeps.append,
    )
    with pytest.raises(GitHubError) as caught:
        github.list_environments(REPO)
    message = str(caught.value)
    assert sleeps == []  # one attempt: no backoff before a second one
    assert f"/repos/{REPO}/environments: cannot connect to" in message
    assert reason in message and "check GITHUB_API_URL" in message
    assert "canary-pw" not in message and "\n" not in message


def test_a_reset_connection_is_still_retried(sandbox: GitHubSandbox) -> None:
    sandbox.inject(Fault(path=f"/repos/{REPO}/environments", reset=True))
    sleeps: list[float] = []
    github = GitHubAdapter(
        sandbox.url,
        "sandbox-token",
        retry=RetryPolicy(attempts=3, backoff=0.01),
        sleep=sleeps.append,
    )
    with pytest.raises(GitHubError, match="gave up after 3 attempts"):
        github.list_environments(REPO)
    assert len(sleeps) == 2
    assert [r.status for r in sandbox.request_log()] == [0, 0, 0]


def test_gh_host_selects_the_enterprise_api_and_names_gh_host_when_unreachable() -> None:
    port = _closed_port()
    sleeps: list[float] = []
    github = GitHubAdapter.from_environment(
        {"GH_HOST": f"127.0.0.1:{port}", "GH_ENTERPRISE_TOKEN": "e", "GH_TOKEN": "t"}
    )
    github._sleep = sleeps.append
    assert github.api_url == f"https://127.0.0.1:{port}/api/v3"
    assert github._login_hint() == "GH_ENTERPRISE_TOKEN"
    with pytest.raises(GitHubError) as caught:
        github.list_environments(REPO)
    message = str(caught.value)
    assert message.startswith(
        f"GET https://127.0.0.1:{port}/api/v3/repos/{REPO}/environments: cannot connect"
    )
    assert "check GH_HOST" in message and sleeps == []


@pytest.mark.parametrize(
    ("first", "second", "works"),
    [
        ("sandbox-token", "not-the-token", True),  # GH_TOKEN is used ...
        ("not-the-token", "sandbox-token", False),  # ... even when GITHUB_TOKEN would work
    ],
)
def test_gh_token_wins_over_github_token_with_a_warning(
    sandbox: GitHubSandbox, caplog: pytest.LogCaptureFixture, first: str, second: str, works: bool
) -> None:
    environ = {"GITHUB_API_URL": sandbox.url, "GH_TOKEN": first, "GITHUB_TOKEN": second}
    with caplog.at_level("WARNING", logger="envmatrix.adapters.github"):
        github = GitHubAdapter.from_environment(environ)
    assert caplog.messages == [
        "GH_TOKEN and GITHUB_TOKEN are both set and differ; using GH_TOKEN (gh's order)"
    ]
    if works:
        assert github.list_environments(REPO) == []
    else:
        with pytest.raises(GitHubError, match=r"401 Bad credentials \(check GH_TOKEN\)"):
            github.list_environments(REPO)


def test_protection_is_read_from_the_one_environments_list(
    sandbox: GitHubSandbox, github: GitHubAdapter
) -> None:
    user, team = sandbox.add_user("octo-admin"), sandbox.add_team("occ-labs", "release")
    wanted = ProtectionSettings(
        wait_timer=30,
        prevent_self_review=True,
        reviewers=(ReviewerRef("Team", team), ReviewerRef("User", user)),  # sorted, as listed
        deployment_branches="protected",
    )
    github.put_environment_protection(REPO, "production", wanted)
    github.put_environment_protection(REPO, "staging", ProtectionSettings())
    sandbox.reset_counts()
    found = {p.environment: p.settings for p in github.list_environment_protections(REPO)}
    assert found["production"] == wanted
    assert [r.name for r in found["production"].reviewers] == ["occ-labs/release", "octo-admin"]
    assert found["staging"] == ProtectionSettings()  # all branches: no deployment_branch_policy
    assert sandbox.request_counts() == {("GET", "repos/get-all-environments"): 1}


def test_reviewer_lookups_are_made_once_and_unknown_names_are_none(
    sandbox: GitHubSandbox, github: GitHubAdapter
) -> None:
    user, team = sandbox.add_user("octo-admin"), sandbox.add_team("occ-labs", "release")
    for _ in range(3):
        assert github.lookup_user("Octo-Admin") == user
        assert github.lookup_team("occ-labs", "release") == team
        assert github.lookup_user("ghost") is None
        assert github.lookup_team("occ-labs", "ghost") is None
    counts = sandbox.request_counts()
    assert counts[("GET", "users/get-by-username")] == 2
    assert counts[("GET", "teams/get-by-name")] == 2


def test_custom_patterns_are_listed_past_one_page_added_and_deleted(
    sandbox: GitHubSandbox, github: GitHubAdapter
) -> None:
    github.put_environment_protection(
        REPO, "production", ProtectionSettings(deployment_branches="custom")
    )
    for i in range(105):
        github.create_deployment_branch_policy(REPO, "production", BranchPattern("branch", f"b{i}"))
    # one that exists already (GitHub answers 303) is not an error
    github.create_deployment_branch_policy(REPO, "production", BranchPattern("branch", "b0"))
    listed = github.list_deployment_branch_policies(REPO, "production")
    assert len(listed) == 105
    assert sandbox.request_counts()[("GET", "repos/list-deployment-branch-policies")] == 2
    github.delete_deployment_branch_policy(REPO, "production", listed[0].id)
    github.delete_deployment_branch_policy(REPO, "production", listed[0].id)  # absent: fine
    assert len(github.list_deployment_branch_policies(REPO, "production")) == 104
