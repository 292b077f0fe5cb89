"""Rendering for people (rich tables; colour off with NO_COLOR or when not a terminal) and for
machines (`--json`, stable keys). Domain code returns values; only this module and cli.py print.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from envmatrix.audit.events import AuditEvent
from envmatrix.pipeline.apply import ApplyReport, ItemResult
from envmatrix.pipeline.plan import Change, Plan
from envmatrix.render.symbols import ACTION_MARKS, change_mark
from envmatrix.rotation.progress import RotationInProgress, in_progress_line
from envmatrix.rotation.schedule import RotationStatus
from envmatrix.timefmt import aware, iso_utc

LOG_WIDTH = 200
# (symbol, style) per action, from the one set plan and matrix share (render/symbols.py)
SYMBOLS = {action: (mark.symbol, mark.style) for action, mark in ACTION_MARKS.items()}


def console(file: TextIO | None = None) -> Console:
    """A console that colours only a terminal, honours NO_COLOR and never wraps JSON.

    Off a terminal (CI logs, pipes) rich would size tables to 80 columns and fold every cell;
    there it gets LOG_WIDTH unless COLUMNS says otherwise."""
    target = file or sys.stdout
    wide = not target.isatty() and "COLUMNS" not in os.environ
    # rich's own NO_COLOR handling drops colours but keeps bold, dim and reverse: drop them all
    plain = bool(os.environ.get("NO_COLOR"))
    return Console(
        file=target,
        highlight=False,
        soft_wrap=True,
        width=LOG_WIDTH if wide else None,
        color_system=None if plain else "auto",
    )


def print_json(data: Any, file: TextIO | None = None) -> None:
    """`--json` output: indented, keys in the order the caller built them. Streamed a chunk at
    a time (`json.dump`): a plan of 12,000 rows is never held as one string besides its rows."""
    out = file or sys.stdout
    json.dump(data, out, indent=2, sort_keys=False)
    out.write("\n")


def plan_json(
    plan: Plan,
    overdue: Sequence[RotationStatus] = (),
    in_progress: Sequence[RotationInProgress] = (),
    requests: Mapping[str, Any] | None = None,
    vault_requests: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The contract's `plan --json` object, plus overdue rotations and those left half-way, and
    (when given) the run's GitHub request accounting under `requests` and its Vault round trips
    under `vault_requests`."""
    summary = plan.summary()
    document = {
        "changes": [_contract_change(c) for c in plan.changes],
        "summary": {k: summary[k] for k in ("create", "update", "delete", "blocked", "orphan")},
        "rotation_overdue": [_overdue_json(s) for s in overdue if s.overdue],
        "rotations_in_progress": [r.to_json() for r in in_progress],
    }
    if requests is not None:
        document["requests"] = dict(requests)
    if vault_requests is not None:
        document["vault_requests"] = dict(vault_requests)
    return document


def with_shard(document: dict[str, Any], shard: object | None) -> dict[str, Any]:
    """`plan --json`/`apply --json` of a `--shard K/N` run: `"shard": "K/N"` at the top and on
    each row (`changes`, `results`, `blocked`, `not_attempted`); the same document unsharded."""
    if shard is None:
        return document
    label = str(shard)
    for key in ("changes", "results", "blocked", "not_attempted"):
        for row in document.get(key, ()):
            row["shard"] = label
    return {"shard": label, **document}


def render_shard(shard: object | None, out: Console) -> None:
    """`Shard 2/3 of the policy's repositories.` before a sharded run's rows; nothing unsharded."""
    if shard is not None:
        out.print(f"Shard {shard} of the policy's repositories.", markup=False)


def render_in_progress(in_progress: Sequence[RotationInProgress], out: Console) -> None:
    """One line per secret whose rotation stopped half-way, with the command that finishes it."""
    for row in in_progress:
        out.print("[yellow]⚠[/] ", end="")
        out.print(in_progress_line(row), markup=False)


def _overdue_json(status: RotationStatus) -> dict[str, Any]:
    return {
        "secret": status.secret,
        "environment": None if status.repository_level else status.environment,
        "owner": status.owner,
        "contact": status.contact,
        "strategy": status.strategy,
        "state": str(status.state),
        "next_due": iso_utc(status.next_due),
    }


def render_overdue(statuses: Sequence[RotationStatus], out: Console) -> None:
    """One line per overdue rotation, naming its owner (plan marks them; rotate fixes them)."""
    for s in statuses:
        if s.overdue:
            when = (
                "never rotated"
                if s.last_rotated is None
                else (f"due {s.next_due.strftime('%Y-%m-%d %H:%M')} UTC")
            )
            out.print(
                f"[yellow]↻ rotation overdue[/]: {escape(s.secret)} in {escape(s.environment)}"
                f" ({when}, {escape(s.strategy)}) — owner: {escape(s.owner)}"
            )


def _contract_change(change: Change) -> dict[str, Any]:
    """A change with the contract's keys first, in the contract's order."""
    fields = change.to_json()
    ordered = {
        k: fields.pop(k)
        for k in ("action", "kind", "repository", "environment", "name", "reason", "detail")
    }
    return {**ordered, **fields}


