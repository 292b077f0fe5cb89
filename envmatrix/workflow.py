"""The plan/apply workflow: policy -> desired -> observe -> diff -> plan -> apply.

These are the functions the command line calls. They take adapters already built by the
composition root (`envmatrix.connect.Connections`), so the same code runs against a real Vault and
GitHub, the sandbox, or test doubles. This module sits above the core and rotation: a plan also
reports overdue rotations, read from the same Vault metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from envmatrix import interrupt
from envmatrix.audit.events import AuditEvent, AuditSink
from envmatrix.connect import (
    Connections,
    apply_lock,
    audit_sink,
    connect,
    state_lock,
    vault_session,
)
from envmatrix.errors import StalePlanError, UsageError
from envmatrix.files import write_atomic
from envmatrix.guard import guard_writes, run_checks
from envmatrix.lock import ApplyLock, HeldLock, VaultLock
from envmatrix.pipeline.apply import Applier, ApplyReport, ItemResult
from envmatrix.pipeline.desired import (
    DesiredState,
    desired_state,
    policy_repositories,
    resolve_environments,
    resolve_repository,
)
from envmatrix.pipeline.narrow import (
    NO_NARROWING,
    Narrowing,
    narrow_desired,
    narrow_plan,
    resolve_narrowing,
)
from envmatrix.pipeline.observe import VAULT_CONCURRENCY, Observed, observe
from envmatrix.pipeline.plan import Plan, diff
from envmatrix.pipeline.planfile import (
    is_plan_file,
    plan_document,
    policy_sha256,
    read_plan_file,
    require_policy_changes,
    saved_changes,
)
from envmatrix.pipeline.recorded import with_recorded_targets
from envmatrix.pipeline.shard import Shard, parse_shard, shard_desired
from envmatrix.pipeline.sync import transit_key
from envmatrix.policy import Policy, load_policy, name_warning
from envmatrix.rotation.engine import RotationEngine, RotationOutcome, StepResult
from envmatrix.rotation.groups import RotationGroup
from envmatrix.rotation.progress import RotationInProgress, rotations_in_progress
from envmatrix.rotation.run import RotateRequest, run_rotation
from envmatrix.rotation.schedule import RotationStatus, load_statuses, rotation_statuses
from envmatrix.rotation.strategies import StrategySettings
from envmatrix.safeio import UnsafeInput, read_regular_file
from envmatrix.views.matrix import Matrix, matrix_for_run
from envmatrix.views.notify import Notice
from envmatrix.views.probe import ProbeReport, ProbeResult, all_probes, run_probe
from envmatrix.views.scan import ScanReport, scan_workflows


@dataclass(frozen=True)
class PlanRun:
    """A plan and everything it was computed from (needed to apply or save it)."""

    policy_path: str
    policy: Policy
    environments: tuple[str, ...]
    desired: DesiredState
    observed: Observed
    plan: Plan
    rotations: tuple[RotationStatus, ...] = ()  # from the same Vault metadata: no extra reads
    in_progress: tuple[RotationInProgress, ...] = ()  # rotations left half-way (journals)
    narrowing: Narrowing = NO_NARROWING  # --repository / --secret
    requests: Mapping[str, Any] | None = None  # GitHub request accounting (plan_policy sets it)
    vault_requests: Mapping[str, Any] | None = None  # Vault round trips (plan_policy sets it)
    shard: Shard | None = None  # --shard K/N: this run's share of the repositories


def make_plan(
    policy_path: str,
    connections: Connections,
    environments: Sequence[str] = (),
    policy: Policy | None = None,
    narrowing: Narrowing = NO_NARROWING,
    shard: Shard | None = None,
) -> PlanRun:
    """Observe the world for the selected environments (and `narrowing`: names already resolved,
    see pipeline/narrow.py; `shard`: only its repositories, see pipeline/shard.py) and diff it
    against the policy. Overdue and half-way rotations (not tied to one repository) are
    reported by shard 1 only."""
    policy = policy or load_policy(policy_path)
    selected = resolve_environments(policy, environments)
    desired = shard_desired(narrow_desired(desired_state(policy, selected), narrowing), shard)
    desired = _recorded_targets(policy, selected, desired, connections, narrowing, shard)
    observed = observe(desired, connections.vault, connections.github, connections.concurrency)
    rotations: tuple[RotationStatus, ...] = ()
    in_progress: tuple[RotationInProgress, ...] = ()
    if shard is None or shard.holds_organization:
        rotations = rotation_statuses(policy, selected, observed.vault, datetime.now(UTC))
        in_progress = rotations_in_progress(policy, connections.vault, selected)
    plan = narrow_plan(diff(desired, observed), narrowing)
    return PlanRun(
        policy_path,
        policy,
        selected,
        desired,
        observed,
        plan,
        tuple(rotations),
        tuple(in_progress),
        narrowing,
        shard=shard,
    )


def _recorded_targets(
    policy: Policy,
    selected: Sequence[str],
    desired: DesiredState,
    connections: Connections,
    narrowing: Narrowing,
    shard: Shard | None,
) -> DesiredState:
    """The run's desired state plus the targets within it that the policy no longer names but
    whose sync state records its writes (pipeline/recorded.py); none with `--secret`."""
    if narrowing.secrets:
        return desired
    repositories = [
        r
        for r in policy_repositories(policy)
        if (not narrowing.repositories or r in narrowing.repositories)
        and (shard is None or shard.holds_repository(r))
    ]
    organizations: list[str] = []
    if not narrowing.repositories and (shard is None or shard.holds_organization):
        organizations = [r.split("/", 1)[0] for r in policy_repositories(policy)]
        if policy.github.organization:
            organizations.append(policy.github.organization)
    environments = {policy.github_environment(e).lower(): e for e in selected}
    every = set(selected) >= set(policy.environments)
    return with_recorded_targets(
        desired,
        connections.vault,
        repositories,
        organizations,
        environments,
        every,
        min(connections.concurrency, VAULT_CONCURRENCY),
    )


def apply_run(
    run: PlanRun,
    connections: Connections,
    audit: AuditSink | None = None,
    check: Callable[[], None] | None = None,
    progress: ApplyProgress | None = None,
    probes: ProbeLog | None = None,
) -> ApplyReport:
    """Carry out a fresh plan. `check` runs before each GitHub write and may raise RunStopped
    (see envmatrix/guard.py: the lock still held, no Ctrl-C pending); `progress` is told of
    each write as it lands; `probes` says whether the flags' probes may run in a pull-request
    run and collects what they found."""
    return _applier(run, connections, audit, check, progress, probes).apply(run.plan)


@dataclass
class ProbeLog:
    """The flags' probes of one apply: whether they may run in a pull-request-triggered run
    (`--allow-pull-request`), the ones that failed (for notifications), and why they were
    withheld, if they were."""

    allow_pull_request: bool = False
    failed: list[ProbeResult] = field(default_factory=list)
    withheld: str | None = None


class ApplyProgress(Protocol):
    """What follows an apply as it runs (the command line renders it live)."""

    def start(self, total: int) -> None:
        """The apply begins `total` planned writes."""

    def result(self, result: ItemResult) -> None:
        """One write landed or failed (in the order of the report's results)."""


def saved_plan_policy(
    plan_file: str,
    given: str | None = None,
    environments: Sequence[str] = (),
    repositories: Sequence[str] = (),
    secrets: Sequence[str] = (),
    shard: str | None = None,
) -> tuple[str, Policy]:
    """The policy a saved plan is applied with, checked against the command line.

    It is the file the plan was made from; `--policy` may name it, or the same policy moved
    elsewhere (same content). `--environment`, `--repository` and `--secret` may repeat the
    plan's narrowing but never change it: a saved plan is applied whole, so another selection
    would silently write more or other than it says (UsageError). So may `--shard`.
    """
    saved = read_plan_file(plan_file)
    _same_shard(plan_file, saved_shard(saved), None if shard is None else parse_shard(shard))
    recorded = str(saved["policy"])
    path = recorded if given is None else _given_policy(plan_file, saved, given)
    if not Path(path).exists():
        raise StalePlanError(
            f"saved plan {plan_file} was made from {recorded}, which is gone; plan again"
            " (or pass the policy's new place with --policy)"
        )
    policy = load_policy(path)
    planned = tuple(saved["environments"])
    if environments and set(resolve_environments(policy, environments)) != set(planned):
        raise UsageError(
            f"saved plan {plan_file} covers {', '.join(planned) or 'no environment'} and is"
            " applied whole; to apply less, plan again with --environment"
        )
    _same_narrowing(
        plan_file, Narrowing.from_json(saved), resolve_narrowing(policy, repositories, secrets)
    )
    return path, policy


def saved_shard(saved: Mapping[str, Any]) -> Shard | None:
    """The shard a saved plan was made for (read_plan_file checked its form); None: all."""
    recorded = saved.get("shard")
    return None if recorded is None else parse_shard(str(recorded))


def _same_shard(plan_file: str, planned: Shard | None, given: Shard | None) -> None:
    """`--shard` given with a saved plan must repeat the plan's shard (UsageError)."""
    if given is not None and given != planned:
        covers = f"shard {planned}" if planned is not None else "every shard (made without --shard)"
        raise UsageError(
            f"saved plan {plan_file} covers {covers} and is applied whole;"
            f" to apply shard {given}, plan again with --shard {given}"
        )


def _same_narrowing(plan_file: str, planned: Narrowing, given: Narrowing) -> None:
    """An option given with a saved plan must repeat what the plan recorded (UsageError)."""
    for option, wanted, recorded in (
        ("--repository", given.repositories, planned.repositories),
        ("--secret", given.secrets, planned.secrets),
    ):
        if wanted and set(wanted) != set(recorded):
            covers = ", ".join(recorded) or f"every {option[2:]} (it was made without {option})"
            raise UsageError(
                f"saved plan {plan_file} covers {covers} and is applied whole;"
                f" to apply another selection, plan again with {option}"
            )


def _given_policy(plan_file: str, saved: Mapping[str, Any], given: str) -> str:
    same_file = Path(given).resolve() == Path(str(saved["policy"]))
    if same_file or policy_sha256(given) == saved["policy_sha256"]:
        return given
    raise UsageError(
        f"--policy {given} is not the policy saved plan {plan_file} was made from"
        f" ({saved['policy']}); plan again"
    )


def apply_saved(
    plan_file: str,
    connections: Connections,
    audit: AuditSink | None = None,
    policy_path: str | None = None,
    policy: Policy | None = None,
    check: Callable[[], None] | None = None,
    progress: ApplyProgress | None = None,
    probes: ProbeLog | None = None,
) -> ApplyReport:
    """Apply exactly a saved plan, refusing it when the policy, Vault or GitHub changed since.

    The plan is recomputed with the narrowing the file records (environments, repositories,
    secrets). `policy_path` is where the plan's policy is now (see `saved_plan_policy`); by
    default where it was when the plan was made; `policy` is that file already loaded, if the
    caller has it; `check` and `progress` as for `apply_run`."""
    saved = read_plan_file(plan_file)
    policy_path = policy_path or str(saved["policy"])
    if policy_sha256(policy_path) != saved["policy_sha256"]:
        raise StalePlanError(
            f"saved plan {plan_file} is stale: {policy_path} changed since; plan again"
        )
    narrowing = Narrowing.from_json(saved)
    environments = tuple(saved["environments"])
    shard = saved_shard(saved)
    fresh = make_plan(policy_path, connections, environments, policy, narrowing, shard)
    if fresh.observed.fingerprint() != saved["fingerprint"]:
        raise StalePlanError(
            f"saved plan {plan_file} is stale: Vault or GitHub changed since it was made;"
            " plan again"
        )
    require_policy_changes(plan_file, saved_changes(plan_file, saved), fresh.plan)
    # equal in every field apply acts on: carry out the plan computed now, not the file's copy
    return _applier(fresh, connections, audit, check, progress, probes).apply(fresh.plan)


def write_plan_file(run: PlanRun, out: str) -> None:
    """Save a plan (metadata only, never a value) atomically: all of it or nothing."""
    document = plan_document(
        str(Path(run.policy_path).resolve()),
        policy_sha256(run.policy_path),
        run.environments,
        run.plan,
        run.narrowing.to_json(),
        None if run.shard is None else str(run.shard),
    )
    write_atomic(out, json.dumps(document, indent=2) + "\n", "plan")


def _applier(
    run: PlanRun,
    connections: Connections,
    audit: AuditSink | None,
    check: Callable[[], None] | None = None,
    progress: ApplyProgress | None = None,
    probes: ProbeLog | None = None,
) -> Applier:
    """An applier over the sync state `run` observed, acting as this run's actor; `check` runs
    before each GitHub write; `progress` follows the writes."""
    github = connections.github if check is None else guard_writes(connections.github, check)
    return Applier(
        connections.vault,
        github,
        run.observed.sync,
        audit,
        connections.actor,
        probe=_prober(run.policy, connections, probes),
        on_result=None if progress is None else progress.result,
        on_start=None if progress is None else progress.start,
        transit=transit_key(run.policy),
        write_concurrency=connections.write_concurrency,
    )


def _prober(
    policy: Policy, connections: Connections, probes: ProbeLog | None = None
) -> Callable[[str, str], str | None]:
    """Live checks a flag may require before it is set true (see envmatrix/views/probe.py);
    with `probes`, withheld in pull-request runs unless it allows them, and their failures
    recorded in it."""
    from envmatrix.views.probe import ProbeFailure, ProbesWithheld, probe_runner

    allow = probes.allow_pull_request if probes is not None else False
    runner = probe_runner(policy, connections.vault, allow_pull_request=allow)
    if probes is None:
        return runner

    def run(kind: str, environment: str) -> str | None:
        answer = runner(kind, environment)
        if isinstance(answer, ProbesWithheld):
            probes.withheld = str(answer)
        elif isinstance(answer, ProbeFailure) and answer.result is not None:
            probes.failed.append(answer.result)
        return answer

    return run


# -- whole commands: what the command line calls, one function each ---------------------------

Confirm = Callable[["Plan | None"], None]  # shown the plan before it is applied; raises to stop
Warn = Callable[[str], None]


@dataclass(frozen=True)
class ApplyOutcome:
    """What `apply` did: the report of its writes, or the plan when there was nothing to write."""

    report: ApplyReport
    unchanged: Plan | None = None  # the fresh plan, when it had no writes (nothing was applied)
    requests: Mapping[str, Any] | None = None  # GitHub request accounting of the whole run
    vault_requests: Mapping[str, Any] | None = None  # Vault round trips of the whole run
    policy: Policy | None = None  # the policy applied (for notifications)
    probes: ProbeLog | None = None  # the flags' probes: failed (notifications) or withheld
    shard: Shard | None = None  # --shard K/N (or the saved plan's): the share applied


def apply_policy(
    policy_path: str,
    plan_file: str | None,
    environments: Sequence[str],
    lock_timeout: float,
    confirm: Confirm,
    warn: Warn,
    *,
    repositories: Sequence[str] = (),
    secrets: Sequence[str] = (),
    progress: ApplyProgress | None = None,
    allow_pull_request: bool = False,
    shard: str | None = None,
) -> ApplyOutcome:
    """`apply`: a saved plan exactly, or a fresh plan of the policy, under the mount's apply lock.

    `policy_path` is the policy to plan (ignored for a saved plan unless given explicitly: see
    `saved_plan_policy`). `repositories` and `secrets` narrow a fresh plan (pipeline/narrow.py);
    with a saved plan they may only repeat its narrowing. The lock covers planning too, so a
    runner that waited plans after the previous one's writes. `confirm` is asked before anything
    is written, and only for a fresh plan (a saved plan was reviewed: it is the approval, as with
    `terraform apply PLANFILE`). `progress` follows the writes as they land. The flags' probes
    do not run in a pull-request-triggered run unless `allow_pull_request` (the flag stays off;
    the outcome's `probes.withheld` says why). `shard` (`K/N`) applies that shard's
    repositories under that shard's lock (a saved plan's own shard is used; `shard` may only
    repeat it).
    Raises UsageError, StalePlanError, LockHeldError and the adapters' errors.
    """
    if plan_file and not is_plan_file(plan_file):
        raise UsageError(f"{plan_file} is not a saved plan; pass a policy with --policy")
    if plan_file:
        path, policy = saved_plan_policy(
            plan_file, policy_path or None, environments, repositories, secrets, shard
        )
        narrowing, sharded = NO_NARROWING, saved_shard(read_plan_file(plan_file))
    else:
        sharded = None if shard is None else parse_shard(shard)
        path, policy = policy_path, load_policy(policy_path)
        resolve_environments(policy, environments)  # a usage error before anything connects
        narrowing = resolve_narrowing(policy, repositories, secrets)
    held_shard = None if sharded is None else (sharded.index, sharded.count)
    if (note := name_warning(policy)) is not None:
        warn(note)
    with (
        connect(policy) as connections,
        audit_sink(policy, path, warn) as sink,
        _held(apply_lock(connections, sink, lock_timeout, held_shard), warn) as check,
    ):
        probes = ProbeLog(allow_pull_request)
        if plan_file:
            report = apply_saved(
                plan_file, connections, sink, path, policy, check, progress, probes
            )
            return _outcome(report, connections, policy, probes, sharded)
        run = make_plan(path, connections, environments, policy, narrowing, sharded)
        if not run.plan.has_writes:
            unchanged = ApplyReport((), run.plan.blocked)
            return _outcome(unchanged, connections, policy, probes, sharded, run.plan)
        confirm(run.plan)
        report = apply_run(run, connections, sink, check, progress, probes)
        return _outcome(report, connections, policy, probes, sharded)


def _outcome(
    report: ApplyReport,
    connections: Connections,
    policy: Policy,
    probes: ProbeLog,
    shard: Shard | None,
    unchanged: Plan | None = None,
) -> ApplyOutcome:
    """An apply's outcome with the run's request accounting (GitHub and Vault)."""
    return ApplyOutcome(
        report,
        unchanged,
        connections.request_stats(),
        connections.vault_request_stats(),
        policy=policy,
        probes=probes,
        shard=shard,
    )


def plan_policy(
    policy_path: str,
    environments: Sequence[str],
    out: str | None,
    repositories: Sequence[str] = (),
    secrets: Sequence[str] = (),
    shard: str | None = None,
) -> PlanRun:
    """`plan`: observe and diff (narrowed by `repositories` and `secrets`, see
    pipeline/narrow.py; `shard` `K/N`: that shard's repositories, see pipeline/shard.py); with
    `out`, save the plan (and its narrowing and shard) for `apply PLANFILE`."""
    sharded = None if shard is None else parse_shard(shard)
    policy = load_policy(policy_path)
    resolve_environments(policy, environments)  # a usage error before anything connects
    narrowing = resolve_narrowing(policy, repositories, secrets)
    with connect(policy) as connections:
        run = make_plan(policy_path, connections, environments, policy, narrowing, sharded)
        run = replace(
            run,
            requests=connections.request_stats(),
            vault_requests=connections.vault_request_stats(),
        )
    if out:
        write_plan_file(run, out)
    return run


def force_unlock(
    policy_path: str, lock_id: str, lock_name: str, confirm: Callable[[str], None], warn: Warn
) -> HeldLock:
    """`force-unlock`: release `lock_name` when `lock_id` is the lock held now.

    `confirm` is shown the holder before anything changes. Raises LockHeldError when the ID is
    not the lock held now (see envmatrix/lock.py)."""
    policy = load_policy(policy_path)
    with connect(policy) as connections, audit_sink(policy, policy_path, warn) as sink:
        held = state_lock(connections, sink, name=lock_name, operation="force-unlock")
        current = held.read()
        if current is not None and current.id == lock_id:
            confirm(current.describe())
        return held.force_unlock(lock_id)


def audit_events(policy_path: str, since: datetime | None, warn: Warn) -> list[AuditEvent]:
    """`audit`: the policy's audit trail since a time (all of it when None), oldest first."""
    with audit_sink(load_policy(policy_path), policy_path, warn) as store:
        return store.query(since)


def rotation_statuses_now(
    policy: Policy, environments: Sequence[str], moment: datetime
) -> tuple[tuple[RotationStatus, ...], tuple[RotationInProgress, ...]]:
    """Rotation statuses and rotations left half-way, from Vault only: no GitHub token needed."""
    with vault_session(policy) as vault:
        statuses = load_statuses(policy, environments, vault, moment)
        selected = resolve_environments(policy, environments)
        return statuses, rotations_in_progress(policy, vault, selected)


def rotate(
    policy_path: str,
    policy: Policy,
    request: RotateRequest,
    groups: Sequence[RotationGroup],
    settings: StrategySettings,
    on_step: Callable[[RotationGroup, StepResult], None] | None,
    warn: Warn,
    progress: ApplyProgress | None = None,
) -> list[RotationOutcome]:
    """`rotate`: run the request with the rotation engine; connections are closed afterwards.
    `on_step` is told of each rotation step, `progress` of each GitHub write of a sync step."""
    if (note := name_warning(policy)) is not None:
        warn(note)
    with (
        connect(policy) as connections,
        audit_sink(policy, policy_path, warn) as sink,
        interrupt.writing(),
    ):
        if settings.value_probe is None:  # manual rotations: the probes confirm the value
            from envmatrix.views.probe import RotationProbes

            settings = replace(settings, value_probe=RotationProbes(policy, connections.vault))
        engine = RotationEngine(
            policy,
            connections.vault,
            connections.github,
            settings=settings,
            audit=sink,
            on_step=on_step,
            actor=connections.actor,
            probe=_prober(policy, connections),
            on_write=None if progress is None else progress.result,
            on_writes=None if progress is None else progress.start,
        )
        return run_rotation(engine, request, groups)


@contextmanager
def _held(lock: VaultLock | ApplyLock, warn: Warn) -> Iterator[Callable[[], None]]:
    """Hold (and renew) a lock, giving the check to run before each write (the lock still held,
    no Ctrl-C pending); a lock taken over or not released is passed to `warn`."""
    try:
        with lock:
            yield run_checks(lock)
    finally:
        for note in (lock.took_over, lock.release_error):
            if note:
                warn(note)


def matrix_of(
    policy_path: str,
    environments: Sequence[str],
    repository: str | None,
    workflows: str | None,
) -> tuple[Matrix, ScanReport | None]:
    """`matrix`: the grid (with the flags and the time it was made) from a fresh plan, and the
    workflows' scan when a folder is given."""
    policy = load_policy(policy_path)
    repository = resolve_repository(policy, repository)
    scanned = scan_workflows(policy, workflows, repository) if workflows else None
    with connect(policy) as connections:
        run = make_plan(policy_path, connections, environments, policy)
    return matrix_for_run(run, repository, datetime.now(UTC)), scanned


MAX_MATRIX_BYTES = 16 * 1024 * 1024


def committed_matrix(path: str) -> str:
    """`matrix --check FILE`: the committed document, read before anything connects.

    UsageError (exit 3) when FILE is missing, not a regular file, too large or not UTF-8."""
    try:
        return read_regular_file(path, MAX_MATRIX_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"--check {path}: no such file (write it first: envmatrix matrix --out {path})"
        ) from None
    except UnsafeInput as exc:
        raise UsageError(f"--check {path}: refused ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--check {path}: cannot be read ({type(exc).__name__})") from None


def probe(policy: Policy, environment: str, name: str) -> tuple[str, ProbeResult]:
    """`probe NAME`: the live check in one environment (logical or GitHub name), from Vault."""
    (logical,) = resolve_environments(policy, [environment])
    with vault_session(policy) as vault:
        return logical, run_probe(name, policy, vault, logical)


def send_notifications(
    policy: Policy,
    notices: Sequence[Notice],
    requested: bool,
    warn: Callable[[str], None],
    command: str,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Tell owners (the policy's `notifications:`) what is new, when `--notify` was given or CI
    runs on the default branch or a schedule (envmatrix/views/notify.py). Never raises for a
    channel; a Vault failure reading or writing the notification state is a warning."""
    import os

    from envmatrix.errors import EnvmatrixError
    from envmatrix.views.notify import notify, should_notify

    env = os.environ if environ is None else environ
    if not policy.notifications or not should_notify(env, requested):
        return
    try:
        with vault_session(policy, env) as vault:
            notify(policy, notices, vault, env, warn, command)
    except EnvmatrixError as exc:
        warn(f"notifications not sent: {exc}")


def probe_declared(
    policy: Policy,
    environments: Sequence[str],
    allow_pull_request: bool = False,
    environ: Mapping[str, str] | None = None,
) -> ProbeReport:
    """`probe`: every declared probe in the selected environments (all when none is given).
    In a pull-request-triggered run nothing is read or sent unless `allow_pull_request`."""
    import os

    environ = os.environ if environ is None else environ
    resolve_environments(policy, environments)  # a bad --environment is a usage error first
    note = probes_withheld(allow_pull_request, environ)
    if note is not None:
        return ProbeReport((), note)
    with vault_session(policy) as vault:
        return all_probes(policy, vault, environments, environ, allow_pull_request)


def probes_withheld(allow_pull_request: bool, environ: Mapping[str, str]) -> str | None:
    """Why probes must not run now (a pull-request-triggered run), or None."""
    from envmatrix.views.probe import pull_request_event, pull_request_note

    event = pull_request_event(environ)
    return pull_request_note(event) if event is not None and not allow_pull_request else None
