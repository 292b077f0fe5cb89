"""Sync a chosen set of secret cells: the one entry rotation uses into the plan/apply pipeline.

`sync_cells` runs desired -> observe -> diff -> apply over the cells a caller picks and nothing
else, so a rotation writes exactly the GitHub copies of the secrets it rotated (never a flag,
never a prune, never another secret of the same environment). `sync_flags`, its sibling,
re-evaluates the flag variables that require given secrets (after a rotation's sync), and writes
those variables only; `remove_copies` deletes the copies of a value rolled back to nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import replace

from envmatrix.audit.events import AuditSink
from envmatrix.pipeline.apply import Applier, ApplyReport, ItemResult
from envmatrix.pipeline.desired import SecretCell, Target, desired_state
from envmatrix.pipeline.observe import Observed, observe
from envmatrix.pipeline.plan import WRITE_ACTIONS, Action, Change, Kind, Plan, diff
from envmatrix.policy import Policy
from envmatrix.ports import GitHubPort, VaultPort


def sync_cells(
    policy: Policy,
    wanted: Callable[[SecretCell], bool],
    vault: VaultPort,
    github: GitHubPort,
    audit: AuditSink,
    actor: str,
    on_result: Callable[[ItemResult], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ApplyReport:
    """Make every GitHub copy of the cells `wanted` accepts match Vault, with envmatrix's apply.

    It starts from every environment of the policy, so repository-scope copies (which belong to
    no one environment) are among the candidates. Environments the cells need are created as
    apply would; rows for other secrets never reach the applier. `on_start` and `on_result`
    follow the writes as they land (see `Applier`).
    """
    desired = desired_state(policy).only_secrets(wanted)
    names = {cell.name for cell in desired.secrets}
    observed = observe(desired, vault, github)
    plan = diff(desired, observed).only(
        lambda c: c.kind is Kind.ENVIRONMENT or (c.kind is Kind.SECRET and c.name in names)
    )
    applier = Applier(
        vault,
        github,
        observed.sync,
        audit,
        actor,
        on_result=on_result,
        on_start=on_start,
        transit=transit_key(policy),
    )
    return applier.apply(plan)


def transit_key(policy: Policy) -> tuple[str, str] | None:
    """(mount, key) of the policy's `vault.transit` HMAC key, or None when it names none."""
    transit = policy.vault.transit
    return (transit.mount, transit.key) if transit is not None else None


Probe = Callable[[str, str], str | None]  # (probe kind, logical environment) -> why it failed


def sync_flags(
    policy: Policy,
    secrets: Collection[str],
    vault: VaultPort,
    github: GitHubPort,
    audit: AuditSink,
    actor: str,
    probe: Probe | None = None,
    environments: Collection[str] | None = None,
) -> ApplyReport:
    """Re-evaluate the flag variables that require any of `secrets` (in the logical
    `environments`, all when None) and write those variables.

    Evaluated as plan/apply would (a flag is true when none of its required secrets is missing
    in Vault, and its probe passes), over the flags' own environments. Only variables are
    written: a flag that would turn true while one of its required secrets still waits for a
    GitHub write is left as it is (the next apply writes both). Nothing else is written.
    """
    wanted = set(secrets)
    full = desired_state(policy)
    flags = tuple(
        f
        for f in full.flags
        if f.variable
        and wanted & set(f.requires)
        and (environments is None or f.target.logical_environment in environments)
    )
    targets = {f.target for f in flags}
    needed = {(f.target, name) for f in flags for name in f.requires}
    desired = replace(
        full,
        targets=tuple(sorted(targets)),
        secrets=tuple(c for c in full.secrets if (c.target, c.name) in needed),
        flags=flags,
        prune=False,
    )
    if not flags:
        return ApplyReport((), (), ())
    observed = observe(desired, vault, github)
    plan = _flag_writes(diff(desired, observed))
    return Applier(
        vault, github, observed.sync, audit, actor, probe=probe, transit=transit_key(policy)
    ).apply(plan)


def _flag_writes(plan: Plan) -> Plan:
    """The plan's flag variable writes, less a `true` whose secrets are not all in GitHub yet."""
    unsynced = {
        (c.repository, c.environment, c.name)
        for c in plan.changes
        if c.kind is Kind.SECRET and c.action in WRITE_ACTIONS
    }

    def keep(change: Change) -> bool:
        if change.kind is not Kind.VARIABLE or change.action is Action.BLOCKED:
            return False
        waiting = {(change.repository, change.environment, n) for n in change.requires}
        return change.value != "true" or not (waiting & unsynced)

    return plan.only(keep)


def remove_copies(
    policy: Policy,
    wanted: Callable[[SecretCell], bool],
    written_from: tuple[str, int],
    vault: VaultPort,
    github: GitHubPort,
    audit: AuditSink,
    actor: str,
) -> ApplyReport:
    """Delete the GitHub copies of the cells `wanted` accepts that Vault no longer holds and that
    envmatrix wrote from `written_from` (Vault path, version) — e.g. what a first-ever rotation
    wrote, when it is rolled back to no value. A copy written by anyone else since (a later
    `updated_at` than the sync record) or from another version is left alone.
    """
    desired = desired_state(policy).only_secrets(wanted)
    observed = observe(desired, vault, github)
    plan = diff(desired, observed)
    deletes = tuple(
        replace(change, action=Action.DELETE, detail="removed: its only value was rolled back")
        for change in plan.blocked
        if _written_from(observed, change, written_from)
    )
    return Applier(vault, github, observed.sync, audit, actor, transit=transit_key(policy)).apply(
        Plan(deletes, plan.fingerprint)
    )


def _written_from(observed: Observed, change: Change, written_from: tuple[str, int]) -> bool:
    target = Target(change.repository, change.logical_environment or "", change.environment)
    present = observed.github.get(target)
    secret = present.secrets.get(change.name) if present is not None else None
    state = observed.sync.get(target)
    record = state.records.get(change.name) if state is not None else None
    return (
        secret is not None
        and record is not None
        and (record.vault_path, record.vault_version) == written_from
        and secret.updated_at <= record.written_at
    )
