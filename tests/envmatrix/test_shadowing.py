"""Scopes shadow each other: a job gets the environment secret, else the repository secret, else
the organization secret of the same name. An environment secret the policy wants but GitHub lacks
is shown as `reason: shadowed` when a wider scope holds the name, and every verify source fails
on it (environ and vault only with a GitHub token; without one they warn). OpenBao + sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from tests.envmatrix.sandbox import ORG, call, put_secret_body
from tests.world import REPO, World


def org_secret(world: World, name: str, visibility: str = "all") -> None:
    base = f"/orgs/{ORG}/actions/secrets"
    body = {
        **put_secret_body(world.sandbox.url, f"{base}/public-key", "org-wide"),
        "visibility": visibility,
    }
    assert call(world.sandbox.url, "PUT", f"{base}/{name}", body).status == 201


def repository_secret(world: World, name: str) -> None:
    world.sandbox.write_secret_outside(REPO, None, name, "legacy-stale")


SHADOWS = {
    "repository": repository_secret,
    "organization": org_secret,
}


def rows(result: Any, name: str, environment: str) -> list[dict[str, Any]]:
    return [
        c
        for c in result.json()["changes"]
        if c["name"] == name and c["environment"] == environment and c["kind"] == "secret"
    ]


@pytest.mark.parametrize("scope", list(SHADOWS))
@pytest.mark.parametrize(
    ("name", "environment", "leave_out"),
    [
        ("SHOPIFY_ADMIN_TOKEN", "production", True),  # missing in Vault: blocked
        ("ZOHO_CLIENT_ID", "staging", False),  # in Vault, not yet applied: create
    ],
)
def test_plan_and_matrix_show_the_shadowing_scope(
    world: World, scope: str, name: str, environment: str, leave_out: bool
) -> None:
    world.seed(leave_out=(name, environment) if leave_out else None)
    SHADOWS[scope](world, name)
    plan = world.run("plan", "--json")
    (row,) = rows(plan, name, environment)
    assert row["reason"] == "shadowed"
    assert row["action"] == ("blocked" if leave_out else "create")
    assert row["shadowed_by"].startswith(f"{scope} secret")
    assert f"jobs in {environment} get {name} from the {scope} secret" in row["detail"]
    assert ("missing in Vault" in row["detail"]) is leave_out
    others = [c for c in plan.json()["changes"] if c["reason"] == "shadowed"]
    # only the name that is shadowed, and only where the environment copy is absent
    assert {(c["name"], c["environment"]) for c in others} == {(name, environment)} | (
        {(name, "staging")} if environment == "production" else {(name, "production")}
    )

    matrix = world.run("matrix", "--format", "json")
    statuses = {(c["environment"], c["secret"]): c["status"] for c in matrix.json()["cells"]}
    assert statuses[(environment, name)] == "shadowed"
    assert statuses[(environment, "SUPABASE_URL")] == "missing"
    table = world.run("matrix")
    assert "⇡ shadowed" in table.out


@pytest.mark.parametrize("scope", list(SHADOWS))
def test_once_applied_the_environment_copy_wins_and_nothing_is_shadowed(
    world: World, scope: str
) -> None:
    world.seed()
    SHADOWS[scope](world, "CHATWOOT_API_TOKEN")
    assert world.run("apply", "--yes").code == 0
    plan = world.run("plan", "--json")
    assert [c for c in plan.json()["changes"] if c["reason"] == "shadowed"] == []
    assert world.run("verify", "-e", "production", "--source", "github").code == 0


@pytest.mark.parametrize("scope", list(SHADOWS))
@pytest.mark.parametrize("source", ["github", "environ", "vault"])
def test_every_verify_source_fails_on_a_shadowed_secret(
    world: World, scope: str, source: str
) -> None:
    world.seed()
    assert world.run("apply", "--yes").code == 0
    SHADOWS[scope](world, "ZOHO_CLIENT_SECRET")
    call(
        world.sandbox.url,
        "DELETE",
        f"/repos/{REPO}/environments/production/secrets/ZOHO_CLIENT_SECRET",
    )
    for name in world.policy.secrets:  # the job's environment: GitHub's fallback looks present
        world.monkeypatch.setenv(name, "value-from-some-scope")
    result = world.run("verify", "-e", "production", "--source", source, "--json")
    assert result.code == 1, result.out + result.err
    (missing,) = result.json()["missing"]
    assert missing["name"] == "ZOHO_CLIENT_SECRET"
    assert missing["shadowed_by"].startswith(f"{scope} secret")
    human = world.run("verify", "-e", "production", "--source", source)
    assert f"jobs get ZOHO_CLIENT_SECRET from the {scope} secret" in human.out
    assert "value-from-some-scope" not in human.out + human.err


@pytest.mark.parametrize("source", ["environ", "vault"])
def test_without_a_github_token_environ_and_vault_warn_that_they_cannot_tell(
    world: World, source: str
) -> None:
    world.seed()
    for name in world.policy.secrets:
        world.monkeypatch.setenv(name, "value")
    del world.env["GITHUB_TOKEN"]
    world.monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    result = world.run("verify", "-e", "staging", "--source", source)
    assert result.code == 0, result.out + result.err
    assert "warning: no GITHUB_TOKEN (or GH_TOKEN): cannot tell" in result.err


def test_a_token_that_may_not_list_secrets_warns_instead_of_failing_the_gate(
    world: World,
) -> None:
    """Inside Actions the workflow token often cannot list secrets: the gate still runs."""
    world.seed()
    for name in world.policy.secrets:
        world.monkeypatch.setenv(name, "value")
    world.env["GITHUB_TOKEN"] = "not-the-sandbox-token"
    result = world.run("verify", "-e", "staging", "--source", "environ")
    assert result.code == 0, result.out + result.err
    assert "warning: cannot tell whether a same-named" in result.err
    assert "401" in result.err


def test_shadows_cost_one_list_per_repository_and_one_per_organization(world: World) -> None:
    world.seed()
    for i in range(5):
        repository_secret(world, f"LEGACY_{i}")
        org_secret(world, f"ORG_WIDE_{i}")
    world.sandbox.reset_counts()
    assert world.run("plan").code == 0
    counts = world.sandbox.request_counts()
    assert counts[("GET", "actions/list-repo-secrets")] == 1
    assert counts[("GET", "actions/list-org-secrets")] == 1
    assert counts[("GET", "actions/get-repo-secret")] == 0
    assert counts[("GET", "actions/get-org-secret")] == 0
