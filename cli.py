"""The envmatrix command line: parse, call one function, render, pick the exit code.

One handler (`main`) turns every EnvmatrixError into a one-line message and its exit code, and
any other exception into a one-line internal error naming only its type (exception text from
libraries could carry data we do not control). Typer's local-variable tracebacks are off.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from envmatrix import interrupt, render
from envmatrix.errors import EnvmatrixError, ExitCode, UsageError
from envmatrix.policy import Policy, load_policy

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from envmatrix.apply import ApplyReport
    from envmatrix.audit_store import GuardedSink
    from envmatrix.plan import Plan
    from envmatrix.secret import SecretValue
    from envmatrix.sync import Connections
    from rotation.engine import RotationOutcome, StepResult
    from rotation.groups import RotationGroup

app = typer.Typer(
    name="envmatrix",
    help="Sync secrets from Vault into GitHub Actions environments; rotate them; gate flags.",
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from envmatrix import __version__

        render.console().print(f"envmatrix {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Sync secrets from Vault into GitHub Actions environments; rotate them; gate flags."""


PolicyOption = Annotated[
    Optional[str],  # noqa: UP045 - typer reads the annotation at runtime
    typer.Option(
        "--policy", "-p", help="Policy file (default $ENVMATRIX_POLICY, else envmatrix.yaml)."
    ),
]
EnvironmentOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--environment", "-e", help="Limit to this environment (repeatable)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
LockTimeoutOption = Annotated[
    str,
    typer.Option("--lock-timeout", help="Wait this long for a held lock (0s: fail at once)."),
]


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
    with connect(loaded) as connections:
        run = make_plan(path, connections, environment or (), loaded)
    if out:
        write_plan_file(run, out)
    if json_output:
        render.print_json(render.plan_json(run.plan, run.rotations))
    else:
        render.render_plan(run.plan, render.console())
        render.render_overdue(run.rotations, render.console())
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
    lock_timeout: LockTimeoutOption = "0s",
) -> None:
    """Make GitHub match the policy (Vault is the source of truth)."""
    from envmatrix.sync import (
        apply_run,
        apply_saved,
        connect,
        is_plan_file,
        make_plan,
        saved_plan_policy,
    )

    if plan_file and not is_plan_file(plan_file):
        raise UsageError(f"{plan_file} is not a saved plan; pass a policy with --policy")
    timeout = _seconds(lock_timeout)
    if plan_file:
        _confirm(yes, None)
        path, loaded = saved_plan_policy(plan_file, policy, environment or ())
    else:
        path = policy_path(policy)
        loaded = load_policy(path)
    # the lock covers planning too: a runner that waited plans after the previous one's writes
    with (
        connect(loaded) as connections,
        _audit_sink(loaded, path) as sink,
        _apply_lock(connections, sink, timeout) as check,
    ):
        if plan_file:
            report = apply_saved(plan_file, connections, sink, path, loaded, check)
        else:
            run = make_plan(path, connections, environment or (), loaded)
            if not run.plan.has_writes:
                _no_changes(run.plan, json_output)
                return
            _confirm(yes, run.plan)
            report = apply_run(run, connections, sink, check)
    _render_report(report, json_output)


@contextmanager
def _apply_lock(
    connections: Connections, sink: GuardedSink, timeout: float
) -> Iterator[Callable[[], None]]:
    """Hold (and renew) the mount's apply lock, giving the check to run before each write; a
    lock taken over or not released is a warning on stderr."""
    from envmatrix.guard import run_checks
    from envmatrix.sync import vault_lock

    lock = vault_lock(connections, sink, timeout)
    try:
        with lock:
            yield run_checks(lock)
    finally:
        for note in (lock.took_over, lock.release_error):
            if note:
                _warn(note)


def _audit_sink(policy: Policy, path: str) -> GuardedSink:
    """The policy's audit store; an event it fails to keep becomes a warning on stderr."""
    from envmatrix.audit_store import GuardedSink, audit_sink_for

    return GuardedSink(audit_sink_for(policy, path), _warn)


