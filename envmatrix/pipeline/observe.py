"""Observe the world: Vault metadata, GitHub environments, and envmatrix's sync state.

This is the only I/O before the diff. It reads no secret values: Vault through the metadata-only
`subkeys` endpoint, GitHub through list endpoints. Request economy per run: one environments list
per repository with environment targets, one secrets list page per 100 secrets and one variables
list page per 30 variables per target, one Vault read per distinct path and one sync-state read per
target. A repository-level target (`scope: repository` secrets) costs one repository secrets list
(`GET /repos/{o}/{r}/actions/secrets`, paginated).

Scopes shadow each other (a job gets the environment secret, else the repository secret, else
the organization secret of the same name), so every repository with environment targets also
costs one repository secrets list (shared with its repository-level target) and every owner of
such repositories one organization secrets list (`GET /orgs/{org}/actions/secrets`): list
endpoints only, never a request per secret.

Values: one read of each path's current version, in memory, to tell whether each key holds a
value at all (`envmatrix.secret.absence`) and how large it is (GitHub takes at most 48 KB); only
those two facts are kept, never the value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

from envmatrix.errors import GitHubError, VaultNotFound, VaultPermissionDenied
from envmatrix.pipeline.desired import DesiredState, SecretCell, Target
from envmatrix.pipeline.protection import ProtectionObservation, observe_protection
from envmatrix.pipeline.state import SyncRecord, SyncState, state_path
from envmatrix.ports import (
    GitHubPort,
    ObservedEnvironment,
    ObservedSecret,
    ObservedVariable,
    VaultDocument,
    VaultEntry,
    VaultPort,
)
from envmatrix.secret import SecretValue, absence

VAULT_CONCURRENCY = 8  # Vault reads (entries, values, sync states) in flight at once, at most
_In = TypeVar("_In")
_Out = TypeVar("_Out")


@dataclass(frozen=True)
class ValueFacts:
    """What plan may know about one Vault value: why it is not a secret (None: it is one) and
    its size in UTF-8 bytes. Never the value."""

    absence: str | None
    size: int


@dataclass(frozen=True)
class Shadows:
    """Same-named secrets of the wider scopes a job falls back to, per repository.

    `repository[repo]` and `organization[repo]` map an upper-case secret name to a label for
    messages (`repository secret`, `organization secret acme (visibility all)`). `unknown`
    names the scopes that could not be listed (e.g. a token without organization access).
    """

    repository: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    organization: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()
    # for organization targets: (store, repository lower-case) -> upper-case name -> label of
    # the repository or environment secret that wins over the organization's in that repository
    narrower: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)

    def over_organization(
        self, store: str, organization: str, name: str, reaches: tuple[str, ...] | None
    ) -> str | None:
        """The narrower secret that jobs get instead of the organization's `name`, in one of the
        repositories it `reaches` (None: every repository of the organization observed)."""
        wanted = {r.lower() for r in reaches} if reaches is not None else None
        for (kind, repo), names in sorted(self.narrower.items()):
            if kind != store or not repo.startswith(f"{organization.lower()}/"):
                continue
            if (wanted is None or repo in wanted) and name.upper() in names:
                return names[name.upper()]
        return None

    def of(self, repository: str, name: str) -> str | None:
        """The scope a job of `repository` falls back to for `name`, if any (nearest first)."""
        found = self.repository.get(repository, {}).get(name.upper())
        return found or self.organization.get(repository, {}).get(name.upper())


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
    values: Mapping[tuple[str, str], ValueFacts] = field(default_factory=dict)  # (path, key)
    shadows: Shadows = field(default_factory=Shadows)
    # variables' Vault sources: (path, key) -> sha256 of the value at the observed version
    variable_digests: Mapping[tuple[str, str], str] = field(default_factory=dict)
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
    key = f"{target.repository}|{target.github_environment or ''}"
    if target.organization or target.store != "actions":  # the older keys stay as they were
        key += f"|{target.scope}|{target.store}"
    return key


def _canonical_sync(state: SyncState) -> object:
    return {n: [r.pack(), state.managed_by.get(n, "")] for n, r in state.records.items()}


def _canonical_env(env: ObservedEnvironment | None) -> object:
    if env is None:
        return None
    return {
        "secrets": {
            n: _canonical_item(s.updated_at.isoformat(), s) for n, s in env.secrets.items()
        },
        "variables": {n: _canonical_item(v.value, v) for n, v in env.variables.items()},
    }


def _canonical_item(seen: str, item: ObservedSecret | ObservedVariable) -> object:
    """What the fingerprint keeps of a secret or variable: its time or value, and for an
    organization's its visibility and selected repositories too."""
    if item.visibility is None:
        return seen
    return [seen, item.visibility, list(item.selected_repositories or ())]


