"""Rendering of rotation schedules: rich tables for people, `--json` objects for machines.

Times in JSON are ISO 8601 in UTC (`2026-07-01T09:00:00Z`); `null` where there is none. A
scope: repository secret's `environment` is `null` in JSON (as in plans) and `(repository)` in
tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from rotation.schedule import RotationOccurrence, RotationState, RotationStatus

MARKERS = {
    RotationState.OK: ("", ""),
    RotationState.OVERDUE: ("!", "bold red"),
    RotationState.NEVER_ROTATED: ("!", "bold red"),
}


def iso(moment: datetime | None) -> str | None:
    """UTC, to the second, with a Z."""
    return None if moment is None else f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def rotation_json(status: RotationStatus) -> dict[str, Any]:
    """One status with stable keys."""
    return {
        "secret": status.secret,
        "environment": None if status.repository_level else status.environment,
        "repositories": list(status.repositories),
        "owner": status.owner,
        "contact": status.contact,
        "strategy": status.strategy,
        "rule": status.rule,
        "timezone": status.spec.timezone,
        "path": status.path,
        "key": status.key,
        "group": list(status.group),
        "vault_version": status.vault_version,
        "last_rotated": iso(status.last_rotated),
        "next_due": iso(status.next_due),
        "overdue": status.overdue,
        "state": str(status.state),
    }


def statuses_json(statuses: Sequence[RotationStatus], at: datetime) -> dict[str, Any]:
    """`rotation status --json` and `rotation due --json`."""
    return {
        "at": iso(at),
        "rotations": [rotation_json(s) for s in statuses],
        "summary": {
            "total": len(statuses),
            "overdue": sum(s.overdue for s in statuses),
            "never_rotated": sum(s.state is RotationState.NEVER_ROTATED for s in statuses),
        },
    }


def calendar_json(
    occurrences: Sequence[RotationOccurrence], start: datetime, end: datetime
) -> dict[str, Any]:
    """`rotation calendar --json`: the window and one row per rotation in it."""
    return {
        "window": {"start": iso(start), "end": iso(end)},
        "rotations": [
            {**rotation_json(o.status), "due": iso(o.due), "overdue": o.overdue, "uid": o.uid}
            for o in occurrences
        ],
    }


def render_statuses(statuses: Sequence[RotationStatus], at: datetime, out: Console) -> None:
    """The status table and a count line."""
    if not statuses:
        out.print("No secrets with rotation: in the selected environments.")
        return
    out.print(_status_table(statuses))
    overdue = sum(s.overdue for s in statuses)
    out.print(f"{_count(len(statuses), 'rotation')}; {overdue} overdue at {iso(at)}.")


def render_due(overdue: Sequence[RotationStatus], at: datetime, out: Console) -> None:
    """The overdue rotations, or a line saying there are none."""
    if not overdue:
        out.print(f"No rotations due at {iso(at)}.")
        return
    out.print(_status_table(overdue))  # the count goes to stderr with the exit code


def due_message(overdue: Sequence[RotationStatus], named: int = 5) -> str:
    """One line naming what is overdue and who owns it (the first `named` of them)."""
    names = ", ".join(f"{s.secret} ({s.where}, owner: {s.owner})" for s in overdue[:named])
    more = f" and {len(overdue) - named} more" if len(overdue) > named else ""
    return f"{_count(len(overdue), 'rotation')} overdue: {names}{more}"


def render_calendar(
    occurrences: Sequence[RotationOccurrence], start: datetime, end: datetime, out: Console
) -> None:
    """The rotations in the window, one line each."""
    if not occurrences:
        out.print(f"No rotations between {iso(start)} and {iso(end)}.")
        return
    table = _table("", "due", "secret", "environment", "owner", "strategy", "path")
    for o in occurrences:
        mark = "[bold red]![/]" if o.overdue else ""
        s = o.status
        table.add_row(mark, _when(o.due, s), s.secret, s.environment, s.owner, s.strategy, s.path)
    out.print(table)
    out.print(f"{_count(len(occurrences), 'rotation')} between {iso(start)} and {iso(end)}.")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _status_table(statuses: Sequence[RotationStatus]) -> Table:
    table = _table(
        "", "secret", "environment", "owner", "strategy", "last rotated", "next due", "state"
    )
    for s in statuses:
        symbol, style = MARKERS[s.state]
        last = f"{s.last_rotated:%Y-%m-%d %H:%M} UTC" if s.last_rotated else "never"
        table.add_row(
            f"[{style}]{symbol}[/]" if symbol else "",
            s.secret,
            s.environment,
            s.owner,
            s.strategy,
            last,
            _when(s.next_due, s),
            f"[{style}]{s.state}[/]" if style else str(s.state),
        )
    return table


def _table(*columns: str) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _when(moment: datetime, status: RotationStatus) -> str:
    """UTC, plus the wall-clock time in the schedule's own timezone when that is not UTC."""
    text = f"{moment:%Y-%m-%d %H:%M} UTC"
    if status.spec.timezone != "UTC":
        local = moment.astimezone(ZoneInfo(status.spec.timezone))
        text += f" ({local:%H:%M} {status.spec.timezone})"
    return text
