"""matrix, flags, verify, scan, probe: read-only views of the policy, Vault and GitHub."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from envmatrix.cli.options import (
    EnvironmentOption,
    JsonOption,
    NotifyOption,
    OneEnvironmentOption,
    PolicyOption,
    RepositoryOption,
    policy_path,
    warn,
)
from envmatrix.errors import ExitCode, UsageError
from envmatrix.policy import load_policy
from envmatrix.render import actions
from envmatrix.render import matrix as render_matrix
from envmatrix.render import report as render
from envmatrix.render.progress import alive

NoProbeOption = Annotated[bool, typer.Option("--no-probe", help="Skip the flags' probes.")]
AllowPullRequestOption = Annotated[
    bool,
    typer.Option(
        "--allow-pull-request",
        help="Run probes even in a pull-request-triggered run (the policy may come from the PR).",
    ),
]


def _say_if_withheld(with_probes: bool, allow_pull_request: bool) -> None:
    """One warning when this run's probes are withheld (a pull-request-triggered run)."""
    from envmatrix.workflow import probes_withheld

    note = probes_withheld(allow_pull_request, os.environ) if with_probes else None
    if note is not None:
        warn(note)


def matrix(
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    repository: RepositoryOption = None,
    fmt: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            help="table|markdown|json|html (default table; with --check or --out: FILE's suffix).",
        ),
    ] = None,
    out: Annotated[
        Optional[str], typer.Option("--out", metavar="FILE", help="Write to this file.")  # noqa: UP045
    ] = None,
    check: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--check",
            metavar="FILE",
            help="Exit 1 with a diff when this committed file differs from the matrix now.",
        ),
    ] = None,
    workflows: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--workflows", metavar="DIR", help="Also scan this workflows folder."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Which secret is where: secrets x environments per repository, with a status per cell,
    and which flag waits for which secret."""
    from envmatrix.files import write_atomic
    from envmatrix.workflow import committed_matrix, matrix_of

    fmt = "json" if json_output else fmt
    if check is not None:
        if out is not None:
            raise UsageError("--check and --out exclude each other: --check never writes")
        fmt = render_matrix.check_format(check, fmt)
        committed = committed_matrix(check)
    elif out is not None and fmt is None:
        # as --check reads it: FILE's suffix picks the format (docs/matrix.md -> markdown)
        fmt = render_matrix.FORMAT_BY_SUFFIX.get(Path(out).suffix.lower())
    fmt = fmt or "table"
    if fmt not in render_matrix.FORMATS:
        raise UsageError(f"--format {fmt!r}: one of {', '.join(render_matrix.FORMATS)}")
    with alive("Building the matrix: reading Vault and GitHub…"):
        grid, scanned = matrix_of(policy_path(policy), environment or (), repository, workflows)
    if check is not None:
        _check_matrix(check, committed, render_matrix.render_matrix(grid, fmt, scanned), fmt)
    elif out:
        write_atomic(out, render_matrix.render_matrix(grid, fmt, scanned), "matrix")
        render.console().print(f"Wrote the matrix ({fmt}) to {out}")
    elif fmt == "table":
        render.console().print(render_matrix.matrix_renderable(grid, scanned))
    else:
        sys.stdout.write(render_matrix.render_matrix(grid, fmt, scanned))


def _check_matrix(path: str, committed: str, current: str, fmt: str) -> None:
    """`terraform fmt -check`: say whether FILE is current; exit 1 with a short diff if not."""
    diff = render_matrix.matrix_diff(committed, current, path)
    if not diff:
        render.console().print(f"{path} matches the matrix now.", markup=False)
        return
    for line in diff:
        sys.stdout.write(line + "\n")
    sys.stderr.write(
        f"error: {path} no longer matches the matrix; regenerate it with"
        f" envmatrix matrix --format {fmt} --out {path}\n"
    )
    raise typer.Exit(ExitCode.FAILURE)


flags_app = typer.Typer(help="Feature flags gated on secrets: readiness and checks.")


@flags_app.callback(invoke_without_command=True)
def flags(
    ctx: typer.Context,
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    json_output: JsonOption = False,
    no_probe: NoProbeOption = False,
    allow_pull_request: AllowPullRequestOption = False,
) -> None:
    """Every flag x environment: ready or not, what blocks it and whose it is."""
    if ctx.invoked_subcommand is not None:
        return
    from envmatrix.views.flags import readiness_for_policy

    _say_if_withheld(not no_probe, allow_pull_request)
    with alive("Reading Vault and GitHub…"):
        readiness = readiness_for_policy(
            policy_path(policy), environment or (), not no_probe, allow_pull_request
        )
    if json_output:
        render.print_json(render_matrix.flags_json(readiness))
    else:
        render.console().print(render_matrix.flags_table(readiness))


@flags_app.command("check")
def flags_check(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The flag, e.g. FEATURE_AI_ESCALATIONS.")
    ],
    environment: OneEnvironmentOption,
    repository: RepositoryOption = None,
    policy: PolicyOption = None,
    json_output: JsonOption = False,
    no_probe: NoProbeOption = False,
    allow_pull_request: AllowPullRequestOption = False,
) -> None:
    """Exit 0 when the flag is ready in the environment, 1 (naming blockers and owners) if not."""
    from envmatrix.views.flags import readiness_for_policy, select

    path = policy_path(policy)
    repository = actions.default_repository(load_policy(path), repository, os.environ)
    _say_if_withheld(not no_probe, allow_pull_request)
    with alive("Checking the flag: reading Vault and GitHub…"):
        readiness = readiness_for_policy(path, [environment], not no_probe, allow_pull_request)
    logical = readiness[0].logical_environment if readiness else environment
    rows = select(readiness, name, logical, repository)
    if actions.active(os.environ):
        actions.emit(actions.publish_flags_check(rows, os.environ), json_output)
    if json_output:
        render.print_json(render_matrix.flags_json(rows))
    else:
        for line in render_matrix.flag_check_lines(rows):
            render.console().print(line, markup=False)
    if not all(r.ready for r in rows):
        raise typer.Exit(ExitCode.FAILURE)


def verify(
    environment: OneEnvironmentOption,
    repository: RepositoryOption = None,
    source: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--source",
            metavar="SOURCE",
            help="environ|github|vault (default: environ in GitHub Actions, else github).",
        ),
    ] = None,
    policy: PolicyOption = None,
    json_output: JsonOption = False,
    fingerprint: Annotated[
        bool,
        typer.Option(
            "--fingerprint",
            help="With --source environ: also check each value is the version envmatrix synced"
            " (Vault transit HMACs; needs vault.transit and a Vault login).",
        ),
    ] = False,
) -> None:
    """CI gate: fail (exit 1) when a secret the policy requires here is missing or empty."""
    from envmatrix.views.verify import run_verify

    loaded = load_policy(policy_path(policy))
    repository = actions.default_repository(loaded, repository, os.environ)
    report = run_verify(loaded, environment, repository, source, os.environ, fingerprint)
    for note in report.warnings:
        warn(note)
    if actions.active(os.environ):
        actions.emit(actions.publish_verify(report, os.environ), json_output)
    if json_output:
        render.print_json(report.to_json())
    else:
        for line in render_matrix.verify_lines(report):
            render.console().print(line, markup=False)
    if not report.ok:
        raise typer.Exit(ExitCode.FAILURE)


def scan(
    workflows: Annotated[
        str, typer.Option("--workflows", metavar="DIR", help="The workflows folder.")
    ] = ".github/workflows",
    repository: RepositoryOption = None,
    policy: PolicyOption = None,
    json_output: JsonOption = False,
) -> None:
    """Secrets workflows reference but the policy does not declare (exit 1), and unused ones."""
    from envmatrix.views.scan import scan_workflows

    report = scan_workflows(load_policy(policy_path(policy)), workflows, repository)
    if actions.active(os.environ):
        actions.emit(actions.publish_scan(report, workflows, os.environ), json_output)
    if json_output:
        render.print_json(report.to_json())
    else:
        for line in render_matrix.scan_lines(report):
            render.console().print(line, markup=False)
    if report.undeclared:
        raise typer.Exit(ExitCode.FAILURE)


probe_app = typer.Typer(help="Check that credentials really work.")


@probe_app.callback(invoke_without_command=True)
def probe_all(
    ctx: typer.Context,
    environment: EnvironmentOption = None,
    policy: PolicyOption = None,
    json_output: JsonOption = False,
    allow_pull_request: AllowPullRequestOption = False,
    notify: NotifyOption = False,
) -> None:
    """Every probe the policy declares (probe: on secrets), per environment: exit 1 if one fails."""
    if ctx.invoked_subcommand is not None:
        return
    from envmatrix.cli.options import warn
    from envmatrix.views.notify import probe_notices
    from envmatrix.workflow import probe_declared, send_notifications

    loaded = load_policy(policy_path(policy))
    report = probe_declared(loaded, environment or (), allow_pull_request)
    if report.skipped:
        warn(report.skipped)
    else:
        send_notifications(loaded, probe_notices(report.results), notify, warn, "probe")
    if actions.active(os.environ):
        actions.emit(actions.publish_probe(report, os.environ), json_output)
    if json_output:
        render.print_json(report.to_json())
    else:
        for line in render_matrix.probe_lines(report):
            render.console().print(line, markup=False)
    if not report.ok:
        raise typer.Exit(ExitCode.FAILURE)


@probe_app.command("supabase")
def probe_supabase(
    environment: OneEnvironmentOption,
    policy: PolicyOption = None,
    json_output: JsonOption = False,
    allow_pull_request: AllowPullRequestOption = False,
) -> None:
    """SUPABASE_URL + SUPABASE_SERVICE_KEY from Vault: does an admin call succeed?"""
    from envmatrix.cli.options import warn
    from envmatrix.workflow import probe, probes_withheld

    withheld = probes_withheld(allow_pull_request, os.environ)
    if withheld is not None:
        warn(withheld)
        return
    logical, result = probe(load_policy(policy_path(policy)), environment, "supabase")
    if json_output:
        render.print_json(result.to_json())
    else:
        verdict = "ok" if result.ok else "failed"
        render.console().print(
            f"probe supabase in {logical}: {verdict}: {result.detail}", markup=False
        )
    if not result.ok:
        raise typer.Exit(ExitCode.FAILURE)


def register(app: typer.Typer) -> None:
    """Add the read-only views to `app`."""
    app.command()(matrix)
    app.add_typer(flags_app, name="flags")
    app.command()(verify)
    app.command()(scan)
    app.add_typer(probe_app, name="probe")
