"""GitHub's limits before GitHub refuses: plan blocks what would pass them (counting what the
target already holds, managed or not), apply starts no write that must fail, and the sandbox
answers GitHub's 422 for the same numbers (100 secrets per environment and per repository,
1,000 per organization; 100 variables per environment, 500 per repository; 48 KB a value)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envmatrix import cli
from envmatrix.errors import PolicyError
from envmatrix.policy import load_policy
from tests.envmatrix.sandbox import ORG, call, put_secret_body
from tests.world import REPO, World


@pytest.mark.parametrize(("held", "blocked"), [(92, 0), (93, 1), (97, 5), (100, 8)])
def test_plan_blocks_the_creates_past_100_secrets_in_an_environment(
    world: World, held: int, blocked: int
) -> None:
    world.seed()
    world.sandbox.create_environment(REPO, "staging")
    for i in range(held):  # not the policy's: they count all the same
        world.sandbox.write_secret_outside(REPO, "staging", f"HAND_MADE_{i:03d}", "x")
    plan = world.run("plan", "--json", "-e", "staging")
    rows = [c for c in plan.json()["changes"] if c["kind"] == "secret" and c["action"] != "orphan"]
    over = [c for c in rows if c["reason"] == "limit-exceeded"]
    assert len(over) == blocked and all(c["action"] == "blocked" for c in over)
    if over:
        assert f"staging of {REPO} holds {held} and this plan adds 8" in over[0]["detail"]
        assert "at most 100 secrets per environment" in over[0]["detail"]
        assert "owner:" in over[0]["detail"]
    world.sandbox.reset_counts()
    applied = world.run("apply", "--yes", "-e", "staging")
    assert applied.code == 0, applied.out + applied.err  # nothing attempted fails
    counts = world.sandbox.request_counts()
    assert counts[("PUT", "actions/create-or-update-environment-secret")] == 8 - blocked
    waiting = {"SUPABASE_URL", "SUPABASE_SERVICE_KEY"} & {c["name"] for c in over}
    flag = world.sandbox.variable_value(REPO, "staging", "FEATURE_AI_ESCALATIONS")
    assert flag == ("false" if waiting else "true")


@pytest.mark.parametrize("size", [48 * 1024 + 1, 60_000, 200_000])
def test_plan_blocks_a_value_over_48_kb_and_apply_sends_nothing(world: World, size: int) -> None:
    world.seed()
    world.set_vault_value("GA_MCP_SERVICE_ACCOUNT_JSON", "production", "x" * size)
    plan = world.run("plan", "--json", "-e", "production")
    (row,) = [c for c in plan.json()["changes"] if c["name"] == "GA_MCP_SERVICE_ACCOUNT_JSON"]
    assert (row["action"], row["reason"]) == ("blocked", "too-large")
    assert f"is {size} bytes; GitHub takes at most 49152" in row["detail"]
    assert world.run("apply", "--yes", "-e", "production").code == 0
    assert world.sandbox.secret_value(REPO, "production", "GA_MCP_SERVICE_ACCOUNT_JSON") is None


def test_exactly_48_kb_is_sent(world: World) -> None:
    world.seed()
    world.set_vault_value("GA_MCP_SERVICE_ACCOUNT_JSON", "production", "é" * (24 * 1024))
    assert world.run("apply", "--yes", "-e", "production").code == 0
    stored = world.sandbox.secret_value(REPO, "production", "GA_MCP_SERVICE_ACCOUNT_JSON")
    assert stored is not None and len(stored.encode()) == 48 * 1024


def test_repository_level_count_includes_what_the_repository_holds(world: World) -> None:
    world.add_repository_secrets()
    world.seed()
    for i in range(99):
        world.sandbox.write_secret_outside(REPO, None, f"REPO_HELD_{i:02d}", "x")
    plan = world.run("plan", "--json")
    level = [
        c
        for c in plan.json()["changes"]
        if c["environment"] is None and c["repository"] == REPO and c["action"] != "orphan"
    ]
    assert sorted((c["name"], c["action"]) for c in level) == [
        ("CODECOV_TOKEN", "create"),
        ("SENTRY_AUTH_TOKEN", "blocked"),
    ]


# -- the sandbox: GitHub's numbers, GitHub's error shape ------------------------------------


def _put(world: World, base: str, name: str, extra: dict[str, object] | None = None) -> int:
    body = {**put_secret_body(world.sandbox.url, f"{base}/public-key", "v"), **(extra or {})}
    return call(world.sandbox.url, "PUT", f"{base}/{name}", body).status


@pytest.mark.parametrize(
    ("scope", "limit"), [("environment", 100), ("repository", 100), ("organization", 1000)]
)
def test_sandbox_refuses_one_secret_past_the_limit_but_updates_at_the_limit(
    world: World, scope: str, limit: int
) -> None:
    world.sandbox.create_environment(REPO, "staging")
    base = {
        "environment": f"/repos/{REPO}/environments/staging/secrets",
        "repository": f"/repos/{REPO}/actions/secrets",
        "organization": f"/orgs/{ORG}/actions/secrets",
    }[scope]
    extra = {"visibility": "all"} if scope == "organization" else None
    key = put_secret_body(world.sandbox.url, f"{base}/public-key", "v")
    for i in range(limit):
        reply = call(world.sandbox.url, "PUT", f"{base}/S_{i:04d}", {**key, **(extra or {})})
        assert reply.status == 201
    refused = call(world.sandbox.url, "PUT", f"{base}/ONE_MORE", {**key, **(extra or {})})
    assert refused.status == 422
    body = refused.json()
    assert body["message"] == "Validation Failed"
    assert body["errors"][0]["resource"] == "Secret"
    assert f"at most {limit} secrets" in body["errors"][0]["message"]
    assert _put(world, base, "S_0000", extra) == 204  # an update is never refused


@pytest.mark.parametrize(("scope", "limit"), [("environment", 100), ("repository", 500)])
def test_sandbox_refuses_one_variable_past_the_limit(world: World, scope: str, limit: int) -> None:
    world.sandbox.create_environment(REPO, "staging")
    base = {
        "environment": f"/repos/{REPO}/environments/staging/variables",
        "repository": f"/repos/{REPO}/actions/variables",
    }[scope]
    for i in range(limit):
        body = {"name": f"V_{i:04d}", "value": "v"}
        assert call(world.sandbox.url, "POST", base, body).status == 201
    refused = call(world.sandbox.url, "POST", base, {"name": "ONE_MORE", "value": "v"})
    assert refused.status == 422
    assert f"at most {limit} variables" in refused.json()["errors"][0]["message"]
    patched = call(world.sandbox.url, "PATCH", f"{base}/V_0000", {"value": "w"})
    assert patched.status == 204


@pytest.mark.parametrize("size", [48 * 1024 + 1, 100_000])
def test_sandbox_refuses_a_value_over_48_kb(world: World, size: int) -> None:
    base = f"/repos/{REPO}/actions/secrets"
    body = put_secret_body(world.sandbox.url, f"{base}/public-key", "x" * size)
    assert call(world.sandbox.url, "PUT", f"{base}/BIG", body).status == 422
    variable = {"name": "BIG", "value": "x" * size}
    assert (
        call(world.sandbox.url, "POST", f"/repos/{REPO}/actions/variables", variable).status == 422
    )


@pytest.mark.parametrize(
    ("count", "scope", "message"),
    [
        (101, "environment", "101 secrets for environment production of occ/app"),
        (150, "environment", "150 secrets for environment production of occ/app"),
        (101, "repository", "101 secrets for repository occ/app"),
    ],
)
def test_validate_refuses_a_policy_that_alone_passes_a_limit(
    tmp_path: Path, count: int, scope: str, message: str
) -> None:
    lines = [
        "version: 1",
        "github: {repositories: [occ/app]}",
        "environments: {production: {github: production}}",
        "owners: {team: {contact: team@occ.example}}",
        "secrets:",
    ]
    for i in range(count):
        where = "scope: repository" if scope == "repository" else "environments: [production]"
        lines.append(f"  S_{i:03d}: {{owner: team, vault: 'apps/s#k{i}', {where}}}")
    path = tmp_path / "big.yaml"
    path.write_text("\n".join(lines) + "\n")
    code = cli.main(["validate", "--policy", str(path)])
    assert code == 3
    with pytest.raises(PolicyError, match=message):
        load_policy(path)
    lines[-1:] = []  # one secret fewer: at the limit when count was 101
    path.write_text("\n".join(lines) + "\n")
    if count == 101:
        assert load_policy(path).secrets
