"""`envmatrix import`: a starting policy from what GitHub and Vault hold, never a secret value.

What is read:
- GitHub: every environment of each repository with its secret names and its variables (names and
  values: variables are not secret), the repository's Actions secret names and variables, and,
  for `--organization`, the organization's repositories (`GET /orgs/{org}/repos`) and its
  secret names.
- Vault: the KV v2 mount's folders (metadata LIST) and, per path, its key names (the `subkeys`
  endpoint answers key names with every value replaced by null). No KV data read happens.

The matching rule (documented in the README, "Importing an existing organization"):
- A GitHub secret NAME matches a Vault `path#key` when the key is named like the secret,
  case-insensitively with `-` read as `_` (`stripe_key` for STRIPE_KEY), or when the path's last
  segment, `_` and the key spell it (`apps/production/supabase#service_key` for
  SUPABASE_SERVICE_KEY).
- An environment secret looks in paths with a segment equal to its logical environment and
  becomes the template `apps/{environment}/supabase#service_key` when one and the same template
  matches in every environment that holds it; failing that, one path outside every
  environment's folders matching it is used as is (`shared: true` when several environments
  hold the secret). A repository secret uses one path outside every environment's folders.
- Anything else (no match, several matches, environments needing different paths, a name held
  at two scopes or in different environments per repository, a variable whose value differs
  between its places, organization-level items) is listed as not imported, with the reason.

Every imported entry names the placeholder owner `unassigned`, declared under `owners:` with a
contact the user must replace. Logical environment names are the GitHub names, lower-case, with
characters outside `[A-Za-z0-9_.-]` replaced by `-`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from envmatrix.errors import GitHubError, RuntimeFailure, UsageError
from envmatrix.policy import GITHUB_LOGIN, LOGICAL_NAME, REPOSITORY, is_reserved_vault_path
from envmatrix.ports import GitHubPort, VaultPort

PLACEHOLDER_OWNER = "unassigned"
PLACEHOLDER_CONTACT = "nobody yet: replace with the owning team's contact"
ENVIRONMENT = "{environment}"
MAX_VAULT_PATHS = 10_000  # a walk that finds more stops: import is for a team's mount


@dataclass(frozen=True)
class Holding:
    """One secret or variable GitHub holds: `environment` is the GitHub environment name (None:
    repository level); `value` only for variables."""

    kind: str  # "secret" | "variable"
    name: str
    repository: str
    environment: str | None
    value: str | None = None

    @property
    def sort_key(self) -> tuple[str, str, str, str]:
        """Kind, name, repository, then environment (the repository level first)."""
        return (self.kind, self.name, self.repository.lower(), (self.environment or "").lower())


@dataclass(frozen=True)
class NotImported:
    """Something GitHub holds that the draft leaves out, and why (a list of reasons a human
    can act on; never a value)."""

    kind: str  # "secret" | "variable" | "organization-secret"
    name: str
    repository: str | None
    environment: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "repository": self.repository,
            "environment": self.environment,
            "reason": self.reason,
        }

    def line(self) -> str:
        where = self.repository or "organization"
        if self.environment is not None:
            where += f" environment {self.environment}"
        elif self.repository is not None:
            where += " (repository)"
        return f"{self.kind} {self.name} in {where}: {self.reason}"


@dataclass(frozen=True)
class DraftEntry:
    """One `secrets:` or `variables:` entry of the draft: `vault` (secrets) or `value`
    (variables); `environments` are logical names (empty for scope repository)."""

    name: str
    scope: str  # "environment" | "repository"
    environments: tuple[str, ...]
    repositories: tuple[str, ...]
    vault: str | None = None
    value: str | None = None
    shared: bool = False


@dataclass(frozen=True)
class ImportDraft:
    """The starting policy and what it leaves out."""

    mount: str
    repositories: tuple[str, ...]
    environments: Mapping[str, str]  # logical -> GitHub environment name
    secrets: tuple[DraftEntry, ...]
    variables: tuple[DraftEntry, ...]
    not_imported: tuple[NotImported, ...]

    def policy_data(self) -> dict[str, Any]:
        """The policy as plain data (YAML and JSON), in the contract's key order."""
        return {
            "version": 1,
            "vault": {"mount": self.mount},
            "github": {"repositories": list(self.repositories)},
            "environments": {k: {"github": v} for k, v in self.environments.items()},
            "owners": {PLACEHOLDER_OWNER: {"contact": PLACEHOLDER_CONTACT}},
            "secrets": {e.name: self._entry(e, "vault") for e in self.secrets},
            "variables": {e.name: self._entry(e, "value") for e in self.variables},
        }

    def _entry(self, entry: DraftEntry, source: str) -> dict[str, Any]:
        data: dict[str, Any] = {"owner": PLACEHOLDER_OWNER}
        if entry.scope == "repository":
            data["scope"] = "repository"
        data[source] = entry.vault if source == "vault" else entry.value
        if entry.environments:
            data["environments"] = list(entry.environments)
        if entry.shared:
            data["shared"] = True
        if entry.repositories != self.repositories:
            data["repositories"] = list(entry.repositories)
        return data

    def to_json(self) -> dict[str, Any]:
        """`{"policy", "owner_placeholder", "not_imported", "summary"}` (values only of
        variables, which are not secret)."""
        return {
            "policy": self.policy_data(),
            "owner_placeholder": PLACEHOLDER_OWNER,
            "not_imported": [n.to_json() for n in self.not_imported],
            "summary": {
                "secrets": len(self.secrets),
                "variables": len(self.variables),
                "not_imported": len(self.not_imported),
            },
        }