def observe(
    desired: DesiredState, vault: VaultPort, github: GitHubPort, concurrency: int = 1
) -> Observed:
    """Read what the desired state needs to be diffed, and nothing more.

    `concurrency`: how many GitHub list requests (and Vault reads, at most VAULT_CONCURRENCY)
    may be in flight at once, in bounded thread pools; the same requests as a serial run (1: no
    threads at all). The
    ports must then be safe to call from several threads (GitHubAdapter and VaultAdapter are)."""
    # Vault's HTTP session keeps 10 connections (requests' default pool): stay below it
    vault_pool = _Pool(min(concurrency, VAULT_CONCURRENCY))
    paths = list(desired.vault_paths())
    entries = dict(zip(paths, vault_pool.map(vault.read_entry, paths), strict=True))
    current = _current_values(entries, vault, vault_pool)
    variable_entries = {
        path: entries.get(path) or vault.read_entry(path) for path in desired.variable_vault_paths()
    }
    digests = _variable_digests(variable_entries, vault)
    pool = _Pool(concurrency)
    repository_secrets = _repository_secrets(desired, github, pool)
    organizations = _organization_secrets(desired, github)
    protection = observe_protection(desired, github)
    environments = _observe_github(
        desired, github, repository_secrets, protection.environments, pool, organizations
    )
    documents = vault_pool.map(lambda t: vault.read_document(state_path(t)), desired.targets)
    sync = {
        t: _sync_state(desired, t, document)
        for t, document in zip(desired.targets, documents, strict=True)
    }
    environments = _recorded_variables(desired, github, environments, sync)
    unchanged = _unchanged_keys(desired, entries, sync, vault, current)
    facts = {
        (path, key): ValueFacts(absence(value), len(value.reveal().encode()))
        for path, values in current.items()
        for key, value in values.items()
    }
    listed, seen = _with_shadow_targets(desired, github, repository_secrets, environments, pool)
    shadows = _shadows(desired, github, listed, organizations, seen)
    all_entries = {**variable_entries, **entries}
    return Observed(all_entries, environments, sync, unchanged, facts, shadows, digests, protection)


def _recorded_variables(
    desired: DesiredState,
    github: GitHubPort,
    environments: Mapping[Target, ObservedEnvironment | None],
    sync: Mapping[Target, SyncState],
) -> dict[Target, ObservedEnvironment | None]:
    """The variables of the targets whose variables were not listed (the policy declares none
    there now) but whose sync state records variables this policy wrote: one variables list
    each, so a dropped last variable is still an orphan or pruned. Listed after the state was
    read: a write in between makes the copy look changed outside, never ours to delete."""
    found = dict(environments)
    for target, env in environments.items():
        state = sync[target]
        if env is None or env.variables or target.store != "actions":
            continue
        if _variables_listed(desired, target):
            continue
        if not any(state.own_variable(name) for name in state.variables):
            continue
        if target.organization:
            listed = github.list_organization_variables(target.repository)
        elif target.github_environment is None:
            listed = github.list_repository_variables(target.repository)
        else:
            listed = github.list_environment_variables(target.repository, target.github_environment)
        variables = {v.name.upper(): v for v in listed}
        found[target] = replace(env, variables=variables)
    return found


