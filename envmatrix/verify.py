"""`verify`: the CI gate. Are the secrets the policy requires for an environment really there?

Sources:
- `environ` (default inside GitHub Actions): each required name is set and non-empty in the
  process environment. Only presence is looked at; a value is never read into a message.
- `github`: each required secret exists in the GitHub environment (list endpoint, names only).
- `vault`: each required secret's key exists at its Vault path (metadata only).

A `scope: repository` secret is required in every environment of each repository it targets (a
job sees the repository's secrets whatever its environment); `github` looks for it among the
repository's Actions secrets.

Inside GitHub Actions the result is also published in the runner's formats (API-NOTES §8):
`::error title=...::` annotations, a markdown table for `$GITHUB_STEP_SUMMARY`, and
`missing=NAME1,NAME2` for `$GITHUB_OUTPUT`. Those are built here as plain strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from envmatrix.desired import owner_with_contact, resolve_environments
from envmatrix.errors import UsageError
from envmatrix.policy import Policy
from envmatrix.ports import GitHubPort, VaultPort


class Source(StrEnum):
    ENVIRON = "environ"
    GITHUB = "github"
    VAULT = "vault"


@dataclass(frozen=True)
class Requirement:
    """A secret the policy requires in an environment, and whose it is."""

    name: str
    owner: str
    contact: str | None
    repositories: tuple[str, ...]
    vault_ref: str
    repository_level: bool = False  # a scope: repository secret

    @property
    def vault_path(self) -> str:
        return self.vault_ref.split("#", 1)[0]

    @property
    def vault_key(self) -> str:
        return self.vault_ref.split("#", 1)[1]

    def owner_text(self) -> str:
        return owner_with_contact(self.owner, self.contact)


@dataclass(frozen=True)
class Finding:
    """A required secret that is not there, where it was looked for."""

    requirement: Requirement
    where: str  # "the process environment", "GitHub occ/app/production", "Vault secret/..."


@dataclass(frozen=True)
class VerifyReport:
    """What was checked in one environment and what is missing."""

    environment: str  # logical
    github_environment: str
    source: Source
    checked: tuple[Requirement, ...]
    missing: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.missing

    def missing_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.requirement.name for f in self.missing))

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "github_environment": self.github_environment,
            "source": str(self.source),
            "ok": self.ok,
            "checked": [r.name for r in self.checked],
            "missing": [
                {
                    "name": f.requirement.name,
                    "owner": f.requirement.owner,
                    "contact": f.requirement.contact,
                    "where": f.where,
                }
                for f in self.missing
            ],
        }


def default_source(environ: Mapping[str, str]) -> Source:
    """`environ` inside GitHub Actions, `github` elsewhere."""
    return Source.ENVIRON if environ.get("GITHUB_ACTIONS") == "true" else Source.GITHUB


def requirements(
    policy: Policy, environment: str, repository: str | None
) -> tuple[Requirement, ...]:
    """The secrets the policy requires in a logical environment (of one repository if given)."""
    contacts = {name: owner.contact for name, owner in policy.owners.items()}
    found = []
    for name, spec in policy.secrets.items():
        repos = tuple(
            r
            for r in policy.repositories_for(spec)
            if repository is None or r.lower() == repository.lower()
        )
        if (spec.repository_level or environment in spec.environments) and repos:
            ref = f"{spec.vault_path(environment)}#{spec.vault_key(name)}"
            found.append(
                Requirement(
                    name, spec.owner, contacts.get(spec.owner), repos, ref, spec.repository_level
                )
            )
    return tuple(found)


def check_repository(policy: Policy, repository: str | None) -> None:
    """A `--repository` the policy never targets is a usage error, not an empty success."""
    known = {r.lower() for s in policy.secrets.values() for r in policy.repositories_for(s)}
    if repository is not None and repository.lower() not in known:
        raise UsageError(f"--repository {repository} is not targeted by the policy")


def verify_environ(
    policy: Policy, environment: str, repository: str | None, environ: Mapping[str, str]
) -> VerifyReport:
    """Required names unset or empty in `environ` (a value is only tested for emptiness)."""
    required = requirements(policy, environment, repository)
    missing = tuple(
        Finding(r, "the process environment")
        for r in required
        if not environ.get(r.name, "").strip()
    )
    return _report(policy, environment, Source.ENVIRON, required, missing)


def verify_github(
    policy: Policy, environment: str, repository: str | None, github: GitHubPort
) -> VerifyReport:
    """Required secrets absent from the GitHub environment of each targeted repository."""
    required = requirements(policy, environment, repository)
    github_env = policy.github_environment(environment)
    missing: list[Finding] = []
    for level in (False, True):  # environment secrets, then repository secrets
        wanted = [r for r in required if r.repository_level is level]
        for repo in sorted({name for req in wanted for name in req.repositories}):
            where, present = _github_names(github, repo, None if level else github_env)
            missing += [
                Finding(r, where)
                for r in wanted
                if repo in r.repositories and r.name.upper() not in present
            ]
    return _report(policy, environment, Source.GITHUB, required, tuple(missing))


def _github_names(
    github: GitHubPort, repository: str, environment: str | None
) -> tuple[str, set[str]]:
    """Where was looked (for messages) and the secret names there; None: repository secrets."""
    if environment is None:
        names = {s.name.upper() for s in github.list_repository_secrets(repository)}
        return f"GitHub {repository} (repository secrets)", names
    where = f"GitHub {repository}/{environment}"
    if environment.lower() not in {e.lower() for e in github.list_environments(repository)}:
        return where, set()
    return where, {s.name.upper() for s in github.list_environment_secrets(repository, environment)}


def verify_vault(
    policy: Policy, environment: str, repository: str | None, vault: VaultPort
) -> VerifyReport:
    """Required secrets whose key is absent at their Vault path (metadata only, no values)."""
    required = requirements(policy, environment, repository)
    entries = {}
    for req in required:
        if req.vault_path not in entries:
            entries[req.vault_path] = vault.read_entry(req.vault_path)
    missing = tuple(
        Finding(r, f"Vault {vault.mount}/{r.vault_ref}")
        for r in required
        if r.vault_key not in entries[r.vault_path].keys
    )
    return _report(policy, environment, Source.VAULT, required, missing)


def _report(
    policy: Policy,
    environment: str,
    source: Source,
    required: tuple[Requirement, ...],
    missing: tuple[Finding, ...],
) -> VerifyReport:
    return VerifyReport(
        environment, policy.github_environment(environment), source, required, missing
    )


# -- GitHub Actions formats ------------------------------------------------------------------


def escape_data(text: str) -> str:
    """Escape a workflow-command message: `%`, CR, LF (API-NOTES §8)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow-command property value (also `:` and `,`, which end a property)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def error_annotations(report: VerifyReport) -> list[str]:
    """One `::error title=...::message` line per missing secret."""
    lines = []
    for finding in report.missing:
        req = finding.requirement
        title = escape_property(f"Missing secret {req.name}")
        message = (
            f"{req.name} is missing or empty in {report.environment} — owner: {req.owner_text()}"
        )
        if report.source is not Source.ENVIRON:
            message = f"{req.name} is missing in {finding.where} — owner: {req.owner_text()}"
        lines.append(f"::error title={title}::{escape_data(message)}")
    return lines


