"""`diff(desired, observed) -> Plan`: a pure function from what the policy wants and what the world
holds to an immutable list of typed changes. No I/O happens here.

Each change carries what it was computed from (Vault version, GitHub `updated_at`) so that apply
can read exactly the planned Vault version, and a saved plan can be refused when the world moved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from envmatrix.pipeline.desired import (
    REPOSITORY_LEVEL,
    DesiredState,
    FlagCell,
    SecretCell,
    Target,
    VariableCell,
    owner_with_contact,
)
from envmatrix.pipeline.observe import Observed, value_digest
from envmatrix.pipeline.protection import ProtectionWrite, protection_difference
from envmatrix.pipeline.state import SyncRecord, SyncState
from envmatrix.ports import (
    MAX_VALUE_BYTES,
    SECRETS_PER_SCOPE,
    VARIABLES_PER_SCOPE,
    ObservedEnvironment,
    ObservedSecret,
    ObservedVariable,
    VaultEntry,
)
from envmatrix.timefmt import iso_utc


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    BLOCKED = "blocked"
    ORPHAN = "orphan"


class Kind(StrEnum):
    SECRET = "secret"
    VARIABLE = "variable"
    ENVIRONMENT = "environment"


class Reason(StrEnum):
    MISSING = "missing"  # not in GitHub
    VAULT_NEWER = "vault-newer"  # Vault holds a newer version than the one last synced
    CHANGED_OUTSIDE = "changed-outside"  # GitHub copy written by someone else since our sync
    SOURCE_CHANGED = "source-changed"  # the policy now points the secret at another Vault key
    MISSING_IN_VAULT = "missing-in-vault"
    NOT_IN_POLICY = "not-in-policy"
    PRUNED = "pruned"  # envmatrix wrote it, the policy dropped it, prune is on
    MANAGED_ELSEWHERE = "managed-by-another-policy"  # another policy's sync state claims it
    FLAG_READY = "flag-ready"
    FLAG_NOT_READY = "flag-not-ready"
    # blocked: the Vault value is empty, whitespace-only or null (`envmatrix.secret.absence`)
    EMPTY_IN_VAULT = "empty-in-vault"
    TOO_LARGE = "too-large"  # blocked: the value is over GitHub's 48 KB
    LIMIT_EXCEEDED = "limit-exceeded"  # blocked: GitHub's secrets/variables count would be over
    # the environment copy is absent (create, or blocked) and a same-named secret of a wider
    # scope (repository, organization) is what jobs of that environment receive meanwhile
    SHADOWED = "shadowed"
    # a declared variable whose GitHub value differs from the policy's (or Vault's) after
    # envmatrix wrote it: the policy's literal or the Vault source changed
    VALUE_DIFFERS = "value-differs"
    PROTECTION_DIFFERS = "protection-differs"  # environment protection is not the policy's
    # an organization secret or variable whose visibility or selected repositories are not the
    # policy's (apply writes it again with the policy's)
    VISIBILITY_DIFFERS = "visibility-differs"


WRITE_ACTIONS = frozenset({Action.CREATE, Action.UPDATE, Action.DELETE})


@dataclass(frozen=True)
class Change:
    """One difference between the policy and GitHub, and what apply will do about it."""

    action: Action
    kind: Kind
    repository: str
    environment: str | None  # GitHub environment name; None for repository-level items
    name: str
    reason: Reason
    detail: str
    logical_environment: str | None = None
    owner: str | None = None
    vault_path: str | None = None
    vault_key: str | None = None
    vault_version: int | None = None
    github_updated_at: datetime | None = None
    value: str | None = None  # variables only: a flag's "true"/"false", never a secret
    requires: tuple[str, ...] = ()  # variables only: the secrets a flag waits for
    probe: str | None = None  # variables only: the live check a flag also waits for
    managed_by: str | None = None  # the other policy whose sync state records this secret
    shadowed_by: str | None = None  # reason shadowed: the scope jobs fall back to (display only)
    protection: ProtectionWrite | None = None  # environments only: the protection apply sets
    # secrets and variables: where the copy lives: scope environment | repository | organization
    # (`repository` then holds the organization's login) and store actions | dependabot
    scope: str | None = None
    store: str | None = None
    visibility: str | None = None  # organization scope: the visibility apply sets
    selected_repositories: tuple[str, ...] = ()  # visibility selected: the repositories

    @property
    def target(self) -> Target:
        """The target this change writes to."""
        return Target(
            self.repository,
            self.logical_environment or "",
            self.environment,
            self.store or "actions",
            self.scope == "organization",
        )

    @property
    def is_write(self) -> bool:
        return self.action in WRITE_ACTIONS

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"], data["kind"], data["reason"] = (
            str(self.action),
            str(self.kind),
            str(self.reason),
        )
        data["github_updated_at"] = _iso(self.github_updated_at)
        data["requires"] = list(self.requires)
        data["protection"] = self.protection.to_json() if self.protection else None
        data["selected_repositories"] = list(self.selected_repositories)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Change:
        fields = dict(data)
        fields["action"], fields["kind"] = Action(data["action"]), Kind(data["kind"])
        fields["reason"] = Reason(data["reason"])
        stamp = data.get("github_updated_at")
        fields["github_updated_at"] = datetime.fromisoformat(stamp) if stamp else None
        fields["requires"] = tuple(data.get("requires", ()))
        fields["selected_repositories"] = tuple(data.get("selected_repositories", ()))
        protection = data.get("protection")
        fields["protection"] = ProtectionWrite.from_json(protection) if protection else None
        return cls(**fields)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


@dataclass(frozen=True)
class Plan:
    """An immutable list of changes and the fingerprint of the world it was computed from."""

    changes: tuple[Change, ...]
    fingerprint: str = ""

    @property
    def writes(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.is_write)

    @property
    def has_writes(self) -> bool:
        return any(c.is_write for c in self.changes)

    @property
    def blocked(self) -> tuple[Change, ...]:
        """The cells apply cannot sync (nothing in Vault): reported as warnings, never written."""
        return tuple(c for c in self.changes if c.action is Action.BLOCKED)

    def only(self, keep: Callable[[Change], bool]) -> Plan:
        """The same plan with only the changes `keep` accepts (same fingerprint)."""
        return Plan(tuple(c for c in self.changes if keep(c)), self.fingerprint)

    def summary(self) -> dict[str, int]:
        """How many changes of each action, every action present (0 when none)."""
        counts = {a.value: 0 for a in Action}
        for change in self.changes:
            counts[change.action.value] += 1
        return counts


def diff(desired: DesiredState, observed: Observed) -> Plan:
    """Every change needed to make GitHub match the policy and Vault."""
    changes: list[Change] = []
    for target in desired.targets:
        changes.extend(_target_changes(desired, observed, target))
    return Plan(tuple(changes), observed.fingerprint())


def _target_changes(desired: DesiredState, observed: Observed, target: Target) -> Iterable[Change]:
    env = observed.github.get(target)
    cells = desired.secrets_in(target)
    sync = observed.sync.get(target, SyncState({}, None))
    sync = sync.claimed_by(desired.policy_name, (c.name for c in cells))
    recorded = target in desired.recorded  # no longer named: only what envmatrix wrote there
    if env is None and not target.is_repository_level and not recorded:
        yield _environment_create(target)
    if (protection := _protection_change(desired, observed, target)) is not None:
        yield protection
    secret_changes = [
        c for cell in cells if (c := _secret_change(desired, cell, observed, env, sync))
    ]
    secret_changes = _within_limit(target, secret_changes, env, Kind.SECRET, desired.contacts)
    secret_changes = [_shadowed(c, observed, env) for c in secret_changes]
    if target.organization:
        secret_changes = _organization_rows(desired, target, cells, secret_changes, env, observed)
    yield from secret_changes
    yield from _leftovers(target, {c.name for c in cells}, env, sync, desired.prune, recorded)
    blocked = {c.name for c in secret_changes if c.action is Action.BLOCKED}
    flag_changes = [
        change
        for flag in desired.flags_in(target)
        if (change := _flag_change(flag, env, blocked)) is not None
    ]
    variable_cells = desired.variables_in(target)
    flag_changes += [
        change
        for cell in variable_cells
        if (change := _organization_variable(cell, observed, env, desired, sync)) is not None
    ]
    yield from _within_limit(target, flag_changes, env, Kind.VARIABLE, desired.contacts)
    if variable_cells or recorded or _wrote_variables(sync):
        wanted = {c.name for c in variable_cells} | {f.name for f in desired.flags_in(target)}
        # no variable declared here any more: only the ones this policy wrote
        only_ours = recorded or not variable_cells
        yield from _variable_leftovers(target, wanted, env, sync, desired.prune, only_ours)


def _wrote_variables(sync: SyncState) -> bool:
    """Whether the target's sync state records a variable this policy wrote (one it may have
    dropped since: its leftovers are listed even where the policy declares no variable now)."""
    return any(sync.own_variable(name) for name in sync.variables)


def _environment_create(target: Target) -> Change:
    assert target.github_environment is not None
    return Change(
        Action.CREATE,
        Kind.ENVIRONMENT,
        target.repository,
        target.github_environment,
        target.github_environment,
        Reason.MISSING,
        f"GitHub environment {target.github_environment} does not exist in {target.repository}",
        logical_environment=target.logical_environment,
    )


def _protection_change(desired: DesiredState, observed: Observed, target: Target) -> Change | None:
    """The environment's protection where it is not the policy's (blocked: unknown reviewer)."""
    cell = desired.protection_of(target)
    if cell is None or target.github_environment is None:
        return None
    difference = protection_difference(cell, observed.protection)
    if difference is None:
        return None
    return Change(
        Action.BLOCKED if difference.blocked else Action.UPDATE,
        Kind.ENVIRONMENT,
        target.repository,
        target.github_environment,
        target.github_environment,
        Reason.PROTECTION_DIFFERS,
        difference.detail,
        logical_environment=target.logical_environment,
        protection=difference.write,
    )


def _secret_change(
    desired: DesiredState,
    cell: SecretCell,
    observed: Observed,
    env: ObservedEnvironment | None,
    sync: SyncState,
) -> Change | None:
    entry = observed.vault.get(cell.vault_path, VaultEntry(cell.vault_path, None))
    other = sync.owner_of(cell.name)
    if other is not None and other != sync.policy:
        return _claimed_elsewhere(desired, cell, other, entry)
    if entry.version is None or cell.vault_key not in entry.keys:
        detail = _blocked_detail(desired, cell)
        return _change(cell, Action.BLOCKED, Reason.MISSING_IN_VAULT, detail, entry)
    if (refusal := _value_refusal(desired, cell, observed, entry)) is not None:
        return _change(cell, Action.BLOCKED, *refusal, entry)
    present = env.secrets.get(cell.name) if env is not None else None
    source = f"Vault {cell.vault_ref} v{entry.version}"
    if present is None:
        return _change(cell, Action.CREATE, Reason.MISSING, f"not in GitHub; {source}", entry)
    record = _effective_record(cell, entry, observed, sync.own_record(cell.name))
    reason, detail = _update_reason(cell, entry, present.updated_at, record)
    if reason is None:
        return None
    return _change(cell, Action.UPDATE, reason, f"{detail}; {source}", entry, present.updated_at)


def _claimed_elsewhere(
    desired: DesiredState, cell: SecretCell, other: str, entry: VaultEntry
) -> Change:
    """Two policies claim one secret in one target: neither may write it (each would overwrite
    the other's value, and prune would delete it), so it is blocked, naming both."""
    where = f"{cell.target.repository}/{cell.target.github_environment or REPOSITORY_LEVEL}"
    mine = desired.policy_name or "(unnamed)"
    detail = (
        f"{cell.name} in {where} is managed by policy {other}, and policy {mine} declares it"
        f" too; declare it in one of them — owner: {cell.owner}"
    )
    change = _change(cell, Action.BLOCKED, Reason.MANAGED_ELSEWHERE, detail, entry)
    return replace(change, managed_by=other)


def _value_refusal(
    desired: DesiredState, cell: SecretCell, observed: Observed, entry: VaultEntry
) -> tuple[Reason, str] | None:
    """Why the value at the planned version must not be sent (not a secret, too large), if so."""
    facts = observed.values.get((cell.vault_path, cell.vault_key))
    if facts is None:  # not read (e.g. deleted meanwhile): apply checks again before sending
        return None
    where = f"{desired.mount}/{cell.vault_ref} v{entry.version}"
    owner = owner_with_contact(cell.owner, desired.contacts.get(cell.owner))
    if facts.absence is not None:
        return Reason.EMPTY_IN_VAULT, (
            f"the value at {where} is {facts.absence}, not a secret; not sent — owner: {owner}"
        )
    if facts.size > MAX_VALUE_BYTES:
        return Reason.TOO_LARGE, (
            f"the value at {where} is {facts.size} bytes; GitHub takes at most"
            f" {MAX_VALUE_BYTES} (48 KB); not sent — owner: {owner}"
        )
    return None


def _within_limit(
    target: Target,
    changes: list[Change],
    env: ObservedEnvironment | None,
    kind: Kind,
    contacts: Mapping[str, str],
) -> list[Change]:
    """Creates past GitHub's count limit for the target become blocked rows, so apply starts no
    write GitHub must refuse. What the target holds counts, managed or not; deletes in the same
    run do not free room first (apply writes before it deletes)."""
    scope = target.scope
    limit = (SECRETS_PER_SCOPE if kind is Kind.SECRET else VARIABLES_PER_SCOPE)[scope]
    held = len(env.secrets if kind is Kind.SECRET else env.variables) if env is not None else 0
    creates = [c for c in changes if c.action is Action.CREATE]
    room = max(limit - held, 0)
    if len(creates) <= room:
        return changes
    over = {id(c) for c in creates[room:]}
    where = (
        target.repository
        if target.github_environment is None
        else (f"{target.github_environment} of {target.repository}")
    )
    noun = "secrets" if kind is Kind.SECRET else "variables"
    why = (
        f"GitHub holds at most {limit} {noun} per {scope}; {where} holds {held} and this plan"
        f" adds {len(creates)} ({held + len(creates)} > {limit}); not sent"
    )
    return [_over_limit(c, why, contacts) if id(c) in over else c for c in changes]


def _over_limit(change: Change, why: str, contacts: Mapping[str, str]) -> Change:
    if change.owner is not None:
        why += f" — owner: {owner_with_contact(change.owner, contacts.get(change.owner))}"
    return replace(change, action=Action.BLOCKED, reason=Reason.LIMIT_EXCEEDED, detail=why)


def _shadowed(change: Change, observed: Observed, env: ObservedEnvironment | None) -> Change:
    """A cell whose environment copy stays absent while a wider scope holds the same name."""
    if change.environment is None or change.action not in (Action.CREATE, Action.BLOCKED):
        return change
    if env is not None and change.name in env.secrets:
        return change
    scope = observed.shadows.of(change.repository, change.name)
    if scope is None:
        return change
    meanwhile = "until apply writes it" if change.action is Action.CREATE else "meanwhile"
    return replace(
        change,
        reason=Reason.SHADOWED,
        detail=(
            f"jobs in {change.environment} get {change.name} from the {scope} {meanwhile}"
            f" (environment > repository > organization); {change.detail}"
        ),
        shadowed_by=scope,
    )


def _effective_record(
    cell: SecretCell, entry: VaultEntry, observed: Observed, record: SyncRecord | None
) -> SyncRecord | None:
    """The sync record, moved up to the current version when only a sibling key changed since."""
    if record is None or entry.version is None:
        return record
    unchanged = observed.unchanged.get((cell.vault_path, record.vault_version, entry.version))
    if unchanged is not None and cell.vault_key in unchanged:
        return replace(record, vault_version=entry.version)
    return record


def _update_reason(
    cell: SecretCell, entry: VaultEntry, updated_at: datetime, record: SyncRecord | None
) -> tuple[Reason | None, str]:
    if record is None:
        return Reason.CHANGED_OUTSIDE, "in GitHub but envmatrix has no record of writing it"
    if updated_at > record.written_at:
        return Reason.CHANGED_OUTSIDE, (
            f"GitHub copy updated {_stamp(updated_at)}, after envmatrix wrote it"
            f" {_stamp(record.written_at)}"
        )
    if (record.vault_path, record.vault_key) != (cell.vault_path, cell.vault_key):
        return Reason.SOURCE_CHANGED, f"last synced from {record.vault_path}#{record.vault_key}"
    if record.vault_version != entry.version:
        return Reason.VAULT_NEWER, f"last synced v{record.vault_version}"
    return None, ""


def _stamp(when: datetime) -> str:
    return iso_utc(when)


def _blocked_detail(desired: DesiredState, cell: SecretCell) -> str:
    owner = owner_with_contact(cell.owner, desired.contacts.get(cell.owner))
    return f"missing in Vault at {desired.mount}/{cell.vault_ref} — owner: {owner}"


def _change(
    cell: SecretCell,
    action: Action,
    reason: Reason,
    detail: str,
    entry: VaultEntry,
    updated_at: datetime | None = None,
) -> Change:
    return _cell_row(Kind.SECRET, cell, action, reason, detail, entry.version, updated_at)


def _cell_row(
    kind: Kind,
    cell: SecretCell | VariableCell,
    action: Action,
    reason: Reason,
    detail: str,
    version: int | None,
    updated_at: datetime | None,
    value: str | None = None,
) -> Change:
    """A secret or variable row of one cell: its address, Vault source and owner."""
    organization = cell.target.organization
    return Change(
        action,
        kind,
        cell.target.repository,
        cell.target.github_environment,
        cell.name,
        reason,
        detail,
        logical_environment=cell.target.logical_environment or None,
        owner=cell.owner,
        vault_path=cell.vault_path,
        vault_key=cell.vault_key,
        vault_version=version,
        github_updated_at=updated_at,
        value=value,
        scope=cell.target.scope,
        store=cell.target.store,
        visibility=cell.visibility if organization else None,
        selected_repositories=cell.selected if organization else (),
    )


def _access_differs(
    cell: SecretCell | VariableCell, present: ObservedSecret | ObservedVariable
) -> str | None:
    """How an organization copy's visibility or selected repositories differ from the cell's."""
    if cell.visibility is None:
        return None
    if present.visibility != cell.visibility:
        return f"visibility {present.visibility} in GitHub, {cell.visibility} in the policy"
    if cell.visibility != "selected":
        return None
    held = tuple(sorted(present.selected_repositories or (), key=str.lower))
    if tuple(r.lower() for r in held) == tuple(r.lower() for r in cell.selected):
        return None
    return (
        f"selected repositories {', '.join(held) or 'none'} in GitHub,"
        f" {', '.join(cell.selected)} in the policy"
    )


def _access_change(
    cell: SecretCell | VariableCell, change: Change | None, env: ObservedEnvironment | None
) -> Change | None:
    """An organization secret's or variable's row, with a visibility difference planned: an
    update when the copy is otherwise in sync (`visibility-differs`), the difference named in
    the detail of an update planned anyway (the write carries the policy's visibility)."""
    if not cell.target.organization or env is None:
        return change
    present: ObservedSecret | ObservedVariable | None = (
        env.secrets.get(cell.name) if isinstance(cell, SecretCell) else env.variables.get(cell.name)
    )
    if present is None or (differs := _access_differs(cell, present)) is None:
        return change
    if change is not None:
        if change.action is Action.UPDATE:
            return replace(change, detail=f"{change.detail}; {differs}")
        return change
    kind = Kind.SECRET if isinstance(cell, SecretCell) else Kind.VARIABLE
    version: int | None = None
    source = "policy value"
    if cell.vault_path is not None:
        version = None  # filled in by the caller for secrets (the observed Vault version)
        source = f"Vault {cell.vault_ref}"
    value = cell.value if isinstance(cell, VariableCell) else None
    return _cell_row(
        kind,
        cell,
        Action.UPDATE,
        Reason.VISIBILITY_DIFFERS,
        f"{differs}; {source}",
        version,
        present.updated_at,
        value=value,
    )


def _organization_variable(
    cell: VariableCell,
    observed: Observed,
    env: ObservedEnvironment | None,
    desired: DesiredState,
    sync: SyncState,
) -> Change | None:
    """A variable's row; an organization variable's visibility difference planned too."""
    change = _access_change(cell, _variable_change(desired, cell, observed, env, sync), env)
    if change is None or change.reason is not Reason.VISIBILITY_DIFFERS or not cell.vault_path:
        return change
    entry = observed.vault.get(cell.vault_path, VaultEntry(cell.vault_path, None))
    return replace(change, vault_version=entry.version, detail=f"{change.detail} v{entry.version}")


def _organization_rows(
    desired: DesiredState,
    target: Target,
    cells: tuple[SecretCell, ...],
    changes: list[Change],
    env: ObservedEnvironment | None,
    observed: Observed,
) -> list[Change]:
    """An organization target's secret rows: visibility differences planned, and a write a
    narrower secret overrides in a repository it reaches marked shadowed."""
    by_name = {c.name: c for c in changes}
    rows: list[Change] = []
    for cell in cells:
        change = _access_change(cell, by_name.get(cell.name), env)
        if change is not None and change.reason is Reason.VISIBILITY_DIFFERS:
            entry = observed.vault.get(cell.vault_path, VaultEntry(cell.vault_path, None))
            change = replace(change, vault_version=entry.version)
            if entry.version is None:
                continue  # nothing to write it from; the blocked row is planned already
        if change is not None:
            rows.append(_organization_shadowed(change, cell, observed))
    return rows


def _organization_shadowed(change: Change, cell: SecretCell, observed: Observed) -> Change:
    """A write to an organization secret that a same-named repository or environment secret
    overrides in a repository it reaches: jobs there get the narrower one (apply writes it
    anyway; the row says who wins)."""
    if change.action not in (Action.CREATE, Action.UPDATE, Action.BLOCKED):
        return change
    reaches = cell.selected if cell.visibility == "selected" else None
    store = cell.target.store
    winner = observed.shadows.over_organization(store, cell.target.repository, cell.name, reaches)
    if winner is None:
        return change
    return replace(
        change,
        reason=Reason.SHADOWED,
        detail=(
            f"jobs get {change.name} from the {winner}, not from the organization"
            f" (environment > repository > organization); {change.detail}"
        ),
        shadowed_by=winner,
    )


def _leftovers(
    target: Target,
    wanted: set[str],
    env: ObservedEnvironment | None,
    sync: SyncState,
    prune: bool,
    recorded: bool = False,
) -> Iterable[Change]:
    """Secrets in a targeted environment that the policy does not name: this policy's own are
    pruned when prune is on; another policy's are orphans naming it (`managed_by`). In a
    `recorded` target (one the policy no longer names) only this policy's records are listed."""
    if env is None:
        return
    for name, secret in sorted(env.secrets.items()):
        if name in wanted:
            continue
        if target.organization and name not in sync.records:
            continue  # an organization holds many teams' secrets: only envmatrix's are listed
        if recorded and sync.own_record(name) is None:
            continue  # not this policy's target any more: only what it wrote there
        record, other = sync.own_record(name), sync.owner_of(name)
        ours = record is not None and secret.updated_at <= record.written_at
        action, reason = _leftover_action(prune, ours)
        yield Change(
            action,
            Kind.SECRET,
            target.repository,
            target.github_environment,
            name,
            reason,
            f"in GitHub, not in the policy ({_leftover_detail(sync, name, ours)})",
            logical_environment=target.logical_environment or None,
            github_updated_at=secret.updated_at,
            managed_by=other if other is not None and other != sync.policy else None,
            scope=target.scope,
            store=target.store,
        )


def _leftover_action(prune: bool, ours: bool) -> tuple[Action, Reason]:
    """A leftover secret/variable is deleted when prune is on and envmatrix wrote it (and
    nobody changed it since); otherwise it is an orphan."""
    if prune and ours:
        return Action.DELETE, Reason.PRUNED
    return Action.ORPHAN, Reason.NOT_IN_POLICY


def _leftover_detail(sync: SyncState, name: str, ours: bool) -> str:
    other = sync.owner_of(name)
    if ours:
        return "written by envmatrix"
    if other is not None and other != sync.policy:
        return f"managed by policy {other}"
    if sync.is_legacy(name):
        return "written by envmatrix before policies had names; a policy that names it adopts it"
    return "not written by envmatrix"


def _flag_change(
    flag: FlagCell, env: ObservedEnvironment | None, blocked: set[str]
) -> Change | None:
    """The flag variable after this apply: true only when none of its secrets is blocked."""
    if not flag.variable:
        return None
    waiting = [name for name in flag.requires if name in blocked]
    value = "false" if waiting else "true"
    current = env.variables.get(flag.name) if env is not None else None
    if current is not None and current.value == value:
        return None
    reason = Reason.FLAG_NOT_READY if waiting else Reason.FLAG_READY
    detail = f"waiting for {', '.join(waiting)}" if waiting else "every required secret in sync"
    was = "unset" if current is None else current.value
    return Change(
        Action.CREATE if current is None else Action.UPDATE,
        Kind.VARIABLE,
        flag.target.repository,
        flag.target.github_environment,
        flag.name,
        reason,
        f"{was} -> {value}: {detail}",
        logical_environment=flag.target.logical_environment,
        value=value,
        requires=flag.requires,
        probe=flag.probe,
    )


def _variable_change(
    desired: DesiredState,
    cell: VariableCell,
    observed: Observed,
    env: ObservedEnvironment | None,
    sync: SyncState,
) -> Change | None:
    """A declared variable's create or update; values are compared (GitHub returns them)."""
    present = env.variables.get(cell.name) if env is not None else None
    owner = owner_with_contact(cell.owner, desired.contacts.get(cell.owner))
    version: int | None = None
    if cell.vault_path is None:
        wanted, source = value_digest(cell.value or ""), "policy value"
    else:
        assert cell.vault_key is not None
        entry = observed.vault.get(cell.vault_path, VaultEntry(cell.vault_path, None))
        version = entry.version
        where = f"{desired.mount}/{cell.vault_ref}"
        if entry.version is None or cell.vault_key not in entry.keys:
            detail = f"missing in Vault at {where} — owner: {owner}"
            return _variable_row(cell, Action.BLOCKED, Reason.MISSING_IN_VAULT, detail, version)
        source = f"Vault {cell.vault_ref} v{entry.version}"
        digest = observed.variable_digests.get((cell.vault_path, cell.vault_key))
        if digest is None:  # not readable now: apply reads it and writes what it finds
            wanted = ""
        elif digest == value_digest(""):
            detail = f"the value at {where} v{entry.version} is empty; not sent — owner: {owner}"
            return _variable_row(cell, Action.BLOCKED, Reason.EMPTY_IN_VAULT, detail, version)
        else:
            wanted = digest
    if present is None:
        detail = f"not in GitHub; {source}"
        return _variable_row(cell, Action.CREATE, Reason.MISSING, detail, version)
    if value_digest(present.value) == wanted:
        return None
    written = sync.own_variable(cell.name)
    if written is None:
        reason, why = Reason.CHANGED_OUTSIDE, "in GitHub but envmatrix has no record of writing it"
    elif present.updated_at > written:
        reason, why = (
            Reason.CHANGED_OUTSIDE,
            (
                f"GitHub copy updated {_stamp(present.updated_at)}, after envmatrix wrote it"
                f" {_stamp(written)}"
            ),
        )
    else:
        reason = Reason.VAULT_NEWER if cell.vault_path else Reason.VALUE_DIFFERS
        why = "the value in GitHub differs from the policy's"
    return _variable_row(
        cell, Action.UPDATE, reason, f"{why}; {source}", version, present.updated_at
    )


def _variable_row(
    cell: VariableCell,
    action: Action,
    reason: Reason,
    detail: str,
    version: int | None,
    updated_at: datetime | None = None,
) -> Change:
    return _cell_row(
        Kind.VARIABLE, cell, action, reason, detail, version, updated_at, value=cell.value
    )


def _variable_leftovers(
    target: Target,
    wanted: set[str],
    env: ObservedEnvironment | None,
    sync: SyncState,
    prune: bool,
    recorded: bool = False,
) -> Iterable[Change]:
    """Variables in a target of declared variables that the policy does not name (nor flags):
    this policy's own are deleted when prune is on; the rest are orphans. In a `recorded`
    target only the variables this policy wrote."""
    if env is None:
        return
    for name, variable in sorted(env.variables.items()):
        if name in wanted:
            continue
        if target.organization and name not in sync.variables:
            continue  # as for secrets: only the organization variables envmatrix wrote
        if recorded and sync.own_variable(name) is None:
            continue
        written = sync.own_variable(name)
        ours = written is not None and variable.updated_at <= written
        action, reason = _leftover_action(prune, ours)
        by = "written by envmatrix" if ours else "not written by envmatrix"
        yield Change(
            action,
            Kind.VARIABLE,
            target.repository,
            target.github_environment,
            name,
            reason,
            f"in GitHub, not in the policy ({by})",
            logical_environment=target.logical_environment or None,
            github_updated_at=variable.updated_at,
            scope=target.scope,
            store=target.store,
        )