def _variables_listed(desired: DesiredState, target: Target) -> bool:
    """Whether `_observe_github` listed the target's variables."""
    if target in desired.recorded or desired.variables_in(target):
        return True
    return target.github_environment is not None and bool(desired.flags_in(target))


def _with_shadow_targets(
    desired: DesiredState,
    github: GitHubPort,
    repository_secrets: dict[str, list[ObservedSecret]],
    environments: Mapping[Target, ObservedEnvironment | None],
    pool: _Pool,
) -> tuple[dict[str, list[ObservedSecret]], dict[Target, ObservedEnvironment | None]]:
    """The repository secrets and targets observed, plus shard 1's `shadow_targets` (the other
    shards' repository and environment targets, listed for the organization secrets' shadow
    check only: one repository secrets list per repository, one environments list per
    repository with environments, one secrets list per target)."""
    if not desired.shadow_targets:
        return repository_secrets, dict(environments)
    context = replace(
        desired,
        targets=desired.shadow_targets,
        secrets=(),
        flags=(),
        variables=(),
        recorded=frozenset(),
    )
    unlisted = replace(
        context,
        targets=tuple(t for t in context.targets if t.repository not in repository_secrets),
    )
    merged = {**_repository_secrets(unlisted, github, pool), **repository_secrets}
    seen = _observe_github(context, github, merged, {}, pool, {})
    return merged, {**seen, **environments}


def value_digest(value: str) -> str:
    """sha256 hex of a variable value, how plan compares Vault's value with GitHub's."""
    return hashlib.sha256(value.encode()).hexdigest()


def _variable_digests(
    entries: Mapping[str, VaultEntry], vault: VaultPort
) -> dict[tuple[str, str], str]:
    """The digest of each key of each variable source path at its observed version."""
    digests: dict[tuple[str, str], str] = {}
    for path, entry in entries.items():
        if entry.version is None:
            continue
        try:
            values = vault.read_values(path, entry.version)
        except (VaultNotFound, VaultPermissionDenied):
            continue  # unknown: apply reads (and checks) the value before it writes
        for key, value in values.items():
            digests[(path, key)] = value_digest(value.reveal())
    return digests


def _current_values(
    entries: Mapping[str, VaultEntry], vault: VaultPort, pool: _Pool | None = None
) -> dict[str, dict[str, SecretValue]]:
    """Each path's values at the version observed (in memory, for this observation only),
    read in `pool` (one read per path, as a serial run)."""

    def read(item: tuple[str, int]) -> dict[str, SecretValue] | None:
        path, version = item
        try:
            return vault.read_values(path, version)
        except (VaultNotFound, VaultPermissionDenied):
            # deleted since read_entry, or a plan-only token that may read metadata alone: the
            # facts stay unknown and apply checks the value before it sends anything
            return None

    wanted = [(path, e.version) for path, e in entries.items() if e.version is not None]
    read_all = (pool or _Pool(1)).map(read, wanted)
    return {
        path: values
        for (path, _), values in zip(wanted, read_all, strict=True)
        if values is not None
    }


def _sync_state(desired: DesiredState, target: Target, document: VaultDocument | None) -> SyncState:
    """A target's sync state as this policy sees it: legacy records of its secrets adopted."""
    names = (cell.name for cell in desired.secrets_in(target))
    return SyncState.from_document(document).claimed_by(desired.policy_name, names)


def _unchanged_keys(
    desired: DesiredState,
    entries: Mapping[str, VaultEntry],
    sync: Mapping[Target, SyncState],
    vault: VaultPort,
    current: Mapping[str, Mapping[str, SecretValue]],
) -> dict[tuple[str, int, int], frozenset[str]]:
    """For paths that moved since the last sync: the keys whose value did not change.

    Any path counts, not only one holding several keys now: a version that removed a sibling
    key (two keys before, one now) or rewrote the same value leaves the remaining key as it
    was. Values are compared in memory and dropped; they go nowhere.
    """
    moves = {
        move
        for cell in desired.secrets
        if (move := _move(cell, sync[cell.target].own_record(cell.name), entries[cell.vault_path]))
    }
    return {move: _same_keys(vault, *move, current.get(move[0])) for move in sorted(moves)}


