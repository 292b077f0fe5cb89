"""Organization secrets and variables (`scope: organization`, `visibility`, the selected
`repositories`) and Dependabot secrets (`store: dependabot`, repository and organization) as
targets, end to end on OpenBao + the GitHub sandbox: validation, plan, apply, visibility
convergence, prune, shadowing, and no value anywhere in what envmatrix prints or keeps."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from envmatrix.secret import SecretValue
from tests.envmatrix.sandbox import ORG, call, put_secret_body
from tests.test_leaks import envmatrix_documents
from tests.world import OTHER_REPO, REPO, World

WIDE = f"""
  ORG_SENTRY_DSN:
    owner: reliability
    scope: organization
    visibility: selected
    repositories: [{REPO}, {OTHER_REPO}]
    vault: ci/sentry#dsn
  ORG_NPM_TOKEN:
    owner: reliability
    scope: organization
    visibility: all
    vault: ci/npm#token
  DEPENDABOT_NPM_TOKEN:
    owner: reliability
    scope: repository
    store: dependabot
    vault: ci/npm#token
  DEPENDABOT_ORG_REGISTRY:
    owner: reliability
    scope: organization
    store: dependabot
    visibility: private
    vault: ci/registry#password
"""

ORG_VARIABLES = f"""
variables:
  ORG_REGION:
    owner: reliability
    scope: organization
    visibility: selected
    repositories: [{REPO}]
    value: eu-central-1
"""

VALUES = {
    ("ci/sentry", "dsn"): "https://sentry.example/1",
    ("ci/npm", "token"): "npm-token-1",
    ("ci/registry", "password"): "registry-pass-1",
}


def with_wide(world: World, extra: str = WIDE, variables: str = ORG_VARIABLES) -> None:
    text = world.policy_path.read_text()
    text = text.replace("github:\n", f"github:\n  organization: {ORG}\n", 1)
    head, flags = text.split("\nflags:\n")
    head = head.replace("\nsecrets:\n", f"\nsecrets:\n{extra}", 1)
    world.write_policy(f"{head}\nflags:\n{flags}{variables}")


def seed(world: World, values: dict[tuple[str, str], str] = VALUES) -> None:
    world.seed()
    by_path: dict[str, dict[str, SecretValue]] = {}
    for (path, key), value in values.items():
        by_path.setdefault(path, {})[key] = SecretValue(value)
    for path, data in by_path.items():
        world.vault.write_values(path, data)


def wide_rows(result: Any) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Rows of organization and Dependabot copies: (name, scope, store) -> row."""
    return {
        (c["name"], c["scope"], c["store"]): c
        for c in result.json()["changes"]
        if c.get("scope") == "organization" or c.get("store") == "dependabot"
    }


def test_plan_then_apply_writes_every_organization_and_dependabot_copy(world: World) -> None:
    with_wide(world)
    seed(world)
    plan = world.run("plan", "--json")
    assert plan.code == 0, plan.err
    rows = wide_rows(plan)
    assert {k: (r["action"], r["reason"]) for k, r in rows.items()} == {
        ("ORG_SENTRY_DSN", "organization", "actions"): ("create", "missing"),
        ("ORG_NPM_TOKEN", "organization", "actions"): ("create", "missing"),
        ("DEPENDABOT_NPM_TOKEN", "repository", "dependabot"): ("create", "missing"),
        ("DEPENDABOT_ORG_REGISTRY", "organization", "dependabot"): ("create", "missing"),
        ("ORG_REGION", "organization", "actions"): ("create", "missing"),
    }
    sentry = rows[("ORG_SENTRY_DSN", "organization", "actions")]
    assert (sentry["repository"], sentry["environment"]) == (ORG, None)
    assert sentry["visibility"] == "selected"
    assert sentry["selected_repositories"] == sorted([REPO, OTHER_REPO])

    applied = world.run("apply", "--yes")
    assert applied.code == 0, applied.out + applied.err
    box = world.sandbox
    assert box.organization_secret_value(ORG, "ORG_SENTRY_DSN") == "https://sentry.example/1"
    assert box.organization_access(ORG, "ORG_SENTRY_DSN") == (
        "selected",
        sorted([REPO, OTHER_REPO]),
    )
    assert box.organization_access(ORG, "ORG_NPM_TOKEN") == ("all", [])
    assert box.dependabot_secret_value(REPO, "DEPENDABOT_NPM_TOKEN") == "npm-token-1"
    assert box.repository_secret_value(REPO, "DEPENDABOT_NPM_TOKEN") is None  # not Actions'
    assert box.organization_dependabot_secret_value(ORG, "DEPENDABOT_ORG_REGISTRY") == (
        "registry-pass-1"
    )
    assert box.organization_access(ORG, "DEPENDABOT_ORG_REGISTRY", store="dependabot") == (
        "private",
        [],
    )
    assert box.organization_variable_value(ORG, "ORG_REGION") == "eu-central-1"
    assert box.organization_access(ORG, "ORG_REGION", kind="variable") == ("selected", [REPO])

    again = world.run("plan", "--json", "--detailed-exitcode")
    assert wide_rows(again) == {}
    assert again.code == 0


