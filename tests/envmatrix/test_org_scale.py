"""Org scale (issue 13): per-target lookups indexed once, rendering in one pass per group.

No timing here (bench/cpu_scale.py prints the figures): these tests pin that the faster paths
answer exactly what the plain ones did.
"""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from rich.console import Console

from envmatrix.pipeline.desired import (
    DesiredState,
    FlagCell,
    SecretCell,
    Target,
    VariableCell,
)
from envmatrix.pipeline.plan import Action, Change, Kind, Plan, Reason
from envmatrix.render.report import _change_line, render_plan
from envmatrix.views.matrix import build_matrix

REPOSITORIES = ("occ/a", "occ/b", "other/c")
ENVIRONMENTS = ("staging", "production")


def targets() -> list[Target]:
    found = [Target(r, e, e) for r in REPOSITORIES for e in ENVIRONMENTS]
    return found + [Target.repository_level(r) for r in REPOSITORIES]


def state(secret_names: int) -> DesiredState:
    all_targets = targets()
    # deliberately interleaved (not grouped by target): the index must keep the given order
    secrets = tuple(
        SecretCell(t, f"S{i}", f"apps/{t.logical_environment}/s{i}", "value", "team", None)
        for i in range(secret_names)
        for t in all_targets
    )
    flags = tuple(FlagCell(t, "FEATURE_X", ("S0",), True) for t in all_targets[::2])
    variables = tuple(VariableCell(t, "REGION", "team", "eu") for t in all_targets[1::3])
    return DesiredState(tuple(all_targets), secrets, flags, False, variables=variables)


@pytest.mark.parametrize("secret_names", [0, 1, 7])
def test_lookups_by_target_answer_what_a_scan_of_every_cell_answers(secret_names: int) -> None:
    desired = state(secret_names)
    for target in [*targets(), Target("occ/unknown", "staging", "staging")]:
        assert desired.secrets_in(target) == tuple(c for c in desired.secrets if c.target == target)
        assert desired.flags_in(target) == tuple(f for f in desired.flags if f.target == target)
        assert desired.variables_in(target) == tuple(
            v for v in desired.variables if v.target == target
        )
    if secret_names:
        assert len(desired.secrets_in(targets()[0])) == secret_names


def test_a_narrowed_or_replaced_state_gets_its_own_index() -> None:
    desired = state(3)
    first = targets()[0]
    assert desired.secrets_in(first)  # builds the index of the full state
    narrowed = desired.only_secrets(lambda c: c.name == "S1")
    assert [c.name for c in narrowed.secrets_in(first)] == ["S1"]
    assert narrowed.flags_in(first) == ()
    emptied = replace(desired, secrets=())
    assert emptied.secrets_in(first) == ()
    assert [c.name for c in desired.secrets_in(first)] == ["S0", "S1", "S2"]


def change(target: Target, name: str, action: Action) -> Change:
    return Change(
        action,
        Kind.SECRET,
        target.repository,
        target.github_environment,
        name,
        Reason.MISSING,
        f"detail of {name} [not markup]",
    )


def per_row(plan: Plan, out: Console) -> None:
    """How render_plan printed before issue 13: one print per row (the reference output)."""
    width = max(len(c.name) for c in plan.changes)
    last: tuple[str, str | None] | None = None
    for c in plan.changes:
        if (c.repository, c.environment) != last:
            last = (c.repository, c.environment)
            out.print(f"[bold]{c.repository}[/] · {c.environment or '(repository)'}")
        out.print(_change_line(c, width))


@pytest.mark.parametrize("color", [None, "truecolor"])
@pytest.mark.parametrize("rows", [1, 5, 40])
def test_rendering_a_plan_group_by_group_prints_exactly_the_row_by_row_output(
    color: str | None, rows: int
) -> None:
    actions = [Action.CREATE, Action.UPDATE, Action.DELETE, Action.BLOCKED]
    changes = tuple(
        change(t, f"SECRET_{i}", actions[i % len(actions)])
        for t in sorted(targets())
        for i in range(rows)
    )
    plan = Plan(changes)

    def rendered(how: str) -> str:
        buffer = io.StringIO()
        out = Console(
            file=buffer,
            highlight=False,
            soft_wrap=True,
            width=200,
            color_system=color,  # type: ignore[arg-type]
            force_terminal=color is not None,
        )
        if how == "fast":
            render_plan(plan, out)
        else:
            per_row(plan, out)
        return buffer.getvalue()

    fast = rendered("fast").splitlines()
    assert fast[:-1] == rendered("reference").splitlines()
    assert len(fast) == len(changes) + len(targets()) + 1  # rows, one heading each, the total
    assert "[not markup]" in fast[1]


@pytest.mark.parametrize("secret_names", [1, 4])
def test_the_matrix_by_repository_answers_what_a_scan_of_every_cell_answers(
    secret_names: int,
) -> None:
    desired = state(secret_names)
    missing = tuple(change(t, f"S{i}", Action.CREATE) for t in targets() for i in range(1))
    matrix = build_matrix(desired, Plan(missing), ENVIRONMENTS)
    assert matrix.repositories() == tuple(sorted(REPOSITORIES))
    for repository in [*REPOSITORIES, "occ/unknown"]:
        mine = [c for c in matrix.cells if c.repository == repository]
        assert matrix.environments(repository) == tuple(dict.fromkeys(c.column for c in mine))
        rows = matrix.rows(repository)
        assert [cell for row in rows for cell in row] == sorted(
            mine, key=lambda c: [r[0].secret for r in rows].index(c.secret)
        )
        assert all(len({c.secret for c in row}) == 1 for row in rows)
        if repository != "occ/unknown":
            # a row per secret, then a row per plain variable of the repository
            kinds = [row[0].kind for row in rows]
            named = {v.name for v in desired.variables if v.target.repository == repository}
            assert kinds == ["secret"] * secret_names + ["variable"] * len(named)
            assert matrix.environments(repository) == (*ENVIRONMENTS, "(repository)")
