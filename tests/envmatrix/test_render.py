"""Rendering for people: colour (and every other ANSI code) only on a terminal, never with
NO_COLOR."""

from __future__ import annotations

import io
import re
from dataclasses import replace

import pytest

from envmatrix.pipeline.apply import ItemResult
from envmatrix.pipeline.plan import Action, Change, Kind, Plan, Reason
from envmatrix.render import report as render

PLAN = Plan((Change(Action.CREATE, Kind.SECRET, "o/r", "prod", "A_KEY", Reason.MISSING, "why"),))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def rendered(out: io.StringIO) -> str:
    render.render_plan(PLAN, render.console(out))
    return out.getvalue()


def test_a_terminal_gets_colour_and_bold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert "\x1b[" in rendered(Terminal())


@pytest.mark.parametrize("value", ["1", "true", "0"])  # no-color.org: any non-empty value
def test_no_color_means_no_ansi_code_at_all_even_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("NO_COLOR", value)
    text = rendered(Terminal())
    assert "\x1b" not in text
    assert "A_KEY" in text


def test_a_pipe_gets_no_ansi_code() -> None:
    assert "\x1b" not in rendered(io.StringIO())


# -- one set of symbols across plan and matrix ---------------------------------------------------

from envmatrix.pipeline.desired import DesiredState, FlagCell, SecretCell, Target  # noqa: E402
from envmatrix.render import symbols  # noqa: E402
from envmatrix.render.matrix import SYMBOLS as MATRIX_SYMBOLS  # noqa: E402
from envmatrix.render.matrix import matrix_text  # noqa: E402
from envmatrix.views.flags import flag_readiness  # noqa: E402
from envmatrix.views.matrix import build_matrix, cell_status  # noqa: E402

ROW_CASES = [
    (Action.CREATE, Reason.MISSING),
    (Action.UPDATE, Reason.VAULT_NEWER),
    (Action.UPDATE, Reason.SOURCE_CHANGED),
    (Action.UPDATE, Reason.CHANGED_OUTSIDE),
    (Action.BLOCKED, Reason.MISSING_IN_VAULT),
]


def plan_line(action: Action, reason: Reason) -> str:
    change = Change(action, Kind.SECRET, "o/r", "prod", "A_KEY", reason, "why")
    out = io.StringIO()
    render.render_plan(Plan((change,)), render.console(out))
    return out.getvalue().splitlines()[1]


@pytest.mark.parametrize(("action", "reason"), ROW_CASES)
def test_a_plan_row_and_the_matrix_cell_it_repairs_show_the_same_symbol(
    action: Action, reason: Reason
) -> None:
    change = Change(action, Kind.SECRET, "o/r", "prod", "A_KEY", reason, "why")
    symbol = MATRIX_SYMBOLS[cell_status(change)][0]
    assert plan_line(action, reason).lstrip().startswith(f"{symbol} {action}")


def test_no_symbol_means_two_things() -> None:
    marks = [v for v in vars(symbols).values() if isinstance(v, symbols.Mark)]
    by_symbol: dict[str, set[str]] = {}
    for mark in marks:
        by_symbol.setdefault(mark.symbol, set()).add(mark.meaning)
    assert all(len(meanings) == 1 for meanings in by_symbol.values()), by_symbol
    assert plan_line(Action.BLOCKED, Reason.MISSING_IN_VAULT).lstrip().startswith("✗")
    assert plan_line(Action.ORPHAN, Reason.NOT_IN_POLICY).lstrip().startswith("?")


# -- 80 columns: no name cut or wrapped mid-word ---------------------------------------------

LONG_NAMES = [
    "GA_MCP_SERVICE_ACCOUNT_JSON_FOR_THE_ANALYTICS_TEAM",
    "SUPABASE_SERVICE_ROLE_KEY_FOR_THE_REPORTING_PIPELINE",
    "ZOHO_REFRESH_TOKEN",
]
ENVIRONMENTS = ["development", "staging", "production", "production-eu", "production-us"]