def _move(
    cell: SecretCell, record: SyncRecord | None, entry: VaultEntry
) -> tuple[str, int, int] | None:
    """(path, version last synced, current version) when the cell's path moved since."""
    if record is None or not entry.version or record.vault_path != cell.vault_path:
        return None
    if record.vault_version == entry.version:
        return None
    return cell.vault_path, record.vault_version, entry.version


def _same_keys(
    vault: VaultPort, path: str, old: int, new: int, now: Mapping[str, SecretValue] | None
) -> frozenset[str]:
    try:
        before = vault.read_values(path, old)
        after = now if now is not None else vault.read_values(path, new)
    except (VaultNotFound, VaultPermissionDenied):  # old version gone, or not ours to read:
        return frozenset()  # assume every key changed
    return frozenset(k for k, v in after.items() if k in before and before[k] == v)


class _Pool:
    """`map` over a bounded thread pool, results in the order given: never more than `size`
    calls at once; `size` 1 runs in the calling thread."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)

    def map(self, fn: Callable[[_In], _Out], items: Iterable[_In]) -> list[_Out]:
        listed = list(items)
        if self.size == 1 or len(listed) < 2:
            return [fn(item) for item in listed]
        with ThreadPoolExecutor(max_workers=min(self.size, len(listed))) as executor:
            return list(executor.map(fn, listed))


def _observe_github(
    desired: DesiredState,
    github: GitHubPort,
    repository_secrets: Mapping[str, list[ObservedSecret]],
    listed: Mapping[str, frozenset[str]],
    pool: _Pool | None = None,
    organizations: Mapping[tuple[str, str], _Listing] | None = None,
) -> dict[Target, ObservedEnvironment | None]:
    """`listed`: environment names of the repositories already listed (with their protection);
    `organizations`: each (organization, store)'s secrets list (or why it failed)."""
    pool = pool or _Pool(1)
    repos = sorted({t.repository for t in desired.targets if t.github_environment is not None})
    unlisted = [r for r in repos if r not in listed]
    fetched = dict(zip(unlisted, pool.map(github.list_environments, unlisted), strict=True))
    existing = {
        repo: set(listed[repo]) if repo in listed else {name.lower() for name in fetched[repo]}
        for repo in repos
    }

    def one(t: Target) -> ObservedEnvironment | None:
        if t.organization:
            return _observe_organization(desired, t, github, organizations or {})
        if t.store == "dependabot":
            return _observe_repository(github.list_dependabot_secrets(t.repository), [])
        # a recorded target (pipeline/recorded.py) may hold variables envmatrix wrote
        recorded = t in desired.recorded
        if t.is_repository_level:
            with_variables = bool(desired.variables_in(t)) or recorded
            return _observe_repository(
                repository_secrets[t.repository],
                github.list_repository_variables(t.repository) if with_variables else [],
            )
        with_variables = bool(desired.flags_in(t)) or bool(desired.variables_in(t)) or recorded
        return _observe_target(t, existing[t.repository], github, with_variables)

    observed = pool.map(one, desired.targets)
    return dict(zip(desired.targets, observed, strict=True))


def _repository_secrets(
    desired: DesiredState, github: GitHubPort, pool: _Pool | None = None
) -> dict[str, list[ObservedSecret]]:
    """One repository secrets list per targeted repository (for its own target and shadows),
    and per repository an organization secret of the run is selected for (shadows)."""
    repos = sorted(
        {t.repository for t in desired.targets if not t.organization and t.store == "actions"}
        | _selected_repositories(desired, "actions")
    )
    listed = (pool or _Pool(1)).map(github.list_repository_secrets, repos)
    return dict(zip(repos, listed, strict=True))


def _observe_repository(
    listed: list[ObservedSecret], variables: list[ObservedVariable]
) -> ObservedEnvironment:
    return ObservedEnvironment(
        "", {s.name.upper(): s for s in listed}, {v.name.upper(): v for v in variables}
    )


