"""Tests of rotation/render.py: the JSON shapes and the one-line overdue message."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from envmatrix.policy import load_policy
from rotation.render import due_message, render_statuses, statuses_json
from rotation.schedule import RotationStatus, rotation_statuses

AT = datetime(2026, 6, 1, 12, 30, 15, 999, tzinfo=UTC)


def statuses(tmp_path: Path, count: int) -> tuple[RotationStatus, ...]:
    secrets = "".join(
        f"  S{i}:\n    owner: ops\n    vault: apps/{{environment}}/s{i}\n"
        f"    environments: [production]\n    rotation: {{max_age: 30d}}\n"
        for i in range(count)
    )
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\ngithub: {repositories: [o/r]}\nenvironments: {production: {github: prod}}\n"
        f"owners: {{ops: {{contact: ops@x.example}}}}\nsecrets:\n{secrets}"
    )
    return rotation_statuses(load_policy(path), ["production"], {}, AT)


def test_due_message_names_the_first_five(tmp_path: Path) -> None:
    assert due_message(statuses(tmp_path, 1)) == "1 rotation overdue: S0 (production, owner: ops)"
    message = due_message(statuses(tmp_path, 7))
    assert message.startswith("7 rotations overdue: S0 (production, owner: ops), S1 ")
    assert message.endswith("S4 (production, owner: ops) and 2 more")


def test_statuses_json_summary_and_times(tmp_path: Path) -> None:
    document = statuses_json(statuses(tmp_path, 2), AT)
    assert document["at"] == "2026-06-01T12:30:15Z"
    assert document["summary"] == {"total": 2, "overdue": 2, "never_rotated": 2}
    row = document["rotations"][0]
    assert (row["last_rotated"], row["next_due"], row["state"]) == (
        None,
        "2026-06-01T12:30:15Z",
        "never-rotated",
    )


def test_status_table_marks_overdue_rows(tmp_path: Path) -> None:
    out = io.StringIO()
    render_statuses(statuses(tmp_path, 1), AT, Console(file=out, width=200))
    lines = out.getvalue().splitlines()
    assert lines[1].startswith("!  S0") and "never-rotated" in lines[1]
    assert lines[-1] == "1 rotation; 1 overdue at 2026-06-01T12:30:15Z."
