"""`envmatrix import`: a starting policy from what GitHub and Vault hold, never a secret value.

What is read:
- GitHub: every environment of each repository with its secret names and its variables (names and
  values: variables are not secret), the repository's Actions secret names, variables and
  Dependabot secret names, and, for `--organization`, the organization's repositories
  (`GET /orgs/{org}/repos`), its Actions secret names, variables and Dependabot secret names
  with their visibility (one list call each), and for each of visibility `selected` the
  selected repositories (`GET /orgs/{org}/{actions|dependabot}/{secrets|variables}/{name}/
  repositories`).
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
  hold the secret). A repository secret, a Dependabot secret and an organization secret use one
  path outside every environment's folders.
- A name is one policy entry: held at several levels, the narrowest is imported (environment,
  then repository, then organization; Actions before Dependabot at one level) and the others are
  left out.
- Anything else (no match, several matches, environments needing different paths, a name held
  at two levels or stores or in different environments per repository, a variable whose value
  differs between its places, visibility selected with no repository selected, a list GitHub
  refused) is listed as not imported, with the reason.

Every imported entry names the placeholder owner `unassigned`, declared under `owners:` with a
contact the user must replace. Logical environment names are the GitHub names, lower-case, with
characters outside `[A-Za-z0-9_.-]` replaced by `-`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
    repository or organization level); `value` only for variables. An organization's own item
    has `organization` True, `repository` the organization's login, its `visibility` (all |
    private | selected) and, for selected, the `selected` repositories' full names. `store` is
    "actions" or "dependabot" (Dependabot secrets: repository or organization level)."""

    kind: str  # "secret" | "variable"
    name: str
    repository: str
    environment: str | None
    value: str | None = None
    store: str = "actions"
    organization: bool = False
    visibility: str | None = None
    selected: tuple[str, ...] = ()

    @property
    def scope(self) -> str:
        """The policy's `scope:` for it: environment, repository or organization."""
        if self.organization:
            return "organization"
        return "repository" if self.environment is None else "environment"

    @property
    def sort_key(self) -> tuple[str, str, str, str]:
        """Kind, name, repository, then environment (the repository level first)."""
        return (self.kind, self.name, self.repository.lower(), (self.environment or "").lower())


@dataclass(frozen=True)
class NotImported:
    """Something GitHub holds that the draft leaves out, and why (a list of reasons a human
    can act on; never a value)."""

    kind: str  # "secret" | "variable"
    name: str  # "*": a whole list GitHub refused
    repository: str | None  # scope organization: the organization's login
    environment: str | None
    reason: str
    scope: str = "repository"  # environment | repository | organization
    store: str = "actions"  # actions | dependabot

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "repository": self.repository,
            "environment": self.environment,
            "scope": self.scope,
            "store": self.store,
            "reason": self.reason,
        }

    def line(self) -> str:
        where = self.repository or "organization"
        if self.scope == "organization":
            where = f"organization {self.repository}"
        elif self.environment is not None:
            where += f" environment {self.environment}"
        else:
            where += " (repository)"
        what = f"dependabot {self.kind}" if self.store == "dependabot" else self.kind
        return f"{what} {self.name} in {where}: {self.reason}"


@dataclass(frozen=True)
class DraftEntry:
    """One `secrets:` or `variables:` entry of the draft: `vault` (secrets) or `value`
    (variables); `environments` are logical names (empty for scope repository)."""

    name: str
    scope: str  # "environment" | "repository" | "organization"
    environments: tuple[str, ...]
    repositories: tuple[str, ...]  # scope organization: the selected ones (visibility selected)
    vault: str | None = None
    value: str | None = None
    shared: bool = False
    store: str = "actions"
    visibility: str | None = None  # scope organization only


