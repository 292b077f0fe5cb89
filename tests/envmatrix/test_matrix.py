"""The matrix: the pure status mapping as a table, and every output format agreeing cell for
cell with `plan --json` on the example policy (real OpenBao, GitHub sandbox)."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.demo.run import seed_vault
from envmatrix.pipeline.desired import DesiredState, SecretCell, Target
from envmatrix.pipeline.plan import Action, Change, Kind, Plan, Reason
from envmatrix.policy import load_policy
from envmatrix.render.matrix import matrix_html, matrix_markdown, matrix_text
from envmatrix.sandbox import GitHubSandbox
from envmatrix.secret import SecretValue
from envmatrix.views.matrix import Status, build_matrix, cell_status, matrix_cells
from tests.envmatrix.support_gates import example_policy, run, run_json, use_services

REPO = "occ/app"
STAGING = Target(REPO, "staging", "stage")
PROD = Target(REPO, "production", "prod")


def cell(target: Target, name: str) -> SecretCell:
    return SecretCell(
        target, name, f"apps/{target.logical_environment}/x", name.lower(), "team", "svc"
    )


def change(action: Action, reason: Reason, name: str = "A", target: Target = PROD) -> Change:
    return Change(
        action,
        Kind.SECRET,
        target.repository,
        target.github_environment,
        name,
        reason,
        "detail",
        logical_environment=target.logical_environment,
        owner="team",
    )


STATUS_CASES = [
    (None, Status.OK),
    (change(Action.CREATE, Reason.MISSING), Status.MISSING),
    (change(Action.UPDATE, Reason.VAULT_NEWER), Status.STALE),
    (change(Action.UPDATE, Reason.SOURCE_CHANGED), Status.STALE),
    (change(Action.UPDATE, Reason.CHANGED_OUTSIDE), Status.DRIFTED),
    (change(Action.BLOCKED, Reason.MISSING_IN_VAULT), Status.BLOCKED),
    (change(Action.BLOCKED, Reason.EMPTY_IN_VAULT), Status.BLOCKED),
    (change(Action.BLOCKED, Reason.TOO_LARGE), Status.BLOCKED),
    (change(Action.BLOCKED, Reason.LIMIT_EXCEEDED), Status.BLOCKED),
    (change(Action.CREATE, Reason.SHADOWED), Status.SHADOWED),
    (change(Action.BLOCKED, Reason.SHADOWED), Status.SHADOWED),
]


@pytest.mark.parametrize(("planned", "expected"), STATUS_CASES)
def test_cell_status_follows_the_plan(planned: Change | None, expected: Status) -> None:
    assert cell_status(planned) is expected


def test_a_change_no_cell_can_have_is_an_error() -> None:
    with pytest.raises(ValueError, match="orphan"):
        cell_status(change(Action.ORPHAN, Reason.NOT_IN_POLICY))


def test_matrix_cells_grid() -> None:
    """A only in production -> not-required in staging; B in both; orphans below the grid."""
    desired = DesiredState(
        (PROD, STAGING), (cell(PROD, "A"), cell(PROD, "B"), cell(STAGING, "B")), (), False
    )
    plan = Plan(
        (
            change(Action.BLOCKED, Reason.MISSING_IN_VAULT, "A"),
            change(Action.UPDATE, Reason.CHANGED_OUTSIDE, "B", STAGING),
            change(Action.ORPHAN, Reason.NOT_IN_POLICY, "OLD"),
        )
    )
    cells = matrix_cells(desired, plan, environment_order=("staging", "production"))
    got = [(c.secret, c.environment, str(c.status)) for c in cells]
    assert got == [
        ("A", "stage", "not-required"),
        ("A", "prod", "blocked"),
        ("B", "stage", "drifted"),
        ("B", "prod", "ok"),
    ]
    matrix = build_matrix(desired, plan)
    assert [(o.secret, o.action) for o in matrix.orphans] == [("OLD", "orphan")]
    assert {c.owner for c in cells} == {"team"}


def test_rows_are_per_repository() -> None:
    other = Target("occ/other", "production", "prod")
    desired = DesiredState((PROD, other), (cell(PROD, "A"), cell(other, "Z")), (), False)
    matrix = build_matrix(desired, Plan(()))
    assert matrix.repositories() == ("occ/app", "occ/other")
    assert [[c.secret for c in row] for row in matrix.rows("occ/other")] == [["Z"]]


# -- the four formats against plan --json on the example policy -------------------------------


def only_production_for_ga(document: dict[str, Any]) -> None:
    document["secrets"]["GA_MCP_SERVICE_ACCOUNT_JSON"]["environments"] = ["production"]


@pytest.fixture
def world(
    tmp_path: Path,
    vault: VaultAdapter,
    vault_env: dict[str, str],
    sandbox: GitHubSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Path:
    """Every status at once: production applied, then a drift, a newer Vault version, a
    blocked secret and an orphan; staging never applied (missing), where a same-named
    repository secret shadows SUPABASE_URL; GA not in staging."""
    policy = example_policy(tmp_path, vault.mount, only_production_for_ga)
    use_services(monkeypatch, sandbox, vault_env)
    seed_vault(load_policy(policy), vault, leave_out=("SUPABASE_SERVICE_KEY", "production"))
    code, _, err = run(capsys, "apply", "--yes", "-e", "production", "--policy", str(policy))
    assert code == 0, err
    sandbox.advance_clock(5)
    sandbox.write_secret_outside(REPO_OC, "production", "CHATWOOT_API_TOKEN", "pasted")
    sandbox.write_secret_outside(REPO_OC, "production", "LEGACY_TOKEN", "old")
    sandbox.write_secret_outside(REPO_OC, None, "SUPABASE_URL", "legacy")
    vault.write_values("apps/production/shopify", {"SHOPIFY_ADMIN_TOKEN": SecretValue("newer")})
    return policy


REPO_OC = "occ-labs/operator-console"


def expected_from_plan(
    plan_json: dict[str, Any], policy_file: Path
) -> dict[tuple[str, str, str], str]:
    """What the matrix must say, derived independently from plan --json and the policy."""
    policy = load_policy(policy_file)
    expected = {}
    for name, spec in policy.secrets.items():
        for env in policy.environments:
            status = "ok" if env in spec.environments else "not-required"
            expected[(REPO_OC, policy.github_environment(env), name)] = status
    by_reason = {
        "missing": "missing",
        "vault-newer": "stale",
        "source-changed": "stale",
        "changed-outside": "drifted",
        "missing-in-vault": "blocked",
        "shadowed": "shadowed",
    }
    for c in plan_json["changes"]:
        if c["kind"] == "secret" and c["action"] in ("create", "update", "blocked"):
            expected[(c["repository"], c["environment"], c["name"])] = by_reason[c["reason"]]
    return expected


def parse_json(text: str) -> dict[tuple[str, str, str], str]:
    return {
        (c["repository"], c["environment"], c["secret"]): c["status"]
        for c in json.loads(text)["cells"]
    }


LABEL = re.compile(r"[✓+~!✗⇡·] (ok|missing|stale|drifted|blocked|shadowed|not-required)")


def parse_grid_lines(lines: list[str], repo_marker: str) -> dict[tuple[str, str, str], str]:
    """Rows of the terminal table or markdown: a secret name, then one label per column."""
    grid: dict[tuple[str, str, str], str] = {}
    columns: list[str] = []
    for line in lines:
        words = line.replace("|", " ").split()
        if words[:3] in (["secret", "service", "owner"], ["Secret", "Service", "Owner"]):
            columns = words[3:]
            continue
        if words[:2] in (["flag", "environment"], ["Flag", "Environment"]):
            columns = []  # the flags table below a grid: not grid rows
            continue
        name = re.match(r"^\W*([A-Z][A-Z0-9_]+)\b", line)
        statuses = LABEL.findall(line)
        if name and columns and len(statuses) == len(columns):
            for env, status in zip(columns, statuses, strict=True):
                grid[(repo_marker, env, name.group(1))] = status
    return grid


class CellParser(HTMLParser):
    """Collects the data-* attributes of the grid's cells and every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str, str], str] = {}
        self.urls: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = {k: v or "" for k, v in attrs}
        self.urls += [v for k, v in values.items() if k in ("href", "src", "action", "srcset")]
        self.urls += re.findall(r"url\(([^)]*)\)", values.get("style", ""))
        if "data-status" in values:
            key = (values["data-repository"], values["data-environment"], values["data-secret"])
            self.cells[key] = values["data-status"]

    def handle_data(self, data: str) -> None:
        if self.tags and self.tags[-1] == "style":
            self.urls += re.findall(r"url\(([^)]*)\)|@import", data)


