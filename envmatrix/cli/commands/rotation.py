"""rotate, and rotation status/due/calendar: rotating credentials and their schedules."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from envmatrix import interrupt
from envmatrix.cli.options import (
    EnvironmentOption,
    JsonOption,
    NotifyOption,
    PolicyOption,
    YesOption,
    ask_yes,
    must_ask,
    policy_path,
    warn,
)
from envmatrix.errors import CheckFailed, ExitCode, Interrupted, UnsafeInput, UsageError
from envmatrix.policy import Policy, load_policy, name_warning
from envmatrix.render import actions
from envmatrix.render import report as render
from envmatrix.render.progress import LiveWrites
from envmatrix.rotation import render as rotation_render
from envmatrix.safeio import read_regular_file, read_stream
from envmatrix.secret import SecretValue

MAX_VALUE_BYTES = 1024 * 1024  # a secret value (GitHub takes 48 KB); more is not a value

if TYPE_CHECKING:
    from envmatrix.rotation.engine import RotationOutcome, StepResult
    from envmatrix.rotation.groups import RotationGroup
    from envmatrix.rotation.progress import RotationInProgress
    from envmatrix.rotation.schedule import RotationStatus

AtOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--at",
        metavar="TIME",
        help="Evaluate at this time instead of now: 2027-01-01 or 2027-01-01T09:00+01:00"
        " (UTC unless an offset is given).",
    ),
]


def rotate(
    name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(
            metavar="NAME", help="A secret with rotation: (its path rotates).", show_default=False
        ),
    ] = None,
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    yes: YesOption = False,
    resume: Annotated[bool, typer.Option("--resume", help="Finish an interrupted rotation.")] = (
        False
    ),
    due: Annotated[bool, typer.Option("--due", help="Revoke after grace; rotate all due.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Emergency: rotate now even within grace; retire the"
            " current and the previous credential.",
        ),
    ] = False,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Within grace: restore the previous value.")
    ] = False,
    from_file: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--from-file",
            metavar="FILE",
            help="manual strategy: read the new value from this file.",
        ),
    ] = None,
    json_output: JsonOption = False,
    notify: NotifyOption = False,
) -> None:
    """Rotate a credential: create, stage, test, promote, sync; revoke the old one after grace."""
    from envmatrix.rotation.run import rotate_request, selected_groups
    from envmatrix.rotation.strategies import StrategySettings
    from envmatrix.views.notify import failed_rotation_notices
    from envmatrix.workflow import rotate as run_rotate
    from envmatrix.workflow import send_notifications

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
        force=force,
    )
    groups = selected_groups(loaded, request)
    if must_ask(yes, "rotate"):
        paths = [g.path for g in groups]
        ask_yes(f"{request.mode.value.capitalize()} {', '.join(paths) or 'everything due'}")
    settings = StrategySettings(
        Path(path).resolve().parent,
        None if due else _manual_value_source(from_file),
        show=_show_guide,
    )
    with LiveWrites.for_command(json_output) as live:
        step = None if json_output else _print_step
        outcomes = run_rotate(path, loaded, request, groups, settings, step, warn, live)
    send_notifications(loaded, failed_rotation_notices(loaded, outcomes), notify, warn, "rotate")
    _render_rotation(outcomes, json_output)


def _show_guide(line: str) -> None:
    """A manual rotation's steps and links for the owner: on stderr (stdout may be --json)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _manual_value_source(from_file: str | None) -> Callable[[str, str], SecretValue]:
    """Where a manual rotation's new value comes from: the file, stdin, or a hidden prompt."""
    used: list[str] = []

    def source(name: str, key: str) -> SecretValue:
        if used and (from_file or not sys.stdin.isatty()):
            raise UsageError(f"{name}: one value per run from a file or stdin; use a terminal")
        used.append(name)
        if from_file:
            return SecretValue(_read_value_file(from_file))
        if not sys.stdin.isatty():
            return SecretValue(_read_stdin_value().removesuffix("\n").removesuffix("\r"))
        return SecretValue(
            typer.prompt(f"New value for {name}", hide_input=True, confirmation_prompt=True)
        )

    return source


def _read_value_file(path: str) -> str:
    try:
        data = read_regular_file(path, MAX_VALUE_BYTES)
        return data.decode("utf-8").removesuffix("\n").removesuffix("\r")
    except UnsafeInput as exc:
        raise UsageError(f"--from-file {path}: cannot read it ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--from-file {path}: cannot read it ({type(exc).__name__})") from None


