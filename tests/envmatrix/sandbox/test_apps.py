"""The sandbox's GitHub App endpoints over raw HTTP: JWT checks as GitHub documents them,
installation tokens that expire, per-account access, the admin API and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from envmatrix.sandbox import GitHubSandbox
from tests.envmatrix.sandbox import ORG, REPO, call
from tests.github_app import APP_ID, app_key

REPO_ROOT = Path(__file__).resolve().parents[3]
ELSEWHERE = "acme-payments/ledger"


def app_jwt(key: str | None = None, **claims: Any) -> str:
    """A JWT as a GitHub App client makes one (iat 60 s back, exp 5 minutes on)."""
    now = int(time.time())
    payload = {"iat": now - 60, "exp": now + 300, "iss": str(APP_ID), **claims}
    return jwt.encode(payload, key or app_key().private_pem, algorithm="RS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def installations(sandbox: GitHubSandbox) -> dict[str, int]:
    sandbox.add_repository(ELSEWHERE)
    reply = call(
        sandbox.url,
        "POST",
        "/_sandbox/apps",
        {"app_id": APP_ID, "public_key": app_key().public_pem},
    )
    assert reply.status == 201
    found: dict[str, int] = reply.json()["installations"]
    assert set(found) == {ORG, "acme-payments"}
    return found


def mint(sandbox: GitHubSandbox, installation: int) -> dict[str, Any]:
    reply = call(
        sandbox.url,
        "POST",
        f"/app/installations/{installation}/access_tokens",
        {},
        headers=bearer(app_jwt()),
    )
    assert reply.status == 201, reply.body
    token: dict[str, Any] = reply.json()
    return token


def test_installation_token_works_on_its_own_account_only_until_it_expires(
    sandbox: GitHubSandbox, installations: dict[str, int]
) -> None:
    token = mint(sandbox, installations[ORG])
    assert token["token"].startswith("ghs_") and token["expires_at"].endswith("Z")
    use = token["token"]
    assert call(sandbox.url, "GET", f"/repos/{REPO}", token=use).status == 200
    assert call(sandbox.url, "GET", f"/orgs/{ORG}/actions/secrets", token=use).status == 200
    assert call(sandbox.url, "GET", f"/repos/{ELSEWHERE}", token=use).status == 404
    assert call(sandbox.url, "GET", "/orgs/acme-payments/actions/secrets", token=use).status == 404
    assert call(sandbox.url, "POST", "/_sandbox/installation-tokens/expire").json() == {
        "expired": 1
    }
    assert call(sandbox.url, "GET", f"/repos/{REPO}", token=use).status == 401
    again = mint(sandbox, installations[ORG])["token"]
    sandbox.advance_clock(3599)
    assert call(sandbox.url, "GET", f"/repos/{REPO}", token=again).status == 200
    sandbox.advance_clock(1)  # one hour after minting, by the sandbox's clock
    assert call(sandbox.url, "GET", f"/repos/{REPO}", token=again).status == 401


def test_installation_lookups(sandbox: GitHubSandbox, installations: dict[str, int]) -> None:
    auth = bearer(app_jwt())
    listed = call(sandbox.url, "GET", "/app/installations", headers=auth).json()
    assert sorted(i["account"]["login"] for i in listed) == ["acme-payments", ORG]
    by_repo = call(sandbox.url, "GET", f"/repos/{ELSEWHERE}/installation", headers=auth).json()
    assert by_repo["id"] == installations["acme-payments"] and by_repo["app_id"] == APP_ID
    by_org = call(sandbox.url, "GET", f"/orgs/{ORG}/installation", headers=auth).json()
    assert by_org["id"] == installations[ORG]
    assert call(sandbox.url, "GET", "/orgs/nobody/installation", headers=auth).status == 404
    other_app = call(sandbox.url, "POST", f"/app/installations/{9}/access_tokens", headers=auth)
    assert other_app.status == 404


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(lambda: f"token {app_jwt()}", id="token-scheme"),
        pytest.param(lambda: "Bearer sandbox-token", id="the-sandbox-token"),
        pytest.param(lambda: "Bearer not.a.jwt", id="garbage"),
        pytest.param(lambda: f"Bearer {app_jwt(app_key('other').private_pem)}", id="wrong-key"),
        pytest.param(lambda: f"Bearer {app_jwt(iss='999')}", id="unknown-app"),
        pytest.param(
            lambda: "Bearer " + jwt.encode({"iss": str(APP_ID)}, "k" * 32, algorithm="HS256"),
            id="hs256",
        ),
        pytest.param(lambda: f"Bearer {app_jwt(exp=int(time.time()) - 1)}", id="expired"),
        pytest.param(lambda: f"Bearer {app_jwt(exp=int(time.time()) + 900)}", id="exp-too-far"),
        pytest.param(lambda: f"Bearer {app_jwt(iat=int(time.time()) + 300)}", id="iat-ahead"),
    ],
)
def test_app_endpoints_refuse_what_github_refuses(
    sandbox: GitHubSandbox, installations: dict[str, int], authorization: Any
) -> None:
    headers = {"Authorization": authorization()}
    for method, path in (
        ("GET", "/app/installations"),
        ("GET", f"/repos/{REPO}/installation"),
        ("POST", f"/app/installations/{installations[ORG]}/access_tokens"),
    ):
        reply = call(sandbox.url, method, path, {} if method == "POST" else None, headers=headers)
        assert reply.status == 401, (method, path)
        assert reply.json()["message"]


def test_admin_refuses_bad_apps(sandbox: GitHubSandbox) -> None:
    def post(body: dict[str, Any]) -> int:
        return call(sandbox.url, "POST", "/_sandbox/apps", body).status

    assert post({"app_id": "1", "public_key": app_key().public_pem}) == 422
    assert post({"app_id": 1, "public_key": "not a key"}) == 422
    assert post({"app_id": 1, "public_key": app_key().public_pem, "accounts": ["nobody"]}) == 404
    assert post({"app_id": 1, "public_key": app_key().public_pem, "token_ttl": "1h"}) == 422


def test_cli_registers_an_app_from_a_public_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "app.pub.pem"
    key_file.write_text(app_key().public_pem)
    argv = ["--token", "cli-token", "--repo", REPO, "--app-id", str(APP_ID)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "envmatrix.sandbox", *argv, "--app-public-key", str(key_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().removeprefix("sandbox listening on ")
        auth = bearer(app_jwt())
        installation = call(url, "GET", f"/repos/{REPO}/installation", headers=auth).json()["id"]
        path = f"/app/installations/{installation}/access_tokens"
        token = call(url, "POST", path, {}, headers=auth).json()["token"]
        assert call(url, "GET", f"/repos/{REPO}", token=token).status == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