def wide_matrix(names: list[str], environments: list[str]) -> str:
    targets = tuple(Target("occ-labs/operator-console", e, e) for e in environments)
    cells = tuple(
        SecretCell(t, n, "apps/x", "k", "reliability-platform", "supabase-analytics")
        for t in targets
        for n in names
    )
    flag = FlagCell(
        targets[0], "FEATURE_AI_ESCALATIONS_FOR_ENTERPRISE_ACCOUNTS", tuple(names), True
    )
    desired = DesiredState(
        targets, cells, (flag,), False, contacts={"reliability-platform": "r@o.example"}
    )
    blocked = Change(
        Action.BLOCKED,
        Kind.SECRET,
        "occ-labs/operator-console",
        environments[0],
        names[0],
        Reason.MISSING_IN_VAULT,
        "missing in Vault",
    )
    matrix = build_matrix(desired, Plan((blocked,)), environments)
    matrix = replace(matrix, flags=flag_readiness(desired, matrix.cells))
    return matrix_text(matrix, width=80)


@pytest.mark.parametrize(
    ("names", "environments"),
    [
        (LONG_NAMES, ENVIRONMENTS),
        (LONG_NAMES, ENVIRONMENTS[:2]),
        (["A_KEY", "B_TOKEN"], ENVIRONMENTS),
    ],
)
def test_at_80_columns_every_name_is_printed_whole_on_one_line(
    names: list[str], environments: list[str]
) -> None:
    text = wide_matrix(names, environments)
    lines = text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    words = {w for line in lines for w in re.findall(r"[A-Z][A-Z0-9_]{2,}", line)}
    for name in [*names, "FEATURE_AI_ESCALATIONS_FOR_ENTERPRISE_ACCOUNTS"]:
        assert name in words, f"{name} cut or wrapped:\n{text}"
    # every word a line holds is a whole name, never a piece of one
    assert words == {*names, "FEATURE_AI_ESCALATIONS_FOR_ENTERPRISE_ACCOUNTS"}, words
    assert text.count("✗ blocked") >= 1 and "…" not in text


def test_a_matrix_that_fits_stays_a_grid() -> None:
    text = wide_matrix(["A_KEY", "B_KEY"], ["staging", "production"])
    assert re.search(r"^secret\s+service\s+owner\s+staging\s+production", text, re.M)


def test_plan_and_apply_name_where_each_copy_lives() -> None:
    """Organization and Dependabot copies are not shown as Actions repository secrets: the plan
    groups them under their own heading, and apply's lines name the place the same way."""

    def change(repository: str, environment: str | None, scope: str, store: str) -> Change:
        return Change(
            Action.CREATE,
            Kind.SECRET,
            repository,
            environment,
            f"{scope.upper()}_{store.upper()}",
            Reason.MISSING,
            "why",
            scope=scope,
            store=store,
        )

    changes = (
        change("o/r", "prod", "environment", "actions"),
        change("o/r", None, "repository", "actions"),
        change("o/r", None, "repository", "dependabot"),
        change("o", None, "organization", "actions"),
        change("o", None, "organization", "dependabot"),
    )
    expected = ["prod", "(repository)", "(repository, Dependabot)", "(organization)"]
    assert [render.change_place(c) for c in changes] == [*expected, "(organization, Dependabot)"]
    out = io.StringIO()
    render.render_plan(Plan(changes), render.console(out))
    headings = [line for line in out.getvalue().splitlines() if " · " in line]
    assert headings == [
        "o/r · prod",
        "o/r · (repository)",
        "o/r · (repository, Dependabot)",
        "o · (organization)",
        "o · (organization, Dependabot)",
    ]
    words = [render.result_line(ItemResult(c, True)) for c in changes]
    assert "create secret o/(organization, Dependabot) ORGANIZATION_DEPENDABOT" in words[-1]
    assert "create secret o/r/(repository, Dependabot) REPOSITORY_DEPENDABOT" in words[2]
    assert "create secret o/r/(repository) REPOSITORY_ACTIONS" in words[1]
