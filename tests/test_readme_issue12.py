"""README's examples for issue 12 (organization and Dependabot secrets, plain variables,
environment protection, `import`, `matrix --check`) do what the README says, run through the CLI
against OpenBao and the GitHub sandbox: the YAML blocks are taken from README itself, merged
into the example policy, validated, planned, applied; the commands are the README's lines."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from envmatrix.secret import SecretValue
from tests.world import REPO, World

README = Path(__file__).resolve().parents[1] / "README.md"
SECTIONS = (
    "### Organization secrets and variables, Dependabot secrets",
    "### Plain Actions variables: `variables:`",
    "### Environment protection: `protection:`",
)


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(title + "\n")
    following = re.search(r"^#{2,3} ", text[start + len(title) :], re.MULTILINE)
    end = start + len(title) + following.start() if following else len(text)
    return text[start:end]


def yaml_blocks(title: str) -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", section(title), re.DOTALL)
    return [YAML(typ="safe").load(block) for block in blocks]


def merged(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra` merged into `base`, mapping by mapping (an entry of `extra` wins)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(dict(out[key]), value)
        else:
            out[key] = value
    return out


def readme_policy(world: World) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(world.policy_path.read_text())
    for title in SECTIONS:
        for block in yaml_blocks(title):
            if "jobs" not in block:  # a policy fragment, not a workflow step
                data = merged(data, block)
    return data


def readme_command(start: str) -> list[str]:
    """The arguments of README's command `envmatrix <start>...` (up to a comment or the line's
    end), as a shell would split them."""
    found = re.search(rf"envmatrix ({re.escape(start)}[^#\n`]*)", README.read_text())
    assert found is not None, start
    return shlex.split(found.group(1))


def test_readme_issue12_examples_run_as_documented(world: World) -> None:
    world.sandbox.add_user("octo-admin")
    world.sandbox.add_team("occ-labs", "release")
    policy = readme_policy(world)
    YAML().dump(policy, world.policy_path)
    assert world.run("validate").code == 0
    world.seed()
    world.vault.write_values("config/production/api", {"base_url": SecretValue("https://api")})

    plan = world.run("plan", "--json")
    assert plan.code == 0, plan.err
    rows = {(r["kind"], r["name"], r["environment"]): r for r in plan.json()["changes"]}
    organization = rows[("secret", "ORG_SENTRY_DSN", None)]
    assert (organization["scope"], organization["visibility"]) == ("organization", "selected")
    assert rows[("secret", "NPM_TOKEN", None)]["store"] == "dependabot"
    assert rows[("variable", "ORG_REGION", None)]["scope"] == "organization"
    assert rows[("variable", "DEPLOY_CHANNEL", None)]["scope"] == "repository"
    assert rows[("variable", "API_BASE_URL", "production")]["action"] == "create"
    assert rows[("environment", "production", "production")]["reason"] == "protection-differs"

    applied = world.run("apply", "--yes")
    assert applied.code == 0, applied.out + applied.err
    sandbox = world.sandbox
    assert sandbox.organization_access("occ-labs", "ORG_SENTRY_DSN") == ("selected", [REPO])
    assert sandbox.dependabot_secret_value(REPO, "NPM_TOKEN") == world.vault_value("NPM_TOKEN", "")
    assert sandbox.organization_variable_value("occ-labs", "ORG_REGION") == "eu-central-1"
    assert sandbox.repository_variable_value(REPO, "DEPLOY_CHANNEL") == "#deploys"
    assert sandbox.variable_value(REPO, "production", "API_BASE_URL") == "https://api"
    protection = sandbox.environment_protection(REPO, "production")
    assert protection["reviewers"] == ["team:occ-labs/release", "user:octo-admin"]
    assert protection["wait_timer"] == 30 and protection["prevent_self_review"] is True
    assert protection["deployment_branches"] == ["branch:main", "branch:release/*", "tag:v*"]
    assert world.run("plan", "--detailed-exitcode").code == 0  # converged

    # the matrix as committed evidence: README's regenerate line, then its CI line
    regenerate = readme_command("matrix --format markdown --out")
    check = readme_command("matrix --check")
    assert regenerate[-1] == check[-1] == "docs/secrets-matrix.md"
    (world.policy_path.parent / "docs").mkdir()
    assert world.run(*regenerate).code == 0
    assert world.run(*check).code == 0
    sandbox.advance_clock(2)
    sandbox.write_variable_outside(REPO, "production", "API_BASE_URL", "https://elsewhere")
    failed = world.run(*check)
    assert failed.code == 1
    assert "--- docs/secrets-matrix.md (committed)" in failed.out
    assert "API_BASE_URL" in failed.out and "! drifted" in failed.out

    # import: the synopsis' options, then a policy that validates
    synopsis = section("### Adopting an existing organization: `import`")
    for option in ("--repository", "--organization", "--mount", "--out", "--force", "--json"):
        assert option in synopsis and option in world.run("import", "--help").out
    mount = policy["vault"]["mount"]
    imported = world.run(
        "import", "--organization", "occ-labs", "--mount", mount, "--out", "imported.yaml"
    )
    assert imported.code == 0, imported.err
    assert "not imported: secret ORG_SENTRY_DSN in organization occ-labs" in imported.err
    assert world.run("validate", "imported.yaml").code == 0
