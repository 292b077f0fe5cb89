"""`verify`: the CI gate. Are the secrets the policy requires for an environment really there?

Sources:
- `environ` (default inside GitHub Actions): each required name is set and present in the
  process environment (`envmatrix.secret.absence`: not empty, whitespace-only or "null"). Only
  presence is looked at; a value is never read into a message.
- `github`: each required secret exists in the GitHub environment (list endpoint, names only).
- `vault`: each required secret's key exists at its Vault path and holds a present value (read
  in memory, never shown).

Shadowing: a job gets the environment secret, else the repository secret, else the organization
secret of the same name. A required environment secret absent from its GitHub environment while
a same-named repository or organization secret exists is a finding of every source: `github`
always looks; `environ` and `vault` look whenever a GitHub token is set (else, or when the token
may not list secrets, they warn that they cannot tell). The environ source cannot see it on its
own: GitHub hands the job the fallback value, which looks present.

A `scope: repository` secret is required in every environment of each repository it targets (a
job sees the repository's secrets whatever its environment); `github` looks for it among the
repository's Actions secrets.

Inside GitHub Actions the result is also published in the runner's formats (API-NOTES §8):
`::error title=...::` annotations, a markdown table for `$GITHUB_STEP_SUMMARY`, and
`missing=NAME1,NAME2` for `$GITHUB_OUTPUT`. Those are built here as plain strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from hmac import compare_digest
from typing import Any

from envmatrix.connect import github_session, vault_session
from envmatrix.errors import GitHubError, UsageError, VaultNotFound, VaultPermissionDenied
from envmatrix.pipeline.desired import (
    Target,
    owner_with_contact,
    resolve_environments,
    resolve_repository,
)
from envmatrix.pipeline.state import SyncRecord, SyncState, state_path
from envmatrix.policy import Policy
from envmatrix.ports import GitHubPort, VaultPort
from envmatrix.secret import SecretValue, absence


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
    shadowed_by: str | None = None  # the wider-scope secret jobs get instead, if any


@dataclass(frozen=True)
class Mismatch:
    """A required secret a job received that is not the value envmatrix synced (by HMAC)."""

    requirement: Requirement
    reason: str  # why: "differs from ...", "no fingerprint recorded ..."; never a value


@dataclass(frozen=True)
class VerifyReport:
    """What was checked in one environment and what is missing."""

    environment: str  # logical
    github_environment: str
    source: Source
    checked: tuple[Requirement, ...]
    missing: tuple[Finding, ...]
    warnings: tuple[str, ...] = ()  # what could not be checked (e.g. shadowing without a token)
    mismatched: tuple[Mismatch, ...] = ()  # --fingerprint: present, but not the synced value
    fingerprinted: bool = False  # whether --fingerprint compared the values

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched

    def missing_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.requirement.name for f in self.missing))

    def mismatched_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.requirement.name for m in self.mismatched))

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
                    "shadowed_by": f.shadowed_by,
                }
                for f in self.missing
            ],
            "warnings": list(self.warnings),
            **(
                {
                    "mismatched": [
                        {
                            "name": m.requirement.name,
                            "owner": m.requirement.owner,
                            "contact": m.requirement.contact,
                            "reason": m.reason,
                        }
                        for m in self.mismatched
                    ]
                }
                if self.fingerprinted
                else {}
            ),
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
    resolve_repository(policy, repository)


def verify_environ(
    policy: Policy, environment: str, repository: str | None, environ: Mapping[str, str]
) -> VerifyReport:
    """Required names unset or not present in `environ` (a value is only tested for presence)."""
    required = requirements(policy, environment, repository)
    missing = tuple(
        Finding(r, "the process environment")
        for r in required
        if absence(environ.get(r.name)) is not None
    )
    return _report(policy, environment, Source.ENVIRON, required, missing)


def verify_github(
    policy: Policy, environment: str, repository: str | None, github: GitHubPort
) -> VerifyReport:
    """Required secrets absent from the GitHub environment of each targeted repository."""
    required = requirements(policy, environment, repository)
    github_env = policy.github_environment(environment)
    missing: list[Finding] = []
    shadows, warnings = _shadows(policy, required, github_env, github)
    for level in (False, True):  # environment secrets, then repository secrets
        wanted = [r for r in required if r.repository_level is level]
        for repo in sorted({name for req in wanted for name in req.repositories}):
            where, present = _github_names(github, repo, None if level else github_env)
            missing += [
                shadows.get((repo, r.name)) or Finding(r, where)
                for r in wanted
                if repo in r.repositories and r.name.upper() not in present
            ]
    report = _report(policy, environment, Source.GITHUB, required, tuple(missing))
    return replace(report, warnings=warnings)


def shadow_findings(
    policy: Policy, environment: str, repository: str | None, github: GitHubPort
) -> tuple[tuple[Finding, ...], tuple[str, ...]]:
    """Required environment secrets absent from their GitHub environment while a same-named
    repository or organization secret exists (what jobs there get instead), and warnings for
    the scopes that could not be listed. Lists only: per repository its environments, the
    environment's secrets and its repository secrets; per owner its organization secrets."""
    required = requirements(policy, environment, repository)
    found, warnings = _shadows(policy, required, policy.github_environment(environment), github)
    return tuple(found.values()), warnings


