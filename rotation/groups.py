"""Rotation groups: the secrets of a policy that share one resolved Vault path rotate together.

A group is keyed by its resolved path (`SecretSpec.vault_path(env)`). Usually a path holds one
environment's secrets (`apps/{environment}/zoho`); a path without `{environment}` is shared by
every environment that reads it, and rotating it re-syncs all of them, since they all read the
same Vault version. A `scope: repository` secret reads one path for every environment (there is
no `{environment}` in it): its group is that path, and its copies are the Actions repository
secrets of its target repositories. Environment secrets at the same path (the policy allows it)
belong to the same group. The group's `rotation:` is the one its rotating secrets declare; the
secrets at the path without one (a client id beside a refresh token) are carried along unchanged.

Environment selections (`--environment`) follow the plan's rule: repository-scope secrets belong
to every environment at once, so they are selected only when no environment is named, or all are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from envmatrix.errors import UsageError
from envmatrix.pipeline.desired import SecretCell
from envmatrix.policy import Policy, RotationSpec, SecretSpec


@dataclass(frozen=True)
class RotationGroup:
    """The secrets at one Vault path, and how they rotate."""

    path: str
    environments: tuple[str, ...]  # logical environments that read this path, policy order
    secrets: tuple[str, ...]  # every secret at the path (all are re-synced)
    keys: Mapping[str, str]  # rotating secret name -> Vault key (what the strategy replaces)
    spec: RotationSpec
    repository_level: bool = False  # a scope: repository secret reads the path

    @property
    def environment(self) -> str | None:
        """The environment the strategy acts for (the first that reads the path); None when
        only repository-scope secrets read it."""
        return self.environments[0] if self.environments else None

    @property
    def name(self) -> str:
        """A short label: the rotating secrets."""
        return ", ".join(self.keys)

    def holds(self, cell: SecretCell) -> bool:
        """Whether a desired secret cell is a GitHub copy of this group's path (what a rotation
        re-syncs)."""
        return cell.name in self.secrets and cell.vault_path == self.path


def secret_paths(
    policy: Policy, spec: SecretSpec, environments: Sequence[str] = ()
) -> list[tuple[str | None, str]]:
    """(logical environment, resolved Vault path) for each place the secret is read, in the
    selected environments (all when none). A repository-scope secret has one place, environment
    None, selected only when every environment is."""
    if spec.repository_level:
        every = not environments or set(environments) >= set(policy.environments)
        return [(None, spec.vault_path(""))] if every else []
    return [
        (env, spec.vault_path(env))
        for env in spec.environments
        if not environments or env in environments
    ]


def group_at(policy: Policy, path: str) -> RotationGroup:
    """The rotation group at a resolved Vault path. UsageError when nothing there rotates."""
    members = [
        (n, e) for n, s in policy.secrets.items() for e, p in secret_paths(policy, s) if p == path
    ]
    rotating = {n: policy.secrets[n] for n, _ in members if policy.secrets[n].rotation}
    if not rotating:
        raise UsageError(f"nothing at Vault path {path} has a rotation: in the policy")
    specs = {spec.rotation.model_dump_json() for spec in rotating.values() if spec.rotation}
    if len(specs) > 1:
        raise UsageError(
            f"{', '.join(rotating)} share Vault path {path} but declare different rotation:"
            " secrets that share a path rotate together, so give them one rotation: spec"
        )
    spec = next(iter(rotating.values())).rotation
    assert spec is not None
    environments = tuple(e for e in policy.environments if any(env == e for _, env in members))
    return RotationGroup(
        path,
        environments,
        tuple(dict.fromkeys(n for n, _ in members)),
        {n: s.vault_key(n) for n, s in rotating.items()},
        spec,
        repository_level=any(env is None for _, env in members),
    )


def groups_for(policy: Policy, name: str, environments: Sequence[str] = ()) -> list[RotationGroup]:
    """NAME's groups in each of its environments (or the selected ones).

    A repository-scope secret has one value for every environment, so naming environments for it
    is a UsageError rather than a silent rotation of what every environment uses.
    """
    spec = policy.secrets.get(name)
    if spec is None:
        raise UsageError(f"{name} is not a secret of the policy")
    if spec.rotation is None:
        raise UsageError(f"{name} has no rotation: in the policy; nothing to rotate")
    if spec.repository_level and environments:
        raise UsageError(
            f"{name} is a scope: repository secret (one value for every environment);"
            " rotate it without --environment"
        )
    chosen = secret_paths(policy, spec, environments)
    if not chosen:
        raise UsageError(f"{name} is not used in {', '.join(environments)}")
    return [group_at(policy, path) for path in dict.fromkeys(p for _, p in chosen)]


def rotating_paths(policy: Policy, environments: Sequence[str] = ()) -> list[str]:
    """Every resolved Vault path with a rotating secret (in the environments), in policy order."""
    return list(dict.fromkeys(_paths(policy, environments)))


def _paths(policy: Policy, environments: Sequence[str]) -> Iterable[str]:
    for spec in policy.secrets.values():
        if spec.rotation is not None:
            yield from (path for _, path in secret_paths(policy, spec, environments))
