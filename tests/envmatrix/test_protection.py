"""Environment protection (issue 12 item 1), end to end on OpenBao and the GitHub sandbox through
the CLI: policy -> plan rows (kind: environment, reason: protection-differs) -> apply -> what the
sandbox holds -> an empty plan; reviewers added by hand are removed; keys the policy does not name
are left alone; bad protection values are file:line errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from envmatrix.sandbox import GitHubSandbox
from envmatrix.secret import SecretValue
from tests.envmatrix.sandbox import call
from tests.world import REPO, World

ORG = "occ-labs"
POLICY = """\
version: 1
name: protected
vault: {{mount: {mount}}}
github: {{repositories: [{repo}]}}
environments:
  staging: {{github: staging}}
  production:
    github: production
    protection:
{protection}
owners:
  ops: {{contact: ops@occ.example}}
secrets:
  API_KEY:
    owner: ops
    vault: "apps/{{environment}}/api#key"
    environments: [staging, production]
"""

FULL = """\
      reviewers: [{user: octo-admin}, {team: occ-labs/release}]
      wait_timer: 30
      prevent_self_review: true
      deployment_branches: [main, "release/*", {tag: "v*"}]"""


def _policy(world: World, protection: str) -> None:
    world.write_policy(POLICY.format(mount=world.vault.mount, repo=REPO, protection=protection))


def _seed(world: World) -> None:
    for env in ("staging", "production"):
        world.vault.write_values(f"apps/{env}/api", {"key": SecretValue(f"k-{env}")})


def _people(sandbox: GitHubSandbox) -> dict[str, int]:
    return {
        "octo-admin": sandbox.add_user("octo-admin"),
        "mallory": sandbox.add_user("mallory"),
        "release": sandbox.add_team(ORG, "release"),
        "oncall": sandbox.add_team(ORG, "oncall"),
    }


def _protection_rows(world: World) -> list[dict[str, Any]]:
    result = world.run("plan", "--json")
    assert result.code == 0, result.err
    return [c for c in result.json()["changes"] if c["reason"] == "protection-differs"]


def _by_hand(sandbox: GitHubSandbox, environment: str, body: dict[str, Any]) -> None:
    """What an admin does in GitHub's settings page: a PUT of the environment."""
    reply = call(sandbox.url, "PUT", f"/repos/{REPO}/environments/{environment}", body)
    assert reply.status == 200, reply.body


def test_plan_apply_converges_protection_and_then_plans_nothing(world: World) -> None:
    _people(world.sandbox)
    _seed(world)
    _policy(world, FULL)

    rows = _protection_rows(world)
    assert [(r["action"], r["kind"], r["environment"], r["name"]) for r in rows] == [
        ("update", "environment", "production", "production")
    ]
    detail = rows[0]["detail"]
    for words in (
        "+user octo-admin",
        "+team occ-labs/release",
        "wait_timer 0 -> 30 min",
        "prevent_self_review false -> true",
        "deployment_branches all -> custom",
        "+branch main",
        "+branch release/*",
        "+tag v*",
    ):
        assert words in detail

    applied = world.run("apply", "--yes")
    assert applied.code == 0, applied.out + applied.err
    assert world.sandbox.environment_protection(REPO, "production") == {
        "wait_timer": 30,
        "prevent_self_review": True,
        "reviewers": ["team:occ-labs/release", "user:octo-admin"],
        "deployment_branches": ["branch:main", "branch:release/*", "tag:v*"],
    }
    # staging names no protection: left as GitHub has it
    assert world.sandbox.environment_protection(REPO, "staging")["reviewers"] == []
    again = world.run("plan", "--json", "--detailed-exitcode")
    assert again.code == 0, again.out
    assert again.json()["changes"] == []


@pytest.mark.parametrize(
    ("by_hand", "expected"),
    [
        ({"reviewers": [{"type": "User", "id": "mallory"}]}, "-user mallory"),
        ({"reviewers": [{"type": "Team", "id": "oncall"}]}, "-team occ-labs/oncall"),
        ({"wait_timer": 5}, "wait_timer 5 -> 30 min"),
        (
            {
                "deployment_branch_policy": {
                    "protected_branches": True,
                    "custom_branch_policies": False,
                }
            },
            "deployment_branches protected -> custom",
        ),
    ],
)
def test_a_change_by_hand_is_planned_and_undone(
    world: World, by_hand: dict[str, Any], expected: str
) -> None:
    ids = _people(world.sandbox)
    _seed(world)
    _policy(world, FULL)
    assert world.run("apply", "--yes").code == 0
    before = world.sandbox.environment_protection(REPO, "production")

    if "reviewers" in by_hand:  # added next to the policy's two
        hand = [{"type": r["type"], "id": ids[r["id"]]} for r in by_hand["reviewers"]]
        policy_ids = [{"type": "User", "id": ids["octo-admin"]}]
        policy_ids += [{"type": "Team", "id": ids["release"]}]
        by_hand = {"reviewers": policy_ids + hand}
    _by_hand(world.sandbox, "production", by_hand)

    rows = _protection_rows(world)
    assert len(rows) == 1 and expected in rows[0]["detail"], rows
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.environment_protection(REPO, "production") == before
    assert _protection_rows(world) == []