_Listing = list[ObservedSecret] | GitHubError


def _selected_repositories(desired: DesiredState, store: str) -> set[str]:
    """The repositories the run's organization secrets of `store` are selected for."""
    return {
        repo
        for cell in desired.secrets
        if cell.target.organization and cell.target.store == store
        for repo in cell.selected
    }


def _organization_secrets(
    desired: DesiredState, github: GitHubPort
) -> dict[tuple[str, str], _Listing]:
    """One secrets list per (organization, store): the organizations of the run's organization
    targets, and the owners of its environment targets (the scope their jobs fall back to)."""
    wanted = {(t.repository, t.store) for t in desired.targets if t.organization}
    wanted |= {
        (t.repository.split("/", 1)[0], "actions")
        for t in desired.targets
        if t.github_environment is not None
    }
    found: dict[tuple[str, str], _Listing] = {}
    for org, store in sorted(wanted, key=lambda w: (w[0].lower(), w[1])):
        if (org.lower(), store) in found:
            continue
        try:
            if store == "dependabot":
                found[(org.lower(), store)] = github.list_dependabot_organization_secrets(org)
            else:
                found[(org.lower(), store)] = github.list_organization_secrets(org)
        except GitHubError as exc:
            found[(org.lower(), store)] = exc
    return found


def _observe_organization(
    desired: DesiredState,
    target: Target,
    github: GitHubPort,
    organizations: Mapping[tuple[str, str], _Listing],
) -> ObservedEnvironment:
    """An organization target: its secrets (one list, shared with shadows), its variables when
    the run declares some (one list), and the selected repositories of each declared secret or
    variable that is selected both in the policy and in GitHub (one list each)."""
    org = target.repository
    listing = organizations.get((org.lower(), target.store))
    if listing is None:
        listing = _organization_secrets(desired, github)[(org.lower(), target.store)]
    if isinstance(listing, GitHubError):
        raise listing
    kind = f"{target.store}/secrets"
    wanted = {c.name: c.visibility for c in desired.secrets_in(target)}
    secrets = {
        s.name.upper(): _with_selected(github, org, kind, s, wanted.get(s.name.upper()))
        for s in listing
    }
    variables: dict[str, ObservedVariable] = {}
    if desired.variables_in(target) or target in desired.recorded:
        wanted_variables = {c.name: c.visibility for c in desired.variables_in(target)}
        variables = {
            v.name.upper(): _with_selected(
                github, org, "actions/variables", v, wanted_variables.get(v.name.upper())
            )
            for v in github.list_organization_variables(org)
        }
    return ObservedEnvironment("", secrets, variables)


_Item = TypeVar("_Item", ObservedSecret, ObservedVariable)


def _with_selected(
    github: GitHubPort, org: str, kind: str, item: _Item, wanted: str | None
) -> _Item:
    if wanted != "selected" or item.visibility != "selected":
        return item
    selected = github.list_selected_repositories(org, kind, item.name)
    return replace(item, selected_repositories=tuple(sorted(selected, key=str.lower)))


def _shadows(
    desired: DesiredState,
    github: GitHubPort,
    repository_secrets: Mapping[str, list[ObservedSecret]],
    organizations: Mapping[tuple[str, str], _Listing] | None = None,
    environments: Mapping[Target, ObservedEnvironment | None] | None = None,
) -> Shadows:
    """The repository and organization secrets jobs of environment targets fall back to, and
    the repository and environment secrets that win over the run's organization secrets."""
    repos = sorted({t.repository for t in desired.targets if t.github_environment is not None})
    repository = {
        r: {s.name.upper(): "repository secret" for s in repository_secrets[r]} for r in repos
    }
    organization: dict[str, dict[str, str]] = {}
    unknown: list[str] = []
    listings = dict(organizations or {})
    for org in sorted({r.split("/", 1)[0] for r in repos}, key=str.lower):
        listed = listings.get((org.lower(), "actions"))
        if listed is None:
            try:
                listed = github.list_organization_secrets(org)
            except GitHubError as exc:
                listed = exc
        if isinstance(listed, GitHubError):
            if listed.status != 404:  # 404: the owner is a user account, which has none
                unknown.append(f"organization {org} secrets ({listed})")
            continue
        labels = {s.name.upper(): _org_label(org, s) for s in listed}
        for repo in repos:
            if repo.split("/", 1)[0].lower() == org.lower():
                organization[repo] = labels
    narrower = _narrower(desired, github, repository_secrets, environments or {})
    return Shadows(repository, organization, tuple(unknown), narrower)