@dataclass(frozen=True)
class ImportDraft:
    """The starting policy and what it leaves out."""

    mount: str
    repositories: tuple[str, ...]
    environments: Mapping[str, str]  # logical -> GitHub environment name
    secrets: tuple[DraftEntry, ...]
    variables: tuple[DraftEntry, ...]
    not_imported: tuple[NotImported, ...]
    organization: str | None = None  # github.organization: set when organization items are in

    def policy_data(self) -> dict[str, Any]:
        """The policy as plain data (YAML and JSON), in the contract's key order."""
        github: dict[str, Any] = {"repositories": list(self.repositories)}
        if self.organization is not None:
            github = {"organization": self.organization, **github}
        return {
            "version": 1,
            "vault": {"mount": self.mount},
            "github": github,
            "environments": {k: {"github": v} for k, v in self.environments.items()},
            "owners": {PLACEHOLDER_OWNER: {"contact": PLACEHOLDER_CONTACT}},
            "secrets": {e.name: self._entry(e, "vault") for e in self.secrets},
            "variables": {e.name: self._entry(e, "value") for e in self.variables},
        }

    def _entry(self, entry: DraftEntry, source: str) -> dict[str, Any]:
        data: dict[str, Any] = {"owner": PLACEHOLDER_OWNER}
        if entry.scope != "environment":
            data["scope"] = entry.scope
        if entry.store != "actions":
            data["store"] = entry.store
        if entry.visibility is not None:
            data["visibility"] = entry.visibility
        data[source] = entry.vault if source == "vault" else entry.value
        if entry.environments:
            data["environments"] = list(entry.environments)
        if entry.shared:
            data["shared"] = True
        if entry.scope == "organization":
            if entry.visibility == "selected":
                data["repositories"] = list(entry.repositories)
        elif entry.repositories != self.repositories:
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
    """Every secret name and variable of a repository: per environment and at its level, and
    its Dependabot secret names."""
    held = [
        Holding("secret", s.name, repository, None)
        for s in github.list_repository_secrets(repository)
    ]
    held += [
        Holding("variable", v.name, repository, None, v.value)
        for v in github.list_repository_variables(repository)
    ]
    held += [
        Holding("secret", s.name, repository, None, store="dependabot")
        for s in github.list_dependabot_secrets(repository)
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


def organization_items(
    github: GitHubPort, organization: str | None
) -> tuple[list[Holding], list[NotImported]]:
    """The organization's own Actions secrets, Actions variables and Dependabot secrets (one list
    call each) with their visibility, and for visibility selected the selected repositories (one
    list call per such item). A list GitHub refuses (403, 404) is one not-imported item with
    name "*"; other errors raise GitHubError."""
    if organization is None:
        return [], []
    held: list[Holding] = []
    left_out: list[NotImported] = []
    lists: tuple[tuple[str, str, str, Callable[[str], Sequence[Any]]], ...] = (
        ("secret", "actions", "actions/secrets", github.list_organization_secrets),
        ("variable", "actions", "actions/variables", github.list_organization_variables),
        ("secret", "dependabot", "dependabot/secrets", github.list_dependabot_organization_secrets),
    )
    for kind, store, path, list_items in lists:
        try:
            items = list_items(organization)
        except GitHubError as exc:
            if exc.status not in (403, 404):
                raise
            why = f"GET /orgs/{organization}/{path} was refused (HTTP {exc.status})"
            left_out.append(NotImported(kind, "*", organization, None, why, "organization", store))
            continue
        for item in items:
            holding = Holding(
                kind,
                item.name,
                organization,
                None,
                getattr(item, "value", None),
                store,
                organization=True,
                visibility=item.visibility,
            )
            if holding.visibility == "selected":
                try:
                    selected = github.list_selected_repositories(organization, path, item.name)
                except GitHubError as exc:
                    if exc.status not in (403, 404):
                        raise
                    why = f"its selected repositories could not be listed (HTTP {exc.status})"
                    left_out.append(_left_out(holding, why))
                    continue
                holding = replace(holding, selected=tuple(sorted(selected, key=str.lower)))
            held.append(holding)
    return held, left_out


def _left_out(holding: Holding, reason: str) -> NotImported:
    return NotImported(
        holding.kind,
        holding.name,
        holding.repository,
        holding.environment,
        reason,
        holding.scope,
        holding.store,
    )


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
    organization: str | None = None  # set by the first organization entry imported

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
        self.left_out += [_left_out(h, reason) for h in holdings]


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
        builder.organization,
    )