def render_plan(plan: Plan, out: Console) -> None:
    """Changes grouped by repository and environment, then Terraform's closing line."""
    if not plan.changes:
        out.print("No changes. GitHub matches the policy and Vault.")
        return
    width = max(len(c.name) for c in plan.changes)
    for (repository, place), changes in _grouped(plan.changes).items():
        heading = f"[bold]{escape(repository)}[/] · {escape(place)}"
        # one print per group, not per row: rich's per-call overhead dominated 12,000+ rows
        out.print("\n".join([heading, *(_change_line(c, width) for c in changes)]))
    counts = plan.summary()
    out.print(
        f"Plan: {counts['create']} to create, {counts['update']} to update, "
        f"{counts['delete']} to delete; {counts['blocked']} blocked, {counts['orphan']} orphaned."
    )


def _grouped(changes: Iterable[Change]) -> dict[tuple[str, str], list[Change]]:
    groups: dict[tuple[str, str], list[Change]] = {}
    for change in changes:
        groups.setdefault((change.repository, change_place(change)), []).append(change)
    return groups


def change_place(change: Change) -> str:
    """Where a change's copy lives, in words: its GitHub environment, `(repository)` (Actions
    repository secrets and variables), `(organization)`, with `, Dependabot` added for the
    Dependabot store: `(repository, Dependabot)`."""
    if change.environment is not None:
        return change.environment
    level = "organization" if change.scope == "organization" else "repository"
    return f"({level}, Dependabot)" if change.store == "dependabot" else f"({level})"


def _change_line(change: Change, width: int) -> str:
    mark = change_mark(change)
    symbol, style = mark.symbol, mark.style
    head = f"{symbol} {change.action:<7} {change.kind:<11} {change.name:<{width}}"
    return f"  [{style}]{escape(head)}[/]  {escape(str(change.reason))}: {escape(change.detail)}"


def apply_json(
    report: ApplyReport,
    requests: Mapping[str, Any] | None = None,
    vault_requests: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The contract's `apply --json` object (with `requests`, the run's GitHub request
    accounting, and `vault_requests`, its Vault round trips, when given)."""
    document: dict[str, Any] = {
        "results": [r.to_json() for r in report.results],
        "blocked": [_contract_change(c) for c in report.blocked],
        "state_errors": list(report.state_errors),
        "summary": report.summary(),
    }
    if report.stopped is not None:  # cut short (Ctrl-C, lock lost): the writes never tried
        document["stopped"] = report.stopped
        document["not_attempted"] = [_contract_change(c) for c in report.not_attempted]
    if requests is not None:
        document["requests"] = dict(requests)
    if vault_requests is not None:
        document["vault_requests"] = dict(vault_requests)
    return document


def render_apply(report: ApplyReport, out: Console, results_shown: bool = False) -> None:
    """One line per attempted write (unless `results_shown`: printed live as they landed, see
    render/progress.py), the warnings, and a summary line."""
    for result in () if results_shown else report.results:
        out.print(result_line(result))
    for change in report.blocked:
        out.print(
            f"[yellow]warning[/]: {escape(change.name)} in {escape(change.repository)}/"
            f"{escape(change_place(change))} not synced: {escape(change.detail)}"
        )
    for change in report.not_attempted:
        out.print(f"[yellow]-[/] {escape(_change_words(change))}: not attempted")
    for error in report.state_errors:
        out.print(f"[red]error[/]: {escape(error)}")
    s = report.summary()
    verdict = "Apply complete" if report.ok else "Apply incomplete"
    if report.stopped is not None:
        verdict = f"Apply stopped ({report.stopped})"
    left = f", {s['not_attempted']} not attempted" if report.stopped is not None else ""
    out.print(
        f"{escape(verdict)}: {s['written']} written, {s['failed']} failed{left}, "
        f"{s['blocked']} blocked (warnings)."
    )


def _change_words(c: Change) -> str:
    what = f"{c.action} {c.kind} {c.repository}/{change_place(c)} {c.name}"
    if c.kind.value == "variable":
        what += f" = {c.value}"
    return what


def result_line(result: ItemResult) -> str:
    """`✓ create secret acme/web/production DB_URL` (rich markup), or `✗ ...: cause`."""
    what = _change_words(result.change)
    if result.ok:
        return f"[green]✓[/] {escape(what)}"
    return f"[red]✗[/] {escape(what)}: {escape(result.error or '')}"


def render_audit(events: Sequence[AuditEvent], out: Console) -> None:
    """The audit trail as a table (never a value: events carry none)."""
    if not events:
        out.print("No audit events.")
        return
    table = Table("time (UTC)", "action", "target", "vault", "result", "actor", "detail")
    for e in events:
        version = "" if e.vault_version is None else f"v{e.vault_version}"
        cells = (
            f"{e.time.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            e.action,
            e.target,
            version,
            e.result,
            e.actor,
            e.detail,
        )
        table.add_row(*(escape(c) for c in cells))
    out.print(table)


def audit_json(events: Sequence[AuditEvent]) -> dict[str, Any]:
    """`envmatrix audit --json`: `{"events": [{time, actor, action, target, vault_version,
    result, detail}]}`, times in ISO 8601 UTC."""
    return {
        "events": [
            {
                "time": aware(e.time).astimezone(UTC).isoformat(),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "vault_version": e.vault_version,
                "result": e.result,
                "detail": e.detail,
            }
            for e in events
        ]
    }
