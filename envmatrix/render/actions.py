"""What every CI-facing command tells GitHub Actions when it runs in one (GITHUB_ACTIONS=true).

Three channels, as the runner documents them:
- step outputs: `name=value` lines appended to the file `$GITHUB_OUTPUT` names (a value with a
  line break uses the `name<<DELIMITER` form);
- the job summary: markdown appended to the file `$GITHUB_STEP_SUMMARY` names;
- annotations: `::error title=T,file=F,line=N::message` lines the caller prints (stdout, or
  stderr when stdout carries `--json`; the runner reads workflow commands from both).

Each `publish_*` function writes the outputs and the summary of one command and returns its
annotation lines. Outputs per command (the action's outputs are the first ones):

- verify: `missing` (secret names, comma-separated; empty when none);
- plan: `has_changes` (`true`/`false`: apply would write) and the counts `create`, `update`,
  `delete`, `blocked`, `orphan`;
- apply: the counts `written`, `failed`, `blocked`;
- flags check: `ready` (`true`/`false`);
- rotation due: `overdue` (secret names, comma-separated, each once; empty when none);
- scan: the counts `undeclared`, `unused`;
- probe: `failed` (secret names, comma-separated, each once; empty when none) and the counts
  `probes_ok`, `probes_failed`.

No value of a secret reaches this module: changes, reports and statuses carry names only.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from envmatrix.errors import UsageError
from envmatrix.pipeline.apply import ApplyReport
from envmatrix.pipeline.desired import REPOSITORY_LEVEL, policy_repositories
from envmatrix.pipeline.plan import Action, Change, Plan
from envmatrix.policy import Policy
from envmatrix.rotation.schedule import RotationStatus
from envmatrix.views.flags import FlagReadiness
from envmatrix.views.probe import ProbeReport
from envmatrix.views.scan import ScanReport
from envmatrix.views.verify import (
    VerifyReport,
    error_annotations,
    escape_data,
    escape_property,
    output_line,
    step_summary,
)

__all__ = [
    "active",
    "annotation",
    "default_repository",
    "emit",
    "escape_data",
    "escape_property",
    "publish_apply",
    "publish_flags_check",
    "publish_plan",
    "publish_probe",
    "publish_rotation_due",
    "publish_scan",
    "publish_verify",
]


def active(environ: Mapping[str, str]) -> bool:
    """Whether this process runs as a GitHub Actions step."""
    return environ.get("GITHUB_ACTIONS") == "true"


def default_repository(
    policy: Policy, repository: str | None, environ: Mapping[str, str]
) -> str | None:
    """`--repository` as given; in GitHub Actions without it, the repository the workflow runs
    in (`$GITHUB_REPOSITORY`), so a multi-repository policy checks only this repository's
    secrets. That repository must be one the policy targets: UsageError (exit 3) naming the
    policy's repositories when it is not. Outside Actions: None (every repository)."""
    if repository is not None or not active(environ):
        return repository
    running = environ.get("GITHUB_REPOSITORY", "").strip()
    if not running:
        return None
    known = policy_repositories(policy)
    spelled = next((r for r in known if r.lower() == running.lower()), None)
    if spelled is None:
        raise UsageError(
            f"this workflow runs in {running} (GITHUB_REPOSITORY), which the policy does not"
            f" target ({', '.join(known) or 'no repositories'}); pass --repository to check"
            " another repository's secrets"
        )
    return spelled


def annotation(
    level: str,
    message: str,
    title: str | None = None,
    file: str | None = None,
    line: int | None = None,
) -> str:
    """One workflow command: `::LEVEL title=...,file=...,line=N::message` (level: error,
    warning or notice); properties and message escaped as the runner requires."""
    properties = [
        f"{key}={escape_property(str(value))}"
        for key, value in (("title", title), ("file", file), ("line", line))
        if value is not None
    ]
    head = f"{level} {','.join(properties)}" if properties else level
    return f"::{head}::{escape_data(message)}"