def _shadows(
    policy: Policy, required: tuple[Requirement, ...], github_env: str, github: GitHubPort
) -> tuple[dict[tuple[str, str], Finding], tuple[str, ...]]:
    wanted = [r for r in required if not r.repository_level]
    repos = sorted({name for req in wanted for name in req.repositories})
    found: dict[tuple[str, str], Finding] = {}
    warnings: list[str] = []
    organizations: dict[str, set[str] | None] = {}
    for repo in repos:
        where, present = _github_names(github, repo, github_env)
        absent = [r for r in wanted if repo in r.repositories and r.name.upper() not in present]
        if not absent:
            continue
        fallback = {
            s.name.upper(): "repository secret" for s in github.list_repository_secrets(repo)
        }
        org = repo.split("/", 1)[0]
        if org.lower() not in organizations:
            organizations[org.lower()] = _organization_names(github, org, warnings)
        for name in organizations[org.lower()] or set():
            fallback.setdefault(name, f"organization secret of {org}")
        for req in absent:
            scope = fallback.get(req.name.upper())
            if scope is not None:
                text = f"{where} (absent there; jobs get {req.name} from the {scope} instead)"
                found[(repo, req.name)] = Finding(req, text, scope)
    return found, tuple(warnings)


def _organization_names(github: GitHubPort, org: str, warnings: list[str]) -> set[str] | None:
    try:
        return {s.name.upper() for s in github.list_organization_secrets(org)}
    except GitHubError as exc:
        if exc.status != 404:  # 404: a user account, which has no organization secrets
            warnings.append(
                f"cannot tell whether organization {org} secrets shadow a missing environment"
                f" secret: {exc}"
            )
        return None


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
    """Required secrets whose key is absent at their Vault path or holds no value (empty,
    whitespace-only, null: `envmatrix.secret.absence`). Values are read in memory, never shown."""
    required = requirements(policy, environment, repository)
    absences: dict[str, dict[str, str | None]] = {}
    warnings: list[str] = []
    for req in required:
        if req.vault_path not in absences:
            absences[req.vault_path] = _vault_absences(vault, req.vault_path, warnings)
    missing = []
    for r in required:
        why = absences[r.vault_path].get(r.vault_key, "absent")
        if why is not None:
            detail = "" if why == "absent" else f" ({why}, not a secret)"
            missing.append(Finding(r, f"Vault {vault.mount}/{r.vault_ref}{detail}"))
    report = _report(policy, environment, Source.VAULT, required, tuple(missing))
    return replace(report, warnings=tuple(warnings))


def _vault_absences(vault: VaultPort, path: str, warnings: list[str]) -> dict[str, str | None]:
    """Each key of a path's current version -> why it holds no secret (None: it does). A token
    that may read metadata only gets the keys (presence unknown) and a warning."""
    try:
        values = vault.read_values(path)
    except VaultNotFound:
        return {}
    except VaultPermissionDenied as exc:
        warnings.append(f"cannot tell whether the values at {vault.mount}/{path} are empty: {exc}")
        return dict.fromkeys(vault.read_entry(path).keys)
    return {key: absence(value) for key, value in values.items()}


def verify_fingerprints(
    policy: Policy,
    report: VerifyReport,
    repository: str | None,
    environ: Mapping[str, str],
    vault: VaultPort,
) -> tuple[Mismatch, ...]:
    """The present required secrets whose value in `environ` is not the version envmatrix
    synced to this job's repository (`repository`, else $GITHUB_REPOSITORY, else the only one).

    Each received value goes only to Vault's transit HMAC endpoint (batched), under the key
    version of the HMAC recorded at apply; the HMACs are compared in constant time. A secret
    with no recorded HMAC (synced before `vault.transit` was set, or never by envmatrix) is a
    mismatch too: it cannot be vouched for. Raises VaultError when transit refuses.
    """
    transit = policy.vault.transit
    assert transit is not None
    absent = {f.requirement.name for f in report.missing}
    job_repo = repository or environ.get("GITHUB_REPOSITORY") or None
    states: dict[Target, SyncState] = {}
    found: list[Mismatch] = []
    to_check: dict[int | None, list[tuple[Requirement, str, SyncRecord]]] = {}
    for req in report.checked:
        if req.name in absent:
            continue
        repo = _job_repository(req, job_repo)
        target = (
            Target.repository_level(repo)
            if req.repository_level
            else Target(repo, report.environment, report.github_environment)
        )
        if target not in states:
            states[target] = SyncState.from_document(vault.read_document(state_path(target)))
        record = states[target].records.get(req.name)
        if record is None or record.hmac is None:
            found.append(
                Mismatch(
                    req,
                    f"no fingerprint recorded for {repo}: envmatrix has not synced it since"
                    " vault.transit was set (run apply)",
                )
            )
            continue
        version = _hmac_version(record.hmac)
        to_check.setdefault(version, []).append((req, environ[req.name], record))
    for version, items in to_check.items():
        received = vault.transit_hmac(
            transit.mount, transit.key, [SecretValue(v) for _, v, _ in items], key_version=version
        )
        for (req, _, record), hmac in zip(items, received, strict=True):
            if not compare_digest(hmac, record.hmac or ""):
                found.append(
                    Mismatch(
                        req,
                        "the value this job received is not the one envmatrix synced from"
                        f" {vault.mount}/{record.vault_path}#{record.vault_key}"
                        f" v{record.vault_version} (written outside envmatrix, or shadowed)",
                    )
                )
    order = {r.name: i for i, r in enumerate(report.checked)}
    return tuple(sorted(found, key=lambda m: order[m.requirement.name]))


