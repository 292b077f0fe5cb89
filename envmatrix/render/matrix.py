"""Rendering of the matrix (terminal table, markdown, self-contained HTML, JSON) and of the
gates built on it (flags, verify, scan). Domain modules return values; this module turns them
into text. No value of a secret ever reaches it: cells carry names, statuses and details only.
"""

from __future__ import annotations

import difflib
import html
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from envmatrix.errors import UsageError
from envmatrix.pipeline.desired import owner_with_contact
from envmatrix.render.symbols import OVERDUE, STATUS_MARKS, ready_mark
from envmatrix.timefmt import human_utc, iso_utc
from envmatrix.views.flags import FlagReadiness
from envmatrix.views.matrix import Matrix, MatrixCell, Status
from envmatrix.views.probe import ProbeReport
from envmatrix.views.scan import ScanReport, unknown_environment_line
from envmatrix.views.verify import VerifyReport

FORMATS = ("table", "markdown", "json", "html")
# `matrix --check FILE` picks the format from FILE's suffix unless --format is given
FORMAT_BY_SUFFIX: Mapping[str, str] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".json": "json",
    ".txt": "table",
}

# the one set of symbols plan and matrix share (render/symbols.py), as (symbol, style)
SYMBOLS: Mapping[Status, tuple[str, str]] = {
    status: (mark.symbol, mark.style) for status, mark in STATUS_MARKS.items()
}
MEANINGS: Mapping[Status, str] = {status: mark.meaning for status, mark in STATUS_MARKS.items()}
HTML_COLOURS: Mapping[Status, str] = {
    Status.OK: "#d7f5dd",
    Status.MISSING: "#fff3c4",
    Status.STALE: "#ffe2b8",
    Status.DRIFTED: "#f3d9fa",
    Status.BLOCKED: "#ffd0d0",
    Status.SHADOWED: "#ffc0a0",
    Status.NOT_REQUIRED: "#f2f2f2",
}


def cell_label(status: Status, rotation_overdue: bool = False) -> str:
    """`✓ ok`, `✗ blocked`: the symbol for scanning by eye, the word for reading without colour;
    `↻` marks a secret whose rotation is overdue."""
    return f"{SYMBOLS[status][0]} {status}" + (f" {OVERDUE.symbol}" if rotation_overdue else "")


VARIABLE_MARK = "(variable)"  # after a plain variable's name: the row is not a secret


def matrix_cell_label(cell: MatrixCell) -> str:
    """A grid cell's label: `cell_label`, and for an organization copy its visibility
    (`✓ ok · visibility selected, 2 repositories`)."""
    label = cell_label(cell.status, cell.rotation_overdue)
    return f"{label} · {cell.access}" if cell.access else label


def section_title(matrix: Matrix, repository: str) -> str:
    """A section's heading: the repository, or `occ-labs (organization)`."""
    return f"{repository} (organization)" if matrix.is_organization(repository) else repository


def row_name(cell: MatrixCell) -> str:
    """A row's label: the secret's name, or a variable's name marked `(variable)`."""
    return f"{cell.secret} {VARIABLE_MARK}" if cell.is_variable else cell.secret


def ready_label(ready: bool) -> str:
    """`✓ ready` or `✗ blocked` (the matrix's own symbols)."""
    return f"{ready_mark(ready).symbol} {'ready' if ready else 'blocked'}"


def generated_line(matrix: Matrix) -> str | None:
    """`Generated 2026-11-29 21:40:38 UTC`, or None for a matrix without a time stamp."""
    if matrix.generated_at is None:
        return None
    return f"Generated {human_utc(matrix.generated_at, seconds=True)}"


@dataclass(frozen=True)
class FlagLine:
    """One line of a repository's flag table: a flag in an environment, and one thing that
    blocks it (none when ready) with whom to ask."""

    flag: str
    environment: str
    ready: bool
    blocked_by: str  # `SUPABASE_SERVICE_KEY (✗ blocked)`, `probe-failed`, or ""
    ask: str  # `reliability (reliability@occ.example)`, or ""
    detail: str


def flag_lines(matrix: Matrix, repository: str) -> list[FlagLine]:
    """The flag rows of a repository: one per blocker, or one `ready` row."""
    lines = []
    for r in matrix.flags_of(repository):
        if r.ready:
            lines.append(FlagLine(r.flag, r.environment, True, "", "", "every secret in sync"))
        for b in r.blockers:
            what = _blocker_label(b.secret, b.status)
            ask = owner_with_contact(b.owner, b.contact) if b.owner else ""
            lines.append(FlagLine(r.flag, r.environment, False, what, ask, b.describe()))
    return lines


