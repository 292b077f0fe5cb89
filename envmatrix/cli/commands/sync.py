"""validate, plan, apply, force-unlock, audit: the policy -> Vault -> GitHub loop."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from envmatrix.cli.options import (
    EnvironmentOption,
    JsonOption,
    NotifyOption,
    PolicyOption,
    RepositoriesOption,
    SecretsOption,
    ShardOption,
    YesOption,
    answered_yes,
    ask_yes,
    must_ask,
    parsed,
    policy_path,
    warn,
)
from envmatrix.errors import EnvmatrixError, ExitCode, Interrupted, LockLost
from envmatrix.policy import name_warning
from envmatrix.render import actions
from envmatrix.render import report as render
from envmatrix.render import validate as render_validate
from envmatrix.render.progress import LiveWrites, alive
from envmatrix.timefmt import parse_since, parse_timeout

if TYPE_CHECKING:
    from envmatrix.pipeline.plan import Plan
    from envmatrix.workflow import ApplyOutcome

LockTimeoutOption = Annotated[
    str,
    typer.Option(
        "--lock-timeout",
        metavar="DURATION",
        help="Wait this long for a held lock (0s: fail at once).",
    ),
]


def validate(
    policy: PolicyOption = None,
    files: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(
            metavar="FILE",
            help="More policy files to check (a pre-commit hook passes the changed ones).",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Check policy files without contacting Vault or GitHub; list every problem (exit 3)."""
    from envmatrix.policy import check_policy

    paths = [*([policy] if policy else []), *(files or [])] or [policy_path(None)]
    checks = [check_policy(path) for path in dict.fromkeys(paths)]
    if json_output:
        render.print_json(render_validate.validate_json(checks))
    else:
        render_validate.render_validate(checks, render.console())
    invalid = [c for c in checks if not c.valid]
    if invalid:
        raise render_validate.summary_error(invalid)


def plan(
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    json_output: JsonOption = False,
    out: Annotated[
        Optional[str], typer.Option("--out", metavar="PLANFILE", help="Save the plan for apply.")  # noqa: UP045
    ] = None,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes to make.")
    ] = False,
    repository: RepositoriesOption = None,
    secret: SecretsOption = None,
    notify: NotifyOption = False,
    shard: ShardOption = None,
) -> None:
    """Show what apply would change, never a value."""
    from envmatrix.views.notify import overdue_notices, plan_notices
    from envmatrix.workflow import plan_policy, send_notifications

    with alive("Planning: reading Vault and GitHub…"):
        run = plan_policy(
            policy_path(policy), environment or (), out, repository or (), secret or (), shard
        )
    notices = plan_notices(run.plan) + overdue_notices(run.rotations)
    send_notifications(run.policy, notices, notify, warn, "plan")
    if actions.active(os.environ):
        actions.emit(actions.publish_plan(run.plan, os.environ), json_output)
    if (note := name_warning(run.policy)) is not None:
        warn(note)
    if json_output:
        document = render.plan_json(
            run.plan, run.rotations, run.in_progress, run.requests, run.vault_requests
        )
        render.print_json(render.with_shard(document, run.shard))
    else:
        render.render_shard(run.shard, render.console())
        render.render_plan(run.plan, render.console())
        render.render_overdue(run.rotations, render.console())
        render.render_in_progress(run.in_progress, render.console())
        if out:
            render.console().print(f"Saved the plan to {out}; apply it with: envmatrix apply {out}")
    if detailed_exitcode and run.plan.has_writes:
        raise typer.Exit(ExitCode.CHANGES)