def emit(lines: Iterable[str], json_output: bool) -> None:
    """Print annotation lines: to stdout, or to stderr when stdout carries `--json`."""
    stream = sys.stderr if json_output else sys.stdout
    for line in lines:
        stream.write(line + "\n")


def output_text(outputs: Mapping[str, str]) -> str:
    """The `$GITHUB_OUTPUT` lines for `outputs`; multi-line values get a random delimiter."""
    parts = []
    for name, value in outputs.items():
        if "\n" in value or "\r" in value:
            delimiter = f"ghadelimiter_{secrets.token_hex(8)}"
            parts.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            parts.append(f"{name}={value}\n")
    return "".join(parts)


def _write(environ: Mapping[str, str], summary: str = "", outputs: str = "") -> None:
    for variable, text in (("GITHUB_STEP_SUMMARY", summary), ("GITHUB_OUTPUT", outputs)):
        path = environ.get(variable)
        if path and text:
            with Path(path).open("a", encoding="utf-8") as handle:
                handle.write(text)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _where(repository: str, environment: str | None) -> str:
    return f"{repository}/{environment or REPOSITORY_LEVEL}"


# -- verify ----------------------------------------------------------------------------------


def publish_verify(report: VerifyReport, environ: Mapping[str, str]) -> list[str]:
    """`missing=`, the table of required secrets; one `::error` per missing secret."""
    _write(environ, step_summary(report), output_line(report))
    return error_annotations(report)


# -- plan ------------------------------------------------------------------------------------

_PLAN_SYMBOLS = {
    Action.CREATE: "➕ create",
    Action.UPDATE: "🔁 update",
    Action.DELETE: "➖ delete",
    Action.BLOCKED: "⛔ blocked",
    Action.ORPHAN: "❔ orphan",
}


def plan_markdown(plan: Plan) -> str:
    """The plan as a markdown table for the job summary (names and reasons, never a value)."""
    counts = plan.summary()
    verdict = (
        f"{counts['create']} to create, {counts['update']} to update, "
        f"{counts['delete']} to delete; {counts['blocked']} blocked, {counts['orphan']} orphaned"
    )
    lines = [f"### envmatrix plan: {verdict}", ""]
    if not plan.changes:
        return "\n".join([*lines, "No changes. GitHub matches the policy and Vault.", "", ""])
    lines += [
        "| Action | Kind | Repository / environment | Name | Reason | Detail |",
        "|---|---|---|---|---|---|",
    ]
    for c in plan.changes:
        lines.append(
            f"| {_PLAN_SYMBOLS[c.action]} | {c.kind} | {_md(_where(c.repository, c.environment))}"
            f" | `{_md(c.name)}` | {c.reason} | {_md(c.detail)} |"
        )
    return "\n".join(lines) + "\n\n"


def publish_plan(plan: Plan, environ: Mapping[str, str]) -> list[str]:
    """`has_changes=true|false` and the counts per action, the plan table; one `::warning`
    per blocked cell naming its owner (apply cannot sync it)."""
    counts = plan.summary()
    outputs = {"has_changes": str(plan.has_writes).lower()}
    outputs |= {k: str(counts[k]) for k in ("create", "update", "delete", "blocked", "orphan")}
    _write(environ, plan_markdown(plan), output_text(outputs))
    return [_blocked_warning(c) for c in plan.blocked]


def _blocked_warning(change: Change) -> str:
    owner = f" — owner: {change.owner}" if change.owner and "owner:" not in change.detail else ""
    return annotation(
        "warning",
        f"{change.name} in {_where(change.repository, change.environment)} cannot be synced: "
        f"{change.detail}{owner}",
        title=f"Blocked secret {change.name}",
    )


# -- apply -----------------------------------------------------------------------------------