def _blocker_label(secret: str | None, status: str) -> str:
    if secret is None:
        return status
    known = {str(s): s for s in Status}
    return f"{secret} ({cell_label(known[status])})" if status in known else f"{secret} ({status})"


# -- matrix: JSON ----------------------------------------------------------------------------


def matrix_json(matrix: Matrix, scan: ScanReport | None = None) -> dict[str, Any]:
    """`{"cells": [...], "orphans": [...]}` (+ `"workflows"` when a scan was made)."""
    data = matrix.to_json()
    if scan is not None:
        data["workflows"] = scan.to_json()
    return data


# -- matrix: terminal ------------------------------------------------------------------------


def matrix_renderable(matrix: Matrix, scan: ScanReport | None = None) -> RenderableType:
    """The time stamp, one rich table per repository with its flags, the legend, orphans and
    workflow findings. A table too wide for the console is stacked (one secret or flag after
    the other) instead of squeezed, so no name is ever cut, folded or wrapped mid-word."""
    stamp = generated_line(matrix)
    parts: list[RenderableType] = [Text(stamp, style="dim")] if stamp else []
    for repository in matrix.repositories():
        parts.append(Text(section_title(matrix, repository), style="bold"))
        parts.append(_FitOrStack(_rich_grid(matrix, repository), _stacked_grid(matrix, repository)))
        if matrix.flags_of(repository):
            lines = flag_lines(matrix, repository)
            parts.append(_FitOrStack(_rich_flags(lines), _stacked_flags(lines)))
    parts.append(
        Text(
            "  ".join(f"{SYMBOLS[s][0]} {s}" for s in Status)
            + f"  {OVERDUE.symbol} rotation overdue",
            style="dim",
        )
    )
    parts.extend(Text(line) for line in _footer_lines(matrix, scan))
    return Group(*parts)


class _FitOrStack:
    """The table when it fits the console's width unwrapped, else the stacked layout."""

    def __init__(self, table: Table, stacked: RenderableType) -> None:
        self.table, self.stacked = table, stacked

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        needed = Measurement.get(console, options.update(width=10_000), self.table).maximum
        yield self.table if needed <= options.max_width else self.stacked


def _name(text: str, style: str = "") -> Text:
    """A secret or flag name: printed whole, never folded or wrapped."""
    return Text(text, style=style, no_wrap=True, overflow="ignore")