def _job_repository(req: Requirement, job_repo: str | None) -> str:
    if job_repo is not None:
        for repo in req.repositories:
            if repo.lower() == job_repo.lower():
                return repo
    if len(req.repositories) == 1:
        return req.repositories[0]
    raise UsageError(
        f"{req.name} is synced to {', '.join(req.repositories)}: say which repository this job"
        " runs in (--repository, or GITHUB_REPOSITORY)"
    )


def _hmac_version(hmac: str) -> int | None:
    """The transit key version of a `vault:vN:...` HMAC; None when it names none."""
    parts = hmac.split(":")
    if len(parts) >= 3 and parts[1].startswith("v") and parts[1][1:].isdigit():
        return int(parts[1][1:])
    return None


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
        if report.source is not Source.ENVIRON or finding.shadowed_by is not None:
            message = f"{req.name} is missing in {finding.where} — owner: {req.owner_text()}"
        lines.append(f"::error title={title}::{escape_data(message)}")
    for mismatch in report.mismatched:
        req = mismatch.requirement
        title = escape_property(f"Wrong value for {req.name}")
        message = f"{req.name}: {mismatch.reason} — owner: {req.owner_text()}"
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
    fingerprint: bool = False,
) -> VerifyReport:
    """Resolve the options and run the check against the chosen source; with `fingerprint`
    (environ source only) also compare each received value's transit HMAC with the recorded one.
    Raises UsageError for `--fingerprint` without `--source environ` or `vault.transit`."""
    (logical,) = resolve_environments(policy, [environment])
    check_repository(policy, repository)
    chosen = _source(source, environ)
    if fingerprint:
        if chosen is not Source.ENVIRON:
            raise UsageError("--fingerprint compares received values: use it with --source environ")
        if policy.vault.transit is None:
            raise UsageError(
                "--fingerprint needs the policy's vault.transit (mount and key of a transit key)"
            )
        report = verify_environ(policy, logical, repository, environ)
        with vault_session(policy, environ) as vault:
            mismatched = verify_fingerprints(policy, report, repository, environ, vault)
        report = replace(report, mismatched=mismatched, fingerprinted=True)
        return with_shadows(report, policy, repository, environ)
    if chosen is Source.GITHUB:
        with github_session(environ) as github:
            return verify_github(policy, logical, repository, github)
    if chosen is Source.ENVIRON:
        report = verify_environ(policy, logical, repository, environ)
    else:
        with vault_session(policy, environ) as vault:
            report = verify_vault(policy, logical, repository, vault)
    return with_shadows(report, policy, repository, environ)


def with_shadows(
    report: VerifyReport, policy: Policy, repository: str | None, environ: Mapping[str, str]
) -> VerifyReport:
    """`report` plus the shadowing findings, looked up in GitHub when a token is set; without
    one, or when GitHub refuses the lists, a warning that shadowing could not be checked."""
    if not (environ.get("GITHUB_TOKEN") or environ.get("GH_TOKEN")):
        return _warned(
            report,
            "no GITHUB_TOKEN (or GH_TOKEN): cannot tell whether a same-named"
            " repository or organization secret shadows a missing environment secret",
        )
    try:
        with github_session(environ) as github:
            found, warnings = shadow_findings(policy, report.environment, repository, github)
    except GitHubError as exc:
        return _warned(
            report,
            f"cannot tell whether a same-named repository or organization"
            f" secret shadows a missing environment secret: {exc}",
        )
    known = {f.requirement.name for f in report.missing}
    extra = tuple(f for f in found if f.requirement.name not in known)
    return replace(report, missing=report.missing + extra, warnings=report.warnings + warnings)


def _warned(report: VerifyReport, warning: str) -> VerifyReport:
    if not any(not r.repository_level for r in report.checked):
        return report  # only repository secrets: nothing can shadow them from a wider scope
    return replace(report, warnings=(*report.warnings, warning))


def _source(source: str | None, environ: Mapping[str, str]) -> Source:
    if source is None:
        return default_source(environ)
    try:
        return Source(source)
    except ValueError:
        raise UsageError(f"--source {source!r}: one of environ, github, vault") from None