def test_one_list_per_organization_and_store_not_a_get_per_secret(world: World) -> None:
    with_wide(world)
    seed(world)
    assert world.run("apply", "--yes").code == 0
    before = world.sandbox.request_counts()
    assert world.run("plan", "--json").code == 0
    counts = world.sandbox.request_counts() - before
    assert counts[("GET", "actions/list-org-secrets")] == 1
    assert counts[("GET", "dependabot/list-org-secrets")] == 1
    assert counts[("GET", "actions/list-org-variables")] == 1
    assert counts[("GET", "dependabot/list-repo-secrets")] == 1
    # the selected ones only: ORG_SENTRY_DSN (secret) and ORG_REGION (variable)
    assert counts[("GET", "actions/list-selected-repos-for-org-secret")] == 1
    assert counts[("GET", "actions/list-selected-repos-for-org-variable")] == 1
    assert counts.get(("GET", "actions/get-org-secret"), 0) == 0
    assert counts.get(("GET", "dependabot/get-repo-secret"), 0) == 0


def _org_put(world: World, store: str, name: str, value: str, **access: Any) -> None:
    base = f"/orgs/{ORG}/{store}/secrets"
    body = {**put_secret_body(world.sandbox.url, f"{base}/public-key", value), **access}
    assert call(world.sandbox.url, "PUT", f"{base}/{name}", body).status in (201, 204)


@pytest.mark.parametrize(
    ("change", "name", "kind", "expected"),
    [
        ("visibility", "ORG_SENTRY_DSN", "secret", ("selected", sorted([REPO, OTHER_REPO]))),
        ("repositories", "ORG_SENTRY_DSN", "secret", ("selected", sorted([REPO, OTHER_REPO]))),
        ("visibility", "ORG_NPM_TOKEN", "secret", ("all", [])),
        ("variable", "ORG_REGION", "variable", ("selected", [REPO])),
    ],
)
def test_visibility_changed_in_github_is_planned_and_converged(
    world: World, change: str, name: str, kind: str, expected: tuple[str, list[str]]
) -> None:
    with_wide(world)
    seed(world)
    assert world.run("apply", "--yes").code == 0
    url = world.sandbox.url
    if change == "visibility":
        path = f"/orgs/{ORG}/actions/secrets/{name}"
        current = world.sandbox.organization_access(ORG, name)
        assert current is not None
        other = "private" if current[0] != "private" else "all"
        body = {
            "visibility": other,
            **put_secret_body(url, f"/orgs/{ORG}/actions/secrets/public-key", "x"),
        }
        assert call(url, "PUT", path, body).status == 204
    elif change == "repositories":
        path = f"/orgs/{ORG}/actions/secrets/{name}/repositories"
        assert call(url, "PUT", path, {"selected_repository_ids": []}).status == 204
    else:
        path = f"/orgs/{ORG}/actions/variables/{name}"
        assert call(url, "PATCH", path, {"visibility": "all"}).status == 204
    rows = wide_rows(world.run("plan", "--json"))
    (row,) = [r for (n, _, _), r in rows.items() if n == name]
    assert row["action"] == "update"
    assert row["reason"] in ("visibility-differs", "changed-outside")
    if change == "repositories" or change == "variable":
        assert row["reason"] == "visibility-differs"
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.organization_access(ORG, name, kind=kind) == expected
    assert wide_rows(world.run("plan", "--json")) == {}


SPARES = """  BOT_SPARE:
    owner: reliability
    scope: repository
    store: dependabot
    vault: ci/npm#token
  BOT_ORG_SPARE:
    owner: reliability
    scope: organization
    store: dependabot
    vault: ci/npm#token
"""


