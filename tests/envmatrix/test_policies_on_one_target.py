"""Several policies that target one GitHub environment (issue 10 item 2), end to end on OpenBao
and the GitHub sandbox: each manages and prunes only what it wrote, sees the others' secrets as
orphans naming them, is blocked from a secret another policy manages, and adopts a legacy record
only when it names that secret there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from envmatrix.pipeline.desired import Target
from envmatrix.pipeline.state import state_path
from envmatrix.secret import SecretValue
from tests.world import REPO, World

PRODUCTION = Target(REPO, "production", "production")
STAGING = Target(REPO, "staging", "staging")


def policy_text(mount: str, name: str | None, secrets: dict[str, str], prune: bool = True) -> str:
    """A policy on the test's mount; `secrets` maps a secret name to its Vault path template."""
    lines = ["version: 1"] + ([f"name: {name}"] if name else [])
    lines += [
        f"vault: {{mount: {mount}}}",
        f"github: {{repositories: [{REPO}], prune: {str(prune).lower()}}}",
        "environments:",
        "  staging: {github: staging}",
        "  production: {github: production}",
        "owners:",
        "  team: {contact: team@occ.example}",
        "secrets:",
    ]
    for secret, vault in secrets.items():
        lines += [
            f"  {secret}:",
            "    owner: team",
            f"    vault: {vault}#{secret.lower()}",
            "    environments: [staging, production]",
        ]
    return "\n".join(lines) + "\n"


def seed(world: World, team: str, *secrets: str, tag: str = "v1") -> None:
    for env in ("staging", "production"):
        values = {s.lower(): SecretValue(f"{team}-{s}-{env}-{tag}") for s in secrets}
        world.vault.write_values(f"teams/{team}/{env}", values)


def plan_json(world: World, policy: Path) -> dict[str, Any]:
    result = world.run("plan", "--json", "--policy", str(policy))
    assert result.code == 0, result.err
    return result.json()  # type: ignore[no-any-return]


def apply(world: World, policy: Path) -> str:
    result = world.run("apply", "--yes", "--policy", str(policy))
    assert result.code == 0, result.out + result.err
    return result.out


def github(world: World, name: str, env: str = "production") -> str | None:
    return world.sandbox.secret_value(REPO, env, name)


# (payments file, payments name:, search file, search name:)
NAMINGS = [
    ("payments.yaml", "payments", "search.yaml", "search"),  # both named
    ("payments.yaml", None, "search.yaml", None),  # both named after their files
    ("team-a/envmatrix.yaml", "payments", "search.yaml", None),  # one of each
]


@pytest.mark.parametrize("naming", NAMINGS, ids=["named", "file-stems", "mixed"])
def test_two_prune_policies_on_one_environment_never_delete_each_other(
    world: World, tmp_path: Path, naming: tuple[str, str | None, str, str | None]
) -> None:
    pay_file, pay_name, search_file, search_name = naming
    mount = world.vault.mount
    payments, search = tmp_path / pay_file, tmp_path / search_file
    payments.parent.mkdir(exist_ok=True)
    payments.write_text(
        policy_text(mount, pay_name, {"PAYMENTS_API_KEY": "teams/payments/{environment}"})
    )
    search.write_text(
        policy_text(mount, search_name, {"SEARCH_API_KEY": "teams/search/{environment}"})
    )
    seed(world, "payments", "PAYMENTS_API_KEY")
    seed(world, "search", "SEARCH_API_KEY")
    for policy in (payments, search, payments, search):
        apply(world, policy)
    for env in ("staging", "production"):
        assert github(world, "PAYMENTS_API_KEY", env) == f"payments-PAYMENTS_API_KEY-{env}-v1"
        assert github(world, "SEARCH_API_KEY", env) == f"search-SEARCH_API_KEY-{env}-v1"
    pay_identity = pay_name or "payments"
    search_identity = search_name or "search"
    for policy, other, other_identity in (
        (payments, "SEARCH_API_KEY", search_identity),
        (search, "PAYMENTS_API_KEY", pay_identity),
    ):
        document = plan_json(world, policy)
        assert document["summary"]["delete"] == 0
        assert {
            (c["action"], c["environment"], c["name"], c["managed_by"]) for c in document["changes"]
        } == {
            ("orphan", "staging", other, other_identity),
            ("orphan", "production", other, other_identity),
        }