def _warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")


def _seconds(duration: str) -> float:
    """`0`, `0s`, `30s`, `5m`, `1h` -> seconds (Terraform's -lock-timeout takes the same)."""
    from envmatrix.policy import parse_duration

    if duration.strip() in ("0", "0s"):
        return 0.0
    try:
        return parse_duration(duration.strip()).total_seconds()
    except ValueError:
        raise UsageError(
            f"--lock-timeout {duration!r} is not a duration like 0s, 30s, 5m"
        ) from None


def _no_changes(plan: Plan, json_output: bool) -> None:
    """Nothing to write: the plan (blocked cells included) and a line saying so, or an empty
    apply report in JSON."""
    from envmatrix.apply import ApplyReport

    report = ApplyReport((), plan.blocked)
    if json_output:
        render.print_json(render.apply_json(report))
    else:
        render.render_plan(plan, render.console())
        render.console().print("Nothing to apply.")


def _render_report(report: ApplyReport, json_output: bool) -> None:
    if json_output:
        render.print_json(render.apply_json(report))
    else:
        render.render_apply(report, render.console())
    if report.stopped is not None:  # what landed is reported above; the one line says why
        raise _stop_error(report.stopped, report.summary(), report.stop_code)
    if not report.ok:
        raise typer.Exit(ExitCode.FAILURE)


def _stop_error(reason: str, counts: dict[str, int], code: int | None) -> EnvmatrixError:
    """`Interrupted` (130/143) or `LockLost` (1) for a run that stopped part-way."""
    from envmatrix.errors import Interrupted, LockLost

    line = (
        f"{reason}: {counts['written']} written, {counts['failed']} failed,"
        f" {counts['not_attempted']} not attempted; run plan to see what is left"
    )
    if code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        return Interrupted(line, ExitCode(code))
    return LockLost(line)


def _confirm(yes: bool, plan: Plan | None) -> None:
    """Show the plan (a saved plan was shown when it was made) and ask."""
    if _must_ask(yes, "apply"):
        if plan is not None:
            render.render_plan(plan, render.console())
        _ask_yes("Apply these changes")


def _must_ask(yes: bool, command: str) -> bool:
    """Terraform's rule: ask on a terminal; without one, refuse unless --yes."""
    if yes:
        return False
    if not sys.stdin.isatty():
        raise UsageError(f"{command} needs --yes when not run from a terminal")
    return True


def _ask_yes(question: str) -> None:
    """Go on only when the answer is exactly 'yes'; anything else ends the run (exit 1)."""
    if typer.prompt(f"{question}? Only 'yes' will be accepted", default="").strip() != "yes":
        raise typer.Exit(ExitCode.FAILURE)


@app.command()
def demo() -> None:
    """Run plan -> apply -> plan on a local OpenBao and GitHub sandbox. Nothing to configure."""
    from envmatrix.demo import run_demo

    raise typer.Exit(run_demo(render.console()))


