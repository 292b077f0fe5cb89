"""Rendering for people (rich tables; colour off with NO_COLOR or when not a terminal) and for
machines (`--json`, stable keys). Domain code returns values; only this module and cli.py print.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from envmatrix.apply import ApplyReport, ItemResult
from envmatrix.plan import Action, Change, Plan

SYMBOLS = {
    Action.CREATE: ("+", "green"),
    Action.UPDATE: ("~", "yellow"),
    Action.DELETE: ("-", "red"),
    Action.BLOCKED: ("!", "bold red"),
    Action.ORPHAN: ("?", "dim"),
}


def console(file: TextIO | None = None) -> Console:
    """A console that colours only a terminal, honours NO_COLOR and never wraps JSON."""
    return Console(file=file or sys.stdout, highlight=False, soft_wrap=True)


def print_json(data: Any, file: TextIO | None = None) -> None:
    (file or sys.stdout).write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def plan_json(plan: Plan) -> dict[str, Any]:
    """The contract's `plan --json` object."""
    summary = plan.summary()
    return {
        "changes": [_contract_change(c) for c in plan.changes],
        "summary": {k: summary[k] for k in ("create", "update", "delete", "blocked", "orphan")},
    }


def _contract_change(change: Change) -> dict[str, Any]:
    data = change.to_json()
    ordered = {k: data.pop(k) for k in (
        "action", "kind", "repository", "environment", "name", "reason", "detail")}
    return {**ordered, **data}


def render_plan(plan: Plan, out: Console) -> None:
    """A table of changes and Terraform's closing line."""
    if not plan.changes:
        out.print("No changes. GitHub matches the policy and Vault.")
        return
    out.print(_changes_table(plan.changes))
    counts = plan.summary()
    out.print(
        f"Plan: {counts['create']} to create, {counts['update']} to update, "
        f"{counts['delete']} to delete; {counts['blocked']} blocked, {counts['orphan']} orphaned."
    )
    for change in plan.changes:
        if change.action is Action.BLOCKED:
            out.print(f"[bold red]blocked[/]: {change.name} in {change.repository}/"
                      f"{change.environment}: {change.detail}", markup=True)


def _changes_table(changes: Iterable[Change]) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in ("", "action", "kind", "repository", "environment", "name", "reason", "detail"):
        table.add_column(column, overflow="fold")
    for c in changes:
        symbol, style = SYMBOLS[c.action]
        table.add_row(
            f"[{style}]{symbol}[/]", f"[{style}]{c.action}[/]", str(c.kind), c.repository,
            c.environment or "(repository)", c.name, str(c.reason), c.detail,
        )
    return table


def apply_json(report: ApplyReport) -> dict[str, Any]:
    return {
        "results": [r.to_json() for r in report.results],
        "blocked": [_contract_change(c) for c in report.blocked],
        "state_errors": list(report.state_errors),
        "summary": report.summary(),
    }


def render_apply(report: ApplyReport, out: Console) -> None:
    """One line per attempted write, the warnings, and a summary line."""
    for result in report.results:
        out.print(_result_line(result), markup=True)
    for change in report.blocked:
        out.print(f"[yellow]warning[/]: {change.name} in {change.repository}/{change.environment}"
                  f" not synced: {change.detail}", markup=True)
    for error in report.state_errors:
        out.print(f"[red]error[/]: {error}", markup=True)
    s = report.summary()
    verdict = "Apply complete" if report.ok else "Apply incomplete"
    out.print(f"{verdict}: {s['written']} written, {s['failed']} failed, "
              f"{s['blocked']} blocked (warnings).")


def _result_line(result: ItemResult) -> str:
    c = result.change
    where = f"{c.repository}/{c.environment}"
    what = f"{c.action} {c.kind} {where} {c.name}"
    if c.kind.value == "variable":
        what += f" = {c.value}"
    if result.ok:
        return f"[green]✓[/] {what}"
    return f"[red]✗[/] {what}: {result.error}"
