"""Terraform habits: `--repository` and `--secret` narrow plan and apply as `-target` does (also
through a saved plan), `apply PLANFILE` needs no `--yes`, and declining prints "Apply
cancelled." (exit 1). End to end against OpenBao and the GitHub sandbox."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from envmatrix.pipeline.narrow import Narrowing
from tests.world import OTHER_REPO, REPO, World, example_policy_text

SHOPIFY_IN_BOTH = {
    "    vault: apps/{environment}/shopify\n": (
        f"    vault: apps/{{environment}}/shopify\n    repositories: [{REPO}, {OTHER_REPO}]\n"
    )
}


def rows(world: World, *args: str) -> list[dict[str, Any]]:
    result = world.run("plan", "--json", *args)
    assert result.code == 0, result.err
    changes: list[dict[str, Any]] = result.json()["changes"]
    return changes


def cells(changes: list[dict[str, Any]]) -> set[tuple[str, str, str | None, str]]:
    return {(c["action"], c["repository"], c["environment"], c["name"]) for c in changes}


def github_secrets(world: World, names: tuple[str, ...]) -> dict[tuple[str, str, str], str | None]:
    return {
        (repo, env, name): world.sandbox.secret_value(repo, env, name)
        for repo in (REPO, OTHER_REPO)
        for env in ("staging", "production")
        for name in names
    }


@pytest.fixture
def two_repositories(world: World, vault_mount: str) -> World:
    """The example policy with SHOPIFY_ADMIN_TOKEN in both sandbox repositories."""
    world.write_policy(example_policy_text(vault_mount, **SHOPIFY_IN_BOTH))
    world.seed()
    return world


@pytest.mark.parametrize("spelling", [OTHER_REPO, OTHER_REPO.upper()])
def test_repository_narrows_the_plan_to_that_repository(
    two_repositories: World, spelling: str
) -> None:
    everything = rows(two_repositories)
    narrowed = rows(two_repositories, "--repository", spelling)
    assert narrowed == [c for c in everything if c["repository"] == OTHER_REPO]
    assert {c["name"] for c in narrowed} == {"staging", "production", "SHOPIFY_ADMIN_TOKEN"}
    both = rows(two_repositories, "-r", REPO, "--repository", OTHER_REPO)
    assert both == everything


def test_secret_narrows_to_its_cells_without_flags_or_other_orphans(
    two_repositories: World,
) -> None:
    world = two_repositories
    world.sandbox.create_environment(REPO, "staging")
    world.sandbox.write_secret_outside(REPO, "staging", "LEGACY_TOKEN", "left-by-hand")
    everything = rows(world)
    assert ("orphan", REPO, "staging", "LEGACY_TOKEN") in cells(everything)
    narrowed = rows(world, "--secret", "SHOPIFY_ADMIN_TOKEN", "--secret", "supabase_url")
    secrets = {c["name"] for c in narrowed if c["kind"] == "secret"}
    assert secrets == {"SHOPIFY_ADMIN_TOKEN", "SUPABASE_URL"}  # no orphan, no other secret
    assert not [c for c in narrowed if c["kind"] == "variable"]  # flags are not targeted
    assert cells(narrowed) <= cells(everything)
    one = rows(world, "--secret", "SHOPIFY_ADMIN_TOKEN", "--repository", OTHER_REPO)
    assert {(c["repository"], c["name"]) for c in one if c["kind"] == "secret"} == {
        (OTHER_REPO, "SHOPIFY_ADMIN_TOKEN")
    }


def test_apply_with_secret_writes_only_those_cells(two_repositories: World) -> None:
    world = two_repositories
    done = world.run("apply", "--yes", "--secret", "SHOPIFY_ADMIN_TOKEN", "-r", OTHER_REPO)
    assert done.code == 0, done.err
    assert "Apply complete: 4 written" in done.out  # 2 environments + 2 secrets
    written = {k: v for k, v in github_secrets(world, ("SHOPIFY_ADMIN_TOKEN",)).items() if v}
    assert set(written) == {
        (OTHER_REPO, "staging", "SHOPIFY_ADMIN_TOKEN"),
        (OTHER_REPO, "production", "SHOPIFY_ADMIN_TOKEN"),
    }
    assert world.sandbox.environment_names(REPO) == []  # the other repository is untouched
    left = rows(world)
    assert ("create", REPO, "production", "SHOPIFY_ADMIN_TOKEN") in cells(left)
    assert not [c for c in left if c["repository"] == OTHER_REPO]


def test_secret_never_prunes_and_repository_prunes_only_inside_it(
    world: World, vault_mount: str
) -> None:
    world.write_policy(example_policy_text(vault_mount, **{"prune: false": "prune: true"}))
    world.seed()
    assert world.run("apply", "--yes").code == 0
    text = world.policy_path.read_text()
    start = text.index("  CHATWOOT_API_TOKEN:\n")
    world.write_policy(text[:start] + text[text.index("  GA_MCP_SERVICE_ACCOUNT_JSON:\n") :])
    pruned = ("delete", REPO, "production", "CHATWOOT_API_TOKEN")
    assert pruned in cells(rows(world))
    assert pruned in cells(rows(world, "--repository", REPO))
    world.set_vault_value("SUPABASE_URL", "production", "https://new.example")
    by_secret = rows(world, "--secret", "SUPABASE_URL")
    assert cells(by_secret) == {("update", REPO, "production", "SUPABASE_URL")}
    done = world.run("apply", "--yes", "--secret", "SUPABASE_URL")
    assert done.code == 0, done.err
    assert world.sandbox.secret_value(REPO, "production", "CHATWOOT_API_TOKEN") is not None
    assert world.sandbox.secret_value(REPO, "production", "SUPABASE_URL") == "https://new.example"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--repository", "occ-labs/operator-consle"), "did you mean occ-labs/operator-console?"),
        (("--secret", "SUPABSE_URL"), "did you mean SUPABASE_URL?"),
        (("--secret", "FEATURE_AI_ESCALATIONS"), "it is a flag"),
        (("--secret", "ZOHO_CLIENT_ID", "-r", OTHER_REPO), "leaves nothing of the policy"),
        (("--secret", "ZOHO_CLIENT_ID", "-e", "prodution"), "did you mean production?"),
    ],
)
@pytest.mark.parametrize("command", [("plan",), ("apply", "--yes")])
def test_unknown_names_are_usage_errors_before_anything_is_read(
    two_repositories: World, args: tuple[str, ...], message: str, command: tuple[str, ...]
) -> None:
    world = two_repositories
    world.sandbox.reset_counts()
    done = world.run(*command, *args)
    assert done.code == 3, done.err
    assert done.err.startswith("error: ") and message in done.err and done.err.count("\n") == 1
    assert sum(world.sandbox.request_counts().values()) == 0  # GitHub was never asked


def test_saved_plan_records_its_narrowing_and_applies_without_yes(
    two_repositories: World, tmp_path: Path
) -> None:
    world = two_repositories
    plan_file = str(tmp_path / "narrow.plan.json")
    made = world.run(
        "plan", "--secret", "SHOPIFY_ADMIN_TOKEN", "-r", OTHER_REPO, "--out", plan_file
    )
    assert made.code == 0, made.err
    saved = json.loads(Path(plan_file).read_text())
    assert Narrowing.from_json(saved) == Narrowing((OTHER_REPO,), ("SHOPIFY_ADMIN_TOKEN",))
    for other in (
        ("--secret", "ZOHO_CLIENT_ID"),
        ("--repository", REPO),
        ("--secret", "SHOPIFY_ADMIN_TOKEN", "--secret", "SUPABASE_URL"),
    ):
        refused = world.run("apply", plan_file, *other)
        assert refused.code == 3 and "is applied whole" in refused.err, refused.err
    assert world.sandbox.environment_names(OTHER_REPO) == []
    # no --yes and no terminal: the reviewed plan is the approval
    done = world.run("apply", plan_file, "--secret", "shopify_admin_token")
    assert done.code == 0, done.err
    assert "Apply complete: 4 written" in done.out
    assert world.sandbox.environment_names(REPO) == []  # nothing outside the narrowing
    assert world.sandbox.secret_value(OTHER_REPO, "production", "SHOPIFY_ADMIN_TOKEN")


def test_a_saved_plan_whose_narrowing_was_edited_is_refused(
    two_repositories: World, tmp_path: Path
) -> None:
    world = two_repositories
    plan_file = tmp_path / "narrow.plan.json"
    assert world.run("plan", "--secret", "SUPABASE_URL", "--out", str(plan_file)).code == 0
    saved = json.loads(plan_file.read_text())
    saved["secrets"] = []  # the file now claims a whole plan for a narrowed list of changes
    plan_file.write_text(json.dumps(saved))
    done = world.run("apply", str(plan_file))
    assert done.code == 1 and "plan again" in done.err, done.err
    assert world.sandbox.environment_names(REPO) == []  # nothing was written
    saved["secrets"] = "SUPABASE_URL"
    plan_file.write_text(json.dumps(saved))
    junk = world.run("apply", str(plan_file))
    assert junk.code == 3 and "secrets malformed" in junk.err, junk.err


class Terminal(io.StringIO):
    """A stdin that is a terminal and answers with `text`."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("answer", ["no", "", "yes please", "YES"])
def test_declining_prints_apply_cancelled_and_exits_1(
    world: World, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    world.seed()
    monkeypatch.setattr("sys.stdin", Terminal(answer + "\n"))
    done = world.run("apply")
    assert done.code == 1, done.err
    assert done.out.rstrip().endswith("Apply cancelled.")
    assert "Plan: 20 to create" in done.out  # shown before the question
    assert world.sandbox.environment_names(REPO) == []


def test_saying_yes_on_a_terminal_applies(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.seed()
    monkeypatch.setattr("sys.stdin", Terminal("yes\n"))
    done = world.run("apply")
    assert done.code == 0, done.err
    assert "Apply cancelled." not in done.out and "Apply complete: 20 written" in done.out
