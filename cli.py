"""The envmatrix command line: parse, call one function, render, pick the exit code.

One handler (`main`) turns every EnvmatrixError into a one-line message and its exit code, and
any other exception into a one-line internal error naming only its type (exception text from
libraries could carry data we do not control). Typer's local-variable tracebacks are off.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import click
import typer

from envmatrix import render
from envmatrix.errors import EnvmatrixError, ExitCode, UsageError
from envmatrix.policy import load_policy

app = typer.Typer(
    name="envmatrix",
    help="Sync secrets from Vault into GitHub Actions environments; rotate them; gate flags.",
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    no_args_is_help=True,
    add_completion=False,
)

PolicyOption = Annotated[
    Optional[str],  # noqa: UP045 - typer reads the annotation at runtime
    typer.Option("--policy", "-p", help="Policy file (default: $ENVMATRIX_POLICY or envmatrix.yaml)."),
]
EnvironmentOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--environment", "-e", help="Limit to this environment (repeatable)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


def policy_path(option: str | None) -> str:
    """--policy, else $ENVMATRIX_POLICY, else envmatrix.yaml."""
    return option or os.environ.get("ENVMATRIX_POLICY") or "envmatrix.yaml"


@app.command()
def validate(policy: PolicyOption = None) -> None:
    """Check a policy file without contacting Vault or GitHub."""
    path = policy_path(policy)
    loaded = load_policy(path)
    render.console().print(
        f"{path}: valid — {len(loaded.secrets)} secrets, {len(loaded.environments)} environments,"
        f" {len(loaded.flags)} flags, {len(loaded.owners)} owners"
    )


@app.command()
def plan(
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    json_output: JsonOption = False,
    out: Annotated[Optional[str], typer.Option("--out", help="Save the plan for apply.")] = None,  # noqa: UP045
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes to make.")
    ] = False,
) -> None:
    """Show what apply would change, never a value."""
    from envmatrix.sync import connect, make_plan, write_plan_file

    path = policy_path(policy)
    loaded = load_policy(path)
    run = make_plan(path, connect(loaded), environment or (), loaded)
    if out:
        write_plan_file(run, out)
    if json_output:
        render.print_json(render.plan_json(run.plan))
    else:
        render.render_plan(run.plan, render.console())
        if out:
            render.console().print(f"Saved the plan to {out}; apply it with: envmatrix apply {out}")
    if detailed_exitcode and run.plan.has_writes:
        raise typer.Exit(ExitCode.CHANGES)


@app.command()
def apply(
    plan_file: Annotated[
        Optional[str], typer.Argument(help="A plan saved with plan --out.", show_default=False)  # noqa: UP045
    ] = None,
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Make GitHub match the policy (Vault is the source of truth)."""
    from envmatrix.sync import apply_run, apply_saved, connect, is_plan_file, make_plan

    if plan_file and not is_plan_file(plan_file):
        raise UsageError(f"{plan_file} is not a saved plan; pass a policy with --policy")
    if plan_file:
        _confirm(yes, None)
        loaded = load_policy(_saved_policy_path(plan_file))
        _, report = apply_saved(plan_file, connect(loaded), _audit_sink(loaded))
    else:
        path = policy_path(policy)
        loaded = load_policy(path)
        connections = connect(loaded)
        run = make_plan(path, connections, environment or (), loaded)
        if not run.plan.has_writes:
            _no_changes(run.plan, json_output)
            return
        _confirm(yes, run.plan)
        report = apply_run(run, connections, _audit_sink(loaded))
    _render_report(report, json_output)


def _saved_policy_path(plan_file: str) -> str:
    from envmatrix.sync import read_plan_file

    return str(read_plan_file(plan_file)["policy"])


def _audit_sink(policy: object) -> object:
    from envmatrix.audit import NullSink

    return NullSink()


def _no_changes(plan: object, json_output: bool) -> None:
    from envmatrix.apply import ApplyReport
    from envmatrix.plan import Action, Plan

    assert isinstance(plan, Plan)
    report = ApplyReport((), tuple(c for c in plan.changes if c.action is Action.BLOCKED))
    if json_output:
        render.print_json(render.apply_json(report))
    else:
        render.render_plan(plan, render.console())
        render.console().print("Nothing to apply.")


def _render_report(report: object, json_output: bool) -> None:
    from envmatrix.apply import ApplyReport

    assert isinstance(report, ApplyReport)
    if json_output:
        render.print_json(render.apply_json(report))
    else:
        render.render_apply(report, render.console())
    if not report.ok:
        raise typer.Exit(ExitCode.FAILURE)


def _confirm(yes: bool, plan: object) -> None:
    """Terraform's rule: ask on a terminal; without one, refuse unless --yes."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("apply needs --yes when not run from a terminal")
    from envmatrix.plan import Plan

    if isinstance(plan, Plan):
        render.render_plan(plan, render.console())
    answer = typer.prompt("Apply these changes? Only 'yes' will be accepted", default="")
    if answer.strip() != "yes":
        raise typer.Exit(ExitCode.FAILURE)


@app.command()
def demo() -> None:
    """Run plan -> apply -> plan on a local OpenBao and GitHub sandbox. Nothing to configure."""
    from envmatrix.demo import run_demo

    raise typer.Exit(run_demo(render.console()))


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map every failure to one line and an exit code."""
    try:
        code = app(args=argv, prog_name="envmatrix", standalone_mode=False)
    except click.exceptions.UsageError as exc:
        return _fail(exc.format_message(), ExitCode.INVALID)
    except click.exceptions.Abort:
        return _fail("aborted", ExitCode.FAILURE)
    except EnvmatrixError as exc:
        return _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", ExitCode.FAILURE)
    except Exception as exc:  # one line, type only: library messages may carry data
        if os.environ.get("ENVMATRIX_DEBUG"):
            _print_frames(exc)
        return _fail(f"internal error ({type(exc).__name__}); please report it", ExitCode.FAILURE)
    return int(code or 0)


def _fail(message: str, code: ExitCode) -> int:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    sys.stderr.write(f"error: {first_line}\n")
    return int(code)


def _print_frames(exc: BaseException) -> None:
    """Where it failed (file:line function), without messages or locals."""
    for frame in traceback.extract_tb(exc.__traceback__):
        sys.stderr.write(f"  {Path(frame.filename).name}:{frame.lineno} in {frame.name}\n")


if __name__ == "__main__":
    sys.exit(main())