def publish_apply(report: ApplyReport, environ: Mapping[str, str]) -> list[str]:
    """Counts `written`, `failed`, `blocked`; a summary table of the writes; one `::error` per
    failed write and state error, one `::warning` per blocked cell."""
    counts = report.summary()
    verdict = "complete" if report.ok else "incomplete"
    lines = [
        f"### envmatrix apply {verdict}: {counts['written']} written, {counts['failed']} failed,"
        f" {counts['blocked']} blocked",
        "",
    ]
    if report.results:
        lines += [
            "| Result | Action | Repository / environment | Name | Error |",
            "|---|---|---|---|---|",
        ]
        for r in report.results:
            c = r.change
            lines.append(
                f"| {'✅ ok' if r.ok else '❌ failed'} | {c.action} {c.kind} | "
                f"{_md(_where(c.repository, c.environment))} | `{_md(c.name)}` | "
                f"{_md(r.error or '')} |"
            )
    lines += ["", ""]
    _write(environ, "\n".join(lines), output_text({k: str(v) for k, v in counts.items()}))
    errors = [
        annotation(
            "error",
            f"{r.change.action} {r.change.kind} {r.change.name} in "
            f"{_where(r.change.repository, r.change.environment)} failed: {r.error or 'failed'}",
            title=f"Write failed: {r.change.name}",
        )
        for r in report.failed
    ]
    errors += [annotation("error", e, title="Sync state not recorded") for e in report.state_errors]
    return errors + [_blocked_warning(c) for c in report.blocked]


# -- flags check -----------------------------------------------------------------------------


def publish_flags_check(rows: Sequence[FlagReadiness], environ: Mapping[str, str]) -> list[str]:
    """`ready=true|false` (true only when every selected row is ready), a table of the rows and
    their blockers; one `::error` per blocker naming its owner."""
    ready = bool(rows) and all(r.ready for r in rows)
    lines = ["| Flag | Repository / environment | Ready | Blocked by |", "|---|---|---|---|"]
    annotations = []
    for r in rows:
        blockers = "; ".join(_md(b.describe()) for b in r.blockers)
        mark = "✅ ready" if r.ready else "❌ not ready"
        lines.append(
            f"| `{r.flag}` | {_md(_where(r.repository, r.environment))} | {mark} | {blockers} |"
        )
        annotations += [
            annotation(
                "error",
                f"{r.flag} is not ready in {_where(r.repository, r.environment)}: {b.describe()}",
                title=f"Flag {r.flag} not ready",
            )
            for b in r.blockers
        ]
    head = f"### envmatrix flags check: {'ready' if ready else 'not ready'}"
    _write(
        environ, "\n".join([head, "", *lines, "", ""]), output_text({"ready": str(ready).lower()})
    )
    return annotations


# -- rotation due ----------------------------------------------------------------------------


def publish_rotation_due(
    overdue: Sequence[RotationStatus], environ: Mapping[str, str]
) -> list[str]:
    """`overdue=NAME1,NAME2` (each secret once; empty when none), a table with owners; one
    `::error` per overdue rotation naming the owner and contact."""
    names = ",".join(dict.fromkeys(s.secret for s in overdue))
    lines = [f"### envmatrix rotation due: {len(overdue)} overdue", ""]
    if overdue:
        lines += ["| Secret | Where | Strategy | Due | Owner |", "|---|---|---|---|---|"]
        for s in overdue:
            due = "never rotated" if s.last_rotated is None else f"{s.next_due:%Y-%m-%d %H:%M} UTC"
            lines.append(
                f"| `{s.secret}` | {_md(s.where)} | {_md(s.strategy)} | {due} | {_md(_owner(s))} |"
            )
    _write(environ, "\n".join([*lines, "", ""]), output_text({"overdue": names}))
    return [
        annotation(
            "error",
            f"rotation of {s.secret} ({s.where}) is overdue — owner: {_owner(s)}",
            title=f"Rotation overdue: {s.secret}",
        )
        for s in overdue
    ]


def _owner(status: RotationStatus) -> str:
    return f"{status.owner} ({status.contact})" if status.contact else status.owner