@app.command("force-unlock")
def force_unlock(
    lock_id: Annotated[str, typer.Argument(help="The lock ID a locked run printed.")],
    policy: PolicyOption = None,
    lock: Annotated[str, typer.Option("--lock", help="Lock name (default: apply).")] = "apply",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Release a lock left by a run that died; only when LOCK_ID is the lock held now."""
    from envmatrix.sync import connect, vault_lock

    path = policy_path(policy)
    loaded = load_policy(path)
    with connect(loaded) as connections, _audit_sink(loaded, path) as sink:
        held = vault_lock(connections, sink, name=lock, operation="force-unlock")
        current = held.read()
        if current is not None and current.id == lock_id:
            _confirm_unlock(yes, current.describe())
        freed = held.force_unlock(lock_id)
    render.console().print(f"Lock {freed.id} is released (it was {freed.describe()}).")


def _confirm_unlock(yes: bool, what: str) -> None:
    if _must_ask(yes, "force-unlock"):
        render.console().print(
            f"The lock is {what}. Unlocking it while that run is alive lets two runs write at once."
        )
        _ask_yes("Force-unlock")


@app.command("audit")
def audit_trail(
    policy: PolicyOption = None,
    since: Annotated[
        Optional[str], typer.Option("--since", help="24h, 7d, or an ISO time (UTC by default).")  # noqa: UP045
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """List the audit trail: every write envmatrix made (never a value)."""
    from envmatrix.audit_store import event_json

    path = policy_path(policy)
    with _audit_sink(load_policy(path), path) as store:
        events = store.query(_since(since))
    if json_output:
        render.print_json({"events": [event_json(e) for e in events]})
    else:
        render.render_audit(events, render.console())


def _since(text: str | None) -> datetime | None:
    """`24h`/`7d` ago, or an ISO time (naive = UTC)."""
    from envmatrix.policy import parse_duration

    if text is None:
        return None
    try:
        return datetime.now(UTC) - parse_duration(text.strip())
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since {text!r} is not a duration (24h, 7d) or an ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- rotation schedules (rotation/schedule.py, rotation/calendar.py, rotation/render.py) --------

if TYPE_CHECKING:
    from rotation.schedule import RotationStatus

rotation_app = typer.Typer(
    help="Rotation schedules from Vault metadata: status, what is due, a calendar.",
    no_args_is_help=True,
)
AtOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--at",
        help="Evaluate at this time instead of now: 2027-01-01 or 2027-01-01T09:00+01:00"
        " (UTC unless an offset is given).",
    ),
]


@rotation_app.command("status")
def rotation_status(
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    json_output: JsonOption = False,
    at: AtOption = None,
) -> None:
    """Last rotation and next due time of every secret with rotation: (never a value)."""
    from rotation import render as rotation_render

    _, statuses, moment = _rotation_statuses(policy, environment, at)
    if json_output:
        render.print_json(rotation_render.statuses_json(statuses, moment))
    else:
        rotation_render.render_statuses(statuses, moment, render.console())


@rotation_app.command("due")
def rotation_due(
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    json_output: JsonOption = False,
    at: AtOption = None,
) -> None:
    """List overdue rotations; exit 1 when any is overdue (for a scheduled CI job)."""
    from envmatrix.errors import CheckFailed
    from rotation import render as rotation_render
    from rotation.schedule import overdue_statuses

    _, statuses, moment = _rotation_statuses(policy, environment, at)
    overdue = overdue_statuses(statuses)
    if json_output:
        render.print_json(rotation_render.statuses_json(overdue, moment))
    else:
        rotation_render.render_due(overdue, moment, render.console())
    if overdue:
        raise CheckFailed(rotation_render.due_message(overdue))


@rotation_app.command("calendar")
def rotation_calendar(
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    days: Annotated[int, typer.Option("--days", min=1, max=3660, help="How many days ahead.")] = 90,
    owner: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--owner", help="Only this owner's rotations (repeatable)."),
    ] = None,
    ics: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--ics", help="Write an iCalendar (.ics) file here."),
    ] = None,
    json_output: JsonOption = False,
    at: AtOption = None,
) -> None:
    """Upcoming rotations in the next --days days, overdue ones first; --ics writes a calendar."""
    from datetime import timedelta

    from rotation import calendar
    from rotation import render as rotation_render

    loaded, statuses, start = _rotation_statuses(policy, environment, at)
    end = start + timedelta(days=days)
    occurrences = calendar.calendar_rotations(loaded, statuses, owner or (), start, end)
    if ics:
        calendar.write_calendar(ics, calendar.rotation_calendar(occurrences))
    if json_output:
        render.print_json(rotation_render.calendar_json(occurrences, start, end))
        return
    rotation_render.render_calendar(occurrences, start, end, render.console())
    if ics:
        render.console().print(f"Wrote {len(occurrences)} events to {ics}")


def _rotation_statuses(
    policy: str | None, environment: list[str] | None, at: str | None
) -> tuple[Policy, tuple[RotationStatus, ...], datetime]:
    """Statuses from Vault metadata only: no GitHub adapter, so no GitHub token is needed."""
    from envmatrix.adapters.vault import VaultAdapter
    from rotation.schedule import evaluation_time, load_statuses

    moment = evaluation_time(at)
    loaded = load_policy(policy_path(policy))
    vault = VaultAdapter.from_environment(loaded.vault.mount)
    try:
        return loaded, load_statuses(loaded, environment or (), vault, moment), moment
    finally:
        vault.close()


app.add_typer(rotation_app, name="rotation")


# -- issue 3: matrix, flags, verify, scan, probe ----------------------------------------------

RepositoryOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--repository", "-r", help="Only this repository (owner/name)."),
]
OneEnvironmentOption = Annotated[
    str, typer.Option("--environment", "-e", help="The environment (logical or GitHub name).")
]


@app.command()
def matrix(
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    repository: RepositoryOption = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table|markdown|json|html")] = "table",
    out: Annotated[Optional[str], typer.Option("--out", help="Write to this file.")] = None,  # noqa: UP045
    workflows: Annotated[
        Optional[str], typer.Option("--workflows", help="Also scan this workflows folder.")  # noqa: UP045
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Which secret is where: secrets x environments per repository, with a status per cell."""
    from envmatrix import render_matrix
    from envmatrix.matrix import matrix_for_run
    from envmatrix.scan import scan_workflows
    from envmatrix.sync import connect, make_plan

    fmt = "json" if json_output else fmt
    if fmt not in render_matrix.FORMATS:
        raise UsageError(f"--format {fmt!r}: one of {', '.join(render_matrix.FORMATS)}")
    path = policy_path(policy)
    loaded = load_policy(path)
    scanned = scan_workflows(loaded, workflows, repository) if workflows else None
    with connect(loaded) as connections:
        grid = matrix_for_run(make_plan(path, connections, environment or (), loaded), repository)
    if out:
        Path(out).write_text(render_matrix.render_matrix(grid, fmt, scanned), encoding="utf-8")
        render.console().print(f"Wrote the matrix ({fmt}) to {out}")
    elif fmt == "table":
        render.console().print(render_matrix.matrix_renderable(grid, scanned))
    else:
        sys.stdout.write(render_matrix.render_matrix(grid, fmt, scanned))


flags_app = typer.Typer(help="Feature flags gated on secrets: readiness and checks.")
app.add_typer(flags_app, name="flags")
NoProbeOption = Annotated[bool, typer.Option("--no-probe", help="Skip the flags' probes.")]


@flags_app.callback(invoke_without_command=True)
def flags(
    ctx: typer.Context,
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    json_output: JsonOption = False,
    no_probe: NoProbeOption = False,
) -> None:
    """Every flag x environment: ready or not, what blocks it and whose it is."""
    if ctx.invoked_subcommand is not None:
        return
    from envmatrix import render_matrix
    from envmatrix.flags import readiness_for_policy

    readiness = readiness_for_policy(policy_path(policy), environment or (), not no_probe)
    if json_output:
        render.print_json(render_matrix.flags_json(readiness))
    else:
        render.console().print(render_matrix.flags_table(readiness))


@flags_app.command("check")
def flags_check(
    name: Annotated[str, typer.Argument(help="The flag, e.g. FEATURE_AI_ESCALATIONS.")],
    environment: OneEnvironmentOption,
    repository: RepositoryOption = None,
    policy: PolicyOption = None,
    json_output: JsonOption = False,
    no_probe: NoProbeOption = False,
) -> None:
    """Exit 0 when the flag is ready in the environment, 1 (naming blockers and owners) if not."""
    from envmatrix import render_matrix
    from envmatrix.flags import readiness_for_policy, select

    readiness = readiness_for_policy(policy_path(policy), [environment], not no_probe)
    logical = readiness[0].logical_environment if readiness else environment
    rows = select(readiness, name, logical, repository)
    if json_output:
        render.print_json(render_matrix.flags_json(rows))
    else:
        for line in render_matrix.flag_check_lines(rows):
            render.console().print(line, markup=False)
    if not all(r.ready for r in rows):
        raise typer.Exit(ExitCode.FAILURE)


@app.command()
def verify(
    environment: OneEnvironmentOption,
    repository: RepositoryOption = None,
    source: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--source",
            help="environ|github|vault (default: environ in GitHub Actions, else github).",
        ),
    ] = None,
    policy: PolicyOption = None,
    json_output: JsonOption = False,
) -> None:
    """CI gate: fail (exit 1) when a secret the policy requires here is missing or empty."""
    from envmatrix import render_matrix
    from envmatrix.verify import run_verify

    loaded = load_policy(policy_path(policy))
    report = run_verify(loaded, environment, repository, source, os.environ)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        stream = sys.stderr if json_output else sys.stdout  # keep --json stdout parseable
        for line in render_matrix.publish_to_actions(report, os.environ):
            stream.write(line + "\n")
    if json_output:
        render.print_json(report.to_json())
    else:
        for line in render_matrix.verify_lines(report):
            render.console().print(line, markup=False)
    if not report.ok:
        raise typer.Exit(ExitCode.FAILURE)


