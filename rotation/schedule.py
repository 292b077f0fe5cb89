"""Rotation schedules: when each secret with `rotation:` was last rotated and when it is next due.

Definitions (the `rotation status`, `rotation due` and `rotation calendar` commands rest on them):

- **Last rotation** is the creation time of the Vault version in use at the secret's path (KV v2
  metadata; no value is read). Every secret at one path shares it: secrets that share a Vault
  path rotate together (a rotation group), and KV v2 versions the whole path, not single keys.
- **schedule** (5-field cron): next due is the first fire time strictly after the last rotation,
  computed in the policy's timezone. On a fall-back DST change a wall-clock time occurs twice;
  croniter fires on both, and we keep only the first, as cron does. On spring-forward a time that
  does not exist fires at the first instant after the gap (croniter: `30 2 * * *` in Berlin fires
  at 03:00).
- **max_age**: next due is the last rotation plus max_age.
- **Overdue** when the evaluation time ("now", or `--at`) is at or after next due.
- **Never rotated**: the path is missing in Vault, its current version is deleted or destroyed,
  or the secret's key is absent from it. Such a secret has no last rotation; it is due now:
  `next_due` is the evaluation time and it counts as overdue.
- A `scope: repository` secret has one status, whose environment is `(repository)`; like the
  plan, a selection of environments includes it only when it covers all of them.

Every time this module returns is timezone-aware and in UTC. All functions are pure except
`load_statuses`, which reads metadata through a `VaultPort`.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from envmatrix.errors import UsageError
from envmatrix.pipeline.desired import resolve_environments
from envmatrix.policy import Policy, RotationSpec, SecretSpec
from envmatrix.ports import VaultEntry, VaultPort
from envmatrix.rotation.groups import secret_paths
from envmatrix.timefmt import parse_duration, parse_moment

# where a logical environment would go, for a scope: repository secret (no logical environment
# name can hold parentheses, so it never collides with one)
REPOSITORY_LEVEL = "(repository)"
# A calendar of a `* * * * *` schedule over 90 days would hold 129,600 events; nobody wants that.
MAX_OCCURRENCES_PER_SECRET = 500
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RotationState(enum.StrEnum):
    """Where a secret stands against its schedule."""

    OK = "ok"
    OVERDUE = "overdue"
    NEVER_ROTATED = "never-rotated"


@dataclass(frozen=True)
class RotationStatus:
    """One secret with `rotation:` in one logical environment (or at the repository level),
    evaluated at `at`."""

    secret: str
    environment: str  # logical environment, or REPOSITORY_LEVEL for a scope: repository secret
    mount: str  # the KV v2 mount
    path: str  # Vault path relative to the mount, {environment} resolved
    key: str
    owner: str
    contact: str
    strategy: str
    repositories: tuple[str, ...]
    group: tuple[str, ...]  # secrets with rotation: at the same resolved path (this one too)
    last_rotated: datetime | None
    vault_version: int | None
    next_due: datetime
    overdue: bool
    at: datetime
    spec: RotationSpec = field(compare=False, repr=False)
    policy: str = ""  # the policy's name (Policy.identity): calendar UIDs are unique per policy

    @property
    def repository_level(self) -> bool:
        """Whether this is a scope: repository secret (its copies are repository secrets)."""
        return self.environment == REPOSITORY_LEVEL

    @property
    def where(self) -> str:
        """The environment in a sentence: `production`, or `repository secret`."""
        return "repository secret" if self.repository_level else self.environment

    @property
    def state(self) -> RotationState:
        if self.last_rotated is None:
            return RotationState.NEVER_ROTATED
        return RotationState.OVERDUE if self.overdue else RotationState.OK

    @property
    def rule(self) -> str:
        """The trigger as the policy wrote it: `cron 0 9 1 */3 *` or `max_age 90d`."""
        if self.spec.schedule is not None:
            return f"cron {self.spec.schedule}"
        return f"max_age {self.spec.max_age}"


@dataclass(frozen=True)
class RotationOccurrence:
    """One rotation on the calendar: a secret in an environment, due at `due` (UTC)."""

    status: RotationStatus
    due: datetime
    overdue: bool  # the rotation that is already due (or never happened), not a future one

    @property
    def uid(self) -> str:
        """Stable across runs and unique per policy:
        `<secret>-<environment>-<due>@<policy>.envmatrix` (`never-rotated` for the due part of a
        secret not in Vault yet; `@envmatrix` alone for a policy without a name). A secret name
        has no '-' and a policy name no '@', so two different rotations never share a UID."""
        when = (
            "never-rotated"
            if self.status.last_rotated is None and self.overdue
            else (self.due.strftime("%Y%m%dT%H%M%SZ"))
        )
        where = "repository" if self.status.repository_level else self.status.environment
        domain = f"{self.status.policy}.envmatrix" if self.status.policy else "envmatrix"
        return f"{self.status.secret}-{where}-{when}@{domain}"

    @property
    def sequence(self) -> int:
        """The iCalendar SEQUENCE, derived from what the event was computed from (no export
        history is kept): 2 x the Vault version in use, +1 once the rotation is overdue, so a
        re-export with nothing changed repeats it and every change that rewrites an event with
        the same UID (a new version; the rotation becoming overdue) raises it. For a secret not
        in Vault yet, its overdue event (which moves to each export's day: see `_overdue_start`)
        counts the days since 1970 of its start, and its scheduled events are 0."""
        if self.status.vault_version is None:
            return (self.due - EPOCH).days if self.overdue else 0
        return 2 * self.status.vault_version + (1 if self.overdue else 0)


# -- cron ----------------------------------------------------------------------------------------


def next_fire(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first fire time of `schedule` (in `timezone`) strictly after `after`, in UTC."""
    return next(_fires(schedule, timezone, after))


def fires_between(
    schedule: str, timezone: str, start: datetime, end: datetime
) -> Iterator[datetime]:
    """Every fire time t of `schedule` with start <= t < end, in UTC."""
    # croniter drops sub-second parts and answers strictly after its start time
    fires = _fires(schedule, timezone, start - timedelta(microseconds=1))
    return itertools.takewhile(lambda t: t < end, fires)


def _fires(schedule: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """Fire times strictly after `after`, without the repeat of a fall-back DST change."""
    iterator = croniter(schedule, _aware(after).astimezone(ZoneInfo(timezone)))
    while True:
        fire: datetime = iterator.get_next(datetime)
        if not _is_fall_back_repeat(fire):
            yield fire.astimezone(UTC)


def _is_fall_back_repeat(local: datetime) -> bool:
    """The second occurrence of a wall-clock time that a fall-back change makes occur twice."""
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


# -- one secret ----------------------------------------------------------------------------------


def next_due(spec: RotationSpec, last_rotated: datetime) -> datetime:
    """When a secret rotated at `last_rotated` is next due under `spec` (UTC)."""
    if spec.schedule is not None:
        return next_fire(spec.schedule, spec.timezone, last_rotated)
    assert spec.max_age is not None  # RotationSpec takes exactly one of the two
    return _aware(last_rotated).astimezone(UTC) + parse_duration(spec.max_age)


def last_rotation(entry: VaultEntry | None, key: str) -> datetime | None:
    """The creation time of the version in use, or None when the secret is not in Vault."""
    if entry is None or entry.version is None or entry.created_time is None:
        return None
    if key not in entry.keys:
        return None
    return _aware(entry.created_time).astimezone(UTC)


def rotation_status(
    policy: Policy, name: str, environment: str, entry: VaultEntry | None, at: datetime
) -> RotationStatus:
    """The status of secret `name` (which must have `rotation:`) in `environment` at `at`.

    For a scope: repository secret `environment` is ignored: its status is REPOSITORY_LEVEL.
    """
    spec = policy.secrets[name]
    assert spec.rotation is not None
    key, at = spec.vault_key(name), _aware(at).astimezone(UTC)
    last = last_rotation(entry, key)
    due = next_due(spec.rotation, last) if last is not None else at
    path = spec.vault_path(environment)
    return RotationStatus(
        secret=name,
        environment=REPOSITORY_LEVEL if spec.repository_level else environment,
        mount=policy.vault.mount,
        path=path,
        key=key,
        owner=spec.owner,
        contact=policy.owners[spec.owner].contact,
        strategy=spec.rotation.strategy,
        repositories=policy.repositories_for(spec),
        group=_group(policy, path),
        last_rotated=last,
        vault_version=entry.version if last is not None and entry else None,
        next_due=due,
        overdue=at >= due,
        at=at,
        spec=spec.rotation,
        policy=policy.identity,
    )


def _group(policy: Policy, path: str) -> tuple[str, ...]:
    """Rotating secrets at the same resolved path, in any environment (as rotation/groups.py)."""
    return tuple(
        sorted(
            name
            for name, other in _rotating(policy)
            if any(p == path for _, p in secret_paths(policy, other))
        )
    )


def _places(policy: Policy, spec: SecretSpec, selected: Sequence[str]) -> list[tuple[str, str]]:
    """(environment, path) where the secret is read in the selection; a repository-scope
    secret's environment is "" (its path has no {environment} to fill)."""
    if not selected:
        return []
    return [(env or "", path) for env, path in secret_paths(policy, spec, selected)]


def _rotating(policy: Policy) -> Iterator[tuple[str, SecretSpec]]:
    return ((n, s) for n, s in policy.secrets.items() if s.rotation is not None)


# -- the whole policy ----------------------------------------------------------------------------


def rotation_paths(policy: Policy, environments: Iterable[str]) -> tuple[str, ...]:
    """The distinct Vault paths whose metadata the statuses need, in a stable order."""
    selected = tuple(environments)
    return tuple(
        sorted(
            {path for _, spec in _rotating(policy) for _, path in _places(policy, spec, selected)}
        )
    )


def rotation_statuses(
    policy: Policy, environments: Iterable[str], entries: Mapping[str, VaultEntry], at: datetime
) -> tuple[RotationStatus, ...]:
    """One status per secret with `rotation:` x selected logical environment, soonest due first.

    `entries` maps Vault paths to their metadata; a path that is absent counts as missing.
    """
    selected = tuple(environments)
    statuses = (
        rotation_status(policy, name, env, entries.get(path), at)
        for name, spec in _rotating(policy)
        for env, path in _places(policy, spec, selected)
    )
    return tuple(sorted(statuses, key=lambda s: (s.next_due, s.secret, s.environment)))


def load_statuses(
    policy: Policy, environment_names: Sequence[str], vault: VaultPort, at: datetime
) -> tuple[RotationStatus, ...]:
    """Resolve `--environment` names, read each path's metadata once (never a value), evaluate."""
    environments = resolve_environments(policy, environment_names)
    entries = {path: vault.read_entry(path) for path in rotation_paths(policy, environments)}
    return rotation_statuses(policy, environments, entries, at)


def overdue_statuses(statuses: Iterable[RotationStatus]) -> tuple[RotationStatus, ...]:
    """The statuses that are due (never-rotated included)."""
    return tuple(s for s in statuses if s.overdue)


def overdue_secrets(
    statuses: Iterable[RotationStatus], environment: str | None = None
) -> list[str]:
    """Names of the secrets overdue somewhere (or in one logical environment), sorted, distinct."""
    return sorted(
        {s.secret for s in statuses if s.overdue and environment in (None, s.environment)}
    )


def overdue_cells(statuses: Iterable[RotationStatus]) -> frozenset[tuple[str, str]]:
    """(secret, logical environment) pairs that are overdue: for marking rows of a plan. A
    repository secret's pair has "", the logical environment of a repository-level target."""
    return frozenset(
        (s.secret, "" if s.repository_level else s.environment) for s in statuses if s.overdue
    )


# -- the calendar --------------------------------------------------------------------------------


def upcoming(
    statuses: Iterable[RotationStatus], start: datetime, end: datetime
) -> tuple[RotationOccurrence, ...]:
    """The rotations due in the window [start, end), for every status, ordered by time.

    A rotation that is already due (overdue or never rotated) comes first, at its due time (for
    never-rotated: the status's evaluation time), even though that lies before `start`. Then the
    scheduled ones: for cron, every fire in the window; for max_age, next due and every max_age
    after it. A never-rotated max_age secret has no date to count from, so only the first.
    """
    occurrences = [o for s in statuses for o in _occurrences(s, start, end)]
    return tuple(sorted(occurrences, key=lambda o: (o.due, o.status.secret, o.status.environment)))


def _occurrences(
    status: RotationStatus, start: datetime, end: datetime
) -> list[RotationOccurrence]:
    first = [RotationOccurrence(status, _overdue_start(status), True)] if status.overdue else []
    later = (RotationOccurrence(status, t, False) for t in _scheduled(status, start, end))
    return first + list(itertools.islice(later, MAX_OCCURRENCES_PER_SECRET - len(first)))


def _overdue_start(status: RotationStatus) -> datetime:
    """When the overdue event starts: its due time, which comes from the Vault version and so
    is the same in every export. A secret not in Vault has no date to count from; its event
    starts at 00:00 UTC of the evaluation day, the same in every export of that day."""
    if status.last_rotated is not None:
        return status.next_due
    return status.at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _scheduled(status: RotationStatus, start: datetime, end: datetime) -> Iterator[datetime]:
    spec = status.spec
    if spec.schedule is not None:
        fires = fires_between(spec.schedule, spec.timezone, start, end)
        return (t for t in fires if not status.overdue or t > status.next_due)
    if status.last_rotated is None:
        return iter(())
    assert spec.max_age is not None
    step = parse_duration(spec.max_age)
    times = (status.next_due + k * step for k in itertools.count(1 if status.overdue else 0))
    return (t for t in itertools.takewhile(lambda t: t < end, times) if t >= start)


# -- the evaluation time -------------------------------------------------------------------------


def evaluation_time(at: str | None, now: datetime | None = None) -> datetime:
    """`--at` parsed (a date is midnight UTC; a time without offset is UTC), else now, in UTC.

    Evaluating at another time answers "what will be due on date X"; tests use it too, since
    Vault versions cannot be backdated.
    """
    if at is None:
        return (now or datetime.now(UTC)).astimezone(UTC)
    try:
        return parse_moment(at)
    except ValueError:
        raise UsageError(
            f"--at {at!r} is not an ISO 8601 date or time (2027-01-01, 2027-01-01T09:00+01:00)"
        ) from None


def _aware(moment: datetime) -> datetime:
    """Naive times are UTC here (Vault reports UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