# -- reading GitHub and Vault ----------------------------------------------------------------


def import_repositories(
    github: GitHubPort, repositories: Sequence[str], organization: str | None
) -> tuple[str, ...]:
    """The repositories to import: those named, then the organization's (deduplicated, case
    ignored). Raises UsageError when neither is given or nothing is found."""
    for name in repositories:
        if not REPOSITORY.match(name) or {".", ".."} & set(name.split("/")):
            raise UsageError(f"--repository {name!r}: must be owner/name")
    if organization is not None and not GITHUB_LOGIN.match(organization):
        raise UsageError(f"--organization {organization!r}: not a GitHub organization name")
    found = list(repositories)
    if organization is not None:
        found += github.list_organization_repositories(organization)
    unique = {r.lower(): r for r in reversed(found)}
    ordered = tuple(dict.fromkeys(unique[r.lower()] for r in found))
    if not ordered:
        raise UsageError(
            "import needs --repository OWNER/NAME or --organization ORG (with repositories)"
        )
    return ordered


def github_holdings(github: GitHubPort, repository: str) -> list[Holding]:
    """Every secret name and variable of a repository: per environment and at its level."""
    held = [
        Holding("secret", s.name, repository, None)
        for s in github.list_repository_secrets(repository)
    ]
    held += [
        Holding("variable", v.name, repository, None, v.value)
        for v in github.list_repository_variables(repository)
    ]
    for environment in github.list_environments(repository):
        held += [
            Holding("secret", s.name, repository, environment)
            for s in github.list_environment_secrets(repository, environment)
        ]
        held += [
            Holding("variable", v.name, repository, environment, v.value)
            for v in github.list_environment_variables(repository, environment)
        ]
    return held


def organization_items(github: GitHubPort, organization: str | None) -> list[NotImported]:
    """The organization's own secrets, each listed as not imported: `scope: organization` is
    what would take them (switch them on here once it exists). 403: none can be listed."""
    if organization is None:
        return []
    try:
        secrets = github.list_organization_secrets(organization)
    except GitHubError as exc:
        if exc.status not in (403, 404):
            raise
        why = f"the organization's secrets could not be listed (HTTP {exc.status})"
        return [NotImported("organization-secret", "*", None, None, why)]
    reason = "organization scope: not imported (yet); declare it with scope: organization"
    return [NotImported("organization-secret", s.name, None, None, reason) for s in secrets]


def vault_catalog(vault: VaultPort) -> dict[str, frozenset[str]]:
    """Every path of the mount (outside envmatrix's own space) and its key names: folders by
    metadata LIST, key names by `read_entry` (subkeys: names only, never values)."""
    catalog: dict[str, frozenset[str]] = {}
    for path in _vault_paths(vault):
        entry = vault.read_entry(path)
        if entry.version is not None:
            catalog[path] = entry.keys
    return catalog


def _vault_paths(vault: VaultPort) -> list[str]:
    folders: list[str] = [""]
    paths: list[str] = []
    while folders and len(paths) < MAX_VAULT_PATHS:
        folder = folders.pop()
        for name in sorted(vault.list_folder(folder), reverse=True):
            path = f"{folder}{name}"
            if is_reserved_vault_path(path.rstrip("/")):
                continue
            (folders if name.endswith("/") else paths).append(path)
    return sorted(paths)


# -- matching ----------------------------------------------------------------------------------