# -- scan ------------------------------------------------------------------------------------


def publish_scan(report: ScanReport, workflows: str, environ: Mapping[str, str]) -> list[str]:
    """Counts `undeclared`, `unused`; a table of findings; one `::warning` per finding, with
    the workflow's file and the line of the first reference when there is one."""
    lines = [
        f"### envmatrix scan: {len(report.undeclared)} undeclared, {len(report.unused)} unused",
        "",
    ]
    if report.findings:
        lines += ["| Finding | Secret | Workflow | Job | Owner |", "|---|---|---|---|---|"]
        for f in report.findings:
            lines.append(
                f"| {f.kind} | `{_md(f.secret)}` | {_md(f.workflow or '')} | {_md(f.job or '')} |"
                f" {_md(f.owner or '')} |"
            )
    outputs = {"undeclared": str(len(report.undeclared)), "unused": str(len(report.unused))}
    _write(environ, "\n".join([*lines, "", ""]), output_text(outputs))
    annotations = []
    for f in report.findings:
        file = _workflow_file(workflows, f.workflow)
        line = _reference_line(file, f.secret) if file else None
        owner = f" — owner: {f.owner}" if f.owner else ""
        annotations.append(
            annotation(
                "warning",
                f"{f.kind}: {f.detail}{owner}",
                title=f"envmatrix scan: {f.kind} {f.secret}",
                file=file,
                line=line,
            )
        )
    return annotations


def _workflow_file(workflows: str, workflow: str | None) -> str | None:
    """The finding's workflow file as a path from the folder `scan --workflows` was given."""
    if not workflow:
        return None
    path = Path(workflow)
    return str(path if path.is_absolute() or path.parent != Path(".") else Path(workflows) / path)


def _reference_line(file: str, secret: str) -> int | None:
    """The 1-based line of the first `secrets.NAME` / `secrets['NAME']` in `file`, if any."""
    pattern = re.compile(
        rf"""\bsecrets\s*(?:\.\s*{re.escape(secret)}\b|\[\s*['"]{re.escape(secret)}['"]\s*\])"""
    )
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.search(line):
            return number
    return None


# -- probe -----------------------------------------------------------------------------------


def publish_probe(report: ProbeReport, environ: Mapping[str, str]) -> list[str]:
    """`failed=` (the secrets whose probe failed), the counts, a table of the probes; one
    `::error` per failed probe naming the secret, the environment and the owner (the probe's
    detail is envmatrix's own words, never a value); one `::warning` when probes were withheld
    (a pull-request-triggered run)."""
    failed = [r for r in report.results if not r.ok]
    names = ",".join(dict.fromkeys(r.secret or r.probe for r in failed))
    outputs = output_text(
        {
            "failed": names,
            "probes_ok": str(len(report.results) - len(failed)),
            "probes_failed": str(len(failed)),
        }
    )
    lines = ["| Probe | Secret | Environment | Result | Owner |", "|---|---|---|---|---|"]
    for r in report.results:
        mark = "✅ ok" if r.ok else "❌ failed"
        lines.append(
            f"| {r.probe} | `{_md(r.secret or '-')}` | {_md(r.environment or REPOSITORY_LEVEL)}"
            f" | {mark} | {_md(r.owner or '-')} |"
        )
    head = f"### envmatrix probe: {len(failed)} failed of {len(report.results)}"
    if report.skipped:
        lines = [_md(report.skipped)]
    _write(environ, "\n".join([head, "", *lines, "", ""]), outputs)
    annotations = [
        annotation(
            "error",
            r.detail,
            title=f"Probe {r.probe} failed: {r.secret or r.probe} in"
            f" {r.environment or REPOSITORY_LEVEL} (owner: {r.owner or 'unknown'})",
        )
        for r in failed
    ]
    if report.skipped:
        annotations.append(annotation("warning", report.skipped, title="Probes withheld"))
    return annotations
