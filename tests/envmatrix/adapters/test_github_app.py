"""The GitHub adapter logged in as a GitHub App, against the sandbox's App endpoints: one
installation token per owner, minted by PyGithub, renewed before expiry and after a refusal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from envmatrix.adapters.github import GitHubAdapter, RetryPolicy
from envmatrix.adapters.github_settings import AppLogin
from envmatrix.errors import GitHubError, UsageError
from envmatrix.sandbox import GitHubSandbox
from envmatrix.secret import SecretValue
from tests.github_app import APP_ID, app_key

REPO = "occ-labs/operator-console"
ELSEWHERE = "acme-payments/ledger"  # a second owner: a second installation
FAST = RetryPolicy(attempts=3, backoff=0.01, secondary_backoff=0.01, max_wait=5)


@pytest.fixture
def installations(sandbox: GitHubSandbox) -> dict[str, int]:
    sandbox.add_repository(ELSEWHERE)
    return sandbox.register_app(APP_ID, app_key().public_pem)


@pytest.fixture
def app(sandbox: GitHubSandbox, installations: dict[str, int]) -> Iterator[GitHubAdapter]:
    adapter = GitHubAdapter(sandbox.url, AppLogin(str(APP_ID), app_key().private_pem), retry=FAST)
    yield adapter
    adapter.close()


def _log(sandbox: GitHubSandbox) -> list[tuple[str, str, int]]:
    return [(r.method, r.path, r.status) for r in sandbox.request_log()]


def test_each_owner_gets_its_own_installation_token(
    sandbox: GitHubSandbox, app: GitHubAdapter, installations: dict[str, int]
) -> None:
    app.create_environment(REPO, "production")
    app.put_environment_secret(REPO, "production", "API_KEY", SecretValue("one"))
    app.put_repository_secret(ELSEWHERE, "LEDGER_KEY", SecretValue("two"))
    app.put_repository_secret("occ-labs/storefront-sync", "SHARED", SecretValue("three"))
    assert sandbox.secret_value(REPO, "production", "API_KEY") == "one"
    assert sandbox.repository_secret_value(ELSEWHERE, "LEDGER_KEY") == "two"
    counts = sandbox.request_counts()
    assert counts[("GET", "apps/get-repo-installation")] == 2  # once per owner
    assert counts[("POST", "apps/create-installation-access-token")] == 2
    minted = [p for m, p, _ in _log(sandbox) if m == "POST"]
    assert minted == [
        f"/app/installations/{installations['occ-labs']}/access_tokens",
        f"/app/installations/{installations['acme-payments']}/access_tokens",
    ]
    assert app.identity() == (
        f"github-app:{APP_ID} installations:acme-payments={installations['acme-payments']},"
        f"occ-labs={installations['occ-labs']}@{sandbox.host}:{sandbox.port}"
    )


def test_an_installation_token_is_refused_on_another_owner(
    sandbox: GitHubSandbox, installations: dict[str, int]
) -> None:
    fixed = AppLogin(str(APP_ID), app_key().private_pem, installations["occ-labs"])
    adapter = GitHubAdapter(sandbox.url, fixed, retry=FAST)
    try:
        assert adapter.list_environments(REPO) == []
        with pytest.raises(GitHubError, match="404 Not Found"):
            adapter.list_repository_secrets(ELSEWHERE)
        assert sandbox.request_counts()[("GET", "apps/get-repo-installation")] == 0
        assert adapter.identity().startswith(
            f"github-app:{APP_ID} installation:{installations['occ-labs']}@"
        )
    finally:
        adapter.close()


@pytest.mark.parametrize("how", ["revoked", "clock"])
def test_a_token_refused_before_its_expiry_is_replaced_once(
    sandbox: GitHubSandbox, app: GitHubAdapter, how: str
) -> None:
    sandbox.set_installation_token_ttl(100)  # beyond PyGithub's 20-second renewal margin
    assert app.list_environments(REPO) == []
    if how == "revoked":
        assert sandbox.expire_installation_tokens() == 1
    else:  # GitHub's clock runs ahead: past the token's expiry, not yet past the JWT's
        sandbox.advance_clock(101)
    sandbox.reset_counts()
    app.create_environment(REPO, "staging")
    assert sandbox.environment_names(REPO) == ["staging"]
    assert [(m, s) for m, _, s in _log(sandbox)] == [
        ("PUT", 401),
        ("POST", 201),
        ("PUT", 200),
    ]


def test_a_token_about_to_expire_is_renewed_before_it_is_used(
    sandbox: GitHubSandbox, app: GitHubAdapter
) -> None:
    sandbox.set_installation_token_ttl(10)  # inside PyGithub's 20-second renewal margin
    for _ in range(3):
        assert app.list_environments(REPO) == []
    log = _log(sandbox)
    assert all(status < 400 for _, _, status in log)  # never sent once expired
    uses = [i for i, (_, path, _) in enumerate(log) if path.endswith("/environments")]
    assert len(uses) == 3
    assert all(log[i - 1][0] == "POST" for i in uses)  # each request got a fresh token


def test_an_owner_without_the_app_names_the_app_and_owner(
    sandbox: GitHubSandbox, app: GitHubAdapter
) -> None:
    sandbox.add_repository("strangers/repo")
    with pytest.raises(GitHubError) as caught:
        app.list_environments("strangers/repo")
    message = str(caught.value)
    assert "/repos/strangers/repo/installation: 404" in message
    assert f"GitHub App {APP_ID} is not installed on strangers" in message
    assert "GITHUB_APP_INSTALLATION_ID" in message


@pytest.mark.parametrize("app_id", [str(APP_ID), "999"])
def test_a_jwt_the_sandbox_cannot_verify_is_one_401_line(
    sandbox: GitHubSandbox, installations: dict[str, int], app_id: str
) -> None:
    wrong = app_key("unregistered").private_pem if app_id == str(APP_ID) else app_key().private_pem
    adapter = GitHubAdapter(sandbox.url, AppLogin(app_id, wrong), retry=FAST)
    try:
        with pytest.raises(GitHubError) as caught:
            adapter.list_environments(REPO)
    finally:
        adapter.close()
    message = str(caught.value)
    assert message.startswith(f"GET {sandbox.url}/repos/{REPO}/installation: 401")
    assert "GITHUB_APP_ID" in message and "\n" not in message
    assert _log(sandbox) == [("GET", f"/repos/{REPO}/installation", 401)]  # not retried


def test_a_private_key_pygithub_cannot_sign_with_is_a_usage_error(sandbox: GitHubSandbox) -> None:
    broken = "-----BEGIN RSA PRIVATE KEY-----\ncanary-not-base64\n-----END RSA PRIVATE KEY-----"
    with pytest.raises(UsageError) as caught:
        GitHubAdapter(sandbox.url, AppLogin("1", broken))
    assert "cannot sign a JWT" in str(caught.value) and "canary" not in str(caught.value)
    assert sandbox.request_log() == []


def test_app_settings_from_the_environment_reach_the_sandbox(
    sandbox: GitHubSandbox, installations: dict[str, int]
) -> None:
    adapter = GitHubAdapter.from_environment(
        {
            "GITHUB_API_URL": sandbox.url,
            "GITHUB_APP_ID": str(APP_ID),
            "GITHUB_APP_PRIVATE_KEY": app_key().private_pem,
            "GITHUB_TOKEN": "not-used-when-an-app-is-configured",
        }
    )
    try:
        assert adapter.list_environments(REPO) == []
    finally:
        adapter.close()
    assert sandbox.request_counts()[("POST", "apps/create-installation-access-token")] == 1