@app.command()
def scan(
    workflows: Annotated[
        str, typer.Option("--workflows", help="The workflows folder.")
    ] = ".github/workflows",
    repository: RepositoryOption = None,
    policy: PolicyOption = None,
    json_output: JsonOption = False,
) -> None:
    """Secrets workflows reference but the policy does not declare (exit 1), and unused ones."""
    from envmatrix import render_matrix
    from envmatrix.scan import scan_workflows

    report = scan_workflows(load_policy(policy_path(policy)), workflows, repository)
    if json_output:
        render.print_json(report.to_json())
    else:
        for line in render_matrix.scan_lines(report):
            render.console().print(line, markup=False)
    if report.undeclared:
        raise typer.Exit(ExitCode.FAILURE)


probe_app = typer.Typer(help="Check that credentials really work.", no_args_is_help=True)
app.add_typer(probe_app, name="probe")


@probe_app.command("supabase")
def probe_supabase(
    environment: OneEnvironmentOption,
    policy: PolicyOption = None,
    json_output: JsonOption = False,
) -> None:
    """SUPABASE_URL + SUPABASE_SERVICE_KEY from Vault: does an admin call succeed?"""
    from envmatrix.desired import resolve_environments
    from envmatrix.probe import run_probe, vault_from_environment

    loaded = load_policy(policy_path(policy))
    (logical,) = resolve_environments(loaded, [environment])
    with closing(vault_from_environment(loaded, os.environ)) as vault:
        result = run_probe("supabase", loaded, vault, logical)
    if json_output:
        render.print_json(result.to_json())
    else:
        verdict = "ok" if result.ok else "failed"
        render.console().print(
            f"probe supabase in {logical}: {verdict}: {result.detail}", markup=False
        )
    if not result.ok:
        raise typer.Exit(ExitCode.FAILURE)


