"""The env matrix shows organization secrets and variables and Dependabot secrets (issue 12,
"the same ... matrix rules"): an organization section with each copy's visibility, Dependabot
columns, statuses from the plan, in every format and in `matrix --check`; never a value."""

from __future__ import annotations

from typing import Any

from tests.envmatrix.sandbox import ORG, call, put_secret_body
from tests.envmatrix.test_recorded_targets import applied, policy_text, seed
from tests.world import REPO, World

CANARY = "value-of-ci/shared"  # what seed() writes: no format may show it


def cells(world: World) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """(name, column repository, scope, store) -> the cell the policy wants there."""
    result = world.run("matrix", "--format", "json")
    assert result.code == 0, result.err
    return {
        (c["secret"], c["repository"], c["scope"], c["store"]): c
        for c in result.json()["cells"]
        if c["status"] != "not-required"
    }


def test_organization_and_dependabot_cells_carry_scope_store_visibility(
    world: World, vault_mount: str
) -> None:
    world.write_policy(policy_text(vault_mount, True))
    seed(world)
    before = cells(world)
    org = before[("ORG_TOKEN", ORG, "organization", "actions")]
    assert (org["status"], org["visibility"], org["environment"]) == ("missing", "all", None)
    bot = before[("ORG_BOT_TOKEN", ORG, "organization", "dependabot")]
    assert (bot["status"], bot["visibility"]) == ("missing", "private")
    repo_bot = before[("BOT_TOKEN", REPO, "repository", "dependabot")]
    assert (repo_bot["status"], repo_bot["visibility"]) == ("missing", None)
    variable = before[("ORG_REGION", ORG, "organization", "actions")]
    assert (variable["kind"], variable["status"]) == ("variable", "missing")
    env = before[("KEEP", REPO, "environment", "actions")]
    assert env["environment"] == "staging"  # existing rows keep their shape, keys added

    assert world.run("apply", "--yes").code == 0
    after = cells(world)
    assert {c["status"] for c in after.values()} == {"ok"}


def test_the_matrix_shows_a_copy_changed_outside_and_a_shadowed_one(
    world: World, vault_mount: str
) -> None:
    applied(world, vault_mount)
    world.sandbox.advance_clock(5)
    world.sandbox.write_secret_outside(REPO, None, "ORG_BOT_TOKEN", "x")  # an Actions one
    url = world.sandbox.url
    base = f"/orgs/{ORG}/actions/secrets"
    body = {**put_secret_body(url, f"{base}/public-key", "by hand"), "visibility": "private"}
    assert call(url, "PUT", f"{base}/ORG_TOKEN", body).status == 204
    found = cells(world)
    assert found[("ORG_TOKEN", ORG, "organization", "actions")]["status"] == "drifted"
    # an Actions repository secret does not shadow a Dependabot one: stores are apart
    assert found[("ORG_BOT_TOKEN", ORG, "organization", "dependabot")]["status"] == "ok"


def test_an_organization_copy_a_repository_secret_overrides_is_shadowed(
    world: World, vault_mount: str
) -> None:
    world.write_policy(policy_text(vault_mount, True))
    seed(world)
    world.sandbox.write_secret_outside(REPO, None, "ORG_TOKEN", "the repository's own")
    cell = cells(world)[("ORG_TOKEN", ORG, "organization", "actions")]
    assert cell["status"] == "shadowed"
    assert REPO in cell["detail"]
    assert "shadowed" in world.run("matrix", "--format", "markdown").out


def test_a_dependabot_copy_and_an_actions_copy_of_one_name_do_not_collide(
    world: World, vault_mount: str
) -> None:
    applied(world, vault_mount)
    world.sandbox.advance_clock(5)
    world.sandbox.write_secret_outside(REPO, None, "BOT_TOKEN", "hand-made actions copy")
    found = cells(world)
    assert found[("BOT_TOKEN", REPO, "repository", "dependabot")]["status"] == "ok"
    result = world.run("matrix", "--format", "json").json()
    (orphan,) = [o for o in result["orphans"] if o["secret"] == "BOT_TOKEN"]
    assert (orphan["scope"], orphan["store"], orphan["action"]) == (
        "repository",
        "actions",
        "orphan",
    )


def test_every_format_labels_organization_and_dependabot_and_shows_no_value(
    world: World, vault_mount: str, tmp_path: Any
) -> None:
    applied(world, vault_mount)
    table = world.run("matrix", "--format", "table").out
    markdown = world.run("matrix", "--format", "markdown").out
    page = world.run("matrix", "--format", "html").out
    for text in (table, markdown, page):
        assert f"{ORG} (organization)" in text
        assert "(organization, dependabot)" in text
        assert "(repository, dependabot)" in text
        assert "visibility all" in text and "visibility private" in text
        assert CANARY not in text and "eu-west-1" not in text
    assert "| `ORG_TOKEN` |" in markdown
    assert 'data-store="dependabot"' in page and 'data-scope="organization"' in page
    committed = tmp_path / "matrix.md"
    committed.write_text(markdown)
    assert world.run("matrix", "--check", str(committed)).code == 0
    world.write_policy(policy_text(vault_mount, True, frozenset({"ORG_BOT_TOKEN"})))
    stale = world.run("matrix", "--check", str(committed))
    assert stale.code == 1
    assert "ORG_BOT_TOKEN" in stale.out + stale.err


def test_a_selected_organization_secret_counts_its_repositories(
    world: World, vault_mount: str
) -> None:
    text = policy_text(vault_mount, True).replace(
        "    scope: organization\n    visibility: all\n    vault: ci/shared#value\n",
        f"    scope: organization\n    visibility: selected\n    repositories: [{REPO}]\n"
        "    vault: ci/shared#value\n",
    )
    world.write_policy(text)
    seed(world)
    cell = cells(world)[("ORG_TOKEN", ORG, "organization", "actions")]
    assert (cell["visibility"], cell["selected_repositories"]) == ("selected", [REPO])
    assert "visibility selected, 1 repository" in world.run("matrix").out