def logical_name(github_environment: str) -> str:
    """The policy's name for a GitHub environment: lower-case, other characters `-`."""
    name = re.sub(r"[^a-z0-9_.-]", "-", github_environment.lower()).lstrip("_.-")
    return name if name and LOGICAL_NAME.match(name) else f"env-{name or 'unnamed'}"


def _spelled(text: str) -> str:
    return text.lower().replace("-", "_")


def candidates(name: str, catalog: Mapping[str, frozenset[str]]) -> list[tuple[str, str]]:
    """Every (path, key) named like secret `name` (see the module docstring)."""
    wanted = _spelled(name)
    found = []
    for path, keys in catalog.items():
        last = path.rsplit("/", 1)[-1]
        for key in sorted(keys):
            if _spelled(key) == wanted or _spelled(f"{last}_{key}") == wanted:
                found.append((path, key))
    return found


def _template(path: str, key: str, environment: str) -> str | None:
    """`path#key` with the environment's segment as `{environment}`; None if it has none."""
    segments = path.split("/")
    if environment not in segments:
        return None
    return "/".join(ENVIRONMENT if s == environment else s for s in segments) + f"#{key}"


@dataclass(frozen=True)
class Source:
    """Where an entry's value lives: a `vault:` reference, or why there is none."""

    vault: str | None
    shared: bool = False
    reason: str = ""


def environment_source(
    name: str,
    environments: Sequence[str],
    known: Iterable[str],
    catalog: Mapping[str, frozenset[str]],
) -> Source:
    """The one Vault reference of an environment secret held in `environments` (logical)."""
    found = candidates(name, catalog)
    templates: set[str] | None = None
    for environment in environments:
        mine = {t for p, k in found if (t := _template(p, k, environment)) is not None}
        templates = mine if templates is None else templates & mine
    if templates and len(templates) == 1:
        return Source(templates.pop())
    if templates:
        return Source(None, reason=f"several Vault keys match: {', '.join(sorted(templates))}")
    plain = _outside_environments(found, known)
    if len(plain) == 1:
        return Source(plain[0], shared=len(environments) > 1)
    return Source(None, reason=_no_source(name, found, plain))


def repository_source(
    name: str, known: Iterable[str], catalog: Mapping[str, frozenset[str]]
) -> Source:
    """The one Vault reference of a repository secret: a path outside the environments'."""
    found = candidates(name, catalog)
    plain = _outside_environments(found, known)
    if len(plain) == 1:
        return Source(plain[0])
    return Source(None, reason=_no_source(name, found, plain))


def _outside_environments(found: Iterable[tuple[str, str]], known: Iterable[str]) -> list[str]:
    names = set(known)
    return [f"{p}#{k}" for p, k in found if not names & set(p.split("/"))]


def _no_source(name: str, found: Sequence[tuple[str, str]], plain: Sequence[str]) -> str:
    if len(plain) > 1:
        return f"several Vault keys match: {', '.join(plain)}"
    if found:
        listed = ", ".join(f"{p}#{k}" for p, k in found)
        return f"no one Vault layout fits every environment holding it (found {listed})"
    return f"no Vault key named like {name} (e.g. {name.lower()}) in the mount"


# -- the draft ---------------------------------------------------------------------------------


@dataclass
class _Builder:
    repositories: tuple[str, ...]
    catalog: Mapping[str, frozenset[str]]
    environments: dict[str, str] = field(default_factory=dict)  # logical -> GitHub
    secrets: list[DraftEntry] = field(default_factory=list)
    variables: list[DraftEntry] = field(default_factory=list)
    left_out: list[NotImported] = field(default_factory=list)

    logical_of: dict[str, str] = field(default_factory=dict)  # GitHub name, lower -> logical

    def logical(self, github_environment: str) -> str:
        """The logical name of a GitHub environment (GitHub ignores case); names that would
        collide get a suffix (`prod-eu-2`)."""
        key = github_environment.lower()
        if key not in self.logical_of:
            base = name = logical_name(github_environment)
            while name in self.environments:
                name = f"{base}-{len(self.environments)}"
            self.logical_of[key], self.environments[name] = name, github_environment
        return self.logical_of[key]

    def leave_out(self, holdings: Iterable[Holding], reason: str) -> None:
        self.left_out += [
            NotImported(h.kind, h.name, h.repository, h.environment, reason) for h in holdings
        ]