def test_all_four_formats_agree_with_plan_json(
    world: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = str(world)
    code, plan_json = run_json(capsys, "plan", "--json", "--policy", policy)
    assert code == 0
    expected = expected_from_plan(plan_json, world)
    # every status shows up, so the comparison exercises each mapping
    assert set(expected.values()) == {s.value for s in Status}

    code, out, _ = run(capsys, "matrix", "--format", "json", "--policy", policy)
    assert code == 0 and parse_json(out) == expected
    assert [o["secret"] for o in json.loads(out)["orphans"]] == ["LEGACY_TOKEN"]

    code, out, _ = run(capsys, "matrix", "--policy", policy)  # table, the default
    assert code == 0 and parse_grid_lines(out.splitlines(), REPO_OC) == expected
    assert "LEGACY_TOKEN" in out.split("not-required")[-1]  # orphan listed below the grid

    code, out, _ = run(capsys, "matrix", "--format", "markdown", "--policy", policy)
    assert code == 0 and parse_grid_lines(out.splitlines(), REPO_OC) == expected
    assert f"### {REPO_OC}" in out

    page = tmp_path / "matrix.html"
    code, _, _ = run(capsys, "matrix", "--format", "html", "--out", str(page), "--policy", policy)
    parser = CellParser()
    parser.feed(page.read_text(encoding="utf-8"))
    assert code == 0 and parser.cells == expected
    assert parser.urls == [] and "script" not in parser.tags
    assert "Legend" in page.read_text(encoding="utf-8")


def test_matrix_json_has_the_contract_keys(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys, "matrix", "--json", "--policy", str(world))
    assert code == 0 and set(data) == {"cells", "orphans", "flags"}
    required = {"repository", "environment", "secret", "status", "owner"}
    assert all(required <= set(c) for c in data["cells"])
    blocked = [c for c in data["cells"] if c["status"] == "blocked"]
    assert [(c["secret"], c["owner"]) for c in blocked] == [("SUPABASE_SERVICE_KEY", "reliability")]


def test_renderers_escape_names_and_keep_the_page_self_contained() -> None:
    target = Target("o/r<script>", "prod", "prod|x")
    desired = DesiredState(
        (target,), (SecretCell(target, "A", "p", "k", "t<b>", "s|v"),), (), False
    )
    matrix = build_matrix(desired, Plan(()))
    page = matrix_html(matrix)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "prod\\|x" in matrix_markdown(matrix)
    assert "✓ ok" in matrix_text(matrix)


def test_terminal_table_and_flags_table_print_bracketed_names_as_they_are() -> None:
    """GitHub environment names may hold '[' and ']': rich must not read them as markup."""
    from rich.console import Console

    from envmatrix.render.matrix import flags_table
    from envmatrix.views.flags import FlagReadiness

    targets = (Target("o/r", "eu", "x[/]y"), Target("o/r", "us", "[bold]b"))
    desired = DesiredState(
        targets, tuple(SecretCell(t, "A", "p", "k", "team", None) for t in targets), (), False
    )
    text = matrix_text(build_matrix(desired, Plan(())))
    assert "x[/]y" in text and "[bold]b" in text
    rows = [
        FlagReadiness(
            "F_X", "o/r", t.github_environment or "", t.logical_environment, ("A",), (), True
        )
        for t in targets
    ]
    console = Console(width=160, no_color=True, record=True, file=io.StringIO())
    console.print(flags_table(rows))
    printed = console.export_text()
    assert "x[/]y" in printed and "[bold]b" in printed


def test_no_value_reaches_any_format(
    world: Path, vault: VaultAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    canary = "canary-" + datetime.now(UTC).strftime("%H%M%S%f")
    vault.write_values("apps/production/chatwoot", {"api_token": SecretValue(canary)})
    for fmt in ("table", "markdown", "json", "html"):
        code, out, err = run(capsys, "matrix", "--format", fmt, "--policy", str(world))
        assert code == 0 and canary not in out + err


def test_bad_format_is_a_usage_error(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "matrix", "--format", "pdf", "--policy", str(world))
    assert code == 3 and "--format" in err


def test_workflow_findings_show_below_the_grid(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflows = str(Path(__file__).resolve().parents[1] / "data" / "workflows")
    code, data = run_json(
        capsys, "matrix", "--json", "--workflows", workflows, "--policy", str(world)
    )
    assert code == 0
    # this policy keeps GA out of staging, which the staging deploy job still references
    assert [(f["secret"], f["environment"]) for f in data["workflows"]["undeclared"]] == [
        ("SENTRY_DSN", "production"),
        ("GA_MCP_SERVICE_ACCOUNT_JSON", "staging"),
    ]
    assert [(f["secret"], f["environment"]) for f in data["workflows"]["unused"]] == [
        ("GA_MCP_SERVICE_ACCOUNT_JSON", "production")
    ]
    for fmt in ("table", "markdown"):
        code, out, _ = run(capsys, "matrix", "-f", fmt, "--workflows", workflows, "-p", str(world))
        assert code == 0 and "workflow undeclared: deploy.yml job deploy-production" in out


def test_repository_secrets_get_a_repository_column() -> None:
    """A scope: repository secret has a status in the (repository) column, not-required under
    the environments; environment secrets are not-required in the (repository) column."""
    level = Target.repository_level(REPO)
    sentry = SecretCell(level, "S", "ci/sentry", "s", "team", "sentry")
    desired = DesiredState(
        (PROD, STAGING, level), (cell(PROD, "A"), cell(STAGING, "A"), sentry), (), False
    )
    plan = Plan(
        (
            change(Action.CREATE, Reason.MISSING, "S", level),
            change(Action.ORPHAN, Reason.NOT_IN_POLICY, "OLD", level),
        )
    )
    matrix = build_matrix(desired, plan, ("staging", "production"))
    got = [(c.secret, c.environment, str(c.status)) for c in matrix.cells]
    assert got == [
        ("A", "stage", "ok"),
        ("A", "prod", "ok"),
        ("A", None, "not-required"),
        ("S", "stage", "not-required"),
        ("S", "prod", "not-required"),
        ("S", None, "missing"),
    ]
    assert matrix.environments(REPO) == ("stage", "prod", "(repository)")
    assert matrix.to_json()["cells"][5]["environment"] is None
    assert matrix.to_json()["orphans"] == [
        {
            "repository": REPO,
            "environment": None,
            "secret": "OLD",
            "action": "orphan",
            "detail": "detail",
            "kind": "secret",
            "scope": "repository",  # added with organization and Dependabot copies
            "store": "actions",
        }
    ]
    text = matrix_text(matrix)
    assert "(repository)" in text.splitlines()[1]
    assert "orphan: OLD in occ/app/(repository) (orphan)" in text
    assert "| Secret | Service | Owner | stage | prod | (repository) |" in matrix_markdown(matrix)
    assert 'data-environment="(repository)" data-secret="S" data-status="missing"' in (
        matrix_html(matrix)
    )
