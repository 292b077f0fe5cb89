"""Targets the policy no longer names (issue 12 items 2-3: "the same prune rules"): when the
policy drops the last secret or variable of an environment, a repository's Actions or
Dependabot secrets, or an organization's, what envmatrix wrote there is still found through its
sync state and reported (orphan) or pruned (delete) — and nothing else there is touched.

End to end on OpenBao + the GitHub sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from envmatrix.pipeline.state import STATE_PREFIX
from envmatrix.secret import SecretValue
from tests.envmatrix.sandbox import ORG
from tests.world import OTHER_REPO, REPO, World

# name -> (policy entry, scope, store, kind)
ENTRIES: dict[str, tuple[str, str, str, str]] = {
    "ONLY_IN_PRODUCTION": (
        "    owner: team\n    vault: apps/{environment}/one#value\n"
        "    environments: [production]\n",
        "environment",
        "actions",
        "secret",
    ),
    "REPO_TOKEN": (
        "    owner: team\n    scope: repository\n    vault: ci/shared#value\n",
        "repository",
        "actions",
        "secret",
    ),
    "BOT_TOKEN": (
        "    owner: team\n    scope: repository\n    store: dependabot\n"
        "    vault: ci/shared#value\n",
        "repository",
        "dependabot",
        "secret",
    ),
    "ORG_TOKEN": (
        "    owner: team\n    scope: organization\n    visibility: all\n"
        "    vault: ci/shared#value\n",
        "organization",
        "actions",
        "secret",
    ),
    "ORG_BOT_TOKEN": (
        "    owner: team\n    scope: organization\n    store: dependabot\n    visibility: private\n"
        "    vault: ci/shared#value\n",
        "organization",
        "dependabot",
        "secret",
    ),
}
VARIABLES: dict[str, tuple[str, str, str, str]] = {
    "REPO_REGION": (
        "    owner: team\n    scope: repository\n    value: eu-central-1\n",
        "repository",
        "actions",
        "variable",
    ),
    "ORG_REGION": (
        "    owner: team\n    scope: organization\n    visibility: all\n    value: eu-west-1\n",
        "organization",
        "actions",
        "variable",
    ),
}
EVERYTHING = {**ENTRIES, **VARIABLES}


def policy_text(
    mount: str, prune: bool, without: frozenset[str] = frozenset(), name: str = "recorded"
) -> str:
    secrets = "".join(f"  {n}:\n{entry}" for n, (entry, *_) in ENTRIES.items() if n not in without)
    variables = "".join(
        f"  {n}:\n{entry}" for n, (entry, *_) in VARIABLES.items() if n not in without
    )
    variables = variables or "  {}\n"
    return f"""version: 1
name: {name}
vault: {{mount: {mount}}}
github:
  organization: {ORG}
  repositories: [{REPO}]
  prune: {"true" if prune else "false"}
environments:
  staging: {{github: staging}}
  production: {{github: production}}
owners:
  team: {{contact: team@occ.example}}
