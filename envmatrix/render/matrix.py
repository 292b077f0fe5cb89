"""Rendering of the matrix (terminal table, markdown, self-contained HTML, JSON) and of the
gates built on it (flags, verify, scan). Domain modules return values; this module turns them
into text. No value of a secret ever reaches it: cells carry names, statuses and details only.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from envmatrix.pipeline.desired import REPOSITORY_LEVEL
from envmatrix.views.flags import FlagReadiness
from envmatrix.views.matrix import Matrix, MatrixCell, Status
from envmatrix.views.probe import ProbeReport
from envmatrix.views.scan import ScanReport, unknown_environment_line
from envmatrix.views.verify import VerifyReport

FORMATS = ("table", "markdown", "json", "html")

SYMBOLS: Mapping[Status, tuple[str, str]] = {
    Status.OK: ("✓", "green"),
    Status.MISSING: ("+", "yellow"),
    Status.STALE: ("~", "yellow"),
    Status.DRIFTED: ("!", "magenta"),
    Status.BLOCKED: ("✗", "bold red"),
    Status.NOT_REQUIRED: ("·", "dim"),
}
MEANINGS: Mapping[Status, str] = {
    Status.OK: "in GitHub and in sync with Vault",
    Status.MISSING: "not in GitHub yet (apply creates it)",
    Status.STALE: "Vault holds a newer value (apply updates it)",
    Status.DRIFTED: "changed outside envmatrix (apply rewrites it from Vault)",
    Status.BLOCKED: "missing in Vault: cannot be synced (ask the owner)",
    Status.NOT_REQUIRED: "the policy does not target this environment",
}
HTML_COLOURS: Mapping[Status, str] = {
    Status.OK: "#d7f5dd",
    Status.MISSING: "#fff3c4",
    Status.STALE: "#ffe2b8",
    Status.DRIFTED: "#f3d9fa",
    Status.BLOCKED: "#ffd0d0",
    Status.NOT_REQUIRED: "#f2f2f2",
}


def cell_label(status: Status, rotation_overdue: bool = False) -> str:
    """`✓ ok`, `✗ blocked`: the symbol for scanning by eye, the word for reading without colour;
    `↻` marks a secret whose rotation is overdue."""
    return f"{SYMBOLS[status][0]} {status}" + (" ↻" if rotation_overdue else "")


# -- matrix: JSON ----------------------------------------------------------------------------


def matrix_json(matrix: Matrix, scan: ScanReport | None = None) -> dict[str, Any]:
    """`{"cells": [...], "orphans": [...]}` (+ `"workflows"` when a scan was made)."""
    data = matrix.to_json()
    if scan is not None:
        data["workflows"] = scan.to_json()
    return data


# -- matrix: terminal ------------------------------------------------------------------------


def matrix_renderable(matrix: Matrix, scan: ScanReport | None = None) -> RenderableType:
    """One rich table per repository, the legend, orphans and workflow findings."""
    parts: list[RenderableType] = []
    for repository in matrix.repositories():
        parts.append(Text(repository, style="bold"))
        parts.append(_rich_grid(matrix, repository))
    parts.append(
        Text(
            "  ".join(f"{SYMBOLS[s][0]} {s}" for s in Status) + "  ↻ rotation overdue", style="dim"
        )
    )
    parts.extend(Text(line) for line in _footer_lines(matrix, scan))
    return Group(*parts)


def _rich_grid(matrix: Matrix, repository: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    # Text, not str: names from the policy and GitHub ("x[/]y") are not rich markup
    for column in ("secret", "service", "owner", *matrix.environments(repository)):
        table.add_column(Text(column))
    for row in matrix.rows(repository):
        first = row[0]
        table.add_row(
            Text(first.secret),
            Text(first.service or ""),
            Text(first.owner),
            *(
                Text(cell_label(c.status, c.rotation_overdue), style=SYMBOLS[c.status][1])
                for c in row
            ),
        )
    return table


def _footer_lines(matrix: Matrix, scan: ScanReport | None) -> list[str]:
    lines = [
        f"orphan: {o.secret} in {o.repository}/{o.environment or REPOSITORY_LEVEL}"
        f" ({o.action}): {o.detail}"
        for o in matrix.orphans
    ]
    if scan is not None:
        lines += [f"workflow {f.kind}: {f.detail}" for f in scan.findings]
        lines += [
            f"workflow environment unknown: {unknown_environment_line(job)}"
            for job in scan.environment_unknown
        ]
    return lines


def matrix_text(matrix: Matrix, scan: ScanReport | None = None, width: int = 160) -> str:
    """The terminal table as plain text (for --out, and for tests)."""
    console = Console(
        width=width, no_color=True, force_terminal=False, record=True, file=io.StringIO()
    )
    console.print(matrix_renderable(matrix, scan))
    return console.export_text()


# -- matrix: markdown ------------------------------------------------------------------------


def matrix_markdown(matrix: Matrix, scan: ScanReport | None = None) -> str:
    """A markdown table per repository (for pull requests and docs), legend, orphans."""
    lines = ["## Secrets matrix", ""]
    for repository in matrix.repositories():
        environments = matrix.environments(repository)
        lines += [
            f"### {_md(repository)}",
            "",
            "| Secret | Service | Owner | " + " | ".join(map(_md, environments)) + " |",
            "|---|---|---|" + "---|" * len(environments),
        ]
        for row in matrix.rows(repository):
            cells = " | ".join(cell_label(c.status, c.rotation_overdue) for c in row)
            first = row[0]
            lines.append(
                f"| `{first.secret}` | {_md(first.service or '')} | {_md(first.owner)} | {cells} |"
            )
        lines.append("")
    lines.append(
        "Legend: "
        + "; ".join(f"{cell_label(s)}: {MEANINGS[s]}" for s in Status)
        + "; ↻: rotation overdue"
    )
    footer = _footer_lines(matrix, scan)
    if footer:
        lines += ["", "### Below the grid", ""] + [f"- {_md(line)}" for line in footer]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# -- matrix: HTML ----------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1d1d1f}
h1{font-size:1.4rem} h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;font-size:.9rem}
th{background:#fafafa} td.cell{text-align:center;white-space:nowrap}
code{font-family:ui-monospace,Menlo,Consolas,monospace}
.legend td{text-align:left}
"""