# Where a name is held, narrowest first: one policy entry takes the first level holding it.
LEVELS = (
    ("environment", "actions"),
    ("repository", "actions"),
    ("repository", "dependabot"),
    ("organization", "actions"),
    ("organization", "dependabot"),
)
_LEVEL_NAMES = {
    ("environment", "actions"): "an environment",
    ("repository", "actions"): "a repository",
    ("repository", "dependabot"): "a Dependabot repository",
    ("organization", "actions"): "an organization",
    ("organization", "dependabot"): "a Dependabot organization",
}


def _add(builder: _Builder, kind: str, name: str, held: list[Holding]) -> None:
    by_level: dict[tuple[str, str], list[Holding]] = {}
    for holding in held:
        by_level.setdefault((holding.scope, holding.store), []).append(holding)
    taken = min(by_level, key=LEVELS.index)
    for level, group in by_level.items():
        if level != taken:
            why = (
                f"also held as {_LEVEL_NAMES[taken]} {kind}; one policy entry has one scope and"
                " store (the narrowest is taken)"
            )
            builder.leave_out(group, why)
    held = by_level[taken]
    if taken[0] == "organization":
        (holding,) = held  # one organization: one item per name and store
        entry = _organization_entry(builder, kind, name, holding)
    else:
        if kind == "variable":
            held = _one_value(builder, held)
        entry = _entry(builder, kind, name, _one_shape(builder, held), taken[1])
    if entry is not None:
        (builder.secrets if kind == "secret" else builder.variables).append(entry)


def _organization_entry(
    builder: _Builder, kind: str, name: str, holding: Holding
) -> DraftEntry | None:
    """A `scope: organization` entry: its visibility, for selected the selected repositories."""
    if holding.visibility == "selected" and not holding.selected:
        why = (
            "visibility selected with no repository selected; a policy entry names at least one"
            " (select one in GitHub, or declare it by hand)"
        )
        builder.leave_out([holding], why)
        return None
    if holding.visibility not in ("all", "private", "selected"):
        builder.leave_out(
            [holding], f"visibility {holding.visibility!r} is not all, private or selected"
        )
        return None
    vault: str | None = None
    if kind == "secret":
        source = repository_source(name, list(builder.environments), builder.catalog)
        if source.vault is None:
            builder.leave_out([holding], source.reason)
            return None
        vault = source.vault
    builder.organization = holding.repository
    return DraftEntry(
        name,
        "organization",
        (),
        holding.selected,
        vault=vault,
        value=(holding.value or "") if kind == "variable" else None,
        store=holding.store,
        visibility=holding.visibility,
    )


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


def _entry(
    builder: _Builder, kind: str, name: str, held: list[Holding], store: str = "actions"
) -> DraftEntry | None:
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
        name,
        scope,
        environments,
        repositories,
        vault=source.vault,
        shared=source.shared,
        store=store,
    )


def import_draft(
    repositories: Sequence[str],
    organization: str | None,
    mount: str,
    environ: Mapping[str, str] = os.environ,
) -> ImportDraft:
    """`import`: read GitHub (names, variables; with `organization` its own secrets, variables
    and Dependabot secrets) and the Vault mount's catalog (names only), and build the draft.
    Raises UsageError (nothing to import from), RuntimeFailure (no GitHub environment: a policy
    needs one), GitHubError and VaultError."""
    from envmatrix.connect import connect_mount  # the composition root builds the adapters

    with connect_mount(mount, environ) as connections:
        github = connections.github
        names = import_repositories(github, repositories, organization)
        holdings = [h for repository in names for h in github_holdings(github, repository)]
        organization_held, organization_left_out = organization_items(github, organization)
        catalog = vault_catalog(connections.vault)
    holdings += organization_held
    draft = build_draft(mount, names, holdings, catalog, organization_left_out)
    if not draft.environments:
        raise RuntimeFailure(
            f"nothing to import: {', '.join(names)} hold no GitHub environment with secrets or"
            " variables, and a policy needs at least one environment"
        )
    return draft