def build_draft(
    mount: str,
    repositories: Sequence[str],
    holdings: Iterable[Holding],
    catalog: Mapping[str, frozenset[str]],
    organization: Iterable[NotImported] = (),
) -> ImportDraft:
    """The draft policy from GitHub's holdings and Vault's catalog (pure: no I/O)."""
    builder = _Builder(tuple(repositories), catalog)
    by_name: dict[tuple[str, str], list[Holding]] = {}
    for holding in sorted(holdings, key=lambda h: h.sort_key):
        if holding.environment is not None:
            builder.logical(holding.environment)
        by_name.setdefault((holding.kind, holding.name.upper()), []).append(holding)
    secret_names = {name for kind, name in by_name if kind == "secret"}
    for (kind, name), held in by_name.items():
        if kind == "variable" and name in secret_names:
            builder.leave_out(held, "a secret of the same name is imported; names must differ")
        else:
            _add(builder, kind, name, held)
    builder.left_out += organization
    return ImportDraft(
        mount,
        builder.repositories,
        dict(sorted(builder.environments.items())),
        tuple(builder.secrets),
        tuple(builder.variables),
        tuple(builder.left_out),
    )


def _add(builder: _Builder, kind: str, name: str, held: list[Holding]) -> None:
    environment_level = [h for h in held if h.environment is not None]
    repository_level = [h for h in held if h.environment is None]
    if environment_level and repository_level:
        why = "also an environment secret or variable; one policy entry has one scope"
        builder.leave_out(repository_level, why)
        repository_level = []
    if kind == "variable":
        held = _one_value(builder, environment_level or repository_level)
    else:
        held = environment_level or repository_level
    placed = _one_shape(builder, held)
    entry = _entry(builder, kind, name, placed)
    if entry is not None:
        (builder.secrets if kind == "secret" else builder.variables).append(entry)


def _one_value(builder: _Builder, held: list[Holding]) -> list[Holding]:
    """The holdings sharing the most common value; the others are left out (an entry holds one
    value)."""
    by_value: dict[str | None, list[Holding]] = {}
    for holding in held:
        by_value.setdefault(holding.value, []).append(holding)
    keep = max(by_value.values(), key=len)
    for group in by_value.values():
        if group is not keep:
            builder.leave_out(group, "its value differs from its other places; an entry holds one")
    return keep


def _one_shape(builder: _Builder, held: list[Holding]) -> list[Holding]:
    """The holdings of the repositories sharing the most common set of environments; the rest
    are left out (an entry targets the same environments in each of its repositories)."""
    shapes: dict[frozenset[str | None], list[Holding]] = {}
    per_repository: dict[str, list[Holding]] = {}
    for holding in held:
        per_repository.setdefault(holding.repository, []).append(holding)
    for cells in per_repository.values():
        shape = frozenset(h.environment.lower() if h.environment else None for h in cells)
        shapes.setdefault(shape, []).extend(cells)
    keep = max(shapes.values(), key=len)
    for group in shapes.values():
        if group is not keep:
            builder.leave_out(group, "held in other environments than in its other repositories")
    return keep


def _entry(builder: _Builder, kind: str, name: str, held: list[Holding]) -> DraftEntry | None:
    repositories = tuple(r for r in builder.repositories if r in {h.repository for h in held})
    environments = tuple(
        sorted({builder.logical(h.environment) for h in held if h.environment is not None})
    )
    scope = "environment" if environments else "repository"
    if kind == "variable":
        return DraftEntry(name, scope, environments, repositories, value=held[0].value or "")
    known = list(builder.environments)
    source = (
        environment_source(name, environments, known, builder.catalog)
        if environments
        else repository_source(name, known, builder.catalog)
    )
    if source.vault is None:
        builder.leave_out(held, source.reason)
        return None
    return DraftEntry(
        name, scope, environments, repositories, vault=source.vault, shared=source.shared
    )


def import_draft(
    repositories: Sequence[str],
    organization: str | None,
    mount: str,
    environ: Mapping[str, str] = os.environ,
) -> ImportDraft:
    """`import`: read GitHub (names, variables) and the Vault mount's catalog (names only), and
    build the draft. Raises UsageError (nothing to import from), RuntimeFailure (no GitHub
    environment: a policy needs one), GitHubError and VaultError."""
    from envmatrix.connect import connect_mount  # the composition root builds the adapters

    with connect_mount(mount, environ) as connections:
        github = connections.github
        names = import_repositories(github, repositories, organization)
        holdings = [h for repository in names for h in github_holdings(github, repository)]
        organization_level = organization_items(github, organization)
        catalog = vault_catalog(connections.vault)
    draft = build_draft(mount, names, holdings, catalog, organization_level)
    if not draft.environments:
        raise RuntimeFailure(
            f"nothing to import: {', '.join(names)} hold no GitHub environment with secrets or"
            " variables, and a policy needs at least one environment"
        )
    return draft
