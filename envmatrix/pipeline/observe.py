"""Observe the world: Vault metadata, GitHub environments, and envmatrix's sync state.

This is the only I/O before the diff. It reads no secret values: Vault through the metadata-only
`subkeys` endpoint, GitHub through list endpoints. Request economy per run: one environments list
per repository with environment targets, one secrets list page per 100 secrets and one variables
list page per 30 variables per target, one Vault read per distinct path and one sync-state read per
target. A repository-level target (`scope: repository` secrets) costs one repository secrets list
(`GET /repos/{o}/{r}/actions/secrets`, paginated); a policy without such secrets asks for none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from envmatrix.errors import VaultNotFound
from envmatrix.pipeline.desired import DesiredState, SecretCell, Target
from envmatrix.pipeline.protection import ProtectionObservation, observe_protection
from envmatrix.pipeline.state import SyncRecord, SyncState, state_path
from envmatrix.ports import GitHubPort, ObservedEnvironment, VaultDocument, VaultEntry, VaultPort


@dataclass(frozen=True)
class Observed:
    """What Vault and GitHub hold for the targets of a desired state.

    `unchanged` answers, for a path that moved from the version last synced to a newer one, which
    of its keys kept their value: a new version of a shared path (`apps/prod/supabase` holding
    both url and service_key) must not make every secret in it look stale.
    """

    vault: Mapping[str, VaultEntry]
    github: Mapping[Target, ObservedEnvironment | None]  # None: the GitHub environment is absent
    sync: Mapping[Target, SyncState]
    unchanged: Mapping[tuple[str, int, int], frozenset[str]] = field(default_factory=dict)
    protection: ProtectionObservation = field(default_factory=ProtectionObservation)

    def fingerprint(self) -> str:
        """A digest of everything observed; a saved plan is stale when it changes."""
        return hashlib.sha256(json.dumps(self._canonical(), sort_keys=True).encode()).hexdigest()

    def _canonical(self) -> dict[str, object]:
        canonical: dict[str, object] = {
            "vault": {p: [e.version, sorted(e.keys)] for p, e in self.vault.items()},
            "github": {_key(t): _canonical_env(e) for t, e in self.github.items()},
            "sync": {_key(t): _canonical_sync(s) for t, s in self.sync.items()},
        }
        if self.protection.environments:  # only a policy with protection: adds to the digest
            canonical["protection"] = self.protection.canonical()
        return canonical


def _key(target: Target) -> str:
    return f"{target.repository}|{target.github_environment or ''}"


def _canonical_sync(state: SyncState) -> object:
    return {n: [r.pack(), state.managed_by.get(n, "")] for n, r in state.records.items()}


def _canonical_env(env: ObservedEnvironment | None) -> object:
    if env is None:
        return None
    return {
        "secrets": {n: s.updated_at.isoformat() for n, s in env.secrets.items()},
        "variables": {n: v.value for n, v in env.variables.items()},
    }


def observe(desired: DesiredState, vault: VaultPort, github: GitHubPort) -> Observed:
    """Read what the desired state needs to be diffed, and nothing more."""
    entries = {path: vault.read_entry(path) for path in desired.vault_paths()}
    protection = observe_protection(desired, github)
    environments = _observe_github(desired, github, protection.environments)
    sync = {t: _sync_state(desired, t, vault.read_document(state_path(t))) for t in desired.targets}
    unchanged = _unchanged_keys(desired, entries, sync, vault)
    return Observed(entries, environments, sync, unchanged, protection)


def _sync_state(desired: DesiredState, target: Target, document: VaultDocument | None) -> SyncState:
    """A target's sync state as this policy sees it: legacy records of its secrets adopted."""
    names = (cell.name for cell in desired.secrets_in(target))
    return SyncState.from_document(document).claimed_by(desired.policy_name, names)


def _unchanged_keys(
    desired: DesiredState,
    entries: Mapping[str, VaultEntry],
    sync: Mapping[Target, SyncState],
    vault: VaultPort,
) -> dict[tuple[str, int, int], frozenset[str]]:
    """For shared paths that moved since the last sync: the keys whose value did not change.

    Values are compared in memory and dropped; they go nowhere. Single-key paths need no read:
    a new version there always means a new value.
    """
    moves = {
        move
        for cell in desired.secrets
        if (move := _move(cell, sync[cell.target].own_record(cell.name), entries[cell.vault_path]))
    }
    return {move: _same_keys(vault, *move) for move in sorted(moves)}


def _move(
    cell: SecretCell, record: SyncRecord | None, entry: VaultEntry
) -> tuple[str, int, int] | None:
    """(path, version last synced, current version) when the cell's shared path moved since."""
    shared = len(entry.keys) > 1
    if record is None or not shared or not entry.version or record.vault_path != cell.vault_path:
        return None
    if record.vault_version == entry.version:
        return None
    return cell.vault_path, record.vault_version, entry.version


def _same_keys(vault: VaultPort, path: str, old: int, new: int) -> frozenset[str]:
    try:
        before, after = vault.read_values(path, old), vault.read_values(path, new)
    except VaultNotFound:  # the old version was deleted or destroyed: assume all changed
        return frozenset()
    return frozenset(k for k, v in after.items() if k in before and before[k] == v)


def _observe_github(
    desired: DesiredState, github: GitHubPort, listed: Mapping[str, frozenset[str]]
) -> dict[Target, ObservedEnvironment | None]:
    """`listed`: environment names of the repositories already listed (with their protection)."""
    existing = {
        repo: set(listed[repo])
        if repo in listed
        else {name.lower() for name in github.list_environments(repo)}
        for repo in sorted({t.repository for t in desired.targets if not t.is_repository_level})
    }
    return {
        t: _observe_repository(t, github)
        if t.is_repository_level
        else _observe_target(t, existing[t.repository], github, bool(desired.flags_in(t)))
        for t in desired.targets
    }


def _observe_repository(target: Target, github: GitHubPort) -> ObservedEnvironment:
    secrets = {s.name.upper(): s for s in github.list_repository_secrets(target.repository)}
    return ObservedEnvironment("", secrets)


def _observe_target(
    target: Target, existing: set[str], github: GitHubPort, with_variables: bool
) -> ObservedEnvironment | None:
    repo, env = target.repository, target.github_environment
    assert env is not None  # repository-level targets are observed by _observe_repository
    if env.lower() not in existing:
        return None
    secrets = {s.name.upper(): s for s in github.list_environment_secrets(repo, env)}
    # variables are listed only where a flag lives: nothing else of ours is a variable
    listed = github.list_environment_variables(repo, env) if with_variables else []
    variables = {v.name.upper(): v for v in listed}
    return ObservedEnvironment(env, secrets, variables)