def test_an_unnamed_policy_is_warned_on_plan_and_apply(world: World, tmp_path: Path) -> None:
    policy = tmp_path / "payments.yaml"
    policy.write_text(
        policy_text(world.vault.mount, None, {"PAYMENTS_API_KEY": "teams/payments/{environment}"})
    )
    seed(world, "payments", "PAYMENTS_API_KEY")
    for command in (("plan",), ("apply", "--yes")):
        result = world.run(*command, "--policy", str(policy))
        assert result.code == 0 and "'payments'" in result.err and "set name:" in result.err
    named = tmp_path / "named.yaml"
    named.write_text(
        policy_text(
            world.vault.mount, "payments", {"PAYMENTS_API_KEY": "teams/payments/{environment}"}
        )
    )
    assert world.run("plan", "--policy", str(named)).err == ""


def test_prune_deletes_what_this_policy_dropped_and_nothing_of_the_others(
    world: World, tmp_path: Path
) -> None:
    mount = world.vault.mount
    payments, search = tmp_path / "payments.yaml", tmp_path / "search.yaml"
    both = {
        "PAYMENTS_API_KEY": "teams/payments/{environment}",
        "PAYMENTS_WEBHOOK": "teams/payments/{environment}",
    }
    payments.write_text(policy_text(mount, "payments", both))
    search.write_text(
        policy_text(mount, "search", {"SEARCH_API_KEY": "teams/search/{environment}"})
    )
    seed(world, "payments", "PAYMENTS_API_KEY", "PAYMENTS_WEBHOOK")
    seed(world, "search", "SEARCH_API_KEY")
    apply(world, payments)
    apply(world, search)
    payments.write_text(
        policy_text(mount, "payments", {"PAYMENTS_API_KEY": "teams/payments/{environment}"})
    )
    rows = {
        (c["action"], c["environment"], c["name"]) for c in plan_json(world, payments)["changes"]
    }
    assert rows == {
        ("delete", "staging", "PAYMENTS_WEBHOOK"),
        ("delete", "production", "PAYMENTS_WEBHOOK"),
        ("orphan", "staging", "SEARCH_API_KEY"),
        ("orphan", "production", "SEARCH_API_KEY"),
    }
    apply(world, payments)
    assert github(world, "PAYMENTS_WEBHOOK") is None and github(world, "SEARCH_API_KEY") is not None
    document = world.vault.read_document(state_path(PRODUCTION))
    assert document is not None
    assert document.data["managed_by"] == {
        "PAYMENTS_API_KEY": "payments",
        "SEARCH_API_KEY": "search",
    }