def test_a_custom_pattern_added_by_hand_is_deleted_and_a_missing_one_added(world: World) -> None:
    _people(world.sandbox)
    _seed(world)
    _policy(world, FULL)
    assert world.run("apply", "--yes").code == 0
    base = f"/repos/{REPO}/environments/production/deployment-branch-policies"
    listed = call(world.sandbox.url, "GET", base).json()["branch_policies"]
    main = next(p for p in listed if p["name"] == "main")
    assert call(world.sandbox.url, "DELETE", f"{base}/{main['id']}").status == 204
    assert call(world.sandbox.url, "POST", base, {"name": "hotfix/*"}).status == 200

    rows = _protection_rows(world)
    assert "+branch main" in rows[0]["detail"] and "-branch hotfix/*" in rows[0]["detail"]
    assert world.run("apply", "--yes").code == 0
    held = world.sandbox.environment_protection(REPO, "production")["deployment_branches"]
    assert held == ["branch:main", "branch:release/*", "tag:v*"]


@pytest.mark.parametrize(
    ("protection", "kept"),
    [
        # the policy names only wait_timer: reviewers, self-review and branches stay as set
        ("      wait_timer: 10", {"wait_timer": 10}),
        # only reviewers: the hand-set wait timer and branch policy stay
        ("      reviewers: [{user: octo-admin}]", {"reviewers": ["user:octo-admin"]}),
        # only the branch policy
        ("      deployment_branches: all", {"deployment_branches": "all"}),
    ],
)
def test_keys_the_policy_does_not_name_are_left_alone(
    world: World, protection: str, kept: dict[str, Any]
) -> None:
    ids = _people(world.sandbox)
    _seed(world)
    world.sandbox.create_environment(REPO, "production")
    by_hand = {
        "wait_timer": 45,
        "prevent_self_review": True,
        "reviewers": [
            {"type": "User", "id": ids["mallory"]},
            {"type": "Team", "id": ids["oncall"]},
        ],
        "deployment_branch_policy": {"protected_branches": True, "custom_branch_policies": False},
    }
    _by_hand(world.sandbox, "production", by_hand)
    before = world.sandbox.environment_protection(REPO, "production")
    _policy(world, protection)

    assert len(_protection_rows(world)) == 1
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.environment_protection(REPO, "production") == {**before, **kept}
    assert _protection_rows(world) == []


def test_reviewers_empty_removes_every_reviewer(world: World) -> None:
    ids = _people(world.sandbox)
    _seed(world)
    world.sandbox.create_environment(REPO, "production")
    _by_hand(world.sandbox, "production", {"reviewers": [{"type": "User", "id": ids["mallory"]}]})
    _policy(world, "      reviewers: []")
    assert "-user mallory" in _protection_rows(world)[0]["detail"]
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.environment_protection(REPO, "production")["reviewers"] == []


def test_a_new_environment_is_created_with_its_protection(world: World) -> None:
    _people(world.sandbox)
    _seed(world)
    _policy(world, FULL)
    changes = world.run("plan", "--json").json()["changes"]
    production = [c for c in changes if c["environment"] == "production"]
    assert [(c["action"], c["kind"], c["reason"]) for c in production[:2]] == [
        ("create", "environment", "missing"),
        ("update", "environment", "protection-differs"),
    ]
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.environment_protection(REPO, "production")["wait_timer"] == 30
    assert world.sandbox.secret_value(REPO, "production", "API_KEY") == "k-production"


@pytest.mark.parametrize(
    ("protection", "unknown"),
    [
        ("      reviewers: [{user: ghost}]", "user ghost"),
        ("      reviewers: [{user: octo-admin}, {team: occ-labs/nobody}]", "team occ-labs/nobody"),
    ],
)
def test_an_unknown_reviewer_blocks_the_protection_and_writes_none_of_it(
    world: World, protection: str, unknown: str
) -> None:
    _people(world.sandbox)
    _seed(world)
    world.sandbox.create_environment(REPO, "production")
    _policy(world, protection + "\n      wait_timer: 15")
    rows = _protection_rows(world)
    assert [r["action"] for r in rows] == ["blocked"]
    assert unknown in rows[0]["detail"]
    applied = world.run("apply", "--yes")
    assert applied.code == 0  # blocked is a warning, as for secrets
    assert unknown in applied.out
    assert world.sandbox.environment_protection(REPO, "production")["wait_timer"] == 0