def _rich_grid(matrix: Matrix, repository: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    # Text, not str: names from the policy and GitHub ("x[/]y") are not rich markup
    table.add_column(Text("secret"), no_wrap=True)
    for column in ("service", "owner", *matrix.environments(repository)):
        table.add_column(Text(column))
    for row in matrix.rows(repository):
        first = row[0]
        table.add_row(
            _name(row_name(first)),
            Text(first.service or ""),
            Text(first.owner),
            *(_cell_text(c) for c in row),
        )
    return table


def _cell_text(cell: MatrixCell) -> Text:
    return Text(matrix_cell_label(cell), style=SYMBOLS[cell.status][1])


def _stacked_grid(matrix: Matrix, repository: str) -> RenderableType:
    """Each secret on its own line, its environments below it."""
    parts: list[RenderableType] = []
    for row in matrix.rows(repository):
        first = row[0]
        parts.append(_name(row_name(first), "bold"))
        about = ", ".join(x for x in (first.service, f"owner {first.owner}") if x)
        parts.append(Padding(Text(about, style="dim"), (0, 0, 0, 4)))
        table = Table(box=None, pad_edge=False, show_header=False, show_edge=False)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        for cell in row:
            table.add_row(Text(cell.column), _cell_text(cell))
        parts.append(Padding(table, (0, 0, 0, 4)))
    return Group(*parts)


def _rich_flags(lines: list[FlagLine]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for header in ("flag", "environment", "ready", "blocked by", "ask"):
        table.add_column(Text(header), no_wrap=header in ("flag", "ready", "blocked by"))
    for line in lines:
        table.add_row(
            _name(line.flag),
            Text(line.environment),
            Text(ready_label(line.ready), style=ready_mark(line.ready).style),
            _name(line.blocked_by),
            Text(line.ask),
        )
    return table


def _stacked_flags(lines: list[FlagLine]) -> RenderableType:
    """Each flag and environment on a line, what blocks it and whom to ask below."""
    parts: list[RenderableType] = []
    seen: set[tuple[str, str]] = set()
    for line in lines:
        if (line.flag, line.environment) not in seen:
            seen.add((line.flag, line.environment))
            head = _name(line.flag, "bold")
            head.append(f" in {line.environment}: ")
            head.append(ready_label(line.ready), style=ready_mark(line.ready).style)
            parts.append(head)
        if line.blocked_by:
            # wraps between words only: the name moves to the next line whole
            parts.append(Padding(Text(f"blocked by {line.blocked_by}"), (0, 0, 0, 4)))
        if line.ask:
            parts.append(Padding(Text(f"ask {line.ask}"), (0, 0, 0, 6)))
    return Group(*parts)


def _footer_lines(matrix: Matrix, scan: ScanReport | None) -> list[str]:
    lines = [
        f"orphan{' variable' if o.kind == 'variable' else ''}: {o.secret} in"
        f" {o.repository}/{o.column} ({o.action}): {o.detail}"
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
    """A markdown table per repository with its flags (for pull requests and docs), legend,
    orphans. No time stamp: the same world gives the same document (`matrix --check`)."""
    lines = ["## Secrets matrix", ""]
    for repository in matrix.repositories():
        environments = matrix.environments(repository)
        lines += [
            f"### {_md(section_title(matrix, repository))}",
            "",
            "| Secret | Service | Owner | " + " | ".join(map(_md, environments)) + " |",
            "|---|---|---|" + "---|" * len(environments),
        ]
        for row in matrix.rows(repository):
            cells = " | ".join(_md(matrix_cell_label(c)) for c in row)
            first = row[0]
            name = f"`{first.secret}`" + (f" {VARIABLE_MARK}" if first.is_variable else "")
            lines.append(f"| {name} | {_md(first.service or '')} | {_md(first.owner)} | {cells} |")
        lines.append("")
        lines += _markdown_flags(matrix, repository)
    lines.append(
        "Legend: "
        + "; ".join(f"{cell_label(s)}: {MEANINGS[s]}" for s in Status)
        + f"; {OVERDUE.symbol}: rotation overdue"
    )
    footer = _footer_lines(matrix, scan)
    if footer:
        lines += ["", "### Below the grid", ""] + [f"- {_md(line)}" for line in footer]
    return "\n".join(lines) + "\n"


def _markdown_flags(matrix: Matrix, repository: str) -> list[str]:
    rows = flag_lines(matrix, repository)
    if not rows:
        return []
    lines = [
        f"#### Flags in {_md(repository)}",
        "",
        "| Flag | Environment | Ready | Blocked by | Ask |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r.flag}` | {_md(r.environment)} | {ready_label(r.ready)} | "
            f"{_md(r.blocked_by)} | {_md(r.ask)} |"
        )
    return [*lines, ""]


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
    if matrix.generated_at is not None:
        stamp = human_utc(matrix.generated_at, seconds=True)
        body.append(
            f'<p class="generated">Generated <time datetime="{iso_utc(matrix.generated_at)}">'
            f"{_h(stamp)}</time></p>"
        )
    for repository in matrix.repositories():
        body += [
            f"<h2>{_h(section_title(matrix, repository))}</h2>",
            _html_grid(matrix, repository),
        ]
        if matrix.flags_of(repository):
            body += [f"<h3>Flags in {_h(repository)}</h3>", _html_flags(matrix, repository)]
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


def _html_flags(matrix: Matrix, repository: str) -> str:
    rows = [
        "<tr><th>Flag</th><th>Environment</th><th>Ready</th><th>Blocked by</th><th>Ask</th></tr>"
    ]
    for r in flag_lines(matrix, repository):
        status = Status.OK if r.ready else Status.BLOCKED
        attributes = (
            f'class="cell status-{status}" data-flag="{_h(r.flag)}" '
            f'data-environment="{_h(r.environment)}" data-ready="{str(r.ready).lower()}" '
            f'title="{_h(r.detail)}"'
        )
        rows.append(
            f"<tr><td><code>{_h(r.flag)}</code></td><td>{_h(r.environment)}</td>"
            f"<td {attributes}>{_h(ready_label(r.ready))}</td>"
            f"<td><code>{_h(r.blocked_by)}</code></td><td>{_h(r.ask)}</td></tr>"
        )
    return '<table class="flags">\n' + "\n".join(rows) + "\n</table>"


def _html_grid(matrix: Matrix, repository: str) -> str:
    head = "".join(f"<th>{_h(e)}</th>" for e in matrix.environments(repository))
    rows = [f"<tr><th>Secret</th><th>Service</th><th>Owner</th>{head}</tr>"]
    for row in matrix.rows(repository):
        first = row[0]
        cells = "".join(_html_cell(c) for c in row)
        mark, tr = (
            (f" {VARIABLE_MARK}", '<tr data-kind="variable">')
            if first.is_variable
            else ("", "<tr>")
        )
        rows.append(
            f"{tr}<td><code>{_h(first.secret)}</code>{mark}</td>"
            f"<td>{_h(first.service or '')}</td><td>{_h(first.owner)}</td>{cells}</tr>"
        )
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def _html_cell(cell: MatrixCell) -> str:
    attributes = (
        f'class="cell status-{cell.status}" data-repository="{_h(cell.repository)}" '
        f'data-environment="{_h(cell.column)}" data-secret="{_h(cell.secret)}" '
        f'data-status="{cell.status}" data-rotation-overdue="{str(cell.rotation_overdue).lower()}" '
        f'data-scope="{_h(cell.scope)}" data-store="{_h(cell.store)}" '
        + (f'data-visibility="{_h(cell.visibility)}" ' if cell.visibility else "")
        + f'title="{_h(cell.detail)}"'
    )
    return f"<td {attributes}>{_h(matrix_cell_label(cell))}</td>"


def _html_legend() -> str:
    rows = "".join(
        f'<tr><td class="cell status-{s}">{_h(cell_label(s))}</td><td>{_h(MEANINGS[s])}</td></tr>'
        for s in Status
    )
    rows += f"<tr><td>{OVERDUE.symbol}</td><td>{_h(OVERDUE.meaning)}</td></tr>"
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


# -- matrix: --check ------------------------------------------------------------------------

# the time stamp line of the table and the HTML page: not part of what --check compares
_STAMP = re.compile(
    r"^.*\bGenerated (?:<time [^>]*>)?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC.*(?:\n|$)", re.MULTILINE
)
DIFF_LINES = 60


def check_format(path: str, fmt: str | None) -> str:
    """The format `matrix --check FILE` compares in: `--format` when given, else FILE's suffix
    (.md, .html, .json, .txt). UsageError for an unknown one."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in FORMAT_BY_SUFFIX:
        known = ", ".join(FORMAT_BY_SUFFIX)
        raise UsageError(
            f"--check {path}: cannot tell the format from the suffix {suffix or '(none)'!r}"
            f" (one of {known}); give --format"
        )
    return FORMAT_BY_SUFFIX[suffix]


def comparable(text: str) -> list[str]:
    """The lines --check compares: without the time stamp, line endings normalised."""
    return _STAMP.sub("", text.replace("\r\n", "\n")).splitlines(keepends=True)


def matrix_diff(committed: str, current: str, path: str, limit: int = DIFF_LINES) -> list[str]:
    """A unified diff from the committed matrix (FILE) to the matrix now, without the time
    stamp; [] when they match. At most `limit` lines, then one line counting the rest."""
    diff = [
        line.rstrip("\n")
        for line in difflib.unified_diff(
            comparable(committed), comparable(current), f"{path} (committed)", "matrix now", n=1
        )
    ]
    if len(diff) > limit:
        diff = [*diff[:limit], f"... ({len(diff) - limit} more diff lines)"]
    return diff


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
    lines += [
        f"{m.requirement.name}: {m.reason} — owner: {m.requirement.owner_text()}"
        for m in report.mismatched
    ]
    total = len(report.checked)
    if report.ok and report.fingerprinted:
        lines.append(
            f"verify {report.environment} ({report.source}): all {total} required secrets"
            " present and the values envmatrix synced"
        )
    elif report.mismatched:
        lines.append(
            f"verify {report.environment} ({report.source}): "
            f"{len(report.missing_names())} of {total} required secrets missing,"
            f" {len(report.mismatched_names())} not the value envmatrix synced"
        )
    elif report.ok:
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
