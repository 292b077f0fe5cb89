"""What `envmatrix rotate` does, between parsing (cli.py) and the engine: pick the mode and the
groups, run them, count the outcomes. Domain code: it never prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from envmatrix import interrupt
from envmatrix.errors import UsageError
from envmatrix.pipeline.desired import resolve_environments
from envmatrix.policy import Policy
from envmatrix.rotation.engine import RotationEngine, RotationOutcome, rotate_due
from envmatrix.rotation.groups import RotationGroup, groups_for


class Mode(StrEnum):
    """What a `rotate` invocation asks for."""

    ROTATE = "rotate"
    RESUME = "resume"
    ROLLBACK = "rollback"
    DUE = "due"


@dataclass(frozen=True)
class RotateRequest:
    """A checked `rotate` command line."""

    mode: Mode
    name: str | None
    environments: tuple[str, ...]  # logical names; empty: all
    force: bool = False  # `--force`: emergency rotation, even within a grace period


def rotate_request(
    policy: Policy,
    name: str | None,
    environments: Sequence[str],
    *,
    due: bool,
    resume: bool,
    rollback: bool,
    from_file: str | None,
    force: bool = False,
) -> RotateRequest:
    """Check the flag combination; UsageError (exit 3) when it makes no sense."""
    if sum((due, resume, rollback)) > 1:
        raise UsageError("rotate takes at most one of --due, --resume, --rollback")
    if force and (due or resume or rollback):
        raise UsageError("rotate --force rotates NAME now; not with --due, --resume, --rollback")
    if due and name:
        raise UsageError("rotate --due rotates everything due; give no NAME with it")
    if not due and not name:
        raise UsageError("rotate needs a secret NAME, or --due for everything due")
    if from_file and (due or rollback):
        raise UsageError(
            "--from-file gives a manual rotation its new value; not with --due/--rollback"
        )
    mode = (
        Mode.DUE if due else Mode.RESUME if resume else Mode.ROLLBACK if rollback else Mode.ROTATE
    )
    return RotateRequest(
        mode, name, resolve_environments(policy, environments) if environments else (), force
    )


def selected_groups(policy: Policy, request: RotateRequest) -> list[RotationGroup]:
    """The groups NAME's rotation covers (none for --due: those are found at run time)."""
    if request.name is None:
        return []
    return groups_for(policy, request.name, request.environments)


def run_rotation(
    engine: RotationEngine, request: RotateRequest, groups: Sequence[RotationGroup]
) -> list[RotationOutcome]:
    """Run the request; one outcome per group touched."""
    if request.mode is Mode.DUE:
        return rotate_due(engine, request.environments)
    actions: dict[Mode, Callable[[RotationGroup], RotationOutcome]] = {
        Mode.ROTATE: partial(engine.rotate, force=request.force),
        Mode.RESUME: engine.resume,
        Mode.ROLLBACK: engine.rollback,
    }
    action = actions[request.mode]
    outcomes: list[RotationOutcome] = []
    for group in groups:
        if interrupt.pending():  # Ctrl-C: the groups not started stay as they are
            break
        outcomes.append(action(group))
    return outcomes


def summary(outcomes: Sequence[RotationOutcome]) -> dict[str, int]:
    """Outcomes counted by result, every result present."""
    counts = Counter(o.result for o in outcomes)
    results = ("done", "in-grace", "rolled-back", "nothing-to-resume", "needs-owner", "failed")
    return {result: counts.get(result, 0) for result in results}