@app.command()
def rotate(
    name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(help="A secret with rotation: (its path rotates).", show_default=False),
    ] = None,
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Finish an interrupted rotation.")] = (
        False
    ),
    due: Annotated[bool, typer.Option("--due", help="Revoke after grace; rotate all due.")] = False,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Within grace: restore the previous value.")
    ] = False,
    from_file: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--from-file", help="manual strategy: read the new value from this file."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Rotate a credential: create, stage, test, promote, sync; revoke the old one after grace."""
    from envmatrix.sync import connect
    from rotation.engine import RotationEngine
    from rotation.run import rotate_request, run_rotation, selected_groups
    from rotation.strategies import StrategySettings

    path = policy_path(policy)
    loaded = load_policy(path)
    request = rotate_request(
        loaded,
        name,
        environment or (),
        due=due,
        resume=resume,
        rollback=rollback,
        from_file=from_file,
    )
    groups = selected_groups(loaded, request)
    _confirm_rotation(yes, request.mode.value, [g.path for g in groups])
    connections = connect(loaded)
    settings = StrategySettings(
        Path(path).resolve().parent, None if due else _manual_value_source(from_file)
    )
    with _audit_sink(loaded, path) as sink, interrupt.writing():
        engine = RotationEngine(
            loaded,
            connections.vault,
            connections.github,
            settings=settings,
            audit=sink,
            on_step=None if json_output else _print_step,
        )
        outcomes = run_rotation(engine, request, groups)
    _render_rotation(outcomes, json_output)