def matrix_html(matrix: Matrix, scan: ScanReport | None = None) -> str:
    """One self-contained page: inline CSS, no scripts, no external links or images."""
    style = _CSS + "".join(f"td.status-{s}{{background:{c}}}\n" for s, c in HTML_COLOURS.items())
    body = ["<h1>envmatrix: secrets matrix</h1>"]
    for repository in matrix.repositories():
        body += [f"<h2>{_h(repository)}</h2>", _html_grid(matrix, repository)]
    body += ["<h2>Legend</h2>", _html_legend()]
    footer = _footer_lines(matrix, scan)
    if footer:
        body += ["<h2>Below the grid</h2>", "<ul>"]
        body += [f"<li>{_h(line)}</li>" for line in footer] + ["</ul>"]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>envmatrix secrets matrix</title>"
        f"<style>{style}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _html_grid(matrix: Matrix, repository: str) -> str:
    head = "".join(f"<th>{_h(e)}</th>" for e in matrix.environments(repository))
    rows = [f"<tr><th>Secret</th><th>Service</th><th>Owner</th>{head}</tr>"]
    for row in matrix.rows(repository):
        first = row[0]
        cells = "".join(_html_cell(c) for c in row)
        rows.append(
            f"<tr><td><code>{_h(first.secret)}</code></td><td>{_h(first.service or '')}"
            f"</td><td>{_h(first.owner)}</td>{cells}</tr>"
        )
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def _html_cell(cell: MatrixCell) -> str:
    attributes = (
        f'class="cell status-{cell.status}" data-repository="{_h(cell.repository)}" '
        f'data-environment="{_h(cell.column)}" data-secret="{_h(cell.secret)}" '
        f'data-status="{cell.status}" data-rotation-overdue="{str(cell.rotation_overdue).lower()}" '
        f'title="{_h(cell.detail)}"'
    )
    return f"<td {attributes}>{_h(cell_label(cell.status, cell.rotation_overdue))}</td>"