def step_summary(report: VerifyReport) -> str:
    """A markdown section for `$GITHUB_STEP_SUMMARY`: one row per required secret."""
    verdict = "all present" if report.ok else f"{len(report.missing_names())} missing"
    lines = [
        f"### envmatrix verify: {report.environment} ({report.source}) — {verdict}",
        "",
        "| Secret | Status | Owner |",
        "|---|---|---|",
    ]
    missing = set(report.missing_names())
    for req in report.checked:
        status = "❌ missing" if req.name in missing else "✅ present"
        lines.append(f"| `{req.name}` | {status} | {_md(req.owner_text())} |")
    return "\n".join(lines) + "\n\n"


def output_line(report: VerifyReport) -> str:
    """`missing=NAME1,NAME2` for `$GITHUB_OUTPUT` (empty after `=` when nothing is missing)."""
    return f"missing={','.join(report.missing_names())}\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def run_verify(
    policy: Policy,
    environment: str,
    repository: str | None,
    source: str | None,
    environ: Mapping[str, str],
) -> VerifyReport:
    """Resolve the options and run the check against the chosen source."""
    (logical,) = resolve_environments(policy, [environment])
    check_repository(policy, repository)
    chosen = _source(source, environ)
    if chosen is Source.ENVIRON:
        return verify_environ(policy, logical, repository, environ)
    if chosen is Source.GITHUB:
        from envmatrix.adapters.github import GitHubAdapter

        with closing(GitHubAdapter.from_environment(environ)) as github:
            return verify_github(policy, logical, repository, github)
    from envmatrix.adapters.vault import VaultAdapter

    with closing(VaultAdapter.from_environment(policy.vault.mount, environ)) as vault:
        return verify_vault(policy, logical, repository, vault)


def _source(source: str | None, environ: Mapping[str, str]) -> Source:
    if source is None:
        return default_source(environ)
    try:
        return Source(source)
    except ValueError:
        raise UsageError(f"--source {source!r}: one of environ, github, vault") from None