def apply(
    plan_file: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(
            metavar="PLANFILE", help="A plan saved with plan --out.", show_default=False
        ),
    ] = None,
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    yes: YesOption = False,
    json_output: JsonOption = False,
    lock_timeout: LockTimeoutOption = "0s",
    repository: RepositoriesOption = None,
    secret: SecretsOption = None,
    notify: NotifyOption = False,
    allow_pull_request: Annotated[
        bool,
        typer.Option(
            "--allow-pull-request",
            help="Run the flags' probes even in a pull-request-triggered run.",
        ),
    ] = False,
    shard: ShardOption = None,
) -> None:
    """Make GitHub match the policy (Vault is the source of truth); a saved PLANFILE is applied
    without asking (reviewing it was the approval)."""
    from envmatrix.workflow import apply_policy

    timeout = parsed("--lock-timeout", lock_timeout, parse_timeout, "a duration like 0s, 30s, 5m")
    given = policy if plan_file else policy_path(policy)
    with LiveWrites.for_command(json_output) as live:

        def confirm(fresh: Plan | None) -> None:
            live.pause()
            if fresh is not None and must_ask(yes, "apply"):
                render.render_plan(fresh, render.console())
                if not answered_yes("Apply these changes"):
                    render.console().print("Apply cancelled.")
                    raise typer.Exit(ExitCode.FAILURE)

        live.busy("Locking and planning: reading Vault and GitHub…")
        outcome = apply_policy(
            given or "",
            plan_file,
            environment or (),
            timeout,
            confirm,
            warn,
            repositories=repository or (),
            secrets=secret or (),
            progress=live,
            allow_pull_request=allow_pull_request,
            shard=shard,
        )
    _notify_apply(outcome, notify)
    if actions.active(os.environ):
        actions.emit(actions.publish_apply(outcome.report, os.environ), json_output)
    render.render_shard(None if json_output else outcome.shard, render.console())
    if outcome.unchanged is not None and not json_output:
        render.render_plan(outcome.unchanged, render.console())
        render.console().print("Nothing to apply.")
        return
    if json_output:
        document = render.apply_json(outcome.report, outcome.requests, outcome.vault_requests)
        render.print_json(render.with_shard(document, outcome.shard))
    else:
        render.render_apply(outcome.report, render.console(), results_shown=live.prints_lines)
    report = outcome.report
    if report.stopped is not None:  # what landed is reported above; the one line says why
        raise _stop_error(report.stopped, report.summary(), report.stop_code)
    if not report.ok:
        raise typer.Exit(ExitCode.FAILURE)


def _notify_apply(outcome: ApplyOutcome, notify: bool) -> None:
    """Say when the flags' probes were withheld; notify owners of blocked secrets, outside
    changes and failed probes."""
    from envmatrix.views.notify import plan_notices, probe_notices
    from envmatrix.workflow import send_notifications

    probes = outcome.probes
    if probes is not None and probes.withheld:
        warn(probes.withheld)
    if outcome.policy is not None:
        rows = [r.change for r in outcome.report.results] + list(outcome.report.blocked)
        notices = plan_notices(rows) + probe_notices(probes.failed if probes else ())
        send_notifications(outcome.policy, notices, notify, warn, "apply")


def _stop_error(reason: str, counts: dict[str, int], code: int | None) -> EnvmatrixError:
    """`Interrupted` (130/143) or `LockLost` (1) for a run that stopped part-way."""
    line = (
        f"{reason}: {counts['written']} written, {counts['failed']} failed,"
        f" {counts['not_attempted']} not attempted; run plan to see what is left"
    )
    if code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        return Interrupted(line, ExitCode(code))
    return LockLost(line)


def force_unlock(
    lock_id: Annotated[
        str, typer.Argument(metavar="LOCK_ID", help="The lock ID a locked run printed.")
    ],
    policy: PolicyOption = None,
    lock: Annotated[
        str, typer.Option("--lock", metavar="NAME", help="Lock name (default: apply).")
    ] = "apply",
    yes: YesOption = False,
) -> None:
    """Release a lock left by a run that died; only when LOCK_ID is the lock held now."""
    from envmatrix.workflow import force_unlock as release

    def confirm(holder: str) -> None:
        if must_ask(yes, "force-unlock"):
            render.console().print(
                f"The lock is {holder}. Unlocking it while that run is alive lets two runs write"
                " at once."
            )
            ask_yes("Force-unlock")

    freed = release(policy_path(policy), lock_id, lock, confirm, warn)
    render.console().print(f"Lock {freed.id} is released (it was {freed.describe()}).")


def audit_trail(
    policy: PolicyOption = None,
    since: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--since", metavar="WHEN", help="24h, 7d, or an ISO time (UTC by default)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """List the audit trail: every write envmatrix made (never a value)."""
    from envmatrix.workflow import audit_events

    moment = None
    if since is not None:
        now = datetime.now(UTC)
        moment = parsed(
            "--since",
            since,
            lambda text: parse_since(text, now),
            "a duration (24h, 7d) or an ISO time",
        )
    events = audit_events(policy_path(policy), moment, warn)
    if json_output:
        render.print_json(render.audit_json(events))
    else:
        render.render_audit(events, render.console())


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
    app.command()(validate)
    app.command()(plan)
    app.command()(apply)
    app.command("force-unlock")(force_unlock)
    app.command("audit")(audit_trail)