def _confirm_rotation(yes: bool, mode: str, paths: list[str]) -> None:
    if _must_ask(yes, "rotate"):
        _ask_yes(f"{mode.capitalize()} {', '.join(paths) if paths else 'everything due'}")


def _manual_value_source(from_file: str | None) -> Callable[[str, str], SecretValue]:
    """Where a manual rotation's new value comes from: the file, stdin, or a hidden prompt."""
    from envmatrix.secret import SecretValue

    used: list[str] = []

    def source(name: str, key: str) -> SecretValue:
        if used and (from_file or not sys.stdin.isatty()):
            raise UsageError(f"{name}: one value per run from a file or stdin; use a terminal")
        used.append(name)
        if from_file:
            return SecretValue(_read_value_file(from_file))
        if not sys.stdin.isatty():
            return SecretValue(sys.stdin.read().removesuffix("\n").removesuffix("\r"))
        return SecretValue(
            typer.prompt(f"New value for {name}", hide_input=True, confirmation_prompt=True)
        )

    return source


def _read_value_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--from-file {path}: cannot read it ({type(exc).__name__})") from None


def _print_step(group: RotationGroup, step: StepResult) -> None:
    mark = "[green]✓[/]" if step.ok else "[red]✗[/]"
    render.console().print(f"{mark} ", end="")
    render.console().print(f"{group.path} {step.step}: {step.detail}", markup=False)


def _render_rotation(outcomes: list[RotationOutcome], json_output: bool) -> None:
    from rotation.run import summary

    counts = summary(outcomes)
    if json_output:
        render.print_json({"rotations": [o.to_json() for o in outcomes], "summary": counts})
    else:
        for outcome in outcomes:
            if outcome.ok:
                render.console().print(outcome.message, markup=False)
        line = ", ".join(f"{n} {k}" for k, n in counts.items())
        render.console().print(f"Rotation: {line}.")
    for outcome in outcomes:
        if not outcome.ok:
            sys.stderr.write(f"error: {outcome.message}\n")
    if interrupt.pending():  # stopped between steps or groups; each outcome says where
        from envmatrix.errors import Interrupted

        raise Interrupted(
            f"rotate interrupted after {len(outcomes)} rotation(s); the ones not"
            " started are untouched",
            interrupt.exit_code(),
        )
    if not all(o.ok for o in outcomes):
        raise typer.Exit(ExitCode.FAILURE)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map every failure to one line and an exit code."""
    if os.environ.get("ENVMATRIX_DEBUG"):
        # every library's debug log (PyGithub, hvac, urllib3, httpx) to stderr; none of them logs
        # a value: PyGithub masks the token and only ever sends ciphertext (tests/test_leaks.py)
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, force=True)
    try:
        with interrupt.handling():
            code = app(args=argv, prog_name="envmatrix", standalone_mode=False)
        if code == ExitCode.INTERRUPTED:  # typer's answer to a KeyboardInterrupt
            return _fail(interrupt.stopped_at_once_message(), interrupt.exit_code())
    except typer.Abort:
        return _fail("aborted", ExitCode.FAILURE)
    except typer.TyperException as exc:  # typer's (vendored click's) command-line errors
        message = exc.format_message()
        if not message:  # no command given: the help was printed, that says it all
            return int(ExitCode.INVALID)
        return _fail(message, ExitCode.INVALID)
    except EnvmatrixError as exc:
        return _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:  # outside typer's own handling (e.g. while rendering)
        return _fail(interrupt.stopped_at_once_message(), interrupt.exit_code())
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