def test_prune_deletes_only_the_organization_copies_envmatrix_wrote(world: World) -> None:
    with_wide(world, WIDE + SPARES)
    seed(world)
    assert world.run("apply", "--yes").code == 0
    world.sandbox.advance_clock(5)
    _org_put(world, "actions", "HAND_MADE_ORG", "x", visibility="all")
    _org_put(world, "dependabot", "HAND_MADE_BOT", "x", visibility="all")
    kept = WIDE[: WIDE.index("  ORG_NPM_TOKEN:")] + SPARES  # ORG_SENTRY_DSN and the spares
    policy = (
        world.policy_path.read_text()
        .replace(WIDE + SPARES, kept)
        .replace("prune: false", "prune: true")
    )
    world.write_policy(policy.replace(ORG_VARIABLES, "\nvariables: {}\n"))
    rows = wide_rows(world.run("plan", "--json"))
    got = {k: (r["action"], r["reason"]) for k, r in rows.items()}
    assert got == {
        ("ORG_NPM_TOKEN", "organization", "actions"): ("delete", "pruned"),
        ("DEPENDABOT_NPM_TOKEN", "repository", "dependabot"): ("delete", "pruned"),
        ("DEPENDABOT_ORG_REGISTRY", "organization", "dependabot"): ("delete", "pruned"),
        # the organization's last variable left the policy: what envmatrix wrote is pruned too
        ("ORG_REGION", "organization", "actions"): ("delete", "pruned"),
    }
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.organization_variable_value(ORG, "ORG_REGION") is None
    box = world.sandbox
    assert box.organization_secret_value(ORG, "ORG_NPM_TOKEN") is None
    assert box.dependabot_secret_value(REPO, "DEPENDABOT_NPM_TOKEN") is None
    assert box.organization_dependabot_secret_value(ORG, "DEPENDABOT_ORG_REGISTRY") is None
    assert box.organization_secret_value(ORG, "HAND_MADE_ORG") == "x"
    assert box.organization_dependabot_secret_value(ORG, "HAND_MADE_BOT") == "x"
    assert box.organization_secret_value(ORG, "ORG_SENTRY_DSN") is not None


@pytest.mark.parametrize(
    ("where", "name", "shadowed"),
    [
        ("repository", "ORG_SENTRY_DSN", True),  # a selected repository's own secret wins
        ("environment", "ORG_SENTRY_DSN", True),  # so does an environment secret there
        ("repository", "ORG_NPM_TOKEN", True),  # visibility all reaches the targeted repo
        ("nowhere", "ORG_SENTRY_DSN", False),
    ],
)
def test_an_organization_secret_a_narrower_one_overrides_is_shadowed(
    world: World, where: str, name: str, shadowed: bool
) -> None:
    with_wide(world)
    seed(world)
    if where == "repository":
        world.sandbox.write_secret_outside(REPO, None, name, "repo-wins")
    elif where == "environment":
        world.sandbox.create_environment(REPO, "production")
        world.sandbox.write_secret_outside(REPO, "production", name, "env-wins")
    rows = wide_rows(world.run("plan", "--json"))
    row = rows[(name, "organization", "actions")]
    assert row["action"] == "create"
    if shadowed:
        assert row["reason"] == "shadowed"
        assert REPO in row["shadowed_by"]
        assert where in row["shadowed_by"]
    else:
        assert row["reason"] == "missing"


def test_a_dependabot_organization_secret_shadowed_by_a_dependabot_repository_one(
    world: World,
) -> None:
    extra = f"""
  BOT_SELECTED:
    owner: reliability
    scope: organization
    store: dependabot
    visibility: selected
    repositories: [{OTHER_REPO}]
    vault: ci/npm#token
"""
    with_wide(world, extra, variables="")
    seed(world)
    base = f"/repos/{OTHER_REPO}/dependabot/secrets"
    body = put_secret_body(world.sandbox.url, f"{base}/public-key", "repo-bot")
    assert call(world.sandbox.url, "PUT", f"{base}/BOT_SELECTED", body).status == 201
    row = wide_rows(world.run("plan", "--json"))[("BOT_SELECTED", "organization", "dependabot")]
    assert row["reason"] == "shadowed"
    assert OTHER_REPO in row["shadowed_by"]


