"""PyGithub, the client envmatrix uses, against the sandbox over real sockets."""

from __future__ import annotations

import github
import pytest
from github import Auth, Github, GithubException, UnknownObjectException

from envmatrix.sandbox import GitHubSandbox
from tests.envmatrix.sandbox import ORG, REPO, TOKEN


def _client(sandbox: GitHubSandbox, token: str = TOKEN, per_page: int = 100) -> Github:
    return Github(
        auth=Auth.Token(token),
        base_url=sandbox.url,
        per_page=per_page,
        seconds_between_requests=None,
        seconds_between_writes=None,
        retry=None,
    )


def test_environment_secret_round_trip(sandbox: GitHubSandbox) -> None:
    repo = _client(sandbox).get_repo(REPO)
    repo.create_environment("prod eu")
    env = repo.get_environment("prod eu")
    env.create_secret("db_password", "s3cr3t-välue")

    assert sandbox.secret_value(REPO, "prod eu", "DB_PASSWORD") == "s3cr3t-välue"
    assert sandbox.secret_value(REPO, "prod eu", "db_password") == "s3cr3t-välue"
    secret = env.get_secret("DB_PASSWORD")
    assert secret.name == "DB_PASSWORD"
    assert secret.updated_at.tzinfo is not None
    assert sandbox.environment_names(REPO) == ["prod eu"]
    assert env.delete_secret("DB_PASSWORD") is True
    assert env.delete_secret("DB_PASSWORD") is False
    assert sandbox.secret_value(REPO, "prod eu", "DB_PASSWORD") is None


def test_update_keeps_created_at_and_changes_value(sandbox: GitHubSandbox) -> None:
    sandbox.create_environment(REPO, "staging")
    env = _client(sandbox).get_repo(REPO).get_environment("staging")
    env.create_secret("TOKEN_A", "one")
    created = env.get_secret("TOKEN_A").created_at
    sandbox.advance_clock(30)
    env.create_secret("TOKEN_A", "two")
    again = env.get_secret("TOKEN_A")
    assert sandbox.secret_value(REPO, "staging", "TOKEN_A") == "two"
    assert again.created_at == created
    # 30 s advanced; a wall-clock second may tick between the two writes.
    assert (again.updated_at - created).total_seconds() in (30, 31)


def test_pagination_over_100_secrets_and_70_variables(sandbox: GitHubSandbox) -> None:
    """100 secrets is an environment's limit (GitHub's docs); listed 30 a page, 4 pages."""
    sandbox.create_environment(REPO, "bulk")
    env = _client(sandbox).get_repo(REPO).get_environment("bulk")
    small_pages = _client(sandbox, per_page=30).get_repo(REPO).get_environment("bulk")
    for i in range(100):
        env.create_secret(f"SECRET_{i:03d}", f"value-{i}")
    for i in range(70):
        env.create_variable(f"VAR_{i:02d}", f"v{i}")
    sandbox.reset_counts()

    secrets = [s.name for s in small_pages.get_secrets()]
    variables = [(v.name, v.value) for v in env.get_variables()]

    assert secrets == [f"SECRET_{i:03d}" for i in range(100)]
    assert variables == [(f"VAR_{i:02d}", f"v{i}") for i in range(70)]
    counts = sandbox.request_counts()
    assert counts[("GET", "actions/list-environment-secrets")] == 4  # 30 + 30 + 30 + 10
    assert counts[("GET", "actions/list-environment-variables")] == 3  # capped at 30 per page
    assert sandbox.secret_value(REPO, "bulk", "SECRET_099") == "value-99"


def test_variables_edit_and_delete(sandbox: GitHubSandbox) -> None:
    sandbox.create_environment(REPO, "staging")
    env = _client(sandbox).get_repo(REPO).get_environment("staging")
    env.create_variable("feature_flag", "off")
    variable = env.get_variable("FEATURE_FLAG")
    assert variable.edit("on") is True
    assert sandbox.variable_value(REPO, "staging", "feature_flag") == "on"
    assert env.delete_variable("FEATURE_FLAG") is True
    assert env.delete_variable("FEATURE_FLAG") is False
    assert sandbox.variable_value(REPO, "staging", "FEATURE_FLAG") is None