def _html_legend() -> str:
    rows = "".join(
        f'<tr><td class="cell status-{s}">{_h(cell_label(s))}</td><td>{_h(MEANINGS[s])}</td></tr>'
        for s in Status
    )
    rows += "<tr><td>↻</td><td>rotation overdue (see envmatrix rotation due)</td></tr>"
    return f'<table class="legend">{rows}</table>'


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def render_matrix(matrix: Matrix, fmt: str, scan: ScanReport | None = None) -> str:
    """The matrix in one of FORMATS, as text (the terminal format without colour)."""
    if fmt == "json":
        return json.dumps(matrix_json(matrix, scan), indent=2) + "\n"
    if fmt == "markdown":
        return matrix_markdown(matrix, scan)
    if fmt == "html":
        return matrix_html(matrix, scan)
    return matrix_text(matrix, scan)


# -- flags -----------------------------------------------------------------------------------


def flags_json(readiness: Iterable[FlagReadiness]) -> dict[str, Any]:
    """`{"flags": [...]}` for `flags --json` and `flags check --json`."""
    return {"flags": [r.to_json() for r in readiness]}


def flags_table(readiness: Iterable[FlagReadiness]) -> RenderableType:
    """Every flag x environment: ready or not and the variable; below it, what blocks each
    one and whose it is."""
    rows = tuple(readiness)
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for column in ("flag", "repository", "environment", "ready", "variable", "blocked by"):
        table.add_column(column)
    for r in rows:
        ready = Text("✓ ready", style="green") if r.ready else Text("✗ not ready", style="red")
        variable = (r.github_variable or "unset") if r.variable else "(no variable)"
        blocked_by = ", ".join(b.secret or b.status for b in r.blockers)
        plain = (Text(text) for text in (r.flag, r.repository, r.environment))  # not markup
        table.add_row(*plain, ready, Text(variable), Text(blocked_by))
    details = [Text(line) for line in flag_check_lines(r for r in rows if not r.ready)]
    return Group(table, *details)


def flag_check_lines(rows: Iterable[FlagReadiness]) -> list[str]:
    """What `flags check` prints: a verdict per repository and each blocker with its owner."""
    lines = []
    for r in rows:
        where = f"{r.repository}/{r.environment}"
        if r.ready:
            lines.append(f"{r.flag} is ready in {where}")
            continue
        lines.append(f"{r.flag} is not ready in {where}:")
        lines += [f"  {b.describe()}" for b in r.blockers]
    return lines


# -- verify ----------------------------------------------------------------------------------


def verify_lines(report: VerifyReport) -> list[str]:
    """Human lines: each missing secret with its owner, then a verdict. Never a value."""
    lines = [
        f"{f.requirement.name} missing in {f.where} — owner: {f.requirement.owner_text()}"
        for f in report.missing
    ]
    total = len(report.checked)
    if report.ok:
        lines.append(
            f"verify {report.environment} ({report.source}): all {total} required secrets present"
        )
    else:
        lines.append(
            f"verify {report.environment} ({report.source}): "
            f"{len(report.missing_names())} of {total} required secrets missing"
        )
    return lines


# -- scan ------------------------------------------------------------------------------------


def scan_lines(report: ScanReport) -> list[str]:
    """Human lines: each finding with its owner, what was skipped, then the counts."""
    lines = [
        f"{f.kind}: {f.detail}" + (f" — owner: {f.owner}" if f.owner else "")
        for f in report.findings
    ]
    lines += [
        f"environment unknown: {unknown_environment_line(job)}"
        for job in report.environment_unknown
    ]
    lines += [f"skipped: {note}" for note in report.skipped]
    lines.append(
        f"scanned {len(report.jobs)} jobs: {len(report.undeclared)} undeclared, "
        f"{len(report.unused)} unused, {len(report.environment_unknown)} environment unknown"
    )
    return lines


def probe_lines(report: ProbeReport) -> list[str]:
    """`probe shopify SHOPIFY_ADMIN_TOKEN in production: ok: ...`, one line per probe, and a
    count; nothing when the run was withheld (the warning says why)."""
    if report.skipped:
        return []
    if not report.results:
        return ["no probes declared (probe: on a secret) for the selected environments"]
    lines = []
    for r in report.results:
        where = r.environment or "(repository)"
        what = f"{r.probe} {r.secret}" if r.secret else r.probe
        lines.append(f"probe {what} in {where}: {'ok' if r.ok else 'failed'}: {r.detail}")
    failed = sum(not r.ok for r in report.results)
    lines.append(
        f"{len(report.results)} probes: {len(report.results) - failed} ok, {failed} failed"
    )
    return lines
