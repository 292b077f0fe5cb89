"""Plain Actions variables declared under `variables:` (a literal `value:` or `vault: PATH#KEY`),
environment and repository scope: plan rows of `kind: variable`, apply writes them, values are
compared (a hand edit of the value is changed-outside, a new Vault value is vault-newer), prune
deletes only what envmatrix wrote. End to end on OpenBao + the GitHub sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from envmatrix.secret import SecretValue
from tests.envmatrix.sandbox import call
from tests.world import OTHER_REPO, REPO, World

VARIABLES = f"""
variables:
  SUPABASE_REGION:
    owner: reliability
    value: eu-central-1
    environments: [staging, production]
  API_BASE_URL:
    owner: integrations
    vault: config/{{environment}}/api#base_url
    environments: [production]
  DEPLOY_CHANNEL:
    owner: reliability
    scope: repository
    value: "#deploys"
    repositories: [{REPO}, {OTHER_REPO}]
"""


def with_variables(world: World, text: str = VARIABLES, prune: bool = False) -> None:
    policy = world.policy_path.read_text()
    if prune:
        policy = policy.replace("prune: false", "prune: true")
    world.write_policy(policy + text)


def variable_rows(result: Any) -> dict[tuple[str, str | None], dict[str, Any]]:
    return {
        (c["name"], c["environment"]): c
        for c in result.json()["changes"]
        if c["kind"] == "variable" and not c["name"].startswith("FEATURE_")
    }


def seed(world: World, url: str = "https://api.prod.example") -> None:
    world.seed()
    world.vault.write_values("config/production/api", {"base_url": SecretValue(url)})


def test_plan_creates_each_variable_and_apply_writes_the_values(world: World) -> None:
    with_variables(world)
    seed(world)
    rows = variable_rows(world.run("plan", "--json"))
    assert {k: (r["action"], r["reason"]) for k, r in rows.items()} == {
        ("SUPABASE_REGION", "staging"): ("create", "missing"),
        ("SUPABASE_REGION", "production"): ("create", "missing"),
        ("API_BASE_URL", "production"): ("create", "missing"),
        ("DEPLOY_CHANNEL", None): ("create", "missing"),
    }
    assert world.run("apply", "--yes").code == 0
    sandbox = world.sandbox
    assert sandbox.variable_value(REPO, "staging", "SUPABASE_REGION") == "eu-central-1"
    assert sandbox.variable_value(REPO, "production", "SUPABASE_REGION") == "eu-central-1"
    assert sandbox.variable_value(REPO, "production", "API_BASE_URL") == "https://api.prod.example"
    assert sandbox.variable_value(REPO, "staging", "API_BASE_URL") is None
    for repo in (REPO, OTHER_REPO):
        assert sandbox.repository_variable_value(repo, "DEPLOY_CHANNEL") == "#deploys"
    again = world.run("plan", "--json", "--detailed-exitcode")
    assert variable_rows(again) == {}
    assert again.code == 0


@pytest.mark.parametrize(
    ("change", "name", "environment", "reason"),
    [
        ("outside", "SUPABASE_REGION", "staging", "changed-outside"),
        ("outside", "DEPLOY_CHANNEL", None, "changed-outside"),
        ("vault", "API_BASE_URL", "production", "vault-newer"),
        ("policy", "SUPABASE_REGION", "production", "value-differs"),
    ],
)
def test_a_value_that_differs_is_updated_whoever_changed_it(
    world: World, change: str, name: str, environment: str | None, reason: str
) -> None:
    with_variables(world)
    seed(world)
    assert world.run("apply", "--yes").code == 0
    world.sandbox.advance_clock(5)
    if change == "outside" and environment is None:
        path = f"/repos/{REPO}/actions/variables/{name}"
        assert call(world.sandbox.url, "PATCH", path, {"value": "#hand"}).status == 204
    elif change == "outside":
        world.sandbox.write_variable_outside(REPO, "staging", name, "us-east-1")
    elif change == "vault":
        seed_url = "https://api2.prod.example"
        world.vault.write_values("config/production/api", {"base_url": SecretValue(seed_url)})
    else:
        world.write_policy(world.policy_path.read_text().replace("eu-central-1", "eu-west-1"))
    rows = variable_rows(world.run("plan", "--json"))
    changed = {k: r for k, r in rows.items() if r["repository"] == REPO}
    if change == "policy":  # both environments carry the literal
        assert set(changed) == {(name, "staging"), (name, "production")}
    else:
        assert set(changed) == {(name, environment)}
    assert changed[(name, environment)]["action"] == "update"
    assert changed[(name, environment)]["reason"] == reason
    assert world.run("apply", "--yes").code == 0
    assert variable_rows(world.run("plan", "--json")) == {}


def test_vault_sourced_variable_missing_in_vault_is_blocked_naming_the_owner(world: World) -> None:
    with_variables(world)
    world.seed()
    rows = variable_rows(world.run("plan", "--json"))
    row = rows[("API_BASE_URL", "production")]
    assert (row["action"], row["reason"]) == ("blocked", "missing-in-vault")
    assert "integrations" in row["detail"]
    assert world.run("apply", "--yes").code == 0  # blocked is a warning
    assert world.sandbox.variable_value(REPO, "production", "API_BASE_URL") is None


def test_orphans_and_prune_touch_only_what_envmatrix_wrote(world: World) -> None:
    with_variables(world, prune=True)
    seed(world)
    assert world.run("apply", "--yes").code == 0
    world.sandbox.advance_clock(5)
    world.sandbox.write_variable_outside(REPO, "production", "HAND_MADE", "x")
    api = VARIABLES[VARIABLES.index("  API_BASE_URL:") : VARIABLES.index("  DEPLOY_CHANNEL:")]
    world.write_policy(world.policy_path.read_text().replace(api, ""))
    rows = variable_rows(world.run("plan", "--json"))
    got = {k: (r["action"], r["reason"]) for k, r in rows.items()}
    assert got == {
        ("API_BASE_URL", "production"): ("delete", "pruned"),
        ("HAND_MADE", "production"): ("orphan", "not-in-policy"),
    }
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.variable_value(REPO, "production", "API_BASE_URL") is None
    assert world.sandbox.variable_value(REPO, "production", "HAND_MADE") == "x"
    assert world.sandbox.variable_value(REPO, "production", "SUPABASE_REGION") == "eu-central-1"


def test_without_prune_a_dropped_variable_is_an_orphan(world: World) -> None:
    with_variables(world)
    seed(world)
    assert world.run("apply", "--yes").code == 0
    api = VARIABLES[VARIABLES.index("  API_BASE_URL:") : VARIABLES.index("  DEPLOY_CHANNEL:")]
    world.write_policy(world.policy_path.read_text().replace(api, ""))
    rows = variable_rows(world.run("plan", "--json"))
    assert {k: r["action"] for k, r in rows.items()} == {("API_BASE_URL", "production"): "orphan"}


def test_variables_are_validated(world: World) -> None:
    bad = VARIABLES.replace("    value: eu-central-1\n", "")
    with_variables(world, bad)
    result = world.run("validate")
    assert result.code == 3
    assert "exactly one of value or vault" in result.err
