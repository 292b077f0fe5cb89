"""Plain variables in the matrix (issue 12): rows of their own, marked `(variable)` and `kind:
variable`, statuses from the plan's variable rows, never a value, in every format; end to end,
`matrix --check` fails once a variable drifts in GitHub and passes again after apply."""

from __future__ import annotations

import json

import pytest

from envmatrix.pipeline.desired import DesiredState, SecretCell, Target, VariableCell
from envmatrix.pipeline.plan import Action, Change, Kind, Plan, Reason
from envmatrix.render.matrix import render_matrix
from envmatrix.secret import SecretValue
from envmatrix.views.matrix import Status, build_matrix
from tests.world import REPO, World

STAGING = Target(REPO, "staging", "staging")
PROD = Target(REPO, "production", "production")
VALUE = "canary-region-value"


def _variable_change(action: Action, reason: Reason, name: str = "REGION") -> Change:
    return Change(action, Kind.VARIABLE, REPO, "production", name, reason, "why", "production")


def _desired() -> DesiredState:
    secret = SecretCell(PROD, "REGION", "apps/production/x", "region", "team", "svc")
    variables = (
        VariableCell(STAGING, "REGION", "ops", VALUE),
        VariableCell(PROD, "REGION", "ops", VALUE),
        VariableCell(PROD, "API_URL", "ops", None, "apps/production/api", "url"),
    )
    return DesiredState((PROD, STAGING), (secret,), (), False, variables=variables)


@pytest.mark.parametrize(
    ("planned", "status"),
    [
        (None, Status.OK),
        (_variable_change(Action.CREATE, Reason.MISSING), Status.MISSING),
        (_variable_change(Action.UPDATE, Reason.CHANGED_OUTSIDE), Status.DRIFTED),
        (_variable_change(Action.UPDATE, Reason.VALUE_DIFFERS), Status.STALE),
        (_variable_change(Action.UPDATE, Reason.VAULT_NEWER), Status.STALE),
        (_variable_change(Action.BLOCKED, Reason.MISSING_IN_VAULT), Status.BLOCKED),
        (_variable_change(Action.BLOCKED, Reason.EMPTY_IN_VAULT), Status.BLOCKED),
    ],
)
def test_a_variable_row_takes_its_status_from_the_plans_variable_row(
    planned: Change | None, status: Status
) -> None:
    plan = Plan(tuple(c for c in (planned,) if c is not None))
    matrix = build_matrix(_desired(), plan, ("staging", "production"))
    variable = {(c.secret, c.logical_environment): c for c in matrix.cells if c.is_variable}
    assert variable[("REGION", "production")].status is status
    assert variable[("REGION", "staging")].status is Status.OK
    assert variable[("API_URL", "staging")].status is Status.NOT_REQUIRED
    secret = [c for c in matrix.cells if not c.is_variable]
    assert {c.status for c in secret if c.logical_environment == "production"} == {Status.OK}


def test_variables_are_rows_of_their_own_in_every_format_and_never_show_a_value() -> None:
    orphan = Change(
        Action.ORPHAN, Kind.VARIABLE, REPO, "staging", "OLD_VAR", Reason.NOT_IN_POLICY, "left"
    )
    plan = Plan((_variable_change(Action.UPDATE, Reason.CHANGED_OUTSIDE), orphan))
    matrix = build_matrix(_desired(), plan, ("staging", "production"))
    # a secret and a variable of the same name are two rows
    assert [(r[0].kind, r[0].secret) for r in matrix.rows(REPO)] == [
        ("secret", "REGION"),
        ("variable", "API_URL"),
        ("variable", "REGION"),
    ]
    data = json.loads(render_matrix(matrix, "json"))
    kinds = {(c["kind"], c["secret"], c["environment"]): c["status"] for c in data["cells"]}
    assert kinds[("variable", "REGION", "production")] == "drifted"
    assert kinds[("secret", "REGION", "production")] == "ok"
    assert data["orphans"][0]["kind"] == "variable"
    markdown = render_matrix(matrix, "markdown")
    assert "| `REGION` (variable) |  | ops | ✓ ok | ! drifted |" in markdown
    assert "orphan variable: OLD_VAR" in markdown
    html = render_matrix(matrix, "html")
    assert '<tr data-kind="variable"><td><code>REGION</code> (variable)</td>' in html
    table = render_matrix(matrix, "table")
    assert "REGION (variable)" in table
    for text in (markdown, html, table, json.dumps(data)):
        assert VALUE not in text


POLICY = """\
version: 1
name: variables
vault: {{mount: {mount}}}
github: {{repositories: [{repo}]}}
environments:
  staging: {{github: staging}}
  production: {{github: production}}
owners:
  ops: {{contact: ops@occ.example}}
secrets:
  API_KEY:
    owner: ops
    vault: "apps/{{environment}}/api#key"
    environments: [staging, production]
variables:
  SUPABASE_REGION:
    owner: ops
    value: eu-central-1
    environments: [staging, production]
"""


@pytest.mark.parametrize("suffix", [".md", ".json", ".html", ".txt"])
def test_matrix_check_covers_variables_end_to_end(world: World, suffix: str) -> None:
    world.write_policy(POLICY.format(mount=world.vault.mount, repo=REPO))
    for env in ("staging", "production"):
        world.vault.write_values(f"apps/{env}/api", {"key": SecretValue(f"k-{env}")})
    assert world.run("apply", "--yes").code == 0
    evidence = world.policy_path.parent / f"MATRIX{suffix}"
    fmt = {".md": "markdown", ".json": "json", ".html": "html", ".txt": "table"}[suffix]
    assert world.run("matrix", "--format", fmt, "--out", str(evidence)).code == 0
    assert "SUPABASE_REGION" in evidence.read_text()
    assert "eu-central-1" not in evidence.read_text()
    assert world.run("matrix", "--check", str(evidence)).code == 0

    world.sandbox.write_variable_outside(REPO, "production", "SUPABASE_REGION", "us-east-1")
    drifted = world.run("matrix", "--check", str(evidence))
    assert drifted.code == 1
    # changed-outside (drifted) or, within the same second as apply's write, value-differs (stale)
    assert "drifted" in drifted.out or "stale" in drifted.out
    assert "us-east-1" not in drifted.out + drifted.err

    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.variable_value(REPO, "production", "SUPABASE_REGION") == "eu-central-1"
    assert world.run("matrix", "--check", str(evidence)).code == 0