@pytest.mark.parametrize("rogue_prune", [True, False])
def test_two_policies_claiming_one_secret_is_blocked_naming_both(
    world: World, tmp_path: Path, rogue_prune: bool
) -> None:
    mount = world.vault.mount
    payments, rogue = tmp_path / "payments.yaml", tmp_path / "rogue.yaml"
    payments.write_text(
        policy_text(mount, "payments", {"PAYMENTS_API_KEY": "teams/payments/{environment}"})
    )
    rogue.write_text(
        policy_text(
            mount,
            "checkout",
            {
                "PAYMENTS_API_KEY": "teams/checkout/{environment}",
                "CHECKOUT_KEY": "teams/checkout/{environment}",
            },
            prune=rogue_prune,
        )
    )
    seed(world, "payments", "PAYMENTS_API_KEY")
    seed(world, "checkout", "PAYMENTS_API_KEY", "CHECKOUT_KEY")
    apply(world, payments)
    document = plan_json(world, rogue)
    blocked = [c for c in document["changes"] if c["action"] == "blocked"]
    assert sorted((c["environment"], c["name"], c["reason"], c["managed_by"]) for c in blocked) == [
        ("production", "PAYMENTS_API_KEY", "managed-by-another-policy", "payments"),
        ("staging", "PAYMENTS_API_KEY", "managed-by-another-policy", "payments"),
    ]
    assert all(
        "policy payments" in c["detail"] and "policy checkout" in c["detail"] for c in blocked
    )
    out = apply(world, rogue)
    assert "PAYMENTS_API_KEY" in out and "policy payments" in out
    for env in ("staging", "production"):  # payments' value stays; checkout's own secret lands
        assert github(world, "PAYMENTS_API_KEY", env) == f"payments-PAYMENTS_API_KEY-{env}-v1"
        assert github(world, "CHECKOUT_KEY", env) == f"checkout-CHECKOUT_KEY-{env}-v1"
    # and the other way round: payments still sees its secret as its own, checkout's as orphan
    rows = {
        (c["action"], c["name"], c["managed_by"]) for c in plan_json(world, payments)["changes"]
    }
    assert rows == {("orphan", "CHECKOUT_KEY", "checkout")}


def test_legacy_state_is_adopted_only_by_a_policy_naming_the_secret(
    world: World, tmp_path: Path
) -> None:
    """State written before policies had names (no managed_by) keeps working, no migration."""
    mount = world.vault.mount
    old = {
        "PAYMENTS_API_KEY": "teams/payments/{environment}",
        "OLD_TOKEN": "teams/payments/{environment}",
    }
    legacy = tmp_path / "legacy.yaml"
    legacy.write_text(policy_text(mount, "legacy", old))
    seed(world, "payments", "PAYMENTS_API_KEY", "OLD_TOKEN")
    apply(world, legacy)
    for target in (STAGING, PRODUCTION):  # rewrite the documents in today's layout
        document = world.vault.read_document(state_path(target))
        assert document is not None and set(document.data["managed_by"]) == set(old)
        layout = {"secrets": document.data["secrets"]}
        world.vault.write_document(state_path(target), layout, cas=document.version)

    search = tmp_path / "search.yaml"  # names neither: both legacy records are orphans to it
    search.write_text(
        policy_text(mount, "search", {"SEARCH_API_KEY": "teams/search/{environment}"})
    )
    seed(world, "search", "SEARCH_API_KEY")
    rows = {(c["action"], c["name"]) for c in plan_json(world, search)["changes"]}
    assert ("delete", "OLD_TOKEN") not in rows and ("orphan", "OLD_TOKEN") in rows
    assert ("orphan", "PAYMENTS_API_KEY") in rows
    apply(world, search)
    assert github(world, "OLD_TOKEN") is not None and github(world, "PAYMENTS_API_KEY") is not None

    payments = tmp_path / "payments.yaml"  # names PAYMENTS_API_KEY only: adopts it, not OLD_TOKEN
    payments.write_text(
        policy_text(mount, "payments", {"PAYMENTS_API_KEY": "teams/payments/{environment}"})
    )
    rows = {(c["action"], c["name"]) for c in plan_json(world, payments)["changes"]}
    assert rows == {("orphan", "OLD_TOKEN"), ("orphan", "SEARCH_API_KEY")}  # in sync: adopted
    seed(world, "payments", "PAYMENTS_API_KEY", "OLD_TOKEN", tag="v2")
    apply(world, payments)
    assert github(world, "PAYMENTS_API_KEY") == "payments-PAYMENTS_API_KEY-production-v2"
    document = world.vault.read_document(state_path(PRODUCTION))
    assert document is not None
    assert document.data["managed_by"] == {
        "PAYMENTS_API_KEY": "payments",
        "SEARCH_API_KEY": "search",
    }
    assert "OLD_TOKEN" in document.data["secrets"]  # still legacy, still recorded