def test_plan_costs_one_environments_list_and_one_lookup_per_reviewer(world: World) -> None:
    _people(world.sandbox)
    _seed(world)
    _policy(world, FULL)
    assert world.run("apply", "--yes").code == 0
    world.sandbox.reset_counts()
    assert world.run("plan").code == 0
    counts = world.sandbox.request_counts()
    assert counts[("GET", "repos/get-all-environments")] == 1
    assert counts[("GET", "users/get-by-username")] == 1
    assert counts[("GET", "teams/get-by-name")] == 1
    assert counts[("GET", "repos/list-deployment-branch-policies")] == 1
    assert counts[("GET", "repos/get-environment")] == 0

    _policy(world, "      wait_timer: 30")  # no reviewers and no patterns named: no lookups
    world.sandbox.reset_counts()
    assert world.run("plan").code == 0
    counts = world.sandbox.request_counts()
    assert counts[("GET", "users/get-by-username")] == 0
    assert counts[("GET", "repos/list-deployment-branch-policies")] == 0


def test_a_saved_plan_is_refused_when_protection_changed_since(world: World) -> None:
    ids = _people(world.sandbox)
    _seed(world)
    _policy(world, FULL)
    assert world.run("plan", "--out", "plan.json").code == 0
    _by_hand(world.sandbox, "production", {"reviewers": [{"type": "User", "id": ids["mallory"]}]})
    refused = world.run("apply", "plan.json", "--yes")
    assert refused.code == 1
    assert world.sandbox.environment_protection(REPO, "production")["wait_timer"] == 0
    assert world.run("plan", "--out", "plan.json").code == 0
    assert world.run("apply", "plan.json", "--yes").code == 0
    assert world.sandbox.environment_protection(REPO, "production")["wait_timer"] == 30


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p["reviewers"].append({"type": "User", "id": p["reviewers"][0]["id"] + 1000}),
        lambda p: p.update(wait_timer=0),
        lambda p: p.update(deployment_branches="all", add_patterns=[]),
        lambda p: p["add_patterns"].append({"type": "branch", "name": "*"}),
    ],
)
def test_a_hand_edited_protection_in_a_saved_plan_is_refused(world: World, tamper: Any) -> None:
    _people(world.sandbox)
    _seed(world)
    world.sandbox.create_environment(REPO, "production")
    _policy(world, FULL)
    assert world.run("plan", "--out", "plan.json").code == 0
    saved = json.loads((world.policy_path.parent / "plan.json").read_text())
    row = next(c for c in saved["changes"] if c["reason"] == "protection-differs")
    tamper(row["protection"])
    (world.policy_path.parent / "plan.json").write_text(json.dumps(saved))
    refused = world.run("apply", "plan.json", "--yes")
    assert refused.code == 1 and "does not match the policy" in refused.err, refused.err
    assert world.sandbox.environment_protection(REPO, "production")["reviewers"] == []


@pytest.mark.parametrize(
    ("protection", "key", "message"),
    [
        ("      wait_timer: 43201", "wait_timer", "less than or equal to 43200"),
        ("      wait_timer: -1", "wait_timer", "greater than or equal to 0"),
        ("      wait_timer: thirty", "wait_timer", "valid integer"),
        ("      prevent_self_review: maybe", "prevent_self_review", "valid boolean"),
        ("      deployment_branches: sometimes", "deployment_branches", "'protected' or 'all'"),
        ("      deployment_branches: []", "deployment_branches", "no branch deploy"),
        (
            '      deployment_branches: [main, {tg: "v*"}]',
            "deployment_branches[1].tg",
            "unknown key",
        ),
        (
            "      deployment_branches: [main, main]",
            "deployment_branches[1]",
            "listed twice",
        ),
        ("      reviewers: [{user: a}, {user: A}]", "reviewers[1]", "listed twice"),
        ("      reviewers: [{team: release}]", "reviewers[0].team", "organization/team-slug"),
        ("      reviewers: [{user: octo, team: a/b}]", "reviewers[0]", "{user: LOGIN}"),
        ("      reviewers: [{login: octo}]", "reviewers[0].login", "unknown key"),
        ("      reviewers: null", "reviewers", "leave the key out"),
        (
            "      reviewers: [" + ", ".join(f"{{user: u{i}}}" for i in range(7)) + "]",
            "reviewers",
            "at most 6",
        ),
        ("      prevent_self_review: true\n      reviewers: []", "prevent_self_review", "needs"),
        ("      reviewrs: []", "reviewrs", "unknown key"),
    ],
)
@pytest.mark.parametrize("command", [("validate",), ("plan",)])
def test_bad_protection_is_a_file_line_error(
    world: World, protection: str, key: str, message: str, command: tuple[str, ...]
) -> None:
    _policy(world, protection)
    world.sandbox.reset_counts()
    result = world.run(*command)
    assert result.code == 3, result.out + result.err
    text = world.policy_path.read_text()
    first_key = key.split("[")[0].split(".")[0]
    line = text[: text.index(f"      {first_key}:")].count("\n") + 1
    where = f"{world.policy_path}:{line}: environments.production.protection.{key}"
    assert where in result.err and message in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1
    assert sum(world.sandbox.request_counts().values()) == 0  # nothing read before it is valid
