"""The desired state: every (repository, environment, secret) and flag cell a policy asks for.

A `scope: repository` secret has one cell per repository, in the repository-level target
(`Target.repository_level(repo)`: no environment). Repository-level cells belong to a run that
covers every environment of the policy: `--environment production` alone leaves them out, since
they are not in any one environment.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TypeVar

from envmatrix.errors import UsageError
from envmatrix.policy import (
    DEFAULT_VISIBILITY,
    FlagSpec,
    Policy,
    ProtectionSpec,
    SecretSpec,
    VariableSpec,
)
from envmatrix.ports import BranchPattern

# What output shows where an environment name would stand, for repository-level items.
REPOSITORY_LEVEL = "(repository)"


@dataclass(frozen=True, order=True)
class Target:
    """A GitHub environment of a repository that the policy writes to (or a repository's own
    secrets, or an organization's: `organization` True, `repository` is then its login).

    `store` is "actions" (Actions secrets and variables) or "dependabot" (Dependabot secrets).
    """

    repository: str
    logical_environment: str  # the policy's name for it; "" for the repository level
    github_environment: str | None  # None for the repository level (Actions repository secrets)
    store: str = "actions"
    organization: bool = False

    @classmethod
    def repository_level(cls, repository: str, store: str = "actions") -> Target:
        """The repository's own Actions (or Dependabot) secrets, seen by every environment."""
        return cls(repository, "", None, store)

    @classmethod
    def organization_level(cls, organization: str, store: str = "actions") -> Target:
        """An organization's Actions (or Dependabot) secrets and variables."""
        return cls(organization, "", None, store, True)

    @property
    def is_repository_level(self) -> bool:
        return self.github_environment is None and not self.organization

    @property
    def scope(self) -> str:
        """ "environment", "repository" or "organization" (the policy's `scope:`)."""
        if self.organization:
            return "organization"
        return "repository" if self.github_environment is None else "environment"


@dataclass(frozen=True, order=True)
class SecretCell:
    """One secret the policy wants in one GitHub environment, and where its value lives."""

    target: Target
    name: str
    vault_path: str
    vault_key: str
    owner: str
    service: str | None
    visibility: str | None = None  # organization targets: all | private | selected
    selected: tuple[str, ...] = ()  # visibility selected: the repositories (owner/name)

    @property
    def vault_ref(self) -> str:
        return f"{self.vault_path}#{self.vault_key}"


@dataclass(frozen=True, order=True)
class FlagCell:
    """One feature flag in one GitHub environment and the secrets it waits for."""

    target: Target
    name: str
    requires: tuple[str, ...]
    variable: bool
    probe: str | None = None  # a live check (e.g. "supabase") that must pass too


@dataclass(frozen=True, order=True)
class VariableCell:
    """One plain Actions variable the policy wants in one target: a literal `value`, or the
    Vault `vault_path#vault_key` its value is read from (not a secret)."""

    target: Target
    name: str
    owner: str
    value: str | None
    vault_path: str | None = None
    vault_key: str | None = None
    visibility: str | None = None  # organization targets: all | private | selected
    selected: tuple[str, ...] = ()  # visibility selected: the repositories (owner/name)

    @property
    def vault_ref(self) -> str | None:
        return f"{self.vault_path}#{self.vault_key}" if self.vault_path else None


@dataclass(frozen=True)
class ProtectionCell:
    """An environment's wanted protection in one repository; None: the key is not named, so
    GitHub's setting is left as it is.

    `reviewers` are ("user", login) and ("team", "org/slug") as the policy spells them;
    `deployment_branches` is "all", "protected" or the custom patterns.
    """

    target: Target
    reviewers: tuple[tuple[str, str], ...] | None = None
    wait_timer: int | None = None
    prevent_self_review: bool | None = None
    deployment_branches: str | tuple[BranchPattern, ...] | None = None


@dataclass(frozen=True)
class DesiredState:
    """Everything the policy asks for, restricted to the selected environments."""

    targets: tuple[Target, ...]
    secrets: tuple[SecretCell, ...]
    flags: tuple[FlagCell, ...]
    prune: bool
    mount: str = "secret"
    contacts: Mapping[str, str] = field(default_factory=dict)  # owner -> contact
    policy_name: str = ""  # whose sync-state records this run reads and writes (Policy.identity)
    variables: tuple[VariableCell, ...] = ()  # plain Actions variables (`variables:`)
    protections: tuple[ProtectionCell, ...] = ()  # environments whose protection is declared
    # targets the policy no longer names but whose sync state records this policy's writes
    # (in `targets` too, with no cells): observed so their records show as orphans or pruned
    # (see pipeline/recorded.py)
    recorded: frozenset[Target] = frozenset()
    # `--shard`: shard 1 plans the organization's secrets, which repository and environment
    # secrets of every shard may override (`shadowed`): the other shards' targets, observed
    # for that check only (see pipeline/shard.py)
    shadow_targets: tuple[Target, ...] = ()

    def only_secrets(self, wanted: Callable[[SecretCell], bool]) -> DesiredState:
        """The same state narrowed to the secret cells `wanted` accepts: their targets only, no
        flags, no protection and no pruning (nothing outside those cells may be written or
        deleted)."""
        cells = tuple(c for c in self.secrets if wanted(c))
        targets = tuple(sorted({c.target for c in cells}))
        return replace(
            self,
            targets=targets,
            secrets=cells,
            flags=(),
            prune=False,
            variables=(),
            protections=(),
            recorded=frozenset(),
            shadow_targets=(),
        )

    def protection_of(self, target: Target) -> ProtectionCell | None:
        return next((p for p in self.protections if p.target == target), None)

    def vault_paths(self) -> tuple[str, ...]:
        """Distinct Vault paths, in a stable order."""
        return tuple(sorted({cell.vault_path for cell in self.secrets}))

    def variable_vault_paths(self) -> tuple[str, ...]:
        """Distinct Vault paths variables read their values from, in a stable order."""
        return tuple(sorted({c.vault_path for c in self.variables if c.vault_path is not None}))

    def variables_in(self, target: Target) -> tuple[VariableCell, ...]:
        """The variable cells of `target`, in the state's order (O(1): indexed once)."""
        return self._variables_by_target.get(target, ())

    def secrets_in(self, target: Target) -> tuple[SecretCell, ...]:
        """The secret cells of `target`, in the state's order (O(1): indexed once)."""
        return self._secrets_by_target.get(target, ())

    def flags_in(self, target: Target) -> tuple[FlagCell, ...]:
        """The flag cells of `target`, in the state's order (O(1): indexed once)."""
        return self._flags_by_target.get(target, ())

    # Per-target indexes, built on first use: a lookup per target that scanned every cell made
    # observe and diff grow with the square of the org (issue 13). cached_property stores in the
    # instance's __dict__, which a frozen dataclass allows; `replace()` builds a fresh index.
    @cached_property
    def _secrets_by_target(self) -> Mapping[Target, tuple[SecretCell, ...]]:
        return _by_target(self.secrets)

    @cached_property
    def _flags_by_target(self) -> Mapping[Target, tuple[FlagCell, ...]]:
        return _by_target(self.flags)

    @cached_property
    def _variables_by_target(self) -> Mapping[Target, tuple[VariableCell, ...]]:
        return _by_target(self.variables)


_Cell = TypeVar("_Cell", SecretCell, FlagCell, VariableCell)


def _by_target(cells: Iterable[_Cell]) -> dict[Target, tuple[_Cell, ...]]:
    """Cells grouped by target, each group in the order given."""
    grouped: dict[Target, list[_Cell]] = {}
    for cell in cells:
        grouped.setdefault(cell.target, []).append(cell)
    return {target: tuple(group) for target, group in grouped.items()}


def owner_with_contact(owner: str, contact: str | None) -> str:
    """`reliability (reliability@occ.example)`, or the owner alone: how messages name an owner."""
    return f"{owner} ({contact})" if contact else owner


def resolve_environments(policy: Policy, names: Sequence[str]) -> tuple[str, ...]:
    """`--environment` values -> logical names; accepts GitHub names where unambiguous."""
    if not names:
        return tuple(policy.environments)
    return tuple(dict.fromkeys(_resolve_one(policy, name) for name in names))


def _resolve_one(policy: Policy, name: str) -> str:
    if name in policy.environments:
        return name
    matches = [k for k, v in policy.environments.items() if v.github.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]
    spellings = [*policy.environments, *(v.github for v in policy.environments.values())]
    known = ", ".join(policy.environments)
    raise UsageError(
        f"--environment {name!r} is not an environment of the policy"
        f"{did_you_mean(name, spellings)} ({known})"
    )


def policy_repositories(policy: Policy) -> tuple[str, ...]:
    """Every repository the policy targets (github.repositories, then secrets' and flags')."""
    found = list(policy.github.repositories)
    specs: list[SecretSpec | FlagSpec | VariableSpec] = [
        *policy.secrets.values(),
        *policy.flags.values(),
        *policy.variables.values(),
    ]
    for spec in specs:
        found += policy.repositories_for(spec)
    return tuple(dict.fromkeys(found))


def resolve_repository(policy: Policy, name: str | None) -> str | None:
    """A `--repository` value -> the policy's spelling of it (GitHub names ignore case);
    UsageError, with the closest name the policy has, for one it does not target."""
    if name is None:
        return None
    known = policy_repositories(policy)
    spelled = next((r for r in known if r.lower() == name.lower()), None)
    if spelled is None:
        raise UsageError(
            f"--repository {name!r} is not targeted by the policy"
            f"{did_you_mean(name, known)} ({', '.join(known) or 'no repositories'})"
        )
    return spelled


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`; did you mean acme/web?` for the closest known name (ignoring case), else ``."""
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    return f"; did you mean {by_lower[close[0]]}?" if close else ""


def desired_state(policy: Policy, environments: Iterable[str] | None = None) -> DesiredState:
    """Expand the policy into cells, keeping only `environments` (logical names) when given."""
    selected = set(environments) if environments is not None else set(policy.environments)
    with_repository = selected >= set(policy.environments)
    secrets = tuple(sorted(_secret_cells(policy, selected, with_repository)))
    flags = tuple(sorted(_flag_cells(policy, selected)))
    variables = tuple(sorted(_variable_cells(policy, selected, with_repository)))
    protections = tuple(sorted(_protection_cells(policy, selected), key=lambda p: p.target))
    targets = {c.target for c in secrets} | {f.target for f in flags}
    targets |= {v.target for v in variables}
    targets |= {p.target for p in protections}
    contacts = {name: owner.contact for name, owner in policy.owners.items()}
    return DesiredState(
        tuple(sorted(targets)),
        secrets,
        flags,
        policy.github.prune,
        policy.vault.mount,
        contacts,
        policy.identity,
        variables,
        protections,
    )


def _protection_cells(policy: Policy, selected: set[str]) -> Iterable[ProtectionCell]:
    """One cell per repository holding a protected environment: github.repositories and every
    repository an environment secret or flag of that environment targets."""
    for env, spec in policy.environments.items():
        if spec.protection is None or env not in selected:
            continue
        repositories = list(policy.github.repositories)
        items: list[SecretSpec | FlagSpec] = [*policy.secrets.values(), *policy.flags.values()]
        for item in items:
            if env in item.environments:
                repositories += policy.repositories_for(item)
        for repository in dict.fromkeys(repositories):
            yield _protection_cell(_target(policy, repository, env), spec.protection)


def _protection_cell(target: Target, protection: ProtectionSpec) -> ProtectionCell:
    reviewers = (
        None
        if protection.reviewers is None
        else tuple(
            ("user", r.user) if r.user is not None else ("team", r.team or "")
            for r in protection.reviewers
        )
    )
    branches = protection.deployment_branches
    return ProtectionCell(
        target,
        reviewers,
        protection.wait_timer,
        protection.prevent_self_review,
        branches
        if not isinstance(branches, tuple)
        else tuple(BranchPattern(p.type, p.name) for p in branches),
    )


def _target(policy: Policy, repository: str, environment: str) -> Target:
    return Target(repository, environment, policy.github_environment(environment))


def _secret_cells(
    policy: Policy, selected: set[str], with_repository: bool
) -> Iterable[SecretCell]:
    for name, spec in policy.secrets.items():
        visibility, chosen = _access(spec)
        for target, env in _places(policy, spec, selected, with_repository):
            yield SecretCell(
                target,
                name,
                spec.vault_path(env),
                spec.vault_key(name),
                spec.owner,
                spec.service,
                visibility,
                chosen,
            )


def _access(spec: SecretSpec | VariableSpec) -> tuple[str | None, tuple[str, ...]]:
    """(visibility, selected repositories) of an org secret or variable, else (None, ())."""
    if spec.scope != "organization":
        return None, ()
    visibility = spec.visibility or DEFAULT_VISIBILITY
    chosen = (
        tuple(sorted(spec.repositories or (), key=str.lower)) if visibility == "selected" else ()
    )
    return visibility, chosen


def _places(
    policy: Policy, spec: SecretSpec | VariableSpec, selected: set[str], with_repository: bool
) -> list[tuple[Target, str]]:
    """(target, logical environment) of each copy a secret or variable has: one per repository
    at the repository level (`scope: repository`, when the run covers it; environment ""), else
    one per selected environment and repository. Organization and Dependabot copies are
    outside every environment too: one per organization (`github.organization`) or per
    repository's Dependabot secrets."""
    store = getattr(spec, "store", "actions")
    if spec.scope == "organization":
        org = policy.github.organization
        if not with_repository or org is None:
            return []
        return [(Target.organization_level(org, store), "")]
    if spec.scope == "repository" and store != "actions":
        if not with_repository:
            return []
        return [(Target.repository_level(r, store), "") for r in policy.repositories_for(spec)]
    if spec.repository_level:
        if not with_repository:
            return []
        return [(Target.repository_level(r), "") for r in policy.repositories_for(spec)]
    return [
        (_target(policy, repo, env), env)
        for env in spec.environments
        if env in selected
        for repo in policy.repositories_for(spec)
    ]


def _flag_cells(policy: Policy, selected: set[str]) -> Iterable[FlagCell]:
    for name, spec in policy.flags.items():
        for env in spec.environments:
            if env not in selected:
                continue
            for repo in policy.repositories_for(spec):
                yield FlagCell(
                    _target(policy, repo, env), name, spec.requires, spec.variable, spec.probe
                )


def _variable_cells(
    policy: Policy, selected: set[str], with_repository: bool
) -> Iterable[VariableCell]:
    for name, spec in policy.variables.items():
        visibility, chosen = _access(spec)
        for target, env in _places(policy, spec, selected, with_repository):
            if spec.vault is None:
                yield VariableCell(
                    target, name, spec.owner, spec.value, visibility=visibility, selected=chosen
                )
            else:
                path, key = spec.vault_path(env), spec.vault_key(name)
                yield VariableCell(target, name, spec.owner, None, path, key, visibility, chosen)
