"""`--shard K/N` (issue 13 item 5): a deterministic partition of the repositories, plans whose
union is exactly the single plan, saved plans that keep their shard, and locks per shard.

End to end against OpenBao and the GitHub sandbox (a 12-repository org)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.errors import LockHeldError, UsageError
from envmatrix.lock import ApplyLock
from envmatrix.pipeline.shard import MAX_SHARDS, Shard, parse_shard, shard_of
from envmatrix.sandbox import GitHubSandbox
from tests.world import World

REPOSITORIES = [f"occ-labs/service-{i:02d}" for i in range(12)]
TOKEN = "sandbox-token"


def org_policy_data(mount: str) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "sharded",
        "vault": {"mount": mount},
        "github": {"repositories": REPOSITORIES, "prune": True},
        "environments": {"staging": {"github": "staging"}, "production": {"github": "production"}},
        "owners": {"platform": {"contact": "platform@occ.example"}},
        "secrets": {
            **{
                f"SECRET_{i}": {
                    "owner": "platform",
                    "vault": f"apps/{{environment}}/s{i}#value",
                    "environments": ["staging", "production"],
                }
                for i in range(3)
            },
            "ONLY_SOME": {
                "owner": "platform",
                "vault": "apps/{environment}/some#value",
                "environments": ["production"],
                "repositories": REPOSITORIES[3:8],
            },
            "REPO_WIDE": {
                "owner": "platform",
                "vault": "apps/shared/repo#value",
                "scope": "repository",
            },
        },
        "flags": {
            "PAYMENTS_READY": {"requires": ["SECRET_0", "SECRET_1"], "environments": ["staging"]}
        },
    }


@pytest.fixture
def org_world(
    tmp_path: Path,
    vault: VaultAdapter,
    vault_mount: str,
    vault_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    sandbox = GitHubSandbox(token=TOKEN, repositories=REPOSITORIES)
    sandbox.start()
    policy_path = tmp_path / "envmatrix.yaml"
    with policy_path.open("w") as handle:
        YAML().dump(org_policy_data(vault_mount), handle)
    env = {
        **vault_env,
        "GITHUB_API_URL": sandbox.url,
        "GITHUB_TOKEN": TOKEN,
        "ENVMATRIX_POLICY": str(policy_path),
        "ENVMATRIX_GITHUB_BACKOFF": "0.01",
        "ENVMATRIX_AUDIT_DB": str(tmp_path / "audit.sqlite"),
    }
    monkeypatch.chdir(tmp_path)
    world = World(vault, sandbox, policy_path, env, monkeypatch)
    try:
        world.seed()
        yield world
    finally:
        sandbox.stop()


def plan_rows(world: World, *args: str) -> list[dict[str, Any]]:
    result = world.run("plan", "--json", *args)
    assert result.code == 0, result.err
    document = result.json()
    rows: list[dict[str, Any]] = document["changes"]
    shard = next((a.split("=", 1)[-1] for a in args if a.startswith("--shard")), None)
    if shard is not None:
        assert all(row.pop("shard") == document["shard"] for row in rows)
    return rows


def canonical(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True) for row in rows)


# -- the partition ------------------------------------------------------------------------------


def test_a_repository_s_shard_is_sha256_of_its_lower_cased_name_mod_n() -> None:
    for repository in [*REPOSITORIES, "Acme/Web", "x/y"]:
        digest = hashlib.sha256(repository.lower().encode()).digest()
        for count in (1, 2, 3, 7, 1000):
            expected = 1 + int.from_bytes(digest[:8], "big") % count
            assert shard_of(repository, count) == expected
            assert shard_of(repository.upper(), count) == expected  # GitHub ignores case
            assert Shard(expected, count).holds_repository(repository)


def test_every_repository_is_in_exactly_one_shard_and_the_org_level_in_shard_1() -> None:
    for count in (1, 2, 3, 7):
        shards = [Shard(k, count) for k in range(1, count + 1)]
        for repository in REPOSITORIES:
            assert sum(s.holds_repository(repository) for s in shards) == 1
        assert [s.holds_repository("occ-labs") for s in shards] == [True] + [False] * (count - 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1/1", (1, 1)), ("2/3", (2, 3)), (" 7 / 7 ", (7, 7)), ("1000/1000", (1000, 1000))],
)
def test_shard_values_that_are_accepted(text: str, expected: tuple[int, int]) -> None:
    shard = parse_shard(text)
    assert (shard.index, shard.count) == expected
    assert str(shard) == f"{expected[0]}/{expected[1]}"


@pytest.mark.parametrize(
    "text", ["0/3", "4/3", "1/0", "1/1001", "2", "a/b", "-1/3", "1/3/5", "", "1.5/3", "1e3/2000"]
)
def test_bad_shard_values_are_a_one_line_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_shard(text)
    assert "\n" not in str(caught.value) and "--shard" in str(caught.value)
    assert str(MAX_SHARDS) in str(caught.value)


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize("value", ["0/2", "3/2", "x"])
def test_a_bad_shard_exits_3_before_anything_connects(
    org_world: World, command: str, value: str
) -> None:
    org_world.sandbox.reset_counts()
    result = org_world.run(command, "--shard", value, *(["--yes"] if command == "apply" else []))
    assert result.code == 3
    assert "--shard" in result.err and len(result.err.strip().splitlines()) == 1
    assert sum(org_world.sandbox.request_counts().values()) == 0


# -- the shards together plan exactly what one run plans --------------------------------------


def test_the_union_of_the_shards_plans_is_the_single_plan(org_world: World) -> None:
    sandbox = org_world.sandbox
    # a mixed world: some environments exist, one secret is stale, one is an orphan
    for repository in REPOSITORIES[::3]:
        sandbox.create_environment(repository, "staging")
    assert org_world.run("apply", "--yes", "--repository", REPOSITORIES[1]).code == 0
    org_world.set_vault_value("SECRET_2", "production", "rotated")
    single = plan_rows(org_world)
    assert {row["action"] for row in single} >= {"create", "update"}
    assert len({row["repository"] for row in single}) == len(REPOSITORIES)
    for count in (1, 2, 3, 7):
        union: list[dict[str, Any]] = []
        for index in range(1, count + 1):
            rows = plan_rows(org_world, f"--shard={index}/{count}")
            assert all(shard_of(r["repository"], count) == index for r in rows)
            union += rows
        assert canonical(union) == canonical(single), count


def test_a_sharded_plan_says_which_shard_ran(org_world: World) -> None:
    result = org_world.run("plan", "--json", "--shard", "2/3")
    document = result.json()
    assert document["shard"] == "2/3"
    assert document["changes"] and {row["shard"] for row in document["changes"]} == {"2/3"}
    text = org_world.run("plan", "--shard", "2/3")
    assert text.code == 0 and "Shard 2/3" in text.out
    assert "shard" not in org_world.run("plan", "--json").json()


# -- saved plans keep their shard -------------------------------------------------------------


def test_a_saved_plan_records_its_shard_and_apply_rechecks_it(
    org_world: World, tmp_path: Path
) -> None:
    out = tmp_path / "shard.plan"
    assert org_world.run("plan", "--shard", "1/2", "--out", str(out)).code == 0
    assert json.loads(out.read_text())["shard"] == "1/2"
    for other in ("2/2", "1/3"):
        refused = org_world.run("apply", str(out), "--shard", other)
        assert refused.code == 3 and "shard 1/2" in refused.err
    org_world.sandbox.reset_counts()
    applied = org_world.run("apply", str(out), "--shard", "1/2", "--json")
    assert applied.code == 0, applied.err
    assert applied.json()["shard"] == "1/2"
    written = {r["repository"] for r in applied.json()["results"]}
    assert written == {r for r in REPOSITORIES if shard_of(r, 2) == 1}
    for repository in REPOSITORIES:
        has = org_world.sandbox.secret_value(repository, "staging", "SECRET_0") is not None
        assert has == (shard_of(repository, 2) == 1)
    # shard 2 after it: the rest, and then nothing is left
    assert org_world.run("apply", "--shard", "2/2", "--yes").code == 0
    assert [r for r in plan_rows(org_world) if r["action"] != "orphan"] == []


def test_a_saved_unsharded_plan_refuses_a_shard(org_world: World, tmp_path: Path) -> None:
    out = tmp_path / "all.plan"
    assert org_world.run("plan", "--out", str(out)).code == 0
    assert json.loads(out.read_text())["shard"] is None
    refused = org_world.run("apply", str(out), "--shard", "1/2")
    assert refused.code == 3 and "every shard" in refused.err


@pytest.mark.parametrize("junk", ["0/2", "2", 3, ["1/2"]])
def test_a_saved_plan_with_a_malformed_shard_is_refused(
    org_world: World, tmp_path: Path, junk: object
) -> None:
    out = tmp_path / "junk.plan"
    assert org_world.run("plan", "--out", str(out)).code == 0
    document = json.loads(out.read_text())
    document["shard"] = junk
    out.write_text(json.dumps(document))
    refused = org_world.run("apply", str(out))
    assert refused.code == 3 and "shard malformed" in refused.err


# -- locks per shard ----------------------------------------------------------------------------


def apply_lock(vault: VaultAdapter, shard: tuple[int, int] | None) -> ApplyLock:
    return ApplyLock(vault, "apply", "tester", shard=shard)


def test_two_different_shards_hold_their_locks_at_once(vault: VaultAdapter) -> None:
    with apply_lock(vault, (1, 3)), apply_lock(vault, (2, 3)), apply_lock(vault, (3, 3)):
        pass


def test_the_same_shard_twice_is_refused(vault: VaultAdapter) -> None:
    with apply_lock(vault, (2, 3)):
        with pytest.raises(LockHeldError, match="apply/shard-2-of-3"):
            apply_lock(vault, (2, 3)).__enter__()
    with apply_lock(vault, (2, 3)):  # released: free again
        pass


@pytest.mark.parametrize("shard", [(1, 2), (2, 2), (5, 7)])
def test_an_unsharded_run_excludes_every_shard(vault: VaultAdapter, shard: tuple[int, int]) -> None:
    with apply_lock(vault, None):
        with pytest.raises(LockHeldError, match="an unsharded apply excludes every shard"):
            apply_lock(vault, shard).__enter__()
    with apply_lock(vault, shard):  # the refused shard left nothing held behind
        pass


@pytest.mark.parametrize("shard", [(1, 2), (2, 2), (5, 7)])
def test_a_shard_excludes_an_unsharded_run(vault: VaultAdapter, shard: tuple[int, int]) -> None:
    with apply_lock(vault, shard):
        with pytest.raises(LockHeldError, match=f"apply/shard-{shard[0]}-of-{shard[1]}"):
            apply_lock(vault, None).__enter__()
    with apply_lock(vault, None):  # and once it is released, the unsharded run goes ahead
        pass


def test_shards_of_different_n_exclude_each_other(vault: VaultAdapter) -> None:
    with apply_lock(vault, (1, 2)):
        with pytest.raises(LockHeldError):
            apply_lock(vault, (1, 3)).__enter__()
        with pytest.raises(LockHeldError):
            apply_lock(vault, (2, 3)).__enter__()
        with apply_lock(vault, (2, 2)):
            pass


def test_a_shard_apply_is_refused_while_the_unsharded_apply_lock_is_held(
    org_world: World,
) -> None:
    with apply_lock(org_world.vault, None):
        refused = org_world.run("apply", "--shard", "1/2", "--yes")
    assert refused.code == 1 and "state locked by" in refused.err
    with apply_lock(org_world.vault, (2, 2)):
        refused = org_world.run("apply", "--yes")
        assert refused.code == 1 and "apply/shard-2-of-2" in refused.err
        allowed = org_world.run("apply", "--shard", "1/2", "--yes")
        assert allowed.code == 0, allowed.err


# -- organization secrets and variables, Dependabot secrets: still exactly the single plan ----

WIDE_SECRETS: dict[str, dict[str, Any]] = {
    "ORG_ALL": {
        "owner": "platform",
        "scope": "organization",
        "visibility": "all",
        "vault": "apps/shared/org#value",
    },
    "ORG_SOME": {
        "owner": "platform",
        "scope": "organization",
        "visibility": "selected",
        "repositories": REPOSITORIES[5:9],
        "vault": "apps/shared/org#value",
    },
    "BOT_ORG": {
        "owner": "platform",
        "scope": "organization",
        "store": "dependabot",
        "visibility": "all",
        "vault": "apps/shared/org#value",
    },
    "BOT_REPO": {
        "owner": "platform",
        "scope": "repository",
        "store": "dependabot",
        "vault": "apps/shared/org#value",
    },
}


def _write_policy(world: World, data: dict[str, Any]) -> None:
    with world.policy_path.open("w") as handle:
        YAML().dump(data, handle)


def test_the_union_with_organization_and_dependabot_secrets_is_the_single_plan(
    org_world: World, vault_mount: str
) -> None:
    """Organization rows are shard 1's; an organization secret shadowed by a repository,
    environment or Dependabot secret of a repository in another shard is shadowed in shard 1
    too; repository targets the policy dropped are pruned by their repositories' shards."""
    from envmatrix.secret import SecretValue
    from tests.envmatrix.sandbox import call, put_secret_body

    data = org_policy_data(vault_mount)
    data["github"]["organization"] = "occ-labs"
    data["secrets"].update(WIDE_SECRETS)
    data["variables"] = {
        "ORG_REGION": {"owner": "platform", "scope": "organization", "value": "eu-central-1"}
    }
    _write_policy(org_world, data)
    org_world.seed()
    org_world.vault.write_values("apps/shared/org", {"value": SecretValue("v1")})
    assert org_world.run("apply", "--yes").code == 0
    # now: REPO_WIDE dropped (recorded repository targets in every shard), the organization
    # secrets' value rotated (updates), and narrower copies of them in other repositories
    del data["secrets"]["REPO_WIDE"]
    data["variables"]["ORG_REGION"]["value"] = "eu-west-1"
    _write_policy(org_world, data)
    org_world.vault.write_values("apps/shared/org", {"value": SecretValue("v2")})
    sandbox = org_world.sandbox
    sandbox.write_secret_outside(REPOSITORIES[10], None, "ORG_ALL", "repo copy")
    sandbox.write_secret_outside(REPOSITORIES[6], "production", "ORG_SOME", "env copy")
    base = f"/repos/{REPOSITORIES[2]}/dependabot/secrets"
    body = put_secret_body(sandbox.url, f"{base}/public-key", "bot copy")
    assert call(sandbox.url, "PUT", f"{base}/BOT_ORG", body).status == 201

    single = plan_rows(org_world)
    reasons = {(r["name"], r["scope"], r["store"]): r["reason"] for r in single if r["scope"]}
    assert reasons[("ORG_ALL", "organization", "actions")] == "shadowed"
    assert reasons[("ORG_SOME", "organization", "actions")] == "shadowed"
    assert reasons[("BOT_ORG", "organization", "dependabot")] == "shadowed"
    assert reasons[("ORG_REGION", "organization", "actions")] == "value-differs"
    pruned = [r for r in single if r["name"] == "REPO_WIDE"]
    assert len(pruned) == len(REPOSITORIES)
    assert {(r["action"], r["scope"]) for r in pruned} == {("delete", "repository")}
    bot = [r for r in single if r["name"] == "BOT_REPO"]
    assert {(r["action"], r["store"]) for r in bot} == {("update", "dependabot")}
    for count in (1, 2, 3, 7):
        union: list[dict[str, Any]] = []
        for index in range(1, count + 1):
            rows = plan_rows(org_world, f"--shard={index}/{count}")
            for r in rows:
                if r["scope"] == "organization":
                    assert index == 1, r
                else:
                    assert shard_of(r["repository"], count) == index
            union += rows
        assert canonical(union) == canonical(single), count