BAD = [
    (
        "  X_TOKEN:\n    owner: reliability\n    store: dependabot\n    vault: ci/x\n"
        "    environments: [production]\n",
        "secrets.X_TOKEN.store",
        "Dependabot has no environment secrets",
    ),
    (
        "  X_TOKEN:\n    owner: reliability\n    scope: organization\n    visibility: selected\n"
        "    vault: ci/x\n",
        "secrets.X_TOKEN.repositories",
        "visibility: selected needs repositories",
    ),
    (
        f"  X_TOKEN:\n    owner: reliability\n    scope: organization\n    visibility: all\n"
        f"    repositories: [{REPO}]\n    vault: ci/x\n",
        "secrets.X_TOKEN.repositories",
        "remove repositories",
    ),
    (
        "  X_TOKEN:\n    owner: reliability\n    scope: repository\n    visibility: all\n"
        "    vault: ci/x\n",
        "secrets.X_TOKEN.visibility",
        "scope: organization only",
    ),
    (
        "  X_TOKEN:\n    owner: reliability\n    scope: organization\n    visibility: selected\n"
        "    repositories: [other-org/app]\n    vault: ci/x\n",
        "secrets.X_TOKEN.repositories[0]",
        "not a repository of occ-labs",
    ),
    (
        "  X_TOKEN:\n    owner: reliability\n    scope: organization\n"
        "    vault: ci/{environment}/x\n",
        "secrets.X_TOKEN.vault",
        "cannot use {environment}",
    ),
    (
        "  X_TOKEN:\n    owner: reliability\n    scope: organization\n    vault: ci/x\n"
        "    environments: [production]\n",
        "secrets.X_TOKEN.environments",
        "remove environments",
    ),
    (
        "  X_TOKEN:\n    owner: reliability\n    scope: organization\n    store: vault\n"
        "    vault: ci/x\n",
        "secrets.X_TOKEN.store",
        "",
    ),
]


@pytest.mark.parametrize(("entry", "key", "message"), BAD)
def test_bad_organization_and_dependabot_entries_are_policy_errors(
    world: World, entry: str, key: str, message: str
) -> None:
    with_wide(world, entry, variables="")
    result = world.run("validate", "--json")
    assert result.code == 3
    problems = result.json()["problems"]
    found = [p for p in problems if p["key"] == key]
    assert found, problems
    assert message in found[0]["message"]
    assert found[0]["line"] > 0
    plain = world.run("plan")
    assert plain.code == 3
    assert f"{world.policy_path}:" in plain.err


def test_scope_organization_without_github_organization_is_a_policy_error(world: World) -> None:
    with_wide(world, variables="")
    world.write_policy(world.policy_path.read_text().replace(f"  organization: {ORG}\n", ""))
    result = world.run("validate", "--json")
    assert result.code == 3
    keys = {p["key"]: p["message"] for p in result.json()["problems"]}
    assert "needs github.organization" in keys["secrets.ORG_SENTRY_DSN.scope"]
    assert "secrets.DEPENDABOT_ORG_REGISTRY.scope" in keys
    assert "secrets.DEPENDABOT_NPM_TOKEN.scope" not in keys  # repository scope needs none


def test_no_value_of_an_organization_or_dependabot_copy_anywhere(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "CANARY-0rg-d3p"
    with_wide(world)
    values = {key: f"{canary}-{i}" for i, key in enumerate(VALUES)}
    seed(world, values)
    world.env["ENVMATRIX_DEBUG"] = "1"
    caplog.set_level(logging.DEBUG)
    plan_file = world.policy_path.parent / "wide.plan"
    seen = [
        world.run("plan", "--json"),
        world.run("plan", "--out", str(plan_file)),
        world.run("apply", str(plan_file), "--json"),
    ]
    world.sandbox.advance_clock(5)
    _org_put(world, "actions", "ORG_NPM_TOKEN", "hand", visibility="private")
    seen += [world.run("plan"), world.run("apply", "--yes", "--json"), world.run("matrix")]
    assert world.sandbox.organization_secret_value(ORG, "ORG_NPM_TOKEN") == f"{canary}-1"
    text = "\n".join(r.out + r.err for r in seen)
    text += plan_file.read_text() + caplog.text + envmatrix_documents(world)
    audit = world.policy_path.parent / "audit.sqlite"
    if audit.exists():
        text += audit.read_bytes().decode("utf-8", errors="replace")
    assert canary not in text