secrets:
  KEEP:
    owner: team
    vault: apps/{{environment}}/keep#value
    environments: [staging]
{secrets}variables:
{variables}"""


def seed(world: World) -> None:
    for path, key in (
        ("apps/staging/keep", "value"),
        ("apps/production/one", "value"),
        ("ci/shared", "value"),
    ):
        world.vault.write_values(path, {key: SecretValue(f"value-of-{path}")})


def held(world: World, name: str) -> bool:
    """Whether the sandbox holds `name` where the policy put it."""
    box = world.sandbox
    found = {
        "ONLY_IN_PRODUCTION": lambda: box.secret_value(REPO, "production", name),
        "REPO_TOKEN": lambda: box.repository_secret_value(REPO, name),
        "BOT_TOKEN": lambda: box.dependabot_secret_value(REPO, name),
        "ORG_TOKEN": lambda: box.organization_secret_value(ORG, name),
        "ORG_BOT_TOKEN": lambda: box.organization_dependabot_secret_value(ORG, name),
        "REPO_REGION": lambda: box.repository_variable_value(REPO, name),
        "ORG_REGION": lambda: box.organization_variable_value(ORG, name),
    }[name]()
    return found is not None


def rows(world: World, *args: str) -> dict[str, dict[str, Any]]:
    result = world.run("plan", "--json", *args)
    assert result.code == 0, result.err
    return {c["name"]: c for c in result.json()["changes"]}


def applied(world: World, mount: str, prune: bool = True) -> None:
    world.write_policy(policy_text(mount, prune))
    seed(world)
    result = world.run("apply", "--yes")
    assert result.code == 0, result.out + result.err
    assert all(held(world, n) for n in EVERYTHING)


@pytest.mark.parametrize("name", list(EVERYTHING))
def test_a_dropped_last_item_of_a_target_is_pruned(
    world: World, vault_mount: str, name: str
) -> None:
    applied(world, vault_mount)
    _, scope, store, kind = EVERYTHING[name]
    world.write_policy(policy_text(vault_mount, True, frozenset({name})))
    row = rows(world)[name]
    assert (row["action"], row["reason"], row["kind"]) == ("delete", "pruned", kind)
    assert (row["scope"], row["store"]) == (scope, store)
    result = world.run("apply", "--yes")
    assert result.code == 0, result.out + result.err
    assert not held(world, name)
    assert all(held(world, n) for n in EVERYTHING if n != name)
    after = world.run("plan", "--json", "--detailed-exitcode")
    assert after.code == 0, after.out  # nothing left to do, nothing reported
    assert after.json()["changes"] == []


@pytest.mark.parametrize("name", ["ONLY_IN_PRODUCTION", "BOT_TOKEN", "ORG_BOT_TOKEN", "ORG_REGION"])
def test_without_prune_a_dropped_item_is_an_orphan_and_stays(
    world: World, vault_mount: str, name: str
) -> None:
    applied(world, vault_mount, prune=False)
    world.write_policy(policy_text(vault_mount, False, frozenset({name})))
    row = rows(world)[name]
    assert (row["action"], row["reason"]) == ("orphan", "not-in-policy")
    assert "written by envmatrix" in row["detail"]
    assert world.run("apply", "--yes").code == 0
    assert held(world, name)
    matrix = world.run("matrix", "--format", "json").json()
    (orphan,) = [o for o in matrix["orphans"] if o["secret"] == name]
    assert (orphan["scope"], orphan["store"]) == EVERYTHING[name][1:3]


def test_only_what_envmatrix_wrote_in_a_dropped_target_is_listed(
    world: World, vault_mount: str
) -> None:
    applied(world, vault_mount)
    world.sandbox.advance_clock(5)
    world.sandbox.write_secret_outside(REPO, "production", "HAND_MADE", "x")
    world.sandbox.write_secret_outside(REPO, None, "HAND_MADE_REPO", "x")
    # the production environment and the repository level are no longer the policy's
    dropped = frozenset({"ONLY_IN_PRODUCTION", "REPO_TOKEN", "REPO_REGION"})
    world.write_policy(policy_text(vault_mount, True, dropped))
    found = rows(world)
    assert {n: (r["action"], r["reason"]) for n, r in found.items()} == {
        "ONLY_IN_PRODUCTION": ("delete", "pruned"),
        "REPO_TOKEN": ("delete", "pruned"),
        "REPO_REGION": ("delete", "pruned"),
    }
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.secret_value(REPO, "production", "HAND_MADE") == "x"
    assert world.sandbox.repository_secret_value(REPO, "HAND_MADE_REPO") == "x"


def test_a_copy_changed_outside_since_envmatrix_wrote_it_is_an_orphan_not_deleted(
    world: World, vault_mount: str
) -> None:
    applied(world, vault_mount)
    world.sandbox.advance_clock(5)
    world.sandbox.write_secret_outside(REPO, "production", "ONLY_IN_PRODUCTION", "by hand")
    world.write_policy(policy_text(vault_mount, True, frozenset({"ONLY_IN_PRODUCTION"})))
    row = rows(world)["ONLY_IN_PRODUCTION"]
    assert (row["action"], row["reason"]) == ("orphan", "not-in-policy")
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.secret_value(REPO, "production", "ONLY_IN_PRODUCTION") == "by hand"


def test_another_policy_s_targets_are_not_this_policy_s_orphans(
    world: World, vault_mount: str
) -> None:
    applied(world, vault_mount)
    # a second policy, same repositories and organization, that never wrote anything
    other = policy_text(vault_mount, True, frozenset(EVERYTHING), name="another")
    world.write_policy(other)
    found = rows(world)
    assert set(found) <= {"KEEP"}  # its own KEEP: managed by the other policy, blocked
    assert not any(r["action"] in ("delete", "orphan") for r in found.values())


def test_a_run_of_some_environments_leaves_the_others_recorded_targets_alone(
    world: World, vault_mount: str
) -> None:
    applied(world, vault_mount)
    world.write_policy(policy_text(vault_mount, True, frozenset(EVERYTHING)))
    assert rows(world, "--environment", "staging") == {}  # outside the run: no rows
    everything = rows(world)
    assert set(everything) == set(EVERYTHING)
    assert {r["action"] for r in everything.values()} == {"delete"}


def test_the_state_is_found_with_lists_not_a_read_per_guess(world: World, vault_mount: str) -> None:
    """The recorded documents are what Vault lists under envmatrix/state: a target with no
    document is never read, and one found is observed."""
    applied(world, vault_mount)
    listed = world.vault.list_folder(f"{STATE_PREFIX}/{REPO}")
    assert "production" in listed and "@dependabot" in listed
    world.vault.write_document(f"{STATE_PREFIX}/{OTHER_REPO}/production", {"secrets": {}})
    world.write_policy(policy_text(vault_mount, True, frozenset({"ONLY_IN_PRODUCTION"})))
    assert set(rows(world)) == {"ONLY_IN_PRODUCTION"}  # OTHER_REPO is not the policy's