def _read_stdin_value() -> str:
    """The new value piped to stdin, at most MAX_VALUE_BYTES (a stream may never end)."""
    stream = getattr(sys.stdin, "buffer", None)
    try:
        if stream is None:  # a text stream without bytes underneath (tests' StringIO)
            text = sys.stdin.read(MAX_VALUE_BYTES + 1)
            if len(text) > MAX_VALUE_BYTES:
                raise UnsafeInput(f"larger than {MAX_VALUE_BYTES} bytes")
            return text
        return read_stream(stream, MAX_VALUE_BYTES).decode("utf-8")
    except UnsafeInput as exc:
        raise UsageError(f"stdin: cannot read the new value ({exc})") from None
    except UnicodeDecodeError:
        raise UsageError("stdin: cannot read the new value (not UTF-8 text)") from None


def _print_step(group: RotationGroup, step: StepResult) -> None:
    if step.skipped:  # a step that did nothing is never shown as done
        render.console().print("[dim]–[/] ", end="")
        render.console().print(f"{group.path} {step.step}: skipped: {step.detail}", markup=False)
        return
    mark = "[green]✓[/]" if step.ok else "[red]✗[/]"
    render.console().print(f"{mark} ", end="")
    render.console().print(f"{group.path} {step.step}: {step.detail}", markup=False)


def _render_rotation(outcomes: list[RotationOutcome], json_output: bool) -> None:
    from envmatrix.rotation.run import summary

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
        raise Interrupted(
            f"rotate interrupted after {len(outcomes)} rotation(s); the ones not"
            " started are untouched",
            interrupt.exit_code(),
        )
    if not all(o.ok for o in outcomes):
        raise typer.Exit(ExitCode.FAILURE)


rotation_app = typer.Typer(
    help="Rotation schedules from Vault metadata: status, what is due, a calendar.",
    no_args_is_help=True,
)


@rotation_app.command("status")
def rotation_status(
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    json_output: JsonOption = False,
    at: AtOption = None,
) -> None:
    """Last rotation and next due time of every secret with rotation: (never a value)."""
    _, (statuses, in_progress), moment = _rotation_statuses(policy, environment, at)
    if json_output:
        document = rotation_render.statuses_json(statuses, moment)
        document["rotations_in_progress"] = [r.to_json() for r in in_progress]
        render.print_json(document)
    else:
        rotation_render.render_statuses(statuses, moment, render.console())
        render.render_in_progress(in_progress, render.console())


@rotation_app.command("due")
def rotation_due(
    policy: PolicyOption = None,
    environment: EnvironmentOption = None,
    json_output: JsonOption = False,
    at: AtOption = None,
    notify: NotifyOption = False,
) -> None:
    """List overdue rotations; exit 1 when any is overdue (for a scheduled CI job)."""
    from envmatrix.rotation.schedule import overdue_statuses
    from envmatrix.views.notify import overdue_notices
    from envmatrix.workflow import send_notifications

    loaded, (statuses, _), moment = _rotation_statuses(policy, environment, at)
    overdue = overdue_statuses(statuses)
    send_notifications(loaded, overdue_notices(overdue), notify, warn, "rotation due")
    if actions.active(os.environ):
        actions.emit(actions.publish_rotation_due(overdue, os.environ), json_output)
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
    days: Annotated[
        int, typer.Option("--days", min=1, max=3660, metavar="DAYS", help="How many days ahead.")
    ] = 90,
    owner: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--owner", metavar="OWNER", help="Only this owner's rotations (repeatable)."),
    ] = None,
    ics: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--ics", metavar="FILE", help="Write an iCalendar (.ics) file here."),
    ] = None,
    json_output: JsonOption = False,
    at: AtOption = None,
) -> None:
    """Upcoming rotations in the next --days days, overdue ones first; --ics writes a calendar."""
    from envmatrix.rotation import calendar

    loaded, (statuses, _), start = _rotation_statuses(policy, environment, at)
    if ics and (note := name_warning(loaded)) is not None:
        warn(note)  # the calendar's UIDs carry the policy's name
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
) -> tuple[Policy, tuple[tuple[RotationStatus, ...], tuple[RotationInProgress, ...]], datetime]:
    from envmatrix.rotation.schedule import evaluation_time
    from envmatrix.workflow import rotation_statuses_now

    moment = evaluation_time(at)
    loaded = load_policy(policy_path(policy))
    return loaded, rotation_statuses_now(loaded, environment or (), moment), moment


def register(app: typer.Typer) -> None:
    """Add `rotate` and the `rotation` group to `app`."""
    app.command()(rotate)
    app.add_typer(rotation_app, name="rotation")