def test_repository_and_organization_secrets(sandbox: GitHubSandbox) -> None:
    gh = _client(sandbox)
    repo = gh.get_repo(REPO)
    repo.create_secret("deploy_key", "repo-level", secret_type="actions")
    assert sandbox.repository_secret_value(REPO, "DEPLOY_KEY") == "repo-level"
    assert [s.name for s in repo.get_secrets()] == ["DEPLOY_KEY"]

    # GET /orgs/{org} is not one of the served operations, so use a lazy client.
    lazy = Github(
        auth=Auth.Token(TOKEN),
        base_url=sandbox.url,
        lazy=True,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )
    organization = lazy.get_organization(ORG)
    organization.create_secret("SHARED_TOKEN", "org-level", visibility="private")
    assert sandbox.organization_secret_value(ORG, "shared_token") == "org-level"


def test_bad_credentials_raise_401(sandbox: GitHubSandbox) -> None:
    with pytest.raises(github.BadCredentialsException) as caught:
        _client(sandbox, token="wrong").get_repo(REPO)
    assert caught.value.status == 401
    assert caught.value.data["message"] == "Bad credentials"


def test_unknown_things_raise_404(sandbox: GitHubSandbox) -> None:
    gh = _client(sandbox)
    with pytest.raises(UnknownObjectException):
        gh.get_repo("occ-labs/nope")
    repo = gh.get_repo(REPO)
    with pytest.raises(UnknownObjectException):
        repo.get_environment("missing")
    sandbox.create_environment(REPO, "staging")
    with pytest.raises(UnknownObjectException):
        repo.get_environment("staging").get_secret("NOT_THERE").name  # noqa: B018 - forces GET


@pytest.mark.parametrize(
    "name", ["1LEADING_DIGIT", "GITHUB_TOKEN", "github_x", "has-dash", "sp ace"]
)
def test_invalid_secret_names_raise_422(sandbox: GitHubSandbox, name: str) -> None:
    sandbox.create_environment(REPO, "staging")
    env = _client(sandbox).get_repo(REPO).get_environment("staging")
    with pytest.raises(GithubException) as caught:
        env.create_secret(name, "x")
    assert caught.value.status == 422
    assert caught.value.data["message"] == "Validation Failed"
    assert sandbox.secret_value(REPO, "staging", name.replace(" ", "_")) is None


def test_variable_create_twice_conflicts(sandbox: GitHubSandbox) -> None:
    sandbox.create_environment(REPO, "staging")
    env = _client(sandbox).get_repo(REPO).get_environment("staging")
    env.create_variable("REGION", "eu")
    with pytest.raises(GithubException) as caught:
        env.create_variable("region", "us")
    assert caught.value.status == 409
    assert sandbox.variable_value(REPO, "staging", "REGION") == "eu"


def test_rate_limit_exhaustion_raises(sandbox: GitHubSandbox) -> None:
    gh = _client(sandbox)
    gh.get_repo(REPO)
    assert gh.rate_limiting == (4999, 5000)
    sandbox.set_rate_limit(remaining=0, reset_in=3600)
    with pytest.raises(github.RateLimitExceededException) as caught:
        gh.get_repo(REPO)
    assert caught.value.status == 403
    assert gh.rate_limiting == (0, 5000)


def test_etag_update_returns_false_when_unchanged(sandbox: GitHubSandbox) -> None:
    gh = _client(sandbox)
    repo = gh.get_repo(REPO)
    remaining = gh.rate_limiting[0]
    assert repo.update() is False  # If-None-Match → 304
    assert gh.rate_limiting[0] == remaining