def _narrower(
    desired: DesiredState,
    github: GitHubPort,
    repository_secrets: Mapping[str, list[ObservedSecret]],
    environments: Mapping[Target, ObservedEnvironment | None],
) -> dict[tuple[str, str], dict[str, str]]:
    """For runs with organization targets: per (store, repository) the repository and
    environment secrets observed (listed already; a selected repository of a Dependabot
    organization secret that the run does not target costs one Dependabot secrets list)."""
    stores = {t.store for t in desired.targets if t.organization}
    if not stores:
        return {}
    found: dict[tuple[str, str], dict[str, str]] = {}
    if "actions" in stores:
        found.update(_repository_labels(desired, repository_secrets))
    for target, env in sorted(environments.items()):
        if env is None or target.organization or target.store not in stores:
            continue
        if target in desired.recorded:  # not the policy's: counts in no run (see shard.py)
            continue
        where = target.repository
        if target.github_environment is not None:
            where += f" (environment {target.github_environment})"
        label = ("environment" if target.github_environment else "repository") + " secret"
        labels = found.setdefault((target.store, target.repository.lower()), {})
        for name in env.secrets:
            labels.setdefault(name, f"{label} of {where}")
    if "dependabot" in stores:
        _selected_dependabot(desired, github, found)
    return found


def _repository_labels(
    desired: DesiredState, repository_secrets: Mapping[str, list[ObservedSecret]]
) -> dict[tuple[str, str], dict[str, str]]:
    """("actions", repository) -> the repository's Actions secrets, for the repositories of the
    policy's own targets (and shard 1's shadow targets), not of recorded ones: the same in a
    single run and in the shards (pipeline/shard.py)."""
    named = {
        t.repository
        for t in (*desired.targets, *desired.shadow_targets)
        if not t.organization and t.store == "actions" and t not in desired.recorded
    } | _selected_repositories(desired, "actions")
    found: dict[tuple[str, str], dict[str, str]] = {}
    for repo, listed in repository_secrets.items():
        if repo in named:
            labels = found.setdefault(("actions", repo.lower()), {})
            labels.update({s.name.upper(): f"repository secret of {repo}" for s in listed})
    return found


def _selected_dependabot(
    desired: DesiredState, github: GitHubPort, found: dict[tuple[str, str], dict[str, str]]
) -> None:
    for repo in sorted(_selected_repositories(desired, "dependabot")):
        if ("dependabot", repo.lower()) not in found:
            listed = github.list_dependabot_secrets(repo)
            found[("dependabot", repo.lower())] = {
                s.name.upper(): f"Dependabot repository secret of {repo}" for s in listed
            }


def _org_label(org: str, secret: ObservedSecret) -> str:
    visibility = f" (visibility {secret.visibility})" if secret.visibility else ""
    return f"organization secret of {org}{visibility}"


def _observe_target(
    target: Target, existing: set[str], github: GitHubPort, with_variables: bool
) -> ObservedEnvironment | None:
    repo, env = target.repository, target.github_environment
    assert env is not None  # repository-level targets are observed by _observe_repository
    if env.lower() not in existing:
        return None
    secrets = {s.name.upper(): s for s in github.list_environment_secrets(repo, env)}
    # variables are listed only where a flag or a declared variable lives
    listed = github.list_environment_variables(repo, env) if with_variables else []
    variables = {v.name.upper(): v for v in listed}
    return ObservedEnvironment(env, secrets, variables)
